//! Moving tensors between devices, constructors on a device, and the device checks ops use.

use super::{CpuStorage, DType, Device, Tensor};
use crate::bail;
use crate::error::Result;

impl Tensor {
    /// This tensor on `device`: itself when already there, else a copy (differentiable: the
    /// gradient flows back to the source device, as PyTorch's `.to`).
    ///
    /// ```
    /// use fukai::{Device, Tensor};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2])?;
    /// assert_eq!(x.to(Device::Cpu)?.to_vec::<f32>()?, [1.0, 2.0]);
    /// // A device this machine or build lacks is an error listing what it has.
    /// assert!(x.to(Device::Cuda(7)).is_err());
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn to(&self, device: Device) -> Result<Tensor> {
        let src = self.device();
        if device == src {
            return Ok(self.clone());
        }
        device.check()?;
        let host = self.host_storage()?;
        let storage = match device {
            Device::Cpu => std::sync::Arc::new(super::Storage::new(host)),
            #[cfg(feature = "wgpu")]
            Device::Wgpu(n) => {
                let ctx = crate::backend::wgpu::context(n)?;
                let buf = crate::backend::wgpu::upload(&ctx, &host)?;
                std::sync::Arc::new(super::Storage::wgpu(buf, self.dtype()))
            }
            other => bail!("to", "no backend for {other} in this build"),
        };
        let differentiable = self.dtype().is_compute_float();
        let inputs: &[&Tensor] = if differentiable { &[self] } else { &[] };
        Ok(Tensor::op_result(
            "to",
            storage,
            super::Layout::contiguous(self.shape()),
            inputs,
            move || Box::new(move |g, _| Ok(vec![Some(g.to(src)?)])),
        ))
    }

    /// Moves this tensor's memory to `device` in place: every handle and view sharing it moves
    /// too. How a model's parameters and buffers change device (see
    /// [`crate::nn::Module::to_device`]); gradients are not moved, so clear them first.
    pub fn move_to(&self, device: Device) -> Result<()> {
        if self.device() == device {
            return Ok(());
        }
        device.check()?;
        let n = self.storage().len();
        let whole = Tensor::from_parts(self.storage().clone(), super::Layout::contiguous(&[n]));
        let host = whole.host_storage()?;
        let moved = match device {
            Device::Cpu => super::Storage::new(host),
            #[cfg(feature = "wgpu")]
            Device::Wgpu(k) => {
                let ctx = crate::backend::wgpu::context(k)?;
                super::Storage::wgpu(crate::backend::wgpu::upload(&ctx, &host)?, self.dtype())
            }
            other => bail!("move_to", "no backend for {other} in this build"),
        };
        self.storage().replace_with(moved);
        Ok(())
    }

    /// A contiguous host copy of the elements, from any device.
    pub(crate) fn host_storage(&self) -> Result<CpuStorage> {
        match self.device() {
            Device::Cpu => Ok(self.copy_contiguous_storage()),
            #[cfg(feature = "wgpu")]
            Device::Wgpu(_) => crate::backend::wgpu::to_host(self),
            other => bail!("to_vec", "no backend for {other} in this build"),
        }
    }

    /// Zeros of `shape` on `device`.
    pub fn zeros_on(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full_on(shape, 0.0, dtype, device)
    }
    /// Ones of `shape` on `device`.
    pub fn ones_on(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full_on(shape, 1.0, dtype, device)
    }
    /// `v` everywhere in `shape`, on `device`.
    ///
    /// ```
    /// use fukai::{DType, Device, Tensor};
    /// let t = Tensor::full_on(&[2], 3.0, DType::F32, Device::Cpu)?;
    /// assert_eq!(t.to_vec::<f32>()?, [3.0, 3.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn full_on(shape: &[usize], v: f64, dtype: DType, device: Device) -> Result<Tensor> {
        match device {
            Device::Cpu => Tensor::full(shape, v, dtype),
            #[cfg(feature = "wgpu")]
            Device::Wgpu(n) => {
                super::checked_numel("full", shape)?;
                let ctx = crate::backend::wgpu::context(n)?;
                crate::backend::wgpu::elementwise::full(&ctx, shape, v, dtype)
            }
            other => {
                other.check()?;
                bail!("full", "no backend for {other} in this build")
            }
        }
    }
    /// Data from a Vec, placed on `device`.
    pub fn from_vec_on<T: super::StorageSlice>(
        data: Vec<T>,
        shape: &[usize],
        device: Device,
    ) -> Result<Tensor> {
        Tensor::from_vec(data, shape)?.to(device)
    }
    /// A scalar on this tensor's device.
    pub fn scalar_like(&self, v: f64) -> Result<Tensor> {
        Tensor::full_on(&[], v, self.dtype(), self.device())
    }

    /// Errors unless this tensor is in host memory: ops without a kernel for its device.
    pub(crate) fn cpu_only(&self, op: &'static str) -> Result<()> {
        if !self.device().is_cpu() {
            bail!(
                op,
                "has no {} kernel yet; move the tensor with .to(Device::Cpu) (shape {:?})",
                self.device(),
                self.shape()
            );
        }
        Ok(())
    }
}

/// Errors unless `a` and `b` can meet in one op: the same device, or one of them a 0-dim CPU
/// tensor (a scalar, as PyTorch allows beside device tensors).
pub(crate) fn check_same_device(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    let (da, db) = (a.device(), b.device());
    let scalar = |t: &Tensor| t.device().is_cpu() && t.rank() == 0;
    if da != db && !scalar(a) && !scalar(b) {
        bail!(
            op,
            "tensors on different devices: {da} {:?} and {db} {:?}; move one with .to(device)",
            a.shape(),
            b.shape()
        );
    }
    Ok(())
}

/// Whether an op on these tensors runs on wgpu (any operand there; the caller checked that
/// they may meet).
#[cfg(feature = "wgpu")]
pub(crate) fn on_wgpu(ts: &[&Tensor]) -> bool {
    ts.iter().any(|t| matches!(t.device(), Device::Wgpu(_)))
}

/// Always false without the `wgpu` feature.
#[cfg(not(feature = "wgpu"))]
pub(crate) fn on_wgpu(_: &[&Tensor]) -> bool {
    false
}
