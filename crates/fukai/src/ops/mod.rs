//! Operations on tensors. Each file holds one family: its kernels, its public methods and the
//! gradient of each op, side by side.

mod attention;
mod attention_kernel;
mod batch_norm;
pub mod bf16;
mod binary;
mod broadcast;
mod compare;
mod conv;
mod conv_kernel;
mod conv_phase;
mod dropout;
pub(crate) mod fastmath;
pub(crate) mod float;
mod index;
mod lanes;
mod layer_norm;
mod linear;
mod linear_panels;
mod linear_rows;
mod linear_transposed;
mod lstm_cell;
mod matmul;
mod pool;
mod recurrence;
mod reduce;
mod row_max;
mod softmax;
mod transpose;
mod unary;
mod upsample;
mod view;
mod winograd;
#[cfg(target_arch = "x86_64")]
mod x86_lanes;

pub use attention::{attention, AttnInput, AttnOptions};
pub use batch_norm::BatchStats;
pub use binary::Binary;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) use conv_kernel::ConvGeom;
pub use recurrence::{recurrence, CellKind};
pub use unary::Unary;
pub(crate) use unary::{map, map2};
pub use upsample::Interpolation;
pub(crate) use winograd::{winograd_enabled, with_winograd_tile, without_winograd};
