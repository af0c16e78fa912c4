//! Winograd convolution F(2x2, 3x3) (Lavin and Gray, 2016) for 3x3, stride-1 kernels: each
//! 2x2 output tile is `A^T [(G g G^T) ⊙ (B^T d B)] A` of its 4x4 input tile `d`, so the channel
//! sums become 16 independent gemms `[O × C]·[C × tiles]`, with 2.25x fewer multiplies than
//! the direct sum. The input gradient is the same operation on `gy` with the kernel rotated
//! 180° and its channel axes swapped (a "full" convolution, padding `2 - p`).
//!
//! Tried and dropped: F(4x4, 3x3) (36 gemms, 4x fewer multiplies) was slower at the 14x14 and
//! 28x28 planes measured, its transforms costing more than the gemm work saved, with about ten
//! times the rounding error; a Winograd weight gradient (16 gemms over all tiles) was no
//! faster than im2col's, its input and output-gradient transforms eating the gain.
//!
//! Transforms run on whole planes, 16 tiles per step, so they vectorize: the padded input is
//! stored split by row and column parity, which turns each of a tile's 16 inputs, taken over
//! consecutive tiles, into a contiguous run. Each tile row carries one extra, unused tile (its
//! columns read the next row), which costs 1/(tiles per row) more gemm work but keeps every
//! transform a flat loop. Work is split by fixed-size chunks of samples, and every output
//! element comes from one gemm whose threading is chosen from the shapes, so the bits never
//! depend on the thread count.

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

/// Output tile size and input tile size.
const M: usize = 2;
const A: usize = 4;
/// Tiles per transform step: one 512-bit vector of f32.
const L: usize = 16;
/// Column pairs per deinterleave step.
const P: usize = 8;

/// G of F(2x2, 3x3): the kernel transform `G g G^T`.
const G: [[f64; 3]; 4] = [
    [1., 0., 0.],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0., 0., 1.],
];

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

