//! Fused batch normalization over dim 1 with the batch's own statistics (training mode): two
//! reads of the input for the statistics and one for the output, and one pass each for the
//! channel sums and the input gradient in backward, instead of the composite's mean / var / sub
//! / rsqrt / mul / add chain (about fifteen full-size tensors per call, forward and backward).
//!
//! Statistics are summed per channel, sample by sample, in a fixed order on one thread each, so
//! the result does not depend on the thread count.

use super::float::{check_float, check_same_dtype, with_contig, Float};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::parallel::{for_each_chunk_mut, map_range_if, MIN_PAR_ELEMS};
use crate::tensor::Tensor;

/// Elements per parallel chunk of the elementwise passes (whole planes, at least one).
const CHUNK_ELEMS: usize = 1 << 14;

/// `[N, C, S]` view of an input of rank 2..=4 (S = product of the spatial dims, 1 for `[N, C]`).
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    s: usize,
}

impl Dims {
    fn count(&self) -> usize {
        self.n * self.s
    }
    /// The planes of channel `ch`, one per sample.
    fn planes<'a, T>(&self, v: &'a [T], ch: usize) -> impl Iterator<Item = &'a [T]> + 'a {
        let (c, s) = (self.c, self.s);
        (0..self.n).map(move |n| &v[(n * c + ch) * s..(n * c + ch + 1) * s])
    }
    fn parallel(&self) -> bool {
        self.n * self.c * self.s >= MIN_PAR_ELEMS
    }
    /// Whole planes per chunk of the elementwise passes.
    fn chunk(&self) -> usize {
        (CHUNK_ELEMS / self.s.max(1)).max(1) * self.s.max(1)
    }
}

/// Sum of `f(i)` over a plane in 8 f64 lanes (vectorizes; f64 keeps large batches accurate).
#[inline(always)]
fn lane_sum(len: usize, f: impl Fn(usize) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let full = len / 8 * 8;
    let mut i = 0;
    while i < full {
        for (k, a) in acc.iter_mut().enumerate() {
            *a += f(i + k);
        }
        i += 8;
    }
    let mut tail = 0.0;
    for j in full..len {
        tail += f(j);
    }
    acc.iter().sum::<f64>() + tail
}

/// Per-channel batch mean and biased variance (two passes: the mean, then squared deviations).
fn stats<T: Float>(d: Dims, x: &[T]) -> Vec<(f64, f64)> {
    let cnt = d.count() as f64;
    map_range_if(d.parallel(), d.c, |ch| {
        crate::simd::run(
            #[inline(always)]
            || {
                let sum: f64 = d
                    .planes(x, ch)
                    .map(|p| lane_sum(p.len(), |i| p[i].to_f64()))
                    .sum();
                let mean = sum / cnt;
                let sq: f64 = d
                    .planes(x, ch)
                    .map(|p| {
                        lane_sum(p.len(), |i| {
                            let v = p[i].to_f64() - mean;
                            v * v
                        })
                    })
                    .sum();
                (mean, sq / cnt)
            },
        )
    })
}

/// `out[n, c, :] = f(c, x[n, c, :])` over whole planes, in parallel chunks.
fn per_plane<T: Float>(d: Dims, out: &mut [T], f: impl Fn(usize, usize, &mut [T]) + Sync + Send) {
    let chunk = d.chunk();
    let planes_per_chunk = chunk / d.s.max(1);
    for_each_chunk_mut(out, chunk, |ci, part| {
        crate::simd::run(
            #[inline(always)]
            || {
                for (k, o) in part.chunks_mut(d.s.max(1)).enumerate() {
                    let plane = ci * planes_per_chunk + k;
                    f(plane, plane % d.c, o);
                }
            },
        )
    });
}

/// Output `(x - mean) · rstd · w + b` and the per-channel `(mean, var, rstd)`.
#[allow(clippy::type_complexity)]
fn forward<T: Float>(d: Dims, x: &[T], w: &[T], b: &[T], eps: f64) -> (Vec<T>, Vec<[f64; 3]>) {
    let st: Vec<[f64; 3]> = stats(d, x)
        .into_iter()
        .map(|(m, v)| [m, v, 1.0 / (v + eps).sqrt()])
        .collect();
    // y = x · scale + shift per channel.
    let coef: Vec<(T, T)> = st
        .iter()
        .enumerate()
        .map(|(ch, &[m, _, r])| {
            let scale = r * w[ch].to_f64();
            (T::c(scale), T::c(b[ch].to_f64() - m * scale))
        })
        .collect();
    let mut out = vec![T::ZERO; x.len()];
    per_plane(d, &mut out, |plane, ch, o| {
        let (scale, shift) = coef[ch];
        let src = &x[plane * d.s..(plane + 1) * d.s];
        for (o, &v) in o.iter_mut().zip(src) {
            *o = v * scale + shift;
        }
    });
    (out, st)
}

