//! Every CUDA kernel against the CPU (the suite shared with wgpu, in `gpu_suite/`). Skips
//! with a printed reason where no CUDA device is found (no driver, no GPU); set
//! FUKAI_REQUIRE_CUDA=1 to make that a failure, as the GPU check script does.
#![cfg(feature = "cuda")]
// Inputs are listed as `&[a.clone(), ..]` alike whether one or several.
#![allow(clippy::cloned_ref_to_slice_refs)]

/// The backend the suite runs on.
mod backend {
    use fukai::Device;
    pub const NAME: &str = "cuda";
    pub const REQUIRE: &str = "FUKAI_REQUIRE_CUDA";
    pub const MISSING: &str =
        "no CUDA device on this machine (no NVIDIA driver, or it lists no GPU)";
    pub fn is(d: Device) -> bool {
        matches!(d, Device::Cuda(_))
    }
    pub fn device(n: u16) -> Device {
        Device::Cuda(n)
    }
}

#[path = "gpu_suite/mod.rs"]
mod suite;
