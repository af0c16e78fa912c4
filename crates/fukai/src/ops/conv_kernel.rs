//! Convolution kernels: im2col per input plane of each sample, then gemm by strides (so no
//! operand is transposed in memory). A 3-D convolution is a sum over its depth taps of 2-D ones:
//! output plane `oz` gets, for each depth tap `kz`, that tap's weights times the 2-D column
//! matrix of the input plane it reads. Each input plane is unfolded once (not once per depth
//! tap, as a 3-D column matrix would), and its columns are used while still in cache; a 2-D
//! convolution is the one plane, one depth tap case. Samples run in parallel; a sample's own gemm only goes multi-threaded when there
//! are too few samples to keep the threads busy. gemm never splits its k loop across threads,
//! so every output element is summed in the same order either way.

use super::conv_phase::Phases;
use super::float::Float;
use super::matmul::{gemm_at, parallelism};
use super::transpose::transpose;
use super::winograd::{wino_forward, wino_input_grad, wino_weight_grad, WinoGeom};
use crate::autograd::Precision;
use crate::parallel::{build_chunks, map_range};
use gemm::Parallelism;
use std::borrow::Cow;
use std::ops::Range;

/// Fewer parallel tasks than this (samples, weight-gradient partials) also thread their gemms.
const FEW_TASKS: usize = 4;
/// Cap on the elements held by per-chunk weight-gradient partials.
const PARTIAL_BUDGET: usize = 1 << 22;
/// Most weight-gradient partials, which are also the weight-gradient pass's parallel tasks.
const MAX_PARTIALS: usize = 16;

/// Sizes of a validated convolution over three spatial axes (depth, height, width); 2-D ones
/// have `d == kd == od == 1` and 1-D ones also `h == kh == oh == 1`. A transposed convolution
/// runs on the geometry of the convolution whose input gradient it is: its output is `c, d, h,
/// w` here and its input `o, od, oh, ow`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeom {
    pub n: usize,
    pub c: usize,
    pub d: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub groups: usize,
    pub kd: usize,
    pub kh: usize,
    pub kw: usize,
    /// Per axis (depth, height, width).
    pub stride: [usize; 3],
    pub pad: [usize; 3],
    pub dil: [usize; 3],
    pub od: usize,
    pub oh: usize,
    pub ow: usize,
    /// What the im2col products compute in: the caller's [`crate::precision`] when the op was
    /// called, kept for its backward (tasks on other threads cannot read the caller's).
    pub precision: Precision,
}

impl ConvGeom {
    fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Column rows of one group for one depth tap: input channels per group times the taps of
    /// a plane.
    fn kp(&self) -> usize {
        self.c / self.groups * self.kh * self.kw
    }
    /// Output positions per channel.
    pub fn l(&self) -> usize {
        self.od * self.ohw()
    }
    /// Output positions per plane.
    pub(super) fn ohw(&self) -> usize {
        self.oh * self.ow
    }
    /// Input positions per plane.
    pub(super) fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Input positions per channel.
    pub fn dhw(&self) -> usize {
        self.d * self.hw()
    }
    fn chw(&self) -> usize {
        self.c * self.dhw()
    }
    /// No depth: a 2-D (or 1-D) convolution, which the Winograd and device kernels cover.
    pub fn planar(&self) -> bool {
        self.d == 1 && self.kd == 1 && self.od == 1 && self.pad[0] == 0
    }
    /// A 1x1x1, stride-1, unpadded kernel: the input already is its column matrix.
    fn direct(&self) -> bool {
        self.kd == 1
            && self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1, 1]
            && self.pad == [0, 0, 0]
            && self.l() == self.dhw()
    }
    /// The Winograd form of this convolution, when it has one and Winograd pays for it.
    fn winograd(&self) -> Option<WinoGeom> {
        let wg = WinoGeom {
            n: self.n,
            c: self.c,
            h: self.h,
            w: self.w,
            o: self.o,
            pad: [self.pad[1], self.pad[2]],
        };
        let fits = self.planar()
            && self.kh == 3
            && self.kw == 3
            && self.stride[1..] == [1, 1]
            && self.dil[1..] == [1, 1]
            && self.groups == 1
            // A transposed convolution's input may be shorter than this convolution's output
            // (output padding below the dilation); Winograd derives the output from the input.
            && self.oh + 2 == self.h + 2 * self.pad[1]
            && self.ow + 2 == self.w + 2 * self.pad[2];
        (fits && wg.eligible()).then_some(wg)
    }
    /// Length of one input plane's column matrix [C*kh*kw, OH*OW].
    fn col_len(&self) -> usize {
        if self.direct() {
            0
        } else {
            self.c * self.kh * self.kw * self.ohw()
        }
    }
    /// The output plane that input plane `iz` feeds through depth tap `kz`, if any.
    fn out_plane(&self, iz: usize, kz: usize) -> Option<usize> {
        let [s, p, d] = [self.stride[0], self.pad[0], self.dil[0]];
        let r = (iz + p).checked_sub(kz * d)?;
        (r % s == 0 && r / s < self.od).then_some(r / s)
    }
    /// Offset of group `gi`'s depth tap `kz` in weights laid out [groups, kd, og, kp].
    fn tap_block(&self, gi: usize, kz: usize) -> usize {
        (gi * self.kd + kz) * self.og() * self.kp()
    }
    /// The (depth tap, output plane) pairs input plane `iz` feeds, in tap order.
    fn feeds(&self, iz: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.kd).filter_map(move |kz| self.out_plane(iz, kz).map(|oz| (kz, oz)))
    }
}

