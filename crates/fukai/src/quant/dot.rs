//! Dot products of one quantized weight row with one quantized activation row. The integer
//! part of each block (Σ w·x over its values) goes through an [`IntDot`]: the portable one
//! here, or the AVX2 / AVX-512 VNNI ones of `x86.rs`. Integer sums are exact, so every
//! `IntDot` gives the same sums; the float epilogue (scales times sums, accumulated in four
//! interleaved partial sums joined in a fixed order) is this file's alone, so every path gives
//! the same bits.

use super::act::{Q8x256, Q8x32};
use super::blocks::*;

/// Exact integer sums of 32 products of a weight block's values with 8-bit activations.
pub(crate) trait IntDot {
    /// Σ w_j x_j for the 32 4-bit values packed in the 16 bytes `qs` (value j the low nibble
    /// of byte j, value 16 + j its high nibble).
    fn nib32(qs: &[u8], x: &[i8; 32]) -> i32;
    /// As [`IntDot::nib32`] with bit j of the little-endian u32 `qh` as value j's fifth bit.
    fn five32(qh: &[u8], qs: &[u8], x: &[i8; 32]) -> i32;
    /// Σ w_j x_j for 32 signed bytes `w`; `xsum` is Σ x_j.
    fn i8x32(w: &[u8], x: &[i8; 32], xsum: i32) -> i32;
}

/// Plain Rust, for any CPU.
pub(crate) struct Portable;

impl IntDot for Portable {
    #[inline(always)]
    fn nib32(qs: &[u8], x: &[i8; 32]) -> i32 {
        dot_u8(&nibbles32(qs), x)
    }
    #[inline(always)]
    fn five32(qh: &[u8], qs: &[u8], x: &[i8; 32]) -> i32 {
        dot_u8(&fives32(qh, qs), x)
    }
    #[inline(always)]
    fn i8x32(w: &[u8], x: &[i8; 32], _xsum: i32) -> i32 {
        w.iter()
            .zip(x)
            .map(|(&a, &b)| a as i8 as i32 * b as i32)
            .sum()
    }
}

#[inline(always)]
fn dot_u8(w: &[u8], x: &[i8]) -> i32 {
    w.iter().zip(x).map(|(&a, &b)| a as i32 * b as i32).sum()
}

#[inline(always)]
fn dot_i8(w: &[i8], x: &[i8]) -> i32 {
    w.iter().zip(x).map(|(&a, &b)| a as i32 * b as i32).sum()
}

/// Four partial sums, block b into sum b % 4, so consecutive blocks' float adds do not wait
/// on each other; joined as (s0 + s1) + (s2 + s3).
#[derive(Default)]
struct Acc([f32; 4]);

impl Acc {
    #[inline(always)]
    fn add(&mut self, b: usize, v: f32) {
        self.0[b % 4] += v;
    }
    #[inline(always)]
    fn total(self) -> f32 {
        let s = self.0;
        (s[0] + s[1]) + (s[2] + s[3])
    }
}

/// Σ over blocks of `term(weight block, activation block)`, into the four partial sums.
#[inline(always)]
fn sum_blocks<X>(w: &[u8], size: usize, x: &[X], term: impl Fn(&[u8], &X) -> f32) -> f32 {
    let mut acc = Acc::default();
    for (b, (wb, xb)) in w.chunks_exact(size).zip(x).enumerate() {
        acc.add(b, term(wb, xb));
    }
    acc.total()
}

#[inline(always)]
pub(crate) fn q4_0<D: IntDot>(w: &[u8], x: &[Q8x32]) -> f32 {
    sum_blocks(w, 18, x, |wb, xb| {
        let isum = D::nib32(&wb[2..18], &xb.q) - 8 * xb.sum;
        f16_at(wb, 0) * xb.d * isum as f32
    })
}

#[inline(always)]
pub(crate) fn q4_1<D: IntDot>(w: &[u8], x: &[Q8x32]) -> f32 {
    sum_blocks(w, 20, x, |wb, xb| {
        let isum = D::nib32(&wb[4..20], &xb.q);
        let (d, m) = (f16_at(wb, 0), f16_at(wb, 2));
        d * xb.d * isum as f32 + m * xb.d * xb.sum as f32
    })
}

#[inline(always)]
pub(crate) fn q5_0<D: IntDot>(w: &[u8], x: &[Q8x32]) -> f32 {
    sum_blocks(w, 22, x, |wb, xb| {
        let isum = D::five32(&wb[2..6], &wb[6..22], &xb.q) - 16 * xb.sum;
        f16_at(wb, 0) * xb.d * isum as f32
    })
}

