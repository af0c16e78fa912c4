//! Where a tensor's memory lives. Only the CPU exists today; the enum is the seam where wgpu and
//! CUDA backends plug in without changing the public API.

use std::fmt;

/// A compute device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory, kernels on the CPU (multi-threaded with the `threads` feature).
    #[default]
    Cpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
        }
    }
}
