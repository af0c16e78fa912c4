//! One wgpu device per adapter: its queue, the encoder that collects dispatches until something
//! must be read, the pipeline cache and the buffer pool.
//!
//! Ops never block: each launch records a compute pass into the pending encoder, which is
//! submitted every `FLUSH_EVERY` dispatches or when a buffer is read back. A readback waits for
//! its own submission. Validation and device errors are caught by the device's error handler and
//! returned at the next readback, never turned into wrong numbers.

use super::buffer::{GpuBuf, Pool};
use crate::backend::gpu::Kernel;
use crate::bail;
use crate::error::{op_err, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// Dispatches recorded before the encoder is submitted without a readback.
const FLUSH_EVERY: usize = 64;
/// WebGPU's limit on workgroups per grid dimension; larger grids fold into y.
const MAX_GROUPS: u32 = 65_535;

/// WGSL shared by every kernel file: grid folding and strided indexing.
pub(crate) const PRELUDE: &str = include_str!("prelude.wgsl");

/// A compiled entry point and the layout of its bindings.
type Pipeline = (wgpu::ComputePipeline, wgpu::BindGroupLayout);

struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    dispatches: usize,
    /// Metadata of the dispatches recorded since the last submit, at their arena offsets;
    /// written into the arena just before the submit (a queued write lands before the
    /// submission that follows it, after every earlier one).
    meta: Vec<u32>,
}

/// Bytes of the metadata arena: one buffer shared by all dispatches between two submits, so a
/// launch does not create a buffer (a driver allocation) for a few words of sizes and strides.
const ARENA_BYTES: u64 = 256 << 10;

/// A wgpu device and everything kept per device.
pub(crate) struct Ctx {
    pub index: u16,
    pub info: wgpu::AdapterInfo,
    pub device: wgpu::Device,
    queue: wgpu::Queue,
    pending: Mutex<Pending>,
    arena: wgpu::Buffer,
    /// Alignment of a storage binding's offset (the arena's slots).
    align: usize,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(&'static str, &'static str), Pipeline>>,
    pub(crate) pool: Mutex<Pool>,
    error: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wgpu:{} ({})", self.index, self.info.name)
    }
}

