//! Making tensors (from data, constants, ranges, random draws) and reading them back out.

use super::{
    checked_numel, match_storage, CpuStorage, DType, Layout, StorageSlice, Tensor, WithDType,
};
use crate::bail;
use crate::error::Result;
use crate::rng::{with_default_generator, Generator};
use std::sync::Arc;

/// The element count of a new `dtype` buffer of `shape`, or an error when it cannot exist or
/// would pass the thread's allocation limit (see [`super::with_alloc_limit`]).
fn alloc_len(op: &'static str, shape: &[usize], dtype: DType) -> Result<usize> {
    let n = checked_numel(op, shape)?;
    if n.checked_mul(dtype.size_in_bytes())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        bail!(
            op,
            "shape {shape:?}: {n} {dtype} elements need more than isize::MAX bytes"
        );
    }
    super::alloc_limit::charge(op, shape, n * dtype.size_in_bytes())?;
    Ok(n)
}

fn check_len(op: &'static str, len: usize, shape: &[usize]) -> Result<()> {
    let n = checked_numel(op, shape)?;
    if len != n {
        bail!(
            op,
            "{len} elements cannot fill shape {shape:?} ({n} elements)"
        );
    }
    Ok(())
}

fn from_f64s(v: Vec<f64>, shape: &[usize], dtype: DType) -> Tensor {
    let n = v.len();
    let src = CpuStorage::F64(v);
    let data = if dtype == DType::F64 {
        src
    } else {
        src.convert_gather(0..n, dtype)
    };
    Tensor::from_storage(data, shape)
}

