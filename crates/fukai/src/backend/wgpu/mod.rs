//! The wgpu backend: Vulkan, Metal and DX12 through one API (and lavapipe, Mesa's Vulkan on the
//! CPU, in CI). Storage is 4-byte words: f32 as is, u32 as is, u8 widened to u32, i64 narrowed
//! to i32 (indices; larger values are an error). WGSL has no f64.
//!
//! Each kernel family is a WGSL file here; its launch glue, shared with CUDA, is in
//! `backend/gpu/`.

mod buffer;
mod context;

pub(crate) use buffer::GpuBuf;
pub(crate) use context::Ctx;

use crate::bail;
use crate::error::{op_err, Result};
use crate::tensor::{Device, DeviceInfo};
use std::sync::{Arc, OnceLock};

struct Registry {
    adapters: Vec<wgpu::Adapter>,
    contexts: Vec<OnceLock<std::result::Result<Arc<Ctx>, String>>>,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if wgpu::Backends::from_env().is_none() {
            desc.backends = wgpu::Backends::PRIMARY;
        }
        let instance = wgpu::Instance::new(desc);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(desc_backends()));
        // Real GPUs first, so wgpu:0 is the fast one when a machine has both.
        adapters.sort_by_key(|a| match a.get_info().device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        });
        let contexts = adapters.iter().map(|_| OnceLock::new()).collect();
        Registry { adapters, contexts }
    })
}

fn desc_backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY)
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} ({:?}, {} {})",
        info.name, info.backend, info.driver, info.driver_info
    )
    .replace(" )", ")")
}

/// The adapters wgpu finds here, as devices.
pub(crate) fn adapters() -> Vec<DeviceInfo> {
    registry()
        .adapters
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let info = a.get_info();
            DeviceInfo {
                device: Device::Wgpu(i as u16),
                name: describe(&info),
                software: info.device_type == wgpu::DeviceType::Cpu,
            }
        })
        .collect()
}

/// The context of adapter `n`, opening its device on first use.
pub(crate) fn context(n: u16) -> Result<Arc<Ctx>> {
    let r = registry();
    let Some(adapter) = r.adapters.get(n as usize) else {
        bail!(
            "device",
            "wgpu:{n} asked for, but wgpu found {} adapter(s); devices here: {}",
            r.adapters.len(),
            crate::tensor::device_names()
        );
    };
    r.contexts[n as usize]
        .get_or_init(|| {
            pollster::block_on(Ctx::open(n, adapter.clone()))
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| op_err("device", e))
}

/// Memory of a wgpu device: (bytes in live tensors, bytes pooled for reuse, peak live bytes).
pub(crate) fn memory_stats(n: u16) -> Result<(u64, u64, u64)> {
    Ok(context(n)?.pool.lock().stats())
}

/// Frees the pooled buffers of a wgpu device.
pub(crate) fn empty_cache(n: u16) -> Result<()> {
    context(n)?.pool.lock().clear();
    Ok(())
}

/// Waits until device `n` has finished all recorded work; reports its errors.
pub(crate) fn synchronize(n: u16) -> Result<()> {
    context(n)?.synchronize()
}

#[cfg(test)]
mod tests {
    /// Every kernel file parses and validates as WGSL, with or without an adapter.
    #[test]
    fn every_kernel_file_is_valid_wgsl() {
        use crate::backend::gpu;
        use wgpu::naga;
        for (name, src) in [
            ("conv", gpu::conv::SRC.wgsl),
            ("elementwise", gpu::elementwise::SRC.wgsl),
            ("matmul", gpu::matmul::SRC.wgsl),
            ("optim", gpu::optim::SRC.wgsl),
            ("pool", gpu::pool::SRC.wgsl),
            ("random", gpu::random::SRC.wgsl),
            ("reduce", gpu::reduce::SRC.wgsl),
            ("softmax", gpu::softmax::SRC.wgsl),
        ] {
            let full = format!("{}\n{src}", super::context::PRELUDE);
            let module = naga::front::wgsl::parse_str(&full)
                .unwrap_or_else(|e| panic!("{name}.wgsl: {}", e.emit_to_string(&full)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::empty(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}.wgsl: {e:?}"));
        }
    }
}
