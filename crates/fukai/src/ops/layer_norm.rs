//! Fused layer norm and RMS norm over the last dim, forward and backward: one pass per row for
//! the statistics and the output, one for the input gradient, instead of the mean / sub / square
//! / mean / rsqrt / mul / mul / add chain (eight tensors per call in the composite).

use super::float::{check_float, check_same_dtype, with_contig, wrap, Float};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::parallel::for_each_chunk_mut;
use crate::tensor::{StorageSlice, Tensor};

/// Rows per parallel chunk: fixed, so results do not depend on the thread count.
const ROWS: usize = 64;

/// Normalizes each row of `x` (`[n, d]`): returns the output and the per-row `(mean, rstd)`.
/// `rms` skips the centering (mean reported as 0).
fn forward<T: Float>(
    x: &[T],
    d: usize,
    w: Option<&[T]>,
    b: Option<&[T]>,
    eps: f64,
    rms: bool,
) -> (Vec<T>, Vec<T>) {
    let n = x.len() / d.max(1);
    let mut out = vec![T::ZERO; x.len()];
    let mut stats = vec![T::ZERO; 2 * n];
    let inv_d = T::c(1.0 / d as f64);
    let eps = T::c(eps);
    // Statistics first (cheap, serial), then the output rows in parallel chunks.
    for (r, row) in x.chunks(d).enumerate() {
        let mean = if rms {
            T::ZERO
        } else {
            row.iter().copied().sum::<T>() * inv_d
        };
        let mut var = T::ZERO;
        for &v in row {
            let c = v - mean;
            var += c * c;
        }
        stats[2 * r] = mean;
        stats[2 * r + 1] = T::ONE / (var * inv_d + eps).sqrt();
    }
    for_each_chunk_mut(&mut out, ROWS * d, |ci, chunk| {
        for (k, o) in chunk.chunks_mut(d).enumerate() {
            let r = ci * ROWS + k;
            let (mean, rstd) = (stats[2 * r], stats[2 * r + 1]);
            let row = &x[r * d..(r + 1) * d];
            for j in 0..d {
                let mut y = (row[j] - mean) * rstd;
                if let Some(w) = w {
                    y = y * w[j];
                }
                if let Some(b) = b {
                    y += b[j];
                }
                o[j] = y;
            }
        }
    });
    (out, stats)
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
    let inv_d = T::c(1.0 / d as f64);
    for_each_chunk_mut(&mut gx, ROWS * d, |ci, chunk| {
        for (k, o) in chunk.chunks_mut(d).enumerate() {
            let r = ci * ROWS + k;
            let (mean, rstd) = (stats[2 * r], stats[2 * r + 1]);
            let (xr, gr) = (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            // gy·w summed, and (gy·w)·x̂ summed.
            let (mut s1, mut s2) = (T::ZERO, T::ZERO);
            for j in 0..d {
                let gw = match w {
                    Some(w) => gr[j] * w[j],
                    None => gr[j],
                };
                s1 += gw;
                s2 += gw * (xr[j] - mean) * rstd;
            }
            let (m1, m2) = (if rms { T::ZERO } else { s1 * inv_d }, s2 * inv_d);
            for j in 0..d {
                let gw = match w {
                    Some(w) => gr[j] * w[j],
                    None => gr[j],
                };
                let xhat = (xr[j] - mean) * rstd;
                o[j] = rstd * (gw - m1 - xhat * m2);
            }
        }
    });
    // Parameter gradients: column sums over rows in row order (deterministic).
    let mut gw = vec![T::ZERO; d];
    let mut gb = vec![T::ZERO; d];
    for (r, (xr, gr)) in x.chunks(d).zip(g.chunks(d)).enumerate() {
        let (mean, rstd) = (stats[2 * r], stats[2 * r + 1]);
        for j in 0..d {
            gw[j] += gr[j] * (xr[j] - mean) * rstd;
            gb[j] += gr[j];
        }
    }
    (gx, gw, gb)
}

impl Tensor {
    fn norm_impl(
        &self,
        name: &'static str,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
        rms: bool,
    ) -> Result<Tensor> {
        check_float(name, self)?;
        let Some(&d) = self.shape().last() else {
            bail!(name, "needs at least 1 dim, found a scalar");
        };
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
        let shape = self.shape().to_vec();
        let x = self.detach().contiguous()?;
        let (wt, bt) = (weight.map(|w| w.detach()), bias.map(|b| b.detach()));
        let (storage, layout, stats) = float_dispatch!(self.dtype(), T => {
            let (out, stats) = with_contig::<T, _>(&x, |xv| {
                let wv = wt.as_ref().map(|w| w.to_vec::<T>()).transpose()?;
                let bv = bt.as_ref().map(|b| b.to_vec::<T>()).transpose()?;
                Ok::<_, crate::Error>(forward::<T>(xv, d, wv.as_deref(), bv.as_deref(), eps, rms))
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

    /// RMS normalization over the last dim (fused): `x / sqrt(mean(x²) + eps) · weight`.
    pub fn rms_norm(&self, weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        self.norm_impl("rms_norm", weight, None, eps, true)
    }
}
