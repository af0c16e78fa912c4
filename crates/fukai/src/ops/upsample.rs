//! Resizing `[N, C, L]`, `[N, C, H, W]` and `[N, C, D, H, W]` tensors by nearest or (bi/tri)linear
//! interpolation, with PyTorch's `F.interpolate` index rules.
//!
//! Both modes are separable: resizing one axis at a time (width, then height, then depth) does
//! exactly the arithmetic of PyTorch's nested formula `h0·(w0·x00 + w1·x01) + h1·(…)`, and each
//! output of an axis pass reads at most two inputs with fixed weights. The backward pass runs the
//! transposed passes in reverse order; each scatters its gradient plane by plane in output order,
//! so the sums never depend on the thread count.

use super::float::{check_float, with_contig, wrap, Float};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::parallel::{for_each_chunk_mut, PAR_THRESHOLD};
use crate::tensor::Tensor;

/// How [`Tensor::interpolate`] computes an output from the inputs around its source position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Interpolation {
    /// The input at `floor(dst * in / out)` (PyTorch's legacy `'nearest'`).
    #[default]
    Nearest,
    /// Linear, bilinear or trilinear (by the input's rank). With `align_corners` the corner
    /// samples of input and output coincide; without, their pixel areas do (PyTorch's default).
    Linear {
        /// PyTorch's `align_corners`.
        align_corners: bool,
    },
}

/// One linear output: `w_lo · x[lo] + w_hi · x[hi]`.
#[derive(Clone, Copy)]
struct Tap<T> {
    lo: usize,
    hi: usize,
    w_lo: T,
    w_hi: T,
}

/// What every output position of one axis reads.
enum Taps<T> {
    Nearest(Vec<usize>),
    Linear(Vec<Tap<T>>),
}

impl<T: Float> Taps<T> {
    /// PyTorch's source indices for `len -> out`. The index arithmetic runs in the precision
    /// PyTorch uses (f32 for nearest whatever the dtype, the dtype for linear), so outputs
    /// match it bit for bit where the rounding of a source position decides the index.
    fn new(len: usize, out: usize, mode: Interpolation) -> Taps<T> {
        match mode {
            Interpolation::Nearest => {
                let scale = len as f32 / out as f32;
                let src = |d: usize| ((d as f32 * scale).floor() as usize).min(len - 1);
                Taps::Nearest((0..out).map(src).collect())
            }
            Interpolation::Linear { align_corners } => {
                let (lenf, outf) = (T::c(len as f64), T::c(out as f64));
                let scale = match (align_corners, out > 1) {
                    (true, true) => (lenf - T::ONE) / (outf - T::ONE),
                    (true, false) => T::ZERO,
                    (false, _) => lenf / outf,
                };
                let half = T::c(0.5);
                let tap = |d: usize| {
                    let d = T::c(d as f64);
                    let src = if align_corners {
                        scale * d
                    } else {
                        let s = scale * (d + half) - half;
                        if s < T::ZERO {
                            T::ZERO
                        } else {
                            s
                        }
                    };
                    // `src` is non-negative, so truncation is PyTorch's floor.
                    let lo = (src.to_f64() as usize).min(len - 1);
                    let w_hi = src - T::c(lo as f64);
                    Tap {
                        lo,
                        hi: (lo + 1).min(len - 1),
                        w_lo: T::ONE - w_hi,
                        w_hi,
                    }
                };
                Taps::Linear((0..out).map(tap).collect())
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Taps::Nearest(v) => v.len(),
            Taps::Linear(v) => v.len(),
        }
    }
}

/// One axis pass over data viewed as `[outer, len, inner]`, giving `[outer, taps.len(), inner]`.
struct Pass {
    outer: usize,
    len: usize,
    inner: usize,
}

impl Pass {
    /// Planes per parallel task, so small planes are batched rather than spawned one by one.
    fn per_task(&self, plane: usize) -> usize {
        (PAR_THRESHOLD / plane.max(1)).max(1)
    }

