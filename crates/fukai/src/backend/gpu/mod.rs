//! The launch glue both GPU backends share. Every kernel family exists once as a WGSL file (in
//! `backend/wgpu/`) and once as a CUDA C file of the same stem (in `backend/cuda/`), with the
//! same entry points, the same metadata words and the same buffer order; the Rust that computes
//! shapes, metadata and launches lives here once and runs on either device. Only the device
//! layer (context, pool, compile cache, queue) and GEMM differ per backend.
//!
//! Storage on both is 4-byte words: f32 as is, u32 as is, u8 widened to u32, i64 narrowed to
//! i32 (indices; larger values are an error).

pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod matmul;
pub(crate) mod optim;
pub(crate) mod pool;
pub(crate) mod random;
pub(crate) mod reduce;
pub(crate) mod softmax;

use crate::bail;
use crate::error::{op_err, Result};
use crate::tensor::{CpuStorage, DType, Device, Layout, Storage, Tensor};
use std::sync::Arc;

/// Threads per block / workgroup in every 1-D kernel (the preludes' `WG`).
pub(crate) const WG: u32 = 256;

/// One kernel family's sources, one per backend built in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Src {
    #[cfg(feature = "wgpu")]
    pub wgsl: &'static str,
    #[cfg(feature = "cuda")]
    pub cu: &'static str,
}

/// The sources of family `$stem`: `backend/wgpu/$stem.wgsl` and `backend/cuda/$stem.cu`.
macro_rules! sources {
    ($stem:literal) => {
        $crate::backend::gpu::Src {
            #[cfg(feature = "wgpu")]
            wgsl: include_str!(concat!("../wgpu/", $stem, ".wgsl")),
            #[cfg(feature = "cuda")]
            cu: include_str!(concat!("../cuda/", $stem, ".cu")),
        }
    };
}
pub(crate) use sources;

/// A kernel: a family, one entry point, and its buffers after the metadata: `r` read-only, `w`
/// written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kernel {
    pub file: &'static str,
    pub src: Src,
    pub entry: &'static str,
    pub access: &'static str,
}

/// A device context of either backend (cheap to clone).
#[derive(Clone, Debug)]
pub(crate) enum Ctx {
    #[cfg(feature = "wgpu")]
    Wgpu(Arc<crate::backend::wgpu::Ctx>),
    #[cfg(feature = "cuda")]
    Cuda(Arc<crate::backend::cuda::Ctx>),
}

/// A pooled device buffer of 4-byte words, of either backend.
#[derive(Debug)]
pub(crate) enum GpuBuf {
    #[cfg(feature = "wgpu")]
    Wgpu(crate::backend::wgpu::GpuBuf),
    #[cfg(feature = "cuda")]
    Cuda(crate::backend::cuda::CudaBuf),
}

impl GpuBuf {
    /// The context the buffer belongs to.
    pub(crate) fn ctx(&self) -> Ctx {
        match self {
            #[cfg(feature = "wgpu")]
            GpuBuf::Wgpu(b) => Ctx::Wgpu(b.ctx().clone()),
            #[cfg(feature = "cuda")]
            GpuBuf::Cuda(b) => Ctx::Cuda(b.ctx().clone()),
        }
    }
    /// The device the buffer lives on.
    pub(crate) fn device(&self) -> Device {
        match self {
            #[cfg(feature = "wgpu")]
            GpuBuf::Wgpu(b) => Device::Wgpu(b.device_index()),
            #[cfg(feature = "cuda")]
            GpuBuf::Cuda(b) => Device::Cuda(b.device_index()),
        }
    }
    /// Elements held.
    pub(crate) fn len(&self) -> usize {
        match self {
            #[cfg(feature = "wgpu")]
            GpuBuf::Wgpu(b) => b.len(),
            #[cfg(feature = "cuda")]
            GpuBuf::Cuda(b) => b.len(),
        }
    }
}

