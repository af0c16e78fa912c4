//! Winograd convolution F(m x m, 3x3) (Lavin and Gray, 2016) for 3x3, stride-1 kernels, with
//! output tiles of m = 2 or 4: each m x m output tile is `A^T [(G g G^T) ⊙ (B^T d B)] A` of
//! its (m+2)² input tile `d`, so the channel sums become (m+2)² independent gemms
//! `[O × C]·[C × tiles]`, with 2.25x (m = 2) or 4x (m = 4) fewer multiplies than the direct
//! sum. The input gradient is the same operation on `gy` with the kernel rotated 180° and its
//! channel axes swapped (a "full" convolution, padding `2 - p`). The weight gradient
//! transforms both `x` and `gy` into tiles and sums per-frequency gemms over the tiles.
//!
//! F(4x4) also moves 44% fewer transformed values through memory per output, but its points
//! 0, ±1, ±2 round about ten times worse in f32 and pad planes to multiples of 4, so it is
//! used where it pays: see [`WinoGeom::tile`].
//!
//! Transforms run on whole planes, 16 tiles per step, so they vectorize: the padded input is
//! stored split by row and column phase (index mod m), which turns each of a tile's inputs,
//! taken over consecutive tiles, into a contiguous run. Each tile row carries one extra, unused
//! tile (its columns read the next row), which costs 1/(tiles per row) more gemm work but keeps
//! every transform a flat loop. Work is split by fixed-size chunks of samples, and every output
//! element comes from one gemm whose threading is chosen from the shapes, so the bits never
//! depend on the thread count.

use super::conv_kernel::{gemm, inner_par};
use super::float::Float;
use super::transpose::{interleave, transpose};
use crate::parallel::{build_chunks, build_uninit};
use std::cell::Cell;
use std::mem::MaybeUninit;

/// Fewest input and output channels for which Winograd beats im2col + gemm: below, the
/// transforms dominate (a 1-channel first layer is 3x slower).
const MIN_CHANNELS: usize = 16;
/// Elements of transformed input plus gemm output held per block (about 1 MiB of f32,
/// the size of one core's L2).
const BLOCK_ELEMS: usize = 1 << 18;
/// Fewest gemm columns (tiles) a block of whole samples holds, even past `BLOCK_ELEMS`: every
/// block's gemm packs a whole frequency's `O x C` weights, which at 80 -> 256 channels on a
/// 16x16 plane (20 columns a sample) cost as much as the products. A ConvLSTM training step
/// with those convolutions went from 355 to about 290 ms with 4 samples a block instead of 1.
const MIN_BLOCK_COLS: usize = 80;
/// Tiles per transform step: one 512-bit vector of f32.
const L: usize = 16;
/// Column groups (of m columns) per deinterleave step.
const P: usize = 8;

/// G of F(2x2, 3x3): the kernel transform `G g G^T`.
const G2: [[f64; 3]; 4] = [
    [1., 0., 0.],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0., 0., 1.],
];
/// G of F(4x4, 3x3), points 0, 1, -1, 2, -2 and infinity.
const G4: [[f64; 3]; 6] = [
    [0.25, 0., 0.],
    [-1. / 6., -1. / 6., -1. / 6.],
    [-1. / 6., 1. / 6., -1. / 6.],
    [1. / 24., 1. / 12., 1. / 6.],
    [1. / 24., -1. / 12., 1. / 6.],
    [0., 0., 1.],
];

/// G of F(m x m, 3x3), m = 2 or 4.
fn g_matrix(m: usize) -> &'static [[f64; 3]] {
    if m == 2 {
        &G2
    } else {
        &G4
    }
}

thread_local! {
    static DISABLED: Cell<bool> = const { Cell::new(false) };
    static FORCED_TILE: Cell<usize> = const { Cell::new(0) };
}

/// Restores a thread-local cell when dropped.
struct Restore<T: Copy + 'static>(&'static std::thread::LocalKey<Cell<T>>, T);
impl<T: Copy + 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        self.0.with(|d| d.set(self.1));
    }
}

/// Runs `f` with Winograd turned off on this thread, so convolutions take im2col + gemm:
/// lets tests compare the two paths.
pub fn without_winograd<R>(f: impl FnOnce() -> R) -> R {
    let _restore = Restore(&DISABLED, DISABLED.with(|d| d.replace(true)));
    f()
}

