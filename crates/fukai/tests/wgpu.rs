//! Every wgpu kernel against the CPU (the shared suite in `gpu_suite/`). Runs on lavapipe in
//! CI; skips with a printed reason only where wgpu finds no adapter at all (set
//! FUKAI_REQUIRE_WGPU=1 to make that a failure, as CI does).
#![cfg(feature = "wgpu")]
// Inputs are listed as `&[a.clone(), ..]` alike whether one or several.
#![allow(clippy::cloned_ref_to_slice_refs)]

/// The backend the suite runs on.
mod backend {
    use fukai::Device;
    pub const NAME: &str = "wgpu";
    pub const REQUIRE: &str = "FUKAI_REQUIRE_WGPU";
    pub const MISSING: &str =
        "wgpu found no adapter on this machine (is mesa-vulkan-drivers installed?)";
    pub fn is(d: Device) -> bool {
        matches!(d, Device::Wgpu(_))
    }
    pub fn device(n: u16) -> Device {
        Device::Wgpu(n)
    }
}

#[path = "gpu_suite/mod.rs"]
mod suite;