/// Output positions `lo..hi` along one axis whose input index `o*s + k*d - p` is in `0..len`.
fn valid_range(k: usize, s: usize, p: usize, d: usize, len: usize, out: usize) -> (usize, usize) {
    let off = k * d;
    let lo = if off >= p { 0 } else { (p - off).div_ceil(s) };
    let hi = if len + p > off {
        (len + p - off).div_ceil(s)
    } else {
        0
    };
    let hi = hi.min(out);
    (lo.min(hi), hi)
}

/// One row of a plane's column matrix: input channel `c`, and per axis the output range
/// `lo..hi` whose reads fall inside the input, with the input index `start` that `lo` reads.
pub(super) struct Tap {
    pub row: usize,
    pub c: usize,
    pub y: (usize, usize, usize),
    pub x: (usize, usize, usize),
}

impl Tap {
    pub(super) fn is_empty(&self) -> bool {
        self.y.0 == self.y.1 || self.x.0 == self.x.1
    }
}

/// A plane's column rows in order: by channel, then kernel row, then kernel column.
pub(super) fn taps(g: &ConvGeom) -> impl Iterator<Item = Tap> + '_ {
    let axis = move |a: usize, k: usize, len: usize, out: usize| {
        let (lo, hi) = valid_range(k, g.stride[a], g.pad[a], g.dil[a], len, out);
        // Only read when lo < hi, where it cannot underflow.
        let start = (lo * g.stride[a] + k * g.dil[a]).wrapping_sub(g.pad[a]);
        (lo, hi, start)
    };
    (0..g.c).flat_map(move |c| {
        (0..g.kh).flat_map(move |ki| {
            (0..g.kw).map(move |kj| Tap {
                row: (c * g.kh + ki) * g.kw + kj,
                c,
                y: axis(1, ki, g.h, g.oh),
                x: axis(2, kj, g.w, g.ow),
            })
        })
    })
}

/// With unit strides and `OW == W`, consecutive output rows of a tap read consecutive input
/// rows at the same offset, so a tap moves as one span: (column start, input start, length).
/// The span also covers the tap's padding columns, which callers patch up.
fn span(g: &ConvGeom, t: &Tap) -> Option<(usize, usize, usize)> {
    if g.stride[1..] != [1, 1] || g.ow != g.w {
        return None;
    }
    let ((ylo, yhi, y0), (xlo, xhi, x0)) = (t.y, t.x);
    Some((
        ylo * g.ow + xlo,
        y0 * g.w + x0,
        (yhi - ylo - 1) * g.ow + (xhi - xlo),
    ))
}

/// Zeroes the padding columns (`..xlo` and `xhi..`) of output rows `ylo..yhi` of a column row.
pub(super) fn zero_pad_columns<T: Float>(g: &ConvGeom, t: &Tap, row: &mut [T]) {
    let ((ylo, yhi, _), (xlo, xhi, _)) = (t.y, t.x);
    if xlo == 0 && xhi == g.ow {
        return;
    }
    // Usually one or two elements per row: plain stores beat a memset call each.
    for r in row[ylo * g.ow..yhi * g.ow].chunks_exact_mut(g.ow) {
        for i in (0..xlo).chain(xhi..g.ow) {
            r[i] = T::ZERO;
        }
    }
}

