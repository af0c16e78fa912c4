//! The two small products attention is made of, for one head at a time with its operands in
//! L1: `rows · colsᵀ` (scores, dP) and `weights · rows` (P·V, dS·K, dSᵀ·Q, Pᵀ·dO). Each computes
//! a block of 4 output rows by up to 4 blocks of 16 columns in registers, summing in index
//! order, so the bits do not depend on how rows are grouped or on the vector width. A
//! character GPT's heads (64 tokens, width 32) made six gemm calls of ~3-4 µs each; these skip
//! the keys past the causal limit as well.
//!
//! Every term is a product, then a sum. Fused multiply-adds in every kernel (stop 44) cut
//! attention's share of MiniLM's `perf` samples from 12.0-13.5% to 10.3-11.0%, but moved
//! SmolLM2's greedy decoding with an f16 cache off llama.cpp's at a near-tie (step 23 of the
//! first prompt's 32, `tests/llama_gguf.rs`), so they stay out.

use super::float::Float;
use crate::simd::has_avx512;
use std::borrow::Cow;

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
    use super::super::x86_lanes::{Avx2, Avx512, Lanes};
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

    /// [`super::block`] for f32: `out[r][c] (+)= Σ_k a(r, k) · b[k][c]` for `r < RB`,
    /// `c < CB·16`, `k` in `k0..k1` in order, each term a product then a sum (no fused
    /// multiply-add), so the bits are the portable loop's.
    ///
    /// # Safety
    /// AVX2; `a` (row stride, column stride), `b` (row stride) and `out` (row stride) cover
    /// every element those indices reach.
    #[target_feature(enable = "avx2,avx")]
    pub(super) unsafe fn block_f32<const RB: usize, const CB: usize>(
        a: (*const f32, usize, usize),
        ks: (usize, usize),
        b: (*const f32, usize),
        out: (*mut f32, usize),
        accumulate: bool,
    ) {
        // SAFETY: the caller's contract.
        unsafe { block_lanes::<Avx2, RB, CB>(a, ks, b, out, accumulate) }
    }

    /// [`block_f32`] with AVX-512: the same sums, lane for lane.
    ///
    /// # Safety
    /// As [`block_f32`], with AVX-512F.
    #[target_feature(enable = "avx512f,avx2,avx")]
    pub(super) unsafe fn block_f32_avx512<const RB: usize, const CB: usize>(
        a: (*const f32, usize, usize),
        ks: (usize, usize),
        b: (*const f32, usize),
        out: (*mut f32, usize),
        accumulate: bool,
    ) {
        // SAFETY: the caller's contract.
        unsafe { block_lanes::<Avx512, RB, CB>(a, ks, b, out, accumulate) }
    }

    /// [`block_f32`] on 16-lane blocks of either instruction set.
    ///
    /// # Safety
    /// As [`block_f32`], with the instruction set `L` needs.
    // Index loops on purpose (see the body).
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    unsafe fn block_lanes<L: Lanes, const RB: usize, const CB: usize>(
        (a, ars, acs): (*const f32, usize, usize),
        (k0, k1): (usize, usize),
        (b, bs): (*const f32, usize),
        (out, ors): (*mut f32, usize),
        accumulate: bool,
    ) {
        // SAFETY (every access): the caller's contract.
        unsafe {
            // Index loops over constant bounds: unrolled, the sums stay in registers.
            let mut acc = [[L::zero(); CB]; RB];
            if accumulate {
                for r in 0..RB {
                    for c in 0..CB {
                        acc[r][c] = L::load(out.add(r * ors + c * 16));
                    }
                }
            }
            for k in k0..k1 {
                let mut bv = [L::zero(); CB];
                for c in 0..CB {
                    bv[c] = L::load(b.add(k * bs + c * 16));
                }
                for r in 0..RB {
                    let x = L::splat(a.add(r * ars + k * acs));
                    for c in 0..CB {
                        acc[r][c] = L::mul_then_add(x, bv[c], acc[r][c]);
                    }
                }
            }
            for r in 0..RB {
                for c in 0..CB {
                    acc[r][c].store(out.add(r * ors + c * 16));
                }
            }
        }
    }

    /// [`super::dots_with_rows`] for f32.
    ///
    /// # Safety
    /// AVX2 must be available, and `k` must hold `(out.len() - 1) · ks + q.len()` values.
    #[target_feature(enable = "avx2,avx")]
    pub(super) unsafe fn dots_f32(q: &[f32], k: &[f32], ks: usize, out: &mut [f32]) {
        // SAFETY: `dots` loads only eight values inside `k` (its contract).
        let load = |p: *const f32| unsafe { _mm256_loadu_ps(p) };
        // SAFETY: the caller's contract.
        unsafe { dots(q, k, ks, out, load, |x| x) }
    }

    /// [`super::dots_with_rows`] for f16 keys (as bits).
    ///
    /// # Safety
    /// AVX2 and F16C must be available, and `k` must hold `(out.len() - 1) · ks + q.len()`
    /// values.
    #[target_feature(enable = "avx2,avx,f16c")]
    pub(super) unsafe fn dots_f16(q: &[f32], k: &[u16], ks: usize, out: &mut [f32]) {
        // SAFETY: `dots` loads only eight values inside `k` (its contract).
        let load = |p: *const u16| unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) };
        // SAFETY: the caller's contract.
        unsafe { dots(q, k, ks, out, load, widen) }
    }

    fn widen(x: u16) -> f32 {
        half::f16::from_bits(x).to_f32()
    }

    /// The scores of [`super::dots_with_rows`] with keys of type `E`: `load` widens eight
    /// values at a pointer, `one` a single value.
    ///
    /// # Safety
    /// `k` must hold `(out.len() - 1) · ks + q.len()` values and `load` must be sound on
    /// eight values inside it.
    #[inline(always)]
    unsafe fn dots<E: Copy>(
        q: &[f32],
        k: &[E],
        ks: usize,
        out: &mut [f32],
        load: impl Fn(*const E) -> __m256,
        one: impl Fn(E) -> f32,
    ) {
        let depth = q.len();
        let mut j0 = 0;
        // Four independent sums at a time: each key's sum is a chain of dependent adds (its
        // order fixed by the full pass), so one octet at a time waited on the add latency.
        while j0 + 32 <= out.len() {
            // SAFETY: the caller's contract, for keys j0..j0+32.
            unsafe { octets::<E, 4>(q, k, ks, j0, &mut out[j0..j0 + 32], &load, &one) };
            j0 += 32;
        }
        while j0 + 8 <= out.len() {
            // SAFETY: as above, for keys j0..j0+8.
            unsafe { octets::<E, 1>(q, k, ks, j0, &mut out[j0..j0 + 8], &load, &one) };
            j0 += 8;
        }
        for (r, o) in out[j0..].iter_mut().enumerate() {
            let row = &k[(j0 + r) * ks..][..depth];
            let mut s = 0f32;
            for d in 0..depth {
                s += q[d] * one(row[d]);
            }
            *o = s;
        }
    }

    /// The scores of keys `j0..j0 + 8·N` into `out` (8·N values): `N` octets of keys, each
    /// transposed eight columns at a time in registers and summed over `d` in order.
    ///
    /// # Safety
    /// As [`dots`], for these keys.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn octets<E: Copy, const N: usize>(
        q: &[f32],
        k: &[E],
        ks: usize,
        j0: usize,
        out: &mut [f32],
        load: &impl Fn(*const E) -> __m256,
        one: &impl Fn(E) -> f32,
    ) {
        let depth = q.len();
        let whole = depth / 8 * 8;
        let kp = k.as_ptr();
        let mut acc = [_mm256_setzero_ps(); N];
        for d0 in (0..whole).step_by(8) {
            for (o, acc) in acc.iter_mut().enumerate() {
                let j = j0 + 8 * o;
                // SAFETY: keys j..j+8 are rows of `k` (the caller's contract), and
                // d0 + 8 <= depth.
                let rows: [__m256; 8] =
                    std::array::from_fn(|r| load(unsafe { kp.add((j + r) * ks + d0) }));
                let cols = unsafe { transpose8(rows) };
                for (d, c) in cols.iter().enumerate() {
                    *acc = _mm256_add_ps(*acc, _mm256_mul_ps(_mm256_set1_ps(q[d0 + d]), *c));
                }
            }
        }
        for (o, acc) in acc.iter().enumerate() {
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds eight floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *acc) };
            for (r, l) in lanes.into_iter().enumerate() {
                let row = &k[(j0 + 8 * o + r) * ks..][..depth];
                let mut s = l;
                for d in whole..depth {
                    s += q[d] * one(row[d]);
                }
                out[8 * o + r] = s;
            }
        }
    }

    /// `out[c] += Σ_j p[j] · v[j][c]` for `j` in `j0..j1` in order, `c < out.len()`, f16 values
    /// (as bits, row `j` at `v[j·vs..]`): one row of [`super::add_weighted_rows`], the same
    /// sums in the same order on the widened values.
    ///
    /// # Safety
    /// AVX2 and F16C must be available; `p` must hold `j1` weights and `v` rows `0..j1` of
    /// `out.len()` values.
    #[target_feature(enable = "avx2,avx,f16c")]
    pub(super) unsafe fn weighted_row_f16(
        p: &[f32],
        (j0, j1): (usize, usize),
        v: &[u16],
        vs: usize,
        out: &mut [f32],
    ) {
        let width = out.len();
        let vp = v.as_ptr();
        let op = out.as_mut_ptr();
        // SAFETY: called only at eight columns inside a row of `v` (the contract).
        let load = |at: usize| unsafe { _mm256_cvtph_ps(_mm_loadu_si128(vp.add(at).cast())) };
        let mut c0 = 0;
        // Eight registers of eight columns, then one register, then single columns.
        while c0 + 64 <= width {
            // SAFETY: columns c0..c0+64 are in `out`, and in every row of `v` (the contract).
            let mut acc: [__m256; 8] =
                std::array::from_fn(|i| unsafe { _mm256_loadu_ps(op.add(c0 + 8 * i)) });
            for (j, &pj) in (j0..).zip(&p[j0..j1]) {
                let w = _mm256_set1_ps(pj);
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_add_ps(*a, _mm256_mul_ps(w, load(j * vs + c0 + 8 * i)));
                }
            }
            for (i, a) in acc.iter().enumerate() {
                // SAFETY: as above.
                unsafe { _mm256_storeu_ps(op.add(c0 + 8 * i), *a) };
            }
            c0 += 64;
        }
        while c0 + 8 <= width {
            // SAFETY: as above, for columns c0..c0+8.
            let mut a = unsafe { _mm256_loadu_ps(op.add(c0)) };
            for (j, &pj) in (j0..).zip(&p[j0..j1]) {
                a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(pj), load(j * vs + c0)));
            }
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(op.add(c0), a) };
            c0 += 8;
        }
        for c in c0..width {
            let mut a = out[c];
            for j in j0..j1 {
                a += p[j] * widen(v[j * vs + c]);
            }
            out[c] = a;
        }
    }
}

