//! Reductions over dims. Every reduction views its input as [outer, R, inner] and sums (or
//! scans) R in a fixed order with fixed-size blocks, so results are identical at any thread count.

use super::float::{check_float_on, wrap, zeroed, Float};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::parallel::{for_each_chunk_mut, map_range, map_range_if, MIN_PAR_ELEMS, PAR_THRESHOLD};
use crate::tensor::{normalize_dim, CpuStorage, DType, Tensor};

/// Block length for long sums: partial sums of fixed blocks are combined in order.
const SUM_BLOCK: usize = 4096;
/// Output columns processed together when reducing over a middle dim.
const COL_BLOCK: usize = 256;

/// The input as a contiguous [outer, R, inner] buffer with the reduced dims in the middle,
/// copying only when the reduced dims are not already a contiguous run.
fn reduce_view<T: Float, R>(
    t: &Tensor,
    dims: &[usize],
    f: impl FnOnce(&[T], usize, usize, usize) -> R,
) -> R {
    let shape = t.shape();
    let run = dims.windows(2).all(|w| w[1] == w[0] + 1);
    let r: usize = dims.iter().map(|&d| shape[d]).product();
    if run && !dims.is_empty() {
        let outer: usize = shape[..dims[0]].iter().product();
        let inner: usize = shape[dims[dims.len() - 1] + 1..].iter().product();
        return super::float::with_contig::<T, _>(t, |x| f(x, outer, r, inner));
    }
    let mut perm: Vec<usize> = (0..shape.len()).filter(|d| !dims.contains(d)).collect();
    // Not numel / r: that is 0 when a reduced dim is empty, though the kept dims are not.
    let outer: usize = perm.iter().map(|&d| shape[d]).product();
    perm.extend_from_slice(dims);
    let p = t.detach().permute_usize(&perm).expect("valid permutation");
    super::float::with_contig::<T, _>(&p, |x| f(x, outer, r, 1))
}

/// The input viewed as [outer, R, inner] for a device kernel: itself when the reduced dims are
/// one run, else permuted so they are innermost.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn device_view(t: &Tensor, dims: &[usize]) -> (Tensor, usize, usize, usize) {
    let shape = t.shape();
    let r: usize = dims.iter().map(|&d| shape[d]).product();
    if dims.is_empty() {
        return (t.clone(), t.numel(), 1, 1);
    }
    if dims.windows(2).all(|w| w[1] == w[0] + 1) {
        let outer: usize = shape[..dims[0]].iter().product();
        let inner: usize = shape[dims[dims.len() - 1] + 1..].iter().product();
        return (t.clone(), outer, r, inner);
    }
    let mut perm: Vec<usize> = (0..shape.len()).filter(|d| !dims.contains(d)).collect();
    let outer: usize = perm.iter().map(|&d| shape[d]).product();
    perm.extend_from_slice(dims);
    let p = t.detach().permute_usize(&perm).expect("valid permutation");
    (p, outer, r, 1)
}

/// Sum of a contiguous run with 8 independent accumulators per block (vectorizes, and the
/// order is fixed by the data length alone).
#[inline]
fn sum_run<T: Float>(x: &[T]) -> T {
    let mut total = T::ZERO;
    for block in x.chunks(SUM_BLOCK) {
        let mut acc = [T::ZERO; 8];
        let mut it = block.chunks_exact(8);
        for c in &mut it {
            for k in 0..8 {
                acc[k] += c[k];
            }
        }
        let mut s =
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for &v in it.remainder() {
            s += v;
        }
        total += s;
    }
    total
}

fn sum_kernel<T: Float>(x: &[T], outer: usize, r: usize, inner: usize) -> Vec<T> {
    if inner == 1 {
        if outer == 1 && r >= PAR_THRESHOLD {
            let partials = map_range(r.div_ceil(SUM_BLOCK), |b| {
                sum_run(&x[b * SUM_BLOCK..((b + 1) * SUM_BLOCK).min(r)])
            });
            return vec![partials.into_iter().fold(T::ZERO, |a, b| a + b)];
        }
        let mut out = zeroed(outer);
        let per = (PAR_THRESHOLD / r.max(1)).max(1);
        for_each_chunk_mut(&mut out, per, |c, o| {
            for (k, o) in o.iter_mut().enumerate() {
                let row = c * per + k;
                *o = sum_run(&x[row * r..(row + 1) * r]);
            }
        });
        return out;
    }
    let mut out = zeroed(outer * inner);
    let col_blocks = inner.div_ceil(COL_BLOCK);
    // One task per (outer row, column block); each sums R rows of its columns in order.
    let tasks = map_range_if(x.len() >= MIN_PAR_ELEMS, outer * col_blocks, |t| {
        let (o, cb) = (t / col_blocks, t % col_blocks);
        let j0 = cb * COL_BLOCK;
        let w = COL_BLOCK.min(inner - j0);
        let mut acc = vec![T::ZERO; w];
        for ri in 0..r {
            let base = (o * r + ri) * inner + j0;
            for (a, &v) in acc.iter_mut().zip(&x[base..base + w]) {
                *a += v;
            }
        }
        acc
    });
    for (t, acc) in tasks.into_iter().enumerate() {
        let (o, cb) = (t / col_blocks, t % col_blocks);
        let j0 = o * inner + cb * COL_BLOCK;
        out[j0..j0 + acc.len()].copy_from_slice(&acc);
    }
    out
}