/// Gradients of x, weight and bias.
#[allow(clippy::type_complexity)]
fn backward<T: Float>(
    d: Dims,
    x: &[T],
    g: &[T],
    w: &[T],
    st: &[[f64; 3]],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    // Per channel: Σ gy and Σ gy·(x - mean).
    let sums: Vec<(f64, f64)> = map_range_if(d.parallel(), d.c, |ch| {
        let mean = st[ch][0];
        crate::simd::run(
            #[inline(always)]
            || {
                d.planes(x, ch)
                    .zip(d.planes(g, ch))
                    .fold((0.0, 0.0), |(a, b), (xp, gp)| {
                        let sg = lane_sum(xp.len(), |i| gp[i].to_f64());
                        let sgx = lane_sum(xp.len(), |i| gp[i].to_f64() * (xp[i].to_f64() - mean));
                        (a + sg, b + sgx)
                    })
            },
        )
    });
    let cnt = d.count() as f64;
    // gx = w·rstd · (gy - Σgy/cnt - (x - mean)·rstd²·Σgy(x-mean)/cnt), as gy·a + x·b + c.
    let coef: Vec<(T, T, T)> = (0..d.c)
        .map(|ch| {
            let [mean, _, r] = st[ch];
            let (sg, sgx) = sums[ch];
            let a = w[ch].to_f64() * r;
            let bx = -a * r * r * sgx / cnt;
            let c0 = -a * sg / cnt - bx * mean;
            (T::c(a), T::c(bx), T::c(c0))
        })
        .collect();
    let mut gx = vec![T::ZERO; x.len()];
    per_plane(d, &mut gx, |plane, ch, o| {
        let (a, bx, c0) = coef[ch];
        let r = plane * d.s..(plane + 1) * d.s;
        for ((o, &gv), &xv) in o.iter_mut().zip(&g[r.clone()]).zip(&x[r]) {
            *o = gv * a + xv * bx + c0;
        }
    });
    let gw = (0..d.c).map(|ch| T::c(sums[ch].1 * st[ch][2])).collect();
    let gb = sums.iter().map(|s| T::c(s.0)).collect();
    (gx, gw, gb)
}

/// What one training-mode batch norm call returns besides its output: the batch statistics
/// (detached, `[C]`) for updating running estimates.
#[derive(Debug)]
pub struct BatchStats {
    /// Per-channel batch mean.
    pub mean: Tensor,
    /// Per-channel biased batch variance (divide by N·S).
    pub var: Tensor,
}

impl Tensor {
    /// Batch normalization over dim 1 of `[N, C]`, `[N, C, L]` or `[N, C, H, W]` with this
    /// batch's statistics (fused; PyTorch's `batch_norm` with `training=True`):
    /// `(x - mean) / sqrt(var + eps) · weight + bias`, `weight` and `bias` `[C]`, the variance
    /// biased. Differentiable in the input, weight and bias; also returns the statistics.
    pub fn batch_norm_train(
        &self,
        weight: &Tensor,
        bias: &Tensor,
        eps: f64,
    ) -> Result<(Tensor, BatchStats)> {
        const OP: &str = "batch_norm";
        check_float(OP, self)?;
        let shape = self.shape().to_vec();
        if !(2..=4).contains(&shape.len()) {
            bail!(
                OP,
                "input must be [N, C], [N, C, L] or [N, C, H, W], found {shape:?}"
            );
        }
        let d = Dims {
            n: shape[0],
            c: shape[1],
            s: shape[2..].iter().product(),
        };
        for (what, p) in [("weight", weight), ("bias", bias)] {
            check_same_dtype(OP, self, p)?;
            if p.shape() != [d.c] {
                bail!(
                    OP,
                    "{what} must be [{}] (one per channel of input {shape:?}), found {:?}",
                    d.c,
                    p.shape()
                );
            }
        }
        if d.count() < 2 {
            bail!(
                OP,
                "training needs more than one value per channel, found input {shape:?}"
            );
        }
        let x = self.detach();
        let wt = weight.detach();
        let dtype = self.dtype();
        let (out, st) = float_dispatch!(dtype, T => {
            let wv = wt.to_vec::<T>()?;
            let bv = bias.to_vec::<T>()?;
            let (out, st) = with_contig::<T, _>(&x, |xv| forward::<T>(d, xv, &wv, &bv, eps));
            (Tensor::from_vec(out, &shape)?, st)
        });
        let column = |k: usize| -> Result<Tensor> {
            Tensor::from_vec(st.iter().map(|s| s[k]).collect::<Vec<f64>>(), &[d.c])?.to_dtype(dtype)
        };
        let stats = BatchStats {
            mean: column(0)?,
            var: column(1)?,
        };
        let (storage, layout) = (out.storage().clone(), out.layout().clone());
        let y = Tensor::op_result(OP, storage, layout, &[self, weight, bias], move || {
            Box::new(move |g, needs| {
                let (gx, gw, gb) = float_dispatch!(g.dtype(), T => {
                    let wv = wt.to_vec::<T>()?;
                    let (gx, gw, gb) = with_contig::<T, _>(&x, |xv| {
                        with_contig::<T, _>(g, |gv| backward::<T>(d, xv, gv, &wv, &st))
                    });
                    (
                        Tensor::from_vec(gx, &shape)?,
                        Tensor::from_vec(gw, &[d.c])?,
                        Tensor::from_vec(gb, &[d.c])?,
                    )
                });
                Ok(vec![
                    needs[0].then_some(gx),
                    needs[1].then_some(gw),
                    needs[2].then_some(gb),
                ])
            })
        });
        Ok((y, stats))
    }
}
