//! Dot products of one quantized weight row with one quantized activation row. The integer
//! part of each block (Σ w·x over its values) goes through an [`IntDot`]: the portable one
//! here, or the AVX2 / AVX-512 VNNI ones of `x86.rs`. Integer sums are exact, so every
//! `IntDot` gives the same sums; the float epilogue (scales times sums, accumulated in four
//! interleaved partial sums joined in a fixed order) is this file's alone, so every path gives
//! the same bits.

use super::act::{Q8x256, Q8x32};
use super::blocks::*;

/// Exact integer sums of 32 products of a weight block's values with 8-bit activations. Each
/// comes back as a `V` that [`IntDot::reduce`] turns into the sum: SIMD kernels keep it a
/// vector of partial sums and reduce four blocks' at once.
pub(crate) trait IntDot {
    /// A block's unreduced sum.
    type V: Copy;
    /// Σ w_j x_j for the 32 4-bit values packed in the 16 bytes `qs` (value j the low nibble
    /// of byte j, value 16 + j its high nibble).
    fn nib32(qs: &[u8], x: &[i8; 32]) -> Self::V;
    /// As [`IntDot::nib32`] with bit j of the little-endian u32 `qh` as value j's fifth bit.
    fn five32(qh: &[u8], qs: &[u8], x: &[i8; 32]) -> Self::V;
    /// Σ w_j x_j for 32 signed bytes `w`; `xsum` is Σ x_j.
    fn i8x32(w: &[u8], x: &[i8; 32], xsum: i32) -> Self::V;
    /// Four blocks' sums.
    fn reduce4(v: [Self::V; 4]) -> [i32; 4];
    /// One block's sum.
    fn reduce1(v: Self::V) -> i32;

    /// Four f32 lanes: the float part of four blocks at once, each lane the same IEEE
    /// operations as the one-block path, so the bits do not depend on the kernel.
    type F4: Copy;
    /// The first four values of `v`.
    fn f4(v: &[f32]) -> Self::F4;
    /// Four integers, converted.
    fn f4_i32(v: [i32; 4]) -> Self::F4;
    /// The f16 at byte `at` of each of the four consecutive `size`-byte blocks in `w`.
    fn f4_f16(w: &[u8], size: usize, at: usize) -> Self::F4;
    /// Lane-wise a · b.
    fn f4_mul(a: Self::F4, b: Self::F4) -> Self::F4;
    /// Lane-wise a + b.
    fn f4_add(a: Self::F4, b: Self::F4) -> Self::F4;
    /// The lanes.
    fn f4_lanes(v: Self::F4) -> [f32; 4];
    /// The f16 at byte `at` of `w`, as f32 (exact either way; F16C where the kernel has it,
    /// which the one-block path of every row's last `blocks % 4` blocks needs twice).
    fn f16(w: &[u8], at: usize) -> f32;
}

/// Plain Rust, for any CPU.
pub(crate) struct Portable;