/// Element types of keys and values besides the computing float `T`: an f16 cache (as
/// llama.cpp keeps it) halves the memory a decode step reads, and widens exactly to f32.
pub(crate) trait KvElem<T: Float>: Copy + Send + Sync + 'static {
    /// Whether the direct kernels ([`KvElem::dots`], [`KvElem::weighted_row`]) run on this CPU.
    fn direct_available() -> bool;
    /// [`dots_with_rows`] with keys of this type.
    fn dots(q: &[T], k: &[Self], ks: usize, out: &mut [T]);
    /// One row of [`add_weighted_rows`] (`out.len()` columns) with values of this type.
    fn weighted_row(p: &[T], js: (usize, usize), v: &[Self], vs: usize, out: &mut [T]);
    /// `rows` rows of `width` values (row `j` at `src[j·stride..]`) as `T`, with their row
    /// stride: borrowed when they are `T` already, else widened into `[rows][width]`.
    fn as_rows(src: &[Self], stride: usize, rows: usize, width: usize) -> (Cow<'_, [T]>, usize);
}

impl<T: Float> KvElem<T> for T {
    fn direct_available() -> bool {
        dots_with_rows_available::<T>()
    }
    #[inline(always)]
    fn dots(q: &[T], k: &[T], ks: usize, out: &mut [T]) {
        dots_with_rows(q, k, ks, out);
    }
    #[inline(always)]
    fn weighted_row(p: &[T], js: (usize, usize), v: &[T], vs: usize, out: &mut [T]) {
        let width = out.len();
        add_weighted_rows(Mat::new(p, 0, 1), 1, js, v, vs, width, out, width);
    }
    fn as_rows(src: &[T], stride: usize, _: usize, _: usize) -> (Cow<'_, [T]>, usize) {
        (Cow::Borrowed(src), stride)
    }
}

