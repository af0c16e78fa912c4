//! Convolution kernels: im2col per sample, then gemm by strides (so no operand is transposed in
//! memory). Samples run in parallel; a sample's own gemm only goes multi-threaded when there
//! are too few samples to keep the threads busy. gemm never splits its k loop across threads,
//! so every output element is summed in the same order either way.

use super::float::Float;
use super::matmul::{gemm_raw, parallelism};
use super::winograd::{wino_forward, wino_input_grad, wino_weight_grad, WinoGeom};
use crate::parallel::{build_chunks, map_range};
use gemm::Parallelism;

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
}

impl ConvGeom {
    fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Length of one group's column: input channels per group times kernel taps.
    fn kg(&self) -> usize {
        self.c / self.groups * self.kd * self.kh * self.kw
    }
    /// Output positions per channel.
    pub fn l(&self) -> usize {
        self.od * self.oh * self.ow
    }
    /// Input positions per channel.
    pub fn dhw(&self) -> usize {
        self.d * self.h * self.w
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
    fn col_len(&self) -> usize {
        if self.direct() {
            0
        } else {
            self.c * self.kd * self.kh * self.kw * self.l()
        }
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

/// One row of the column matrix: input channel `c`, and per axis the output range `lo..hi`
/// whose reads fall inside the input, with the input index `start` that `lo` reads.
struct Tap {
    row: usize,
    c: usize,
    z: (usize, usize, usize),
    y: (usize, usize, usize),
    x: (usize, usize, usize),
}

impl Tap {
    fn is_empty(&self) -> bool {
        self.z.0 == self.z.1 || self.y.0 == self.y.1 || self.x.0 == self.x.1
    }
}

fn taps(g: &ConvGeom) -> impl Iterator<Item = Tap> + '_ {
    let axis = move |a: usize, k: usize, len: usize, out: usize| {
        let (lo, hi) = valid_range(k, g.stride[a], g.pad[a], g.dil[a], len, out);
        // Only read when lo < hi, where it cannot underflow.
        let start = (lo * g.stride[a] + k * g.dil[a]).wrapping_sub(g.pad[a]);
        (lo, hi, start)
    };
    (0..g.c).flat_map(move |c| {
        (0..g.kd).flat_map(move |kz| {
            (0..g.kh).flat_map(move |ki| {
                (0..g.kw).map(move |kj| Tap {
                    row: ((c * g.kd + kz) * g.kh + ki) * g.kw + kj,
                    c,
                    z: axis(0, kz, g.d, g.od),
                    y: axis(1, ki, g.h, g.oh),
                    x: axis(2, kj, g.w, g.ow),
                })
            })
        })
    })
}

/// The input planes a tap reads: (output plane, input plane) for each output depth it reaches.
fn planes(g: &ConvGeom, t: &Tap) -> impl Iterator<Item = (usize, usize)> {
    let ((lo, hi, start), s) = (t.z, g.stride[0]);
    (lo..hi).map(move |oz| (oz, start + (oz - lo) * s))
}

/// With unit strides and `OW == W`, consecutive output rows of a tap read consecutive input
/// rows at the same offset, so a tap moves as one span per plane: (column start, input start,
/// length). The span also covers the tap's padding columns, which callers patch up.
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

/// Zeroes the padding columns (`..xlo` and `xhi..`) of output rows `ylo..yhi` of a column
/// row's plane.
fn zero_pad_columns<T: Float>(g: &ConvGeom, t: &Tap, plane: &mut [T]) {
    let ((ylo, yhi, _), (xlo, xhi, _)) = (t.y, t.x);
    if xlo == 0 && xhi == g.ow {
        return;
    }
    // Usually one or two elements per row: plain stores beat a memset call each.
    for r in plane[ylo * g.ow..yhi * g.ow].chunks_exact_mut(g.ow) {
        for i in (0..xlo).chain(xhi..g.ow) {
            r[i] = T::ZERO;
        }
    }
}

/// Unfolds one sample `x` [C, D, H, W] into `col` [C*kd*kh*kw, OD*OH*OW], zeros where padding
/// is read.
fn im2col<T: Float>(g: &ConvGeom, x: &[T], col: &mut [T]) {
    let (l, dhw, hw, ohw) = (g.l(), g.dhw(), g.h * g.w, g.oh * g.ow);
    for t in taps(g) {
        let dst = &mut col[t.row * l..(t.row + 1) * l];
        if t.is_empty() {
            dst.fill(T::ZERO);
            continue;
        }
        let src = &x[t.c * dhw..(t.c + 1) * dhw];
        dst[..t.z.0 * ohw].fill(T::ZERO);
        dst[t.z.1 * ohw..].fill(T::ZERO);
        for (oz, iz) in planes(g, &t) {
            let plane = &mut dst[oz * ohw..(oz + 1) * ohw];
            im2col_plane(g, &t, &src[iz * hw..(iz + 1) * hw], plane);
        }
    }
}

/// One output plane [OH, OW] of a column row from one input plane [H, W].
fn im2col_plane<T: Float>(g: &ConvGeom, t: &Tap, src: &[T], dst: &mut [T]) {
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
        let (d, s) = (&mut dst[oy * ow..(oy + 1) * ow], &src[iy * g.w..]);
        d[..xlo].fill(T::ZERO);
        d[xhi..].fill(T::ZERO);
        for (d, s) in d[xlo..xhi].iter_mut().zip(s[x0..].iter().step_by(sw)) {
            *d = *s;
        }
    }
}

/// Adds `col` back onto one sample's input gradient `dx` [C, D, H, W]. `col` is scratch
/// afterwards: its padding entries get zeroed.
fn col2im<T: Float>(g: &ConvGeom, col: &mut [T], dx: &mut [T]) {
    let (l, dhw, hw, ohw) = (g.l(), g.dhw(), g.h * g.w, g.oh * g.ow);
    for t in taps(g) {
        if t.is_empty() {
            continue;
        }
        let src = &mut col[t.row * l..(t.row + 1) * l];
        let dst = &mut dx[t.c * dhw..(t.c + 1) * dhw];
        for (oz, iz) in planes(g, &t) {
            let plane = &mut src[oz * ohw..(oz + 1) * ohw];
            col2im_plane(g, &t, plane, &mut dst[iz * hw..(iz + 1) * hw]);
        }
    }
}

/// Adds one output plane of a column row onto the input plane [H, W] it was read from.
fn col2im_plane<T: Float>(g: &ConvGeom, t: &Tap, src: &mut [T], dst: &mut [T]) {
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

/// Safe face of [`gemm_raw`]: checks that every element the strides reach is in bounds.
/// `dst[m×n]` (row stride `dst_rs`) = (or +=) `lhs[m×k] · rhs[k×n]`, operands given by
/// (row, col) strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: Float>(
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
        gemm_raw::<T>(
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

/// Forward: `x` [N, C, D, H, W], `w` [O, C/groups, kd, kh, kw], optional `bias` [O] →
/// [N, O, OD, OH, OW].
pub(crate) fn conv_forward<T: Float>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
    let (og, kg, l, chw) = (g.og(), g.kg(), g.l(), g.chw());
    if g.n * g.o * l == 0 {
        return Vec::new();
    }
    if let Some(wg) = g.winograd() {
        return wino_forward(&wg, x, w, bias);
    }
    let par = inner_par(g.n, og, l, kg);
    let init = || vec![T::ZERO; g.col_len()];
    let fill = |o: usize| bias.map_or(T::ZERO, |b| b[o]);
    build_chunks(g.n * g.o * l, (g.o * l, l), fill, init, |col, n, y| {
        let xs = &x[n * chw..(n + 1) * chw];
        let src: &[T] = if g.direct() {
            xs
        } else {
            im2col(g, xs, col);
            col
        };
        for gi in 0..g.groups {
            gemm(
                (og, l, kg),
                &mut y[gi * og * l..],
                l,
                &w[gi * og * kg..],
                (kg, 1),
                &src[gi * kg * l..],
                (l, 1),
                bias.is_some(),
                par,
            );
        }
    })
}

/// Input gradient from `gy` [N, O, OD, OH, OW]: per sample, W^T · gy, folded back by col2im.
/// With `bias` [C] (a transposed convolution's forward pass), each channel starts from its bias
/// instead of zero.
pub(crate) fn conv_input_grad<T: Float>(
    g: &ConvGeom,
    w: &[T],
    gy: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    let (og, kg, l, chw) = (g.og(), g.kg(), g.l(), g.chw());
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
    let par = inner_par(g.n, kg, l, og);
    let init = || vec![T::ZERO; g.col_len()];
    let fill = |c: usize| bias.map_or(T::ZERO, |b| b[c]);
    build_chunks(g.n * chw, (chw, g.dhw()), fill, init, |col, n, dx| {
        let gys = &gy[n * g.o * l..(n + 1) * g.o * l];
        let dcol: &mut [T] = if g.direct() { dx } else { col };
        for gi in 0..g.groups {
            gemm(
                (kg, l, og),
                &mut dcol[gi * kg * l..],
                l,
                &w[gi * og * kg..],
                (1, kg),
                &gys[gi * og * l..],
                (l, 1),
                g.direct() && bias.is_some(),
                par,
            );
        }
        if !g.direct() {
            col2im(g, col, dx);
        }
    })
}

/// How many partial weight gradients backward sums (one per chunk of samples). Depends on the
/// shapes only, never on the thread count, so the summation order is always the same.
fn weight_partials(g: &ConvGeom) -> usize {
    let by_memory = (PARTIAL_BUDGET / (g.o * g.kg()).max(1)).max(1);
    g.n.min(MAX_PARTIALS).min(by_memory).max(1)
}

/// Weight gradient: by Winograd where the convolution takes it, else gy · col^T summed over
/// samples, as per-chunk partials added in order.
pub(crate) fn conv_weight_grad<T: Float>(g: &ConvGeom, x: &[T], gy: &[T]) -> Vec<T> {
    if let Some(wg) = g.winograd() {
        return wino_weight_grad(&wg, x, gy);
    }
    let (og, kg, l, chw) = (g.og(), g.kg(), g.l(), g.chw());
    let per = g.n.div_ceil(weight_partials(g)).max(1);
    let parts = g.n.div_ceil(per);
    let par = inner_par(parts, og, kg, l);
    let partials = map_range(parts, |p| {
        let mut col = vec![T::ZERO; g.col_len()];
        let mut dw = vec![T::ZERO; g.o * kg];
        for (i, n) in (p * per..((p + 1) * per).min(g.n)).enumerate() {
            let xs = &x[n * chw..(n + 1) * chw];
            let gys = &gy[n * g.o * l..(n + 1) * g.o * l];
            let src: &[T] = if g.direct() {
                xs
            } else {
                im2col(g, xs, &mut col);
                &col
            };
            // Computed transposed, [kg, og] per group: gemm then gathers gy (og x l) for its
            // packed operand instead of the 4-10x larger column matrix.
            for gi in 0..g.groups {
                gemm(
                    (kg, og, l),
                    &mut dw[gi * og * kg..],
                    og,
                    &src[gi * kg * l..],
                    (l, 1),
                    &gys[gi * og * l..],
                    (1, l),
                    i > 0,
                    par,
                );
            }
        }
        dw
    });
    let mut parts = partials.into_iter();
    let mut acc = parts.next().unwrap_or_else(|| vec![T::ZERO; g.o * kg]);
    for p in parts {
        for (a, b) in acc.iter_mut().zip(p) {
            *a += b;
        }
    }
    let mut dw = vec![T::ZERO; g.o * kg];
    for (t, d) in acc.chunks_exact(og * kg).zip(dw.chunks_exact_mut(og * kg)) {
        for (kk, row) in t.chunks_exact(og).enumerate() {
            for (o, &v) in row.iter().enumerate() {
                d[o * kg + kk] = v;
            }
        }
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
