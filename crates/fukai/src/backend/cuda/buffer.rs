//! Device buffers and the pool they return to.
//!
//! A dropped buffer may be handed at once to work queued later: the device has one stream, so
//! the new writer runs after every queued reader of the old contents. Memory is allocated
//! with plain `cuMemAlloc` and freed only when the pool is emptied (after a synchronize), so
//! no free can race queued work.

use super::context::Ctx;
use cudarc::driver::sys::CUdeviceptr;
use std::collections::HashMap;
use std::sync::Arc;

/// Pooled bytes kept for reuse at most; beyond this, dropped buffers are freed.
const POOL_CAP: u64 = 8 << 30;

/// A device buffer of `len` 4-byte words (f32, u32 or i32).
pub(crate) struct CudaBuf {
    ctx: Arc<Ctx>,
    ptr: CUdeviceptr,
    bytes: u64,
    len: usize,
}

impl std::fmt::Debug for CudaBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBuf({:?}, {} elements)", self.ctx, self.len)
    }
}

impl CudaBuf {
    pub(crate) fn new(ctx: Arc<Ctx>, ptr: CUdeviceptr, bytes: u64, len: usize) -> Self {
        {
            let mut pool = ctx.pool.lock();
            pool.live += bytes;
            pool.peak = pool.peak.max(pool.live);
        }
        CudaBuf {
            ctx,
            ptr,
            bytes,
            len,
        }
    }
    /// The device address of word `offset`.
    pub(crate) fn ptr(&self, offset: usize) -> CUdeviceptr {
        self.ptr + offset as u64 * 4
    }
    pub(crate) fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }
    pub(crate) fn device_index(&self) -> u16 {
        self.ctx.index
    }
    /// Elements held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for CudaBuf {
    fn drop(&mut self) {
        if self.ptr == 0 {
            // The stand-in of a failed upload: nothing was allocated.
            let mut pool = self.ctx.pool.lock();
            pool.live = pool.live.saturating_sub(self.bytes);
            return;
        }
        let freed = self.ctx.pool.lock().put(self.ptr, self.bytes);
        if let Some(p) = freed {
            self.ctx.free_later(p);
        }
    }
}

/// Free allocations by size class, with counters.
#[derive(Default)]
pub(crate) struct Pool {
    free: HashMap<u64, Vec<CUdeviceptr>>,
    pooled: u64,
    pub(crate) live: u64,
    pub(crate) peak: u64,
}

// SAFETY: device addresses are plain integers valid in any thread that binds the context.
unsafe impl Send for Pool {}

impl Pool {
    /// The size class holding `len` words: powers of two up to 64 MiB, then 4 MiB steps (at
    /// least 256 bytes, never 0).
    pub(crate) fn class(len: usize) -> u64 {
        let bytes = (len as u64 * 4).max(256);
        if bytes <= 64 << 20 {
            bytes.next_power_of_two()
        } else {
            bytes.div_ceil(4 << 20) * (4 << 20)
        }
    }
    pub(crate) fn take(&mut self, bytes: u64) -> Option<CUdeviceptr> {
        let p = self.free.get_mut(&bytes)?.pop()?;
        self.pooled -= bytes;
        Some(p)
    }
    /// Returns an allocation; gives it back when the pool is full, for the caller to free.
    fn put(&mut self, p: CUdeviceptr, bytes: u64) -> Option<CUdeviceptr> {
        self.live = self.live.saturating_sub(bytes);
        if self.pooled + bytes <= POOL_CAP {
            self.pooled += bytes;
            self.free.entry(bytes).or_default().push(p);
            None
        } else {
            Some(p)
        }
    }
    /// Takes every pooled allocation out, for the caller to free.
    pub(crate) fn drain(&mut self) -> Vec<CUdeviceptr> {
        self.pooled = 0;
        self.free.drain().flat_map(|(_, v)| v).collect()
    }
    /// (bytes in live tensors, bytes pooled for reuse, peak live bytes).
    pub(crate) fn stats(&self) -> (u64, u64, u64) {
        (self.live, self.pooled, self.peak)
    }
}