    fn forward<T: Float>(&self, x: &[T], taps: &Taps<T>) -> Vec<T> {
        let inner = self.inner;
        let (plane_in, plane_out) = (self.len * inner, taps.len() * inner);
        let mut y = vec![T::ZERO; self.outer * plane_out];
        if y.is_empty() {
            return y;
        }
        let per = self.per_task(plane_out);
        for_each_chunk_mut(&mut y, per * plane_out, |ci, chunk| {
            for (k, yp) in chunk.chunks_mut(plane_out).enumerate() {
                let xp = &x[(ci * per + k) * plane_in..][..plane_in];
                let row = |i: usize| &xp[i * inner..][..inner];
                match taps {
                    Taps::Nearest(idx) => {
                        for (o, &i) in yp.chunks_mut(inner).zip(idx) {
                            o.copy_from_slice(row(i));
                        }
                    }
                    Taps::Linear(ts) => crate::simd::run(
                        #[inline(always)]
                        || {
                            for (o, t) in yp.chunks_mut(inner).zip(ts) {
                                for ((o, &a), &b) in o.iter_mut().zip(row(t.lo)).zip(row(t.hi)) {
                                    *o = t.w_lo * a + t.w_hi * b;
                                }
                            }
                        },
                    ),
                }
            }
        });
        y
    }

    /// The transpose of [`Pass::forward`]: every output's gradient goes back to the inputs it
    /// read, scattered in output order within each plane.
    fn backward<T: Float>(&self, g: &[T], taps: &Taps<T>) -> Vec<T> {
        let inner = self.inner;
        let (plane_in, plane_out) = (self.len * inner, taps.len() * inner);
        let mut dx = vec![T::ZERO; self.outer * plane_in];
        if dx.is_empty() {
            return dx;
        }
        let per = self.per_task(plane_in.max(plane_out));
        for_each_chunk_mut(&mut dx, per * plane_in, |ci, chunk| {
            for (k, dp) in chunk.chunks_mut(plane_in).enumerate() {
                let gp = &g[(ci * per + k) * plane_out..][..plane_out];
                let add = |dp: &mut [T], i: usize, w: Option<T>, gr: &[T]| {
                    let d = &mut dp[i * inner..][..inner];
                    match w {
                        None => d.iter_mut().zip(gr).for_each(|(d, &g)| *d += g),
                        Some(w) => d.iter_mut().zip(gr).for_each(|(d, &g)| *d += w * g),
                    }
                };
                crate::simd::run(
                    #[inline(always)]
                    || match taps {
                        Taps::Nearest(idx) => {
                            for (gr, &i) in gp.chunks(inner).zip(idx) {
                                add(dp, i, None, gr);
                            }
                        }
                        Taps::Linear(ts) => {
                            for (gr, t) in gp.chunks(inner).zip(ts) {
                                add(dp, t.lo, Some(t.w_lo), gr);
                                add(dp, t.hi, Some(t.w_hi), gr);
                            }
                        }
                    },
                )
            }
        });
        dx
    }
}

/// A resize of `planes` planes from spatial size `from` to `to` (both padded to three axes
/// with leading 1s; depth, height, width).
#[derive(Clone)]
struct Resize {
    planes: usize,
    from: [usize; 3],
    to: [usize; 3],
    mode: Interpolation,
}

impl Resize {
    /// The passes to run, width first, each with the axis it resizes; axes whose size does
    /// not change are skipped (both modes are the identity there).
    fn passes(&self) -> Vec<(usize, Pass)> {
        let mut shape = self.from;
        let mut passes = Vec::new();
        for axis in (0..3).rev() {
            if shape[axis] != self.to[axis] {
                passes.push((
                    axis,
                    Pass {
                        outer: self.planes * shape[..axis].iter().product::<usize>(),
                        len: shape[axis],
                        inner: shape[axis + 1..].iter().product(),
                    },
                ));
                shape[axis] = self.to[axis];
            }
        }
        passes
    }

    fn taps<T: Float>(&self, axis: usize) -> Taps<T> {
        Taps::new(self.from[axis], self.to[axis], self.mode)
    }

    fn forward<T: Float>(&self, x: &[T]) -> Vec<T> {
        let mut cur = x.to_vec();
        for (axis, pass) in self.passes() {
            cur = pass.forward(&cur, &self.taps::<T>(axis));
        }
        cur
    }

