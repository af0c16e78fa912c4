//! Device backends below the op level. Ops keep their checks, shapes and gradients in `ops/`;
//! only the kernel call branches on the storage, into the backend of the tensor's device.

#[cfg(feature = "wgpu")]
pub(crate) mod wgpu;