/// Unfolds input plane `iz` of one sample `x` [C, D, H, W] into `col` [C*kh*kw, OH*OW], zeros
/// where padding is read.
fn im2col<T: Float>(g: &ConvGeom, x: &[T], iz: usize, col: &mut [T]) {
    crate::simd::run(
        #[inline(always)]
        || {
            if let Some(p) = Phases::of(g) {
                return p.im2col(g, x, iz, col);
            }
            let (ohw, dhw, hw) = (g.ohw(), g.dhw(), g.hw());
            for t in taps(g) {
                let dst = &mut col[t.row * ohw..(t.row + 1) * ohw];
                if t.is_empty() {
                    dst.fill(T::ZERO);
                } else {
                    let at = t.c * dhw + iz * hw;
                    im2col_row(g, &t, &x[at..at + hw], dst);
                }
            }
        },
    )
}

/// One column row (a non-empty tap) from its input plane [H, W].
#[inline(always)]
fn im2col_row<T: Float>(g: &ConvGeom, t: &Tap, src: &[T], dst: &mut [T]) {
    let ((ylo, yhi, y0), (xlo, xhi, x0)) = (t.y, t.x);
    let ow = g.ow;
    dst[..ylo * ow].fill(T::ZERO);
    dst[yhi * ow..].fill(T::ZERO);
    if let Some((d0, s0, len)) = span(g, t) {
        dst[d0..d0 + len].copy_from_slice(&src[s0..s0 + len]);
        zero_pad_columns(g, t, dst);
        return;
    }
    let [_, sh, sw] = g.stride;
    for oy in ylo..yhi {
        let iy = y0 + (oy - ylo) * sh;
        let d = &mut dst[oy * ow..(oy + 1) * ow];
        // Usually one or two elements: plain stores beat a memset call each.
        for i in (0..xlo).chain(xhi..ow) {
            d[i] = T::ZERO;
        }
        gather(&mut d[xlo..xhi], &src[iy * g.w + x0..], sw);
    }
}

/// `d[i] = s[i * step]`, in a form the compiler vectorizes for the usual strides 1 and 2.
#[inline(always)]
fn gather<T: Float>(d: &mut [T], s: &[T], step: usize) {
    let n = d.len();
    match (n, step) {
        (0, _) => {}
        (_, 1) => d.copy_from_slice(&s[..n]),
        (_, 2) => {
            // Whole pairs up to the last element, which may be the input row's last.
            let (head, last) = d.split_at_mut(n - 1);
            for (d, pair) in head.iter_mut().zip(s[..2 * (n - 1)].chunks_exact(2)) {
                *d = pair[0];
            }
            last[0] = s[2 * (n - 1)];
        }
        _ => {
            for (d, s) in d.iter_mut().zip(s.iter().step_by(step)) {
                *d = *s;
            }
        }
    }
}

/// Adds `col` [C*kh*kw, OH*OW] back onto input plane `iz` of one sample's input gradient `dx`
/// [C, D, H, W]. `col` is scratch afterwards: its padding entries get zeroed.
fn col2im<T: Float>(g: &ConvGeom, col: &mut [T], iz: usize, dx: &mut [T]) {
    crate::simd::run(
        #[inline(always)]
        || {
            if let Some(p) = Phases::of(g) {
                return p.col2im(g, col, iz, dx);
            }
            let (ohw, dhw, hw) = (g.ohw(), g.dhw(), g.hw());
            for t in taps(g) {
                if !t.is_empty() {
                    let at = t.c * dhw + iz * hw;
                    let src = &mut col[t.row * ohw..(t.row + 1) * ohw];
                    col2im_row(g, &t, src, &mut dx[at..at + hw]);
                }
            }
        },
    )
}

