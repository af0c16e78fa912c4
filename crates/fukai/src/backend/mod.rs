//! Device backends below the op level. Ops keep their checks, shapes and gradients in `ops/`;
//! only the kernel call branches on the storage, into `gpu` (the launch glue both GPU backends
//! share), which hands launches to the backend of the tensor's device.

#[cfg(feature = "cuda")]
pub(crate) mod cuda;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) mod gpu;
#[cfg(feature = "wgpu")]
pub(crate) mod wgpu;
