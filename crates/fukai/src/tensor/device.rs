//! Where a tensor's memory lives. Every variant exists whatever the cargo features, so models and
//! checkpoints never change with the build; asking for a device this build or machine lacks is
//! an error that lists what it has.

use crate::bail;
use crate::error::Result;
use std::fmt;

/// A compute device.
///
/// ```
/// use fukai::{Device, Tensor};
/// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2])?;
/// assert_eq!(x.device(), Device::Cpu);
/// // `best()` is a GPU when this build and machine have one, else the CPU.
/// let y = x.to(Device::best())?;
/// assert_eq!(y.to(Device::Cpu)?.to_vec::<f32>()?, [1.0, 2.0]);
/// assert_eq!("wgpu:1".parse::<Device>()?, Device::Wgpu(1));
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Device {
    /// Host memory, kernels on the CPU (multi-threaded with the `threads` feature).
    #[default]
    Cpu,
    /// The n-th adapter wgpu finds (Vulkan, Metal, DX12); needs the `wgpu` feature.
    Wgpu(u16),
    /// The n-th NVIDIA GPU through CUDA; needs the `cuda` feature.
    Cuda(u16),
}

impl Device {
    /// The first GPU this build and machine have (CUDA devices, then wgpu adapters that are
    /// real GPUs), else the CPU. A software rasterizer (lavapipe) is not preferred over the CPU.
    pub fn best() -> Device {
        devices()
            .into_iter()
            .find(|d| d.device != Device::Cpu && !d.software)
            .map_or(Device::Cpu, |d| d.device)
    }
    /// True for the CPU.
    pub fn is_cpu(self) -> bool {
        self == Device::Cpu
    }
    /// Waits until the device has finished all work queued so far (ops on GPUs return before
    /// their kernels run), and reports any error the device raised. For timing; reading a
    /// tensor back synchronizes by itself.
    pub fn synchronize(self) -> Result<()> {
        match self {
            #[cfg(feature = "wgpu")]
            Device::Wgpu(n) => crate::backend::wgpu::synchronize(n),
            #[cfg(feature = "cuda")]
            Device::Cuda(n) => crate::backend::cuda::synchronize(n),
            other => other.check(),
        }
    }
    /// Memory held on the device: bytes in live tensors, bytes cached for reuse, and the
    /// peak of live bytes. Zeros for the CPU.
    pub fn memory_stats(self) -> Result<MemoryStats> {
        match self {
            #[cfg(feature = "wgpu")]
            Device::Wgpu(n) => {
                let (live, cached, peak) = crate::backend::wgpu::memory_stats(n)?;
                Ok(MemoryStats { live, cached, peak })
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(n) => {
                let (live, cached, peak) = crate::backend::cuda::memory_stats(n)?;
                Ok(MemoryStats { live, cached, peak })
            }
            other => other.check().map(|_| MemoryStats::default()),
        }
    }
    /// Frees the device memory cached for reuse (not the memory of live tensors).
    pub fn empty_cache(self) -> Result<()> {
        match self {
            #[cfg(feature = "wgpu")]
            Device::Wgpu(n) => crate::backend::wgpu::empty_cache(n),
            #[cfg(feature = "cuda")]
            Device::Cuda(n) => crate::backend::cuda::empty_cache(n),
            other => other.check(),
        }
    }
    /// Checks that this device exists here: an error naming what this build and machine have
    /// otherwise.
    pub fn check(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Wgpu(n) => {
                #[cfg(feature = "wgpu")]
                {
                    crate::backend::wgpu::context(n).map(|_| ())
                }
                #[cfg(not(feature = "wgpu"))]
                {
                    bail!(
                        "device",
                        "wgpu:{n} asked for, but this build of fukai has no `wgpu` feature"
                    )
                }
            }
            Device::Cuda(n) => {
                #[cfg(feature = "cuda")]
                {
                    crate::backend::cuda::context(n).map(|_| ())
                }
                #[cfg(not(feature = "cuda"))]
                {
                    bail!(
                        "device",
                        "cuda:{n} asked for, but this build of fukai has no `cuda` feature; devices here: {}",
                        list_names()
                    )
                }
            }
        }
    }
}

/// Device memory in bytes (see [`Device::memory_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Held by live tensors.
    pub live: u64,
    /// Freed by tensors and kept for reuse.
    pub cached: u64,
    /// The most `live` has been.
    pub peak: u64,
}

/// One device this build and machine can run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device to pass to `Tensor::to` and the `*_on` constructors.
    pub device: Device,
    /// The adapter's name and driver, e.g. "NVIDIA H200 (Vulkan, NVIDIA 580.159)".
    pub name: String,
    /// True for software rasterizers such as lavapipe (llvmpipe): correct, not fast.
    pub software: bool,
}

/// Every device this build and machine have, the CPU first.
pub fn devices() -> Vec<DeviceInfo> {
    #[allow(unused_mut)]
    let mut out = vec![DeviceInfo {
        device: Device::Cpu,
        name: format!("CPU ({} threads)", crate::parallel::num_threads()),
        software: false,
    }];
    // CUDA first: on an NVIDIA machine it is the faster way to the same GPU.
    #[cfg(feature = "cuda")]
    out.extend(crate::backend::cuda::devices());
    #[cfg(feature = "wgpu")]
    out.extend(crate::backend::wgpu::adapters());
    out
}

/// "cpu, wgpu:0 (llvmpipe …)" for error messages.
pub(crate) fn list_names() -> String {
    devices()
        .iter()
        .map(|d| match d.device {
            Device::Cpu => "cpu".to_string(),
            dev => format!("{dev} ({})", d.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Wgpu(n) => write!(f, "wgpu:{n}"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = crate::Error;
    /// `cpu`, `wgpu`, `wgpu:N`, `cuda`, `cuda:N`, or `auto` ([`Device::best`]).
    fn from_str(s: &str) -> Result<Device> {
        let (kind, index) = match s.split_once(':') {
            Some((k, i)) => match i.parse::<u16>() {
                Ok(i) => (k, i),
                Err(_) => bail!("device", "bad device index in {s:?}: expected e.g. wgpu:0"),
            },
            None => (s, 0),
        };
        Ok(match kind {
            "cpu" if s == "cpu" => Device::Cpu,
            "auto" if s == "auto" => Device::best(),
            "wgpu" | "gpu" => Device::Wgpu(index),
            "cuda" => Device::Cuda(index),
            _ => bail!(
                "device",
                "unknown device {s:?}: expected cpu, wgpu, wgpu:N, cuda, cuda:N or auto"
            ),
        })
    }
}
