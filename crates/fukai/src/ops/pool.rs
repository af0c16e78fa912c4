//! Max, average and adaptive-average pooling over the trailing spatial dims. Every pool is
//! described by a table of input windows per output plane, row and column, so one forward and
//! one backward kernel per reduction serve all of them; 2-D pools are 3-D pools of depth 1 and
//! 1-D pools also have height 1.
//! Planes (the leading dims) are independent, which is what the threads split.

use super::float::{with_contig, wrap, Float};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::parallel::{for_each_chunk_mut, for_each_item, MIN_PAR_ELEMS, PAR_THRESHOLD};
use crate::tensor::Tensor;
use std::mem::MaybeUninit;

/// The input span `start..end` one output position reads along an axis, and its share of the
/// averaging divisor (the divisor of a window is the product of its axes' counts).
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

/// The one window of an axis of size 1 that a pool of lower rank does not have.
fn unit_axis() -> Vec<Win> {
    vec![Win {
        start: 0,
        end: 1,
        count: 1,
    }]
}

/// A pool over `planes` planes of `d x h x w` (the leading dims are the planes).
struct Pool {
    planes: usize,
    d: usize,
    h: usize,
    w: usize,
    zs: Vec<Win>,
    ys: Vec<Win>,
    xs: Vec<Win>,
}

