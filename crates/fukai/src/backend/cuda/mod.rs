//! The CUDA backend through cudarc, loading libcuda, libnvrtc and libcublas at run time, so a
//! build with the `cuda` feature runs (and lists no CUDA device) on machines without them.
//!
//! Kernels are the `.cu` files here, one per family, each a port of the WGSL file of the same
//! stem with the same entry points, metadata and buffer order, so the launch glue in
//! `backend/gpu/` serves both. They are compiled with NVRTC for the device's architecture on
//! first use, once per process. GEMMs go to cuBLAS.

mod buffer;
mod context;
pub(crate) mod gemm;

pub(crate) use buffer::CudaBuf;
pub(crate) use context::Ctx;

use crate::bail;
use crate::error::{op_err, Result};
use crate::tensor::{Device, DeviceInfo};
use cudarc::driver::{result, sys, CudaContext};
use std::sync::{Arc, OnceLock};

struct Registry {
    /// (name, compute capability) per device; empty when the driver did not load.
    devices: Vec<(String, (i32, i32))>,
    /// Why the run-time libraries kernels need are missing, when they are.
    missing: Option<String>,
    contexts: Vec<OnceLock<std::result::Result<Arc<Ctx>, String>>>,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let devices = probe().unwrap_or_default();
        let missing = missing_libraries();
        let contexts = devices.iter().map(|_| OnceLock::new()).collect();
        Registry {
            devices,
            missing,
            contexts,
        }
    })
}

/// The devices the driver reports, or `None` when there is no driver (no error: a machine
/// without NVIDIA hardware is the common case).
fn probe() -> Option<Vec<(String, (i32, i32))>> {
    // SAFETY: only asks whether the shared library can be opened.
    if !unsafe { sys::is_culib_present() } {
        return None;
    }
    result::init().ok()?;
    let count = result::device::get_count().ok()?;
    let mut out = Vec::new();
    for i in 0..count {
        let dev = result::device::get(i).ok()?;
        let name = result::device::get_name(dev).unwrap_or_else(|_| format!("CUDA device {i}"));
        let attr = |a| unsafe { result::device::get_attribute(dev, a) }.unwrap_or(0);
        let cc = (
            attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
            attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
        );
        out.push((name, cc));
    }
    Some(out)
}

fn missing_libraries() -> Option<String> {
    // SAFETY: only asks whether the shared libraries can be opened.
    let (nvrtc, cublas) = unsafe {
        (
            cudarc::nvrtc::sys::is_culib_present(),
            cudarc::cublas::sys::is_culib_present(),
        )
    };
    let mut miss = Vec::new();
    if !nvrtc {
        miss.push("libnvrtc (libnvrtc.so.13)");
    }
    if !cublas {
        miss.push("libcublas (libcublas.so.13)");
    }
    (!miss.is_empty()).then(|| {
        format!(
            "the CUDA driver loaded but {} did not; add their folder (e.g. /usr/local/cuda/lib64, \
             or site-packages/nvidia/cu13/lib) to LD_LIBRARY_PATH",
            miss.join(" and ")
        )
    })
}

/// The CUDA devices here, as devices (none without a driver).
pub(crate) fn devices() -> Vec<DeviceInfo> {
    registry()
        .devices
        .iter()
        .enumerate()
        .map(|(i, (name, (major, minor)))| DeviceInfo {
            device: Device::Cuda(i as u16),
            name: format!("{name} (CUDA, sm_{major}{minor})"),
            software: false,
        })
        .collect()
}

/// The context of device `n`, created on first use.
pub(crate) fn context(n: u16) -> Result<Arc<Ctx>> {
    let r = registry();
    let Some((name, cc)) = r.devices.get(n as usize) else {
        bail!(
            "device",
            "cuda:{n} asked for, but the CUDA driver reports {} device(s); devices here: {}",
            r.devices.len(),
            crate::tensor::device_names()
        );
    };
    if let Some(why) = &r.missing {
        bail!("device", "cuda:{n}: {why}");
    }
    r.contexts[n as usize]
        .get_or_init(|| {
            CudaContext::new(n as usize)
                .map_err(|e| e.to_string())
                .and_then(|cu| Ctx::open(n, name.clone(), *cc, cu).map_err(|e| e.to_string()))
                .map(Arc::new)
        })
        .clone()
        .map_err(|e| op_err("device", format!("cuda:{n}: {e}")))
}

/// Memory of a CUDA device: (bytes in live tensors, bytes pooled for reuse, peak live bytes).
pub(crate) fn memory_stats(n: u16) -> Result<(u64, u64, u64)> {
    Ok(context(n)?.pool.lock().stats())
}

/// Frees the pooled buffers of a CUDA device.
pub(crate) fn empty_cache(n: u16) -> Result<()> {
    context(n)?.empty_cache()
}

/// Waits until device `n` has finished all queued work; reports its errors.
pub(crate) fn synchronize(n: u16) -> Result<()> {
    context(n)?.synchronize()
}
