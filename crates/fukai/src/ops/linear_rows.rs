//! `x Wᵀ` in f32 for a few rows of `x` by a weight read in place: one that is being trained
//! (rewritten every step, so `linear_panels` would lay it out again for each call) or a view
//! into a larger memory. Each output is the dot product of an input row with a weight row, both
//! contiguous, so the `[out, in]` weight streams from memory once. gemm copies ("packs") a
//! weight read through transposed strides on every call and runs its 48-row microkernel mostly
//! empty at these sizes.
//!
//! AVX-512, or AVX2 with FMA (elsewhere gemm does these products as before). Each dot product
//! is summed in 16 lanes with fused multiply-adds over `k` in order (on AVX2, two registers of
//! 8), the lanes then combined in a fixed order, so the bits depend on neither the thread
//! count, nor how outputs are grouped, nor which of the two instruction sets ran.

// The same CPU checks as the panels: both kernels run where AVX2 and FMA do.
use super::linear_panels::{available, wide};
use super::matmul::SendPtr;

/// Products with this many rows run here; others on gemm. One row is a matrix-vector
/// product, which gemm has its own path for (1.3–2× faster than this kernel on SmolLM2's
/// shapes, `fukai-bench linear_rows`); above 16, its microkernel fills up.
const ROWS: std::ops::RangeInclusive<usize> = 2..=16;
/// Outputs per task. Fixed, so that how the work is split never depends on the thread count.
const COLS_PER_TASK: usize = 64;
/// Products below this many multiply-adds stay on the calling thread.
const PAR_MACS: usize = 1 << 20;

/// Whether an f32 product of `m` rows runs here.
pub(crate) fn takes(m: usize) -> bool {
    ROWS.contains(&m) && available()
}

/// Adds `x Wᵀ` onto `out`: `x` is `[m, k]`, `w` `[n, k]`, `out` `[m, n]`, all row-major and
/// contiguous, `m` in [`ROWS`]. Callers check [`available`] first.
pub(crate) fn add_linear_rows(x: &[f32], w: &[f32], out: &mut [f32], mkn: (usize, usize, usize)) {
    add_linear_rows_on(wide(), x, w, out, mkn);
}

/// [`add_linear_rows`] on the AVX-512 kernel (`wide`, which the CPU must have) or the AVX2 one.
fn add_linear_rows_on(
    wide: bool,
    x: &[f32],
    w: &[f32],
    out: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    assert!(
        available()
            && (!wide || self::wide())
            && m <= *ROWS.end()
            && x.len() == m * k
            && w.len() == n * k
            && out.len() == m * n,
        "linear_rows: called without AVX2 (or AVX-512, asked for) or with mismatched sizes"
    );
    if m == 0 || n == 0 {
        return;
    }
    let tasks = n.div_ceil(COLS_PER_TASK);
    let dst = SendPtr(out.as_mut_ptr());
    crate::parallel::map_range_if(m * n * k >= PAR_MACS, tasks, |t| {
        let cols = t * COLS_PER_TASK..((t + 1) * COLS_PER_TASK).min(n);
        // SAFETY: tasks own disjoint column ranges of `out` (`[m, n]`, checked above).
        unsafe { columns(wide, x, w, dst, (m, k, n), cols) }
    });
}

