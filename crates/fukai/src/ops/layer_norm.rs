//! Fused layer norm and RMS norm over the last dim, forward and backward: one pass per row for
//! the statistics and the output, one for the input gradient, instead of the mean / sub / square
//! / mean / rsqrt / mul / mul / add chain (eight tensors per call in the composite). For
//! inference, a residual sum and the layer norm after it (`LN(x + r)`, after every sublayer of
//! a post-norm Transformer such as BERT) run as one pass that never writes the sum out.

use super::float::{check_same_dtype, with_contig, wrap, Float};
use super::lanes::{lane_centered, lane_sum, lane_sum2};
use super::matmul::SendPtr as Ptr;
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::parallel::{build_uninit, for_each_chunk_mut};
use crate::simd;
use crate::tensor::{StorageSlice, Tensor};
use std::mem::MaybeUninit;

/// Rows per parallel chunk: fixed, so results do not depend on the thread count.
const ROWS: usize = 64;

/// `(mean, 1/sqrt(var + eps))` of one row of length `d`; `rms` skips the centering (mean 0).
///
/// The mean is corrected by the mean of the residuals `x - m0` (the corrected two-pass
/// algorithm): a constant row then gets its value back exactly, so its output and gradient are
/// exactly 0, where `sum · (1/d)` alone is off by an ulp and `(x - mean) · rstd` magnifies that
/// by up to 1/sqrt(eps). The residual sums share the pass that computes the variance.
#[inline(always)]
fn row_stats<T: Float>(row: &[T], d: T, eps: T, rms: bool) -> (T, T) {
    let (mean, var) = if rms {
        (T::ZERO, lane_sum(row, |v| v * v) / d)
    } else {
        let m0 = lane_sum(row, |v| v) / d;
        let (s1, s2) = lane_centered(row, m0);
        let var = (s2 - s1 * s1 / d) / d;
        (m0 + s1 / d, if var > T::ZERO { var } else { T::ZERO })
    };
    (mean, T::ONE / (var + eps).sqrt())
}

/// `o = (x - mean) · rstd · w + b` for one row, every element written; the affine variants are
/// separate loops so each vectorizes without a branch per element.
#[inline(always)]
fn normalize_row<T: Float>(
    x: &[T],
    o: &mut [MaybeUninit<T>],
    (mean, rstd): (T, T),
    w: Option<&[T]>,
    b: Option<&[T]>,
) {
    match (w, b) {
        (Some(w), Some(b)) => {
            for (((o, &x), &w), &b) in o.iter_mut().zip(x).zip(w).zip(b) {
                o.write((x - mean) * rstd * w + b);
            }
        }
        (Some(w), None) => {
            for ((o, &x), &w) in o.iter_mut().zip(x).zip(w) {
                o.write((x - mean) * rstd * w);
            }
        }
        (None, Some(b)) => {
            for ((o, &x), &b) in o.iter_mut().zip(x).zip(b) {
                o.write((x - mean) * rstd + b);
            }
        }
        (None, None) => {
            for (o, &x) in o.iter_mut().zip(x) {
                o.write((x - mean) * rstd);
            }
        }
    }
}

/// Normalizes each row of `x` (`[n, d]`), or of `x + r` when `residual` holds `r` (as long as
/// `x`): returns the output and the per-row `(mean, rstd)`. `rms` skips the centering (mean
/// reported as 0).
fn forward<T: Float>(
    x: &[T],
    residual: Option<&[T]>,
    d: usize,
    (w, b): (Option<&[T]>, Option<&[T]>),
    eps: f64,
    rms: bool,
) -> (Vec<T>, Vec<T>) {
    // The output rows are written whole only if the affine parameters are whole rows too.
    assert!(
        [w, b].iter().flatten().all(|p| p.len() == d)
            && x.len().is_multiple_of(d.max(1))
            && residual.is_none_or(|r| r.len() == x.len()),
        "layer_norm: weight or bias not of length {d}, input not whole rows, or a residual of \
         another length"
    );
    let n = x.len() / d.max(1);
    let mut stats = vec![T::ZERO; 2 * n];
    let (dt, eps) = (T::c(d as f64), T::c(eps));
    let st = Ptr(stats.as_mut_ptr());
    // The output starts uninitialized: every row is written whole (clearing it first was a
    // pass over every element, 1.5 MB per MiniLM layer norm on 8 x 128 tokens).
    let fill = |ci: usize, chunk: &mut [MaybeUninit<T>]| {
        // The row's sum with the residual, held in cache: the composite's `add` rounds each
        // element the same way, so the statistics and the output are its bits.
        let mut sum = vec![T::ZERO; if residual.is_some() { d } else { 0 }];
        simd::run(
            #[inline(always)]
            || {
                for (k, o) in chunk.chunks_mut(d.max(1)).enumerate() {
                    let r = ci * ROWS + k;
                    let mut row = &x[r * d..(r + 1) * d];
                    if let Some(res) = residual {
                        for ((s, &a), &b) in sum.iter_mut().zip(row).zip(&res[r * d..]) {
                            *s = a + b;
                        }
                        row = &sum;
                    }
                    let s = row_stats(row, dt, eps, rms);
                    // SAFETY: row r's two statistics belong to this chunk alone.
                    unsafe {
                        *st.get().add(2 * r) = s.0;
                        *st.get().add(2 * r + 1) = s.1;
                    }
                    normalize_row(row, o, s, w, b);
                }
            },
        )
    };
    // SAFETY: `normalize_row` writes every element of each row, and the pieces are whole rows.
    let out = unsafe { build_uninit(x.len(), ROWS * d.max(1), fill) };
    (out, stats)
}

