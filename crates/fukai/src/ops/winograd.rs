//! Winograd convolution F(m×m, 3×3) for 3x3, stride-1 kernels: each m×m output tile is
//! `A^T [(G g G^T) ⊙ (B^T d B)] A` of its (m+2)² input tile `d`, so the channel sums become
//! (m+2)² independent gemms `[O × C]·[C × tiles]`, with 2.25x (F(2x2)) fewer multiplies than
//! the direct sum. The input gradient is the same operation on `gy` with the kernel rotated
//! 180° and its channel axes swapped (a "full" convolution, padding `2 - p`).
//!
//! Transforms run on whole planes so their loops are long and vectorize: the padded input is
//! stored split by row and column phase (index mod m), which turns every tile's stride-m
//! window into a contiguous run. Each tile row carries one extra, unused tile (its columns
//! read the next row), which costs 1/(tiles per row) more gemm work but keeps every transform
//! a flat loop. Work is split by fixed-size chunks of samples, and every output element comes
//! from one gemm whose threading is chosen from the shapes, so the bits never depend on the
//! thread count.

use super::conv_kernel::{gemm, inner_par};
use super::float::Float;
use crate::parallel::build_chunks;
use std::cell::Cell;

/// Fewest input and output channels for which Winograd beats im2col + gemm: below, the
/// transforms dominate (a 1-channel first layer is 3x slower).
const MIN_CHANNELS: usize = 16;
/// Elements of transformed input plus gemm output held per block (about 1 MiB of f32,
/// the size of one core's L2).
const BLOCK_ELEMS: usize = 1 << 18;

/// Output tile size, input tile size `a = m + 2`, and the transforms (row-major, in f64).
struct Transform {
    m: usize,
    a: usize,
    bt: &'static [f64],
    g: &'static [f64],
    at: &'static [f64],
}

/// F(2x2, 3x3) (Lavin and Gray, 2016): exact in f32 up to a few roundings per sum.
const F2: Transform = Transform {
    m: 2,
    a: 4,
    bt: &[
        1., 0., -1., 0., //
        0., 1., 1., 0., //
        0., -1., 1., 0., //
        0., 1., 0., -1.,
    ],
    g: &[
        1., 0., 0., //
        0.5, 0.5, 0.5, //
        0.5, -0.5, 0.5, //
        0., 0., 1.,
    ],
    at: &[
        1., 1., 1., 0., //
        0., 1., -1., -1.,
    ],
};

/// F(4x4, 3x3) with points 0, ±1, ±2: 4x fewer multiplies, but constants up to 8 cost
/// about ten times F(2x2)'s rounding error.
const F4: Transform = Transform {
    m: 4,
    a: 6,
    bt: &[
        4., 0., -5., 0., 1., 0., //
        0., -4., -4., 1., 1., 0., //
        0., 4., -4., -1., 1., 0., //
        0., -2., -1., 2., 1., 0., //
        0., 2., -1., -2., 1., 0., //
        0., 4., 0., -5., 0., 1.,
    ],
    g: &[
        1. / 4., 0., 0., //
        -1. / 6., -1. / 6., -1. / 6., //
        -1. / 6., 1. / 6., -1. / 6., //
        1. / 24., 1. / 12., 1. / 6., //
        1. / 24., -1. / 12., 1. / 6., //
        0., 0., 1.,
    ],
    at: &[
        1., 1., 1., 1., 1., 0., //
        0., 1., -1., 2., -2., 0., //
        0., 1., 1., 4., 4., 0., //
        0., 1., -1., 8., -8., 1.,
    ],
};

fn transform() -> &'static Transform {
    static KIND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *KIND.get_or_init(|| std::env::var("FUKAI_WINO").is_ok_and(|v| v == "4")) {
        &F4
    } else {
        &F2
    }
}

thread_local! {
    static DISABLED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with Winograd turned off on this thread, so convolutions take im2col + gemm:
/// lets tests compare the two paths.
pub fn without_winograd<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            DISABLED.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(DISABLED.with(|d| d.replace(true)));
    f()
}

/// A 3x3, stride-1 convolution `x` [N, C, H, W] → [N, O, OH, OW] with `OH = H + 2*pad - 2`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WinoGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub pad: [usize; 2],
}