impl Pool {
    /// Input elements per plane.
    fn in_len(&self) -> usize {
        self.d * self.h * self.w
    }
    /// Output elements per plane.
    fn out_len(&self) -> usize {
        self.zs.len() * self.ys.len() * self.xs.len()
    }
    /// Every window of the plane as (depth, row, column) windows, in output order.
    fn windows(&self) -> impl Iterator<Item = (&Win, &Win, &Win)> {
        self.zs.iter().flat_map(move |wz| {
            self.ys
                .iter()
                .flat_map(move |wy| self.xs.iter().map(move |wx| (wz, wy, wx)))
        })
    }
    /// Start, within the plane, of every input row a window reads (its column span is
    /// `wx.start..wx.end` from there).
    fn rows<'a>(&'a self, wz: &'a Win, wy: &'a Win) -> impl Iterator<Item = usize> + 'a {
        (wz.start..wz.end)
            .flat_map(move |z| (wy.start..wy.end).map(move |y| (z * self.h + y) * self.w))
    }
    /// Planes per parallel task, so tiny planes are batched rather than spawned one by one.
    fn planes_per_task(&self) -> usize {
        (PAR_THRESHOLD / self.in_len().max(1)).max(1)
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

    /// Every window is the 2x2 block at (2i, 2j) of a plane without depth: the usual CNN pool,
    /// worth its own loop.
    fn is_2x2(&self) -> bool {
        let tiled = |ws: &[Win]| {
            ws.iter()
                .enumerate()
                .all(|(i, w)| w.start == 2 * i && w.end == 2 * i + 2)
        };
        self.d == 1 && tiled(&self.ys) && tiled(&self.xs)
    }

    /// Index (within its plane) of each window's maximum; NaN wins, as in PyTorch.
    fn argmax<T: Float>(&self, x: &[T]) -> Vec<usize> {
        let mut idx = vec![0usize; self.planes * self.out_len()];
        self.planes_mut(&mut idx, self.out_len(), |p, out| {
            let xp = &x[p * self.in_len()..(p + 1) * self.in_len()];
            for (o, (wz, wy, wx)) in out.iter_mut().zip(self.windows()) {
                let mut best = (wz.start * self.h + wy.start) * self.w + wx.start;
                let mut bv = T::NEG_INF;
                for row in self.rows(wz, wy) {
                    let at = row + wx.start;
                    for (i, &v) in xp[at..row + wx.end].iter().enumerate() {
                        if v > bv || v.is_nan() {
                            bv = v;
                            best = at + i;
                            if v.is_nan() {
                                break;
                            }
                        }
                    }
                    if bv.is_nan() {
                        break;
                    }
                }
                *o = best;
            }
        });
        idx
    }

    /// Routes each output gradient to its window's maximum.
    fn max_backward<T: Float>(&self, idx: &[usize], gy: &[T]) -> Vec<T> {
        let mut dx = vec![T::ZERO; self.planes * self.in_len()];
        let ohw = self.out_len();
        self.planes_mut(&mut dx, self.in_len(), |p, d| {
            for (&i, &g) in idx[p * ohw..(p + 1) * ohw].iter().zip(&gy[p * ohw..]) {
                d[i] += g;
            }
        });
        dx
    }

    /// Planes per task of the 2x2 kernels: whole-plane chunks as [`Pool::planes_per_task`],
    /// or all planes at once when the work is too small to be worth a second thread.
    fn planes_per_2x2_task(&self) -> usize {
        if self.planes * self.in_len() < MIN_PAR_ELEMS {
            self.planes.max(1)
        } else {
            self.planes_per_task()
        }
    }

    /// The max of every 2x2 window (see [`Pool::is_2x2`]) and which of its four elements won
    /// (0..4, row-major), in one pass. The winner is PyTorch's: the first maximum in scan
    /// order, or the first NaN. A code is an eighth of a window's index in size, so the
    /// backward pass reads 1 byte per output instead of 8.
    fn max_2x2<T: Float>(&self, x: &[T]) -> (Vec<T>, Vec<u8>) {
        let (hw, ohw, w, ow, oh) = (
            self.in_len(),
            self.out_len(),
            self.w,
            self.xs.len(),
            self.ys.len(),
        );
        let n = self.planes * ohw;
        let mut vals: Vec<T> = Vec::with_capacity(n);
        let mut codes: Vec<u8> = Vec::with_capacity(n);
        let per = self.planes_per_2x2_task();
        let tasks: Vec<_> = vals.spare_capacity_mut()[..n]
            .chunks_mut(per * ohw)
            .zip(codes.spare_capacity_mut()[..n].chunks_mut(per * ohw))
            .enumerate()
            .collect();
        for_each_item(tasks, |(ci, (vc, cc))| {
            crate::simd::run(
                #[inline(always)]
                || {
                    for j in 0..vc.len() / ohw {
                        let xb = (ci * per + j) * hw;
                        for oy in 0..oh {
                            let (o, i) = (j * ohw + oy * ow, xb + 2 * oy * w);
                            let len = padded(ow, vc.len() - o, (x.len() - i - w) / 2);
                            max_row(
                                &x[i..][..2 * len],
                                &x[i + w..][..2 * len],
                                &mut vc[o..][..len],
                                &mut cc[o..][..len],
                            );
                        }
                    }
                },
            )
        });
        // SAFETY: the tasks cover `0..n` of both buffers and every output row of every plane
        // was written above (rows in order, each at least `ow` long).
        unsafe {
            vals.set_len(n);
            codes.set_len(n);
        }
        (vals, codes)
    }

    /// Backward of [`Pool::max_2x2`]: dx is built without a zeroing pass, every element set
    /// to the gradient where the code points at it and 0 elsewhere (including an odd last row
    /// or column no window covers).
    fn max_2x2_backward<T: Float>(&self, codes: &[u8], gy: &[T]) -> Vec<T> {
        let (hw, ohw, w, ow, oh) = (
            self.in_len(),
            self.out_len(),
            self.w,
            self.xs.len(),
            self.ys.len(),
        );
        let n = self.planes * hw;
        let mut dx: Vec<T> = Vec::with_capacity(n);
        let per = self.planes_per_2x2_task();
        for_each_chunk_mut(&mut dx.spare_capacity_mut()[..n], per * hw, |ci, chunk| {
            crate::simd::run(
                #[inline(always)]
                || {
                    for j in 0..chunk.len() / hw {
                        let (db, gb) = (j * hw, (ci * per + j) * ohw);
                        for oy in 0..oh {
                            let (d, o) = (db + 2 * oy * w, gb + oy * ow);
                            let len = padded(ow, gy.len() - o, (chunk.len() - d - w) / 2);
                            let (g, c) = (&gy[o..][..len], &codes[o..][..len]);
                            spread_row(&mut chunk[d..][..2 * len], g, c, 0);
                            spread_row(&mut chunk[d + w..][..2 * len], g, c, 2);
                            // The odd last column, after the rows that may have spilled on it.
                            for e in &mut chunk[d + 2 * ow..d + w] {
                                e.write(T::ZERO);
                            }
                            for e in &mut chunk[d + w + 2 * ow..d + 2 * w] {
                                e.write(T::ZERO);
                            }
                        }
                        // The odd last row.
                        for e in &mut chunk[db + 2 * oh * w..db + hw] {
                            e.write(T::ZERO);
                        }
                    }
                },
            )
        });
        // SAFETY: the chunks cover `0..n`; every element of every plane was written above,
        // the last write to each being its final value (spills only reach later positions).
        unsafe { dx.set_len(n) };
        dx
    }

    fn avg_forward<T: Float>(&self, x: &[T]) -> Vec<T> {
        let mut out = vec![T::ZERO; self.planes * self.out_len()];
        self.planes_mut(&mut out, self.out_len(), |p, out| {
            let xp = &x[p * self.in_len()..(p + 1) * self.in_len()];
            for (o, (wz, wy, wx)) in out.iter_mut().zip(self.windows()) {
                let mut s = T::ZERO;
                for row in self.rows(wz, wy) {
                    for &v in &xp[row + wx.start..row + wx.end] {
                        s += v;
                    }
                }
                *o = s / T::c((wz.count * wy.count * wx.count) as f64);
            }
        });
        out
    }

    fn avg_backward<T: Float>(&self, gy: &[T]) -> Vec<T> {
        let mut dx = vec![T::ZERO; self.planes * self.in_len()];
        let ohw = self.out_len();
        self.planes_mut(&mut dx, self.in_len(), |p, d| {
            for (&g, (wz, wy, wx)) in gy[p * ohw..(p + 1) * ohw].iter().zip(self.windows()) {
                let share = g / T::c((wz.count * wy.count * wx.count) as f64);
                for row in self.rows(wz, wy) {
                    for v in &mut d[row + wx.start..row + wx.end] {
                        *v += share;
                    }
                }
            }
        });
        dx
    }
}

