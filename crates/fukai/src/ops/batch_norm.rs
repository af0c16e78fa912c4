//! Fused batch normalization over dim 1 with the batch's own statistics (training mode): two
//! reads of the input for the statistics and one for the output, and one pass each for the
//! channel sums and the input gradient in backward, instead of the composite's mean / var / sub
//! / rsqrt / mul / add chain (about fifteen full-size tensors per call, forward and backward).
//!
//! Statistics are summed per channel, sample by sample, in a fixed order on one thread each, so
//! the result does not depend on the thread count.

use super::float::{check_same_dtype, with_contig, Float};
use super::lanes::lane_sum2;
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::parallel::{build_uninit, map_range_if, MIN_PAR_ELEMS};
use crate::tensor::Tensor;
use std::mem::MaybeUninit;

/// Elements per parallel chunk of the elementwise passes (whole planes, at least one).
const CHUNK_ELEMS: usize = 1 << 14;
/// Sums run in 8 lanes of the element type over blocks of at most this many elements, and the
/// block sums are added in f64: vectorized at full width, with the f32 rounding error bounded
/// by the block length rather than the plane length.
const SUM_BLOCK: usize = 1024;

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

/// Σ f(a_i, b_i) over one channel's planes of `a` and `b` (see [`SUM_BLOCK`]).
#[inline(always)]
fn channel_sum<T: Float>(d: Dims, ch: usize, a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> f64 {
    let mut total = 0.0;
    for (pa, pb) in d.planes(a, ch).zip(d.planes(b, ch)) {
        for (ba, bb) in pa.chunks(SUM_BLOCK).zip(pb.chunks(SUM_BLOCK)) {
            total += lane_sum2(ba, bb, &f).to_f64();
        }
    }
    total
}

/// Per-channel batch mean and biased variance (two passes: the mean, then squared deviations).
fn stats<T: Float>(d: Dims, x: &[T]) -> Vec<(f64, f64)> {
    let cnt = d.count() as f64;
    map_range_if(d.parallel(), d.c, |ch| {
        crate::simd::run(
            #[inline(always)]
            || {
                let mean = channel_sum(d, ch, x, x, |v, _| v) / cnt;
                let m = T::c(mean);
                let sq = channel_sum(d, ch, x, x, |v, _| (v - m) * (v - m));
                (mean, sq / cnt)
            },
        )
    })
}

/// A new `[N, C, S]` buffer with `out[n, c, :] = f(plane, c, out plane)`, built in parallel
/// chunks of whole planes. `f` must write its whole plane: it gets it uninitialized. Callers
/// mark `f` `#[inline(always)]`: it runs inside `simd::run` here, and a closure this size,
/// compiled out of line, ran on baseline SSE2 (2-4 lanes).
fn per_plane<T: Float>(
    d: Dims,
    f: impl Fn(usize, usize, &mut [MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    let (chunk, s) = (d.chunk(), d.s.max(1));
    let planes_per_chunk = chunk / s;
    // SAFETY: the chunks are whole planes, and both callers write every element of a plane
    // (zipped with the equally long input planes).
    unsafe {
        build_uninit(d.n * d.c * d.s, chunk, |ci, part| {
            crate::simd::run(
                #[inline(always)]
                || {
                    for (k, o) in part.chunks_mut(s).enumerate() {
                        let plane = ci * planes_per_chunk + k;
                        f(plane, plane % d.c, o);
                    }
                },
            )
        })
    }
}

/// The per-channel affine map `y = x·scale + shift` that normalization is, from the batch
/// statistics `(mean, biased var, 1/sqrt(var + eps))`. Backward recomputes it (same bits) to
/// find where a fused ReLU clipped.
fn affine<T: Float>(stats: &[[f64; 3]], w: &[T], b: &[T]) -> Vec<(T, T)> {
    stats
        .iter()
        .enumerate()
        .map(|(ch, &[m, _, r])| {
            let scale = r * w[ch].to_f64();
            (T::c(scale), T::c(b[ch].to_f64() - m * scale))
        })
        .collect()
}

/// Output `(x - mean) · rstd · w + b`, followed by `max(·, 0)` when `relu`, and its affine map.
fn forward<T: Float>(
    d: Dims,
    x: &[T],
    w: &[T],
    b: &[T],
    eps: f64,
    relu: bool,
) -> (Vec<T>, Vec<[f64; 3]>) {
    let stats: Vec<[f64; 3]> = stats(d, x)
        .into_iter()
        .map(|(m, v)| [m, v, 1.0 / (v + eps).sqrt()])
        .collect();
    let coef = affine(&stats, w, b);
    let out = per_plane(
        d,
        #[inline(always)]
        |plane, ch, o| {
            let (scale, shift) = coef[ch];
            let src = &x[plane * d.s..(plane + 1) * d.s];
            if relu {
                for (o, &v) in o.iter_mut().zip(src) {
                    let y = v * scale + shift;
                    // NaN passes through, as in the unfused ReLU.
                    o.write(if y <= T::ZERO { T::ZERO } else { y });
                }
            } else {
                for (o, &v) in o.iter_mut().zip(src) {
                    o.write(v * scale + shift);
                }
            }
        },
    );
    (out, stats)
}

/// Gradients of x, weight and bias. With `relu`, `g` is the gradient of the ReLU's output and
/// is masked where the normalized value (recomputed from `x`, bit for bit as in forward) was
/// not positive — so the ReLU's own backward pass and its saved output are not needed.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn backward<T: Float>(
    d: Dims,
    x: &[T],
    g: &[T],
    w: &[T],
    b: &[T],
    stats: &[[f64; 3]],
    relu: bool,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let coef = affine(stats, w, b);
    let live = |ch: usize| {
        let (scale, shift) = coef[ch];
        #[inline(always)]
        move |x: T, g: T| {
            if !relu || x * scale + shift > T::ZERO {
                g
            } else {
                T::ZERO
            }
        }
    };
    // Per channel: Σ gy and Σ gy·(x - mean).
    let sums: Vec<(f64, f64)> = map_range_if(d.parallel(), d.c, |ch| {
        let (mean, gy) = (T::c(stats[ch][0]), live(ch));
        crate::simd::run(
            #[inline(always)]
            || {
                (
                    channel_sum(d, ch, x, g, gy),
                    channel_sum(d, ch, x, g, |x, g| gy(x, g) * (x - mean)),
                )
            },
        )
    });
    let cnt = d.count() as f64;
    // gx = w·rstd · (gy - Σgy/cnt - (x - mean)·rstd²·Σgy(x-mean)/cnt), as gy·a + x·b + c.
    let lin: Vec<(T, T, T)> = (0..d.c)
        .map(|ch| {
            let [mean, _, r] = stats[ch];
            let (sg, sgx) = sums[ch];
            let a = w[ch].to_f64() * r;
            let bx = -a * r * r * sgx / cnt;
            let c0 = -a * sg / cnt - bx * mean;
            (T::c(a), T::c(bx), T::c(c0))
        })
        .collect();
    let gx = per_plane(
        d,
        #[inline(always)]
        |plane, ch, o| {
            let ((a, bx, c0), gy) = (lin[ch], live(ch));
            let r = plane * d.s..(plane + 1) * d.s;
            for ((o, &gv), &xv) in o.iter_mut().zip(&g[r.clone()]).zip(&x[r]) {
                o.write(gy(xv, gv) * a + xv * bx + c0);
            }
        },
    );
    let gw = (0..d.c).map(|ch| T::c(sums[ch].1 * stats[ch][2])).collect();
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
        self.batch_norm_train_impl("batch_norm", weight, bias, eps, false)
    }

    /// `relu(batch_norm_train(..))` in one op: the ReLU is applied as the output is written,
    /// and backward masks the incoming gradient itself, so neither the normalized tensor nor a
    /// separate ReLU pass is kept. Equal bit for bit to the two ops in sequence.
    pub fn batch_norm_relu_train(
        &self,
        weight: &Tensor,
        bias: &Tensor,
        eps: f64,
    ) -> Result<(Tensor, BatchStats)> {
        self.batch_norm_train_impl("batch_norm_relu", weight, bias, eps, true)
    }

    /// The same normalization from primitive ops, differentiated by autograd: the device
    /// path until a fused device kernel exists (statistics in the tensor's dtype, not f64).
    fn batch_norm_composite(
        &self,
        weight: &Tensor,
        bias: &Tensor,
        eps: f64,
        relu: bool,
    ) -> Result<(Tensor, BatchStats)> {
        let c = self.shape()[1];
        let dims: Vec<isize> = std::iter::once(0).chain(2..self.rank() as isize).collect();
        let mut bshape = vec![1; self.rank()];
        bshape[1] = c;
        let mean = self.mean(&dims, true)?;
        let centered = self.sub(&mean)?;
        let var = centered.square()?.mean(&dims, true)?;
        let y = centered
            .mul(&var.add_scalar(eps)?.rsqrt()?)?
            .mul(&weight.reshape(&bshape)?)?
            .add(&bias.reshape(&bshape)?)?;
        let y = if relu { y.relu()? } else { y };
        let stats = BatchStats {
            mean: mean.detach().reshape(&[c])?,
            var: var.detach().reshape(&[c])?,
        };
        Ok((y, stats))
    }

    fn batch_norm_train_impl(
        &self,
        op: &'static str,
        weight: &Tensor,
        bias: &Tensor,
        eps: f64,
        relu: bool,
    ) -> Result<(Tensor, BatchStats)> {
        super::float::check_float_on(op, self)?;
        let shape = self.shape().to_vec();
        if !(2..=4).contains(&shape.len()) {
            bail!(
                op,
                "input must be [N, C], [N, C, L] or [N, C, H, W], found {shape:?}"
            );
        }
        let d = Dims {
            n: shape[0],
            c: shape[1],
            s: shape[2..].iter().product(),
        };
        for (what, p) in [("weight", weight), ("bias", bias)] {
            check_same_dtype(op, self, p)?;
            if p.shape() != [d.c] {
                bail!(
                    op,
                    "{what} must be [{}] (one per channel of input {shape:?}), found {:?}",
                    d.c,
                    p.shape()
                );
            }
        }
        if d.count() < 2 {
            bail!(
                op,
                "training needs more than one value per channel, found input {shape:?}"
            );
        }
        if crate::tensor::on_gpu(&[self]) {
            return self.batch_norm_composite(weight, bias, eps, relu);
        }
        self.cpu_only(op)?;
        let x = self.detach();
        let wt = weight.detach();
        let bt = bias.detach();
        let dtype = self.dtype();
        let (out, st) = float_dispatch!(dtype, T => {
            let wv = wt.to_vec::<T>()?;
            let bv = bias.to_vec::<T>()?;
            let (out, st) = with_contig::<T, _>(&x, |xv| forward::<T>(d, xv, &wv, &bv, eps, relu));
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
        let y = Tensor::op_result(op, storage, layout, &[self, weight, bias], move || {
            Box::new(move |g, needs| {
                let (gx, gw, gb) = float_dispatch!(g.dtype(), T => {
                    let (wv, bv) = (wt.to_vec::<T>()?, bt.to_vec::<T>()?);
                    let (gx, gw, gb) = with_contig::<T, _>(&x, |xv| {
                        with_contig::<T, _>(g, |gv| backward::<T>(d, xv, gv, &wv, &bv, &st, relu))
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
