//! Launch glue for `random.{wgsl,cu}`: dropout with the CPU's counter-based stream.

use super::{buf_of, groups, view_meta, word, wrap, Kernel};
use crate::error::Result;
use crate::tensor::{DType, Layout, Storage, Tensor};
use std::sync::Arc;

pub(crate) const SRC: super::Src = super::sources!("random");

/// `x · mask` and the mask (`scale` where kept, else 0) for drop probability `p`, drawing
/// blocks from `start` of the stream keyed by `seed`.
pub(crate) fn dropout(
    x: &Tensor,
    p: f64,
    scale: f64,
    seed: u64,
    start: u64,
) -> Result<((Arc<Storage>, Layout), Tensor)> {
    let ctx = super::ctx_of(x);
    let n = x.numel();
    let threshold = (p * 4_294_967_296.0).ceil() as u64;
    let mut meta = vec![
        word(n)?,
        word(x.rank())?,
        seed as u32,
        (seed >> 32) as u32,
        start as u32,
        (start >> 32) as u32,
        threshold.min(u32::MAX as u64) as u32,
        (threshold > u32::MAX as u64) as u32,
        (scale as f32).to_bits(),
    ];
    view_meta(x.layout(), x.rank(), &mut meta)?;
    let (out, keep) = (ctx.alloc(n)?, ctx.alloc(n)?);
    let k = Kernel {
        file: "random",
        src: SRC,
        entry: "dropout",
        access: "rww",
    };
    ctx.launch(&k, &meta, &[&buf_of(x), &out, &keep], groups(n)?);
    let (ks, kl) = wrap(keep, DType::F32, x.shape());
    Ok((wrap(out, DType::F32, x.shape()), Tensor::from_parts(ks, kl)))
}
