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
    /// Whether the driver library loaded and initialized.
    driver: bool,
    /// (name, compute capability) per device; empty when the driver did not load.
    devices: Vec<(String, (i32, i32))>,
    /// Why the run-time libraries kernels need are missing, when they are.
    missing: Option<String>,
    contexts: Vec<OnceLock<std::result::Result<Arc<Ctx>, String>>>,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let probed = probe();
        let driver = probed.is_some();
        let devices = probed.unwrap_or_default();
        let missing = missing_libraries();
        let contexts = devices.iter().map(|_| OnceLock::new()).collect();
        Registry {
            driver,
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
        if !r.driver {
            bail!(
                "device",
                "cuda:{n} asked for, but no CUDA driver was found here (libcuda.so.1 could not be loaded); devices here: {}",
                crate::tensor::device_names()
            );
        }
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

#[cfg(test)]
mod tests {
    /// Entry points of a WGSL file with their buffer counts (bindings after the metadata).
    fn wgsl_entries(src: &str) -> Vec<(String, usize)> {
        let bindings = src.matches("@binding(").count();
        let mut out: Vec<(String, usize)> = src
            .split("@compute")
            .skip(1)
            .filter_map(|s| {
                let name = s.split("fn ").nth(1)?.split('(').next()?;
                Some((name.trim().to_string(), bindings))
            })
            .collect();
        out.sort();
        out
    }

    /// Entry points of a CUDA file with their buffer counts (arguments after the metadata).
    fn cu_entries(src: &str) -> Vec<(String, usize)> {
        let args = src
            .lines()
            .find_map(|l| l.strip_prefix("#define ARGS "))
            .map(|a| a.split(',').count());
        let mut out: Vec<(String, usize)> = src
            .split("extern \"C\" __global__ void ")
            .skip(1)
            .filter_map(|s| {
                let name = s.split('(').next()?;
                let params = s.split('(').nth(1)?.split(')').next()?;
                let n = if params.trim() == "ARGS" {
                    args?
                } else {
                    params.split(',').count()
                };
                Some((name.trim().to_string(), n))
            })
            .collect();
        out.sort();
        out
    }

    /// Every WGSL kernel has a CUDA port of the same name taking the same buffers, so the
    /// shared launch glue can drive either.
    #[test]
    fn every_wgsl_kernel_has_a_cuda_port() {
        for (name, wgsl, cu) in [
            (
                "conv",
                include_str!("../wgpu/conv.wgsl"),
                include_str!("conv.cu"),
            ),
            (
                "elementwise",
                include_str!("../wgpu/elementwise.wgsl"),
                include_str!("elementwise.cu"),
            ),
            (
                "optim",
                include_str!("../wgpu/optim.wgsl"),
                include_str!("optim.cu"),
            ),
            (
                "pool",
                include_str!("../wgpu/pool.wgsl"),
                include_str!("pool.cu"),
            ),
            (
                "random",
                include_str!("../wgpu/random.wgsl"),
                include_str!("random.cu"),
            ),
            (
                "reduce",
                include_str!("../wgpu/reduce.wgsl"),
                include_str!("reduce.cu"),
            ),
            (
                "softmax",
                include_str!("../wgpu/softmax.wgsl"),
                include_str!("softmax.cu"),
            ),
        ] {
            // WGSL binds the metadata as binding 0 in the prelude, not in the file.
            let w: Vec<_> = wgsl_entries(wgsl)
                .into_iter()
                .map(|(n, b)| (n, b + 1))
                .collect();
            assert_eq!(w, cu_entries(cu), "{name}: entry points and buffer counts");
        }
    }

    /// No unsuffixed float literal slips into a kernel: it would make the arithmetic double.
    #[test]
    fn kernel_float_literals_are_single_precision() {
        for src in [
            super::context::PRELUDE,
            include_str!("conv.cu"),
            include_str!("elementwise.cu"),
            include_str!("optim.cu"),
            include_str!("pool.cu"),
            include_str!("random.cu"),
            include_str!("reduce.cu"),
            include_str!("softmax.cu"),
        ] {
            for line in src.lines().filter(|l| !l.trim_start().starts_with("//")) {
                let b = line.as_bytes();
                for (i, w) in b.windows(3).enumerate() {
                    // A digit, a point, a digit: the literal must end in `f`.
                    if w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit() {
                        let end = b[i + 2..]
                            .iter()
                            .position(|c| !c.is_ascii_digit())
                            .map_or(b.len(), |p| i + 2 + p);
                        assert_eq!(b.get(end), Some(&b'f'), "double literal in: {line}");
                    }
                }
            }
        }
    }
}
