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