/// Runs `f` with every Winograd convolution on this thread using output tiles of `m` (2 or 4),
/// whatever the shapes would pick: lets tests and benchmarks check each variant.
pub fn with_winograd_tile<R>(m: usize, f: impl FnOnce() -> R) -> R {
    assert!(
        m == 2 || m == 4,
        "Winograd output tiles are 2 or 4, not {m}"
    );
    let _restore = Restore(&FORCED_TILE, FORCED_TILE.with(|d| d.replace(m)));
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
    /// Output tile size: 4 where its tiles, counted with each row's extra one, cover the
    /// plane with at least 30% fewer transformed values than 2's would.
    fn tile(&self) -> usize {
        let forced = FORCED_TILE.with(Cell::get);
        if forced != 0 {
            return forced;
        }
        let values = |m: usize| {
            let a = m + 2;
            a * a * self.oh().div_ceil(m) * (self.ow().div_ceil(m) + 1)
        };
        if 10 * values(4) <= 7 * values(2) {
            4
        } else {
            2
        }
    }
}

/// Sizes shared by every block of one call.
struct Plan {
    g: WinoGeom,
    /// Output tile size m (input tiles are m + 2).
    m: usize,
    /// Tiles per tile row (without the extra one) and tile rows per sample.
    tx: usize,
    ty: usize,
    /// Tile rows per band (a band is the part of one sample one block holds).
    band: usize,
    /// Samples per block (more than one only when a band is a whole sample).
    spb: usize,
}

impl Plan {
    /// The plan for output tiles of `m`, holding about `budget` transformed elements a block.
    fn new(g: WinoGeom, m: usize, budget: usize) -> Self {
        let a = m + 2;
        let (tx, ty) = (g.ow().div_ceil(m), g.oh().div_ceil(m));
        let per_sample = ty * (tx + 1);
        let mut cols_budget = (budget / (a * a * (g.c + g.o))).max(1);
        if per_sample <= MIN_BLOCK_COLS {
            cols_budget = cols_budget.max(MIN_BLOCK_COLS);
        }
        let (band, spb) = if per_sample <= cols_budget {
            (ty, (cols_budget / per_sample).min(g.n).max(1))
        } else {
            ((cols_budget / (tx + 1)).clamp(1, ty), 1)
        };
        Plan {
            g,
            m,
            tx,
            ty,
            band,
            spb,
        }
    }
    /// Input tile size.
    fn a(&self) -> usize {
        self.m + 2
    }
    /// Gemm columns of one band: its tiles plus one extra per tile row.
    fn band_cols(&self) -> usize {
        self.band * (self.tx + 1)
    }
    /// Gemm columns a block holds at most.
    fn cap(&self) -> usize {
        self.spb * self.band_cols()
    }
    /// Distance between the rows (channels) of the transformed input and of the gemm output:
    /// one vector more than the columns, so transforms store whole vectors past a row's end.
    fn row_len(&self) -> usize {
        self.cap() + L
    }
    /// Distance between the frequency planes of `rows` rows of `cap` columns: an odd number
    /// of 16-element (64-byte for f32) steps, so the planes that each transform step reads or
    /// writes together fall in different cache sets. At a multiple of 4 KiB they all share one
    /// (64 channels at 14x14 did): the transforms took 40-60% longer.
    fn freq_stride(&self, rows: usize) -> usize {
        let steps = (rows * self.row_len()).div_ceil(L);
        (steps | 1) * L
    }
    /// Distance between the output rows of one band in `Scratch::z`, with room for whole
    /// vector stores past the end.
    fn z_row(&self) -> usize {
        self.m * (self.band_cols() + L)
    }
    /// Length of one phase plane of the padded input: tile rows + 1, and one more element
    /// read by the last tile row's extra tile.
    fn pr_plane(&self) -> usize {
        (self.band + 1) * (self.tx + 1) + 1 + P
    }
    /// Length of the zero-padded input row that [`deinterleave`] reads whole chunks of.
    fn padded_row(&self) -> usize {
        (self.m * (self.tx + 1)).next_multiple_of(self.m * P)
    }
}

/// Per-worker buffers, overwritten wherever they are read.
struct Scratch<T> {
    v: Vec<T>,
    mm: Vec<T>,
    pr: Vec<T>,
    /// A band's padded input rows: zero but for the image columns, which each band overwrites.
    rows: Vec<T>,
    /// The weight gradient's output-gradient rows (empty in the forward pass): zero past the
    /// plane's width.
    grows: Vec<T>,
    /// The weight gradient's transposed input tiles of one frequency, [tiles, C] (empty in the
    /// forward pass).
    vt: Vec<T>,
    z: Vec<T>,
}