impl Ctx {
    pub(crate) async fn open(index: u16, adapter: wgpu::Adapter) -> Result<Ctx> {
        let info = adapter.get_info();
        // The adapter's own limits: real GPUs allow buffers far above WebGPU's 128 MiB default.
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("fukai"),
                required_features: wgpu::Features::empty(),
                required_limits: limits,
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| op_err("device", format!("wgpu:{index} ({}): {e}", info.name)))?;
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("meta arena"),
            size: ARENA_BYTES,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let align = device.limits().min_storage_buffer_offset_alignment.max(4) as usize;
        let error = Arc::new(Mutex::new(None));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock();
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        Ok(Ctx {
            index,
            info,
            device,
            queue,
            pending: Mutex::new(Pending {
                encoder: None,
                dispatches: 0,
                meta: Vec::new(),
            }),
            arena,
            align,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            pool: Mutex::new(Pool::default()),
            error,
        })
    }

    /// The device's first error since the last check, as an `Error`.
    pub(crate) fn check_error(&self, op: &'static str) -> Result<()> {
        if let Some(e) = self.error.lock().take() {
            bail!(op, "wgpu:{} ({}) reported: {e}", self.index, self.info.name);
        }
        Ok(())
    }

    /// The error behind a failed wait: the device's own report when it made one (a failed
    /// submission then only follows from it), else the wait's.
    fn failure(&self, op: &'static str, e: impl std::fmt::Display) -> crate::Error {
        match self.check_error(op) {
            Err(reported) => reported,
            Ok(()) => op_err(op, format!("wgpu:{}: {e}", self.index)),
        }
    }

    fn pipeline(&self, k: &Kernel) -> Pipeline {
        if let Some(p) = self.pipelines.lock().get(&(k.file, k.entry)) {
            return p.clone();
        }
        let module = {
            let mut modules = self.modules.lock();
            modules
                .entry(k.file)
                .or_insert_with(|| {
                    let src = format!("{PRELUDE}\n{}", k.src.wgsl);
                    self.device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(k.file),
                            source: wgpu::ShaderSource::Wgsl(src.into()),
                        })
                })
                .clone()
        };
        let entry = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let mut entries = vec![entry(0, true)];
        for (i, a) in k.access.chars().enumerate() {
            entries.push(entry(i as u32 + 1, a == 'r'));
        }
        let bgl = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(k.entry),
                entries: &entries,
            });
        let layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(k.entry),
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(k.entry),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(k.entry),
                compilation_options: Default::default(),
                cache: None,
            });
        let p = (pipeline, bgl);
        self.pipelines.lock().insert((k.file, k.entry), p.clone());
        p
    }

    /// Records `k` over `groups` workgroups (folded into a 2-D grid past 65,535) with `meta`
    /// as binding 0 and `bufs` as bindings 1.. in order.
    pub(crate) fn launch(&self, k: &Kernel, meta: &[u32], bufs: &[&GpuBuf], groups: u32) {
        if groups == 0 {
            return;
        }
        let (pipeline, bgl) = self.pipeline(k);
        let meta = if meta.is_empty() { &[0u32][..] } else { meta };
        let bytes = std::mem::size_of_val(meta);
        let mut pending = self.pending.lock();
        let mut at = (pending.meta.len() * 4).next_multiple_of(self.align);
        if at + bytes > ARENA_BYTES as usize && at > 0 {
            self.submit(&mut pending);
            at = 0;
        }
        // A launch whose metadata alone outgrows the arena gets a buffer of its own.
        let own;
        let meta_binding = if bytes <= ARENA_BYTES as usize {
            pending.meta.resize(at / 4, 0);
            pending.meta.extend_from_slice(meta);
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.arena,
                offset: at as u64,
                size: std::num::NonZeroU64::new(bytes as u64),
            })
        } else {
            own = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("meta"),
                    contents: bytemuck_u32(meta),
                    usage: wgpu::BufferUsages::STORAGE,
                });
            own.as_entire_binding()
        };
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: meta_binding,
        }];
        for (i, b) in bufs.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.raw().as_entire_binding(),
            });
        }
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(k.entry),
            layout: &bgl,
            entries: &entries,
        });
        let (x, y) = if groups <= MAX_GROUPS {
            (groups, 1)
        } else {
            (MAX_GROUPS, groups.div_ceil(MAX_GROUPS))
        };
        let enc = pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        pending.dispatches += 1;
        if pending.dispatches >= FLUSH_EVERY {
            self.submit(&mut pending);
        }
    }

    fn submit(&self, pending: &mut Pending) -> Option<wgpu::SubmissionIndex> {
        pending.dispatches = 0;
        if !pending.meta.is_empty() {
            self.queue
                .write_buffer(&self.arena, 0, bytemuck_u32(&pending.meta));
            pending.meta.clear();
        }
        let enc = pending.encoder.take()?;
        Some(self.queue.submit([enc.finish()]))
    }

    /// Submits recorded work and waits until the device has finished it.
    pub(crate) fn synchronize(&self) -> Result<()> {
        let idx = self.submit(&mut self.pending.lock());
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: idx,
                timeout: None,
            })
            .map_err(|e| self.failure("synchronize", e))?;
        self.check_error("synchronize")
    }

    /// A new buffer holding `words` (uploads never reuse a pooled buffer: a queued write would
    /// land before commands already recorded against the old contents).
    pub(crate) fn upload(self: &Arc<Self>, words: &[u32]) -> GpuBuf {
        let contents = if words.is_empty() { &[0u32][..] } else { words };
        let buf = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("upload"),
                contents: bytemuck_u32(contents),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            });
        GpuBuf::new(self.clone(), buf, words.len())
    }

    /// A buffer of `len` 4-byte elements with undefined contents (every kernel writes all of
    /// its output), from the pool when one fits.
    pub(crate) fn alloc(self: &Arc<Self>, len: usize) -> Result<GpuBuf> {
        let bytes = Pool::class(len);
        let max = self.device.limits().max_storage_buffer_binding_size;
        if bytes > max {
            bail!(
                "wgpu",
                "a buffer of {len} elements ({bytes} bytes) exceeds wgpu:{}'s binding limit of {max} bytes",
                self.index
            );
        }
        let reused = self.pool.lock().take(bytes);
        if let Some(buf) = reused {
            return Ok(GpuBuf::new(self.clone(), buf, len));
        }
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(GpuBuf::new(self.clone(), buf, len))
    }

    /// Records a device-side copy of `len` elements.
    pub(crate) fn copy(
        &self,
        src: &GpuBuf,
        src_off: usize,
        dst: &GpuBuf,
        dst_off: usize,
        len: usize,
    ) {
        if len == 0 {
            return;
        }
        let mut pending = self.pending.lock();
        let enc = pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        enc.copy_buffer_to_buffer(
            src.raw(),
            src_off as u64 * 4,
            dst.raw(),
            dst_off as u64 * 4,
            len as u64 * 4,
        );
        pending.dispatches += 1;
    }

    /// Copies `len` elements starting at element `offset` back to the host.
    pub(crate) fn read(&self, buf: &GpuBuf, offset: usize, len: usize) -> Result<Vec<u32>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let bytes = len as u64 * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let idx = {
            let mut pending = self.pending.lock();
            let enc = pending.encoder.get_or_insert_with(|| {
                self.device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            enc.copy_buffer_to_buffer(buf.raw(), offset as u64 * 4, &staging, 0, bytes);
            self.submit(&mut pending)
        };
        let done = Arc::new(Mutex::new(None));
        let flag = done.clone();
        staging.map_async(wgpu::MapMode::Read, .., move |r| *flag.lock() = Some(r));
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: idx,
                timeout: None,
            })
            .map_err(|e| self.failure("to_vec", e))?;
        self.check_error("to_vec")?;
        // Another thread polling at the same moment may be the one that runs our callback:
        // wait for it rather than for the queue.
        let start = std::time::Instant::now();
        while done.lock().is_none() && start.elapsed() < std::time::Duration::from_secs(60) {
            let _ = self.device.poll(wgpu::PollType::Poll);
            std::thread::yield_now();
        }
        match done.lock().take() {
            Some(Ok(())) => {}
            Some(Err(e)) => bail!(
                "to_vec",
                "wgpu:{}: reading a buffer back failed: {e}",
                self.index
            ),
            None => bail!("to_vec", "wgpu:{}: a readback did not complete", self.index),
        }
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| op_err("to_vec", format!("wgpu:{}: {e}", self.index)))?;
        let out = view
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        drop(view);
        staging.unmap();
        Ok(out)
    }
}

/// `u32`s as bytes (little-endian hosts only, as every wgpu target is).
fn bytemuck_u32(v: &[u32]) -> &[u8] {
    // SAFETY: u32 has no padding and any byte pattern is a valid u8; the length is exact.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}