impl Ctx {
    /// The context of a GPU device (`None` for the CPU).
    pub(crate) fn of(device: Device) -> Result<Option<Ctx>> {
        Ok(match device {
            #[cfg(feature = "wgpu")]
            Device::Wgpu(n) => Some(Ctx::Wgpu(crate::backend::wgpu::context(n)?)),
            #[cfg(feature = "cuda")]
            Device::Cuda(n) => Some(Ctx::Cuda(crate::backend::cuda::context(n)?)),
            _ => None,
        })
    }
    /// A buffer of `len` words with undefined contents (every kernel writes all its output).
    pub(crate) fn alloc(&self, len: usize) -> Result<GpuBuf> {
        match self {
            #[cfg(feature = "wgpu")]
            Ctx::Wgpu(c) => c.alloc(len).map(GpuBuf::Wgpu),
            #[cfg(feature = "cuda")]
            Ctx::Cuda(c) => c.alloc(len).map(GpuBuf::Cuda),
        }
    }
    /// A new buffer holding `words`.
    pub(crate) fn upload(&self, words: &[u32]) -> GpuBuf {
        match self {
            #[cfg(feature = "wgpu")]
            Ctx::Wgpu(c) => GpuBuf::Wgpu(c.upload(words)),
            #[cfg(feature = "cuda")]
            Ctx::Cuda(c) => GpuBuf::Cuda(c.upload(words)),
        }
    }
    /// Queues `k` over `groups` blocks of `WG` threads with `meta` first and `bufs` after.
    pub(crate) fn launch(&self, k: &Kernel, meta: &[u32], bufs: &[&GpuBuf], groups: u32) {
        debug_assert_eq!(bufs.len(), k.access.len(), "{}: binding count", k.entry);
        match self {
            #[cfg(feature = "wgpu")]
            Ctx::Wgpu(c) => {
                let bufs: Vec<_> = bufs.iter().map(|b| wgpu_buf(b)).collect();
                c.launch(k, meta, &bufs, groups)
            }
            #[cfg(feature = "cuda")]
            Ctx::Cuda(c) => {
                let bufs: Vec<_> = bufs.iter().map(|b| cuda_buf(b)).collect();
                c.launch(k, meta, &bufs, groups)
            }
        }
    }
    /// Queues a device-side copy of `len` words.
    pub(crate) fn copy(
        &self,
        src: &GpuBuf,
        src_off: usize,
        dst: &GpuBuf,
        dst_off: usize,
        n: usize,
    ) {
        match self {
            #[cfg(feature = "wgpu")]
            Ctx::Wgpu(c) => c.copy(wgpu_buf(src), src_off, wgpu_buf(dst), dst_off, n),
            #[cfg(feature = "cuda")]
            Ctx::Cuda(c) => c.copy(cuda_buf(src), src_off, cuda_buf(dst), dst_off, n),
        }
    }
    /// Waits for queued work and copies `len` words from word `offset` back to the host.
    pub(crate) fn read(&self, buf: &GpuBuf, offset: usize, len: usize) -> Result<Vec<u32>> {
        match self {
            #[cfg(feature = "wgpu")]
            Ctx::Wgpu(c) => c.read(wgpu_buf(buf), offset, len),
            #[cfg(feature = "cuda")]
            Ctx::Cuda(c) => c.read(cuda_buf(buf), offset, len),
        }
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_buf(b: &GpuBuf) -> &crate::backend::wgpu::GpuBuf {
    match b {
        GpuBuf::Wgpu(b) => b,
        #[allow(unreachable_patterns)]
        _ => panic!("internal error: a wgpu launch was handed another backend's buffer"),
    }
}

#[cfg(feature = "cuda")]
fn cuda_buf(b: &GpuBuf) -> &crate::backend::cuda::CudaBuf {
    match b {
        GpuBuf::Cuda(b) => b,
        #[allow(unreachable_patterns)]
        _ => panic!("internal error: a CUDA launch was handed another backend's buffer"),
    }
}

/// The dtypes GPU storage holds.
pub(crate) fn check_dtype(op: &'static str, dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::U32 | DType::U8 | DType::I64 => Ok(()),
        other => bail!(
            op,
            "GPU tensors hold f32, u32, u8 and i64 (as i32), found {other}; convert with to_dtype(F32) first"
        ),
    }
}

/// Host storage to device words.
pub(crate) fn upload(ctx: &Ctx, data: &CpuStorage) -> Result<GpuBuf> {
    let words: Vec<u32> = match data {
        CpuStorage::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        CpuStorage::U32(v) => v.clone(),
        CpuStorage::U8(v) => v.iter().map(|&x| x as u32).collect(),
        CpuStorage::I64(v) => {
            if let Some(bad) = v.iter().find(|&&x| i32::try_from(x).is_err()) {
                bail!(
                    "to",
                    "i64 tensors live on GPUs as i32; the value {bad} does not fit"
                );
            }
            v.iter().map(|&x| x as i32 as u32).collect()
        }
        other => {
            check_dtype("to", other.dtype())?;
            unreachable!()
        }
    };
    Ok(ctx.upload(&words))
}

/// Device words back to host storage of `dtype`.
pub(crate) fn download(words: Vec<u32>, dtype: DType) -> CpuStorage {
    match dtype {
        DType::F32 => CpuStorage::F32(words.into_iter().map(f32::from_bits).collect()),
        DType::U32 => CpuStorage::U32(words),
        DType::U8 => CpuStorage::U8(words.into_iter().map(|w| w as u8).collect()),
        DType::I64 => CpuStorage::I64(words.into_iter().map(|w| w as i32 as i64).collect()),
        other => unreachable!("GPU storage of {other}"),
    }
}

/// Host data as new storage on GPU `device`.
pub(crate) fn storage_on(device: Device, host: &CpuStorage) -> Result<Option<Storage>> {
    let Some(ctx) = Ctx::of(device)? else {
        return Ok(None);
    };
    Ok(Some(Storage::gpu(upload(&ctx, host)?, host.dtype())))
}

/// A contiguous host copy of a GPU tensor (its view's elements in logical order).
pub(crate) fn to_host(t: &Tensor) -> Result<CpuStorage> {
    let c = elementwise::contiguous(t)?;
    let buf = buf_of(&c);
    let words = buf.ctx().read(&buf, c.layout().offset(), c.numel())?;
    Ok(download(words, t.dtype()))
}

/// Wraps a fresh device buffer as a contiguous tensor's storage.
pub(crate) fn wrap(buf: GpuBuf, dtype: DType, shape: &[usize]) -> (Arc<Storage>, Layout) {
    (
        Arc::new(Storage::gpu(buf, dtype)),
        Layout::contiguous(shape),
    )
}

/// The context of a tensor's device (the caller checked it is on a GPU).
pub(crate) fn ctx_of(t: &Tensor) -> Ctx {
    buf_of(t).ctx()
}

/// The buffer behind a GPU tensor.
pub(crate) fn buf_of(t: &Tensor) -> Arc<GpuBuf> {
    t.storage().gpu_buf().expect("a GPU tensor")
}

/// Metadata words describing a strided view: offset, then per dim its size and stride.
pub(crate) fn view_meta(l: &Layout, rank: usize, meta: &mut Vec<u32>) -> Result<()> {
    meta.push(word(l.offset())?);
    // Left-padded with size-1 dims so every view in one launch has the same rank.
    let pad = rank - l.shape().len();
    for _ in 0..pad {
        meta.extend([1, 0]);
    }
    for (&d, &s) in l.shape().iter().zip(l.strides()) {
        meta.push(word(d)?);
        meta.push(word(s)?);
    }
    Ok(())
}

/// Blocks for one thread per element.
pub(crate) fn groups(n: usize) -> Result<u32> {
    u32::try_from(n.div_ceil(WG as usize))
        .map_err(|_| op_err("gpu", format!("{n} elements exceed one launch")))
}

/// `n` as a metadata word.
pub(crate) fn word(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| op_err("gpu", format!("size {n} exceeds u32")))
}