impl WinoGeom {
    /// Whether Winograd runs this convolution (and pays).
    pub(crate) fn eligible(&self) -> bool {
        !DISABLED.with(Cell::get)
            && self.c >= MIN_CHANNELS
            && self.o >= MIN_CHANNELS
            && self.pad[0] <= 2
            && self.pad[1] <= 2
            && self.h + 2 * self.pad[0] >= 3
            && self.w + 2 * self.pad[1] >= 3
    }
    fn oh(&self) -> usize {
        self.h + 2 * self.pad[0] - 2
    }
    fn ow(&self) -> usize {
        self.w + 2 * self.pad[1] - 2
    }
}

/// A transform matrix as rows of its nonzero entries: (column, value).
fn sparse<T: Float>(mat: &[f64], cols: usize) -> Vec<Vec<(usize, T)>> {
    mat.chunks_exact(cols)
        .map(|row| {
            row.iter()
                .enumerate()
                .filter(|(_, v)| **v != 0.0)
                .map(|(j, v)| (j, T::c(*v)))
                .collect()
        })
        .collect()
}

/// `dst[f] = Σ coef * src[offset + f]` over `terms` (offset, coef): one transform row applied
/// to whole planes at once.
#[inline(always)]
fn combine<T: Float>(dst: &mut [T], src: &[T], terms: &[(usize, T)]) {
    let len = dst.len();
    let Some(((o0, c0), rest)) = terms.split_first() else {
        dst.fill(T::ZERO);
        return;
    };
    for (d, s) in dst.iter_mut().zip(&src[*o0..*o0 + len]) {
        *d = *c0 * *s;
    }
    for (o, c) in rest {
        for (d, s) in dst.iter_mut().zip(&src[*o..*o + len]) {
            *d += *c * *s;
        }
    }
}

/// `terms` with each column index mapped to a source offset, on the stack (rows have at most
/// six nonzero entries).
#[inline(always)]
fn offsets<T: Float>(terms: &[(usize, T)], at: impl Fn(usize) -> usize) -> ([(usize, T); 6], usize) {
    let mut out = [(0, T::ZERO); 6];
    for (d, &(j, c)) in out.iter_mut().zip(terms) {
        *d = (at(j), c);
    }
    (out, terms.len())
}

/// Sizes shared by every block of one call.
struct Plan<T> {
    g: WinoGeom,
    m: usize,
    a: usize,
    bt: Vec<Vec<(usize, T)>>,
    at: Vec<Vec<(usize, T)>>,
    /// Tiles per tile row (without the extra one) and tile rows per sample.
    tx: usize,
    ty: usize,
    /// Tile rows per band (a band is the part of one sample one block holds).
    band: usize,
    /// Samples per block (more than one only when a band is a whole sample).
    spb: usize,
}

impl<T: Float> Plan<T> {
    fn new(g: WinoGeom, t: &Transform) -> Self {
        let (m, a) = (t.m, t.a);
        let (tx, ty) = (g.ow().div_ceil(m), g.oh().div_ceil(m));
        let cols_budget = (BLOCK_ELEMS / (a * a * (g.c + g.o))).max(1);
        let per_sample = ty * (tx + 1);
        let (band, spb) = if per_sample <= cols_budget {
            (ty, (cols_budget / per_sample).clamp(1, g.n))
        } else {
            ((cols_budget / (tx + 1)).clamp(1, ty), 1)
        };
        Plan {
            g,
            m,
            a,
            bt: sparse(t.bt, a),
            at: sparse(t.at, a),
            tx,
            ty,
            band,
            spb,
        }
    }
    /// Gemm columns of one band: its tiles plus one extra per tile row.
    fn band_cols(&self) -> usize {
        self.band * (self.tx + 1)
    }
    /// Gemm columns a block holds at most.
    fn cap(&self) -> usize {
        self.spb * self.band_cols()
    }
    /// Length of one phase plane of the padded input (tile rows + 1, plus one spare element).
    fn pr_plane(&self) -> usize {
        (self.band + 1) * (self.tx + 1) + 1
    }
    /// Length of one plane after the vertical transform (plus one spare element).
    fn vv_plane(&self) -> usize {
        self.band_cols() + 1
    }
}

/// Per-worker buffers, overwritten wherever they are read.
struct Scratch<T> {
    v: Vec<T>,
    mm: Vec<T>,
    pr: Vec<T>,
    vv: Vec<T>,
    z: Vec<T>,
}

impl<T: Float> Scratch<T> {
    fn new(p: &Plan<T>) -> Self {
        let (m, a, cap) = (p.m, p.a, p.cap());
        Scratch {
            v: vec![T::ZERO; a * a * p.g.c * cap],
            mm: vec![T::ZERO; a * a * p.g.o * cap],
            pr: vec![T::ZERO; m * m * p.pr_plane()],
            vv: vec![T::ZERO; a * m * p.vv_plane()],
            z: vec![T::ZERO; (m * a + m * m) * p.band_cols()],
        }
    }
}