/// Adds `x[r] · w[c]` onto `out[r, c]` for every row and every `c` in `cols`.
///
/// # Safety
/// `out` points to `[m, n]` floats of which no other thread touches columns `cols`; the caller
/// checked `available` (and `wide` for the AVX-512 kernel) and the slices' lengths against
/// (m, k, n).
#[cfg(target_arch = "x86_64")]
unsafe fn columns(
    wide: bool,
    x: &[f32],
    w: &[f32],
    out: SendPtr<f32>,
    mkn: (usize, usize, usize),
    cols: std::ops::Range<usize>,
) {
    // SAFETY: the caller's contract.
    unsafe {
        if wide {
            x86::columns(x, w, out.get(), mkn, cols)
        } else {
            x86::columns_avx2(x, w, out.get(), mkn, cols)
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn columns(
    _: bool,
    _: &[f32],
    _: &[f32],
    _: SendPtr<f32>,
    _: (usize, usize, usize),
    _: std::ops::Range<usize>,
) {
    unreachable!("linear_rows: `available` is false off x86-64")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Weight rows per tile: each chunk of an input row, once loaded, meets this many weights.
    const NR: usize = 4;
    /// Input rows per tile: each weight chunk, once loaded, meets this many rows.
    const MR: usize = 4;

    /// `out[r, c] += x[r] · w[c]` for every row and every `c` in `cols`, by tiles of `NT`
    /// weight rows and up to `MT` input rows; `tile(rows, xs, ws, sums)` computes one tile's
    /// dot products (the first `rows` pointers of `xs` are real).
    ///
    /// # Safety
    /// `x` holds `m` rows and `w` at least `cols.end` rows of `k`; `out` points to `[m, n]`
    /// floats whose columns `cols` no other thread touches; `tile` is safe to call with
    /// pointers that each start `k` readable floats.
    #[inline(always)]
    unsafe fn by_tiles<const NT: usize, const MT: usize>(
        x: &[f32],
        w: &[f32],
        out: *mut f32,
        (m, k, n): (usize, usize, usize),
        cols: std::ops::Range<usize>,
        tile: impl Fn(usize, &[*const f32; MT], &[*const f32; NT], &mut [[f32; NT]; MT]),
    ) {
        let mut c = cols.start;
        while c < cols.end {
            // A short last tile repeats its last weight row; the repeats are not stored.
            let mut ws = [w.as_ptr(); NT];
            for (j, p) in ws.iter_mut().enumerate() {
                *p = w[(c + j).min(cols.end - 1) * k..][..k].as_ptr();
            }
            let stored = NT.min(cols.end - c);
            let mut r = 0;
            while r < m {
                let rows = MT.min(m - r);
                let mut xs = [x.as_ptr(); MT];
                for (i, p) in xs.iter_mut().enumerate().take(rows) {
                    *p = x[(r + i) * k..][..k].as_ptr();
                }
                let mut sums = [[0f32; NT]; MT];
                tile(rows, &xs, &ws, &mut sums);
                for (i, s) in sums.iter().enumerate().take(rows) {
                    for (j, &v) in s[..stored].iter().enumerate() {
                        // SAFETY: row r + i < m and column c + j < cols.end ≤ n.
                        unsafe { *out.add((r + i) * n + c + j) += v };
                    }
                }
                r += rows;
            }
            c += NT;
        }
    }

    /// `out[r, c] += x[r] · w[c]` for every row and every `c` in `cols`.
    ///
    /// # Safety
    /// AVX-512F (with AVX2 and FMA) must be available; `x` holds `m` rows and `w` at least
    /// `cols.end` rows of `k`; `out` points to `[m, n]` floats whose columns `cols` no other
    /// thread touches.
    #[target_feature(enable = "avx512f,avx2,avx,fma")]
    pub(super) unsafe fn columns(
        x: &[f32],
        w: &[f32],
        out: *mut f32,
        mkn: (usize, usize, usize),
        cols: std::ops::Range<usize>,
    ) {
        let k = mkn.1;
        // SAFETY: the caller's contract; every pointer the driver hands over starts `k` floats.
        unsafe {
            by_tiles::<NR, MR>(x, w, out, mkn, cols, |rows, xs, ws, sums| match rows {
                4 => tile::<4>(xs, ws, k, sums),
                3 => tile::<3>(xs, ws, k, sums),
                2 => tile::<2>(xs, ws, k, sums),
                _ => tile::<1>(xs, ws, k, sums),
            })
        }
    }

    /// `sums[i][j] = xs[i] · ws[j]` for `i < R`, each of length `k`.
    ///
    /// # Safety
    /// AVX-512F, AVX2, FMA; each of the first `R` pointers of `xs` and every pointer of `ws` starts `k`
    /// readable floats.
    #[target_feature(enable = "avx512f,avx2,avx,fma")]
    unsafe fn tile<const R: usize>(
        xs: &[*const f32; MR],
        ws: &[*const f32; NR],
        k: usize,
        sums: &mut [[f32; NR]; MR],
    ) {
        let mut acc = [[_mm512_setzero_ps(); NR]; R];
        let full = k - k % 16;
        // SAFETY (every load): offsets stay below `full` ≤ `k`, or are masked to `k` below.
        let mut o = 0;
        while o < full {
            let mut wv = [_mm512_setzero_ps(); NR];
            for j in 0..NR {
                wv[j] = unsafe { _mm512_loadu_ps(ws[j].add(o)) };
            }
            for i in 0..R {
                let xv = unsafe { _mm512_loadu_ps(xs[i].add(o)) };
                for j in 0..NR {
                    acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
                }
            }
            o += 16;
        }
        if full < k {
            let mask: __mmask16 = (1u16 << (k - full)) - 1;
            let mut wv = [_mm512_setzero_ps(); NR];
            for j in 0..NR {
                wv[j] = unsafe { _mm512_maskz_loadu_ps(mask, ws[j].add(full)) };
            }
            for i in 0..R {
                let xv = unsafe { _mm512_maskz_loadu_ps(mask, xs[i].add(full)) };
                for j in 0..NR {
                    acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
                }
            }
        }
        for i in 0..R {
            // The four sums of a row at once: halves added, then pairwise (hadd) across the
            // four accumulators, instead of four full horizontal reductions.
            let [a0, a1, a2, a3] = acc[i];
            let h01 = _mm256_hadd_ps(halves(a0), halves(a1));
            let h23 = _mm256_hadd_ps(halves(a2), halves(a3));
            let h = _mm256_hadd_ps(h01, h23);
            let four = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
            // SAFETY: `sums[i]` holds NR = 4 floats.
            unsafe { _mm_storeu_ps(sums[i].as_mut_ptr(), four) };
        }
    }

    /// Weight rows per AVX2 tile.
    const NR2: usize = 2;
    /// Input rows per AVX2 tile: 3 rows × 2 weights × 2 halves = 12 accumulators, beside two
    /// weight halves and one input half, fills AVX2's 16 registers without spilling. Each
    /// 16-value chunk then takes 10 loads for 12 multiply-adds (one row against four weights
    /// took 10 for 8, which left the FMA units waiting on loads).
    const MR2: usize = 3;

    /// [`columns`] with AVX2 and FMA: the AVX-512 kernel's 16-lane sums held as two registers
    /// of 8 (low and high lanes), the same fused multiply-adds in the same order, the same fold
    /// and the same horizontal adds, so both kernels give the same bits.
    ///
    /// # Safety
    /// As [`columns`], with AVX2 and FMA instead of AVX-512F.
    #[target_feature(enable = "avx2,avx,fma")]
    pub(super) unsafe fn columns_avx2(
        x: &[f32],
        w: &[f32],
        out: *mut f32,
        mkn: (usize, usize, usize),
        cols: std::ops::Range<usize>,
    ) {
        let k = mkn.1;
        // SAFETY: the caller's contract; every pointer the driver hands over starts `k` floats.
        unsafe {
            by_tiles::<NR2, MR2>(x, w, out, mkn, cols, |rows, xs, ws, sums| match rows {
                3 => tile_avx2::<3>(xs, ws, k, sums),
                2 => tile_avx2::<2>(xs, ws, k, sums),
                _ => tile_avx2::<1>(xs, ws, k, sums),
            })
        }
    }

    /// `sums[i][j] = xs[i] · ws[j]` for `i < R`, each of length `k`, in [`tile`]'s lanes and
    /// order.
    ///
    /// # Safety
    /// AVX2 and FMA; each of the first `R` pointers of `xs` and both pointers of `ws` start
    /// `k` readable floats.
    #[target_feature(enable = "avx2,avx,fma")]
    unsafe fn tile_avx2<const R: usize>(
        xs: &[*const f32; MR2],
        ws: &[*const f32; NR2],
        k: usize,
        sums: &mut [[f32; NR2]; MR2],
    ) {
        // acc[h][i][j]: half h (lanes 0-7, 8-15) of row i against weight j.
        let mut acc = [[[_mm256_setzero_ps(); NR2]; R]; 2];
        let full = k - k % 16;
        // SAFETY (every load): offsets stay below `full` ≤ `k`, or are masked to `k` below.
        let mut o = 0;
        while o < full {
            for (h, acc) in acc.iter_mut().enumerate() {
                let at = o + 8 * h;
                let w0 = unsafe { _mm256_loadu_ps(ws[0].add(at)) };
                let w1 = unsafe { _mm256_loadu_ps(ws[1].add(at)) };
                for (i, a) in acc.iter_mut().enumerate() {
                    let xv = unsafe { _mm256_loadu_ps(xs[i].add(at)) };
                    a[0] = _mm256_fmadd_ps(xv, w0, a[0]);
                    a[1] = _mm256_fmadd_ps(xv, w1, a[1]);
                }
            }
            o += 16;
        }
        if full < k {
            // The AVX-512 kernel's masked tail: the missing lanes load as zeros and still take
            // their multiply-add (0 · 0 + acc), as there.
            let rem = (k - full) as i32;
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let masks = [
                _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), lane),
                _mm256_cmpgt_epi32(_mm256_set1_epi32(rem - 8), lane),
            ];
            // Masked-off lanes are never read, so the high half's address may lie past `k`.
            let load =
                |p: *const f32, at: usize, m| unsafe { _mm256_maskload_ps(p.wrapping_add(at), m) };
            for (h, acc) in acc.iter_mut().enumerate() {
                let at = full + 8 * h;
                let (w0, w1) = (load(ws[0], at, masks[h]), load(ws[1], at, masks[h]));
                for (i, a) in acc.iter_mut().enumerate() {
                    let xv = load(xs[i], at, masks[h]);
                    a[0] = _mm256_fmadd_ps(xv, w0, a[0]);
                    a[1] = _mm256_fmadd_ps(xv, w1, a[1]);
                }
            }
        }
        for (i, s) in sums.iter_mut().enumerate().take(R) {
            // [`tile`]'s fold per output: halves added, then pairwise (hadd) twice, then the
            // two 128-bit halves; lanes 0 and 1 hold the two weights' sums.
            let half = |j: usize| _mm256_add_ps(acc[0][i][j], acc[1][i][j]);
            let h01 = _mm256_hadd_ps(half(0), half(1));
            let h = _mm256_hadd_ps(h01, h01);
            let two = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
            s[0] = _mm_cvtss_f32(two);
            s[1] = _mm_cvtss_f32(_mm_shuffle_ps(two, two, 1));
        }
    }

    /// The 16 lanes of `a` folded to 8: low half plus high half.
    #[target_feature(enable = "avx512f,avx2,avx,fma")]
    fn halves(a: __m512) -> __m256 {
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
        _mm256_add_ps(_mm512_castps512_ps256(a), hi)
    }
}

#[cfg(test)]
mod tests {
    use super::super::linear_panels::tests::{check_against_f64, operands};
    use super::*;

    /// (m, k, n) at the edges of the tiling: single rows and columns, ragged tiles, `k` below,
    /// at and past a 16-lane register.
    const SHAPES: [(usize, usize, usize); 6] = [
        (1, 1, 1),
        (3, 17, 5),
        (4, 16, 4),
        (11, 384, 70),
        (16, 33, 129),
        (2, 9, 7),
    ];

    /// At every edge of the tiling.
    #[test]
    fn matches_a_plain_product_at_every_edge() {
        if !available() {
            eprintln!("skipped: no AVX2 and FMA on this CPU (gemm does these products)");
            return;
        }
        check_against_f64(&SHAPES, add_linear_rows);
    }

    /// The kernel's bits, written out in scalar code: sixteen lanes, lane `l` summing
    /// `x[i]·w[i]` for `i ≡ l (mod 16)` in order with fused multiply-adds (a missing tail value
    /// counts as 0·0), lanes `l` and `l + 8` added, then ((0+1)+(2+3)) + ((4+5)+(6+7)).
    fn spec(x: &[f32], w: &[f32]) -> f32 {
        let mut lanes = [0f32; 16];
        for o in (0..x.len()).step_by(16) {
            for (l, acc) in lanes.iter_mut().enumerate() {
                let (a, b) = (x.get(o + l), w.get(o + l));
                *acc = a.unwrap_or(&0.0).mul_add(*b.unwrap_or(&0.0), *acc);
            }
        }
        let h: Vec<f32> = (0..8).map(|l| lanes[l] + lanes[l + 8]).collect();
        ((h[0] + h[1]) + (h[2] + h[3])) + ((h[4] + h[5]) + (h[6] + h[7]))
    }

    /// Every kernel this CPU runs gives the written-out bits (so a machine with AVX2 alone
    /// still checks that its kernel sums as the AVX-512 one does), over row counts that fill
    /// and break the row tiles, with and without a ragged tail of `k`.
    #[test]
    fn gives_the_specified_bits() {
        if !available() {
            eprintln!("skipped: no AVX2 and FMA on this CPU (gemm does these products)");
            return;
        }
        let shapes = SHAPES
            .into_iter()
            .chain([(16, 1100, 9), (5, 512, 13), (7, 40, 66)]);
        for (m, k, n) in shapes {
            let (x, w) = operands(m, k, n);
            let x: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(i, v)| v * (1.0 + i as f32 * 1e-3))
                .collect();
            let want: Vec<u32> = (0..m * n)
                .map(|i| (0.25 + spec(&x[i / n * k..][..k], &w[i % n * k..][..k])).to_bits())
                .collect();
            for wide in [false, true].into_iter().filter(|&on| !on || wide()) {
                let mut out = vec![0.25f32; m * n];
                add_linear_rows_on(wide, &x, &w, &mut out, (m, k, n));
                let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "{m}x{k}x{n}, AVX-512 kernel: {wide}");
            }
        }
    }

    /// The AVX2 kernel gives the AVX-512 kernel's bits (on CPUs that have both).
    #[test]
    fn both_kernels_give_the_same_bits() {
        if !(available() && wide()) {
            eprintln!("skipped: needs AVX-512 beside AVX2 to run both kernels");
            return;
        }
        for (m, k, n) in SHAPES {
            let (x, w) = operands(m, k, n);
            let run = |wide: bool| {
                let mut out = vec![0.5f32; m * n];
                add_linear_rows_on(wide, &x, &w, &mut out, (m, k, n));
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(run(true), run(false), "{m}x{k}x{n}");
        }
    }
}