#[inline(always)]
pub(crate) fn q5_1<D: IntDot>(w: &[u8], x: &[Q8x32]) -> f32 {
    sum_blocks(w, 24, x, |wb, xb| {
        let isum = D::five32(&wb[4..8], &wb[8..24], &xb.q);
        let (d, m) = (f16_at(wb, 0), f16_at(wb, 2));
        d * xb.d * isum as f32 + m * xb.d * xb.sum as f32
    })
}

#[inline(always)]
pub(crate) fn q8_0<D: IntDot>(w: &[u8], x: &[Q8x32]) -> f32 {
    sum_blocks(w, 34, x, |wb, xb| {
        let isum = D::i8x32(&wb[2..34], &xb.q, xb.sum);
        f16_at(wb, 0) * xb.d * isum as f32
    })
}

// The K-quants unpack each 256-value block to one byte per value, then take integer dots per
// sub-block (32 values with a 6-bit scale and min for Q4_K/Q5_K, 16 with a 4- or 6-bit scale
// for Q2_K, Q3_K, Q6_K) against one activation block of 256.

/// Σ_j scale_j · (Σ over sub-block j of w·x) and Σ_j min_j · (Σ over sub-block j of x), for
/// Q4_K / Q5_K's eight sub-blocks of 32.
#[inline(always)]
fn k32_sums(q: &[u8; 256], sc: &[u8; 8], mn: &[u8; 8], xb: &Q8x256) -> (i32, i32) {
    let mut isum = 0;
    let mut msum = 0;
    for j in 0..8 {
        let r = 32 * j..32 * j + 32;
        isum += sc[j] as i32 * dot_u8(&q[r.clone()], &xb.q[r]);
        msum += mn[j] as i32 * (xb.bsums[2 * j] as i32 + xb.bsums[2 * j + 1] as i32);
    }
    (isum, msum)
}

#[inline(always)]
pub(crate) fn q4_k(w: &[u8], x: &[Q8x256]) -> f32 {
    sum_blocks(w, 144, x, |wb, xb| {
        let (sc, mn) = k_scales_mins(&wb[4..16]);
        let (isum, msum) = k32_sums(&q4k_values(&wb[16..144]), &sc, &mn, xb);
        let (d, dmin) = (f16_at(wb, 0), f16_at(wb, 2));
        d * xb.d * isum as f32 - dmin * xb.d * msum as f32
    })
}

#[inline(always)]
pub(crate) fn q5_k(w: &[u8], x: &[Q8x256]) -> f32 {
    sum_blocks(w, 176, x, |wb, xb| {
        let (sc, mn) = k_scales_mins(&wb[4..16]);
        let (isum, msum) = k32_sums(&q5k_values(&wb[16..48], &wb[48..176]), &sc, &mn, xb);
        let (d, dmin) = (f16_at(wb, 0), f16_at(wb, 2));
        d * xb.d * isum as f32 - dmin * xb.d * msum as f32
    })
}

#[inline(always)]
pub(crate) fn q2_k(w: &[u8], x: &[Q8x256]) -> f32 {
    sum_blocks(w, 84, x, |wb, xb| {
        let q = q2k_values(&wb[16..80]);
        let (mut isum, mut msum) = (0i32, 0i32);
        for (k, &s) in wb[..16].iter().enumerate() {
            let r = 16 * k..16 * k + 16;
            isum += (s & 0x0f) as i32 * dot_u8(&q[r.clone()], &xb.q[r]);
            msum += (s >> 4) as i32 * xb.bsums[k] as i32;
        }
        let (d, dmin) = (f16_at(wb, 80), f16_at(wb, 82));
        d * xb.d * isum as f32 - dmin * xb.d * msum as f32
    })
}

/// Σ_k scale_k · (Σ over the k-th 16 values of w·x), for signed 16-value sub-blocks.
#[inline(always)]
fn k16_sum(q: &[i8; 256], sc: impl Fn(usize) -> i32, xb: &Q8x256) -> i32 {
    (0..16)
        .map(|k| sc(k) * dot_i8(&q[16 * k..16 * k + 16], &xb.q[16 * k..16 * k + 16]))
        .sum()
}

#[inline(always)]
pub(crate) fn q3_k(w: &[u8], x: &[Q8x256]) -> f32 {
    sum_blocks(w, 110, x, |wb, xb| {
        let sc = q3k_scales(&wb[96..108]);
        let isum = k16_sum(&q3k_values(&wb[..32], &wb[32..96]), |k| sc[k] as i32, xb);
        f16_at(wb, 108) * xb.d * isum as f32
    })
}

#[inline(always)]
pub(crate) fn q6_k(w: &[u8], x: &[Q8x256]) -> f32 {
    sum_blocks(w, 210, x, |wb, xb| {
        let sc = &wb[192..208];
        let isum = k16_sum(
            &q6k_values(&wb[..128], &wb[128..192]),
            |k| sc[k] as i8 as i32,
            xb,
        );
        f16_at(wb, 208) * xb.d * isum as f32
    })
}
