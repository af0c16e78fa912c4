//! The integer block sums of [`IntDot`] with x86 SIMD: AVX2 (`vpmaddubsw`, u8×i8 pairs to i16,
//! then `vpmaddwd` to i32) and AVX-512 VNNI (`vpdpbusd`, u8×i8 quads straight to i32, on
//! 256-bit registers through AVX-512VL). Callers run them only inside functions compiled for
//! those features, on CPUs that have them (`is_x86_feature_detected!`).
//!
//! The u8×i8 forms need an unsigned weight. Nibbles and 5-bit values are unsigned already;
//! signed Q8_0 weights are made so as |w| × (x with w's sign) for AVX2, and as (w + 128) × x −
//! 128·Σx for VNNI, which accumulates in i32 and so cannot saturate. AVX2's i16 pair sums stay
//! in range: at most 2·31·127 for 5-bit weights, 2·128·127 for |w| (activations are in
//! [-127, 127]).

use super::dot::IntDot;
use std::arch::x86_64::*;

/// 32 4-bit values from 16 bytes: low nibbles in bytes 0–15, high nibbles in 16–31.
#[inline(always)]
unsafe fn nibbles(qs: &[u8]) -> __m256i {
    let v = _mm_loadu_si128(qs.as_ptr().cast());
    let m = _mm_set1_epi8(0x0f);
    let lo = _mm_and_si128(v, m);
    let hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
    _mm256_set_m128i(hi, lo)
}

/// 0x10 in byte j where bit j of the little-endian u32 `qh` is set, else 0.
#[inline(always)]
unsafe fn fifth_bits(qh: &[u8]) -> __m256i {
    let h = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]) as i32;
    // Byte j takes byte j / 8 of qh, then keeps bit j % 8 of it.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(h),
        _mm256_setr_epi64x(
            0,
            0x0101_0101_0101_0101,
            0x0202_0202_0202_0202,
            0x0303_0303_0303_0303,
        ),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

#[inline(always)]
unsafe fn load32(p: &[u8]) -> __m256i {
    _mm256_loadu_si256(p.as_ptr().cast())
}

#[inline(always)]
unsafe fn loadx(x: &[i8; 32]) -> __m256i {
    _mm256_loadu_si256(x.as_ptr().cast())
}

#[inline(always)]
unsafe fn hsum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// Four vectors of partial sums reduced at once: two rounds of pairwise adds leave each vector's
/// halves side by side, one add joins them.
#[inline(always)]
unsafe fn hsum4(v: [__m256i; 4]) -> [i32; 4] {
    let ab = _mm256_hadd_epi32(v[0], v[1]);
    let cd = _mm256_hadd_epi32(v[2], v[3]);
    let abcd = _mm256_hadd_epi32(ab, cd);
    let s = _mm_add_epi32(
        _mm256_castsi256_si128(abcd),
        _mm256_extracti128_si256::<1>(abcd),
    );
    let mut out = [0i32; 4];
    _mm_storeu_si128(out.as_mut_ptr().cast(), s);
    out
}

/// u·x in eight i32 partial sums with AVX2 (u unsigned, at most 128 per lane).
#[inline(always)]
unsafe fn dot_avx2(u: __m256i, x: __m256i) -> __m256i {
    let pairs = _mm256_maddubs_epi16(u, x);
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// u·x in eight i32 partial sums with VNNI (u unsigned, any byte).
#[inline(always)]
unsafe fn dot_vnni(u: __m256i, x: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, x)
}