/// Adds one column row (a non-empty tap) onto the input plane [H, W] it was read from.
#[inline(always)]
fn col2im_row<T: Float>(g: &ConvGeom, t: &Tap, src: &mut [T], dst: &mut [T]) {
    let ((ylo, yhi, y0), (xlo, xhi, x0)) = (t.y, t.x);
    let ow = g.ow;
    if let Some((d0, s0, len)) = span(g, t) {
        // Padding entries would land on neighbouring pixels; zero them so they add nothing.
        zero_pad_columns(g, t, src);
        for (d, s) in dst[s0..s0 + len].iter_mut().zip(&src[d0..d0 + len]) {
            *d += *s;
        }
        return;
    }
    let [_, sh, sw] = g.stride;
    for oy in ylo..yhi {
        let iy = y0 + (oy - ylo) * sh;
        let s = &src[oy * ow + xlo..oy * ow + xhi];
        for (d, s) in dst[iy * g.w + x0..].iter_mut().step_by(sw).zip(s) {
            *d += *s;
        }
    }
}

/// [`gemm_in`] in f32 (Winograd's products, whose transforms stay f32 under bf16).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: Float>(
    mnk: (usize, usize, usize),
    dst: &mut [T],
    dst_rs: usize,
    lhs: &[T],
    ls: (usize, usize),
    rhs: &[T],
    rs: (usize, usize),
    accumulate: bool,
    par: Parallelism,
) {
    let p = Precision::F32;
    gemm_in(p, mnk, dst, dst_rs, lhs, ls, rhs, rs, accumulate, par)
}

/// Safe face of [`gemm_at`]: checks that every element the strides reach is in bounds.
/// `dst[m×n]` (row stride `dst_rs`) = (or +=) `lhs[m×k] · rhs[k×n]`, operands given by
/// (row, col) strides, at precision `prec`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_in<T: Float>(
    prec: Precision,
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    dst_rs: usize,
    lhs: &[T],
    ls: (usize, usize),
    rhs: &[T],
    rs: (usize, usize),
    accumulate: bool,
    par: Parallelism,
) {
    let reach = |r: usize, c: usize, (a, b): (usize, usize)| {
        if r == 0 || c == 0 {
            0
        } else {
            (r - 1) * a + (c - 1) * b + 1
        }
    };
    assert!(
        reach(m, n, (dst_rs, 1)) <= dst.len()
            && reach(m, k, ls) <= lhs.len()
            && reach(k, n, rs) <= rhs.len(),
        "conv gemm operands out of bounds"
    );
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // SAFETY: bounds checked above; `dst` is a unique borrow so it cannot alias the inputs.
    unsafe {
        gemm_at::<T>(
            prec,
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_rs as isize,
            lhs.as_ptr(),
            (ls.0 as isize, ls.1 as isize),
            rhs.as_ptr(),
            (rs.0 as isize, rs.1 as isize),
            accumulate,
            par,
        )
    }
}

/// gemm threading inside one of `tasks` parallel tasks: only when there are too few tasks to
/// fill a few threads. Decided without the thread count, which would change how gemm splits
/// its work and so the bits.
pub(crate) fn inner_par(tasks: usize, m: usize, n: usize, k: usize) -> Parallelism {
    if tasks >= FEW_TASKS {
        Parallelism::None
    } else {
        parallelism(m, n, k)
    }
}

/// The weight [O, C/groups, kd, kh, kw] as [groups, kd, O/groups, C/groups*kh*kw], so each
/// depth tap's weights, and a group's taps stacked, are matrices gemm can read by strides
/// (borrowed as it is without depth).
fn by_depth_tap<'a, T: Float>(g: &ConvGeom, w: &'a [T]) -> Cow<'a, [T]> {
    if g.kd == 1 {
        return Cow::Borrowed(w);
    }
    let (og, cg, khw) = (g.og(), g.c / g.groups, g.kh * g.kw);
    let mut out = vec![T::ZERO; w.len()];
    // A plane's taps stay together: whole runs of kh*kw move at a time.
    let mut runs = w.chunks_exact(khw);
    for o in 0..g.o {
        for c in 0..cg {
            for kz in 0..g.kd {
                let at = g.tap_block(o / og, kz) + (o % og) * g.kp() + c * khw;
                out[at..at + khw]
                    .copy_from_slice(runs.next().expect("w is [O, C/groups, kd, kh, kw]"));
            }
        }
    }
    Cow::Owned(out)
}

