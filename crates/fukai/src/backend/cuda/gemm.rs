//! Matrix products on cuBLAS: `cublasSgemmStridedBatched` over strided operands, transposes
//! as flags, one stream, the default math mode (no TF32), no split-K choice of ours.

use super::Ctx;
use crate::backend::gpu::{self, elementwise};
use crate::bail;
use crate::error::Result;
use crate::tensor::{DType, Layout, Storage, Tensor};
use cudarc::cublas::sys as blas;
use std::sync::Arc;

/// One operand as cuBLAS reads it: the tensor, its word offset, the stride between batch
/// matrices, the leading dimension and whether cuBLAS must transpose its column-major view.
struct Operand {
    t: Tensor,
    offset: usize,
    batch_stride: usize,
    ld: usize,
    trans: bool,
}

/// The single stride that steps through the flattened batch dims, if there is one.
fn flat_batch_stride(dims: &[usize], strides: &[usize]) -> Option<usize> {
    let live: Vec<(usize, usize)> = dims
        .iter()
        .zip(strides)
        .filter(|(&d, _)| d > 1)
        .map(|(&d, &s)| (d, s))
        .collect();
    let Some(&(_, last)) = live.last() else {
        return Some(0);
    };
    for w in live.windows(2) {
        let ((_, s0), (d1, s1)) = (w[0], w[1]);
        if s0 != s1 * d1 {
            return None;
        }
    }
    Some(last)
}

/// `t` viewed through `l` = [batch.., r, c] as a cuBLAS operand, copied first when its strides
/// are not ones cuBLAS can express.
fn operand(t: &Tensor, l: &Layout, r: usize, c: usize) -> Result<Operand> {
    let rank = l.shape().len();
    let (dims, strides) = (&l.shape()[..rank - 2], &l.strides()[..rank - 2]);
    let (sr, sc) = (l.strides()[rank - 2], l.strides()[rank - 1]);
    if let Some(bs) = flat_batch_stride(dims, strides) {
        // Row-major rows of `c` words: the column-major view is the transpose, read as is.
        if (sc == 1 || c == 1) && (r == 1 || sr >= c) {
            let ld = if r == 1 { c } else { sr };
            return Ok(Operand {
                t: t.clone(),
                offset: l.offset(),
                batch_stride: bs,
                ld: ld.max(1),
                trans: false,
            });
        }
        // Column-major already: cuBLAS transposes it.
        if (sr == 1 || r == 1) && (c == 1 || sc >= r) {
            let ld = if c == 1 { r } else { sc };
            return Ok(Operand {
                t: t.clone(),
                offset: l.offset(),
                batch_stride: bs,
                ld: ld.max(1),
                trans: true,
            });
        }
    }
    let v = elementwise::contiguous(&Tensor::from_parts(t.storage().clone(), l.clone()))?;
    Ok(Operand {
        offset: v.layout().offset(),
        t: v,
        batch_stride: r * c,
        ld: c.max(1),
        trans: false,
    })
}

fn int(v: usize) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| crate::error::op_err("matmul", format!("{v} exceeds cuBLAS's int")))
}

/// `a @ b (+ bias)` for views `la` = [batch.., m, k] and `lb` = [batch.., k, n] (batch dims
/// already broadcast); the result is contiguous [batch.., m, n].
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    ctx: &Arc<Ctx>,
    a: &Tensor,
    la: &Layout,
    b: &Tensor,
    lb: &Layout,
    batch: &[usize],
    (m, k, n): (usize, usize, usize),
    bias: Option<&Tensor>,
) -> Result<Arc<Storage>> {
    let nb: usize = batch.iter().product();
    let gctx = gpu::Ctx::Cuda(ctx.clone());
    // The output starts as the bias broadcast over rows (cuBLAS then adds A·B with beta = 1),
    // or undefined (beta = 0).
    let (out, beta) = match bias {
        Some(t) => {
            let t = elementwise::contiguous(&elementwise::operand(&gctx, t)?)?;
            let rows = Layout::new(vec![nb * m, n], vec![0, 1], t.layout().offset());
            let (s, _) = elementwise::copy(&Tensor::from_parts(t.storage().clone(), rows))?;
            (s, 1.0f32)
        }
        None => (
            Arc::new(Storage::gpu(gctx.alloc(nb * m * n)?, DType::F32)),
            0.0f32,
        ),
    };
    if nb * m * n == 0 {
        return Ok(out);
    }
    if k == 0 && beta == 0.0 {
        // An empty sum: zeros, which cuBLAS may not write for k = 0.
        let z = elementwise::full(&gctx, &[nb * m * n], 0.0, DType::F32)?;
        return Ok(z.storage().clone());
    }
    let (oa, ob) = (operand(a, la, m, k)?, operand(b, lb, k, n)?);
    let (ba, bb) = (gpu::buf_of(&oa.t), gpu::buf_of(&ob.t));
    let bo = out.gpu_buf().expect("a GPU buffer");
    let (pa, pb, pc) = match (&*ba, &*bb, &*bo) {
        (gpu::GpuBuf::Cuda(x), gpu::GpuBuf::Cuda(y), gpu::GpuBuf::Cuda(z)) => {
            (x.ptr(oa.offset), y.ptr(ob.offset), z.ptr(0))
        }
        #[allow(unreachable_patterns)]
        _ => bail!("matmul", "operands on different backends"),
    };
    let op = |t: bool| {
        if t {
            blas::cublasOperation_t::CUBLAS_OP_T
        } else {
            blas::cublasOperation_t::CUBLAS_OP_N
        }
    };
    let alpha = 1.0f32;
    ctx.bind()?;
    let handle = ctx.blas.lock();
    // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: B goes first.
    // SAFETY: pointers, leading dimensions and batch strides describe memory inside live
    // buffers of this context (checked by `operand`); alpha and beta are host scalars read
    // during the call.
    let status = unsafe {
        blas::cublasSgemmStridedBatched(
            handle.0,
            op(ob.trans),
            op(oa.trans),
            int(n)?,
            int(m)?,
            int(k)?,
            &alpha,
            pb as *const f32,
            int(ob.ld)?,
            ob.batch_stride as i64,
            pa as *const f32,
            int(oa.ld)?,
            oa.batch_stride as i64,
            &beta,
            pc as *mut f32,
            int(n)?,
            (m * n) as i64,
            int(nb)?,
        )
    };
    if status != blas::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        bail!(
            "matmul",
            "cuda:{}: cuBLAS SGEMM failed: {status:?}",
            ctx.index
        );
    }
    Ok(out)
}
