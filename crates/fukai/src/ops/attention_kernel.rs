//! The two small products attention is made of, for one head at a time with its operands in
//! L1: `rows · colsᵀ` (scores, dP) and `weights · rows` (P·V, dS·K, dSᵀ·Q, Pᵀ·dO). Each computes
//! a block of 4 output rows by up to 4 blocks of 16 columns in registers, summing in index
//! order, so the bits do not depend on how rows are grouped or on the vector width. A
//! character GPT's heads (64 tokens, width 32) made six gemm calls of ~3-4 µs each; these skip
//! the keys past the causal limit as well.

use super::float::Float;

/// Lanes per column block.
pub(crate) const W: usize = 16;
/// Rows per register block.
const R: usize = 4;
/// Most column blocks per register block.
const NB: usize = 4;

/// `n` rounded up to whole column blocks, at most `len`.
pub(crate) fn whole_blocks(n: usize, len: usize) -> usize {
    n.div_ceil(W).saturating_mul(W).min(len)
}

/// A matrix in memory: element (r, c) at `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T: Float> Mat<'a, T> {
    /// The matrix at `data` with row stride `rs` and column stride `cs`.
    #[inline(always)]
    pub(crate) fn new(data: &'a [T], rs: usize, cs: usize) -> Self {
        Mat { data, rs, cs }
    }
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> T {
        self.data[r * self.rs + c * self.cs]
    }
}

/// `out[r][c] = Σ_d a(r, d) · bt[d][c]` for rows `0..rows` and columns `0..n`, `d < depth`;
/// `bt` is `[depth][ld]` row-major, `out` row `r` starts at `out[r·ors]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn rows_times_cols<T: Float>(
    a: Mat<T>,
    rows: usize,
    depth: usize,
    bt: &[T],
    ld: usize,
    n: usize,
    out: &mut [T],
    ors: usize,
) {
    product(a, rows, (0, depth), bt, ld, n, out, ors, false);
}

/// Whether [`dots_with_rows`] runs for `T` on this CPU (f32 with AVX2).
pub(crate) fn dots_with_rows_available<T: Float>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
            && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[j] = Σ_d q[d] · k[j][d]` for keys `0..out.len()` (row `j` at `k[j·ks..]`, `q.len()`
/// values each): a query row's scores read straight from the key rows, for the few query rows
/// of a decode step, where transposing the whole key matrix first (as [`rows_times_cols`]
/// wants it) would cost as much as the products. Eight keys at a time are transposed in
/// registers and each sums over `d` in order from zero, as [`rows_times_cols`] does, so a
/// decode step's scores are the bits a full pass gives. Callers check
/// [`dots_with_rows_available`] first.
pub(crate) fn dots_with_rows<T: Float>(q: &[T], k: &[T], ks: usize, out: &mut [T]) {
    let depth = q.len();
    if out.is_empty() {
        return;
    }
    assert!(
        dots_with_rows_available::<T>() && k.len() >= (out.len() - 1) * ks + depth,
        "attention: direct scores without AVX2 f32, or key rows past the end of their buffer"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: T is f32 (checked by `dots_with_rows_available`), so the slices reinterpret as
    // f32 with their lengths; the CPU has AVX2 (checked there too); the key rows lie inside
    // `k` (asserted above).
    unsafe {
        let f = |s: &[T]| std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len());
        let o = std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len());
        x86::dots_f32(f(q), f(k), ks, o);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Eight rows of eight floats transposed: lane r of result d is `rows[r][d]`.
    #[inline(always)]
    unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }

    /// [`super::dots_with_rows`] for f32.
    ///
    /// # Safety
    /// AVX2 must be available, and `k` must hold `(out.len() - 1) · ks + q.len()` values.
    #[target_feature(enable = "avx2,avx")]
    pub(super) unsafe fn dots_f32(q: &[f32], k: &[f32], ks: usize, out: &mut [f32]) {
        let depth = q.len();
        let whole = depth / 8 * 8;
        let kp = k.as_ptr();
        let mut quads = out.chunks_exact_mut(8);
        let mut j0 = 0;
        for o in &mut quads {
            let mut acc = _mm256_setzero_ps();
            for d0 in (0..whole).step_by(8) {
                // SAFETY: keys j0..j0+8 are rows of `k` (the caller's contract), and
                // d0 + 8 <= depth.
                let rows: [__m256; 8] =
                    std::array::from_fn(|r| unsafe { _mm256_loadu_ps(kp.add((j0 + r) * ks + d0)) });
                let cols = unsafe { transpose8(rows) };
                for (d, c) in cols.iter().enumerate() {
                    acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(q[d0 + d]), *c));
                }
            }
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds eight floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
            for (r, (o, l)) in o.iter_mut().zip(lanes).enumerate() {
                let row = &k[(j0 + r) * ks..][..depth];
                let mut s = l;
                for d in whole..depth {
                    s += q[d] * row[d];
                }
                *o = s;
            }
            j0 += 8;
        }
        for (r, o) in quads.into_remainder().iter_mut().enumerate() {
            let row = &k[(j0 + r) * ks..][..depth];
            let mut s = 0f32;
            for d in 0..depth {
                s += q[d] * row[d];
            }
            *o = s;
        }
    }
}

/// `out[r][c] += Σ_j w(r, j) · m[j][c]` for rows `0..rows`, `c < width`, `j` in `j0..j1`;
/// `m` row `j` starts at `m[j·ms]`, `out` row `r` at `out[r·ors]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_weighted_rows<T: Float>(
    w: Mat<T>,
    rows: usize,
    js: (usize, usize),
    m: &[T],
    ms: usize,
    width: usize,
    out: &mut [T],
    ors: usize,
) {
    product(w, rows, js, m, ms, width, out, ors, true);
}