/// The first maximum of `v` in order (or its first NaN) and its position, branch-free so the
/// loops calling it vectorize.
#[inline(always)]
fn max4<T: Float>(v: [T; 4]) -> (T, u8) {
    // The code is selected as a 32-bit lane beside the f32 lanes and narrowed once at the end.
    let (mut best, mut code) = (v[0], 0u32);
    for (k, &x) in v.iter().enumerate().skip(1) {
        // Strictly greater keeps the first maximum; a NaN replaces anything but a NaN.
        #[allow(clippy::eq_op)]
        let take = (x > best) | ((x != x) & (best == best));
        best = if take { x } else { best };
        code = if take { k as u32 } else { code };
    }
    (best, code as u8)
}

/// Vector width the 2x2 row loops are padded to: as wide as an AVX-512 register of f32.
const LANES: usize = 16;

/// How many outputs to compute for a row of `ow`: pooled CNN rows are short (7 or 14 outputs),
/// and a loop vectorized 16 wide would leave them all to its scalar remainder. So a row runs
/// on to a whole number of vectors when `room` (outputs that may be written) and `readable`
/// (windows that can be read) allow; the surplus spills onto later rows, written after it.
fn padded(ow: usize, room: usize, readable: usize) -> usize {
    let pad = ow.next_multiple_of(LANES);
    if pad <= room && pad <= readable {
        pad
    } else {
        ow
    }
}

/// One output row of [`Pool::max_2x2`]: window `i` reads `r0[2i..2i + 2]` and `r1[2i..2i + 2]`.
#[inline(always)]
fn max_row<T: Float>(r0: &[T], r1: &[T], v: &mut [MaybeUninit<T>], c: &mut [MaybeUninit<u8>]) {
    let quads = r0.chunks_exact(2).zip(r1.chunks_exact(2));
    for ((v, c), (a, b)) in v.iter_mut().zip(c.iter_mut()).zip(quads) {
        let (m, k) = max4([a[0], a[1], b[0], b[1]]);
        v.write(m);
        c.write(k);
    }
}