/// The weight [O, C/groups, kd, kh, kw] as [groups, kd, C/groups*kh*kw, O/groups]: each depth
/// tap's weights transposed, the left operand of the input gradient's gemms. Read in place as
/// W^T (strides (1, kp)), gemm would repack every tap's block in every call; laid out like this
/// it reads them as they are.
fn by_depth_tap_transposed<T: Float>(g: &ConvGeom, w: &[T]) -> Vec<T> {
    let (og, cg, khw) = (g.og(), g.c / g.groups, g.kh * g.kw);
    let mut out = vec![T::ZERO; w.len()];
    let mut runs = w.chunks_exact(khw);
    for o in 0..g.o {
        for c in 0..cg {
            for kz in 0..g.kd {
                let at = g.tap_block(o / og, kz) + c * khw * og + o % og;
                let run = runs.next().expect("w is [O, C/groups, kd, kh, kw]");
                for (r, &v) in run.iter().enumerate() {
                    out[at + r * og] = v;
                }
            }
        }
    }
    out
}

/// The column matrix of input plane `iz` of sample `xs` and its row stride: the input itself
/// for a direct convolution, else unfolded into `col`.
fn plane_columns<'a, T: Float>(
    g: &ConvGeom,
    xs: &'a [T],
    iz: usize,
    col: &'a mut [T],
) -> (&'a [T], usize) {
    if g.direct() {
        (&xs[iz * g.hw()..], g.dhw())
    } else {
        im2col(g, xs, iz, col);
        (col, g.ohw())
    }
}