/// `out[r][c] (+)= Σ_k a(r, k) · b[k][c]` over `k` in `k0..k1` (in order), `c < width`; `b` row
/// `k` starts at `b[k·bs]`. Register blocks of up to 4 rows by 4 column blocks, then the ragged
/// columns element by element in the same order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn product<T: Float>(
    a: Mat<T>,
    rows: usize,
    ks: (usize, usize),
    b: &[T],
    bs: usize,
    width: usize,
    out: &mut [T],
    ors: usize,
    accumulate: bool,
) {
    let mut r0 = 0;
    while r0 < rows {
        let rb = if rows - r0 >= R { R } else { 1 };
        let mut c0 = 0;
        while c0 + W <= width {
            let nb = ((width - c0) / W).min(NB);
            let o = (&mut *out, ors, accumulate);
            match (rb, nb) {
                (R, 4) => block::<T, R, 4>(a, r0, ks, b, bs, c0, o),
                (R, 3) => block::<T, R, 3>(a, r0, ks, b, bs, c0, o),
                (R, 2) => block::<T, R, 2>(a, r0, ks, b, bs, c0, o),
                (R, _) => block::<T, R, 1>(a, r0, ks, b, bs, c0, o),
                (_, 4) => block::<T, 1, 4>(a, r0, ks, b, bs, c0, o),
                (_, 3) => block::<T, 1, 3>(a, r0, ks, b, bs, c0, o),
                (_, 2) => block::<T, 1, 2>(a, r0, ks, b, bs, c0, o),
                _ => block::<T, 1, 1>(a, r0, ks, b, bs, c0, o),
            }
            c0 += nb * W;
        }
        for r in r0..r0 + rb {
            for c in c0..width {
                let mut acc = if accumulate {
                    out[r * ors + c]
                } else {
                    T::ZERO
                };
                for k in ks.0..ks.1 {
                    acc += a.at(r, k) * b[k * bs + c];
                }
                out[r * ors + c] = acc;
            }
        }
        r0 += rb;
    }
}

/// One register block of [`product`]: rows `r0..r0+RB`, columns `c0..c0+CB·W`.
#[inline(always)]
fn block<T: Float, const RB: usize, const CB: usize>(
    a: Mat<T>,
    r0: usize,
    (k0, k1): (usize, usize),
    b: &[T],
    bs: usize,
    c0: usize,
    (out, ors, accumulate): (&mut [T], usize, bool),
) {
    let mut acc = [[[T::ZERO; W]; CB]; RB];
    if accumulate {
        for (r, acc) in acc.iter_mut().enumerate() {
            let o = &out[(r0 + r) * ors + c0..(r0 + r) * ors + c0 + CB * W];
            for (cb, acc) in acc.iter_mut().enumerate() {
                acc.copy_from_slice(&o[cb * W..(cb + 1) * W]);
            }
        }
    }
    for k in k0..k1 {
        let bk = &b[k * bs + c0..k * bs + c0 + CB * W];
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = a.at(r0 + r, k);
            for (cb, acc) in acc.iter_mut().enumerate() {
                for l in 0..W {
                    acc[l] += x * bk[cb * W + l];
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let o = &mut out[(r0 + r) * ors + c0..(r0 + r) * ors + c0 + CB * W];
        for (cb, acc) in acc.iter().enumerate() {
            o[cb * W..(cb + 1) * W].copy_from_slice(acc);
        }
    }
}
