//! One CUDA context per device: its stream, the compiled kernels, the cuBLAS handle and the
//! buffer pool.
//!
//! Everything is queued on one stream, so work runs in the order ops were called and pooled
//! buffers can be reused at once. Ops never block; a launch failure is kept and returned at the
//! next readback or synchronize, never turned into wrong numbers.

use super::buffer::{CudaBuf, Pool};
use crate::backend::gpu::{Kernel, WG};
use crate::bail;
use crate::error::{op_err, Result};
use cudarc::cublas::sys as blas;
use cudarc::driver::{result, sys, CudaContext, CudaFunction, CudaModule, CudaStream};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// CUDA C shared by every kernel file: word access, grid folding and strided indexing.
pub(crate) const PRELUDE: &str = include_str!("prelude.cu");
/// Blocks per grid dimension before the grid folds into y (the WGSL kernels' limit, kept so
/// both backends index threads the same way).
const MAX_GROUPS: u32 = 65_535;
/// cuBLAS workspace: fixed, so cuBLAS never allocates on its own during a run.
const BLAS_WORKSPACE: usize = 32 << 20;

/// A cuBLAS handle bound to the context's stream.
pub(crate) struct Blas(pub(crate) blas::cublasHandle_t);
// SAFETY: the handle is only used under the context's mutex.
unsafe impl Send for Blas {}

/// A CUDA device and everything kept per device.
pub(crate) struct Ctx {
    pub index: u16,
    name: String,
    cu: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: String,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<(&'static str, &'static str), CudaFunction>>,
    pub(crate) blas: Mutex<Blas>,
    pub(crate) pool: Mutex<Pool>,
    /// Allocations the full pool gave back, freed at the next synchronize (queued work may
    /// still use them).
    graveyard: Mutex<Vec<sys::CUdeviceptr>>,
    error: Mutex<Option<String>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cuda:{} ({})", self.index, self.name)
    }
}

fn drv(op: &'static str, index: u16, e: impl std::fmt::Display) -> crate::Error {
    op_err(op, format!("cuda:{index}: {e}"))
}

impl Ctx {
    pub(crate) fn open(
        index: u16,
        name: String,
        (major, minor): (i32, i32),
        cu: Arc<CudaContext>,
    ) -> Result<Ctx> {
        cu.bind_to_thread().map_err(|e| drv("device", index, e))?;
        let stream = cu.new_stream().map_err(|e| drv("device", index, e))?;
        let handle =
            cudarc::cublas::result::create_handle().map_err(|e| drv("device", index, e))?;
        // SAFETY: a fresh handle, the context's stream and a workspace owned by the context
        // for the process's lifetime.
        unsafe {
            let ok = |s: blas::cublasStatus_t| s == blas::cublasStatus_t::CUBLAS_STATUS_SUCCESS;
            let ws = result::malloc_sync(BLAS_WORKSPACE).map_err(|e| drv("device", index, e))?;
            if !ok(blas::cublasSetStream_v2(handle, stream.cu_stream() as _))
                || !ok(blas::cublasSetWorkspace_v2(handle, ws as _, BLAS_WORKSPACE))
                // The default math mode: no TF32, so results match across runs and the CPU.
                || !ok(blas::cublasSetMathMode(handle, blas::cublasMath_t::CUBLAS_DEFAULT_MATH))
            {
                bail!("device", "cuda:{index}: configuring cuBLAS failed");
            }
        }
        Ok(Ctx {
            index,
            name,
            cu,
            stream,
            arch: format!("compute_{major}{minor}"),
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            blas: Mutex::new(Blas(handle)),
            pool: Mutex::new(Pool::default()),
            graveyard: Mutex::new(Vec::new()),
            error: Mutex::new(None),
        })
    }

    /// Makes this context current on the calling thread (driver calls act on the current one).
    pub(crate) fn bind(&self) -> Result<()> {
        self.cu
            .bind_to_thread()
            .map_err(|e| drv("cuda", self.index, e))
    }

    pub(crate) fn raw_stream(&self) -> sys::CUstream {
        self.stream.cu_stream()
    }

