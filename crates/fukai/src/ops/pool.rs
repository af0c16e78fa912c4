//! Max, average and adaptive-average pooling over the trailing spatial dims. Every pool is
//! described by a table of input windows per output row and per output column, so one forward
//! and one backward kernel per reduction serve all of them; 1-D pools are 2-D pools of height 1.
//! Planes (the leading dims) are independent, which is what the threads split.

use super::float::{check_float, with_contig, wrap, Float};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::parallel::{for_each_chunk_mut, PAR_THRESHOLD};
use crate::tensor::Tensor;

/// The input span `start..end` one output position reads along an axis, and its share of the
/// averaging divisor (the divisor of a 2-D window is the product of the two axes' counts).
#[derive(Clone, Copy, Debug)]
struct Win {
    start: usize,
    end: usize,
    count: usize,
}

/// Windows of a fixed-kernel pool; padding is virtual (never read), `include_pad` says whether
/// it counts toward the divisor.
fn fixed_windows(len: usize, k: usize, s: usize, p: usize, include_pad: bool) -> Vec<Win> {
    let out = (len + 2 * p - k) / s + 1;
    (0..out)
        .map(|o| {
            let start = o * s;
            let end_padded = (start + k).min(len + 2 * p);
            let (a, b) = (start.max(p) - p, end_padded.min(len + p) - p);
            let count = if include_pad {
                end_padded - start
            } else {
                b - a
            };
            Win {
                start: a,
                end: b,
                count,
            }
        })
        .collect()
}

/// PyTorch's adaptive windows: output `i` of `out` reads `floor(i*len/out)..ceil((i+1)*len/out)`.
fn adaptive_windows(len: usize, out: usize) -> Vec<Win> {
    (0..out)
        .map(|i| {
            let (start, end) = (i * len / out, ((i + 1) * len).div_ceil(out));
            Win {
                start,
                end,
                count: end - start,
            }
        })
        .collect()
}

/// A pool over `planes` planes of `h x w`.
struct Pool {
    planes: usize,
    h: usize,
    w: usize,
    ys: Vec<Win>,
    xs: Vec<Win>,
}

impl Pool {
    fn hw(&self) -> usize {
        self.h * self.w
    }
    fn ohw(&self) -> usize {
        self.ys.len() * self.xs.len()
    }
    /// Planes per parallel task, so tiny planes are batched rather than spawned one by one.
    fn planes_per_task(&self) -> usize {
        (PAR_THRESHOLD / self.hw().max(1)).max(1)
    }
    /// Calls `f(plane, out_plane)` for every plane of an output with `len` elements per plane.
    fn planes_mut<T: Send>(
        &self,
        out: &mut [T],
        len: usize,
        f: impl Fn(usize, &mut [T]) + Sync + Send,
    ) {
        let per = self.planes_per_task();
        for_each_chunk_mut(out, (per * len).max(1), |ci, chunk| {
            for (j, plane) in chunk.chunks_mut(len.max(1)).enumerate() {
                f(ci * per + j, plane);
            }
        });
    }

    /// Every window is the 2x2 block at (2i, 2j): the usual CNN pool, worth its own loop.
    fn is_2x2(&self) -> bool {
        let tiled = |ws: &[Win]| {
            ws.iter()
                .enumerate()
                .all(|(i, w)| w.start == 2 * i && w.end == 2 * i + 2)
        };
        tiled(&self.ys) && tiled(&self.xs)
    }