/// Input gradient of one row: `rstd · (gw - mean(gw) - x̂ · mean(gw · x̂))` with `gw = g · w`.
#[inline(always)]
fn grad_row<T: Float>(
    x: &[T],
    g: &[T],
    o: &mut [T],
    (mean, rstd): (T, T),
    w: Option<&[T]>,
    d: T,
    rms: bool,
) {
    // gw first, into the output row, so the two sums and the final pass read it once each.
    match w {
        Some(w) => {
            for ((o, &g), &w) in o.iter_mut().zip(g).zip(w) {
                *o = g * w;
            }
        }
        None => o.copy_from_slice(g),
    }
    let s1 = if rms { T::ZERO } else { lane_sum(o, |v| v) };
    let s2 = lane_sum2(o, x, |gw, x| gw * ((x - mean) * rstd));
    // Divided rather than scaled by 1/d: a uniform gradient then has m1 == g exactly.
    let (m1, m2) = (s1 / d, s2 / d);
    for (o, &x) in o.iter_mut().zip(x) {
        let xhat = (x - mean) * rstd;
        *o = rstd * (*o - m1 - xhat * m2);
    }
}

/// Gradients of x, weight and bias from the saved input and row statistics.
#[allow(clippy::type_complexity)]
fn backward<T: Float>(
    x: &[T],
    g: &[T],
    stats: &[T],
    d: usize,
    w: Option<&[T]>,
    rms: bool,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut gx = vec![T::ZERO; x.len()];
    let dt = T::c(d as f64);
    for_each_chunk_mut(&mut gx, ROWS * d, |ci, chunk| {
        simd::run(
            #[inline(always)]
            || {
                for (k, o) in chunk.chunks_mut(d).enumerate() {
                    let r = ci * ROWS + k;
                    let s = (stats[2 * r], stats[2 * r + 1]);
                    let (xr, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
                    grad_row(xr, gr, o, s, w, dt, rms);
                }
            },
        )
    });
    // Parameter gradients: column sums over rows in row order (deterministic).
    let mut gw = vec![T::ZERO; d];
    let mut gb = vec![T::ZERO; d];
    simd::run(
        #[inline(always)]
        || {
            for (r, (xr, gr)) in x.chunks(d).zip(g.chunks(d)).enumerate() {
                let (mean, rstd) = (stats[2 * r], stats[2 * r + 1]);
                for (((gw, gb), &x), &g) in gw.iter_mut().zip(gb.iter_mut()).zip(xr).zip(gr) {
                    *gw += g * ((x - mean) * rstd);
                    *gb += g;
                }
            }
        },
    );
    (gx, gw, gb)
}

impl Tensor {
    /// The same normalization from primitive ops, differentiated by autograd: the device path
    /// until a fused device kernel exists.
    fn norm_composite(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
        rms: bool,
    ) -> Result<Tensor> {
        let centered = if rms {
            self.clone()
        } else {
            self.sub(&self.mean(&[-1], true)?)?
        };
        let var = centered.square()?.mean(&[-1], true)?;
        let mut y = centered.mul(&var.add_scalar(eps)?.rsqrt()?)?;
        if let Some(w) = weight {
            y = y.mul(w)?;
        }
        if let Some(b) = bias {
            y = y.add(b)?;
        }
        Ok(y)
    }

    /// Checks the input and the affine parameters; returns the normalized size `d`.
    fn norm_checks(
        &self,
        name: &'static str,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
    ) -> Result<usize> {
        super::float::check_float_on(name, self)?;
        let Some(&d) = self.shape().last() else {
            bail!(name, "needs at least 1 dim, found a scalar");
        };
        if d == 0 {
            bail!(
                name,
                "the normalized last dim has size 0 (shape {:?})",
                self.shape()
            );
        }
        for (what, p) in [("weight", weight), ("bias", bias)] {
            if let Some(p) = p {
                check_same_dtype(name, self, p)?;
                if p.shape() != [d] {
                    bail!(
                        name,
                        "{what} must be [{d}] for input {:?}, found {:?}",
                        self.shape(),
                        p.shape()
                    );
                }
            }
        }
        Ok(d)
    }

    fn norm_impl(
        &self,
        name: &'static str,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
        rms: bool,
    ) -> Result<Tensor> {
        let d = self.norm_checks(name, weight, bias)?;
        if crate::tensor::on_gpu(&[self]) {
            return self.norm_composite(weight, bias, eps, rms);
        }
        self.cpu_only(name)?;
        let shape = self.shape().to_vec();
        let x = self.detach().contiguous()?;
        let (wt, bt) = (weight.map(|w| w.detach()), bias.map(|b| b.detach()));
        let (storage, layout, stats) = float_dispatch!(self.dtype(), T => {
            let (out, stats) = with_contig::<T, _>(&x, |xv| {
                let wv = wt.as_ref().map(|w| w.to_vec::<T>()).transpose()?;
                let bv = bt.as_ref().map(|b| b.to_vec::<T>()).transpose()?;
                Ok::<_, crate::Error>(forward::<T>(xv, None, d, (wv.as_deref(), bv.as_deref()), eps, rms))
            })?;
            let (s, l) = wrap(out, &shape);
            (s, l, T::wrap(stats))
        });
        let mut inputs: Vec<&Tensor> = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        let (has_w, has_b) = (weight.is_some(), bias.is_some());
        Ok(Tensor::op_result(
            name,
            storage,
            layout,
            &inputs,
            move || {
                Box::new(move |g, needs| {
                    let (gx, gw, gb) = float_dispatch!(g.dtype(), T => {
                        let st = T::slice(&stats).expect("dtype");
                        let wv = wt.as_ref().map(|w| w.to_vec::<T>()).transpose()?;
                        let (gx, gw, gb) = with_contig::<T, _>(&x, |xv| {
                            with_contig::<T, _>(g, |gv| backward::<T>(xv, gv, st, d, wv.as_deref(), rms))
                        });
                        (
                            Tensor::from_vec(gx, &shape)?,
                            Tensor::from_vec(gw, &[d])?,
                            Tensor::from_vec(gb, &[d])?,
                        )
                    });
                    let mut out = vec![needs[0].then_some(gx)];
                    if has_w {
                        out.push(needs[out.len()].then_some(gw));
                    }
                    if has_b {
                        out.push(needs[out.len()].then_some(gb));
                    }
                    Ok(out)
                })
            },
        ))
    }

    /// Layer normalization over the last dim (fused): `(x - mean) / sqrt(var + eps) · weight +
    /// bias`, with the biased variance as in PyTorch. `weight` and `bias` are `[d]`.
    pub fn layer_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        self.norm_impl("layer_norm", weight, bias, eps, false)
    }

    /// `(self + residual).layer_norm(weight, bias, eps)`: the residual connection and the layer
    /// norm after it (ONNX Runtime's SkipLayerNormalization). Where nothing records a gradient
    /// and both are CPU tensors of one shape and dtype, one pass per row that does not write
    /// the sum out, with the composite's bits; otherwise the composite itself.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let x = Tensor::randn(&[2, 3, 8], DType::F32)?;
    /// let r = Tensor::randn(&[2, 3, 8], DType::F32)?;
    /// let fused = x.add_layer_norm(&r, None, None, 1e-5)?;
    /// let plain = x.add(&r)?.layer_norm(None, None, 1e-5)?;
    /// assert_eq!(fused.to_vec::<f32>()?, plain.to_vec::<f32>()?);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn add_layer_norm(
        &self,
        residual: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let mut all = vec![self, residual];
        all.extend(weight);
        all.extend(bias);
        let fused = self.shape() == residual.shape()
            && self.dtype() == residual.dtype()
            && !Tensor::records_backward(&all)
            && !crate::tensor::on_gpu(&all);
        if !fused {
            return self.add(residual)?.layer_norm(weight, bias, eps);
        }
        let d = self.norm_checks("add_layer_norm", weight, bias)?;
        self.cpu_only("add_layer_norm")?;
        residual.cpu_only("add_layer_norm")?;
        let shape = self.shape().to_vec();
        let (x, r) = (self.contiguous()?, residual.contiguous()?);
        let (storage, layout) = float_dispatch!(self.dtype(), T => {
            let wv = weight.map(|w| w.to_vec::<T>()).transpose()?;
            let bv = bias.map(|b| b.to_vec::<T>()).transpose()?;
            let (out, _) = with_contig::<T, _>(&x, |xv| {
                with_contig::<T, _>(&r, |rv| {
                    forward::<T>(xv, Some(rv), d, (wv.as_deref(), bv.as_deref()), eps, false)
                })
            });
            wrap(out, &shape)
        });
        Ok(Tensor::from_parts(storage, layout))
    }

    /// RMS normalization over the last dim (fused): `x / sqrt(mean(x²) + eps) · weight`.
    pub fn rms_norm(&self, weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        self.norm_impl("rms_norm", weight, None, eps, true)
    }
}
