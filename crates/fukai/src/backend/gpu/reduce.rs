//! Launch glue for `reduce.{wgsl,cu}`: sums and arg-extremes over the middle of [outer, r, inner].

use super::{buf_of, elementwise::contiguous, groups, word, wrap, Kernel};
use crate::error::Result;
use crate::tensor::{DType, Layout, Storage, Tensor};
use std::sync::Arc;

pub(crate) const SRC: super::Src = super::sources!("reduce");
/// Reductions at least this long use a workgroup per output.
const WIDE: usize = 64;

/// A fresh op result: storage and layout.
type Output = (Arc<Storage>, Layout);

/// What to reduce with.
#[derive(Clone, Copy)]
pub(crate) enum Reduce {
    Sum = 0,
    Max = 1,
    Min = 2,
}

/// Reduces `t` (whose dims are already ordered [outer.., reduced.., inner..]) viewed as
/// [outer, r, inner]; returns the values (shape `out_shape`) and, for max/min, i64 indices.
pub(crate) fn reduce(
    t: &Tensor,
    outer: usize,
    r: usize,
    inner: usize,
    op: Reduce,
    out_shape: &[usize],
) -> Result<(Output, Option<Tensor>)> {
    let x = contiguous(t)?;
    let ctx = super::ctx_of(&x).clone();
    let n = outer * inner;
    let vals = ctx.alloc(n)?;
    let idxs = ctx.alloc(if matches!(op, Reduce::Sum) { 1 } else { n })?;
    let meta = [
        word(outer)?,
        word(r)?,
        word(inner)?,
        op as u32,
        word(x.layout().offset())?,
    ];
    let (entry, g) = if r >= WIDE {
        ("reduce_wide", word(n)?)
    } else {
        ("reduce_narrow", groups(n)?)
    };
    let k = Kernel {
        file: "reduce",
        src: SRC,
        entry,
        access: "rww",
    };
    ctx.launch(&k, &meta, &[&buf_of(&x), &vals, &idxs], g);
    let idx = (!matches!(op, Reduce::Sum)).then(|| {
        let (s, l) = wrap(idxs, DType::I64, out_shape);
        Tensor::from_parts(s, l)
    });
    Ok((wrap(vals, DType::F32, out_shape), idx))
}