    /// Index (within its plane) of each window's maximum; NaN wins, as in PyTorch.
    fn argmax<T: Float>(&self, x: &[T]) -> Vec<usize> {
        let mut idx = vec![0usize; self.planes * self.ohw()];
        let fast = self.is_2x2();
        self.planes_mut(&mut idx, self.ohw(), |p, out| {
            let xp = &x[p * self.hw()..(p + 1) * self.hw()];
            if fast {
                let (w, ow) = (self.w, self.xs.len());
                for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
                    let r = 2 * oy * w;
                    for (ox, o) in orow.iter_mut().enumerate() {
                        // Scan order as the general loop: the first maximum, or the first NaN.
                        let cand = [
                            r + 2 * ox,
                            r + 2 * ox + 1,
                            r + w + 2 * ox,
                            r + w + 2 * ox + 1,
                        ];
                        let mut best = cand[0];
                        for &c in &cand[1..] {
                            if xp[best].is_nan() {
                                break;
                            }
                            if xp[c] > xp[best] || xp[c].is_nan() {
                                best = c;
                            }
                        }
                        *o = best;
                    }
                }
                return;
            }
            let mut o = out.iter_mut();
            for wy in &self.ys {
                for wx in &self.xs {
                    let mut best = wy.start * self.w + wx.start;
                    let mut bv = T::NEG_INF;
                    for y in wy.start..wy.end {
                        for (i, &v) in xp[y * self.w..][wx.start..wx.end].iter().enumerate() {
                            if v > bv || v.is_nan() {
                                bv = v;
                                best = y * self.w + wx.start + i;
                                if v.is_nan() {
                                    break;
                                }
                            }
                        }
                        if bv.is_nan() {
                            break;
                        }
                    }
                    *o.next().expect("one index per window") = best;
                }
            }
        });
        idx
    }

    /// Routes each output gradient to its window's maximum.
    fn max_backward<T: Float>(&self, idx: &[usize], gy: &[T]) -> Vec<T> {
        let mut dx = vec![T::ZERO; self.planes * self.hw()];
        let ohw = self.ohw();
        self.planes_mut(&mut dx, self.hw(), |p, d| {
            for (&i, &g) in idx[p * ohw..(p + 1) * ohw].iter().zip(&gy[p * ohw..]) {
                d[i] += g;
            }
        });
        dx
    }

    fn avg_forward<T: Float>(&self, x: &[T]) -> Vec<T> {
        let mut out = vec![T::ZERO; self.planes * self.ohw()];
        self.planes_mut(&mut out, self.ohw(), |p, out| {
            let xp = &x[p * self.hw()..(p + 1) * self.hw()];
            let mut o = out.iter_mut();
            for wy in &self.ys {
                for wx in &self.xs {
                    let mut s = T::ZERO;
                    for y in wy.start..wy.end {
                        for &v in &xp[y * self.w..][wx.start..wx.end] {
                            s += v;
                        }
                    }
                    *o.next().expect("one value per window") =
                        s / T::c((wy.count * wx.count) as f64);
                }
            }
        });
        out
    }

    fn avg_backward<T: Float>(&self, gy: &[T]) -> Vec<T> {
        let mut dx = vec![T::ZERO; self.planes * self.hw()];
        let ohw = self.ohw();
        self.planes_mut(&mut dx, self.hw(), |p, d| {
            let mut g = gy[p * ohw..(p + 1) * ohw].iter();
            for wy in &self.ys {
                for wx in &self.xs {
                    let share = *g.next().expect("one gradient per window")
                        / T::c((wy.count * wx.count) as f64);
                    for y in wy.start..wy.end {
                        for v in &mut d[y * self.w..][wx.start..wx.end] {
                            *v += share;
                        }
                    }
                }
            }
        });
        dx
    }
}

/// Splits `t`'s shape into planes and an `h x w` plane, checking rank and sizes. `dims` is the
/// pool's spatial rank (1 or 2); 1-D planes get height 1.
fn planes(op: &'static str, t: &Tensor, dims: usize) -> Result<(usize, usize, usize)> {
    check_float(op, t)?;
    let r = t.rank();
    if r != dims + 1 && r != dims + 2 {
        let want = if dims == 1 {
            "[N, C, L] or [C, L]"
        } else {
            "[N, C, H, W] or [C, H, W]"
        };
        bail!(op, "needs input {want}, found shape {:?}", t.shape());
    }
    let s = t.shape();
    let spatial = &s[r - dims..];
    if spatial.contains(&0) {
        bail!(op, "spatial dims must be non-zero, found shape {s:?}");
    }
    let (h, w) = if dims == 1 {
        (1, spatial[0])
    } else {
        (spatial[0], spatial[1])
    };
    Ok((s[..r - dims].iter().product(), h, w))
}

