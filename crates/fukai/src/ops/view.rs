//! Views: new layouts over the same storage (no copy), each with its gradient.

use crate::bail;
use crate::error::Result;
use crate::tensor::{
    checked_numel, contiguous_strides, normalize_dim, normalize_dim_nonscalar, Layout, Storage,
    Tensor,
};
use std::sync::Arc;

impl Tensor {
    /// A tensor over this one's storage with a new layout, recorded with `backward`.
    fn view_as(
        &self,
        name: &'static str,
        layout: Layout,
        backward: impl Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static,
    ) -> Tensor {
        Tensor::op_result(name, self.storage().clone(), layout, &[self], move || {
            Box::new(move |g, _| Ok(vec![Some(backward(g)?)]))
        })
    }

    /// Same elements, new shape. A view when contiguous, a copy otherwise.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let t = Tensor::arange(0.0, 6.0, 1.0, DType::F32)?;
    /// let m = t.reshape(&[2, 3])?;
    /// assert_eq!(m.shape(), &[2, 3]);
    /// assert_eq!(m.to_vec::<f32>()?, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    /// assert!(t.reshape(&[4, 2]).is_err());
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let Ok(n) = checked_numel("reshape", shape) else {
            bail!(
                "reshape",
                "cannot reshape {:?} into {shape:?}: its element count overflows usize",
                self.shape()
            );
        };
        if n != self.numel() {
            bail!(
                "reshape",
                "cannot reshape {:?} ({} elements) into {shape:?} ({n} elements)",
                self.shape(),
                self.numel()
            );
        }
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let src = if self.is_contiguous() {
            self.clone()
        } else {
            self.contiguous()?
        };
        let layout = Layout::new(
            shape.to_vec(),
            contiguous_strides(shape),
            src.layout().offset(),
        );
        let orig = self.shape().to_vec();
        Ok(src.view_as("reshape", layout, move |g| g.reshape(&orig)))
    }
    /// Reshape where one dim may be -1 (inferred), as in PyTorch's `view(-1, n)`.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let t = Tensor::zeros(&[2, 3, 4], DType::F32)?;
    /// assert_eq!(t.reshape_infer(&[-1, 4])?.shape(), &[6, 4]); // PyTorch's view(-1, 4)
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn reshape_infer(&self, shape: &[isize]) -> Result<Tensor> {
        let known = shape
            .iter()
            .filter(|&&d| d >= 0)
            .try_fold(1usize, |n, &d| n.checked_mul(d as usize));
        let holes = shape.iter().filter(|&&d| d < 0).count();
        let Some(known) = known else {
            bail!(
                "reshape",
                "cannot reshape {:?} into {shape:?}: its element count overflows usize",
                self.shape()
            );
        };
        if holes > 1
            || shape.iter().any(|&d| d < -1)
            || (holes == 1 && (known == 0 || !self.numel().is_multiple_of(known)))
        {
            bail!(
                "reshape",
                "cannot reshape {:?} into {shape:?}",
                self.shape()
            );
        }
        let dims: Vec<usize> = shape
            .iter()
            .map(|&d| {
                if d < 0 {
                    self.numel() / known
                } else {
                    d as usize
                }
            })
            .collect();
        self.reshape(&dims)
    }
    /// A contiguous copy when this tensor is a strided view; itself otherwise.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let (storage, layout) = if crate::tensor::on_gpu(&[self]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                crate::backend::gpu::elementwise::copy(self)?
            }
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
            unreachable!()
        } else {
            let data = self.copy_contiguous_storage();
            (
                Arc::new(Storage::new(data)),
                Layout::contiguous(self.shape()),
            )
        };
        Ok(Tensor::op_result(
            "contiguous",
            storage,
            layout,
            &[self],
            || Box::new(|g, _| Ok(vec![Some(g.clone())])),
        ))
    }
    pub(crate) fn permute_usize(&self, perm: &[usize]) -> Result<Tensor> {
        let r = self.rank();
        let mut seen = vec![false; r];
        if perm.len() != r
            || perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            bail!(
                "permute",
                "{perm:?} is not a permutation of the {r} dims of {:?}",
                self.shape()
            );
        }
        let l = self.layout();
        let layout = Layout::new(
            perm.iter().map(|&p| l.shape()[p]).collect(),
            perm.iter().map(|&p| l.strides()[p]).collect(),
            l.offset(),
        );
        let mut inv = vec![0; r];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        Ok(self.view_as("permute", layout, move |g| g.permute_usize(&inv)))
    }
    /// Reorders dims (a view).
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let img = Tensor::zeros(&[8, 32, 32, 3], DType::F32)?; // NHWC
    /// let nchw = img.permute(&[0, 3, 1, 2])?;
    /// assert_eq!(nchw.shape(), &[8, 3, 32, 32]);
    /// assert!(!nchw.is_contiguous() && nchw.contiguous()?.is_contiguous());
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn permute(&self, perm: &[isize]) -> Result<Tensor> {
        let p: Result<Vec<usize>> = perm
            .iter()
            .map(|&d| normalize_dim("permute", d, self.rank()))
            .collect();
        self.permute_usize(&p?)
    }
    /// Swaps two dims (a view).
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    /// let tt = t.transpose(0, 1)?;
    /// assert_eq!(tt.shape(), &[3, 2]);
    /// assert_eq!(tt.to_vec::<f32>()?, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// assert_eq!(t.transpose(-1, -2)?.to_vec::<f32>()?, t.t()?.to_vec::<f32>()?);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor> {
        let (a, b) = (
            normalize_dim("transpose", d0, self.rank())?,
            normalize_dim("transpose", d1, self.rank())?,
        );
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        // A 0-dim tensor accepts dims 0 / -1 and has nothing to swap.
        if a != b {
            perm.swap(a, b);
        }
        self.permute_usize(&perm)
    }
    /// Swaps the last two dims (matrix transpose, a view).
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            bail!("t", "needs at least 2 dims, found shape {:?}", self.shape());
        }
        self.transpose(-2, -1)
    }
    /// `len` elements of `dim` starting at `start` (a view).
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let t = Tensor::arange(0.0, 10.0, 1.0, DType::F32)?;
    /// // PyTorch's t[2:5]: a view, no copy.
    /// let part = t.narrow(0, 2, 3)?;
    /// assert_eq!(part.to_vec::<f32>()?, [2.0, 3.0, 4.0]);
    /// assert!(part.shares_storage(&t));
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        let d = normalize_dim_nonscalar("narrow", dim, self.shape())?;
        let size = self.shape()[d];
        let end = start.checked_add(len);
        if end.is_none_or(|e| e > size) {
            let end = end.map_or(format!("{start}+{len}"), |e| e.to_string());
            bail!(
                "narrow",
                "range {start}..{end} out of bounds for dim {d} of size {size} (shape {:?})",
                self.shape()
            );
        }
        let l = self.layout();
        let mut shape = l.shape().to_vec();
        shape[d] = len;
        let layout = Layout::new(
            shape,
            l.strides().to_vec(),
            l.offset() + start * l.strides()[d],
        );
        let full = self.shape().to_vec();
        Ok(self.view_as("narrow", layout, move |g| {
            // Zero gradient outside the window.
            let mut parts = Vec::with_capacity(3);
            let mut zshape = full.clone();
            if start > 0 {
                zshape[d] = start;
                parts.push(Tensor::zeros_on(&zshape, g.dtype(), g.device())?);
            }
            parts.push(g.clone());
            if start + len < full[d] {
                zshape[d] = full[d] - start - len;
                parts.push(Tensor::zeros_on(&zshape, g.dtype(), g.device())?);
            }
            Tensor::cat(&parts, d as isize)
        }))
    }
    /// Broadcasts to `shape` without copying (stride 0 on expanded dims).
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let layout = self.layout().broadcast_to("expand", shape)?;
        checked_numel("expand", shape)?;
        let orig = self.shape().to_vec();
        Ok(self.view_as("expand", layout, move |g| g.sum_to_shape(&orig)))
    }
    /// Inserts a size-1 dim at `dim` (a view).
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let v = Tensor::zeros(&[3], DType::F32)?;
    /// assert_eq!(v.unsqueeze(0)?.shape(), &[1, 3]);
    /// assert_eq!(v.unsqueeze(-1)?.shape(), &[3, 1]);
    /// assert_eq!(v.unsqueeze(0)?.squeeze(0)?.shape(), &[3]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let r = self.rank() as isize + 1;
        let d = if dim < 0 { dim + r } else { dim };
        if d < 0 || d >= r {
            bail!(
                "unsqueeze",
                "dim {dim} out of range for a result of rank {r} (input shape {:?})",
                self.shape()
            );
        }
        let mut shape = self.shape().to_vec();
        shape.insert(d as usize, 1);
        self.reshape_view(shape)
    }
    /// Removes dim `dim`, which must have size 1 (a view).
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let d = normalize_dim("squeeze", dim, self.rank())?;
        if self.rank() == 0 {
            return Ok(self.clone());
        }
        if self.shape()[d] != 1 {
            bail!(
                "squeeze",
                "dim {d} has size {} (shape {:?}), expected 1",
                self.shape()[d],
                self.shape()
            );
        }
        let mut shape = self.shape().to_vec();
        shape.remove(d);
        self.reshape_view(shape)
    }
    /// Changes only size-1 dims: always a view, even for strided tensors.
    fn reshape_view(&self, shape: Vec<usize>) -> Result<Tensor> {
        let l = self.layout();
        // Strides of the surviving dims are kept; size-1 dims get any stride.
        let mut strides = Vec::with_capacity(shape.len());
        let mut src = l
            .shape()
            .iter()
            .zip(l.strides())
            .filter(|(&d, _)| d != 1)
            .map(|(_, &s)| s);
        for &d in &shape {
            strides.push(if d == 1 { 0 } else { src.next().unwrap_or(0) });
        }
        let layout = Layout::new(shape, strides, l.offset());
        let orig = self.shape().to_vec();
        Ok(self.view_as("reshape", layout, move |g| g.reshape(&orig)))
    }
    /// Merges dims `start..=end` into one.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let t = Tensor::zeros(&[2, 3, 4, 5], DType::F32)?;
    /// assert_eq!(t.flatten(1, -1)?.shape(), &[2, 60]);
    /// assert_eq!(t.flatten(1, 2)?.shape(), &[2, 12, 5]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape(&[1]);
        }
        let (s, e) = (
            normalize_dim("flatten", start, self.rank())?,
            normalize_dim("flatten", end, self.rank())?,
        );
        if s > e {
            bail!(
                "flatten",
                "start dim {s} is after end dim {e} (shape {:?})",
                self.shape()
            );
        }
        let mut shape = self.shape()[..s].to_vec();
        shape.push(self.shape()[s..=e].iter().product());
        shape.extend_from_slice(&self.shape()[e + 1..]);
        self.reshape(&shape)
    }
    /// All elements in one dim.
    pub fn flatten_all(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])
    }
}