impl IntDot for Portable {
    type V = i32;
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
    #[inline(always)]
    fn reduce4(v: [i32; 4]) -> [i32; 4] {
        v
    }
    #[inline(always)]
    fn reduce1(v: i32) -> i32 {
        v
    }
    type F4 = [f32; 4];
    #[inline(always)]
    fn f4(v: &[f32]) -> [f32; 4] {
        [v[0], v[1], v[2], v[3]]
    }
    #[inline(always)]
    fn f4_i32(v: [i32; 4]) -> [f32; 4] {
        v.map(|i| i as f32)
    }
    #[inline(always)]
    fn f4_f16(w: &[u8], size: usize, at: usize) -> [f32; 4] {
        std::array::from_fn(|j| f16_at(w, j * size + at))
    }
    #[inline(always)]
    fn f4_mul(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
        std::array::from_fn(|j| a[j] * b[j])
    }
    #[inline(always)]
    fn f4_add(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
        std::array::from_fn(|j| a[j] + b[j])
    }
    #[inline(always)]
    fn f4_lanes(v: [f32; 4]) -> [f32; 4] {
        v
    }
    #[inline(always)]
    fn f16(w: &[u8], at: usize) -> f32 {
        f16_at(w, at)
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

/// One token's activations in blocks of 32, with each block's scale and sum (as f32) also
/// side by side, so four blocks' load as one vector.
#[derive(Clone, Copy)]
pub(crate) struct X32<'a> {
    pub q: &'a [Q8x32],
    pub d: &'a [f32],
    pub s: &'a [f32],
}

/// As [`sum_blocks`] for the 32-value types: `int` gives a block's unreduced integer sum; four
/// blocks' are reduced together and `term4` gives their float parts in four lanes, which are
/// the four partial sums; `term` does one block, for the last `blocks % 4`.
#[inline(always)]
fn sum_blocks32<D: IntDot>(
    w: &[u8],
    size: usize,
    x: X32,
    int: impl Fn(&[u8], &Q8x32) -> D::V,
    term4: impl Fn(&[u8], X32, [i32; 4]) -> D::F4,
    term: impl Fn(&[u8], &Q8x32, i32) -> f32,
) -> f32 {
    let blocks = (w.len() / size).min(x.q.len());
    let block = |b: usize| &w[b * size..(b + 1) * size];
    let mut lanes = D::f4(&[0.0; 4]);
    let mut b = 0;
    // Written out, not mapped over arrays: `array::map` is not inlined, and the intrinsics
    // inside `int` are inlined only into the caller's `#[target_feature]` body. Each group is
    // sliced once, so the indexing inside needs no bounds checks.
    while b + 4 <= blocks {
        let w4 = &w[b * size..(b + 4) * size];
        let x4 = X32 {
            q: &x.q[b..b + 4],
            d: &x.d[b..b + 4],
            s: &x.s[b..b + 4],
        };
        let wi = |i: usize| &w4[i * size..(i + 1) * size];
        let s = D::reduce4([
            int(wi(0), &x4.q[0]),
            int(wi(1), &x4.q[1]),
            int(wi(2), &x4.q[2]),
            int(wi(3), &x4.q[3]),
        ]);
        lanes = D::f4_add(lanes, term4(w4, x4, s));
        b += 4;
    }
    let mut acc = Acc(D::f4_lanes(lanes));
    while b < blocks {
        let (wb, xb) = (block(b), &x.q[b]);
        acc.add(b, term(wb, xb, D::reduce1(int(wb, xb))));
        b += 1;
    }
    acc.total()
}

/// `d · xd · s` in four lanes, `d` the f16 that starts each block: the one-scale types.
#[inline(always)]
fn scaled4<D: IntDot>(w4: &[u8], size: usize, xd: &[f32], s: [i32; 4]) -> D::F4 {
    D::f4_mul(D::f4_mul(D::f4_f16(w4, size, 0), D::f4(xd)), D::f4_i32(s))
}

/// `d · xd · s + m · xd · xs` in four lanes: the types with a scale and a minimum. `x4` is the
/// group's four activation blocks.
#[inline(always)]
fn scaled_min4<D: IntDot>(w4: &[u8], size: usize, x4: X32, s: [i32; 4]) -> D::F4 {
    let xd = D::f4(x4.d);
    let m = D::f4_mul(D::f4_mul(D::f4_f16(w4, size, 2), xd), D::f4(x4.s));
    D::f4_add(scaled4::<D>(w4, size, x4.d, s), m)
}

/// [`scaled_min4`] for one block: `d · xd · s + m · xd · xs`.
#[inline(always)]
fn scaled_min1<D: IntDot>(wb: &[u8], xb: &Q8x32, s: i32) -> f32 {
    let (d, m) = (D::f16(wb, 0), D::f16(wb, 2));
    d * xb.d * s as f32 + m * xb.d * xb.sum as f32
}

/// `s − offset · Σx` for a group's four blocks: the types whose stored values are offset by
/// `offset`.
#[inline(always)]
fn offset4(x4: X32, s: [i32; 4], offset: i32) -> [i32; 4] {
    let q: &[Q8x32; 4] = x4.q.try_into().expect("a group is four blocks");
    [
        s[0] - offset * q[0].sum,
        s[1] - offset * q[1].sum,
        s[2] - offset * q[2].sum,
        s[3] - offset * q[3].sum,
    ]
}

#[inline(always)]
pub(crate) fn q4_0<D: IntDot>(w: &[u8], x: X32) -> f32 {
    sum_blocks32::<D>(
        w,
        18,
        x,
        #[inline(always)]
        |wb, xb| D::nib32(&wb[2..18], &xb.q),
        #[inline(always)]
        |w4, x4, s| scaled4::<D>(w4, 18, x4.d, offset4(x4, s, 8)),
        #[inline(always)]
        |wb, xb, s| D::f16(wb, 0) * xb.d * (s - 8 * xb.sum) as f32,
    )
}

#[inline(always)]
pub(crate) fn q4_1<D: IntDot>(w: &[u8], x: X32) -> f32 {
    sum_blocks32::<D>(
        w,
        20,
        x,
        #[inline(always)]
        |wb, xb| D::nib32(&wb[4..20], &xb.q),
        #[inline(always)]
        |w4, x4, s| scaled_min4::<D>(w4, 20, x4, s),
        #[inline(always)]
        |wb, xb, s| scaled_min1::<D>(wb, xb, s),
    )
}

#[inline(always)]
pub(crate) fn q5_0<D: IntDot>(w: &[u8], x: X32) -> f32 {
    sum_blocks32::<D>(
        w,
        22,
        x,
        #[inline(always)]
        |wb, xb| D::five32(&wb[2..6], &wb[6..22], &xb.q),
        #[inline(always)]
        |w4, x4, s| scaled4::<D>(w4, 22, x4.d, offset4(x4, s, 16)),
        #[inline(always)]
        |wb, xb, s| D::f16(wb, 0) * xb.d * (s - 16 * xb.sum) as f32,
    )
}

#[inline(always)]
pub(crate) fn q5_1<D: IntDot>(w: &[u8], x: X32) -> f32 {
    sum_blocks32::<D>(
        w,
        24,
        x,
        #[inline(always)]
        |wb, xb| D::five32(&wb[4..8], &wb[8..24], &xb.q),
        #[inline(always)]
        |w4, x4, s| scaled_min4::<D>(w4, 24, x4, s),
        #[inline(always)]
        |wb, xb, s| scaled_min1::<D>(wb, xb, s),
    )
}

#[inline(always)]
pub(crate) fn q8_0<D: IntDot>(w: &[u8], x: X32) -> f32 {
    sum_blocks32::<D>(
        w,
        34,
        x,
        #[inline(always)]
        |wb, xb| D::i8x32(&wb[2..34], &xb.q, xb.sum),
        #[inline(always)]
        |w4, x4, s| scaled4::<D>(w4, 34, x4.d, s),
        #[inline(always)]
        |wb, xb, s| D::f16(wb, 0) * xb.d * s as f32,
    )
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