impl KvElem<f32> for half::f16 {
    fn direct_available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("f16c")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
    fn dots(q: &[f32], k: &[half::f16], ks: usize, out: &mut [f32]) {
        let depth = q.len();
        if out.is_empty() {
            return;
        }
        assert!(
            Self::direct_available() && k.len() >= (out.len() - 1) * ks + depth,
            "attention: direct f16 scores without AVX2 and F16C, or key rows past the end"
        );
        #[cfg(target_arch = "x86_64")]
        // SAFETY: f16 is a u16 in memory; the CPU features and the rows' extent are asserted.
        unsafe {
            let k = std::slice::from_raw_parts(k.as_ptr().cast::<u16>(), k.len());
            x86::dots_f16(q, k, ks, out);
        }
    }
    fn weighted_row(p: &[f32], js: (usize, usize), v: &[half::f16], vs: usize, out: &mut [f32]) {
        if js.0 >= js.1 {
            return;
        }
        assert!(
            Self::direct_available() && p.len() >= js.1 && v.len() >= (js.1 - 1) * vs + out.len(),
            "attention: direct f16 values without AVX2 and F16C, or rows past the end"
        );
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dots`.
        unsafe {
            let v = std::slice::from_raw_parts(v.as_ptr().cast::<u16>(), v.len());
            x86::weighted_row_f16(p, js, v, vs, out);
        }
    }
    fn as_rows(
        src: &[half::f16],
        stride: usize,
        rows: usize,
        width: usize,
    ) -> (Cow<'_, [f32]>, usize) {
        use half::slice::HalfFloatSliceExt;
        let mut out = vec![0f32; rows * width];
        for (j, o) in out.chunks_exact_mut(width.max(1)).enumerate() {
            src[j * stride..][..width].convert_to_f32_slice(o);
        }
        (Cow::Owned(out), width)
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
/// `k` starts at `b[k·bs]`. Register blocks of up to 4 rows by 4 column blocks; the ragged
/// columns past the last whole block are summed 16 lanes wide too, in place or on a copy of them
/// padded with zeros (one by one, a 15-key sentence's scores were all ragged and 5% of MiniLM's
/// time).
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
    let ragged = width % W;
    let first = width - ragged;
    // The ragged columns are read in place when `b` holds a whole block past the last row's
    // first ragged column (callers leave that much slack): an output column depends on its own
    // column of `b` only, so what the extra lanes read lands in columns that are dropped.
    // Copied once per call otherwise; per head, the copies were a fifth of MiniLM's attention
    // at 26 keys (10 ragged columns, one copy per block of 4 query rows).
    let in_place = ks.1 > ks.0 && (ks.1 - 1) * bs + first + W <= b.len();
    let tail =
        (ragged > 0 && rows > 0 && !in_place).then(|| padded_columns(b, bs, ks, (first, ragged)));
    let tail = match &tail {
        Some(pad) => (&pad[..], W),
        None => (b.get(ks.0 * bs + first..).unwrap_or(&[]), bs),
    };
    // AVX2's 16 registers hold 4 rows by one block of 16 columns (8 sums) beside its operands;
    // 4 blocks (32 sums) spilled to the stack on every step (MiniLM on 8 × 128 tokens took 5%
    // longer with them, `fukai-bench onnx_minilm`). AVX-512's 32 hold 4 by 4 (16 sums).
    let most = if dots_with_rows_available::<T>() && !has_avx512() {
        1
    } else {
        NB
    };
    let mut r0 = 0;
    while r0 < rows {
        let rb = if rows - r0 >= R { R } else { 1 };
        let mut c0 = 0;
        while c0 + W <= width {
            let nb = ((width - c0) / W).min(most);
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
        if ragged > 0 {
            ragged_block(
                a,
                (r0, rb),
                ks,
                tail,
                (width - c0, c0),
                out,
                ors,
                accumulate,
            );
        }
        r0 += rb;
    }
}

/// Columns `c0..c0 + n` (`cols`, n < W) of `b`, rows `k0..k1`, as `[k1 - k0][W]` with zeros
/// after column `n`.
fn padded_columns<T: Float>(
    b: &[T],
    bs: usize,
    (k0, k1): (usize, usize),
    cols: (usize, usize),
) -> Vec<T> {
    let (c0, n) = cols;
    let mut pad = vec![T::ZERO; (k1 - k0) * W];
    for (k, row) in (k0..k1).zip(pad.chunks_exact_mut(W)) {
        row[..n].copy_from_slice(&b[k * bs + c0..][..n]);
    }
    pad
}

/// Rows `r0..r0 + rb` of the ragged columns `c0..c0 + n`: one register block over `pad` (rows
/// `k0..k1` of those columns, from [`padded_columns`] or `b` itself, `W` or more readable
/// values each, row stride `ps`) into a scratch block, whose first `n` columns are stored.
/// Each sum takes the same terms in the same order as in a whole block.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn ragged_block<T: Float>(
    a: Mat<T>,
    (r0, rb): (usize, usize),
    (k0, k1): (usize, usize),
    (pad, ps): (&[T], usize),
    (n, c0): (usize, usize),
    out: &mut [T],
    ors: usize,
    accumulate: bool,
) {
    let mut scratch = [T::ZERO; R * W];
    if accumulate {
        for r in 0..rb {
            scratch[r * W..][..n].copy_from_slice(&out[(r0 + r) * ors + c0..][..n]);
        }
    }
    // `a` from row r0 and column k0, as the scratch block and the padded rows count from zero.
    let a = Mat::new(&a.data[r0 * a.rs + k0 * a.cs..], a.rs, a.cs);
    let o = (&mut scratch[..], W, accumulate);
    if rb == R {
        block::<T, R, 1>(a, 0, (0, k1 - k0), pad, ps, 0, o);
    } else {
        block::<T, 1, 1>(a, 0, (0, k1 - k0), pad, ps, 0, o);
    }
    for r in 0..rb {
        out[(r0 + r) * ors + c0..][..n].copy_from_slice(&scratch[r * W..][..n]);
    }
}

/// One register block of [`product`]: rows `r0..r0+RB`, columns `c0..c0+CB·W`. f32 on AVX2
/// runs [`x86::block_f32`], written with intrinsics: as plain loops inlined into the attention
/// loops, LLVM left some blocks (P·V at width 32, MiniLM's heads) in scalar code.
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
    #[cfg(target_arch = "x86_64")]
    if dots_with_rows_available::<T>() {
        // Every element the kernel touches, checked here once.
        let last_a = (k1 > k0).then(|| (r0 + RB - 1) * a.rs + (k1 - 1) * a.cs);
        let last_b = (k1 > k0).then(|| (k1 - 1) * bs + c0 + CB * W);
        assert!(
            last_a.is_none_or(|i| i < a.data.len())
                && last_b.is_none_or(|i| i <= b.len())
                && (r0 + RB - 1) * ors + c0 + CB * W <= out.len(),
            "attention: a register block past the end of its operands"
        );
        let f = |s: &[T]| s.as_ptr().cast::<f32>();
        // SAFETY: T is f32 and the CPU has AVX2 (`dots_with_rows_available`); the kernel reads
        // and writes only the elements bounded above.
        unsafe {
            let args = (
                (f(a.data).add(r0 * a.rs), a.rs, a.cs),
                (k0, k1),
                (f(b).add(c0), bs),
                (out.as_mut_ptr().cast::<f32>().add(r0 * ors + c0), ors),
                accumulate,
            );
            if has_avx512() {
                x86::block_f32_avx512::<RB, CB>(args.0, args.1, args.2, args.3, args.4)
            } else {
                x86::block_f32::<RB, CB>(args.0, args.1, args.2, args.3, args.4)
            }
        };
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `out[r][c] (+)= Σ_k a[r][k] · b[k][c]`, one term at a time in `k` order: the bits every
    /// block, ragged or whole, intrinsic or portable, must give.
    fn plain(a: &[f32], b: &[f32], (rows, depth, width): (usize, usize, usize), out: &mut [f32]) {
        for r in 0..rows {
            for c in 0..width {
                let mut acc = out[r * width + c];
                for k in 0..depth {
                    acc += a[r * depth + k] * b[k * width + c];
                }
                out[r * width + c] = acc;
            }
        }
    }

    #[test]
    fn blocks_sum_as_the_plain_loop_at_every_width() {
        for (rows, depth, width) in [
            (1, 3, 1),
            (4, 32, 15),
            (5, 20, 16),
            (9, 7, 70),
            (8, 64, 33),
            (4, 9, 50),
        ] {
            let a: Vec<f32> = (0..rows * depth).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..depth * width)
                .map(|i| (i as f32 * 0.11).cos())
                .collect();
            let start: Vec<f32> = (0..rows * width).map(|i| i as f32 * 0.01).collect();
            let mut want = start.clone();
            plain(&a, &b, (rows, depth, width), &mut want);
            let mut got = start.clone();
            add_weighted_rows(
                Mat::new(&a, depth, 1),
                rows,
                (0, depth),
                &b,
                width,
                width,
                &mut got,
                width,
            );
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&got),
                bits(&want),
                "accumulating, {rows}x{depth}x{width}"
            );
            let mut want = vec![0.0; rows * width];
            plain(&a, &b, (rows, depth, width), &mut want);
            let mut got = vec![7.0; rows * width];
            rows_times_cols(
                Mat::new(&a, depth, 1),
                rows,
                depth,
                &b,
                width,
                width,
                &mut got,
                width,
            );
            assert_eq!(bits(&got), bits(&want), "storing, {rows}x{depth}x{width}");
        }
    }

    /// With a block of slack after `b`, the ragged columns are read in place rather than
    /// copied: the same bits as the plain loop, whatever the slack holds (NaN here, which would
    /// show in any column that kept a lane read past the matrix).
    #[test]
    fn ragged_columns_read_in_place_sum_as_the_plain_loop() {
        for (rows, depth, width) in [(4, 32, 26), (7, 32, 10), (1, 5, 3), (9, 64, 47), (4, 1, 17)] {
            let a: Vec<f32> = (0..rows * depth).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut b: Vec<f32> = (0..depth * width)
                .map(|i| (i as f32 * 0.11).cos())
                .collect();
            let mut want = vec![0.0; rows * width];
            plain(&a, &b, (rows, depth, width), &mut want);
            b.extend([f32::NAN; W]);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let mut got = vec![7.0; rows * width];
            let am = Mat::new(&a, depth, 1);
            rows_times_cols(am, rows, depth, &b, width, width, &mut got, width);
            assert_eq!(bits(&got), bits(&want), "storing, {rows}x{depth}x{width}");
            let start: Vec<f32> = (0..rows * width).map(|i| i as f32 * 0.01).collect();
            let mut want = start.clone();
            plain(&a, &b, (rows, depth, width), &mut want);
            let mut got = start;
            add_weighted_rows(am, rows, (0, depth), &b, width, width, &mut got, width);
            assert_eq!(
                bits(&got),
                bits(&want),
                "accumulating, {rows}x{depth}x{width}"
            );
        }
    }

    /// Both instruction sets' register blocks, called directly (a machine runs one of them
    /// through [`product`]), give the plain loop's bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn both_instruction_sets_sum_as_the_plain_loop() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("skipped: no AVX2 on this CPU");
            return;
        }
        let (depth, width) = (13, 32);
        let a: Vec<f32> = (0..R * depth).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..depth * width)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let start: Vec<f32> = (0..R * width).map(|i| i as f32 * 0.01).collect();
        let mut want = start.clone();
        plain(&a, &b, (R, depth, width), &mut want);
        for wide in [false, true] {
            if wide && !has_avx512() {
                continue;
            }
            let mut got = start.clone();
            let args = (
                (a.as_ptr(), depth, 1),
                (0, depth),
                (b.as_ptr(), width),
                (got.as_mut_ptr(), width),
                true,
            );
            // SAFETY: the CPU has the instruction set; R rows of `depth`, `depth` rows of
            // `width` (2 blocks of 16) and R rows of `width`, as the kernel reads them.
            unsafe {
                if wide {
                    x86::block_f32_avx512::<R, 2>(args.0, args.1, args.2, args.3, args.4)
                } else {
                    x86::block_f32::<R, 2>(args.0, args.1, args.2, args.3, args.4)
                }
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "AVX-512: {wide}");
        }
    }
}
