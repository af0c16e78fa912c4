//! Launch glue for batched products of strided operands with an optional bias: `matmul.wgsl`
//! on wgpu, cuBLAS on CUDA.

use super::{buf_of, elementwise::operand, word, Kernel};
use crate::error::Result;
use crate::tensor::{DType, Layout, Storage, Tensor};
use std::sync::Arc;

pub(crate) const SRC: super::Src = super::Src {
    #[cfg(feature = "wgpu")]
    wgsl: include_str!("../wgpu/matmul.wgsl"),
    // CUDA runs products on cuBLAS.
    #[cfg(feature = "cuda")]
    cu: "",
};
const TILE: usize = 128;

/// `a @ b (+ bias)` for views `la` = [batch.., m, k] and `lb` = [batch.., k, n] (batch dims
/// already broadcast); the result is contiguous [batch.., m, n].
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    a: &Tensor,
    la: &Layout,
    b: &Tensor,
    lb: &Layout,
    batch: &[usize],
    (m, k, n): (usize, usize, usize),
    bias: Option<&Tensor>,
) -> Result<Arc<Storage>> {
    let ctx = super::elementwise::device_of(&[a, b]);
    #[cfg(feature = "cuda")]
    #[allow(irrefutable_let_patterns)]
    if let super::Ctx::Cuda(c) = &ctx {
        use crate::backend::cuda::gemm::{matmul, Mode};
        let mode = match crate::precision() {
            crate::Precision::F32 => Mode::F32,
            crate::Precision::Tf32 => Mode::Tf32,
            crate::Precision::Bf16 => Mode::Bf16,
        };
        return matmul(c, a, la, b, lb, batch, (m, k, n), bias, mode);
    }
    // TF32 is an allowance, f32 a valid answer; bf16 is a promise wgpu cannot keep.
    if crate::precision() == crate::Precision::Bf16 {
        crate::bail!(
            "matmul",
            "bf16 autocast runs on the CPU and on CUDA devices; {} multiplies in f32 only",
            a.device()
        );
    }
    // More than two batch dims: copy both operands so the batch is one run.
    let (a, la, b, lb, batch) = if batch.len() > 2 {
        let flat = |t: &Tensor, l: &Layout, r: usize, c: usize| -> Result<(Tensor, Layout)> {
            let v = Tensor::from_parts(t.storage().clone(), l.clone());
            let v = super::elementwise::contiguous(&v)?;
            let lay = Layout::new(
                vec![batch.iter().product(), r, c],
                vec![r * c, c, 1],
                v.layout().offset(),
            );
            Ok((v, lay))
        };
        let (a, la) = flat(a, la, m, k)?;
        let (b, lb) = flat(b, lb, k, n)?;
        (a, la, b, lb, vec![batch.iter().product()])
    } else {
        (a.clone(), la.clone(), b.clone(), lb.clone(), batch.to_vec())
    };
    let r = batch.len();
    let (b1, b2) = match r {
        0 => (1, 1),
        1 => (batch[0], 1),
        _ => (batch[0], batch[1]),
    };
    let bstr = |l: &Layout| -> (usize, usize) {
        match r {
            0 => (0, 0),
            1 => (l.strides()[0], 0),
            _ => (l.strides()[0], l.strides()[1]),
        }
    };
    let (sa1, sa2) = bstr(&la);
    let (sb1, sb2) = bstr(&lb);
    let mut meta = vec![
        word(b1)?,
        word(b2)?,
        word(m)?,
        word(n)?,
        word(k)?,
        word(la.offset())?,
        word(sa1)?,
        word(sa2)?,
        word(la.strides()[r])?,
        word(la.strides()[r + 1])?,
        word(lb.offset())?,
        word(sb1)?,
        word(sb2)?,
        word(lb.strides()[r])?,
        word(lb.strides()[r + 1])?,
        bias.is_some() as u32,
    ];
    let out = ctx.alloc(b1 * b2 * m * n)?;
    let bias = bias.map(|t| operand(&ctx, t)).transpose()?;
    let bias = match bias {
        Some(t) => super::elementwise::contiguous(&t)?,
        None => a.clone(),
    };
    meta.push(word(bias.layout().offset())?);
    let groups = word(b1 * b2 * m.div_ceil(TILE) * n.div_ceil(TILE))?;
    let kern = Kernel {
        file: "matmul",
        src: SRC,
        entry: "matmul",
        access: "rrrw",
    };
    ctx.launch(
        &kern,
        &meta,
        &[&buf_of(&a), &buf_of(&b), &buf_of(&bias), &out],
        groups,
    );
    Ok(Arc::new(Storage::gpu(out, DType::F32)))
}
