//! Launch glue for `elementwise.{wgsl,cu}`: copies of strided views, broadcasting binary ops, unary
//! ops and their gradients, comparisons, casts, `where` and fills.

use super::{buf_of, groups, view_meta, word, wrap, Ctx, GpuBuf, Kernel};
use crate::error::Result;
use crate::tensor::{DType, Layout, Storage, Tensor};
use std::sync::Arc;

pub(crate) const SRC: super::Src = super::sources!("elementwise");

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        file: "elementwise",
        src: SRC,
        entry,
        access: "rrrw",
    }
}

/// A 0-dim CPU operand (a scalar, as PyTorch allows beside device tensors) moved to `ctx`.
pub(crate) fn operand(ctx: &Ctx, t: &Tensor) -> Result<Tensor> {
    if t.storage().gpu_buf().is_some() {
        return Ok(t.clone());
    }
    let data = t.copy_contiguous_storage();
    let buf = super::upload(ctx, &data)?;
    let (s, l) = wrap(buf, t.dtype(), t.shape());
    Ok(Tensor::from_parts(s, l))
}

/// Launches an elementwise kernel writing `shape`'s elements from the views of `inputs`
/// (broadcast to `shape`; up to three).
fn launch(
    ctx: &Ctx,
    entry: &'static str,
    op: u32,
    params: [u32; 2],
    inputs: &[&Tensor],
    shape: &[usize],
) -> Result<GpuBuf> {
    let n: usize = shape.iter().product();
    let out = ctx.alloc(n)?;
    let rank = shape.len();
    let mut meta = vec![word(n)?, word(rank)?, op, params[0], params[1]];
    let mut ops = Vec::with_capacity(3);
    for t in inputs {
        let t = operand(ctx, t)?;
        let l = t.layout().broadcast_to(entry, shape)?;
        view_meta(&l, rank, &mut meta)?;
        ops.push(t);
    }
    let bufs: Vec<_> = (0..3).map(|i| buf_of(&ops[i.min(ops.len() - 1)])).collect();
    ctx.launch(
        &kernel(entry),
        &meta,
        &[&bufs[0], &bufs[1], &bufs[2], &out],
        groups(n)?,
    );
    Ok(out)
}

/// A contiguous copy of a GPU tensor's view (no graph).
pub(crate) fn copy(t: &Tensor) -> Result<(Arc<Storage>, Layout)> {
    let ctx = super::ctx_of(t).clone();
    let out = launch(&ctx, "copy", 0, [0, 0], &[t], t.shape())?;
    Ok(wrap(out, t.dtype(), t.shape()))
}

/// The tensor itself when contiguous, else a contiguous copy (no graph).
pub(crate) fn contiguous(t: &Tensor) -> Result<Tensor> {
    if t.is_contiguous() {
        return Ok(t.clone());
    }
    let (s, l) = copy(t)?;
    Ok(Tensor::from_parts(s, l))
}

/// `op` of `Binary` (its discriminant order) over the broadcast `shape`.
pub(crate) fn binary(
    op: u32,
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
) -> Result<(Arc<Storage>, Layout)> {
    let ctx = device_of(&[a, b]);
    let out = launch(&ctx, "binary", op, [0, 0], &[a, b], shape)?;
    Ok(wrap(out, DType::F32, shape))
}

/// `op` of `Unary` (its discriminant order) with parameters `p`, `q`.
pub(crate) fn unary(op: u32, p: f64, q: f64, x: &Tensor) -> Result<(Arc<Storage>, Layout)> {
    let ctx = super::ctx_of(x).clone();
    let params = [(p as f32).to_bits(), (q as f32).to_bits()];
    let out = launch(&ctx, "unary", op, params, &[x], x.shape())?;
    Ok(wrap(out, DType::F32, x.shape()))
}

/// The gradient of unary `op` from the saved tensor `s` and upstream `g`.
pub(crate) fn unary_backward(op: u32, p: f64, q: f64, s: &Tensor, g: &Tensor) -> Result<Tensor> {
    let ctx = device_of(&[s, g]);
    let params = [(p as f32).to_bits(), (q as f32).to_bits()];
    let out = launch(&ctx, "unary_backward", op, params, &[s, g], s.shape())?;
    let (st, l) = wrap(out, DType::F32, s.shape());
    Ok(Tensor::from_parts(st, l))
}

