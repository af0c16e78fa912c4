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

/// `out[j] = Σ_d q[d] · k[j][d]` for keys `0..out.len()` (row `j` at `k[j·ks..]`, `q.len()`
/// values each): a query row's scores read straight from the key rows, for the few query rows
/// of a decode step, where transposing the keys would cost as much as the products.
///
/// Each key is summed in a fixed order, [`dot4x8`]'s, which the AVX2 path for f32 follows
/// operation for operation (so the bits do not depend on the CPU). LLVM vectorized the plain
/// loops for this across keys, two floats wide, at several times the cost.
pub(crate) fn dots_with_rows<T: Float>(q: &[T], k: &[T], ks: usize, out: &mut [T]) {
    let depth = q.len();
    if out.is_empty() {
        return;
    }
    assert!(
        k.len() >= (out.len() - 1) * ks + depth,
        "attention: key rows past the end of their buffer"
    );
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && std::arch::is_x86_feature_detected!("avx2")
    {
        // SAFETY: T is f32 (checked), so the slices reinterpret as f32 with their lengths; the
        // CPU has AVX2 (checked); the key rows lie inside `k` (asserted above).
        unsafe {
            let f = |s: &[T]| std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len());
            let o = std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len());
            x86::dots_f32(f(q), f(k), ks, o);
        }
        return;
    }
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot4x8(q, &k[j * ks..][..depth]);
    }
}

/// `Σ q[d]·r[d]`: chunk `c` of 8 values into accumulator `c % 4` (lane-wise), the four joined
/// as `(a0 + a1) + (a2 + a3)`, its lanes as `((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7))`, then
/// the last `len % 8` products in order.
#[inline(always)]
fn dot4x8<T: Float>(q: &[T], r: &[T]) -> T {
    let mut acc = [[T::ZERO; 8]; 4];
    let chunks = q.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            acc[c % 4][l] += q[8 * c + l] * r[8 * c + l];
        }
    }
    let v: [T; 8] = std::array::from_fn(|l| (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]));
    let mut s = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
    for d in 8 * chunks..q.len() {
        s += q[d] * r[d];
    }
    s
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// [`super::dots_with_rows`] for f32, in [`super::dot4x8`]'s order.
    ///
    /// # Safety
    /// AVX2 must be available, and `k` must hold `(out.len() - 1) · ks + q.len()` values.
    #[target_feature(enable = "avx2,avx")]
    pub(super) unsafe fn dots_f32(q: &[f32], k: &[f32], ks: usize, out: &mut [f32]) {
        let depth = q.len();
        let chunks = depth / 8;
        let qp = q.as_ptr();
        // SAFETY (every load below): chunk c of a row reads values 8c..8c+8 < depth of q and
        // of key row j, which lies inside `k` (the caller's contract).
        let prod = |r: *const f32, c: usize| unsafe {
            _mm256_mul_ps(
                _mm256_loadu_ps(qp.add(8 * c)),
                _mm256_loadu_ps(r.add(8 * c)),
            )
        };
        for (j, o) in out.iter_mut().enumerate() {
            let r = unsafe { k.as_ptr().add(j * ks) };
            let mut a = [_mm256_setzero_ps(); 4];
            let mut c = 0;
            while c + 4 <= chunks {
                a[0] = _mm256_add_ps(a[0], prod(r, c));
                a[1] = _mm256_add_ps(a[1], prod(r, c + 1));
                a[2] = _mm256_add_ps(a[2], prod(r, c + 2));
                a[3] = _mm256_add_ps(a[3], prod(r, c + 3));
                c += 4;
            }
            while c < chunks {
                a[c % 4] = _mm256_add_ps(a[c % 4], prod(r, c));
                c += 1;
            }
            let v = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
            // [v0+v4, v1+v5, v2+v6, v3+v7], then lanes 0 and 1 plus lanes 2 and 3.
            let s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
            let s1 = _mm_add_ss(s2, _mm_shuffle_ps::<0b01>(s2, s2));
            let mut s = _mm_cvtss_f32(s1);
            for d in 8 * chunks..depth {
                s += q[d] * unsafe { *r.add(d) };
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
