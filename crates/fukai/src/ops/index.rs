//! Joining, splitting and indexing: cat, stack, split, chunk, index_select / index_add,
//! gather / scatter_add, embedding.

use super::float::{check_same_dtype, with_contig, wrap};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::tensor::{normalize_dim_nonscalar, CpuStorage, DType, Storage, StorageSlice, Tensor};
use std::sync::Arc;

/// Index tensor (i64 or u32) as checked usizes below `bound`.
fn indices(op: &'static str, idx: &Tensor, bound: usize) -> Result<Vec<usize>> {
    let raw: Vec<i64> = match idx.dtype() {
        DType::I64 => idx.to_vec::<i64>()?,
        DType::U32 => idx.to_vec::<u32>()?.into_iter().map(i64::from).collect(),
        other => bail!(op, "indices must be i64 or u32, found {other}"),
    };
    raw.into_iter()
        .map(|i| {
            if i < 0 || i as usize >= bound {
                bail!(op, "index {i} out of range for a dim of size {bound}");
            }
            Ok(i as usize)
        })
        .collect()
}

/// (outer, dim size, inner) of `shape` around `dim`.
fn split3(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        shape[..dim].iter().product(),
        shape[dim],
        shape[dim + 1..].iter().product(),
    )
}

fn cat_kernel<T: StorageSlice + Default>(
    parts: &[Tensor],
    dim: usize,
    out_shape: &[usize],
) -> Vec<T> {
    let (outer, total, inner) = split3(out_shape, dim);
    let mut out = vec![T::default(); outer * total * inner];
    let mut at = 0;
    for p in parts {
        let w = p.shape()[dim] * inner;
        with_contig::<T, _>(p, |src| {
            for o in 0..outer {
                let dst = o * total * inner + at;
                out[dst..dst + w].copy_from_slice(&src[o * w..(o + 1) * w]);
            }
        });
        at += w;
    }
    out
}

fn select_kernel<T: StorageSlice + Default>(src: &Tensor, dim: usize, idx: &[usize]) -> Vec<T> {
    let (outer, d, inner) = split3(src.shape(), dim);
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    with_contig::<T, _>(src, |s| {
        for o in 0..outer {
            for &i in idx {
                let at = (o * d + i) * inner;
                out.extend_from_slice(&s[at..at + inner]);
            }
        }
    });
    out
}