impl<T: Float> Scratch<T> {
    fn new(p: &Plan) -> Self {
        let aa = p.a() * p.a();
        Scratch {
            v: vec![T::ZERO; aa * p.freq_stride(p.g.c)],
            // Transforms read whole vectors of L tiles: the last may run past the data.
            mm: vec![T::ZERO; aa * p.freq_stride(p.g.o) + L],
            pr: vec![T::ZERO; p.m * p.m * p.pr_plane() + L],
            rows: vec![T::ZERO; (p.band * p.m + 2) * p.padded_row()],
            grows: Vec::new(),
            vt: Vec::new(),
            z: vec![T::ZERO; p.m * p.z_row()],
        }
    }
    /// [`Scratch::new`] plus the weight gradient's output-gradient rows.
    fn with_grad_rows(p: &Plan) -> Self {
        Scratch {
            grows: vec![T::ZERO; p.band * p.m * p.padded_row()],
            vt: vec![T::ZERO; p.cap() * p.g.c],
            ..Scratch::new(p)
        }
    }
}

/// `U[ξ][o][c] = (G w[o][c] G^T)[ξ]` for the weight `w` [O, C, 3, 3], L kernels per step so
/// the arithmetic and the stores into each frequency plane are whole vectors (one kernel at a
/// time, this took 5% of a 32-channel forward pass). The two halves of the rows of `G` are two
/// pieces for two workers: done on the calling thread alone, this was 6% of a two-thread
/// ConvLSTM step, with the other worker idle.
#[allow(clippy::needless_range_loop)]
fn kernel_transform<T: Float>(m: usize, o: usize, c: usize, w: &[T]) -> Vec<T> {
    let rows = g_matrix(m);
    let mut g = [[T::ZERO; 3]; 6];
    for (d, r) in g.iter_mut().zip(rows) {
        *d = r.map(T::c);
    }
    let a = rows.len();
    let oc = o * c;
    let half = a / 2;
    let piece = |part: usize, u: &mut [MaybeUninit<T>]| {
        crate::simd::run(
            #[inline(always)]
            || {
                for k0 in (0..oc).step_by(L) {
                    let n = L.min(oc - k0);
                    // kern[t][l]: tap t of kernel k0 + l.
                    let mut kern = [[T::ZERO; L]; 9];
                    for l in 0..n {
                        for t in 0..9 {
                            kern[t][l] = w[(k0 + l) * 9 + t];
                        }
                    }
                    for r in part * half..(part + 1) * half {
                        // tmp[col] = (G k)[r][col].
                        let mut tmp = [[T::ZERO; L]; 3];
                        for col in 0..3 {
                            for l in 0..L {
                                tmp[col][l] = g[r][0] * kern[col][l]
                                    + g[r][1] * kern[3 + col][l]
                                    + g[r][2] * kern[6 + col][l];
                            }
                        }
                        for sc in 0..a {
                            let mut out = [T::ZERO; L];
                            for l in 0..L {
                                out[l] = tmp[0][l] * g[sc][0]
                                    + tmp[1][l] * g[sc][1]
                                    + tmp[2][l] * g[sc][2];
                            }
                            let at = ((r - part * half) * a + sc) * oc + k0;
                            for (d, &v) in u[at..][..n].iter_mut().zip(&out) {
                                d.write(v);
                            }
                        }
                    }
                }
            },
        )
    };
    // SAFETY: piece `part` writes every (row, column) plane of its rows for every kernel.
    unsafe { build_uninit(a * a * oc, half * a * oc, piece) }
}

/// `B^T d` for an input column `d` of F(M x M, 3x3), `A` = M + 2.
#[inline(always)]
fn input_1d<T: Float, const A: usize>(d: [T; A]) -> [T; A] {
    let mut r = [T::ZERO; A];
    if A == 4 {
        r[0] = d[0] - d[2];
        r[1] = d[1] + d[2];
        r[2] = d[2] - d[1];
        r[3] = d[1] - d[3];
    } else {
        let (two, four, five) = (T::c(2.), T::c(4.), T::c(5.));
        let (p, q) = (d[4] - four * d[2], d[3] - four * d[1]);
        let (u, v) = (d[4] - d[2], two * (d[3] - d[1]));
        r[0] = four * d[0] - five * d[2] + d[4];
        r[1] = p + q;
        r[2] = p - q;
        r[3] = u + v;
        r[4] = u - v;
        r[5] = four * d[1] - five * d[3] + d[5];
    }
    r
}

/// `A^T m` for a column `m` of the gemm output, `A` = M + 2.
#[inline(always)]
fn output_1d<T: Float, const A: usize, const M: usize>(m: [T; A]) -> [T; M] {
    let mut r = [T::ZERO; M];
    if M == 2 {
        r[0] = m[0] + m[1] + m[2];
        r[1] = m[1] - m[2] - m[3];
    } else {
        let (two, four, eight) = (T::c(2.), T::c(4.), T::c(8.));
        let (s1, d1, s2, d2) = (m[1] + m[2], m[1] - m[2], m[3] + m[4], m[3] - m[4]);
        r[0] = m[0] + s1 + s2;
        r[1] = d1 + two * d2;
        r[2] = s1 + four * s2;
        r[3] = d1 + eight * d2 + m[5];
    }
    r
}

