//! The wgpu backend: Vulkan, Metal and DX12 through one API (and lavapipe, Mesa's Vulkan on the
//! CPU, in CI). Storage is 4-byte words: f32 as is, u32 as is, u8 widened to u32, i64 narrowed
//! to i32 (indices; larger values are an error). WGSL has no f64.
//!
//! Each kernel family is a Rust file with the launch glue beside a WGSL file of the same stem.

mod buffer;
mod context;
pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod matmul;
pub(crate) mod optim;
pub(crate) mod pool;
pub(crate) mod random;
pub(crate) mod reduce;
pub(crate) mod softmax;

pub(crate) use buffer::GpuBuf;
pub(crate) use context::{Ctx, Kernel, WG};

use crate::bail;
use crate::error::{op_err, Result};
use crate::tensor::{CpuStorage, DType, Device, DeviceInfo, Layout, Storage, Tensor};
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

/// The dtypes wgpu storage holds.
pub(crate) fn check_dtype(op: &'static str, dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::U32 | DType::U8 | DType::I64 => Ok(()),
        other => bail!(
            op,
            "wgpu holds f32, u32, u8 and i64 (as i32) tensors, found {other}; convert with to_dtype(F32) first"
        ),
    }
}

/// Host storage to device words.
pub(crate) fn upload(ctx: &Arc<Ctx>, data: &CpuStorage) -> Result<GpuBuf> {
    let words: Vec<u32> = match data {
        CpuStorage::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        CpuStorage::U32(v) => v.clone(),
        CpuStorage::U8(v) => v.iter().map(|&x| x as u32).collect(),
        CpuStorage::I64(v) => {
            if let Some(bad) = v.iter().find(|&&x| i32::try_from(x).is_err()) {
                bail!(
                    "to",
                    "i64 tensors live on wgpu as i32; the value {bad} does not fit"
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
        other => unreachable!("wgpu storage of {other}"),
    }
}

/// A contiguous host copy of a wgpu tensor (its view's elements in logical order).
pub(crate) fn to_host(t: &Tensor) -> Result<CpuStorage> {
    let c = elementwise::contiguous(t)?;
    let buf = buf_of(&c);
    let words = buf.ctx().read(&buf, c.layout().offset(), c.numel())?;
    Ok(download(words, t.dtype()))
}

/// Wraps a fresh device buffer as a contiguous tensor's storage.
pub(crate) fn wrap(buf: GpuBuf, dtype: DType, shape: &[usize]) -> (Arc<Storage>, Layout) {
    (
        Arc::new(Storage::wgpu(buf, dtype)),
        Layout::contiguous(shape),
    )
}

/// The context of a tensor's device (the caller checked it is on wgpu).
pub(crate) fn ctx_of(t: &Tensor) -> Arc<Ctx> {
    buf_of(t).ctx().clone()
}

/// The buffer behind a wgpu tensor.
pub(crate) fn buf_of(t: &Tensor) -> Arc<GpuBuf> {
    t.storage().gpu().expect("a wgpu tensor")
}

/// Metadata words describing a strided view: offset, then per dim its size and stride.
pub(crate) fn view_meta(l: &Layout, rank: usize, meta: &mut Vec<u32>) -> Result<()> {
    let fits =
        |v: usize| u32::try_from(v).map_err(|_| op_err("wgpu", format!("index {v} exceeds u32")));
    meta.push(fits(l.offset())?);
    // Left-padded with size-1 dims so every view in one launch has the same rank.
    let pad = rank - l.shape().len();
    for _ in 0..pad {
        meta.extend([1, 0]);
    }
    for (&d, &s) in l.shape().iter().zip(l.strides()) {
        meta.push(fits(d)?);
        meta.push(fits(s)?);
    }
    Ok(())
}

/// Workgroups for one thread per element.
pub(crate) fn groups(n: usize) -> Result<u32> {
    u32::try_from(n.div_ceil(WG as usize))
        .map_err(|_| op_err("wgpu", format!("{n} elements exceed one launch")))
}

/// `n` as a metadata word.
pub(crate) fn word(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| op_err("wgpu", format!("size {n} exceeds u32")))
}

#[cfg(test)]
mod tests {
    /// Every kernel file parses and validates as WGSL, with or without an adapter.
    #[test]
    fn every_kernel_file_is_valid_wgsl() {
        use wgpu::naga;
        for (name, src) in [
            ("conv", super::conv::SRC),
            ("elementwise", super::elementwise::SRC),
            ("matmul", super::matmul::SRC),
            ("optim", super::optim::SRC),
            ("pool", super::pool::SRC),
            ("random", super::random::SRC),
            ("reduce", super::reduce::SRC),
            ("softmax", super::softmax::SRC),
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