/// For every element of `index` (row-major): (its position in `index`, the flat position in a
/// contiguous tensor of `shape` it addresses along `dim`).
fn scatter_positions(
    op: &'static str,
    shape: &[usize],
    dim: usize,
    index: &Tensor,
) -> Result<Vec<usize>> {
    if index.rank() != shape.len() {
        bail!(
            op,
            "index of shape {:?} has rank {} but the tensor of shape {shape:?} has rank {}",
            index.shape(),
            index.rank(),
            shape.len()
        );
    }
    for (d, (&i, &s)) in index.shape().iter().zip(shape).enumerate() {
        if d != dim && i > s {
            bail!(
                op,
                "index shape {:?} exceeds tensor shape {shape:?} at dim {d}",
                index.shape()
            );
        }
    }
    let idx = indices(op, index, shape[dim])?;
    let strides = crate::tensor::contiguous_strides(shape);
    let ishape = index.shape();
    let mut pos = vec![0usize; ishape.len()];
    let mut out = Vec::with_capacity(idx.len());
    for &v in &idx {
        let mut flat = 0;
        for d in 0..ishape.len() {
            flat += if d == dim { v } else { pos[d] } * strides[d];
        }
        out.push(flat);
        for d in (0..ishape.len()).rev() {
            pos[d] += 1;
            if pos[d] < ishape[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    Ok(out)
}

impl Tensor {
    /// Concatenates along `dim`; all other dims must match.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let a = Tensor::ones(&[2, 3], DType::F32)?;
    /// let b = Tensor::zeros(&[1, 3], DType::F32)?;
    /// let c = Tensor::cat(&[a.clone(), b], 0)?;
    /// assert_eq!(c.shape(), &[3, 3]);
    /// assert_eq!(c.sum_all()?.item()?, 6.0);
    /// assert_eq!(Tensor::cat(&[a.clone(), a], 1)?.shape(), &[2, 6]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn cat(parts: &[Tensor], dim: isize) -> Result<Tensor> {
        let Some(first) = parts.first() else {
            bail!("cat", "needs at least one tensor")
        };
        let d = normalize_dim_nonscalar("cat", dim, first.shape())?;
        let mut out_shape = first.shape().to_vec();
        out_shape[d] = 0;
        for (i, p) in parts.iter().enumerate() {
            check_same_dtype("cat", first, p)?;
            let ok = p.rank() == first.rank()
                && p.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(j, (a, b))| j == d || a == b);
            if !ok {
                bail!(
                    "cat",
                    "tensor {i} has shape {:?}, expected {:?} except along dim {d}",
                    p.shape(),
                    first.shape()
                );
            }
            out_shape[d] += p.shape()[d];
        }
        // Quantized matrices stacked by rows stay quantized (a LLaMA's q, k and v projections
        // become one); tracked for gradients, they are stacked as f32 below.
        let refs: Vec<&Tensor> = parts.iter().collect();
        if d == 0 && !Tensor::records_backward(&refs) {
            if let Some(qs) = parts
                .iter()
                .map(Tensor::qmatrix)
                .collect::<Option<Vec<_>>>()
            {
                if let Ok(q) = crate::quant::QMatrix::cat_rows(&qs) {
                    return Ok(Tensor::from_qmatrix(q));
                }
            }
        }
        let (storage, layout) = if crate::tensor::on_gpu(&refs) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                crate::backend::gpu::elementwise::cat(parts, d, &out_shape)?
            }
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
            unreachable!()
        } else {
            let data = match first.dtype() {
                DType::F32 => CpuStorage::F32(cat_kernel(parts, d, &out_shape)),
                DType::F64 => CpuStorage::F64(cat_kernel(parts, d, &out_shape)),
                DType::BF16 => CpuStorage::BF16(cat_kernel(parts, d, &out_shape)),
                DType::F16 => CpuStorage::F16(cat_kernel(parts, d, &out_shape)),
                DType::I64 => CpuStorage::I64(cat_kernel(parts, d, &out_shape)),
                DType::U32 => CpuStorage::U32(cat_kernel(parts, d, &out_shape)),
                DType::U8 => CpuStorage::U8(cat_kernel(parts, d, &out_shape)),
            };
            (
                Arc::new(Storage::new(data)),
                crate::tensor::Layout::contiguous(&out_shape),
            )
        };
        let sizes: Vec<usize> = parts.iter().map(|p| p.shape()[d]).collect();
        Ok(Tensor::op_result(
            "cat",
            storage,
            layout,
            &refs,
            move || {
                Box::new(move |g, needs| {
                    let mut at = 0;
                    let mut out = Vec::with_capacity(sizes.len());
                    for (&s, &need) in sizes.iter().zip(needs) {
                        out.push(if need {
                            Some(g.narrow(d as isize, at, s)?)
                        } else {
                            None
                        });
                        at += s;
                    }
                    Ok(out)
                })
            },
        ))
    }
    /// Stacks equal-shaped tensors along a new dim.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2])?;
    /// let b = Tensor::from_vec(vec![3.0f32, 4.0], &[2])?;
    /// let s = Tensor::stack(&[a.clone(), b.clone()], 0)?;
    /// assert_eq!(s.shape(), &[2, 2]);
    /// assert_eq!(Tensor::stack(&[a, b], 1)?.to_vec::<f32>()?, [1.0, 3.0, 2.0, 4.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn stack(parts: &[Tensor], dim: isize) -> Result<Tensor> {
        let Some(first) = parts.first() else {
            bail!("stack", "needs at least one tensor")
        };
        for (i, p) in parts.iter().enumerate() {
            if p.shape() != first.shape() {
                bail!(
                    "stack",
                    "tensor {i} has shape {:?}, expected {:?} (all shapes must match)",
                    p.shape(),
                    first.shape()
                );
            }
        }
        let un: Result<Vec<Tensor>> = parts.iter().map(|p| p.unsqueeze(dim)).collect();
        Tensor::cat(&un?, dim)
    }
    /// Splits into pieces of `size` along `dim` (the last may be smaller); views.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let t = Tensor::arange(0.0, 5.0, 1.0, DType::F32)?;
    /// let parts = t.split(2, 0)?;
    /// let sizes: Vec<usize> = parts.iter().map(|p| p.numel()).collect();
    /// assert_eq!(sizes, [2, 2, 1]);
    /// assert_eq!(t.chunk(2, 0)?[0].to_vec::<f32>()?, [0.0, 1.0, 2.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = normalize_dim_nonscalar("split", dim, self.shape())?;
        if size == 0 {
            bail!("split", "split size must be positive");
        }
        let n = self.shape()[d];
        (0..n)
            .step_by(size)
            .map(|s| self.narrow(d as isize, s, size.min(n - s)))
            .collect()
    }
    /// Splits into `chunks` nearly equal pieces along `dim` (PyTorch's rule: ceil-sized).
    pub fn chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = normalize_dim_nonscalar("chunk", dim, self.shape())?;
        if chunks == 0 {
            bail!("chunk", "number of chunks must be positive");
        }
        self.split(self.shape()[d].div_ceil(chunks).max(1), dim)
    }

    /// Rows (entries along `dim`) picked by a 1-D index tensor, in index order.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2])?;
    /// let rows = t.index_select(0, &Tensor::from_vec(vec![2i64, 0], &[2])?)?;
    /// assert_eq!(rows.to_vec::<f32>()?, [5.0, 6.0, 1.0, 2.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn index_select(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        let d = normalize_dim_nonscalar("index_select", dim, self.shape())?;
        if index.rank() != 1 {
            bail!(
                "index_select",
                "index must be 1-D, found shape {:?}",
                index.shape()
            );
        }
        let idx = indices("index_select", index, self.shape()[d])?;
        let mut shape = self.shape().to_vec();
        shape[d] = idx.len();
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if crate::tensor::on_gpu(&[self]) {
            let (s, l) = crate::backend::gpu::elementwise::index_select(self, d, index, &shape)?;
            let (index, rows) = (index.clone(), self.shape()[d]);
            return Ok(Tensor::op_result(
                "index_select",
                s,
                l,
                &[self],
                move || {
                    Box::new(move |g, _| Ok(vec![Some(index_add_by_matmul(g, d, &index, rows)?)]))
                },
            ));
        }
        self.cpu_only("index_select")?;
        let data = match self.dtype() {
            DType::F32 => CpuStorage::F32(select_kernel(self, d, &idx)),
            DType::F64 => CpuStorage::F64(select_kernel(self, d, &idx)),
            DType::BF16 => CpuStorage::BF16(select_kernel(self, d, &idx)),
            DType::F16 => CpuStorage::F16(select_kernel(self, d, &idx)),
            DType::I64 => CpuStorage::I64(select_kernel(self, d, &idx)),
            DType::U32 => CpuStorage::U32(select_kernel(self, d, &idx)),
            DType::U8 => CpuStorage::U8(select_kernel(self, d, &idx)),
        };
        let index = index.clone();
        let in_shape = self.shape().to_vec();
        Ok(Tensor::op_result(
            "index_select",
            Arc::new(Storage::new(data)),
            crate::tensor::Layout::contiguous(&shape),
            &[self],
            move || {
                Box::new(move |g, _| {
                    let z = Tensor::zeros(&in_shape, g.dtype())?;
                    Ok(vec![Some(z.index_add(d as isize, &index, g)?)])
                })
            },
        ))
    }
    /// `self` with `src`'s entries along `dim` added at the positions in the 1-D `index`
    /// (repeated indices accumulate, in index order).
    pub fn index_add(&self, dim: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        super::float::check_float_on("index_add", self)?;
        check_same_dtype("index_add", self, src)?;
        let d = normalize_dim_nonscalar("index_add", dim, self.shape())?;
        if index.rank() != 1 {
            bail!(
                "index_add",
                "index must be 1-D, found shape {:?}",
                index.shape()
            );
        }
        let idx = indices("index_add", index, self.shape()[d])?;
        let mut want = self.shape().to_vec();
        want[d] = idx.len();
        if src.shape() != want.as_slice() {
            bail!(
                "index_add",
                "source has shape {:?}, expected {want:?}",
                src.shape()
            );
        }
        let (outer, dn, inner) = split3(self.shape(), d);
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if crate::tensor::on_gpu(&[self, src]) {
            let mut pos = Vec::with_capacity(src.numel());
            for o in 0..outer {
                for &i in &idx {
                    pos.extend((0..inner).map(|j| (o * dn + i) * inner + j));
                }
            }
            let added = {
                let _g = crate::no_grad();
                crate::backend::gpu::elementwise::put_add(src, &pos, self.shape())?
            };
            let (index, sum) = (index.clone(), self.detach().add(&added)?);
            return Ok(Tensor::op_result(
                "index_add",
                sum.storage().clone(),
                sum.layout().clone(),
                &[self, src],
                move || {
                    Box::new(move |g, needs| {
                        let gs = needs[1]
                            .then(|| g.index_select(d as isize, &index))
                            .transpose()?;
                        Ok(vec![needs[0].then(|| g.clone()), gs])
                    })
                },
            ));
        }
        self.cpu_only("index_add")?;
        let (storage, layout) = float_dispatch!(self.dtype(), T => {
            let mut out = with_contig::<T, _>(self, |s| s.to_vec());
            with_contig::<T, _>(src, |s| {
                for o in 0..outer {
                    for (t, &i) in idx.iter().enumerate() {
                        let (dst, from) = ((o * dn + i) * inner, (o * idx.len() + t) * inner);
                        for j in 0..inner {
                            out[dst + j] += s[from + j];
                        }
                    }
                }
            });
            wrap(out, self.shape())
        });
        let index = index.clone();
        Ok(Tensor::op_result(
            "index_add",
            storage,
            layout,
            &[self, src],
            move || {
                Box::new(move |g, needs| {
                    let gs = if needs[1] {
                        Some(g.index_select(d as isize, &index)?)
                    } else {
                        None
                    };
                    Ok(vec![needs[0].then(|| g.clone()), gs])
                })
            },
        ))
    }
    /// `out[i][j] = self[index[i][j]][j]` for `dim = 0` (and likewise for other dims).
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let probs = Tensor::from_vec(vec![0.1f32, 0.9, 0.7, 0.3], &[2, 2])?;
    /// let picked = probs.gather(1, &Tensor::from_vec(vec![1i64, 0], &[2, 1])?)?;
    /// assert_eq!(picked.to_vec::<f32>()?, [0.9, 0.7]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn gather(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        super::float::check_float_on("gather", self)?;
        let d = normalize_dim_nonscalar("gather", dim, self.shape())?;
        let pos = scatter_positions("gather", self.shape(), d, index)?;
        let (storage, layout) = if crate::tensor::on_gpu(&[self]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                crate::backend::gpu::elementwise::take(self, &pos, index.shape())?
            }
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
            unreachable!()
        } else {
            float_dispatch!(self.dtype(), T => {
                let out: Vec<T> = with_contig::<T, _>(self, |s| pos.iter().map(|&p| s[p]).collect());
                wrap(out, index.shape())
            })
        };
        let (index, in_shape) = (index.clone(), self.shape().to_vec());
        Ok(Tensor::op_result(
            "gather",
            storage,
            layout,
            &[self],
            move || {
                Box::new(move |g, _| {
                    let z = Tensor::zeros_on(&in_shape, g.dtype(), g.device())?;
                    Ok(vec![Some(z.scatter_add(d as isize, &index, g)?)])
                })
            },
        ))
    }
    /// `self` plus `src` added at `index` along `dim` (the inverse of gather).
    pub fn scatter_add(&self, dim: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        super::float::check_float_on("scatter_add", self)?;
        check_same_dtype("scatter_add", self, src)?;
        let d = normalize_dim_nonscalar("scatter_add", dim, self.shape())?;
        if src.shape() != index.shape() {
            bail!(
                "scatter_add",
                "source shape {:?} must equal index shape {:?}",
                src.shape(),
                index.shape()
            );
        }
        let pos = scatter_positions("scatter_add", self.shape(), d, index)?;
        let (storage, layout) = if crate::tensor::on_gpu(&[self, src]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                let _g = crate::no_grad();
                let added = crate::backend::gpu::elementwise::put_add(src, &pos, self.shape())?;
                let sum = self.detach().add(&added)?;
                (sum.storage().clone(), sum.layout().clone())
            }
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
            unreachable!()
        } else {
            float_dispatch!(self.dtype(), T => {
                let mut out = with_contig::<T, _>(self, |s| s.to_vec());
                with_contig::<T, _>(src, |s| {
                    for (&p, &v) in pos.iter().zip(s) {
                        out[p] += v;
                    }
                });
                wrap(out, self.shape())
            })
        };
        let index = index.clone();
        Ok(Tensor::op_result(
            "scatter_add",
            storage,
            layout,
            &[self, src],
            move || {
                Box::new(move |g, needs| {
                    let gs = if needs[1] {
                        Some(g.gather(d as isize, &index)?)
                    } else {
                        None
                    };
                    Ok(vec![needs[0].then(|| g.clone()), gs])
                })
            },
        ))
    }
    /// Embedding lookup: rows of `self` (a [vocab, dim] table) for every id in `ids` (any shape);
    /// the result has shape `ids.shape() + [dim]`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        if self.rank() != 2 {
            bail!(
                "embedding",
                "weight must be [vocab, dim], found shape {:?}",
                self.shape()
            );
        }
        let flat = ids.reshape(&[ids.numel()])?;
        let mut shape = ids.shape().to_vec();
        shape.push(self.shape()[1]);
        // A quantized table (tensor/quantized.rs) dequantizes only the rows looked up, unless
        // the table itself is being trained.
        let frozen = !(self.requires_grad() && crate::autograd::is_grad_enabled());
        if let (Some(q), true, true) = (self.qmatrix(), frozen, !ids.dtype().is_float()) {
            let rows = q.rows();
            let idx = flat
                .to_dtype(DType::I64)?
                .to_vec::<i64>()?
                .into_iter()
                .map(|i| match usize::try_from(i) {
                    Ok(r) if r < rows => Ok(r),
                    _ => Err(crate::error::op_err(
                        "embedding",
                        format!("id {i} is outside the table's {rows} rows"),
                    )),
                })
                .collect::<Result<Vec<usize>>>()?;
            return Tensor::from_vec(q.dequantize_rows(&idx)?, &shape);
        }
        self.index_select(0, &flat)?.reshape(&shape)
    }
}