/// `dst.copy_from_slice(src)` in whole vectors, the last one overlapping: rows are a few
/// vectors long, and a `memcpy` call per row cost 8% of the forward pass (for 14-wide rows,
/// 2% of a whole training step).
#[inline(always)]
fn copy_row<T: Float>(dst: &mut [T], src: &[T]) {
    const H: usize = L / 2;
    let n = src.len();
    if n < L {
        if n < H {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = s;
            }
        } else {
            dst[..H].copy_from_slice(&src[..H]);
            dst[n - H..n].copy_from_slice(&src[n - H..]);
        }
        return;
    }
    for k in (0..n - L).step_by(L) {
        dst[k..k + L].copy_from_slice(&src[k..k + L]);
    }
    dst[n - L..].copy_from_slice(&src[n - L..]);
}

/// `A g` for a column `g` of an output-gradient tile (the transpose of [`output_1d`]).
#[inline(always)]
fn grad_1d<T: Float, const M: usize, const A: usize>(g: [T; M]) -> [T; A] {
    let mut r = [T::ZERO; A];
    if M == 2 {
        r[0] = g[0];
        r[1] = g[0] + g[1];
        r[2] = g[0] - g[1];
        r[3] = T::ZERO - g[1];
    } else {
        let (two, four, eight) = (T::c(2.), T::c(4.), T::c(8.));
        let (e, o) = (g[0] + four * g[2], two * g[1] + eight * g[3]);
        r[0] = g[0];
        r[1] = g[0] + g[1] + g[2] + g[3];
        r[2] = g[0] - g[1] + g[2] - g[3];
        r[3] = e + o;
        r[4] = e - o;
        r[5] = g[3];
    }
    r
}

/// Splits a zero-padded input row by column phase: `phases[q][k]` is padded column `M*k + q`,
/// for k in `0..n` rounded up to whole chunks of `P` (so the loop has no scalar tail; callers
/// leave room for the extra groups). `phases` starts each phase `stride` apart.
#[inline(always)]
fn deinterleave<T: Float, const M: usize>(padded: &[T], n: usize, phases: &mut [T], stride: usize) {
    for (k, ch) in (0..n).step_by(P).zip(padded.chunks_exact(M * P)) {
        for q in 0..M {
            let mut e = [T::ZERO; P];
            for (i, e) in e.iter_mut().enumerate() {
                *e = ch[M * i + q];
            }
            phases[q * stride + k..q * stride + k + P].copy_from_slice(&e);
        }
    }
}

/// Splits `count` rows of a plane `[height, width]`, from row `first` (which wraps below zero
/// for top padding; rows outside the plane are zero), into the phase planes `pr`: placed at
/// column `col` of zero-padded rows in `buf`, padded element (M*rr + rq, M*k + cq) goes to
/// `pr[(rq*M + cq)*prp + rr*row + k]`. All rows are copied before any is split: splitting a row
/// right after copying it would read across the copy's stores before they retire. `buf` must be
/// zero outside columns `col..col + width`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn split_band<T: Float, const M: usize>(
    p: &Plan,
    buf: &mut [T],
    pr: &mut [T],
    plane: &[T],
    (height, width, col): (usize, usize, usize),
    first: usize,
    count: usize,
) {
    let (pl, prp, row) = (p.padded_row(), p.pr_plane(), p.tx + 1);
    for (prow, dst) in buf[..count * pl].chunks_exact_mut(pl).enumerate() {
        let iy = first.wrapping_add(prow);
        if iy < height {
            copy_row(
                &mut dst[col..col + width],
                &plane[iy * width..(iy + 1) * width],
            );
        } else {
            dst.fill(T::ZERO);
        }
    }
    for (prow, padded) in buf[..count * pl].chunks_exact(pl).enumerate() {
        let base = (prow % M) * M * prp + (prow / M) * row;
        deinterleave::<T, M>(padded, row, &mut pr[base..], prp);
    }
}

