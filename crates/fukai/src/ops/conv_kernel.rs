//! Convolution kernels: im2col per sample, then gemm by strides (so no operand is transposed in
//! memory). Samples run in parallel; a sample's own gemm only goes multi-threaded when there
//! are too few samples to keep the threads busy. gemm never splits its k loop across threads,
//! so every output element is summed in the same order either way.

use super::float::Float;
use super::matmul::{gemm_raw, parallelism};
use crate::parallel::{for_each_chunk_mut_with, for_each_item_mut, num_threads};
use gemm::Parallelism;

/// Cap on the elements held by per-chunk weight-gradient partials.
const PARTIAL_BUDGET: usize = 1 << 22;
/// Most weight-gradient partials; also the most parallel tasks in backward.
const MAX_PARTIALS: usize = 16;

/// Sizes of a validated 2-D convolution (1-D ones have `h == kh == 1`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub groups: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dil: [usize; 2],
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeom {
    fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Length of one group's column: input channels per group times kernel taps.
    fn kg(&self) -> usize {
        self.c / self.groups * self.kh * self.kw
    }
    fn l(&self) -> usize {
        self.oh * self.ow
    }
    fn chw(&self) -> usize {
        self.c * self.h * self.w
    }
    /// A 1x1, stride-1, unpadded kernel: the input already is its column matrix.
    fn direct(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
    }
    fn col_len(&self) -> usize {
        if self.direct() {
            0
        } else {
            self.c * self.kh * self.kw * self.l()
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

/// Calls `f(row, c, oy, iy, (xlo, xhi, x0))` for each (channel `c`, tap) row `row` of the column
/// matrix and each output row `oy`: `iy` is the input row (None in the padding), `xlo..xhi` the
/// output columns that read the input, starting at input column `x0`.
fn for_each_tap(
    g: &ConvGeom,
    mut f: impl FnMut(usize, usize, usize, Option<usize>, (usize, usize, usize)),
) {
    let [sh, sw] = g.stride;
    let [ph, pw] = g.pad;
    let [dh, dw] = g.dil;
    for c in 0..g.c {
        for ki in 0..g.kh {
            let (ylo, yhi) = valid_range(ki, sh, ph, dh, g.h, g.oh);
            for kj in 0..g.kw {
                let (xlo, xhi) = valid_range(kj, sw, pw, dw, g.w, g.ow);
                let x0 = (xlo * sw + kj * dw).wrapping_sub(pw);
                let row = (c * g.kh + ki) * g.kw + kj;
                for oy in 0..g.oh {
                    let iy = (ylo <= oy && oy < yhi).then(|| oy * sh + ki * dh - ph);
                    f(row, c, oy, iy, (xlo, xhi, x0));
                }
            }
        }
    }
}

/// Unfolds one sample `x` [C, H, W] into `col` [C*kh*kw, OH*OW], zeros where padding is read.
fn im2col<T: Float>(g: &ConvGeom, x: &[T], col: &mut [T]) {
    let (l, hw, sw) = (g.l(), g.h * g.w, g.stride[1]);
    for_each_tap(g, |row, c, oy, iy, (xlo, xhi, x0)| {
        let dst = &mut col[row * l + oy * g.ow..row * l + (oy + 1) * g.ow];
        let Some(iy) = iy.filter(|_| xlo < xhi) else {
            dst.fill(T::ZERO);
            return;
        };
        let src = &x[c * hw + iy * g.w..c * hw + (iy + 1) * g.w];
        dst[..xlo].fill(T::ZERO);
        dst[xhi..].fill(T::ZERO);
        if sw == 1 {
            dst[xlo..xhi].copy_from_slice(&src[x0..x0 + xhi - xlo]);
        } else {
            for (d, s) in dst[xlo..xhi].iter_mut().zip(src[x0..].iter().step_by(sw)) {
                *d = *s;
            }
        }
    });
}

/// Folds `col` back onto one sample's input gradient `dx` [C, H, W], adding overlapping taps.
fn col2im<T: Float>(g: &ConvGeom, col: &[T], dx: &mut [T]) {
    let (l, hw, sw) = (g.l(), g.h * g.w, g.stride[1]);
    dx.fill(T::ZERO);
    for_each_tap(g, |row, c, oy, iy, (xlo, xhi, x0)| {
        let Some(iy) = iy.filter(|_| xlo < xhi) else {
            return;
        };
        let src = &col[row * l + oy * g.ow + xlo..row * l + oy * g.ow + xhi];
        let dst = &mut dx[c * hw + iy * g.w..c * hw + (iy + 1) * g.w];
        if sw == 1 {
            for (d, s) in dst[x0..].iter_mut().zip(src) {
                *d += *s;
            }
        } else {
            for (d, s) in dst[x0..].iter_mut().step_by(sw).zip(src) {
                *d += *s;
            }
        }
    });
}

/// Safe face of [`gemm_raw`]: checks that every element the strides reach is in bounds.
/// `dst[m×n]` (row stride `dst_rs`) = (or +=) `lhs[m×k] · rhs[k×n]`, operands as (row, col) strides.
#[allow(clippy::too_many_arguments)]
fn gemm<T: Float>(
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

/// gemm threading inside one of `tasks` parallel tasks: only when tasks cannot fill the threads.
fn inner_par(tasks: usize, m: usize, n: usize, k: usize) -> Parallelism {
    if tasks >= num_threads() {
        Parallelism::None
    } else {
        parallelism(m, n, k)
    }
}

/// Forward: `x` [N, C, H, W], `w` [O, C/groups, kh, kw], optional `bias` [O] → [N, O, OH, OW].
pub(crate) fn conv_forward<T: Float>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
    let (og, kg, l, chw) = (g.og(), g.kg(), g.l(), g.chw());
    let mut out = vec![T::ZERO; g.n * g.o * l];
    if out.is_empty() {
        return out;
    }
    let par = inner_par(g.n, og, l, kg);
    let init = || vec![T::ZERO; g.col_len()];
    for_each_chunk_mut_with(&mut out, g.o * l, init, |col, n, y| {
        let xs = &x[n * chw..(n + 1) * chw];
        if let Some(b) = bias {
            for (row, &bv) in y.chunks_exact_mut(l).zip(b) {
                row.fill(bv);
            }
        }
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
    });
    out
}

/// How many partial weight gradients backward sums (one per chunk of samples). Depends on the
/// shapes only, never on the thread count, so the summation order is always the same.
fn weight_partials(g: &ConvGeom) -> usize {
    let by_memory = (PARTIAL_BUDGET / (g.o * g.kg()).max(1)).max(1);
    g.n.min(MAX_PARTIALS).min(by_memory).max(1)
}

/// Backward: gradients of input and weight (each only when asked) from `gy` [N, O, OH, OW].
pub(crate) fn conv_backward<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    gy: &[T],
    need_x: bool,
    need_w: bool,
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    let (og, kg, l, chw) = (g.og(), g.kg(), g.l(), g.chw());
    let per = g.n.div_ceil(weight_partials(g)).max(1);
    let parts = g.n.div_ceil(per);
    let mut dx = vec![T::ZERO; if need_x { g.n * chw } else { 0 }];
    let mut dx_chunks = dx.chunks_mut((per * chw).max(1));
    // Each task owns its samples' slice of dx and produces its own weight partial.
    let mut tasks: Vec<(&mut [T], Vec<T>)> = (0..parts)
        .map(|_| (dx_chunks.next().unwrap_or_default(), Vec::new()))
        .collect();
    let par = inner_par(parts, og.max(kg), l, kg.max(og));
    for_each_item_mut(&mut tasks, |p, (dxc, dwp)| {
        let mut col = vec![T::ZERO; g.col_len()];
        if need_w {
            *dwp = vec![T::ZERO; g.o * kg];
        }
        for (i, n) in (p * per..((p + 1) * per).min(g.n)).enumerate() {
            let xs = &x[n * chw..(n + 1) * chw];
            let gys = &gy[n * g.o * l..(n + 1) * g.o * l];
            if need_w {
                let src: &[T] = if g.direct() {
                    xs
                } else {
                    im2col(g, xs, &mut col);
                    &col
                };
                for gi in 0..g.groups {
                    gemm(
                        (og, kg, l),
                        &mut dwp[gi * og * kg..],
                        kg,
                        &gys[gi * og * l..],
                        (l, 1),
                        &src[gi * kg * l..],
                        (1, l),
                        i > 0,
                        par,
                    );
                }
            }
            if need_x {
                let dxs = &mut dxc[i * chw..(i + 1) * chw];
                let direct = g.direct();
                let dcol: &mut [T] = if direct { dxs } else { &mut col };
                for gi in 0..g.groups {
                    gemm(
                        (kg, l, og),
                        &mut dcol[gi * kg * l..],
                        l,
                        &w[gi * og * kg..],
                        (1, kg),
                        &gys[gi * og * l..],
                        (l, 1),
                        false,
                        par,
                    );
                }
                if !direct {
                    col2im(g, &col, &mut dxc[i * chw..(i + 1) * chw]);
                }
            }
        }
    });
    let dw = need_w.then(|| {
        let mut parts = tasks.into_iter().map(|(_, p)| p);
        let mut acc = parts.next().unwrap_or_else(|| vec![T::ZERO; g.o * kg]);
        for p in parts {
            for (a, b) in acc.iter_mut().zip(p) {
                *a += b;
            }
        }
        acc
    });
    (need_x.then_some(dx), dw)
}

/// Bias gradient: `gy` summed over batch and positions, per output channel, in a fixed order.
pub(crate) fn conv_bias_grad<T: Float>(g: &ConvGeom, gy: &[T]) -> Vec<T> {
    let l = g.l();
    crate::parallel::map_range(g.o, |o| {
        let mut total = T::ZERO;
        for n in 0..g.n {
            let row = &gy[(n * g.o + o) * l..(n * g.o + o + 1) * l];
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
