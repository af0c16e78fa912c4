//! Matrix products on cuBLAS over strided operands, transposes as flags, one stream: f32
//! (`cublasSgemmStridedBatched`, the default math mode, no TF32), and on request TF32 tensor
//! cores or bf16 operands with f32 accumulation (`cublasGemmStridedBatchedEx`). cuBLAS picks
//! the same algorithm for the same shapes and settings, so a run repeats its bits.

use super::{Ctx, CudaBuf};
use crate::backend::gpu::{self, elementwise, Kernel};
use crate::bail;
use crate::error::Result;
use crate::tensor::{DType, Layout, Storage, Tensor};
use cudarc::cublas::sys as blas;
use std::sync::Arc;

/// How cuBLAS multiplies f32 operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Full f32 products.
    F32,
    /// TF32 tensor cores: operands rounded to 10 mantissa bits inside cuBLAS, f32 sums.
    Tf32,
    /// Operands rounded to bf16 (nearest even) first, f32 sums and result.
    Bf16,
}

const TO_BF16: Kernel = Kernel {
    file: "gemm",
    src: crate::backend::gpu::Src {
        // wgpu has no bf16 products; the field exists only to satisfy the shared type.
        #[cfg(feature = "wgpu")]
        wgsl: "",
        cu: include_str!("gemm.cu"),
    },
    entry: "to_bf16",
    access: "rw",
};

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

/// The device address of an f32 operand's first word.
fn word_ptr(o: &Operand) -> Result<u64> {
    match &*gpu::buf_of(&o.t) {
        gpu::GpuBuf::Cuda(x) => Ok(x.ptr(o.offset)),
        #[allow(unreachable_patterns)]
        _ => bail!("matmul", "operands on different backends"),
    }
}

/// The words an operand of `nb` matrices of `r` × `c` spans, from its first.
fn span(o: &Operand, r: usize, c: usize, nb: usize) -> usize {
    let (outer, inner) = if o.trans { (c, r) } else { (r, c) };
    (nb - 1) * o.batch_stride + (outer - 1) * o.ld + inner
}

/// The view `l` of `t` as an operand for bf16 conversion: packed first when it is spread thin
/// over a larger buffer (converting the gaps would cost more than a copy).
fn bf16_operand(t: &Tensor, l: &Layout, r: usize, c: usize, nb: usize) -> Result<Operand> {
    let o = operand(t, l, r, c)?;
    if span(&o, r, c, nb) <= 2 * nb * r * c + 64 {
        return Ok(o);
    }
    let v = elementwise::contiguous(&Tensor::from_parts(t.storage().clone(), l.clone()))?;
    operand(&v, v.layout(), r, c)
}

/// The values operand `o` reads, rounded to bf16 into a new buffer that starts at the first of
/// them: the operand's strides hold unchanged, counted in bf16 elements.
fn to_bf16(ctx: &Arc<Ctx>, o: &Operand, r: usize, c: usize, nb: usize) -> Result<CudaBuf> {
    let n = span(o, r, c, nb);
    let out = ctx.alloc(n.div_ceil(2))?;
    let buf = gpu::buf_of(&o.t);
    let src = match &*buf {
        gpu::GpuBuf::Cuda(x) => x,
        #[allow(unreachable_patterns)]
        _ => bail!("matmul", "operands on different backends"),
    };
    let groups = gpu::word(n.div_ceil(2).div_ceil(gpu::WG as usize))?;
    ctx.launch(
        &TO_BF16,
        &[gpu::word(n)?, gpu::word(o.offset)?],
        &[src, &out],
        groups,
    );
    Ok(out)
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
    mode: Mode,
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
    let (oa, ob) = match mode {
        Mode::Bf16 => (
            bf16_operand(a, la, m, k, nb)?,
            bf16_operand(b, lb, k, n, nb)?,
        ),
        _ => (operand(a, la, m, k)?, operand(b, lb, k, n)?),
    };
    let bo = out.gpu_buf().expect("a GPU buffer");
    let pc = match &*bo {
        gpu::GpuBuf::Cuda(z) => z.ptr(0),
        #[allow(unreachable_patterns)]
        _ => bail!("matmul", "operands on different backends"),
    };
    // bf16 operands live in buffers of their own for the call; dropping them after it is safe
    // (the pool hands them only to work queued later on the same stream).
    let (pa, pb, _held) = match mode {
        Mode::Bf16 => {
            let (ca, cb) = (to_bf16(ctx, &oa, m, k, nb)?, to_bf16(ctx, &ob, k, n, nb)?);
            (ca.ptr(0), cb.ptr(0), Some((ca, cb)))
        }
        _ => (word_ptr(&oa)?, word_ptr(&ob)?, None),
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
    let (dt, compute) = match mode {
        Mode::F32 => (blas::cudaDataType::CUDA_R_32F, None),
        Mode::Tf32 => (
            blas::cudaDataType::CUDA_R_32F,
            Some(blas::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32),
        ),
        Mode::Bf16 => (
            blas::cudaDataType::CUDA_R_16BF,
            Some(blas::cublasComputeType_t::CUBLAS_COMPUTE_32F),
        ),
    };
    // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: B goes first.
    // SAFETY: pointers, leading dimensions and batch strides describe memory inside live
    // buffers of this context (checked by `operand`; bf16 copies keep the same strides in
    // elements); alpha and beta are host scalars read during the call.
    let status = unsafe {
        match compute {
            None => blas::cublasSgemmStridedBatched(
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
            ),
            Some(compute) => blas::cublasGemmStridedBatchedEx(
                handle.0,
                op(ob.trans),
                op(oa.trans),
                int(n)?,
                int(m)?,
                int(k)?,
                (&alpha as *const f32).cast(),
                pb as *const std::ffi::c_void,
                dt,
                int(ob.ld)?,
                ob.batch_stride as i64,
                pa as *const std::ffi::c_void,
                dt,
                int(oa.ld)?,
                oa.batch_stride as i64,
                (&beta as *const f32).cast(),
                pc as *mut std::ffi::c_void,
                blas::cudaDataType::CUDA_R_32F,
                int(n)?,
                (m * n) as i64,
                int(nb)?,
                compute,
                blas::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            ),
        }
    };
    if status != blas::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        bail!(
            "matmul",
            "cuda:{}: cuBLAS {mode:?} product failed: {status:?}",
            ctx.index
        );
    }
    Ok(out)
}