/// Transforms tile rows `y0..y0+nr` of one input plane `x` [H, W] into `v`: element `f` of
/// the band (tile row `f / (tx+1)`, tile `f % (tx+1)`) of frequency ξ goes to
/// `v[v_off + ξ*stride + f]`.
// The lane loops index several arrays by the same lane and tile position.
#[allow(clippy::needless_range_loop)]
fn input_tiles<T: Float, const M: usize, const A: usize, const AA: usize>(
    p: &Plan,
    s: &mut Scratch<T>,
    x: &[T],
    (y0, nr): (usize, usize),
    v_off: usize,
    stride: usize,
) {
    assert!(p.m == M && A == M + 2 && AA == A * A);
    let (h, w, [ph, pw]) = (p.g.h, p.g.w, p.g.pad);
    let prp = p.pr_plane();
    let row = p.tx + 1;
    crate::simd::run(
        #[inline(always)]
        || {
            let first = (y0 * M).wrapping_sub(ph);
            split_band::<T, M>(p, &mut s.rows, &mut s.pr, x, (h, w, pw), first, nr * M + 2);
            // Input (i, j) of the tiles from f on: phase plane (i%M, j%M), shifted by whole
            // rows and columns.
            let mut off = [[0; A]; A];
            for i in 0..A {
                for j in 0..A {
                    off[i][j] = ((i % M) * M + j % M) * prp + (i / M) * row + j / M;
                }
            }
            let len = nr * row;
            assert!(off[A - 1][A - 1] + len.next_multiple_of(L) <= s.pr.len());
            let src = s.pr.as_ptr();
            for f in (0..len).step_by(L) {
                let at = v_off + f;
                // SAFETY (each call): reads below off[A-1][A-1] + f + L, inside pr.
                if M == 2 {
                    unsafe { input_rows::<T, M, A, 0, 4, 16>(src, &off, f, &mut s.v, at, stride) };
                } else {
                    // Rows of B^T grouped by the inputs they share, so each group's lane loop
                    // keeps its values in registers (all 36 at once spilled).
                    unsafe {
                        input_rows::<T, M, A, 0, 1, 6>(src, &off, f, &mut s.v, at, stride);
                        input_rows::<T, M, A, 1, 2, 12>(src, &off, f, &mut s.v, at, stride);
                        input_rows::<T, M, A, 3, 2, 12>(src, &off, f, &mut s.v, at, stride);
                        input_rows::<T, M, A, 5, 1, 6>(src, &off, f, &mut s.v, at, stride);
                    }
                }
            }
        },
    );
}

/// Rows `R0..R0+NR` of `B^T d B` for the L tiles from `f` on (`NA` = NR * A): frequency
/// (r, c) goes to `v[at + (r*A + c)*stride..][..L]`, a whole vector (the lanes past the band
/// land in the row's spare vector, or in the next sample's columns, which are written after).
///
/// # Safety
/// `src` must be readable at `off[i][j] + f + l` for every i, j < A and l < L.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn input_rows<
    T: Float,
    const M: usize,
    const A: usize,
    const R0: usize,
    const NR: usize,
    const NA: usize,
>(
    src: *const T,
    off: &[[usize; A]; A],
    f: usize,
    v: &mut [T],
    at: usize,
    stride: usize,
) {
    let mut out = [[T::ZERO; L]; NA];
    for l in 0..L {
        // SAFETY: by the caller's contract.
        let d = |i: usize, j: usize| unsafe { *src.add(off[i][j] + f + l) };
        // B^T d B: along columns (only the rows wanted), then along rows.
        let mut t = [[T::ZERO; A]; NR];
        for j in 0..A {
            let mut col = [T::ZERO; A];
            for i in 0..A {
                col[i] = d(i, j);
            }
            let col = input_1d(col);
            for k in 0..NR {
                t[k][j] = col[R0 + k];
            }
        }
        for k in 0..NR {
            let r = input_1d(t[k]);
            for c in 0..A {
                out[k * A + c][l] = r[c];
            }
        }
    }
    for (i, o) in out.iter().enumerate() {
        let at = at + (R0 * A + i) * stride;
        v[at..at + L].copy_from_slice(o);
    }
}

/// Adds the inverse transform of gemm columns `col0..` (tile rows `y0..y0+nr`) of output
/// channel `o` onto its plane `y` [OH, OW]. `ML` is M * L.
// The lane loops index several arrays by the same lane and tile position.
#[allow(clippy::needless_range_loop)]
fn output_tiles<
    T: Float,
    const M: usize,
    const A: usize,
    const AA: usize,
    const MM: usize,
    const ML: usize,
