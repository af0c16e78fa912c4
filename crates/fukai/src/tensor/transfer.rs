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
        let storage = std::sync::Arc::new(storage_on("to", device, host)?);
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
        let moved = storage_on("move_to", device, host)?;
        self.storage().replace_with(moved);
        Ok(())
    }

    /// A contiguous host copy of the elements, from any device.
    pub(crate) fn host_storage(&self) -> Result<CpuStorage> {
        match self.device() {
            Device::Cpu => Ok(self.copy_contiguous_storage()),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            _ => crate::backend::gpu::to_host(self),
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
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
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            other if !other.is_cpu() => {
                super::checked_numel("full", shape)?;
                match crate::backend::gpu::Ctx::of(other)? {
                    Some(ctx) => crate::backend::gpu::elementwise::full(&ctx, shape, v, dtype),
                    None => bail!("full", "no backend for {other} in this build"),
                }
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

/// Whether an op on these tensors runs on a GPU (any operand there; the caller checked that
/// they may meet).
pub(crate) fn on_gpu(ts: &[&Tensor]) -> bool {
    ts.iter().any(|t| !t.device().is_cpu())
}

/// Host data as storage on `device` (already checked to exist here).
fn storage_on(op: &'static str, device: Device, host: CpuStorage) -> Result<super::Storage> {
    if device.is_cpu() {
        return Ok(super::Storage::new(host));
    }
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if let Some(s) = crate::backend::gpu::storage_on(device, &host)? {
        return Ok(s);
    }
    bail!(op, "no backend for {device} in this build")
}
