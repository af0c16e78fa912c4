//! 16 f32 lanes as one AVX-512 register or two AVX2 ones. Kernels written once against these
//! few operations run on both instruction sets, lane for lane the same sums, so a machine with
//! AVX2 alone checks the bits the AVX-512 code gives. Each operation is used only inside a
//! function that enables its instruction set.

use std::arch::x86_64::*;

/// 16 f32 lanes.
pub(super) trait Lanes: Copy {
    unsafe fn zero() -> Self;
    /// 16 floats from `p`.
    unsafe fn load(p: *const f32) -> Self;
    /// `*p` in every lane.
    unsafe fn splat(p: *const f32) -> Self;
    /// `a · b + c`, rounded once.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// `c + a · b`, the product rounded, then the sum (the portable loops' bits; unlike
    /// `f32::mul_add`, which fuses).
    unsafe fn mul_then_add(a: Self, b: Self, c: Self) -> Self;
    /// `a + b`, lane by lane.
    unsafe fn add(a: Self, b: Self) -> Self;
    /// The 16 lanes into `p`.
    unsafe fn store(self, p: *mut f32);
}

#[derive(Clone, Copy)]
pub(super) struct Avx2([__m256; 2]);

impl Lanes for Avx2 {
    #[inline(always)]
    unsafe fn zero() -> Self {
        Avx2([_mm256_setzero_ps(); 2])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Avx2([_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))]) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> Self {
        let v = unsafe { _mm256_broadcast_ss(&*p) };
        Avx2([v, v])
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Avx2([
            _mm256_fmadd_ps(a.0[0], b.0[0], c.0[0]),
            _mm256_fmadd_ps(a.0[1], b.0[1], c.0[1]),
        ])
    }
    #[inline(always)]
    unsafe fn mul_then_add(a: Self, b: Self, c: Self) -> Self {
        Avx2([
            _mm256_add_ps(c.0[0], _mm256_mul_ps(a.0[0], b.0[0])),
            _mm256_add_ps(c.0[1], _mm256_mul_ps(a.0[1], b.0[1])),
        ])
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Avx2([_mm256_add_ps(a.0[0], b.0[0]), _mm256_add_ps(a.0[1], b.0[1])])
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe {
            _mm256_storeu_ps(p, self.0[0]);
            _mm256_storeu_ps(p.add(8), self.0[1]);
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct Avx512(__m512);

impl Lanes for Avx512 {
    #[inline(always)]
    unsafe fn zero() -> Self {
        Avx512(_mm512_setzero_ps())
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Avx512(_mm512_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn splat(p: *const f32) -> Self {
        unsafe { Avx512(_mm512_set1_ps(*p)) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Avx512(_mm512_fmadd_ps(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn mul_then_add(a: Self, b: Self, c: Self) -> Self {
        Avx512(_mm512_add_ps(c.0, _mm512_mul_ps(a.0, b.0)))
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        Avx512(_mm512_add_ps(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
}
