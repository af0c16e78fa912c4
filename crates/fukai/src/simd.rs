//! Runtime CPU-feature dispatch for elementwise loops.
//!
//! The crate is compiled for baseline x86-64 (SSE2) so one binary runs on any machine. Hot
//! loops run through [`run`], which executes them inside a function compiled with AVX-512 or
//! AVX2 enabled when the CPU has it, so LLVM vectorizes them 8 or 16 lanes wide. Results are
//! bit-identical on every path: Rust never contracts `a * b + c` into an FMA or reorders float
//! operations, and `sqrt`/division are correctly rounded at any width, so only speed changes.

/// Runs `f`, compiled with the widest vector extension this CPU supports.
#[inline(always)]
pub fn run<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU was just checked for every feature the function enables.
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// Whether this CPU has AVX-512F: kernels written with intrinsics pick their AVX-512 version.
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,avx,sse4.2")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx,sse4.2")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_path_gives_the_same_bits() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let kernel = |x: &[f32]| -> Vec<f32> {
            x.iter()
                .map(|&v| (v * v + 1.0).sqrt() / (v.abs() + 0.5) - v * 0.1)
                .collect()
        };
        let plain = kernel(&x);
        let wide = super::run(|| kernel(&x));
        assert!(plain
            .iter()
            .zip(&wide)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
