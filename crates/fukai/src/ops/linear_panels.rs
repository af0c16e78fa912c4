//! `x Wᵀ` in f32 with the weight laid out for the product: panels of 16 output columns, each
//! holding its columns' weights for `k = 0, 1, …` side by side. A kernel step loads 16
//! weights in one contiguous read and multiplies them by one input value broadcast over the
//! lanes, for up to six rows at once, so the weight streams through once per block of rows.
//! Read in place as `[out, in]` rows (`linear_rows`), the same weights took 40% longer on one
//! sentence through MiniLM; gemm packs the weight on every call.
//!
//! Laying out costs about two products' time, so it pays only when kept: it takes a weight not
//! being trained in the call (inference, ONNX initializers, eval passes) whose memory is its
//! own, at any number of rows (up to 256 with AVX-512, where gemm wins beyond); the panels are
//! made on first use and kept beside the memory until it is next written
//! ([`Storage::derived`]), a second copy of each weight used this way.
//! A weight being trained is rewritten every step, and a view into a larger memory has no slot
//! of its own: those are read in place, by `linear_rows` for a few rows and by gemm for more.
//!
//! AVX2 with FMA, or AVX-512 (elsewhere gemm does these products). Each output is one chain of
//! fused multiply-adds over `k` in order, from 0, then added to its bias: the bits depend on
//! neither the thread count, nor which rows share the call, nor the instruction set.

use super::matmul::SendPtr;
use crate::tensor::Storage;
use std::mem::MaybeUninit;
use std::ops::Range;

/// With AVX-512, products of more rows go to gemm, whose kernel then wins: on a Xeon with
/// AVX-512 (`fukai-bench --threads 1 linear_rows`, three runs) these panels took 0.93× gemm's
/// time at 208 × 384 × 1536, 1.02–1.37× at 512 rows and 1.08–1.14× at 1024. With AVX2 (an
/// EPYC, bench/notes.md) they took 0.62–1.04× its time on the shapes tried up to 4096 rows
/// (single passes at 1.25× and 1.54× on two small products).
const WIDE_MAX_ROWS: usize = 256;
/// Output columns per panel: one AVX-512 register, two AVX2 ones.
const PANEL: usize = 16;
/// Panels per task. Fixed, so that how the work is split never depends on the thread count.
const PANELS_PER_TASK: usize = 4;
/// Products below this many multiply-adds stay on the calling thread.
const PAR_MACS: usize = 1 << 20;
/// Most input rows a tile multiplies at once: 6 rows × 2 AVX2 registers of sums, beside the
/// panel's two registers and the broadcast value, fill 15 of AVX2's 16 registers.
const MAX_TILE_ROWS: usize = 6;
/// Bytes of input rows a task reads while its panels stay in L2 (beside up to 4 panels).
const ROW_BLOCK_BYTES: usize = 128 << 10;
/// Most rows per task (8 tiles).
const MAX_BLOCK_ROWS: usize = 48;

/// Whether this CPU runs the kernel (AVX2 and FMA; AVX-512 where there is one).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether an f32 product of `m` rows by a weight whose panels are kept runs here. One row is
/// a matrix-vector product, which gemm has its own path for (1.3–2× faster than
/// `linear_rows` on SmolLM2's shapes, `fukai-bench linear_rows`).
pub(crate) fn takes(m: usize) -> bool {
    m >= 2 && available() && (m <= WIDE_MAX_ROWS || !wide())
}

/// A `[n, k]` weight laid out for the kernel: panel `p` holds `k` groups of 16 values, group
/// `i` being `w[16p + j, i]` for `j < 16` (zeros past the last column).
pub(crate) struct Panels {
    n: usize,
    k: usize,
    // Read by the x86 kernels only; elsewhere `available` is false and nothing packs.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    data: Vec<f32>,
}

