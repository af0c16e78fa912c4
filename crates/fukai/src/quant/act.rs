//! Activations quantized to 8 bits for the integer dot products, as llama.cpp does: blocks of
//! 32 with one f32 scale (and the block's integer sum, which the offset-carrying weight types
//! and the unsigned×signed SIMD products need) for the 32-value weight types, blocks of 256
//! with sums per 16 for the K-quants.

/// 32 activations as `d · q`.
#[derive(Clone, Copy)]
pub(crate) struct Q8x32 {
    pub d: f32,
    /// Σ q, exact.
    pub sum: i32,
    pub q: [i8; 32],
}

/// 256 activations as `d · q`.
#[derive(Clone, Copy)]
pub(crate) struct Q8x256 {
    pub d: f32,
    /// Σ q over each 16 values, exact.
    pub bsums: [i16; 16],
    pub q: [i8; 256],
}

/// Scale and values for `x`: d = max |x| / 127 and q = round(x / d), so q ∈ [-127, 127]. An
/// all-zero block gets d = 0 and q = 0. (Non-finite inputs give a non-finite d, so a NaN
/// reaches the output as in f32 arithmetic.)
#[inline(always)]
fn quantize<const N: usize>(x: &[f32]) -> (f32, [i8; N]) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut q = [0i8; N];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * id).round().clamp(-127.0, 127.0) as i8;
    }
    if !amax.is_finite() {
        return (f32::NAN, q);
    }
    (d, q)
}

/// `x` (a multiple of 32 long) in blocks of 32. Plain loops, not iterator adaptors: those are
/// separate functions LLVM may not inline into a caller compiled for AVX2, and the rounding
/// is an instruction only there (a libm call elsewhere).
#[inline(always)]
pub(crate) fn quantize_x32(x: &[f32]) -> Vec<Q8x32> {
    let mut out = Vec::with_capacity(x.len() / 32);
    for c in x.chunks_exact(32) {
        let (d, q) = quantize::<32>(c);
        let mut sum = 0i32;
        for &v in &q {
            sum += i32::from(v);
        }
        out.push(Q8x32 { d, sum, q });
    }
    out
}

/// Activations in blocks of 32 with their scales and sums (as f32) also kept side by side,
/// for the four-block float epilogue of `dot.rs`.
pub(crate) struct Act32 {
    q: Vec<Q8x32>,
    d: Vec<f32>,
    s: Vec<f32>,
}

impl Act32 {
    #[inline(always)]
    pub(crate) fn new(x: &[f32]) -> Act32 {
        let q = quantize_x32(x);
        let (mut d, mut s) = (Vec::with_capacity(q.len()), Vec::with_capacity(q.len()));
        for b in &q {
            d.push(b.d);
            s.push(b.sum as f32);
        }
        Act32 { q, d, s }
    }
    /// Token `t`'s `per` blocks.
    pub(crate) fn token(&self, t: usize, per: usize) -> super::dot::X32<'_> {
        let r = t * per..(t + 1) * per;
        super::dot::X32 {
            q: &self.q[r.clone()],
            d: &self.d[r.clone()],
            s: &self.s[r],
        }
    }
}

/// `x` (a multiple of 256 long) in blocks of 256.
#[inline(always)]
pub(crate) fn quantize_x256(x: &[f32]) -> Vec<Q8x256> {
    x.chunks_exact(256)
        .map(|c| {
            let (d, q) = quantize::<256>(c);
            let mut bsums = [0i16; 16];
            for (s, g) in bsums.iter_mut().zip(q.chunks_exact(16)) {
                *s = g.iter().map(|&v| v as i16).sum();
            }
            Q8x256 { d, bsums, q }
        })
        .collect()
}