/// The element kind code the kernels use for a dtype.
fn kind(d: DType) -> u32 {
    match d {
        DType::F32 => 0,
        DType::U32 => 1,
        DType::I64 => 2,
        _ => 3,
    }
}

/// Comparison `op` (eq, ne, lt, le, gt, ge) giving a u8 mask.
pub(crate) fn compare(op: u32, a: &Tensor, b: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let ctx = device_of(&[a, b]);
    let out = launch(&ctx, "compare", op, [kind(a.dtype()), 0], &[a, b], shape)?;
    let (s, l) = wrap(out, DType::U8, shape);
    Ok(Tensor::from_parts(s, l))
}

/// Converts between the dtypes GPU storage holds.
pub(crate) fn cast(t: &Tensor, to: DType) -> Result<(Arc<Storage>, Layout)> {
    super::check_dtype("to_dtype", to)?;
    let ctx = super::ctx_of(t).clone();
    let out = launch(
        &ctx,
        "convert",
        kind(t.dtype()),
        [kind(to), 0],
        &[t],
        t.shape(),
    )?;
    Ok(wrap(out, to, t.shape()))
}

/// `cond ? a : b` with broadcasting (cond u8; a, b of one dtype).
pub(crate) fn where_cond(
    cond: &Tensor,
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
) -> Result<(Arc<Storage>, Layout)> {
    let ctx = device_of(&[cond, a, b]);
    let out = launch(&ctx, "where_cond", 0, [0, 0], &[a, b, cond], shape)?;
    Ok(wrap(out, a.dtype(), shape))
}

/// A tensor of `shape` filled with `v` on `ctx`.
pub(crate) fn full(ctx: &Ctx, shape: &[usize], v: f64, dtype: DType) -> Result<Tensor> {
    super::check_dtype("full", dtype)?;
    let bits = match dtype {
        DType::F32 => (v as f32).to_bits(),
        DType::I64 => v as i32 as u32,
        DType::U8 => v as u8 as u32,
        _ => v as u32,
    };
    let n: usize = shape.iter().product();
    let out = ctx.alloc(n)?;
    let meta = [word(n)?, 0, 0, bits];
    // Read-only bindings must not alias the written buffer.
    let unused = ctx.alloc(1)?;
    ctx.launch(
        &kernel("fill"),
        &meta,
        &[&unused, &unused, &unused, &out],
        groups(n)?,
    );
    let (s, l) = wrap(out, dtype, shape);
    Ok(Tensor::from_parts(s, l))
}

/// The device of the first GPU tensor among `ts` (the caller checked they share it).
pub(crate) fn device_of(ts: &[&Tensor]) -> Ctx {
    ts.iter()
        .find_map(|t| t.storage().gpu_buf().map(|b| b.ctx()))
        .expect("an op on a GPU has a GPU operand")
}

/// Writes `src`'s elements into the contiguous GPU tensor `dst` (same shape and dtype).
pub(crate) fn copy_into(dst: &Tensor, src: &Tensor) -> Result<()> {
    if !dst.is_contiguous() {
        crate::bail!(
            "copy_from",
            "a GPU destination must be contiguous, found a strided view of {:?}",
            dst.shape()
        );
    }
    let ctx = super::ctx_of(dst).clone();
    let src = contiguous(&operand(&ctx, src)?)?;
    ctx.copy(
        &buf_of(&src),
        src.layout().offset(),
        &buf_of(dst),
        dst.layout().offset(),
        dst.numel(),
    );
    Ok(())
}