>(
    p: &Plan,
    s: &mut Scratch<T>,
    o: usize,
    col0: usize,
    (y0, nr): (usize, usize),
    y: &mut [T],
) {
    assert!(p.m == M && A == M + 2 && AA == A * A && MM == M * M && ML == M * L);
    let (tx, rl) = (p.tx, p.row_len());
    let (oh, ow, oc) = (p.g.oh(), p.g.ow(), p.g.o);
    let row = tx + 1;
    let len = nr * row;
    let zs = p.z_row();
    crate::simd::run(
        #[inline(always)]
        || {
            // z[i][M*f + j]: output (i, j) of tile f.
            let base = o * rl + col0;
            let plane = p.freq_stride(oc);
            assert!((A * A - 1) * plane + base + len.next_multiple_of(L) <= s.mm.len());
            let src = s.mm.as_ptr();
            for f in (0..len).step_by(L) {
                // Whole-vector loads first: read lane by lane inside the loop below, LLVM built
                // each vector from 16 scalar loads.
                let mut mv = [[T::ZERO; L]; AA];
                for (xi, v) in mv.iter_mut().enumerate() {
                    // SAFETY: below (A²-1)*plane + base + f + L, inside mm by the assert above.
                    *v = unsafe { std::ptr::read_unaligned(src.add(xi * plane + base + f).cast()) };
                }
                let mut out = [[T::ZERO; L]; MM];
                for l in 0..L {
                    let m = |r: usize, sc: usize| mv[r * A + sc][l];
                    // A^T m A: along rows, then along columns.
                    let mut t = [[T::ZERO; A]; M];
                    for sc in 0..A {
                        let mut col = [T::ZERO; A];
                        for r in 0..A {
                            col[r] = m(r, sc);
                        }
                        let col: [T; M] = output_1d(col);
                        for i in 0..M {
                            t[i][sc] = col[i];
                        }
                    }
                    for i in 0..M {
                        let v: [T; M] = output_1d(t[i]);
                        for j in 0..M {
                            out[i * M + j][l] = v[j];
                        }
                    }
                }
                // Outputs (i, 0..M) of consecutive tiles are neighbours in output row i:
                // interleaved here, in registers, each output row is one contiguous run of z.
                for i in 0..M {
                    interleave::<T, M>(&out[i * M..(i + 1) * M], &mut s.z[i * zs + M * f..][..ML]);
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
    match g.tile() {
        2 => forward_m::<T, 2, 4, 16, 4, 32>(g, x, w, bias),
        _ => forward_m::<T, 4, 6, 36, 16, 64>(g, x, w, bias),
    }
}

/// [`wino_forward`] with output tiles of M (`ML` = M * 16).
fn forward_m<
    T: Float,
    const M: usize,
    const A: usize,
    const AA: usize,
    const MM: usize,
    const ML: usize,
>(
    g: &WinoGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    let (oh, ow) = (g.oh(), g.ow());
    let (chw, l) = (g.c * g.h * g.w, oh * ow);
    if g.n * g.o * l == 0 {
        return Vec::new();
    }
    let p = Plan::new(*g, M, BLOCK_ELEMS);
    let u = kernel_transform(M, g.o, g.c, w);
    let rl = p.row_len();
    let (vs, ms) = (p.freq_stride(g.c), p.freq_stride(g.o));
    let par = inner_par(g.n.div_ceil(p.spb), g.o, p.cap(), g.c);
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
                        input_tiles::<T, M, A, AA>(&p, s, plane, (y0, nr), c * rl + sl * cols, vs);
                    }
                }
                for xi in 0..AA {
                    gemm(
                        (g.o, ns * cols, g.c),
                        &mut s.mm[xi * ms..],
                        rl,
                        &u[xi * g.o * g.c..],
                        (g.c, 1),
                        &s.v[xi * vs..],
                        (rl, 1),
                        false,
                        par,
                    );
                }
                for sl in 0..ns {
                    let ys = &mut y[sl * g.o * l..(sl + 1) * g.o * l];
                    for o in 0..g.o {
                        output_tiles::<T, M, A, AA, MM, ML>(
                            &p,
                            s,
                            o,
                            sl * cols,
                            (y0, nr),
                            &mut ys[o * l..(o + 1) * l],
                        );
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

/// Most weight-gradient partials (one per chunk of samples, summed in order at the end).
const MAX_PARTIALS: usize = 8;
/// Fewest tiles (gemm columns) per weight-gradient partial: each partial is a whole dU
/// (`A² x O x C`) written, zeroed and summed, so for small planes a partial per sample cost more
/// than the gemms (8 samples of 80 -> 256 channels at 16x16: 8 partials of 20 columns, 2.9 MB
/// each).
const PARTIAL_COLS: usize = 64;

/// `Q = A gy A^T` of the output-gradient tiles of tile rows `y0..y0+nr` of one plane `gy`
/// [OH, OW] (zero past its edges and in each row's extra tile, so those add nothing), laid out
/// like the forward pass's gemm output: element `f` of frequency ξ at `mm[q_off + ξ*stride + f]`.
#[allow(clippy::needless_range_loop)]
fn grad_tiles<T: Float, const M: usize, const A: usize, const AA: usize>(
    p: &Plan,
    s: &mut Scratch<T>,
    gy: &[T],
    (y0, nr): (usize, usize),
    q_off: usize,
    stride: usize,
) {
    assert!(p.m == M && A == M + 2 && AA == A * A);
    let (oh, ow) = (p.g.oh(), p.g.ow());
    let prp = p.pr_plane();
    let len = nr * (p.tx + 1);
    crate::simd::run(
        #[inline(always)]
        || {
            // pr[i][j][rr*row + k] = gy(M*(y0+rr) + i, M*k + j).
            split_band::<T, M>(p, &mut s.grows, &mut s.pr, gy, (oh, ow, 0), y0 * M, nr * M);
            assert!((M * M - 1) * prp + len.next_multiple_of(L) <= s.pr.len());
            let src = s.pr.as_ptr();
            for f in (0..len).step_by(L) {
                let mut out = [[T::ZERO; L]; AA];
                for l in 0..L {
                    // SAFETY: below (M²-1)*prp + f + L, inside pr by the assert above.
                    let g = |i: usize, j: usize| unsafe { *src.add((i * M + j) * prp + f + l) };
                    // A g A^T: along columns, then along rows.
                    let mut t = [[T::ZERO; M]; A];
                    for j in 0..M {
                        let mut col = [T::ZERO; M];
                        for i in 0..M {
                            col[i] = g(i, j);
                        }
                        let col: [T; A] = grad_1d(col);
                        for r in 0..A {
                            t[r][j] = col[r];
                        }
                    }
                    for r in 0..A {
                        let v: [T; A] = grad_1d(t[r]);
                        for c in 0..A {
                            out[r * A + c][l] = v[c];
                        }
                    }
                }
                for (xi, v) in out.iter().enumerate() {
                    let at = q_off + xi * stride + f;
                    s.mm[at..at + L].copy_from_slice(v);
                }
            }
        },
    );
}

/// Weight gradient [O, C, 3, 3] of a Winograd-eligible convolution: per frequency ξ,
/// `dU[ξ] = Q[ξ] · V[ξ]^T` summed over all tiles (gemms whose inner dimension is the tiles),
/// then `dW = G^T dU G`. Sums over fixed chunks of samples are kept apart and added in order.
/// Each frequency's input tiles are transposed first (see `transpose`), so the gemm reads both
/// operands along their rows. Batch 64 at 1 thread, one `conv_layers` run with im2col + gemm
/// beside it: 64 -> 64 @ 14x14 (F(2x2)) 4.4 against 5.9 ms, 32 -> 64 @ 14x14 2.3 against
/// 3.2 ms, 32 -> 32 @ 28x28 (F(4x4)) 5.2 against 6.6 ms (on a quieter machine the Winograd
/// path took 3.4-3.6, 2.0-2.3 and 3.6-4.1 ms).
pub(crate) fn wino_weight_grad<T: Float>(g: &WinoGeom, x: &[T], gy: &[T]) -> Vec<T> {
    match g.tile() {
        2 => weight_grad_m::<T, 2, 4, 16>(g, x, gy),
        _ => weight_grad_m::<T, 4, 6, 36>(g, x, gy),
    }
}

fn weight_grad_m<T: Float, const M: usize, const A: usize, const AA: usize>(
    g: &WinoGeom,
    x: &[T],
    gy: &[T],
) -> Vec<T> {
    let (oh, ow) = (g.oh(), g.ow());
    let (chw, l, oc) = (g.c * g.h * g.w, oh * ow, g.o * g.c);
    if g.n * l == 0 {
        return vec![T::ZERO; oc * 9];
    }
    let mut p = Plan::new(*g, M, BLOCK_ELEMS);
    let parts = (g.n * p.ty * (p.tx + 1) / PARTIAL_COLS).clamp(1, g.n.min(MAX_PARTIALS));
    let per = g.n.div_ceil(parts);
    let parts = g.n.div_ceil(per);
    p.spb = p.spb.min(per);
    let (rl, vs, ms) = (p.row_len(), p.freq_stride(g.c), p.freq_stride(g.o));
    let par = inner_par(parts, g.o, g.c, p.cap());
    // One partial dU per chunk of samples, side by side; scratch is per worker, not per chunk.
    let partials = build_chunks(
        parts * AA * oc,
        (AA * oc, AA * oc),
        |_| T::ZERO,
        || Scratch::with_grad_rows(&p),
        |s, part, du| {
            let (first, end) = (part * per, ((part + 1) * per).min(g.n));
            let mut started = false;
            for n0 in (first..end).step_by(p.spb) {
                let ns = p.spb.min(end - n0);
                for y0 in (0..p.ty).step_by(p.band) {
                    let nr = p.band.min(p.ty - y0);
                    let cols = nr * (p.tx + 1);
                    for sl in 0..ns {
                        let n = n0 + sl;
                        for c in 0..g.c {
                            let plane = &x[n * chw + c * g.h * g.w..][..g.h * g.w];
                            input_tiles::<T, M, A, AA>(
                                &p,
                                s,
                                plane,
                                (y0, nr),
                                c * rl + sl * cols,
                                vs,
                            );
                        }
                        for o in 0..g.o {
                            let plane = &gy[(n * g.o + o) * l..][..l];
                            grad_tiles::<T, M, A, AA>(
                                &p,
                                s,
                                plane,
                                (y0, nr),
                                o * rl + sl * cols,
                                ms,
                            );
                        }
                    }
                    let k = ns * cols;
                    for xi in 0..AA {
                        // V[ξ]ᵀ, so the gemm reads both operands along their rows (see
                        // `transpose`).
                        transpose((g.c, k), &s.v[xi * vs..], rl, &mut s.vt, g.c);
                        gemm(
                            (g.o, g.c, k),
                            &mut du[xi * oc..],
                            g.c,
                            &s.mm[xi * ms..],
                            (rl, 1),
                            &s.vt,
                            (g.c, 1),
                            started,
                            par,
                        );
                    }
                    started = true;
                }
            }
        },
    );
    kernel_grad_transform::<T, A>(g_matrix(M), &partials, oc)
}

/// `dW[k][a][b] = Σ_{r,s} G[r][a] dU[r][s][k] G[s][b]` for the `oc` kernels of `dU`
/// [A·A, oc], the sum of the partials [parts, A·A, oc] (taken in order), a block of kernels at
/// a time so the loops run along contiguous kernels and vectorize (one kernel at a time,
/// reading 36 planes with a stride of `oc`, this took a tenth of a ConvLSTM training step).
/// Each sum keeps the order of r and s. Blocks are pieces for the workers: on the calling
/// thread alone, the partials' sum and this transform were 5% of a two-thread ConvLSTM step.
fn kernel_grad_transform<T: Float, const A: usize>(
    g: &[[f64; 3]],
    partials: &[T],
    oc: usize,
) -> Vec<T> {
    const KB: usize = 64;
    let gm: Vec<[T; 3]> = g.iter().map(|r| r.map(T::c)).collect();
    let parts: Vec<&[T]> = partials.chunks_exact(A * A * oc).collect();
    let block = |blk: usize, dw: &mut [MaybeUninit<T>]| {
        crate::simd::run(
            #[inline(always)]
            || {
                let (k0, kn) = (blk * KB, dw.len() / 9);
                // du[r][s][k]: the partials summed in order.
                let mut du = [[[T::ZERO; KB]; A]; A];
                for (r, dr) in du.iter_mut().enumerate() {
                    for (sc, d) in dr.iter_mut().enumerate() {
                        let at = (r * A + sc) * oc + k0;
                        if let Some((first, rest)) = parts.split_first() {
                            d[..kn].copy_from_slice(&first[at..][..kn]);
                            for part in rest {
                                for (v, &p) in d.iter_mut().zip(&part[at..][..kn]) {
                                    *v += p;
                                }
                            }
                        }
                    }
                }
                // tmp[r][b] = Σ_s dU[r][s] G[s][b].
                let mut tmp = [[[T::ZERO; KB]; 3]; A];
                for (t, dr) in tmp.iter_mut().zip(&du) {
                    for (b, tv) in t.iter_mut().enumerate() {
                        for (gs, src) in gm.iter().zip(dr) {
                            for (v, &d) in tv.iter_mut().zip(&src[..kn]) {
                                *v += d * gs[b];
                            }
                        }
                    }
                }
                let mut out = [[T::ZERO; KB]; 9];
                for (ab, ov) in out.iter_mut().enumerate() {
                    let (a, b) = (ab / 3, ab % 3);
                    for (gr, t) in gm.iter().zip(&tmp) {
                        for (v, &tv) in ov.iter_mut().zip(&t[b]) {
                            *v += gr[a] * tv;
                        }
                    }
                }
                for (k, d) in dw.chunks_exact_mut(9).enumerate() {
                    for (ab, dv) in d.iter_mut().enumerate() {
                        dv.write(out[ab][k]);
                    }
                }
            },
        )
    };
    // SAFETY: block `blk` writes all 9 taps of each of its kernels.
    unsafe { build_uninit(oc * 9, KB * 9, block) }
}
