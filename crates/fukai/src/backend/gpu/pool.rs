//! Launch glue for `pool.{wgsl,cu}`: max and average pools with any window tables.

use super::{buf_of, elementwise::contiguous, groups, word, Ctx, GpuBuf, Kernel};
use crate::error::Result;
use crate::tensor::{DType, Tensor};
use std::sync::Arc;

pub(crate) const SRC: super::Src = super::sources!("pool");

/// One pool's geometry: planes of `h`×`w`, windows per output row and column as
/// (start, end, count).
pub(crate) struct Windows {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub ys: Vec<(usize, usize, usize)>,
    pub xs: Vec<(usize, usize, usize)>,
}

impl Windows {
    /// The window tables and, per input row and column, the windows covering it.
    fn tables(&self) -> Result<Vec<u32>> {
        let mut t = Vec::new();
        for &(a, b, c) in self.ys.iter().chain(&self.xs) {
            t.extend([word(a)?, word(b)?, word(c)?]);
        }
        for (len, wins) in [(self.h, &self.ys), (self.w, &self.xs)] {
            for i in 0..len {
                let lo = wins.iter().position(|w| w.1 > i).unwrap_or(wins.len());
                let hi = wins.iter().rposition(|w| w.0 <= i).map_or(0, |k| k + 1);
                t.extend([word(lo)?, word(hi.max(lo))?]);
            }
        }
        Ok(t)
    }
    fn meta(&self, offset: usize) -> Result<Vec<u32>> {
        [
            self.planes,
            self.h,
            self.w,
            self.ys.len(),
            self.xs.len(),
            offset,
        ]
        .into_iter()
        .map(word)
        .collect()
    }
}

fn launch(
    ctx: &Ctx,
    entry: &'static str,
    meta: &[u32],
    bufs: [&GpuBuf; 4],
    n: usize,
) -> Result<()> {
    let k = Kernel {
        file: "pool",
        src: SRC,
        entry,
        access: "rrww",
    };
    ctx.launch(&k, meta, &bufs, groups(n)?);
    Ok(())
}

/// The pooled values [planes · OH · OW] and, for a max pool, the winners' in-plane indices.
pub(crate) fn forward(x: &Tensor, win: &Windows, max: bool) -> Result<(Tensor, Option<Tensor>)> {
    let x = contiguous(x)?;
    let ctx = super::ctx_of(&x);
    let n = win.planes * win.ys.len() * win.xs.len();
    let tab = ctx.upload(&win.tables()?);
    let (out, idx) = (ctx.alloc(n)?, ctx.alloc(if max { n } else { 1 })?);
    let entry = if max { "max_fwd" } else { "avg_fwd" };
    launch(
        &ctx,
        entry,
        &win.meta(x.layout().offset())?,
        [&buf_of(&x), &tab, &idx, &out],
        n,
    )?;
    let (s, l) = super::wrap(out, DType::F32, &[n]);
    let idx = max.then(|| {
        let (s, l) = super::wrap(idx, DType::U32, &[n]);
        Tensor::from_parts(s, l)
    });
    Ok((Tensor::from_parts(s, l), idx))
}

/// The input gradient [planes · H · W] from the upstream gradient (and a max pool's indices).
pub(crate) fn backward(gy: &Tensor, idx: Option<&Tensor>, win: &Windows) -> Result<Tensor> {
    let gy = contiguous(gy)?;
    let ctx = super::ctx_of(&gy);
    let n = win.planes * win.h * win.w;
    let tab = ctx.upload(&win.tables()?);
    let out = ctx.alloc(n)?;
    let (entry, idx) = match idx {
        Some(i) => ("max_bwd", buf_of(i)),
        None => ("avg_bwd", Arc::new(ctx.alloc(1)?)),
    };
    launch(
        &ctx,
        entry,
        &win.meta(gy.layout().offset())?,
        [&buf_of(&gy), &tab, &idx, &out],
        n,
    )?;
    let (s, l) = super::wrap(out, DType::F32, &[n]);
    Ok(Tensor::from_parts(s, l))
}