/// Writes one input row of a 2x2 max pool's gradient: element `2i + e` gets `g[i]` if window
/// `i`'s code is `first + e`, else 0 (`first` is 0 for a window's top row, 2 for its bottom).
#[inline(always)]
fn spread_row<T: Float>(d: &mut [MaybeUninit<T>], g: &[T], c: &[u8], first: u8) {
    for ((d, &g), &c) in d.chunks_exact_mut(2).zip(g).zip(c) {
        d[0].write(if c == first { g } else { T::ZERO });
        d[1].write(if c == first + 1 { g } else { T::ZERO });
    }
}

/// Splits `t`'s shape into planes and a `d x h x w` plane, checking rank and sizes. `dims` is
/// the pool's spatial rank (1, 2 or 3); the axes it lacks have size 1.
fn planes(op: &'static str, t: &Tensor, dims: usize) -> Result<(usize, [usize; 3])> {
    super::float::check_float_on(op, t)?;
    let r = t.rank();
    if r != dims + 1 && r != dims + 2 {
        let want = match dims {
            1 => "[N, C, L] or [C, L]",
            2 => "[N, C, H, W] or [C, H, W]",
            _ => "[N, C, D, H, W] or [C, D, H, W]",
        };
        bail!(op, "needs input {want}, found shape {:?}", t.shape());
    }
    let s = t.shape();
    let spatial = &s[r - dims..];
    if spatial.contains(&0) {
        bail!(op, "spatial dims must be non-zero, found shape {s:?}");
    }
    let mut size = [1; 3];
    size[3 - dims..].copy_from_slice(spatial);
    Ok((s[..r - dims].iter().product(), size))
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

/// Runs the pool described by (`zs`, `ys`, `xs`) on `t`, recording its gradient as `op`.
fn run_pool(op: &'static str, t: &Tensor, dims: usize, kind: Kind, pool: Pool) -> Result<Tensor> {
    let r = t.rank();
    let mut shape = t.shape()[..r - dims].to_vec();
    let out = [pool.zs.len(), pool.ys.len(), pool.xs.len()];
    shape.extend_from_slice(&out[3 - dims..]);
    let dtype = t.dtype();
    let in_shape = t.shape().to_vec();
    // The device kernels have no depth axis.
    if dims == 3 {
        t.cpu_only(op)?;
    }
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if crate::tensor::on_gpu(&[t]) {
        use crate::backend::gpu::pool::{backward, forward, Windows};
        let win = Windows {
            planes: pool.planes,
            h: pool.h,
            w: pool.w,
            ys: pool.ys.iter().map(|w| (w.start, w.end, w.count)).collect(),
            xs: pool.xs.iter().map(|w| (w.start, w.end, w.count)).collect(),
        };
        let max = matches!(kind, Kind::Max);
        let (y, idx) = forward(t, &win, max)?;
        let y = y.reshape(&shape)?;
        return Ok(Tensor::op_result(
            op,
            y.storage().clone(),
            y.layout().clone(),
            &[t],
            move || {
                Box::new(move |gy, _| {
                    Ok(vec![Some(
                        backward(gy, idx.as_ref(), &win)?.reshape(&in_shape)?,
                    )])
                })
            },
        ));
    }
    let (storage, layout, saved) = float_dispatch!(dtype, T => with_contig::<T, _>(t, |x| {
        let (out, saved) = match kind {
            Kind::Max if pool.is_2x2() => {
                let (out, codes) = pool.max_2x2(x);
                (out, Argmax::Codes(codes))
            }
            Kind::Max => {
                let idx = pool.argmax(x);
                let (ohw, hw) = (pool.out_len(), pool.in_len());
                let mut out = vec![T::ZERO; idx.len()];
                pool.planes_mut(&mut out, ohw, |p, o| {
                    let (xp, ip) = (&x[p * hw..(p + 1) * hw], &idx[p * ohw..(p + 1) * ohw]);
                    for (o, &i) in o.iter_mut().zip(ip) {
                        *o = xp[i];
                    }
                });
                (out, Argmax::Index(idx))
            }
            Kind::Avg => (pool.avg_forward(x), Argmax::None),
        };
        let (s, l) = wrap(out, &shape);
        (s, l, saved)
    }));
    Ok(Tensor::op_result(op, storage, layout, &[t], move || {
        Box::new(move |gy, _| {
            let (s, l) = float_dispatch!(dtype, T => with_contig::<T, _>(gy, |g| {
                let dx = match &saved {
                    Argmax::Codes(codes) => pool.max_2x2_backward(codes, g),
                    Argmax::Index(idx) => pool.max_backward(idx, g),
                    Argmax::None => pool.avg_backward(g),
                };
                wrap(dx, &in_shape)
            }));
            Ok(vec![Some(Tensor::from_parts(s, l))])
        })
    }))
}

/// What a max pool keeps for its backward pass.
enum Argmax {
    /// Per output, which element of its 2x2 window won (see [`Pool::max_2x2`]).
    Codes(Vec<u8>),
    /// Per output, the index of its window's maximum within the plane.
    Index(Vec<usize>),
    /// Average pools keep nothing.
    None,
}

/// A fixed-kernel pool over `dims` (1, 2 or 3) trailing dims; lower-rank callers pass
/// parameters with kernel and stride 1 and padding 0 on the axes they lack.
#[allow(clippy::too_many_arguments)]
fn fixed_pool(
    op: &'static str,
    t: &Tensor,
    dims: usize,
    kernel: [usize; 3],
    stride: [usize; 3],
    padding: [usize; 3],
    kind: Kind,
    include_pad: bool,
) -> Result<Tensor> {
    let (n, size) = planes(op, t, dims)?;
    let axes = match dims {
        1 => ["depth", "height", "length"],
        _ => ["depth", "height", "width"],
    };
    for a in 0..3 {
        check_axis(op, axes[a], size[a], kernel[a], stride[a], padding[a])?;
    }
    let win = |a: usize| fixed_windows(size[a], kernel[a], stride[a], padding[a], include_pad);
    let pool = Pool {
        planes: n,
        d: size[0],
        h: size[1],
        w: size[2],
        zs: win(0),
        ys: win(1),
        xs: win(2),
    };
    run_pool(op, t, dims, kind, pool)
}

impl Tensor {
    /// 3-D max pooling over `[N, C, D, H, W]` (or `[C, D, H, W]`); padding acts as -inf and may
    /// be at most half the kernel, as in PyTorch. Kernel, stride and padding are per axis
    /// (depth, height, width); the gradient goes to each window's first maximum (or first NaN).
    pub fn max_pool3d(
        &self,
        kernel: [usize; 3],
        stride: [usize; 3],
        padding: [usize; 3],
    ) -> Result<Tensor> {
        fixed_pool(
            "max_pool3d",
            self,
            3,
            kernel,
            stride,
            padding,
            Kind::Max,
            false,
        )
    }
    /// 3-D average pooling over `[N, C, D, H, W]` (or `[C, D, H, W]`). With
    /// `count_include_pad` the padding zeros count toward each window's divisor; without, only
    /// input elements do.
    pub fn avg_pool3d(
        &self,
        kernel: [usize; 3],
        stride: [usize; 3],
        padding: [usize; 3],
        count_include_pad: bool,
    ) -> Result<Tensor> {
        fixed_pool(
            "avg_pool3d",
            self,
            3,
            kernel,
            stride,
            padding,
            Kind::Avg,
            count_include_pad,
        )
    }
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
            [1, kernel[0], kernel[1]],
            [1, stride[0], stride[1]],
            [0, padding[0], padding[1]],
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
            [1, 1, kernel],
            [1, 1, stride],
            [0, 0, padding],
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
            [1, kernel[0], kernel[1]],
            [1, stride[0], stride[1]],
            [0, padding[0], padding[1]],
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
            [1, 1, kernel],
            [1, 1, stride],
            [0, 0, padding],
            Kind::Avg,
            count_include_pad,
        )
    }
    /// Averages `[N, C, H, W]` (or `[C, H, W]`) down to `out` = `[OH, OW]` with PyTorch's windows
    /// (output row `i` reads rows `floor(i*H/OH)..ceil((i+1)*H/OH)`).
    pub fn adaptive_avg_pool2d(&self, out: [usize; 2]) -> Result<Tensor> {
        const OP: &str = "adaptive_avg_pool2d";
        let (n, [_, h, w]) = planes(OP, self, 2)?;
        if out.contains(&0) {
            bail!(OP, "output size must be non-zero, found {out:?}");
        }
        let pool = Pool {
            planes: n,
            d: 1,
            h,
            w,
            zs: unit_axis(),
            ys: adaptive_windows(h, out[0]),
            xs: adaptive_windows(w, out[1]),
        };
        run_pool(OP, self, 2, Kind::Avg, pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool_2x2(planes: usize, h: usize, w: usize) -> Pool {
        let pool = Pool {
            planes,
            d: 1,
            h,
            w,
            zs: unit_axis(),
            ys: fixed_windows(h, 2, 2, 0, false),
            xs: fixed_windows(w, 2, 2, 0, false),
        };
        assert!(pool.is_2x2());
        pool
    }

    /// Values from a small set, so windows tie often, with NaNs and infinities mixed in.
    fn values<T: Float>(n: usize, seed: u64) -> Vec<T> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                match s % 16 {
                    0 => T::c(f64::NAN),
                    1 => T::NEG_INF,
                    2 => T::c(f64::INFINITY),
                    r => T::c((r % 5) as f64 - 2.0),
                }
            })
            .collect()
    }

    fn same<T: Float>(a: T, b: T) -> bool {
        a == b || (a.is_nan() && b.is_nan())
    }

    /// The 2x2 kernels against the general ones (window scan and index scatter) on the same
    /// pool: same maxima, the same winning element (so ties and NaNs resolve as in PyTorch),
    /// and the same input gradient.
    fn fast_equals_general<T: Float>() {
        let mut shapes = vec![
            (0, 4, 4),
            (70, 14, 14),
            (100, 28, 28),
            (50, 64, 64),
            (3, 29, 35),
            (5, 31, 64),
        ];
        for h in 2..=9 {
            for w in 2..=9 {
                shapes.push((3, h, w));
            }
        }
        for (seed, &(planes, h, w)) in shapes.iter().enumerate() {
            let pool = pool_2x2(planes, h, w);
            let x = values::<T>(planes * h * w, seed as u64);
            let (vals, codes) = pool.max_2x2(&x);
            let idx = pool.argmax(&x);
            let (ow, ohw, hw) = (pool.xs.len(), pool.out_len(), pool.in_len());
            for (k, &i) in idx.iter().enumerate() {
                let (p, oy, ox) = (k / ohw, k % ohw / ow, k % ow);
                let c = codes[k] as usize;
                let at = (2 * oy + c / 2) * w + 2 * ox + c % 2;
                assert_eq!(at, i, "winner of window {k} in {planes}x{h}x{w}");
                assert!(same(vals[k], x[p * hw + i]), "max of window {k}");
            }
            let gy: Vec<T> = (0..idx.len())
                .map(|k| T::c(k as f64 * 0.25 + 1.0))
                .collect();
            let fast = pool.max_2x2_backward(&codes, &gy);
            let general = pool.max_backward(&idx, &gy);
            assert_eq!(fast.len(), general.len());
            for (e, (a, b)) in fast.iter().zip(&general).enumerate() {
                assert!(a == b, "dx[{e}] in {planes}x{h}x{w}");
            }
        }
    }

    #[test]
    fn max_2x2_equals_the_general_pool_f32() {
        fast_equals_general::<f32>();
    }

    #[test]
    fn max_2x2_equals_the_general_pool_f64() {
        fast_equals_general::<f64>();
    }

    #[test]
    fn max_2x2_resolves_ties_and_nans_as_pytorch() {
        let pool = pool_2x2(1, 2, 2);
        let nan = f32::NAN;
        let cases: [([f32; 4], u8); 7] = [
            ([1.0, 1.0, 1.0, 1.0], 0),
            ([0.0, 2.0, 2.0, 1.0], 1),
            ([f32::NEG_INFINITY; 4], 0),
            ([1.0, 0.0, 3.0, 3.0], 2),
            ([1.0, nan, 5.0, nan], 1),
            ([nan, nan, nan, nan], 0),
            ([1.0, 2.0, 3.0, nan], 3),
        ];
        for (x, code) in cases {
            let (v, c) = pool.max_2x2(&x);
            assert_eq!(c, [code], "{x:?}");
            assert!(same(v[0], x[code as usize]), "{x:?}");
        }
    }
}