/// The parts of [`IntDot`] both x86 kernels share: reducing 256-bit partial sums, and four
/// blocks' float parts in one SSE register (f16 scales converted by F16C). Only expanded inside
/// the impls, whose methods run within functions compiled for AVX2 and F16C.
macro_rules! lanes {
    () => {
        #[inline(always)]
        fn reduce4(v: [__m256i; 4]) -> [i32; 4] {
            // SAFETY: see the impl.
            unsafe { hsum4(v) }
        }
        #[inline(always)]
        fn reduce1(v: __m256i) -> i32 {
            // SAFETY: see the impl.
            unsafe { hsum(v) }
        }
        type F4 = __m128;
        #[inline(always)]
        fn f4(v: &[f32]) -> __m128 {
            assert!(v.len() >= 4);
            // SAFETY: four floats are there (checked); see the impl for the features.
            unsafe { _mm_loadu_ps(v.as_ptr()) }
        }
        #[inline(always)]
        fn f4_i32(v: [i32; 4]) -> __m128 {
            // SAFETY: see the impl.
            unsafe { _mm_cvtepi32_ps(_mm_loadu_si128(v.as_ptr().cast())) }
        }
        #[inline(always)]
        fn f4_f16(w: &[u8], size: usize, at: usize) -> __m128 {
            let h = |j: usize| i16::from_le_bytes([w[j * size + at], w[j * size + at + 1]]);
            // SAFETY: see the impl (F16C).
            unsafe { _mm_cvtph_ps(_mm_setr_epi16(h(0), h(1), h(2), h(3), 0, 0, 0, 0)) }
        }
        #[inline(always)]
        fn f4_mul(a: __m128, b: __m128) -> __m128 {
            // SAFETY: see the impl.
            unsafe { _mm_mul_ps(a, b) }
        }
        #[inline(always)]
        fn f4_add(a: __m128, b: __m128) -> __m128 {
            // SAFETY: see the impl.
            unsafe { _mm_add_ps(a, b) }
        }
        #[inline(always)]
        fn f16(w: &[u8], at: usize) -> f32 {
            let h = u16::from_le_bytes([w[at], w[at + 1]]);
            // SAFETY: see the impl (F16C).
            unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h)))) }
        }
        #[inline(always)]
        fn f4_lanes(v: __m128) -> [f32; 4] {
            let mut out = [0f32; 4];
            // SAFETY: see the impl; `out` holds four floats.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), v) };
            out
        }
    };
}

/// AVX2 (Haswell and later, Zen).
pub(crate) struct Avx2;

impl IntDot for Avx2 {
    type V = __m256i;
    #[inline(always)]
    fn nib32(qs: &[u8], x: &[i8; 32]) -> __m256i {
        // SAFETY: only called inside functions compiled with AVX2, on CPUs that have it; the
        // loads read 16 bytes of `qs` and 32 of `x`, which callers pass (block layouts).
        unsafe { dot_avx2(nibbles(qs), loadx(x)) }
    }
    #[inline(always)]
    fn five32(qh: &[u8], qs: &[u8], x: &[i8; 32]) -> __m256i {
        // SAFETY: as above.
        unsafe { dot_avx2(_mm256_or_si256(nibbles(qs), fifth_bits(qh)), loadx(x)) }
    }
    #[inline(always)]
    fn i8x32(w: &[u8], x: &[i8; 32], _xsum: i32) -> __m256i {
        // SAFETY: as above; `w` is 32 bytes.
        unsafe {
            let w = load32(w);
            dot_avx2(_mm256_sign_epi8(w, w), _mm256_sign_epi8(loadx(x), w))
        }
    }
    lanes!();
}

/// AVX-512 VNNI with AVX-512VL (Ice Lake, Zen 4 and later).
pub(crate) struct Vnni;

impl IntDot for Vnni {
    type V = __m256i;
    #[inline(always)]
    fn nib32(qs: &[u8], x: &[i8; 32]) -> __m256i {
        // SAFETY: only called inside functions compiled with AVX-512 VNNI/VL and AVX2, on CPUs
        // that have them; loads as for Avx2.
        unsafe { dot_vnni(nibbles(qs), loadx(x)) }
    }
    #[inline(always)]
    fn five32(qh: &[u8], qs: &[u8], x: &[i8; 32]) -> __m256i {
        // SAFETY: as above.
        unsafe { dot_vnni(_mm256_or_si256(nibbles(qs), fifth_bits(qh)), loadx(x)) }
    }
    #[inline(always)]
    fn i8x32(w: &[u8], x: &[i8; 32], xsum: i32) -> __m256i {
        // SAFETY: as above; `w` is 32 bytes.
        unsafe {
            let u = _mm256_xor_si256(load32(w), _mm256_set1_epi8(-128));
            // (w + 128)·x − 128·Σx, the correction in one lane.
            let fix = _mm256_setr_epi32(128 * xsum, 0, 0, 0, 0, 0, 0, 0);
            _mm256_sub_epi32(dot_vnni(u, loadx(x)), fix)
        }
    }
    lanes!();
}
