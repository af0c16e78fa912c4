//! Dequantization to f32, block by block. Each formula is written with the same float
//! operations in the same order as GGML's reference (and the `gguf` Python package's numpy
//! port of it): a scale times an integer, then minus or plus a min, each rounded to f32 — so the
//! results are the same bits, which tests/gguf_dequant.rs checks on committed fixtures.

use super::blocks::*;
use super::GgmlType;
use crate::bail;
use crate::error::Result;
use crate::parallel;
use half::{bf16, f16};

/// The `n` values stored in `bytes` as type `ty`, as f32. Errors when `bytes` is not exactly
/// `n` values' worth or `ty` is one fukai cannot dequantize.
pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    let Some(block) = block_fn(ty) else {
        bail!(
            "dequantize",
            "cannot dequantize {ty} (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, \
             Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)"
        );
    };
    if ty.bytes_for(n as u64) != Some(bytes.len() as u64) {
        bail!(
            "dequantize",
            "{n} values of {ty} (blocks of {}, {} bytes each) do not take the {} bytes given",
            ty.block_size(),
            ty.type_size(),
            bytes.len()
        );
    }
    let (bs, ts) = (ty.block_size(), ty.type_size());
    let mut out = vec![0f32; n];
    // Blocks are independent: any split gives the same values; 4096 values per task.
    let per_task = 4096usize.next_multiple_of(bs);
    parallel::for_each_chunk_mut(&mut out, per_task, |c, chunk| {
        let first = c * per_task / bs;
        for (i, o) in chunk.chunks_exact_mut(bs).enumerate() {
            let b = first + i;
            block(&bytes[b * ts..(b + 1) * ts], o);
        }
    });
    Ok(out)
}

type BlockFn = fn(&[u8], &mut [f32]);

fn block_fn(ty: GgmlType) -> Option<BlockFn> {
    use GgmlType::*;
    let f: BlockFn = match ty {
        F32 => |b, o| o[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        F16 => |b, o| o[0] = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
        BF16 => |b, o| o[0] = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
        Q4_0 => q4_0,
        Q4_1 => q4_1,
        Q5_0 => q5_0,
        Q5_1 => q5_1,
        Q8_0 => q8_0,
        Q2_K => q2_k,
        Q3_K => q3_k,
        Q4_K => q4_k,
        Q5_K => q5_k,
        Q6_K => q6_k,
        _ => return None,
    };
    Some(f)
}

fn q4_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, q) in o.iter_mut().zip(nibbles32(&b[2..18])) {
        *o = d * (q as i32 - 8) as f32;
    }
}

fn q4_1(b: &[u8], o: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (o, q) in o.iter_mut().zip(nibbles32(&b[4..20])) {
        *o = d * q as f32 + m;
    }
}

fn q5_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, q) in o.iter_mut().zip(fives32(&b[2..6], &b[6..22])) {
        *o = d * (q as i32 - 16) as f32;
    }
}

fn q5_1(b: &[u8], o: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (o, q) in o.iter_mut().zip(fives32(&b[4..8], &b[8..24])) {
        *o = d * q as f32 + m;
    }
}

fn q8_0(b: &[u8], o: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, &q) in o.iter_mut().zip(&b[2..34]) {
        *o = q as i8 as f32 * d;
    }
}

fn q2_k(b: &[u8], o: &mut [f32]) {
    let (scales, qs) = (&b[..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    let q = q2k_values(qs);
    for (idx, o) in o.iter_mut().enumerate() {
        let s = scales[idx / 16];
        let dl = d * (s & 0x0f) as f32;
        let ml = dmin * (s >> 4) as f32;
        *o = dl * q[idx] as f32 - ml;
    }
}

fn q3_k(b: &[u8], o: &mut [f32]) {
    let (hmask, qs, scales) = (&b[..32], &b[32..96], &b[96..108]);
    let d = f16_at(b, 108);
    let sc = q3k_scales(scales);
    let q = q3k_values(hmask, qs);
    for (idx, o) in o.iter_mut().enumerate() {
        *o = (d * sc[idx / 16] as f32) * q[idx] as f32;
    }
}

fn q4_k(b: &[u8], o: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, mn) = k_scales_mins(&b[4..16]);
    let q = q4k_values(&b[16..144]);
    for (idx, o) in o.iter_mut().enumerate() {
        let j = idx / 32;
        *o = (d * sc[j] as f32) * q[idx] as f32 - dmin * mn[j] as f32;
    }
}

fn q5_k(b: &[u8], o: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, mn) = k_scales_mins(&b[4..16]);
    let q = q5k_values(&b[16..48], &b[48..176]);
    for (idx, o) in o.iter_mut().enumerate() {
        let j = idx / 32;
        *o = (d * sc[j] as f32) * q[idx] as f32 - dmin * mn[j] as f32;
    }
}

fn q6_k(b: &[u8], o: &mut [f32]) {
    let (ql, qh, scales) = (&b[..128], &b[128..192], &b[192..208]);
    let d = f16_at(b, 208);
    let q = q6k_values(ql, qh);
    for (idx, o) in o.iter_mut().enumerate() {
        *o = (d * scales[idx / 16] as i8 as f32) * q[idx] as f32;
    }
}