impl Panels {
    /// Lays out `w` (`[n, k]`, row-major).
    pub(crate) fn pack(w: &[f32], n: usize, k: usize) -> Panels {
        assert_eq!(
            w.len(),
            n * k,
            "linear_panels: weight of {} values is not {n}x{k}",
            w.len()
        );
        let mut data = vec![0f32; n.div_ceil(PANEL) * PANEL * k];
        crate::parallel::for_each_chunk_mut_if(
            n * k >= PAR_MACS,
            &mut data,
            PANEL * k,
            |p, panel| {
                for j in 0..PANEL.min(n - p * PANEL) {
                    let row = &w[(p * PANEL + j) * k..][..k];
                    for (group, &v) in panel.chunks_exact_mut(PANEL).zip(row) {
                        group[j] = v;
                    }
                }
            },
        );
        Panels { n, k, data }
    }
    /// The panels of `w` (`[n, k]`), kept in `memory`: the storage `w` is, whole, read-locked
    /// by the caller (so `w` is what they are made from).
    pub(crate) fn kept(w: &[f32], n: usize, k: usize, memory: &Storage) -> std::sync::Arc<Panels> {
        memory.derived(|p: &Panels| (p.n, p.k) == (n, k), || Panels::pack(w, n, k))
    }
}

/// Writes `x Wᵀ + b` into `out`: `x` is `[m, k]`, the weight `[n, k]` given as its panels, `b`
/// `[n]` (none: zeros), `out` `[m, n]`, all row-major and contiguous. Every output is written
/// and none is read, so `out` needs no filling first: the bias is added as the sums are stored
/// (filling the rows with it first, then adding onto them, was a pass over every output and
/// a read of each beside the store). Callers check [`available`] first.
pub(crate) fn linear_into(
    x: &[f32],
    w: &Panels,
    b: Option<&[f32]>,
    out: &mut [MaybeUninit<f32>],
    m: usize,
) {
    linear_into_on(wide(), x, w, b, out, m);
}

/// Whether the AVX-512 kernel runs (else the AVX2 one).
pub(super) fn wide() -> bool {
    crate::simd::has_avx512()
}

/// [`linear_into`] on the AVX-512 kernel (`wide`, which the CPU must have) or the AVX2 one.
fn linear_into_on(
    wide: bool,
    x: &[f32],
    w: &Panels,
    b: Option<&[f32]>,
    out: &mut [MaybeUninit<f32>],
    m: usize,
) {
    let (n, k) = (w.n, w.k);
    assert!(
        available()
            && (!wide || self::wide())
            && x.len() == m * k
            && out.len() == m * n
            && b.is_none_or(|b| b.len() == n),
        "linear_panels: called without AVX2 (or AVX-512, asked for) or with mismatched sizes"
    );
    if m == 0 || n == 0 {
        return;
    }
    let block = (ROW_BLOCK_BYTES / (4 * k.max(1)) / MAX_TILE_ROWS * MAX_TILE_ROWS)
        .clamp(MAX_TILE_ROWS, MAX_BLOCK_ROWS);
    let groups = n.div_ceil(PANEL).div_ceil(PANELS_PER_TASK);
    let blocks = m.div_ceil(block);
    let dst = SendPtr(out.as_mut_ptr().cast::<f32>());
    // Consecutive tasks share their panels (a group's are 96 KB at k = 384) and take the row
    // blocks in turn, so a thread streams the weight once per product while the rows stay in
    // L2. Row blocks first made each block stream the whole weight: 8 sentences through
    // MiniLM (208 rows, 5 blocks) read its 42.5 MB of panels five times per pass.
    crate::parallel::map_range_if(m * n * k >= PAR_MACS, blocks * groups, |t| {
        let (g, r) = (t / blocks, t % blocks);
        let rows = r * block..((r + 1) * block).min(m);
        let ps = g * PANELS_PER_TASK..((g + 1) * PANELS_PER_TASK).min(n.div_ceil(PANEL));
        // SAFETY: tasks own disjoint (rows, panels) blocks of `out` (`[m, n]`, checked above).
        unsafe { run_panels(wide, x, w, b, dst, rows, ps) }
    });
}