impl Tensor {
    /// A tensor owning `data` with the given shape.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    /// assert_eq!(t.shape(), &[2, 3]);
    /// let labels = Tensor::from_vec(vec![0i64, 2], &[2])?;
    /// assert_eq!(labels.dtype(), DType::I64);
    /// // The data must fill the shape exactly.
    /// assert!(Tensor::from_vec(vec![1.0f32, 2.0], &[3]).is_err());
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn from_vec<T: StorageSlice>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        check_len("from_vec", data.len(), shape)?;
        Ok(Tensor::from_storage(T::wrap(data), shape))
    }
    /// A tensor copying `data`.
    ///
    /// ```
    /// use fukai::Tensor;
    /// let t = Tensor::from_slice(&[1.0f64, 2.0, 3.0], &[3, 1])?;
    /// assert_eq!(t.to_vec::<f64>()?, [1.0, 2.0, 3.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn from_slice<T: StorageSlice>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }
    /// A 0-dim tensor.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let s = Tensor::scalar(2.5, DType::F64);
    /// assert_eq!((s.rank(), s.item()?), (0, 2.5));
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn scalar(v: f64, dtype: DType) -> Tensor {
        Tensor::from_storage(CpuStorage::full(dtype, 1, v), &[])
    }
    /// All zeros.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let z = Tensor::zeros(&[2, 3], DType::F32)?;
    /// assert_eq!(z.to_vec::<f32>()?, vec![0.0; 6]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
        let n = alloc_len("zeros", shape, dtype)?;
        Ok(Tensor::from_storage(CpuStorage::zeros(dtype, n), shape))
    }
    /// All ones.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// assert_eq!(Tensor::ones(&[3], DType::I64)?.to_vec::<i64>()?, [1, 1, 1]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn ones(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, 1.0, dtype)
    }
    /// Every element `v`.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// assert_eq!(Tensor::full(&[2], 7.5, DType::F64)?.to_vec::<f64>()?, [7.5, 7.5]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn full(shape: &[usize], v: f64, dtype: DType) -> Result<Tensor> {
        let n = alloc_len("full", shape, dtype)?;
        Ok(Tensor::from_storage(CpuStorage::full(dtype, n, v), shape))
    }
    /// Zeros with this tensor's shape and dtype.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.shape(), self.dtype())
    }
    /// Ones with this tensor's shape and dtype.
    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::ones(self.shape(), self.dtype())
    }
    /// `start, start + step, ...` up to (not including) `end`.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// assert_eq!(Tensor::arange(0.0, 5.0, 1.0, DType::I64)?.to_vec::<i64>()?, [0, 1, 2, 3, 4]);
    /// assert_eq!(Tensor::arange(1.0, 0.0, -0.25, DType::F32)?.to_vec::<f32>()?, [1.0, 0.75, 0.5, 0.25]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            bail!(
                "arange",
                "start {start}, end {end}, step {step}: need finite values and a non-zero step"
            );
        }
        // `as` saturates, so a huge range becomes usize::MAX and fails the size check.
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        alloc_len("arange", &[n], DType::F64)?;
        alloc_len("arange", &[n], dtype)?;
        let v = (0..n).map(|i| start + i as f64 * step).collect();
        Ok(from_f64s(v, &[n], dtype))
    }
    /// Uniform in [0, 1) from the default generator.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let u = Tensor::rand(&[1000], DType::F32)?;
    /// assert!(u.to_vec::<f32>()?.iter().all(|v| (0.0..1.0).contains(v)));
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn rand(shape: &[usize], dtype: DType) -> Result<Tensor> {
        with_default_generator(|g| Tensor::uniform_with(shape, 0.0, 1.0, dtype, g))
    }
    /// Uniform in [lo, hi) from the default generator.
    pub fn uniform(shape: &[usize], lo: f64, hi: f64, dtype: DType) -> Result<Tensor> {
        with_default_generator(|g| Tensor::uniform_with(shape, lo, hi, dtype, g))
    }
    /// Standard normal from the default generator.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// fukai::manual_seed(42); // reproducible draws, as torch.manual_seed
    /// let a = Tensor::randn(&[10_000], DType::F64)?;
    /// fukai::manual_seed(42);
    /// assert_eq!(a.to_vec::<f64>()?, Tensor::randn(&[10_000], DType::F64)?.to_vec::<f64>()?);
    /// assert!(a.mean_all()?.item()?.abs() < 0.05);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn randn(shape: &[usize], dtype: DType) -> Result<Tensor> {
        with_default_generator(|g| Tensor::normal_with(shape, 0.0, 1.0, dtype, g))
    }
    /// Uniform in [lo, hi) from `gen`.
    pub fn uniform_with(
        shape: &[usize],
        lo: f64,
        hi: f64,
        dtype: DType,
        gen: &mut Generator,
    ) -> Result<Tensor> {
        if !dtype.is_float() || lo.is_nan() || hi.is_nan() || lo > hi {
            bail!(
                "uniform",
                "need a float dtype and lo <= hi, found {dtype}, [{lo}, {hi})"
            );
        }
        let n = alloc_len("uniform", shape, DType::F64)?;
        alloc_len("uniform", shape, dtype)?;
        let v = gen.uniform_f64(n);
        Ok(from_f64s(
            v.into_iter().map(|u| lo + (hi - lo) * u).collect(),
            shape,
            dtype,
        ))
    }
    /// Normal with `mean` and `std` from `gen`.
    pub fn normal_with(
        shape: &[usize],
        mean: f64,
        std: f64,
        dtype: DType,
        gen: &mut Generator,
    ) -> Result<Tensor> {
        if !dtype.is_float() || std.is_nan() || std < 0.0 {
            bail!(
                "normal",
                "need a float dtype and std >= 0, found {dtype}, std {std}"
            );
        }
        let n = alloc_len("normal", shape, DType::F64)?;
        alloc_len("normal", shape, dtype)?;
        let v = gen.normal_f64(n);
        Ok(from_f64s(
            v.into_iter().map(|z| mean + std * z).collect(),
            shape,
            dtype,
        ))
    }

    /// The elements in row-major order, as `T` (which must be this tensor's dtype).
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
    /// // Row-major order of the logical layout, also for a transposed view.
    /// assert_eq!(t.t()?.to_vec::<f32>()?, [1.0, 3.0, 2.0, 4.0]);
    /// // The element type must match the dtype; convert first otherwise.
    /// assert!(t.to_vec::<f64>().is_err());
    /// assert_eq!(t.to_dtype(DType::F64)?.to_vec::<f64>()?, [1.0, 2.0, 3.0, 4.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn to_vec<T: StorageSlice>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype() {
            bail!(
                "to_vec",
                "tensor is {}, asked for {}",
                self.dtype(),
                T::DTYPE
            );
        }
        if !self.device().is_cpu() {
            let host = self.host_storage()?;
            return Ok(T::slice(&host).expect("dtype checked").to_vec());
        }
        let data = self.storage().read();
        let s = T::slice(&data).expect("dtype checked");
        Ok(match self.layout().contiguous_range() {
            Some(r) => s[r].to_vec(),
            None => self.layout().gather(s),
        })
    }
    /// The elements converted to f64, whatever the dtype.
    ///
    /// ```
    /// use fukai::Tensor;
    /// let t = Tensor::from_vec(vec![3u8, 4], &[2])?;
    /// assert_eq!(t.to_vec_f64()?, [3.0, 4.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        if !self.device().is_cpu() {
            let host = self.host_storage()?;
            return Ok(match_storage!(&host, v => v.iter().map(|x| x.to_f64()).collect()));
        }
        let data = self.storage().read();
        let idx = self.layout().indices();
        Ok(match_storage!(&*data, v => idx.map(|i| v[i].to_f64()).collect()))
    }
    /// The single element as f64 (PyTorch's `item()`).
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let loss = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3])?.mean_all()?;
    /// assert_eq!(loss.item()?, 2.0);
    /// assert!(Tensor::zeros(&[2], DType::F32)?.item().is_err());
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            bail!(
                "item",
                "needs a single-element tensor, found shape {:?}",
                self.shape()
            );
        }
        Ok(self.to_vec_f64()?[0])
    }
    /// Runs `f` on the contiguous f32 data of this tensor (copying only when it is a strided view).
    pub fn with_f32<R>(&self, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
        if self.dtype() != DType::F32 {
            bail!("with_f32", "tensor is {}, expected f32", self.dtype());
        }
        if !self.device().is_cpu() {
            return Ok(f(&self.to_vec::<f32>()?));
        }
        let data = self.storage().read();
        let s = f32::slice(&data).expect("dtype checked");
        Ok(match self.layout().contiguous_range() {
            Some(r) => f(&s[r]),
            None => f(&self.layout().gather(s)),
        })
    }

    /// A contiguous copy of the data in the same dtype (no graph; see `contiguous` for the op).
    pub(crate) fn copy_contiguous_storage(&self) -> CpuStorage {
        let data = self.storage().read();
        let l = self.layout();
        match &*data {
            CpuStorage::F32(v) => CpuStorage::F32(l.gather(v)),
            CpuStorage::F64(v) => CpuStorage::F64(l.gather(v)),
            CpuStorage::BF16(v) => CpuStorage::BF16(l.gather(v)),
            CpuStorage::F16(v) => CpuStorage::F16(l.gather(v)),
            CpuStorage::I64(v) => CpuStorage::I64(l.gather(v)),
            CpuStorage::U32(v) => CpuStorage::U32(l.gather(v)),
            CpuStorage::U8(v) => CpuStorage::U8(l.gather(v)),
        }
    }
    /// Converts to `dtype` (a copy). Differentiable between float types.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let x = Tensor::from_vec(vec![1.5f32, -2.25], &[2])?;
    /// let h = x.to_dtype(DType::BF16)?;
    /// assert_eq!(h.dtype(), DType::BF16);
    /// assert_eq!(h.to_dtype(DType::F32)?.to_vec::<f32>()?, [1.5, -2.25]);
    /// // Float to integer truncates toward zero, like PyTorch's `.long()`.
    /// assert_eq!(x.to_dtype(DType::I64)?.to_vec::<i64>()?, [1, -2]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let storage = if crate::tensor::on_gpu(&[self]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                crate::backend::gpu::elementwise::cast(self, dtype)?.0
            }
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
            unreachable!()
        } else {
            let src = self.storage().read();
            Arc::new(super::Storage::new(
                src.convert_gather(self.layout().indices(), dtype),
            ))
        };
        let src_dtype = self.dtype();
        let differentiable = dtype.is_compute_float() && src_dtype.is_compute_float();
        let inputs: &[&Tensor] = if differentiable { &[self] } else { &[] };
        Ok(Tensor::op_result(
            "to_dtype",
            storage,
            Layout::contiguous(self.shape()),
            inputs,
            || Box::new(move |g, _| Ok(vec![Some(g.to_dtype(src_dtype)?)])),
        ))
    }
    /// Overwrites this tensor's elements with `src`'s (same shape and dtype), without recording
    /// a graph: how optimizers and checkpoint loading update parameters in place.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let w = Tensor::zeros(&[2], DType::F32)?;
    /// w.copy_from(&Tensor::from_vec(vec![5.0f32, 6.0], &[2])?)?;
    /// assert_eq!(w.to_vec::<f32>()?, [5.0, 6.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn copy_from(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() || src.dtype() != self.dtype() {
            bail!(
                "copy_from",
                "destination is {:?} {}, source is {:?} {}",
                self.shape(),
                self.dtype(),
                src.shape(),
                src.dtype()
            );
        }
        crate::tensor::check_same_device("copy_from", self, src)?;
        if crate::tensor::on_gpu(&[self, src]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            return crate::backend::gpu::elementwise::copy_into(self, src);
        }
        let values = src.copy_contiguous_storage();
        let mut dst = self.storage().write();
        let idx: Vec<usize> = self.layout().indices().collect();
        macro_rules! put {
            ($d:expr, $s:expr) => {
                for (k, &i) in idx.iter().enumerate() {
                    $d[i] = $s[k];
                }
            };
        }
        match (&mut *dst, &values) {
            (CpuStorage::F32(d), CpuStorage::F32(s)) => put!(d, s),
            (CpuStorage::F64(d), CpuStorage::F64(s)) => put!(d, s),
            (CpuStorage::BF16(d), CpuStorage::BF16(s)) => put!(d, s),
            (CpuStorage::F16(d), CpuStorage::F16(s)) => put!(d, s),
            (CpuStorage::I64(d), CpuStorage::I64(s)) => put!(d, s),
            (CpuStorage::U32(d), CpuStorage::U32(s)) => put!(d, s),
            (CpuStorage::U8(d), CpuStorage::U8(s)) => put!(d, s),
            _ => unreachable!("dtype checked"),
        }
        Ok(())
    }
    /// Runs `f` on the f32 elements in place (contiguous tensors only): the optimizer fast path.
    pub fn update_f32(&self, f: impl FnOnce(&mut [f32])) -> Result<()> {
        self.update_as::<f32>("update_f32", f)
    }
    /// Runs `f` on the elements in place as `T` (contiguous tensors of dtype `T` only; errors
    /// are reported as `op`).
    pub(crate) fn update_as<T: StorageSlice>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut [T]),
    ) -> Result<()> {
        self.cpu_only(op)?;
        let Some(r) = self.layout().contiguous_range() else {
            bail!(op, "tensor of shape {:?} is a strided view", self.shape());
        };
        let mut data = self.storage().write();
        let Some(s) = T::slice_mut(&mut data) else {
            bail!(op, "tensor is {}, expected {}", self.dtype(), T::DTYPE);
        };
        f(&mut s[r]);
        Ok(())
    }
}