/// Checks one axis of a fixed-kernel pool the way PyTorch does.
fn check_axis(
    op: &'static str,
    axis: &str,
    len: usize,
    k: usize,
    s: usize,
    p: usize,
) -> Result<()> {
    if k == 0 || s == 0 {
        bail!(
            op,
            "kernel and stride must be positive, found kernel {k} and stride {s} along the {axis}"
        );
    }
    if p > k / 2 {
        bail!(
            op,
            "padding {p} along the {axis} is more than half the kernel {k}"
        );
    }
    if len.checked_add(2 * p).is_none_or(|padded| padded < k) {
        bail!(
            op,
            "kernel {k} along the {axis} is larger than the padded input ({len} + 2*{p})"
        );
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    Max,
    Avg,
}

/// Runs the pool described by (`ys`, `xs`) on `t`, recording its gradient as `op`.
fn run_pool(op: &'static str, t: &Tensor, dims: usize, kind: Kind, pool: Pool) -> Result<Tensor> {
    let r = t.rank();
    let mut shape = t.shape()[..r - dims].to_vec();
    if dims == 2 {
        shape.push(pool.ys.len());
    }
    shape.push(pool.xs.len());
    let dtype = t.dtype();
    let in_shape = t.shape().to_vec();
    let (storage, layout, idx) = float_dispatch!(dtype, T => with_contig::<T, _>(t, |x| {
        let (out, idx) = match kind {
            Kind::Max => {
                let idx = pool.argmax(x);
                let (ohw, hw) = (pool.ohw(), pool.hw());
                let mut out = vec![T::ZERO; idx.len()];
                pool.planes_mut(&mut out, ohw, |p, o| {
                    let (xp, ip) = (&x[p * hw..(p + 1) * hw], &idx[p * ohw..(p + 1) * ohw]);
                    for (o, &i) in o.iter_mut().zip(ip) {
                        *o = xp[i];
                    }
                });
                (out, idx)
            }
            Kind::Avg => (pool.avg_forward(x), Vec::new()),
        };
        let (s, l) = wrap(out, &shape);
        (s, l, idx)
    }));
    Ok(Tensor::op_result(op, storage, layout, &[t], move || {
        Box::new(move |gy, _| {
            let (s, l) = float_dispatch!(dtype, T => with_contig::<T, _>(gy, |g| {
                let dx = match kind {
                    Kind::Max => pool.max_backward(&idx, g),
                    Kind::Avg => pool.avg_backward(g),
                };
                wrap(dx, &in_shape)
            }));
            Ok(vec![Some(Tensor::from_parts(s, l))])
        })
    }))
}

/// A fixed-kernel pool over `dims` (1 or 2) trailing dims; 1-D callers pass `[1, k]`-style
/// parameters so the height axis is trivial.
#[allow(clippy::too_many_arguments)]
fn fixed_pool(
    op: &'static str,
    t: &Tensor,
    dims: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    kind: Kind,
    include_pad: bool,
) -> Result<Tensor> {
    let (n, h, w) = planes(op, t, dims)?;
    let axes = if dims == 1 {
        ["height", "length"]
    } else {
        ["height", "width"]
    };
    check_axis(op, axes[0], h, kernel[0], stride[0], padding[0])?;
    check_axis(op, axes[1], w, kernel[1], stride[1], padding[1])?;
    let pool = Pool {
        planes: n,
        h,
        w,
        ys: fixed_windows(h, kernel[0], stride[0], padding[0], include_pad),
        xs: fixed_windows(w, kernel[1], stride[1], padding[1], include_pad),
    };
    run_pool(op, t, dims, kind, pool)
}

impl Tensor {
    /// 2-D max pooling over `[N, C, H, W]` (or `[C, H, W]`); padding acts as -inf. Padding may be
    /// at most half the kernel, as in PyTorch.
    pub fn max_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<Tensor> {
        fixed_pool(
            "max_pool2d",
            self,
            2,
            kernel,
            stride,
            padding,
            Kind::Max,
            false,
        )
    }
    /// 1-D max pooling over `[N, C, L]` (or `[C, L]`).
    pub fn max_pool1d(&self, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
        fixed_pool(
            "max_pool1d",
            self,
            1,
            [1, kernel],
            [1, stride],
            [0, padding],
            Kind::Max,
            false,
        )
    }
    /// 2-D average pooling over `[N, C, H, W]` (or `[C, H, W]`). With `count_include_pad` the
    /// padding zeros count toward each window's divisor; without, only input elements do.
    pub fn avg_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        count_include_pad: bool,
    ) -> Result<Tensor> {
        fixed_pool(
            "avg_pool2d",
            self,
            2,
            kernel,
            stride,
            padding,
            Kind::Avg,
            count_include_pad,
        )
    }
    /// 1-D average pooling over `[N, C, L]` (or `[C, L]`).
    pub fn avg_pool1d(
        &self,
        kernel: usize,
        stride: usize,
        padding: usize,
        count_include_pad: bool,
    ) -> Result<Tensor> {
        fixed_pool(
            "avg_pool1d",
            self,
            1,
            [1, kernel],
            [1, stride],
            [0, padding],
            Kind::Avg,
            count_include_pad,
        )
    }
    /// Averages `[N, C, H, W]` (or `[C, H, W]`) down to `out` = `[OH, OW]` with PyTorch's windows
    /// (output row `i` reads rows `floor(i*H/OH)..ceil((i+1)*H/OH)`).
    pub fn adaptive_avg_pool2d(&self, out: [usize; 2]) -> Result<Tensor> {
        const OP: &str = "adaptive_avg_pool2d";
        let (n, h, w) = planes(OP, self, 2)?;
        if out.contains(&0) {
            bail!(OP, "output size must be non-zero, found {out:?}");
        }
        let pool = Pool {
            planes: n,
            h,
            w,
            ys: adaptive_windows(h, out[0]),
            xs: adaptive_windows(w, out[1]),
        };
        run_pool(OP, self, 2, Kind::Avg, pool)
    }
}