/// `t.index_select(dim, index)` for a 1-D i64 index already checked against the dim.
pub(crate) fn index_select(
    t: &Tensor,
    dim: usize,
    index: &Tensor,
    shape: &[usize],
) -> Result<(Arc<Storage>, Layout)> {
    let ctx = super::ctx_of(t);
    let index = contiguous(&operand(&ctx, index)?)?;
    let n: usize = shape.iter().product();
    let out = ctx.alloc(n)?;
    let mut meta = vec![
        word(n)?,
        word(t.rank())?,
        word(dim)?,
        word(index.layout().offset())?,
        0,
    ];
    let view = Layout::new(shape.to_vec(), t.strides().to_vec(), t.layout().offset());
    view_meta(&view, t.rank(), &mut meta)?;
    let (bt, bi) = (buf_of(t), buf_of(&index));
    ctx.launch(
        &kernel("select_rows"),
        &meta,
        &[&bt, &bi, &bi, &out],
        groups(n)?,
    );
    Ok(wrap(out, t.dtype(), shape))
}

/// `parts` joined along `dim` into a new contiguous tensor of `shape`.
pub(crate) fn cat(parts: &[Tensor], dim: usize, shape: &[usize]) -> Result<(Arc<Storage>, Layout)> {
    let ctx = device_of(&parts.iter().collect::<Vec<_>>());
    let out = ctx.alloc(shape.iter().product())?;
    let full = Layout::contiguous(shape);
    let mut at = 0;
    for p in parts {
        let part = contiguous(&operand(&ctx, p)?)?;
        let n = part.numel();
        let len = p.shape()[dim];
        let mut sizes = shape.to_vec();
        sizes[dim] = len;
        let dst = Layout::new(sizes, full.strides().to_vec(), at * full.strides()[dim]);
        let mut meta = vec![
            word(n)?,
            word(shape.len())?,
            0,
            word(part.layout().offset())?,
            0,
        ];
        view_meta(&dst, shape.len(), &mut meta)?;
        let src = buf_of(&part);
        ctx.launch(
            &kernel("place"),
            &meta,
            &[&src, &src, &src, &out],
            groups(n)?,
        );
        at += len;
    }
    Ok(wrap(out, parts[0].dtype(), shape))
}

/// The elements of `t` at `positions` (flat indices into `t`'s contiguous order), shaped `shape`.
pub(crate) fn take(
    t: &Tensor,
    positions: &[usize],
    shape: &[usize],
) -> Result<(Arc<Storage>, Layout)> {
    let src = contiguous(t)?;
    let ctx = super::ctx_of(&src);
    let pos: Vec<u32> = positions.iter().map(|&p| word(p)).collect::<Result<_>>()?;
    let pos = ctx.upload(&pos);
    let n = positions.len();
    let out = ctx.alloc(n)?;
    let meta = [word(n)?, 0, 0, word(src.layout().offset())?];
    let s = buf_of(&src);
    ctx.launch(&kernel("take"), &meta, &[&s, &pos, &pos, &out], groups(n)?);
    Ok(wrap(out, t.dtype(), shape))
}

/// A tensor of `shape` (`len` elements) holding, at each flat position, the sum of the elements
/// of `src` whose entry in `positions` is that position, added in `src`'s order.
pub(crate) fn put_add(src: &Tensor, positions: &[usize], shape: &[usize]) -> Result<Tensor> {
    let len: usize = shape.iter().product();
    // Sources grouped by destination (a stable counting sort), as offsets and source indices.
    let mut offsets = vec![0u32; len + 1];
    for &p in positions {
        offsets[p + 1] += 1;
    }
    for i in 0..len {
        offsets[i + 1] += offsets[i];
    }
    let mut next = offsets.clone();
    let mut order = vec![0u32; positions.len()];
    for (k, &p) in positions.iter().enumerate() {
        order[next[p] as usize] = word(k)?;
        next[p] += 1;
    }
    let src = contiguous(src)?;
    let ctx = super::ctx_of(&src);
    let (offsets, order) = (ctx.upload(&offsets), ctx.upload(&order));
    let out = ctx.alloc(len)?;
    let meta = [word(len)?, 0, 0, word(src.layout().offset())?];
    ctx.launch(
        &kernel("put_add"),
        &meta,
        &[&buf_of(&src), &offsets, &order, &out],
        groups(len)?,
    );
    let (s, l) = wrap(out, src.dtype(), shape);
    Ok(Tensor::from_parts(s, l))
}