/// False inside [`without_winograd`].
pub fn winograd_enabled() -> bool {
    !DISABLED.with(Cell::get)
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
        winograd_enabled()
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

/// Sizes shared by every block of one call.
struct Plan {
    g: WinoGeom,
    /// Tiles per tile row (without the extra one) and tile rows per sample.
    tx: usize,
    ty: usize,
    /// Tile rows per band (a band is the part of one sample one block holds).
    band: usize,
    /// Samples per block (more than one only when a band is a whole sample).
    spb: usize,
}

impl Plan {
    fn new(g: WinoGeom) -> Self {
        let (tx, ty) = (g.ow().div_ceil(M), g.oh().div_ceil(M));
        let cols_budget = (BLOCK_ELEMS / (A * A * (g.c + g.o))).max(1);
        let per_sample = ty * (tx + 1);
        let (band, spb) = if per_sample <= cols_budget {
            (ty, (cols_budget / per_sample).min(g.n).max(1))
        } else {
            ((cols_budget / (tx + 1)).clamp(1, ty), 1)
        };
        Plan {
            g,
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
    /// Distance between the 16 frequency planes of `rows` rows of `cap` columns: an odd
    /// number of 16-element (64-byte for f32) steps, so the planes that each transform step
    /// reads or writes together fall in different cache sets. At a multiple of 4 KiB they all
    /// share one (64 channels at 14x14 did): the transforms took 40-60% longer.
    fn freq_stride(&self, rows: usize) -> usize {
        let steps = (rows * self.cap()).div_ceil(L);
        (steps | 1) * L
    }
    /// Length of one parity plane of the padded input: tile rows + 1, and one more element
    /// read by the last tile row's extra tile.
    fn pr_plane(&self) -> usize {
        (self.band + 1) * (self.tx + 1) + 1 + P
    }
    /// Length of the zero-padded input row that [`deinterleave`] reads whole chunks of.
    fn padded_row(&self) -> usize {
        (2 * (self.tx + 1)).next_multiple_of(2 * P)
    }
}

/// Per-worker buffers, overwritten wherever they are read.
struct Scratch<T> {
    v: Vec<T>,
    mm: Vec<T>,
    pr: Vec<T>,
    /// A band's padded input rows: zero but for the image columns, which each band overwrites.
    rows: Vec<T>,
    z: Vec<T>,
}

impl<T: Float> Scratch<T> {
    fn new(p: &Plan) -> Self {
        Scratch {
            v: vec![T::ZERO; A * A * p.freq_stride(p.g.c)],
            // Transforms read whole vectors of L tiles: the last may run past the data.
            mm: vec![T::ZERO; A * A * p.freq_stride(p.g.o) + L],
            pr: vec![T::ZERO; M * M * p.pr_plane() + L],
            rows: vec![T::ZERO; (p.band * M + A - M) * p.padded_row()],
            z: vec![T::ZERO; M * M * p.band_cols()],
        }
    }
}

/// `U[ξ][o][c] = (G w[o][c] G^T)[ξ]` for the weight `w` [O, C, 3, 3].
fn kernel_transform<T: Float>(o: usize, c: usize, w: &[T]) -> Vec<T> {
    let g = G.map(|r| r.map(T::c));
    let mut u = vec![T::ZERO; A * A * o * c];
    for (oc, k) in w.chunks_exact(9).enumerate() {
        // tmp = G k: 4 x 3.
        let mut tmp = [[T::ZERO; 3]; A];
        for (t, gr) in tmp.iter_mut().zip(&g) {
            for (col, tv) in t.iter_mut().enumerate() {
                *tv = gr[0] * k[col] + gr[1] * k[3 + col] + gr[2] * k[6 + col];
            }
        }
        for (r, t) in tmp.iter().enumerate() {
            for (s, gs) in g.iter().enumerate() {
                u[(r * A + s) * o * c + oc] = t[0] * gs[0] + t[1] * gs[1] + t[2] * gs[2];
            }
        }
    }
    u
}

/// Stores the first `n <= K` lanes of `v` into `d` at `at`.
#[inline(always)]
fn store<T: Float, const K: usize>(d: &mut [T], at: usize, n: usize, v: &[T; K]) {
    if n == K {
        d[at..at + K].copy_from_slice(v);
    } else {
        d[at..at + n].copy_from_slice(&v[..n]);
    }
}

/// Splits a zero-padded input row by column parity: `even[k]` and `odd[k]` are padded columns
/// 2k and 2k+1, for k in `0..n` rounded up to whole chunks of `P` pairs (so the loop has no
/// scalar tail; callers leave room for the extra pairs).
#[inline(always)]
fn deinterleave<T: Float>(padded: &[T], n: usize, even: &mut [T], odd: &mut [T]) {
    for (k, ch) in (0..n).step_by(P).zip(padded.chunks_exact(2 * P)) {
        let mut e = [T::ZERO; P];
        let mut o = [T::ZERO; P];
        for q in 0..P {
            e[q] = ch[2 * q];
            o[q] = ch[2 * q + 1];
        }
        even[k..k + P].copy_from_slice(&e);
        odd[k..k + P].copy_from_slice(&o);
    }
}

/// Transforms tile rows `y0..y0+nr` of one input plane `x` [H, W] into `v`: element `f` of
/// the band (tile row `f / (tx+1)`, tile `f % (tx+1)`) of frequency ξ goes to
/// `v[v_off + ξ*stride + f]`.
// The lane loops index several arrays by the same lane and tile position.
#[allow(clippy::needless_range_loop)]
fn input_tiles<T: Float>(
    p: &Plan,
    s: &mut Scratch<T>,
    x: &[T],
    (y0, nr): (usize, usize),
    v_off: usize,
    stride: usize,
) {
    let (h, w, [ph, pw]) = (p.g.h, p.g.w, p.g.pad);
    let prp = p.pr_plane();
    let row = p.tx + 1;
    crate::simd::run(
        #[inline(always)]
        || {
            // The band's padded rows, all copied before any is split: splitting a row right
            // after copying it would read across the copy's stores before they retire.
            let (rows, pl) = (nr * M + A - M, p.padded_row());
            for prow in 0..rows {
                let iy = (y0 * M + prow).wrapping_sub(ph);
                let dst = &mut s.rows[prow * pl..(prow + 1) * pl];
                if iy < h {
                    dst[pw..pw + w].copy_from_slice(&x[iy * w..(iy + 1) * w]);
                } else {
                    dst.fill(T::ZERO);
                }
            }
            // pr[rq][cq][rr*row + k] holds padded element (2rr + rq, 2k + cq) of the band.
            for (prow, padded) in s.rows[..rows * pl].chunks_exact(pl).enumerate() {
                let base = (prow % M) * M * prp + (prow / M) * row;
                let (even, odd) = s.pr[base..].split_at_mut(prp);
                deinterleave(padded, row, even, odd);
            }
            // Input (i, j) of the tiles from f on: parity plane (i%2, j%2), shifted by whole
            // rows and columns.
            let mut off = [[0; A]; A];
            for (i, oi) in off.iter_mut().enumerate() {
                for (j, o) in oi.iter_mut().enumerate() {
                    *o = ((i % 2) * 2 + j % 2) * prp + (i / 2) * row + j / 2;
                }
            }
            let len = nr * row;
            assert!(off[A - 1][A - 1] + len.next_multiple_of(L) <= s.pr.len());
            let src = s.pr.as_ptr();
            for f in (0..len).step_by(L) {
                let mut out = [[T::ZERO; L]; A * A];
                for l in 0..L {
                    // SAFETY: below off[3][3] + f + L, inside pr by the assert above.
                    let d = |i: usize, j: usize| unsafe { *src.add(off[i][j] + f + l) };
                    // B^T d B: along rows, then along columns.
                    let mut t = [[T::ZERO; A]; A];
                    for j in 0..A {
                        let (d0, d1, d2, d3) = (d(0, j), d(1, j), d(2, j), d(3, j));
                        t[0][j] = d0 - d2;
                        t[1][j] = d1 + d2;
                        t[2][j] = d2 - d1;
                        t[3][j] = d1 - d3;
                    }
                    for (r, &[t0, t1, t2, t3]) in t.iter().enumerate() {
                        out[r * A][l] = t0 - t2;
                        out[r * A + 1][l] = t1 + t2;
                        out[r * A + 2][l] = t2 - t1;
                        out[r * A + 3][l] = t1 - t3;
                    }
                }
                let n = L.min(len - f);
                for (xi, v) in out.iter().enumerate() {
                    store(&mut s.v, v_off + xi * stride + f, n, v);
                }
            }
        },
    );
}

/// Adds the inverse transform of gemm columns `col0..` (tile rows `y0..y0+nr`) of output
/// channel `o` onto its plane `y` [OH, OW].
// The lane loops index several arrays by the same lane and tile position.
#[allow(clippy::needless_range_loop)]
fn output_tiles<T: Float>(
    p: &Plan,
    s: &mut Scratch<T>,
    o: usize,
    col0: usize,
    (y0, nr): (usize, usize),
    y: &mut [T],
) {
    let (tx, cap) = (p.tx, p.cap());
    let (oh, ow, oc) = (p.g.oh(), p.g.ow(), p.g.o);
    let row = tx + 1;
    let len = nr * row;
    let zs = M * p.band_cols();
    crate::simd::run(
        #[inline(always)]
        || {
            // z[i][M*f + j]: output (i, j) of tile f.
            let base = o * cap + col0;
            let plane = p.freq_stride(oc);
            assert!((A * A - 1) * plane + base + len.next_multiple_of(L) <= s.mm.len());
            let src = s.mm.as_ptr();
            for f in (0..len).step_by(L) {
                let mut out = [[T::ZERO; L]; M * M];
                for l in 0..L {
                    // SAFETY: below 15*plane + base + f + L, inside mm by the assert above.
                    let m = |r: usize, sc: usize| unsafe {
                        *src.add((r * A + sc) * plane + base + f + l)
                    };
                    // A^T m A: along rows, then along columns.
                    let mut t = [[T::ZERO; A]; M];
                    for sc in 0..A {
                        let (m0, m1, m2, m3) = (m(0, sc), m(1, sc), m(2, sc), m(3, sc));
                        t[0][sc] = m0 + m1 + m2;
                        t[1][sc] = m1 - m2 - m3;
                    }
                    for (i, &[t0, t1, t2, t3]) in t.iter().enumerate() {
                        out[i * M][l] = t0 + t1 + t2;
                        out[i * M + 1][l] = t1 - t2 - t3;
                    }
                }
                // Outputs (i, 0) and (i, 1) of consecutive tiles are neighbours in output row
                // i: interleaved here, in registers, each output row is one contiguous run of z.
                for i in 0..M {
                    let mut both = [T::ZERO; M * L];
                    for l in 0..L {
                        both[M * l] = out[i * M][l];
                        both[M * l + 1] = out[i * M + 1][l];
                    }
                    store(&mut s.z, i * zs + M * f, M * L.min(len - f), &both);
                }
            }
            for rr in 0..nr {
                for i in 0..M {
                    let oy = (y0 + rr) * M + i;
                    if oy >= oh {
                        break;
                    }
                    let src = &s.z[i * zs + M * rr * row..][..ow];
                    for (d, v) in y[oy * ow..(oy + 1) * ow].iter_mut().zip(src) {
                        *d += *v;
                    }
                }
            }
        },
    );
}

/// Forward Winograd convolution: `x` [N, C, H, W], `w` [O, C, 3, 3], optional `bias` [O].
pub(crate) fn wino_forward<T: Float>(g: &WinoGeom, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
    let (oh, ow) = (g.oh(), g.ow());
    let (chw, l) = (g.c * g.h * g.w, oh * ow);
    if g.n * g.o * l == 0 {
        return Vec::new();
    }
    let p = Plan::new(*g);
    let u = kernel_transform(g.o, g.c, w);
    let cap = p.cap();
    let (vs, ms) = (p.freq_stride(g.c), p.freq_stride(g.o));
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
                        input_tiles(&p, s, plane, (y0, nr), c * cap + sl * cols, vs);
                    }
                }
                for xi in 0..A * A {
                    gemm(
                        (g.o, ns * cols, g.c),
                        &mut s.mm[xi * ms..],
                        cap,
                        &u[xi * g.o * g.c..],
                        (g.c, 1),
                        &s.v[xi * vs..],
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