/// The gradient of `index_select` on a device: `g`'s slices along `dim` summed into `rows`
/// slices by a one-hot product, `onehotᵀ · g` (a fixed order, no atomics).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn index_add_by_matmul(g: &Tensor, dim: usize, index: &Tensor, rows: usize) -> Result<Tensor> {
    let n = index.numel();
    let classes = Tensor::arange(0.0, rows as f64, 1.0, DType::I64)?.to(g.device())?;
    let ids = index
        .to(g.device())?
        .to_dtype(DType::I64)?
        .reshape(&[n, 1])?;
    let onehot = ids.eq(&classes.reshape(&[1, rows])?)?.to_dtype(g.dtype())?;
    // g with `dim` first, the rest flattened: [n, rest].
    let mut perm: Vec<usize> = vec![dim];
    perm.extend((0..g.rank()).filter(|&i| i != dim));
    let moved = g.permute_usize(&perm)?.contiguous()?;
    let rest: Vec<usize> = moved.shape()[1..].to_vec();
    let flat = moved.reshape(&[n, rest.iter().product()])?;
    let summed = onehot.t()?.matmul(&flat)?;
    let mut shape = vec![rows];
    shape.extend(&rest);
    // Back to the original dim order.
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    summed
        .reshape(&shape)?
        .permute_usize(&inverse)?
        .contiguous()
}