    fn backward<T: Float>(&self, g: &[T]) -> Vec<T> {
        let mut cur = g.to_vec();
        for (axis, pass) in self.passes().into_iter().rev() {
            cur = pass.backward(&cur, &self.taps::<T>(axis));
        }
        cur
    }
}

/// Checks `t` and `size` and resizes, recording the gradient under `op`.
fn resize(op: &'static str, t: &Tensor, size: &[usize], mode: Interpolation) -> Result<Tensor> {
    check_float(op, t)?;
    let dims = size.len();
    if !(1..=3).contains(&dims) {
        bail!(
            op,
            "needs 1, 2 or 3 output sizes (for [N, C, L], [N, C, H, W] or [N, C, D, H, W]), found {size:?}"
        );
    }
    let shape = t.shape();
    if t.rank() != dims + 2 {
        bail!(
            op,
            "{dims} output size(s) {size:?} need an input of rank {} ([N, C] + {dims} spatial dims), found shape {shape:?}",
            dims + 2
        );
    }
    if shape[2..].contains(&0) || size.contains(&0) {
        bail!(
            op,
            "input and output spatial sizes must be non-zero, found input {shape:?} and size {size:?}"
        );
    }
    let mut out_shape = shape[..2].to_vec();
    out_shape.extend_from_slice(size);
    if out_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .is_none()
    {
        bail!(op, "output shape {out_shape:?} overflows the element count");
    }
    let pad = |s: &[usize]| {
        let mut p = [1; 3];
        p[3 - dims..].copy_from_slice(s);
        p
    };
    let plan = Resize {
        planes: shape[0] * shape[1],
        from: pad(&shape[2..]),
        to: pad(size),
        mode,
    };
    let (dtype, in_shape) = (t.dtype(), shape.to_vec());
    let (storage, layout) = float_dispatch!(dtype, T => with_contig::<T, _>(t, |x| {
        wrap(plan.forward(x), &out_shape)
    }));
    Ok(Tensor::op_result(op, storage, layout, &[t], move || {
        Box::new(move |gy, _| {
            let (s, l) = float_dispatch!(dtype, T => with_contig::<T, _>(gy, |g| {
                wrap(plan.backward(g), &in_shape)
            }));
            Ok(vec![Some(Tensor::from_parts(s, l))])
        })
    }))
}

impl Tensor {
    /// Resizes the spatial dims of `[N, C, L]`, `[N, C, H, W]` or `[N, C, D, H, W]` to `size`
    /// (one entry per spatial dim), as PyTorch's `F.interpolate(x, size=size, mode=...)` with
    /// mode `'nearest'` or `'linear'`/`'bilinear'`/`'trilinear'`. Differentiable in the input.
    ///
    /// ```
    /// use fukai::{Interpolation, Tensor};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2])?;
    /// let near = x.interpolate(&[3, 4], Interpolation::Nearest)?;
    /// assert_eq!(near.to_vec::<f32>()?, [1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4.]);
    /// let lin = x.interpolate(&[3, 3], Interpolation::Linear { align_corners: true })?;
    /// assert_eq!(lin.to_vec::<f32>()?, [1., 1.5, 2., 2., 2.5, 3., 3., 3.5, 4.]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn interpolate(&self, size: &[usize], mode: Interpolation) -> Result<Tensor> {
        resize("interpolate", self, size, mode)
    }

    /// [`Tensor::interpolate`] to `in * scale` along each spatial dim (PyTorch's
    /// `scale_factor` with integer factors, which gives the same source indices).
    pub fn upsample(&self, scale: &[usize], mode: Interpolation) -> Result<Tensor> {
        const OP: &str = "upsample";
        let shape = self.shape();
        if scale.len() + 2 != shape.len() || !(1..=3).contains(&scale.len()) {
            bail!(
                OP,
                "needs one scale per spatial dim of [N, C, L], [N, C, H, W] or [N, C, D, H, W], found scale {scale:?} for shape {shape:?}"
            );
        }
        if scale.contains(&0) {
            bail!(OP, "scale factors must be positive, found {scale:?}");
        }
        let size = shape[2..]
            .iter()
            .zip(scale)
            .map(|(&d, &s)| d.checked_mul(s))
            .collect::<Option<Vec<_>>>();
        match size {
            Some(size) => resize(OP, self, &size, mode),
            None => bail!(
                OP,
                "scale {scale:?} overflows the size of spatial dims {:?}",
                &shape[2..]
            ),
        }
    }
}