/// `U[ξ][o][c] = (G w[o][c] G^T)[ξ]` for the weight `w` [O, C, 3, 3].
fn kernel_transform<T: Float>(t: &Transform, o: usize, c: usize, w: &[T]) -> Vec<T> {
    let a = t.a;
    let gm: Vec<T> = t.g.iter().map(|v| T::c(*v)).collect();
    let mut u = vec![T::ZERO; a * a * o * c];
    for (oc, k) in w.chunks_exact(9).enumerate() {
        // tmp = G k: a × 3.
        let mut tmp = [T::ZERO; 18];
        for r in 0..a {
            for col in 0..3 {
                let mut s = T::ZERO;
                for i in 0..3 {
                    s += gm[r * 3 + i] * k[i * 3 + col];
                }
                tmp[r * 3 + col] = s;
            }
        }
        for r in 0..a {
            for s in 0..a {
                let mut acc = T::ZERO;
                for j in 0..3 {
                    acc += tmp[r * 3 + j] * gm[s * 3 + j];
                }
                u[(r * a + s) * o * c + oc] = acc;
            }
        }
    }
    u
}

/// Transforms tile rows `y0..y0+nr` of one input plane `x` [H, W] into `v` (gemm columns from
/// `col0` of each of the a² planes, `stride` apart).
fn input_tiles<T: Float>(
    p: &Plan<T>,
    s: &mut Scratch<T>,
    x: &[T],
    (y0, nr): (usize, usize),
    v_off: usize,
    stride: usize,
) {
    let (m, a, tx) = (p.m, p.a, p.tx);
    let (h, w, [ph, pw]) = (p.g.h, p.g.w, p.g.pad);
    let (prp, vvp) = (p.pr_plane(), p.vv_plane());
    let row = tx + 1;
    crate::simd::run(|| {
        // Padded rows split by row phase and column phase: pr[rq][cq][rr][k] holds padded
        // element (rr*m + rq, k*m + cq) of the band.
        for prow in 0..nr * m + a - m {
            let (rq, rr) = (prow % m, prow / m);
            let iy = (y0 * m + prow).wrapping_sub(ph);
            for cq in 0..m {
                let dst = &mut s.pr[(rq * m + cq) * prp + rr * row..][..row];
                if iy >= h {
                    dst.fill(T::ZERO);
                    continue;
                }
                let src = &x[iy * w..(iy + 1) * w];
                for (k, d) in dst.iter_mut().enumerate() {
                    let ix = (k * m + cq).wrapping_sub(pw);
                    *d = if ix < w { src[ix] } else { T::ZERO };
                }
            }
        }
        // Vertical: vv[r][cq][rr*row + k] = Σ_i BT[r][i] pr[i%m][cq][(rr + i/m)*row + k],
        // one element further than the band for the horizontal pass's extra tile.
        let len = nr * row + 1;
        for (r, terms) in p.bt.iter().enumerate() {
            for cq in 0..m {
                let (t, nt) = offsets(terms, |i| ((i % m) * m + cq) * prp + (i / m) * row);
                combine(&mut s.vv[(r * m + cq) * vvp..][..len], &s.pr, &t[..nt]);
            }
        }
        // Horizontal: v[(r, sc)][rr*row + k] = Σ_j BT[sc][j] vv[r][j%m][rr*row + k + j/m].
        for r in 0..a {
            for (sc, terms) in p.bt.iter().enumerate() {
                let (t, nt) = offsets(terms, |j| (r * m + j % m) * vvp + j / m);
                let dst = &mut s.v[v_off + (r * a + sc) * stride..][..nr * row];
                combine(dst, &s.vv, &t[..nt]);
            }
        }
    });
}