/// Forward: `x` [N, C, D, H, W], `w` [O, C/groups, kd, kh, kw], optional `bias` [O] →
/// [N, O, OD, OH, OW].
pub(crate) fn conv_forward<T: Float>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
    let (og, kp, l, ohw, chw) = (g.og(), g.kp(), g.l(), g.ohw(), g.chw());
    if g.n * g.o * l == 0 {
        return Vec::new();
    }
    if let Some(wg) = g.winograd() {
        return wino_forward(&wg, x, w, bias);
    }
    let wd = by_depth_tap(g, w);
    let par = inner_par(g.n, og, ohw, kp);
    // Stacked depth taps write to a scratch block first.
    let init = || (vec![T::ZERO; g.col_len()], vec![T::ZERO; stack_len(g)]);
    let fill = |o: usize| bias.map_or(T::ZERO, |b| b[o]);
    build_chunks(g.n * g.o * l, (g.o * l, l), fill, init, |(col, z), n, y| {
        let xs = &x[n * chw..(n + 1) * chw];
        for iz in 0..g.d {
            let Some(taps) = tap_range(g, iz) else {
                continue;
            };
            let (src, rs) = plane_columns(g, xs, iz, col);
            for gi in 0..g.groups {
                let (w, cols) = (&wd[g.tap_block(gi, taps.start)..], &src[gi * kp * rs..]);
                if g.kd == 1 {
                    // One tap: gemm writes the output plane it feeds (onto the bias if any).
                    for (_, oz) in g.feeds(iz) {
                        let y = &mut y[gi * og * l + oz * ohw..];
                        gemm_in(
                            g.precision,
                            (og, ohw, kp),
                            y,
                            l,
                            w,
                            (kp, 1),
                            cols,
                            (rs, 1),
                            bias.is_some(),
                            par,
                        );
                    }
                    continue;
                }
                // All the plane's taps in one gemm (the columns are packed once, not once per
                // tap), each tap's block then added to the output plane it feeds.
                let m = taps.len() * og;
                gemm_in(
                    g.precision,
                    (m, ohw, kp),
                    z,
                    ohw,
                    w,
                    (kp, 1),
                    cols,
                    (rs, 1),
                    false,
                    par,
                );
                for (kz, oz) in g.feeds(iz) {
                    let block = &z[(kz - taps.start) * og * ohw..][..og * ohw];
                    let out = &mut y[gi * og * l + oz * ohw..];
                    for (o, row) in block.chunks_exact(ohw).enumerate() {
                        for (d, s) in out[o * l..o * l + ohw].iter_mut().zip(row) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    })
}

/// Whether input plane `iz`'s depth taps `taps` run as one gemm: several of them and no gaps
/// between them (depth stride above 1), whose zeros times an infinite value would leave NaN.
fn stacks(g: &ConvGeom, iz: usize, taps: &Range<usize>) -> bool {
    g.kd > 1 && g.feeds(iz).count() == taps.len()
}

/// Scratch for a plane's stacked depth taps: their outputs, or their gy planes.
fn stack_len(g: &ConvGeom) -> usize {
    if g.kd > 1 {
        g.kd * g.og() * g.ohw()
    } else {
        0
    }
}

/// Gathers the planes [og, OH*OW] of one sample's `gys` that group `gi`'s depth taps `taps`
/// of input plane `iz` feed, transposed and side by side in tap order: [OH*OW, taps * og].
/// gemm then reads this operand along its rows as they are; handed the planes untransposed, it
/// gathered them element by element into its packed layout, and the product ran about 20%
/// slower (512x192x256, the benchmark's shape).
fn gather_taps<T: Float>(
    g: &ConvGeom,
    gys: &[T],
    iz: usize,
    gi: usize,
    taps: &Range<usize>,
    stack: &mut [T],
) {
    let (og, ohw, l) = (g.og(), g.ohw(), g.l());
    let width = taps.len() * og;
    for (kz, oz) in g.feeds(iz) {
        let from = &gys[gi * og * l + oz * ohw..];
        let to = &mut stack[(kz - taps.start) * og..];
        transpose((og, ohw), from, l, to, width);
    }
}

/// The depth taps from the first to the last that input plane `iz` feeds, if any.
fn tap_range(g: &ConvGeom, iz: usize) -> Option<Range<usize>> {
    let mut feeds = g.feeds(iz).map(|(kz, _)| kz);
    let first = feeds.next()?;
    Some(first..feeds.last().unwrap_or(first) + 1)
}

/// Input gradient from `gy` [N, O, OD, OH, OW]: per input plane, the sum over depth taps of
/// W^T · gy of the output plane the tap feeds, folded back by col2im. With `bias` [C] (a
/// transposed convolution's forward pass), each channel starts from its bias instead of zero.
pub(crate) fn conv_input_grad<T: Float>(
    g: &ConvGeom,
    w: &[T],
    gy: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    let (og, kp, l, ohw, hw, chw) = (g.og(), g.kp(), g.l(), g.ohw(), g.hw(), g.chw());
    if g.n * chw == 0 {
        return Vec::new();
    }
    if let Some(wg) = g.winograd() {
        let mut dx = wino_input_grad(&wg, w, gy);
        if let Some(b) = bias {
            for (plane, &b) in dx.chunks_exact_mut(g.dhw()).zip(b.iter().cycle()) {
                plane.iter_mut().for_each(|v| *v += b);
            }
        }
        return dx;
    }
    let wt = by_depth_tap_transposed(g, w);
    let par = inner_par(g.n, kp, ohw, og);
    let init = || vec![T::ZERO; g.col_len()];
    let fill = |c: usize| bias.map_or(T::ZERO, |b| b[c]);
    build_chunks(g.n * chw, (chw, g.dhw()), fill, init, |col, n, dx| {
        let gys = &gy[n * g.o * l..(n + 1) * g.o * l];
        for iz in 0..g.d {
            let mut first = true;
            for (kz, oz) in g.feeds(iz) {
                // Direct: gemm writes dx itself, onto the bias if any.
                let (dst, rs, acc): (&mut [T], _, _) = if g.direct() {
                    (&mut dx[iz * hw..], g.dhw(), bias.is_some() || !first)
                } else {
                    (&mut col[..], ohw, !first)
                };
                for gi in 0..g.groups {
                    gemm_in(
                        g.precision,
                        (kp, ohw, og),
                        &mut dst[gi * kp * rs..],
                        rs,
                        &wt[g.tap_block(gi, kz)..],
                        (og, 1),
                        &gys[gi * og * l + oz * ohw..],
                        (l, 1),
                        acc,
                        par,
                    );
                }
                first = false;
            }
            if !first && !g.direct() {
                col2im(g, col, iz, dx);
            }
        }
    })
}

/// How many partial weight gradients backward sums (one per chunk of samples). Depends on the
/// shapes only, never on the thread count, so the summation order is always the same.
fn weight_partials(g: &ConvGeom) -> usize {
    let by_memory = (PARTIAL_BUDGET / (g.o * g.kp() * g.kd).max(1)).max(1);
    g.n.min(MAX_PARTIALS).min(by_memory).max(1)
}

/// Weight gradient: by Winograd where the convolution takes it, else per depth tap the sum of
/// gy · col^T over samples and the input planes the tap reads, as per-chunk partials added in
/// order.
pub(crate) fn conv_weight_grad<T: Float>(g: &ConvGeom, x: &[T], gy: &[T]) -> Vec<T> {
    if let Some(wg) = g.winograd() {
        return wino_weight_grad(&wg, x, gy);
    }
    let (og, kp, l, ohw, chw) = (g.og(), g.kp(), g.l(), g.ohw(), g.chw());
    let (size, row) = (g.o * kp * g.kd, g.kd * og);
    let per = g.n.div_ceil(weight_partials(g)).max(1);
    let parts = g.n.div_ceil(per);
    let par = inner_par(parts, og, kp, ohw);
    let partials = map_range(parts, |p| {
        let mut col = vec![T::ZERO; g.col_len()];
        // Per group computed transposed, [kp, kd * og]: gemm then gathers gy (og x OH*OW per
        // tap) for its packed operand instead of the 4-10x larger column matrix.
        let mut dw = vec![T::ZERO; size];
        let mut touched = vec![false; g.kd];
        let mut stack = vec![T::ZERO; stack_len(g)];
        for n in p * per..((p + 1) * per).min(g.n) {
            let xs = &x[n * chw..(n + 1) * chw];
            let gys = &gy[n * g.o * l..(n + 1) * g.o * l];
            for iz in 0..g.d {
                let Some(taps) = tap_range(g, iz) else {
                    continue;
                };
                let (src, rs) = plane_columns(g, xs, iz, &mut col);
                let stacked = stacks(g, iz, &taps);
                for gi in 0..g.groups {
                    let (dst, cols) = (&mut dw[gi * kp * row..], &src[gi * kp * rs..]);
                    if stacked {
                        gather_taps(g, gys, iz, gi, &taps, &mut stack);
                        let width = taps.len() * og;
                        let dst = &mut dst[taps.start * og..];
                        let m = (kp, width, ohw);
                        gemm_in(
                            g.precision,
                            m,
                            dst,
                            row,
                            cols,
                            (rs, 1),
                            &stack,
                            (width, 1),
                            true,
                            par,
                        );
                        continue;
                    }
                    for (kz, oz) in g.feeds(iz) {
                        let from = &gys[gi * og * l + oz * ohw..];
                        let acc = touched[kz] || g.kd > 1;
                        let dst = &mut dst[kz * og..];
                        gemm_in(
                            g.precision,
                            (kp, og, ohw),
                            dst,
                            row,
                            cols,
                            (rs, 1),
                            from,
                            (1, l),
                            acc,
                            par,
                        );
                    }
                }
                for (kz, _) in g.feeds(iz) {
                    touched[kz] = true;
                }
            }
        }
        dw
    });
    let mut parts = partials.into_iter();
    let mut acc = parts.next().unwrap_or_else(|| vec![T::ZERO; size]);
    for p in parts {
        for (a, b) in acc.iter_mut().zip(p) {
            *a += b;
        }
    }
    // [groups, kp, kd, og] back to [O, C/groups, kd, kh, kw].
    let (khw, cg) = (g.kh * g.kw, g.c / g.groups);
    let mut dw = vec![T::ZERO; size];
    for (i, &v) in acc.iter().enumerate() {
        let (gi, j, kz, oo) = (i / (kp * row), i / row % kp, i / og % g.kd, i % og);
        let (c, r) = (j / khw, j % khw);
        dw[(((gi * og + oo) * cg + c) * g.kd + kz) * khw + r] = v;
    }
    dw
}

/// Bias gradient: `gy` [N, C, L] summed over batch and positions, per channel, in a fixed
/// order.
pub(crate) fn channel_sums<T: Float>((n, c, l): (usize, usize, usize), gy: &[T]) -> Vec<T> {
    map_range(c, |ch| {
        let mut total = T::ZERO;
        for i in 0..n {
            let row = &gy[(i * c + ch) * l..(i * c + ch + 1) * l];
            let mut acc = [T::ZERO; 8];
            let mut it = row.chunks_exact(8);
            for c in &mut it {
                for k in 0..8 {
                    acc[k] += c[k];
                }
            }
            let mut s = acc.into_iter().sum::<T>();
            for &v in it.remainder() {
                s += v;
            }
            total += s;
        }
        total
    })
}