    /// Keeps the first error of queued work for the next readback.
    pub(crate) fn record(&self, e: crate::Error) {
        let mut slot = self.error.lock();
        if slot.is_none() {
            *slot = Some(e.to_string());
        }
    }

    fn check_error(&self, op: &'static str) -> Result<()> {
        if let Some(e) = self.error.lock().take() {
            bail!(op, "cuda:{} ({}) reported: {e}", self.index, self.name);
        }
        Ok(())
    }

    fn function(&self, k: &Kernel) -> Result<CudaFunction> {
        if let Some(f) = self.functions.lock().get(&(k.file, k.entry)) {
            return Ok(f.clone());
        }
        let module = {
            let mut modules = self.modules.lock();
            match modules.get(k.file) {
                Some(m) => m.clone(),
                None => {
                    let m = self.compile(k)?;
                    modules.insert(k.file, m.clone());
                    m
                }
            }
        };
        let f = module.load_function(k.entry).map_err(|e| {
            drv(
                "cuda",
                self.index,
                format!("{}.cu: {}: {e}", k.file, k.entry),
            )
        })?;
        self.functions.lock().insert((k.file, k.entry), f.clone());
        Ok(f)
    }

    fn compile(&self, k: &Kernel) -> Result<Arc<CudaModule>> {
        let src = format!("{PRELUDE}\n{}", k.src.cu);
        let opts = cudarc::nvrtc::CompileOptions {
            // No contraction into FMAs and IEEE division and square root: elementwise results
            // then match the CPU's bit for bit.
            fmad: Some(false),
            prec_div: Some(true),
            prec_sqrt: Some(true),
            ftz: Some(false),
            options: vec![format!("--gpu-architecture={}", self.arch)],
            name: Some(format!("{}.cu", k.file)),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(&src, opts).map_err(|e| {
            drv(
                "cuda",
                self.index,
                format!("compiling {}.cu failed: {e:?}", k.file),
            )
        })?;
        self.cu
            .load_module(ptx)
            .map_err(|e| drv("cuda", self.index, format!("loading {}.cu: {e}", k.file)))
    }

    /// Queues `k` over `groups` blocks (folded into a 2-D grid past 65,535) with `meta` as the
    /// first argument and `bufs` after it in order.
    pub(crate) fn launch(
        self: &Arc<Self>,
        k: &Kernel,
        meta: &[u32],
        bufs: &[&CudaBuf],
        groups: u32,
    ) {
        if groups == 0 {
            return;
        }
        if let Err(e) = self.try_launch(k, meta, bufs, groups) {
            self.record(e);
        }
    }

    fn try_launch(
        self: &Arc<Self>,
        k: &Kernel,
        meta: &[u32],
        bufs: &[&CudaBuf],
        groups: u32,
    ) -> Result<()> {
        let f = self.function(k)?;
        let meta = self.upload(if meta.is_empty() { &[0] } else { meta });
        let mut ptrs: Vec<sys::CUdeviceptr> = vec![meta.ptr(0)];
        ptrs.extend(bufs.iter().map(|b| b.ptr(0)));
        let mut args: Vec<*mut std::ffi::c_void> = ptrs
            .iter_mut()
            .map(|p| (p as *mut sys::CUdeviceptr).cast())
            .collect();
        let grid = if groups <= MAX_GROUPS {
            (groups, 1, 1)
        } else {
            (MAX_GROUPS, groups.div_ceil(MAX_GROUPS), 1)
        };
        self.bind()?;
        // SAFETY: every argument is a live device buffer of this context, in the order and
        // number the kernel declares (the glue checks the count against `k.access`); `meta`
        // and `ptrs` outlive the call, and the driver copies the arguments at launch.
        unsafe {
            result::launch_kernel(
                f.cu_function(),
                grid,
                (WG, 1, 1),
                0,
                self.raw_stream(),
                &mut args,
            )
        }
        .map_err(|e| drv("cuda", self.index, format!("launching {}: {e}", k.entry)))
    }

    /// A buffer of `len` words from the pool when one fits.
    pub(crate) fn alloc(self: &Arc<Self>, len: usize) -> Result<CudaBuf> {
        let bytes = Pool::class(len);
        let reused = self.pool.lock().take(bytes);
        if let Some(p) = reused {
            return Ok(CudaBuf::new(self.clone(), p, bytes, len));
        }
        self.bind()?;
        // SAFETY: a plain allocation in the bound context.
        let p = match unsafe { result::malloc_sync(bytes as usize) } {
            Ok(p) => p,
            Err(_) => {
                // Out of memory: free what the pool holds and try once more.
                self.empty_cache()?;
                unsafe { result::malloc_sync(bytes as usize) }.map_err(|e| {
                    drv(
                        "alloc",
                        self.index,
                        format!("allocating {bytes} bytes: {e}"),
                    )
                })?
            }
        };
        Ok(CudaBuf::new(self.clone(), p, bytes, len))
    }

    /// A new buffer holding `words` (an upload failure is reported at the next readback).
    pub(crate) fn upload(self: &Arc<Self>, words: &[u32]) -> CudaBuf {
        let run = || -> Result<CudaBuf> {
            let buf = self.alloc(words.len())?;
            if !words.is_empty() {
                self.bind()?;
                // SAFETY: the buffer holds at least `words.len()` words; a copy from pageable
                // memory returns once the source is staged, so `words` may go after it.
                unsafe { result::memcpy_htod_async(buf.ptr(0), words, self.raw_stream()) }
                    .map_err(|e| drv("to", self.index, e))?;
            }
            Ok(buf)
        };
        match run() {
            Ok(b) => b,
            Err(e) => {
                self.record(e);
                // A one-word stand-in keeps the op going until the error surfaces.
                let p = self.pool.lock().take(Pool::class(1)).unwrap_or(0);
                CudaBuf::new(self.clone(), p, Pool::class(1), words.len())
            }
        }
    }

    /// Queues a device-side copy of `len` words.
    pub(crate) fn copy(
        &self,
        src: &CudaBuf,
        src_off: usize,
        dst: &CudaBuf,
        dst_off: usize,
        len: usize,
    ) {
        if len == 0 {
            return;
        }
        let run = || -> Result<()> {
            self.bind()?;
            // SAFETY: both ranges lie inside live buffers of this context.
            unsafe {
                result::memcpy_dtod_async(
                    dst.ptr(dst_off),
                    src.ptr(src_off),
                    len * 4,
                    self.raw_stream(),
                )
            }
            .map_err(|e| drv("copy", self.index, e))
        };
        if let Err(e) = run() {
            self.record(e);
        }
    }

    /// Waits for queued work, then copies `len` words from word `offset` back to the host.
    pub(crate) fn read(&self, buf: &CudaBuf, offset: usize, len: usize) -> Result<Vec<u32>> {
        let mut out = vec![0u32; len];
        if len > 0 {
            self.bind()?;
            // SAFETY: the range lies inside the buffer; the stream is synchronized below before
            // `out` is read or dropped.
            unsafe { result::memcpy_dtoh_async(&mut out, buf.ptr(offset), self.raw_stream()) }
                .map_err(|e| drv("to_vec", self.index, e))?;
        }
        self.synchronize()?;
        Ok(out)
    }

    /// Waits until the device has finished all queued work; reports its errors.
    pub(crate) fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.stream
            .synchronize()
            .map_err(|e| drv("synchronize", self.index, e))?;
        for p in std::mem::take(&mut *self.graveyard.lock()) {
            // SAFETY: no queued work is left that could use it.
            let _ = unsafe { result::free_sync(p) };
        }
        self.check_error("synchronize")
    }

    /// Frees an allocation once queued work is done with it.
    pub(crate) fn free_later(&self, p: sys::CUdeviceptr) {
        if p != 0 {
            self.graveyard.lock().push(p);
        }
    }

    /// Frees every pooled allocation (after the queued work that may still use them).
    pub(crate) fn empty_cache(&self) -> Result<()> {
        let drained = self.pool.lock().drain();
        self.graveyard.lock().extend(drained);
        self.synchronize()
    }
}