/// Adds the inverse transform of gemm columns `col0..` (tile rows `y0..y0+nr`) of output
/// channel `o` onto its plane `y` [OH, OW].
fn output_tiles<T: Float>(
    p: &Plan<T>,
    s: &mut Scratch<T>,
    o: usize,
    col0: usize,
    (y0, nr): (usize, usize),
    y: &mut [T],
) {
    let (m, a, tx, cap) = (p.m, p.a, p.tx, p.cap());
    let (oh, ow, oc) = (p.g.oh(), p.g.ow(), p.g.o);
    let row = tx + 1;
    let len = nr * row;
    let bc = p.band_cols();
    crate::simd::run(|| {
        let (zv, zy) = s.z.split_at_mut(m * a * bc);
        // Vertical: zv[i][sc] = Σ_r AT[i][r] M[(r, sc)].
        for (i, terms) in p.at.iter().enumerate() {
            for sc in 0..a {
                let (t, nt) = offsets(terms, |r| ((r * a + sc) * oc + o) * cap + col0);
                combine(&mut zv[(i * a + sc) * bc..][..len], &s.mm, &t[..nt]);
            }
        }
        // Horizontal: zy[i][j] = Σ_sc AT[j][sc] zv[i][sc].
        for i in 0..m {
            for (j, terms) in p.at.iter().enumerate() {
                let (t, nt) = offsets(terms, |sc| (i * a + sc) * bc);
                combine(&mut zy[(i * m + j) * bc..][..len], zv, &t[..nt]);
            }
        }
        for rr in 0..nr {
            for i in 0..m {
                let oy = (y0 + rr) * m + i;
                if oy >= oh {
                    break;
                }
                let out = &mut y[oy * ow..(oy + 1) * ow];
                for j in 0..m.min(ow) {
                    let src = &zy[(i * m + j) * bc + rr * row..][..tx];
                    for (d, v) in out[j..].iter_mut().step_by(m).zip(src) {
                        *d += *v;
                    }
                }
            }
        }
    });
}

/// Forward Winograd convolution: `x` [N, C, H, W], `w` [O, C, 3, 3], optional `bias` [O].
pub(crate) fn wino_forward<T: Float>(
    g: &WinoGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    let t = transform();
    let p = Plan::<T>::new(*g, t);
    let (oh, ow) = (g.oh(), g.ow());
    let (chw, l) = (g.c * g.h * g.w, oh * ow);
    if g.n * g.o * l == 0 {
        return Vec::new();
    }
    let u = kernel_transform(t, g.o, g.c, w);
    let aa = p.a * p.a;
    let cap = p.cap();
    let par = inner_par(g.n.div_ceil(p.spb), g.o, cap, g.c);
    let fill = |r: usize| bias.map_or(T::ZERO, |b| b[r % g.o]);
    build_chunks(
        g.n * g.o * l,
        (p.spb * g.o * l, l),
        fill,
        || Scratch::new(&p),
        |s, chunk, y| {
            let n0 = chunk * p.spb;
            let ns = y.len() / (g.o * l);
            for y0 in (0..p.ty).step_by(p.band) {
                let nr = p.band.min(p.ty - y0);
                let cols = nr * (p.tx + 1);
                for sl in 0..ns {
                    let xs = &x[(n0 + sl) * chw..(n0 + sl + 1) * chw];
                    for c in 0..g.c {
                        let plane = &xs[c * g.h * g.w..(c + 1) * g.h * g.w];
                        input_tiles(&p, s, plane, (y0, nr), c * cap + sl * cols, g.c * cap);
                    }
                }
                for xi in 0..aa {
                    gemm(
                        (g.o, ns * cols, g.c),
                        &mut s.mm[xi * g.o * cap..],
                        cap,
                        &u[xi * g.o * g.c..],
                        (g.c, 1),
                        &s.v[xi * g.c * cap..],
                        (cap, 1),
                        false,
                        par,
                    );
                }
                for sl in 0..ns {
                    let ys = &mut y[sl * g.o * l..(sl + 1) * g.o * l];
                    for o in 0..g.o {
                        output_tiles(&p, s, o, sl * cols, (y0, nr), &mut ys[o * l..(o + 1) * l]);
                    }
                }
            }
        },
    )
}

/// Input gradient of a Winograd-eligible convolution with padding `pad`: a full convolution of
/// `gy` [N, O, OH, OW] with `w` [O, C, 3, 3] rotated 180° and transposed to [C, O, 3, 3].
pub(crate) fn wino_input_grad<T: Float>(g: &WinoGeom, w: &[T], gy: &[T]) -> Vec<T> {
    let mut wt = vec![T::ZERO; w.len()];
    for o in 0..g.o {
        for c in 0..g.c {
            for k in 0..9 {
                wt[(c * g.o + o) * 9 + 8 - k] = w[(o * g.c + c) * 9 + k];
            }
        }
    }
    let back = WinoGeom {
        n: g.n,
        c: g.o,
        h: g.oh(),
        w: g.ow(),
        o: g.c,
        pad: [2 - g.pad[0], 2 - g.pad[1]],
    };
    wino_forward(&back, gy, &wt, None)
}
