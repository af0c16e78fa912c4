//! Branch-free f32 `exp`, `erfc` and `tanh` that LLVM vectorizes (libm's are scalar calls): hot
//! activation loops (GELU forward and backward, softmax in the fused inference kernels) run
//! 8-16 lanes wide with them. Plain mul/add only, so every SIMD path gives the same bits.
//! Accuracy: exp within 3e-7 relative, erfc within 1e-6·(1 + a²) relative (tests below, against
//! libm).

/// e^x for f32 (Cephes' polynomial after reducing by ln 2); 0 below -87.3.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.7);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let scale = f32::from_bits((t.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127)) << 23);
    if x < -87.3 {
        0.0
    } else {
        e * scale
    }
}

/// erfc(a) for a ≥ 0 as `t·P(t)·e^(-a²)` with `t = 1/(1 + 0.33·a)`: the form of Abramowitz &
/// Stegun 7.1.26, but P (degree 7) is fitted to `erfcx(a)/t` for *relative* error (Lawson's
/// minimax, below 1e-7 in exact arithmetic over a ∈ [0, 9.4]). GELU's negative tail is
/// `x·erfc(|x|/√2)/2`, so a relative bound keeps it accurate where erfc is tiny; A&S's fit
/// bounds erf's absolute error, which leaves `1 + erf` as pure rounding there (-0 at x = -6).
/// In f32 the rounding of a² adds about 6e-8·a² relative; past a = 9.34 (e^-87.3) it returns 0.
#[inline(always)]
pub(crate) fn erfc_pos(a: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.33 * a);
    let mut p = -0.135_928_74f32;
    p = p * t + 0.462_687_9;
    p = p * t - 0.355_438_4;
    p = p * t + 0.412_541_15;
    p = p * t + 0.045_010_876;
    p = p * t + 0.201_923_76;
    p = p * t + 0.182_837_26;
    p = p * t + 0.186_366_11;
    t * p * exp(-a * a)
}

/// tanh(x) for f32 (Cephes' tanhf): an odd polynomial below |x| = 0.625, `1 - 2/(e^2|x| + 1)`
/// above; both computed and one selected, so it stays branch-free.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let mut p = -5.704_988_7e-3f32;
    p = p * z + 2.063_909e-2;
    p = p * z - 5.373_971_6e-2;
    p = p * z + 1.333_144_2e-1;
    p = p * z - 3.333_328e-1;
    let small = p * z * x + x;
    let large = (1.0 - 2.0 / (exp(2.0 * a) + 1.0)).copysign(x);
    if a < 0.625 {
        small
    } else {
        large
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_erfc_and_tanh_match_libm() {
        let mut worst = (0f32, 0f64, 0f32);
        for i in -17_400..=17_600 {
            let x = i as f32 * 0.005;
            let e = (exp(x) - x.exp()).abs() / x.exp();
            let t = (tanh(x) - libm::tanhf(x)).abs() / libm::tanhf(x).abs().max(1e-30);
            worst = (worst.0.max(e), worst.1, worst.2.max(t));
        }
        // erfc against f64 libm, relative, up to a = 9 (erfc ~ 4e-37); the bound grows with a²
        // through the rounding of the exponent (see erfc_pos).
        for i in 0..=9_000 {
            let a = i as f32 * 0.001;
            let want = libm::erfc(a as f64);
            let r = (erfc_pos(a) as f64 - want).abs() / want / (1.0 + (a * a) as f64);
            worst.1 = worst.1.max(r);
        }
        assert!(worst.0 < 3e-7, "exp relative error {}", worst.0);
        assert!(worst.1 < 1e-6, "erfc relative error / (1 + a²) {}", worst.1);
        assert!(worst.2 < 1e-6, "tanh relative error {}", worst.2);
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(-30.0), -1.0);
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!((erfc_pos(0.0) - 1.0).abs() < 3e-7);
        assert_eq!(erfc_pos(f32::INFINITY), 0.0);
    }
}
