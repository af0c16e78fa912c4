//! Launch glue for `softmax.{wgsl,cu}`: softmax / log-softmax and the fused cross-entropy.

use super::{buf_of, elementwise::contiguous, groups, word, wrap, Ctx, GpuBuf, Kernel};
use crate::error::Result;
use crate::tensor::{DType, Layout, Storage, Tensor};
use std::sync::Arc;

pub(crate) const SRC: super::Src = super::sources!("softmax");

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        file: "softmax",
        src: SRC,
        entry,
        access: "rrrww",
    }
}

fn run(ctx: &Ctx, entry: &'static str, meta: &[u32], bufs: [&GpuBuf; 5], groups: u32) {
    ctx.launch(&kernel(entry), meta, &bufs, groups);
}

/// Softmax (or log-softmax) of `x` viewed as [outer, r, inner] over r.
pub(crate) fn softmax(
    x: &Tensor,
    (outer, r, inner): (usize, usize, usize),
    log: bool,
) -> Result<(Arc<Storage>, Layout)> {
    let x = contiguous(x)?;
    let ctx = super::ctx_of(&x).clone();
    let out = ctx.alloc(x.numel())?;
    let meta = [
        word(outer)?,
        word(r)?,
        word(inner)?,
        log as u32,
        word(x.layout().offset())?,
        0,
        0,
        0,
    ];
    let unused = ctx.alloc(1)?;
    let b = buf_of(&x);
    run(
        &ctx,
        "softmax_fwd",
        &meta,
        [&b, &b, &unused, &out, &unused_rw(&ctx)?],
        word(outer * inner)?,
    );
    Ok(wrap(out, DType::F32, x.shape()))
}

/// The input gradient of softmax from its output `y` and upstream `g`.
pub(crate) fn softmax_backward(
    y: &Tensor,
    g: &Tensor,
    (outer, r, inner): (usize, usize, usize),
    log: bool,
) -> Result<Tensor> {
    let (y, g) = (contiguous(y)?, contiguous(g)?);
    let ctx = super::ctx_of(&y).clone();
    let out = ctx.alloc(y.numel())?;
    let meta = [
        word(outer)?,
        word(r)?,
        word(inner)?,
        log as u32,
        word(y.layout().offset())?,
        word(g.layout().offset())?,
        0,
        0,
    ];
    let unused = ctx.alloc(1)?;
    run(
        &ctx,
        "softmax_bwd",
        &meta,
        [&buf_of(&y), &buf_of(&g), &unused, &out, &unused_rw(&ctx)?],
        word(outer * inner)?,
    );
    let (s, l) = wrap(out, DType::F32, y.shape());
    Ok(Tensor::from_parts(s, l))
}

fn unused_rw(ctx: &Ctx) -> Result<GpuBuf> {
    ctx.alloc(1)
}

/// Fused cross-entropy forward: (per-row losses [n], probabilities [n, c]). `targets` holds a
/// class per row, or -1 for an ignored row.
pub(crate) fn cross_entropy(
    logits: &Tensor,
    targets: &[i64],
    eps: f64,
) -> Result<(Tensor, Tensor, GpuBuf)> {
    let x = contiguous(logits)?;
    let ctx = super::ctx_of(&x).clone();
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let t: Vec<u32> = targets.iter().map(|&v| v as i32 as u32).collect();
    let tgt = ctx.upload(&t);
    let probs = ctx.alloc(n * c)?;
    let rows = ctx.alloc(n)?;
    let meta = [
        word(n)?,
        word(c)?,
        1,
        0,
        word(x.layout().offset())?,
        0,
        (eps as f32).to_bits(),
        0,
    ];
    let b = buf_of(&x);
    run(
        &ctx,
        "ce_fwd",
        &meta,
        [&b, &b, &tgt, &probs, &rows],
        word(n)?,
    );
    let (s, l) = wrap(rows, DType::F32, &[n]);
    let (ps, pl) = wrap(probs, DType::F32, &[n, c]);
    Ok((Tensor::from_parts(s, l), Tensor::from_parts(ps, pl), tgt))
}

/// Fused cross-entropy backward from the saved probabilities and targets and the upstream
/// gradient `g` (a scalar), scaled by `1 / valid`.
pub(crate) fn cross_entropy_backward(
    probs: &Tensor,
    tgt: &GpuBuf,
    g: &Tensor,
    eps: f64,
    inv_valid: f64,
) -> Result<Tensor> {
    let ctx = super::ctx_of(probs).clone();
    let g = super::elementwise::operand(&ctx, g)?;
    let (n, c) = (probs.shape()[0], probs.shape()[1]);
    let out = ctx.alloc(n * c)?;
    let meta = [
        word(n)?,
        word(c)?,
        1,
        0,
        0,
        word(g.layout().offset())?,
        (eps as f32).to_bits(),
        (inv_valid as f32).to_bits(),
    ];
    run(
        &ctx,
        "ce_bwd",
        &meta,
        [&buf_of(probs), &buf_of(&g), tgt, &out, &unused_rw(&ctx)?],
        groups(n * c)?,
    );
    let (s, l) = wrap(out, DType::F32, &[n, c]);
    Ok(Tensor::from_parts(s, l))
}
