//! Device buffers and the pool they return to.
//!
//! A dropped buffer may be handed at once to a kernel recorded later: the device's single queue
//! runs commands in order, so the new writer runs after every recorded reader of the old
//! contents. The pool is bounded and visible (`memory_stats`).

use super::context::Ctx;
use std::collections::HashMap;
use std::sync::Arc;

/// Pooled bytes kept for reuse at most; beyond this, dropped buffers are freed.
const POOL_CAP: u64 = 2 << 30;

/// A device buffer of `len` 4-byte elements (f32, u32 or i32 words).
pub(crate) struct GpuBuf {
    ctx: Arc<Ctx>,
    buf: Option<wgpu::Buffer>,
    len: usize,
}

impl std::fmt::Debug for GpuBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuf({:?}, {} elements)", self.ctx, self.len)
    }
}

impl GpuBuf {
    pub(crate) fn new(ctx: Arc<Ctx>, buf: wgpu::Buffer, len: usize) -> Self {
        {
            let mut pool = ctx.pool.lock();
            pool.live += buf.size();
            pool.peak = pool.peak.max(pool.live);
        }
        GpuBuf {
            ctx,
            buf: Some(buf),
            len,
        }
    }
    pub(crate) fn raw(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("present until drop")
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

impl Drop for GpuBuf {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            self.ctx.pool.lock().put(b);
        }
    }
}

/// Free buffers by size class, with counters.
#[derive(Default)]
pub(crate) struct Pool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    pooled: u64,
    pub(crate) live: u64,
    pub(crate) peak: u64,
}

impl Pool {
    /// The size class holding `len` 4-byte elements: powers of two up to 64 MiB, then 4 MiB
    /// steps (at least 256 bytes, and never 0, which wgpu cannot bind).
    pub(crate) fn class(len: usize) -> u64 {
        let bytes = (len as u64 * 4).max(256);
        if bytes <= 64 << 20 {
            bytes.next_power_of_two()
        } else {
            bytes.div_ceil(4 << 20) * (4 << 20)
        }
    }
    pub(crate) fn take(&mut self, bytes: u64) -> Option<wgpu::Buffer> {
        let b = self.free.get_mut(&bytes)?.pop()?;
        self.pooled -= bytes;
        Some(b)
    }
    fn put(&mut self, b: wgpu::Buffer) {
        let size = b.size();
        self.live = self.live.saturating_sub(size);
        // Uploads have exact sizes; only class-sized buffers can be found again.
        if size == Pool::class(size as usize / 4) && self.pooled + size <= POOL_CAP {
            self.pooled += size;
            self.free.entry(size).or_default().push(b);
        }
        // Otherwise dropped: wgpu frees it once recorded work no longer uses it (`destroy`
        // would fail commands recorded but not yet submitted).
    }
    /// Frees every pooled buffer.
    pub(crate) fn clear(&mut self) {
        for (_, v) in self.free.drain() {
            drop(v);
        }
        self.pooled = 0;
    }
    /// (bytes in live tensors, bytes pooled for reuse, peak live bytes).
    pub(crate) fn stats(&self) -> (u64, u64, u64) {
        (self.live, self.pooled, self.peak)
    }
}
