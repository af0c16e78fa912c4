//! The largest value of a row of f32, for softmax: a maximum taken in the order LLVM makes of
//! `max_nan` (a compare, then a blend under a mask, one lane block after another, then 16
//! scalar steps) was a fifth of attention's samples on MiniLM's 8 × 128 tokens (an AMD EPYC,
//! `perf`). Here the lanes take `vmaxps` in independent chains and fold in a tree. A maximum
//! does not depend on the order it is taken in, except for NaN (which `vmaxps` drops) and the
//! sign of a zero (which no softmax reads: `x − (+0)` and `x − (−0)` give the same
//! exponentials), so rows holding a NaN are left to the caller's ordered loop.

use super::float::Float;

/// The largest of `xs` (−∞ when empty), or `None` where this CPU or `T` has no fast path or
/// `xs` holds a NaN; then the caller takes the maximum its own way.
#[inline(always)]
pub(crate) fn fast_max<T: Float>(xs: &[T]) -> Option<T> {
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32, so the slice reads as f32 with its length.
        let x = unsafe { std::slice::from_raw_parts(xs.as_ptr().cast::<f32>(), xs.len()) };
        let m = if crate::simd::has_avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above).
            unsafe { x86::max_avx512(x) }
        } else if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX (checked just above).
            unsafe { x86::max_avx(x) }
        } else {
            None
        };
        return m.map(|m| T::c(m as f64));
    }
    let _ = xs;
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn max_avx512(x: &[f32]) -> Option<f32> {
        let (n, p) = (x.len(), x.as_ptr());
        let lo = _mm512_set1_ps(f32::NEG_INFINITY);
        let (mut m0, mut m1) = (lo, lo);
        let mut nan: __mmask16 = 0;
        let mut i = 0;
        // SAFETY (all loads): offsets below `n`, whole blocks or masked to the tail.
        unsafe {
            while i + 32 <= n {
                let (a, b) = (_mm512_loadu_ps(p.add(i)), _mm512_loadu_ps(p.add(i + 16)));
                nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b);
                m0 = _mm512_max_ps(m0, a);
                m1 = _mm512_max_ps(m1, b);
                i += 32;
            }
            if i + 16 <= n {
                let a = _mm512_loadu_ps(p.add(i));
                nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a);
                m0 = _mm512_max_ps(m0, a);
                i += 16;
            }
            if i < n {
                let k: __mmask16 = (1u16 << (n - i)) - 1;
                let a = _mm512_mask_loadu_ps(lo, k, p.add(i));
                nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a);
                m1 = _mm512_max_ps(m1, a);
            }
        }
        (nan == 0).then(|| _mm512_reduce_max_ps(_mm512_max_ps(m0, m1)))
    }

    #[target_feature(enable = "avx")]
    pub(super) unsafe fn max_avx(x: &[f32]) -> Option<f32> {
        let (n, p) = (x.len(), x.as_ptr());
        let (mut m0, mut m1) = (
            _mm256_set1_ps(f32::NEG_INFINITY),
            _mm256_set1_ps(f32::NEG_INFINITY),
        );
        let mut nan = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY (all loads): whole blocks of 8 below `n`.
        unsafe {
            while i + 16 <= n {
                let (a, b) = (_mm256_loadu_ps(p.add(i)), _mm256_loadu_ps(p.add(i + 8)));
                nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b));
                m0 = _mm256_max_ps(m0, a);
                m1 = _mm256_max_ps(m1, b);
                i += 16;
            }
            if i + 8 <= n {
                let a = _mm256_loadu_ps(p.add(i));
                nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a));
                m0 = _mm256_max_ps(m0, a);
                i += 8;
            }
        }
        let mut lanes = [0f32; 8];
        // SAFETY: 8 floats into an array of 8.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_max_ps(m0, m1)) };
        let mut m = lanes.into_iter().fold(f32::NEG_INFINITY, f32::max);
        for &v in &x[i..] {
            if v.is_nan() {
                return None;
            }
            m = m.max(v);
        }
        (_mm256_movemask_ps(nan) == 0).then_some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::fast_max;
    use crate::ops::float::Float;

    /// The ordered fold softmax takes otherwise.
    fn ordered(x: &[f32]) -> f32 {
        x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max_nan(b))
    }

    #[test]
    fn equals_the_ordered_maximum_and_leaves_nan_to_the_caller() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 40.0
        };
        // Where the CPU has a fast path, every row without a NaN must take it.
        #[cfg(target_arch = "x86_64")]
        let fast = std::arch::is_x86_feature_detected!("avx");
        #[cfg(not(target_arch = "x86_64"))]
        let fast = false;
        let check = |x: &[f32], what: &str| {
            let want = ordered(x);
            assert_eq!(
                fast_max(x).map(f32::to_bits),
                fast.then_some(want.to_bits()),
                "{what}"
            );
        };
        for n in 0..80 {
            let mut x: Vec<f32> = (0..n).map(|_| next()).collect();
            check(&x, &format!("n = {n}"));
            for j in 0..n {
                // The largest at every position, infinities, and a NaN anywhere.
                let keep = x[j];
                for v in [1e30, f32::INFINITY, f32::NEG_INFINITY] {
                    x[j] = v;
                    check(&x, &format!("n = {n}, {v} at {j}"));
                }
                x[j] = f32::NAN;
                assert_eq!(fast_max(&x), None, "n = {n}, NaN at {j}");
                x[j] = keep;
            }
        }
        check(&[f32::NEG_INFINITY; 37], "all masked");
        check(&[], "empty");
    }
}
