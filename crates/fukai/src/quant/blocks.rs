//! Reading GGML blocks: the f16 scales and the packed 4-, 5-, 6-bit scales of the K-quants.
//! Shared by dequantization and the dot-product kernels, so both read a block the same way.

use half::f16;

/// The little-endian f16 at `b[at..at + 2]`, as an f32 (exact).
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// The eight 6-bit scales and eight 6-bit mins of a Q4_K or Q5_K block, unpacked from their
/// 12 bytes: bytes 0–3 hold scales 0–3 in their low 6 bits, bytes 4–7 mins 0–3, and bytes 8–11
/// the low 4 bits of scales 4–7 (low nibble) and mins 4–7 (high nibble), whose top 2 bits sit in
/// the spare top bits of bytes 0–3 and 4–7.
#[inline(always)]
pub(crate) fn k_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 0x3f;
        mn[j] = s[j + 4] & 0x3f;
        sc[j + 4] = (s[j + 8] & 0x0f) | ((s[j] >> 2) & 0x30);
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 2) & 0x30);
    }
    (sc, mn)
}

/// The sixteen signed 6-bit scales of a Q3_K block, from its 12 bytes: the low 4 bits in the
/// nibbles of bytes 0–7 (scales 0–7 low nibbles, 8–15 high), the top 2 bits in bytes 8–11
/// (scale k in byte 8 + k % 4, at bit 2·(k / 4)); stored with a bias of 32.
#[inline(always)]
pub(crate) fn q3k_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (k, o) in out.iter_mut().enumerate() {
        let lo = (s[k % 8] >> (4 * (k / 8))) & 0x0f;
        let hi = (s[8 + k % 4] >> (2 * (k / 4))) & 0x03;
        *o = (lo | (hi << 4)) as i8 - 32;
    }
    out
}

/// Unpacks a Q4_0/Q4_1 block's 16 bytes of nibbles: value j is the low nibble of byte j,
/// value 16 + j its high nibble.
#[inline(always)]
pub(crate) fn nibbles32(qs: &[u8]) -> [u8; 32] {
    let mut q = [0u8; 32];
    for j in 0..16 {
        q[j] = qs[j] & 0x0f;
        q[j + 16] = qs[j] >> 4;
    }
    q
}

/// Unpacks a Q5_0/Q5_1 block: the nibbles as in [`nibbles32`], bit j of the 32-bit `qh` (little
/// endian) the fifth bit of value j.
#[inline(always)]
pub(crate) fn fives32(qh: &[u8], qs: &[u8]) -> [u8; 32] {
    let h = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    let mut q = nibbles32(qs);
    for (j, v) in q.iter_mut().enumerate() {
        *v |= (((h >> j) & 1) as u8) << 4;
    }
    q
}

/// A Q2_K block's 256 2-bit values: value 128·g + 32·s + i is bits 2s..2s+2 of byte 32·g + i.
#[inline(always)]
pub(crate) fn q2k_values(qs: &[u8]) -> [u8; 256] {
    let mut q = [0u8; 256];
    for (idx, v) in q.iter_mut().enumerate() {
        let (g, s, i) = (idx / 128, (idx / 32) % 4, idx % 32);
        *v = (qs[32 * g + i] >> (2 * s)) & 3;
    }
    q
}

/// A Q3_K block's 256 signed 3-bit values: the low 2 bits as in Q2_K, minus 4 where the value's
/// bit in `hmask` (bit idx / 32 of byte idx % 32) is clear.
#[inline(always)]
pub(crate) fn q3k_values(hmask: &[u8], qs: &[u8]) -> [i8; 256] {
    let lo = q2k_values(qs);
    let mut q = [0i8; 256];
    for (idx, v) in q.iter_mut().enumerate() {
        let high = (hmask[idx % 32] >> (idx / 32)) & 1;
        *v = lo[idx] as i8 - if high == 0 { 4 } else { 0 };
    }
    q
}

/// A Q4_K block's 256 nibbles: value 64·g + 32·s + i is nibble s of byte 32·g + i.
#[inline(always)]
pub(crate) fn q4k_values(qs: &[u8]) -> [u8; 256] {
    let mut q = [0u8; 256];
    for (idx, v) in q.iter_mut().enumerate() {
        let (g, s, i) = (idx / 64, (idx / 32) % 2, idx % 32);
        *v = (qs[32 * g + i] >> (4 * s)) & 0x0f;
    }
    q
}

/// A Q5_K block's 256 5-bit values: nibbles as in Q4_K, the fifth bit of value idx is bit
/// idx / 32 of `qh[idx % 32]`.
#[inline(always)]
pub(crate) fn q5k_values(qh: &[u8], qs: &[u8]) -> [u8; 256] {
    let mut q = q4k_values(qs);
    for (idx, v) in q.iter_mut().enumerate() {
        *v |= ((qh[idx % 32] >> (idx / 32)) & 1) << 4;
    }
    q
}

/// A Q6_K block's 256 signed 6-bit values: value 128·g + 64·s + i (i < 64) takes its low
/// nibble from nibble s of `ql[64·g + i]`; value 128·g + 32·t + i (i < 32) its top 2 bits from
/// bits 2t..2t+2 of `qh[32·g + i]`; stored with a bias of 32.
#[inline(always)]
pub(crate) fn q6k_values(ql: &[u8], qh: &[u8]) -> [i8; 256] {
    let mut q = [0i8; 256];
    for (idx, v) in q.iter_mut().enumerate() {
        let g = idx / 128;
        let r = idx % 128;
        let lo = (ql[64 * g + r % 64] >> (4 * (r / 64))) & 0x0f;
        let hi = (qh[32 * g + r % 32] >> (2 * (r / 32))) & 0x03;
        *v = (lo | (hi << 4)) as i8 - 32;
    }
    q
}