/// Max (or min) and its first index along the middle axis.
fn arg_kernel<T: Float>(
    x: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    want_max: bool,
) -> (Vec<T>, Vec<i64>) {
    let better = |v: T, best: T| {
        if best.is_nan() {
            false
        } else if v.is_nan() {
            true
        } else if want_max {
            v > best
        } else {
            v < best
        }
    };
    let mut vals = Vec::with_capacity(outer * inner);
    let mut idx = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for j in 0..inner {
            let (mut best, mut bi) = (x[o * r * inner + j], 0i64);
            for ri in 1..r {
                let v = x[(o * r + ri) * inner + j];
                if better(v, best) {
                    best = v;
                    bi = ri as i64;
                }
            }
            vals.push(best);
            idx.push(bi);
        }
    }
    (vals, idx)
}

fn reduced_shape(shape: &[usize], dims: &[usize], keepdim: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(shape.len());
    for (i, &d) in shape.iter().enumerate() {
        if !dims.contains(&i) {
            out.push(d);
        } else if keepdim {
            out.push(1);
        }
    }
    out
}

impl Tensor {
    fn norm_dims(&self, op: &'static str, dims: &[isize]) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(dims.len());
        for &d in dims {
            let d = normalize_dim(op, d, self.rank())?;
            if out.contains(&d) {
                bail!(op, "dim {d} given twice in {dims:?}");
            }
            out.push(d);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Elements combined per output by a reduction over normalized `dims` (a 0-dim tensor's
    /// dim 0 counts as size 1).
    fn reduced_count(&self, dims: &[usize]) -> usize {
        dims.iter()
            .map(|&i| self.shape().get(i).copied().unwrap_or(1))
            .product()
    }

    /// Sum over the given (already normalized, sorted, distinct) dims.
    pub(crate) fn sum_dims(&self, dims: &[usize], keepdim: bool) -> Result<Tensor> {
        check_float_on("sum", self)?;
        let dims: Vec<usize> = dims.iter().copied().filter(|&d| d < self.rank()).collect();
        let out_shape = reduced_shape(self.shape(), &dims, keepdim);
        let (storage, layout) = if crate::tensor::on_gpu(&[self]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                use crate::backend::gpu::reduce::{reduce, Reduce};
                let (v, o, r, i) = device_view(self, &dims);
                reduce(&v, o, r, i, Reduce::Sum, &out_shape)?.0
            }
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
            unreachable!()
        } else {
            float_dispatch!(self.dtype(), T => {
                let v = reduce_view::<T, _>(self, &dims, sum_kernel::<T>);
                wrap(v, &out_shape)
            })
        };
        let in_shape = self.shape().to_vec();
        let kept = reduced_shape(&in_shape, &dims, true);
        Ok(Tensor::op_result(
            "sum",
            storage,
            layout,
            &[self],
            move || Box::new(move |g, _| Ok(vec![Some(g.reshape(&kept)?.expand(&in_shape)?)])),
        ))
    }

    /// Sum over `dims` (negative dims count from the end).
    ///
    /// ```
    /// use fukai::Tensor;
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    /// assert_eq!(t.sum(&[0], false)?.to_vec::<f32>()?, [5.0, 7.0, 9.0]);
    /// assert_eq!(t.sum(&[-1], true)?.shape(), &[2, 1]);
    /// assert_eq!(t.sum_all()?.item()?, 21.0);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn sum(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let d = self.norm_dims("sum", dims)?;
        self.sum_dims(&d, keepdim)
    }
    /// Sum of all elements, as a 0-dim tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        let d: Vec<usize> = (0..self.rank()).collect();
        self.sum_dims(&d, false)
    }
    /// Mean over `dims` (NaN over an empty dim, as in PyTorch).
    ///
    /// ```
    /// use fukai::Tensor;
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    /// assert_eq!(t.mean(&[1], false)?.to_vec::<f32>()?, [2.0, 5.0]);
    /// assert_eq!(t.mean_all()?.item()?, 3.5);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn mean(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let d = self.norm_dims("mean", dims)?;
        let n = self.reduced_count(&d);
        self.sum_dims(&d, keepdim)?.mul_scalar(1.0 / n as f64)
    }
    /// Mean of all elements (NaN for an empty tensor).
    pub fn mean_all(&self) -> Result<Tensor> {
        self.sum_all()?.mul_scalar(1.0 / self.numel() as f64)
    }
    /// Variance over `dims` with `correction` (1 = unbiased, PyTorch's default; 0 = population).
    pub fn var(&self, dims: &[isize], correction: usize, keepdim: bool) -> Result<Tensor> {
        let d = self.norm_dims("var", dims)?;
        let n = self.reduced_count(&d);
        if n <= correction {
            bail!(
                "var",
                "{n} elements over dims {dims:?} of shape {:?} with correction {correction}: need more than {correction}",
                self.shape()
            );
        }
        let centered = self.sub(&self.mean(dims, true)?)?;
        centered
            .square()?
            .sum_dims(&d, keepdim)?
            .mul_scalar(1.0 / (n - correction) as f64)
    }

    fn arg_reduce(
        &self,
        op: &'static str,
        dim: isize,
        keepdim: bool,
        want_max: bool,
    ) -> Result<(Tensor, Tensor)> {
        check_float_on(op, self)?;
        let d = normalize_dim(op, dim, self.rank())?;
        if self.rank() > 0 && self.shape()[d] == 0 {
            bail!(
                op,
                "cannot reduce an empty dim {d} of shape {:?}",
                self.shape()
            );
        }
        let dims = if self.rank() == 0 { vec![] } else { vec![d] };
        let out_shape = reduced_shape(self.shape(), &dims, keepdim);
        let (storage, layout, indices) = if crate::tensor::on_gpu(&[self]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                use crate::backend::gpu::reduce::{reduce, Reduce};
                let (v, o, r, i) = device_view(self, &dims);
                let how = if want_max { Reduce::Max } else { Reduce::Min };
                let ((s, l), idx) = reduce(&v, o, r, i, how, &out_shape)?;
                (s, l, idx.expect("arg reductions return indices"))
            }
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
            unreachable!()
        } else {
            float_dispatch!(self.dtype(), T => {
                let (v, i) = reduce_view::<T, _>(self, &dims, |x, o, r, n| arg_kernel::<T>(x, o, r, n, want_max));
                let (s, l) = wrap(v, &out_shape);
                (s, l, Tensor::from_storage(CpuStorage::I64(i), &out_shape))
            })
        };
        let saved_idx = indices.clone();
        let in_shape = self.shape().to_vec();
        let kept = reduced_shape(&in_shape, &dims, true);
        let values = Tensor::op_result(op, storage, layout, &[self], move || {
            Box::new(move |g, _| {
                if kept.is_empty() {
                    return Ok(vec![Some(g.clone())]);
                }
                let zeros = Tensor::zeros_on(&in_shape, g.dtype(), g.device())?;
                let gi = zeros.scatter_add(
                    d as isize,
                    &saved_idx.reshape(&kept)?,
                    &g.reshape(&kept)?,
                )?;
                Ok(vec![Some(gi)])
            })
        });
        Ok((values, indices))
    }

    /// Maximum along `dim` and its index (first occurrence; NaN wins, as in PyTorch).
    pub fn max_dim(&self, dim: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        self.arg_reduce("max", dim, keepdim, true)
    }
    /// Minimum along `dim` and its index.
    pub fn min_dim(&self, dim: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        self.arg_reduce("min", dim, keepdim, false)
    }
    /// Maximum values along `dim`.
    ///
    /// ```
    /// use fukai::Tensor;
    /// let t = Tensor::from_vec(vec![1.0f32, 8.0, 3.0, 4.0, 2.0, 6.0], &[2, 3])?;
    /// assert_eq!(t.max(1, false)?.to_vec::<f32>()?, [8.0, 6.0]);
    /// assert_eq!(t.max_all()?.item()?, 8.0);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn max(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        Ok(self.max_dim(dim, keepdim)?.0)
    }
    /// Minimum values along `dim`.
    pub fn min(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        Ok(self.min_dim(dim, keepdim)?.0)
    }
    /// Max or min of all elements. The gradient is split evenly among the elements equal to
    /// the result (the NaNs when it is NaN), as PyTorch's full reduction `x.max()` does, rather
    /// than given whole to one of them as `max_dim`'s index does.
    fn extreme_all(&self, op: &'static str, want_max: bool) -> Result<Tensor> {
        check_float_on(op, self)?;
        if self.numel() == 0 {
            bail!(
                op,
                "cannot reduce an empty tensor of shape {:?}",
                self.shape()
            );
        }
        let x = self.detach();
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if crate::tensor::on_gpu(&[self]) {
            use crate::backend::gpu::reduce::{reduce, Reduce};
            let n = x.numel();
            let how = if want_max { Reduce::Max } else { Reduce::Min };
            let ((s, l), _) = reduce(&x.reshape(&[n])?, 1, n, 1, how, &[])?;
            let y = Tensor::from_parts(s.clone(), l.clone());
            return Ok(Tensor::op_result(op, s, l, &[self], move || {
                Box::new(move |g, _| {
                    // Ties (every NaN, when the result is NaN) share the gradient evenly.
                    let f = |m: Tensor| m.to_dtype(x.dtype());
                    let tied = f(x.eq(&y)?)?.add(&f(x.ne(&x)?)?.mul(&f(y.ne(&y)?)?)?)?;
                    let share = g.div(&tied.sum_all()?)?;
                    Ok(vec![Some(tied.mul(&share)?)])
                })
            }));
        }
        x.cpu_only(op)?;
        let (storage, layout) = float_dispatch!(self.dtype(), T => {
            let v = super::float::with_contig::<T, _>(&x, |xs| arg_kernel::<T>(xs, 1, xs.len(), 1, want_max).0);
            wrap(v, &[])
        });
        let y = Tensor::from_parts(storage.clone(), layout.clone());
        Ok(Tensor::op_result(op, storage, layout, &[self], move || {
            Box::new(move |g, _| {
                let scale = g.item()?;
                let gi = float_dispatch!(x.dtype(), T => {
                    let best = y.to_vec::<T>()?[0];
                    let tied = |v: T| v == best || (best.is_nan() && v.is_nan());
                    let xs = x.to_vec::<T>()?;
                    let count = xs.iter().filter(|&&v| tied(v)).count();
                    let share = T::c(scale / count as f64);
                    let gv: Vec<T> = xs.iter().map(|&v| if tied(v) { share } else { T::ZERO }).collect();
                    Tensor::from_vec(gv, x.shape())?
                });
                Ok(vec![Some(gi)])
            })
        }))
    }
    /// Largest element of the whole tensor (0-dim); ties share the gradient evenly.
    pub fn max_all(&self) -> Result<Tensor> {
        self.extreme_all("max", true)
    }
    /// Smallest element of the whole tensor (0-dim); ties share the gradient evenly.
    pub fn min_all(&self) -> Result<Tensor> {
        self.extreme_all("min", false)
    }
    /// Index of the maximum along `dim` (i64).
    ///
    /// ```
    /// use fukai::Tensor;
    /// let logits = Tensor::from_vec(vec![0.1f32, 2.0, -1.0, 5.0, 0.0, 1.0], &[2, 3])?;
    /// // Predicted classes, as i64 indices.
    /// assert_eq!(logits.argmax(-1, false)?.to_vec::<i64>()?, [1, 0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        Ok(self.detach().max_dim(dim, keepdim)?.1)
    }
    /// Index of the minimum along `dim` (i64).
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        Ok(self.detach().min_dim(dim, keepdim)?.1)
    }
    /// log Σ exp(x) along `dim`, computed stably (shifted by the detached max).
    pub fn logsumexp(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        check_float_on("logsumexp", self)?;
        normalize_dim("logsumexp", dim, self.rank())?;
        // Clamped so an all -inf row gives -inf rather than -inf - -inf = NaN; the bound must
        // be finite in the tensor's own dtype (f64::MAX rounds to inf in f32).
        let big = if self.dtype() == DType::F32 {
            f32::MAX as f64
        } else {
            f64::MAX
        };
        let m = self.detach().max(dim, true)?.clamp(-big, big)?;
        let out = self.sub(&m)?.exp()?.sum(&[dim], true)?.log()?.add(&m)?;
        if keepdim {
            Ok(out)
        } else {
            out.squeeze(dim)
        }
    }
}