/// Writes `b[c] + x[r] · w[c]` into `out[r, c]` for `r` in `rows` and every column of panels
/// `ps`.
///
/// # Safety
/// `out` points to `[m, n]` floats (initialized or not) of which no other thread touches the
/// block (`rows`, panels `ps`); the caller checked `available` (and `wide` for the AVX-512
/// kernel) and the lengths of `x` and `b`.
#[cfg(target_arch = "x86_64")]
unsafe fn run_panels(
    wide: bool,
    x: &[f32],
    w: &Panels,
    b: Option<&[f32]>,
    out: SendPtr<f32>,
    rows: Range<usize>,
    ps: Range<usize>,
) {
    // SAFETY: the caller's contract.
    unsafe {
        if wide {
            x86::panels_avx512(x, w, b, out.get(), rows, ps)
        } else {
            x86::panels_avx2(x, w, b, out.get(), rows, ps)
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn run_panels(
    _: bool,
    _: &[f32],
    _: &Panels,
    _: Option<&[f32]>,
    _: SendPtr<f32>,
    _: Range<usize>,
    _: Range<usize>,
) {
    unreachable!("linear_panels: `available` is false off x86-64")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::x86_lanes::{Avx2, Avx512, Lanes};
    use super::{Panels, Range, MAX_TILE_ROWS, PANEL};
    use std::arch::x86_64::*;

    /// Steps of `k` per turn of a tile's loop.
    const UNROLL: usize = 4;

    /// How many rows a tile may span two panels with: more sums in flight cover the
    /// multiply-add latency, up to what the registers hold.
    trait PairRows {
        const PAIR_ROWS: usize;
    }

    impl PairRows for Avx2 {
        const PAIR_ROWS: usize = 2;
    }

    impl PairRows for Avx512 {
        const PAIR_ROWS: usize = MAX_TILE_ROWS;
    }

    /// [`panels_avx512`] with AVX2 and FMA.
    ///
    /// # Safety
    /// As [`panels_avx512`], with AVX2 and FMA instead of AVX-512F.
    #[target_feature(enable = "avx2,avx,fma")]
    pub(super) unsafe fn panels_avx2(
        x: &[f32],
        w: &Panels,
        b: Option<&[f32]>,
        out: *mut f32,
        rows: Range<usize>,
        ps: Range<usize>,
    ) {
        unsafe { by_tiles::<Avx2>(x, w, b, out, rows, ps) }
    }

    /// `out[r, c] = b[c] + x[r] · w[c]` for `r` in `rows` and every column of panels `ps`.
    ///
    /// # Safety
    /// AVX-512F (with AVX2 and FMA) must be available; `x` holds at least `rows.end` rows of
    /// `w.k`, `b` (if any) `w.n` values; `out` points to `[m, w.n]` floats, `m ≥ rows.end`,
    /// whose block (`rows`, panels `ps`) no other thread touches.
    #[target_feature(enable = "avx512f,avx2,avx,fma")]
    pub(super) unsafe fn panels_avx512(
        x: &[f32],
        w: &Panels,
        b: Option<&[f32]>,
        out: *mut f32,
        rows: Range<usize>,
        ps: Range<usize>,
    ) {
        unsafe { by_tiles::<Avx512>(x, w, b, out, rows, ps) }
    }

    /// Walks panels `ps` by pairs and `rows` by tiles of at most [`MAX_TILE_ROWS`], as even
    /// as they come (11 rows: 6 and 5), so no tile is left with a row or two.
    ///
    /// # Safety
    /// As [`panels_avx512`], for the instruction set `L` needs.
    #[inline(always)]
    unsafe fn by_tiles<L: Lanes + PairRows>(
        x: &[f32],
        w: &Panels,
        b: Option<&[f32]>,
        out: *mut f32,
        block: Range<usize>,
        ps: Range<usize>,
    ) {
        let (n, k) = (w.n, w.k);
        let m = block.len();
        let tiles = m.div_ceil(MAX_TILE_ROWS);
        let mut p = ps.start;
        while p < ps.end {
            let pair = (ps.end - p).min(2);
            let mut r = block.start;
            for t in 0..tiles {
                let rows = m / tiles + usize::from(t < m % tiles);
                let at = Tile {
                    x: x[r * k..].as_ptr(),
                    k,
                    out: out.wrapping_add(r * n + p * PANEL),
                    bias: b.map(|b| b[p * PANEL..].as_ptr()),
                    n,
                    cols: n - p * PANEL,
                    prefetch: (t * k / tiles, 65536usize.div_ceil(tiles)),
                };
                let panel = |q: usize| w.data[(p + q) * PANEL * k..].as_ptr();
                // SAFETY: rows r..r + rows ≤ block.end, panels p..p + pair ≤ ps.end; the caller's
                // contract for the rest.
                unsafe {
                    if pair == 2 && rows <= L::PAIR_ROWS {
                        tile_rows::<L, 2>(rows, &at, [panel(0), panel(1)]);
                    } else {
                        for q in 0..pair {
                            let at = Tile {
                                out: at.out.wrapping_add(q * PANEL),
                                bias: at.bias.map(|b| b.wrapping_add(q * PANEL)),
                                cols: at.cols - q * PANEL,
                                ..at
                            };
                            tile_rows::<L, 1>(rows, &at, [panel(q)]);
                        }
                    }
                }
                r += rows;
            }
            p += pair;
        }
    }

    /// Where a tile reads and writes: its first input row (rows `k` apart), its first output
    /// (rows `n` apart) and bias, and how many columns from there are real (the rest are
    /// padding).
    #[derive(Clone, Copy)]
    struct Tile {
        x: *const f32,
        k: usize,
        out: *mut f32,
        bias: Option<*const f32>,
        n: usize,
        cols: usize,
        /// This tile's share of the next pair of panels to prefetch: from cache line `first`,
        /// one line per `65536 / recip` steps (the block's tiles split the pair between them).
        prefetch: (usize, usize),
    }

    /// [`tile`] for a row count known only at run time.
    ///
    /// # Safety
    /// As [`tile`].
    #[inline(always)]
    unsafe fn tile_rows<L: Lanes, const P: usize>(rows: usize, at: &Tile, panels: [*const f32; P]) {
        unsafe {
            match rows {
                1 => tile::<L, 1, P>(at, panels),
                2 => tile::<L, 2, P>(at, panels),
                3 => tile::<L, 3, P>(at, panels),
                4 => tile::<L, 4, P>(at, panels),
                5 => tile::<L, 5, P>(at, panels),
                _ => tile::<L, 6, P>(at, panels),
            }
        }
    }

    /// `out[i, c] = b[c] + x[i] · w[c]` for `R` rows and the `16 P` columns of `panels`, of
    /// which the first `at.cols` are stored.
    ///
    /// # Safety
    /// `at.x` starts `R` rows of `at.k` floats; each panel holds `16 at.k` floats; `at.out`
    /// starts `R` rows of `at.n` floats, each with `min(at.cols, 16 P)` writable from there,
    /// and `at.bias` (if any) as many readable.
    #[inline(always)]
    unsafe fn tile<L: Lanes, const R: usize, const P: usize>(at: &Tile, panels: [*const f32; P]) {
        let mut acc = [[unsafe { L::zero() }; P]; R];
        // The next pair of panels, two ahead of each of these, into L2 while these are worked
        // on: the pair being read is reused from cache by every row tile, and without this the
        // memory sat idle meanwhile (one sentence through MiniLM read its weights at a third of
        // a core's bandwidth). Only an address: prefetching past the panels is harmless.
        let ahead: [*const i8; P] =
            std::array::from_fn(|q| panels[q].wrapping_add(2 * PANEL * at.k).cast());
        let (first, recip) = at.prefetch;
        // Steps by fours, unrolled: the loop's own work and the prefetch's arithmetic were
        // a third of the instructions per step beside the 12 multiply-adds of an AVX-512 tile.
        // (Closures would not inherit the caller's target features; these are functions.)
        let whole = at.k - at.k % UNROLL;
        // SAFETY (every step): i < k.
        for i in (0..whole).step_by(UNROLL) {
            unsafe { prefetch((first, recip), &ahead, i..i + UNROLL) };
            for u in 0..UNROLL {
                unsafe { step::<L, R, P>(&mut acc, at, &panels, i + u) };
            }
        }
        for i in whole..at.k {
            unsafe {
                prefetch((first, recip), &ahead, i..i + 1);
                step::<L, R, P>(&mut acc, at, &panels, i);
            }
        }
        // Each sum goes out as `bias + sum`, with 0 for no bias: `0 + sum` is the sum but for
        // its zero's sign, as when the rows were filled with zeros and the sums added on.
        for (q, column) in (0..P).map(|q| (q, at.cols.saturating_sub(q * PANEL).min(PANEL))) {
            let mut bias = [0f32; PANEL];
            if let Some(b) = at.bias {
                // SAFETY: `column` biases from panel q's first.
                unsafe {
                    std::ptr::copy_nonoverlapping(b.add(q * PANEL), bias.as_mut_ptr(), column)
                };
            }
            // SAFETY: 16 floats.
            let bias = unsafe { L::load(bias.as_ptr()) };
            for (r, acc) in acc.iter().enumerate() {
                // SAFETY: row r of `out`, `column` columns from panel q's first.
                unsafe {
                    let dst = at.out.add(r * at.n + q * PANEL);
                    let v = L::add(bias, acc[q]);
                    if column == PANEL {
                        v.store(dst);
                    } else {
                        let mut lanes = [0f32; PANEL];
                        v.store(lanes.as_mut_ptr());
                        std::ptr::copy_nonoverlapping(lanes.as_ptr(), dst, column);
                    }
                }
            }
        }
    }

    /// One step of [`tile`]: weights `i` of the panels times column `i` of the rows.
    ///
    /// # Safety
    /// As [`tile`], with `i < at.k`.
    #[inline(always)]
    unsafe fn step<L: Lanes, const R: usize, const P: usize>(
        acc: &mut [[L; P]; R],
        at: &Tile,
        panels: &[*const f32; P],
        i: usize,
    ) {
        let ws: [L; P] = std::array::from_fn(|q| unsafe { L::load(panels[q].add(i * PANEL)) });
        for (r, acc) in acc.iter_mut().enumerate() {
            let v = unsafe { L::splat(at.x.add(r * at.k + i)) };
            for (a, &w) in acc.iter_mut().zip(&ws) {
                *a = unsafe { L::fma(v, w, *a) };
            }
        }
    }

    /// Prefetches the lines of the next pair of panels (`ahead`) that steps `steps` share out
    /// to this tile (`(first, recip)` as in [`Tile::prefetch`]).
    #[inline(always)]
    unsafe fn prefetch<const P: usize>(
        (first, recip): (usize, usize),
        ahead: &[*const i8; P],
        steps: Range<usize>,
    ) {
        let lines =
            first + ((steps.start * recip) >> 16)..=first + (((steps.end - 1) * recip) >> 16);
        for line in lines {
            for &a in ahead {
                _mm_prefetch::<_MM_HINT_T1>(a.wrapping_add(line * 4 * PANEL));
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// (m, k, n) at the edges of the tiling: single rows and columns, ragged panels, row
    /// counts that split into uneven tiles, `k` of 0 and 1.
    const SHAPES: [(usize, usize, usize); 8] = [
        (1, 1, 1),
        (3, 17, 5),
        (4, 16, 4),
        (11, 384, 70),
        (16, 33, 129),
        (2, 9, 7),
        (7, 40, 66),
        (5, 0, 20),
    ];

    /// Inputs `x` `[m, k]` and weights `w` `[n, k]` of small exact values.
    pub(in crate::ops) fn operands(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
        let x = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let w = (0..n * k)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
            .collect();
        (x, w)
    }

    /// Checks a kernel, `add(x, w, out, (m, k, n))` adding `x Wᵀ` onto `out`, against the same
    /// products summed in f64 on each of `shapes`; and that a row's bits do not depend on which
    /// other rows share the call. (`linear_rows` is checked here too.)
    pub(in crate::ops) fn check_against_f64(
        shapes: &[(usize, usize, usize)],
        add: impl Fn(&[f32], &[f32], &mut [f32], (usize, usize, usize)),
    ) {
        for &(m, k, n) in shapes {
            let (x, w) = operands(m, k, n);
            let mut out = vec![1.0f32; m * n];
            add(&x, &w, &mut out, (m, k, n));
            for r in 0..m {
                let terms = (0..n).map(|c| {
                    let t = (0..k).map(|i| x[r * k + i] as f64 * w[c * k + i] as f64);
                    (
                        1.0 + t.clone().sum::<f64>(),
                        1.0 + t.map(f64::abs).sum::<f64>(),
                    )
                });
                for (c, (want, scale)) in terms.enumerate() {
                    let got = out[r * n + c] as f64;
                    assert!((got - want).abs() <= 4e-6 * scale, "{m}x{k}x{n} at {r},{c}");
                }
                let mut alone = vec![1.0f32; n];
                add(&x[r * k..][..k], &w, &mut alone, (1, k, n));
                assert_eq!(
                    alone,
                    out[r * n..][..n],
                    "row {r} alone vs in a batch of {m}"
                );
            }
        }
    }

    /// At every edge of the tiling.
    #[test]
    fn matches_a_plain_product_at_every_edge() {
        if !available() {
            eprintln!("skipped: no AVX2 and FMA on this CPU (gemm does these products)");
            return;
        }
        // `check_against_f64` fills every row of `out` alike: the first is the bias.
        check_against_f64(&SHAPES, |x, w, out, (m, k, n)| {
            let bias = out[..n.min(out.len())].to_vec();
            assert!(out.chunks(n.max(1)).all(|row| row == bias));
            linear_into(x, &Panels::pack(w, n, k), Some(&bias), uninit(out), m)
        });
    }

    /// `out` as slots to write (each gets an f32).
    fn uninit(out: &mut [f32]) -> &mut [MaybeUninit<f32>] {
        // SAFETY: MaybeUninit<f32> has f32's layout, and only f32 values are written.
        unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast(), out.len()) }
    }

    /// The kernel's bits, written out in scalar code: one fused multiply-add chain over `k`
    /// in order, from 0, then added to the bias (0 where there is none).
    fn spec(x: &[f32], w: &[f32], bias: f32) -> f32 {
        bias + x.iter().zip(w).fold(0f32, |acc, (a, b)| a.mul_add(*b, acc))
    }

    /// Every kernel this CPU runs gives the written-out bits (so a machine with AVX2 alone
    /// still checks that its kernel sums as the AVX-512 one does), over row counts that fill
    /// and break the row tiles, panels that pair and do not, with a bias and without; what the
    /// output held before (NaN here) is never read.
    #[test]
    fn gives_the_specified_bits() {
        if !available() {
            eprintln!("skipped: no AVX2 and FMA on this CPU (gemm does these products)");
            return;
        }
        let shapes = SHAPES
            .into_iter()
            .chain(
                (1..=16)
                    .map(|m| (m, 23, 2 * PANEL * PANELS_PER_TASK + 37))
                    .chain([(100, 7, 40), (61, 2000, 70)]),
            )
            .chain([(16, 1100, 9), (5, 512, 13), (13, 64, 300)]);
        for (m, k, n) in shapes {
            let (x, w) = operands(m, k, n);
            let x: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(i, v)| v * (1.0 + i as f32 * 1e-3))
                .collect();
            let panels = Panels::pack(&w, n, k);
            let bias: Vec<f32> = (0..n).map(|c| 0.25 - c as f32 * 0.01).collect();
            for b in [Some(&bias[..]), None] {
                let want: Vec<u32> = (0..m * n)
                    .map(|i| {
                        let b = b.map_or(0.0, |b| b[i % n]);
                        spec(&x[i / n * k..][..k], &w[i % n * k..][..k], b).to_bits()
                    })
                    .collect();
                for wide in [false, true].into_iter().filter(|&on| !on || wide()) {
                    let mut out = vec![f32::NAN; m * n];
                    linear_into_on(wide, &x, &panels, b, uninit(&mut out), m);
                    let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                    let bias = b.is_some();
                    assert_eq!(
                        got, want,
                        "{m}x{k}x{n}, AVX-512 kernel: {wide}, bias: {bias}"
                    );
                }
            }
        }
    }

    /// The layout the kernel reads: column `c`'s weight `i` at panel `c / 16`, group `i`,
    /// lane `c % 16`, and zeros in the lanes past the last column.
    #[test]
    fn panels_hold_each_column_in_its_lane() {
        let (n, k) = (19, 3);
        let w: Vec<f32> = (0..n * k).map(|i| i as f32 + 1.0).collect();
        let p = Panels::pack(&w, n, k);
        assert_eq!(p.data.len(), 2 * PANEL * k);
        for c in 0..2 * PANEL {
            for i in 0..k {
                let got = p.data[(c / PANEL) * PANEL * k + i * PANEL + c % PANEL];
                let want = if c < n { w[c * k + i] } else { 0.0 };
                assert_eq!(got, want, "column {c}, weight {i}");
            }
        }
    }

    /// A frozen weight's kept panels never outlive its values: written in place, or read as
    /// another shape over the same memory, the product follows the weight as it is now.
    #[test]
    fn kept_panels_follow_the_weight() -> crate::Result<()> {
        use crate::Tensor;
        let ramp =
            |len: usize, s: f32| (0..len).map(|i| ((i * 7 % 23) as f32 - 11.0) * s).collect();
        let (m, k, n) = (5, 40, 24);
        let x = Tensor::from_vec(ramp(m * k, 0.1), &[m, k])?;
        let w = Tensor::from_vec(ramp(n * k, 0.03), &[n, k])?;
        // The reference: the same values in fresh memory, so nothing kept is reused.
        let fresh = |w: &Tensor, x: &Tensor| -> crate::Result<Vec<f32>> {
            let copy = Tensor::from_vec(w.to_vec::<f32>()?, w.shape())?;
            x.linear(&copy, None)?.to_vec()
        };
        let before = x.linear(&w, None)?.to_vec::<f32>()?;
        assert_eq!(before, fresh(&w, &x)?);
        w.copy_from(&Tensor::from_vec(ramp(n * k, -0.05), &[n, k])?)?;
        let after = x.linear(&w, None)?.to_vec::<f32>()?;
        assert_ne!(after, before, "the product still read the old panels");
        assert_eq!(after, fresh(&w, &x)?);
        // The same memory as a [40, 24] weight, then as [24, 40] again.
        let other = w.reshape(&[k, n])?;
        let x2 = Tensor::from_vec(ramp(m * n, 0.2), &[m, n])?;
        assert_eq!(
            x2.linear(&other, None)?.to_vec::<f32>()?,
            fresh(&other, &x2)?
        );
        assert_eq!(x.linear(&w, None)?.to_vec::<f32>()?, after);
        Ok(())
    }

    /// Many rows of a frozen weight run here, a trained one's on gemm: the two agree to
    /// rounding, and the frozen product's bits do not depend on the thread count.
    #[test]
    fn many_rows_of_a_frozen_weight() -> crate::Result<()> {
        use crate::Tensor;
        if !available() {
            eprintln!("skipped: no AVX2 and FMA on this CPU (gemm does these products)");
            return Ok(());
        }
        // Few enough rows for the panels with AVX-512 too.
        let (m, k, n) = (200, 70, 90);
        let x = Tensor::randn(&[m, k], crate::DType::F32)?;
        let w = Tensor::randn(&[n, k], crate::DType::F32)?;
        let frozen = x.linear(&w, None)?.to_vec::<f32>()?;
        let one = crate::testing::with_threads(1, || x.linear(&w, None))?.to_vec::<f32>()?;
        assert_eq!(frozen, one);
        w.set_requires_grad(true)?;
        let trained = x.linear(&w, None)?.to_vec::<f32>()?;
        let worst = frozen
            .iter()
            .zip(&trained)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-4, "panels and gemm differ by {worst}");
        Ok(())
    }

    /// A weight being trained (rewritten every step) and a view into a larger memory are read
    /// in place by `linear_rows` (its bits), nothing laid out or kept for them; their products
    /// agree with the frozen weight's panels to rounding.
    #[test]
    fn trained_weights_and_views_keep_nothing() -> crate::Result<()> {
        use crate::Tensor;
        let (m, k, n) = (11, 96, 80);
        let x = Tensor::randn(&[m, k], crate::DType::F32)?;
        let stacked = Tensor::randn(&[2 * n, k], crate::DType::F32)?;
        let view = stacked.narrow(0, n, n)?;
        let frozen = Tensor::from_vec(view.to_vec::<f32>()?, &[n, k])?;
        let want = x.linear(&frozen, None)?.to_vec::<f32>()?;
        assert_eq!(frozen.storage().keeps_derived(), available());
        let trained = Tensor::from_vec(view.to_vec::<f32>()?, &[n, k])?;
        trained.set_requires_grad(true)?;
        for (w, what) in [(&view, "a view"), (&trained, "a trained weight")] {
            let got = x.linear(w, None)?.to_vec::<f32>()?;
            let worst = crate::testing::max_slice_diff(&got, &want);
            assert!(worst <= 1e-4, "{what}: differs from the panels by {worst}");
            assert!(!w.storage().keeps_derived(), "{what}: panels were kept");
            if available() {
                let mut rows = vec![0f32; m * n];
                let (xv, wv) = (x.to_vec::<f32>()?, w.to_vec::<f32>()?);
                super::super::linear_rows::add_linear_rows(&xv, &wv, &mut rows, (m, k, n));
                assert_eq!(got, rows, "{what}: not read in place by linear_rows");
            }
        }
        Ok(())
    }
}
