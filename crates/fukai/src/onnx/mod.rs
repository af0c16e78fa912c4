//! ONNX import: load a `.onnx` model and run its graph eagerly with fukai's tensor ops, so it
//! runs on any device fukai has and gradients flow through it to the initializers.
//!
//! ```no_run
//! use fukai::onnx::Model;
//! use fukai::{DType, Tensor};
//! let model = Model::load("model.onnx")?;
//! let x = Tensor::randn(&[1, 3, 224, 224], DType::F32)?;
//! let outputs = model.run(&[(model.inputs()[0].as_str(), x)])?;
//! for (name, y) in &outputs {
//!     println!("{name}: {:?}", y.shape());
//! }
//! // The initializers are the model's parameters: fine-tune them like any other.
//! for (_, p) in model.parameters() {
//!     p.set_requires_grad(true)?;
//! }
//! # Ok::<(), fukai::Error>(())
//! ```
//!
//! Operators run as fukai ops where one exists (differentiable); a few with no fukai
//! counterpart (Erf, Floor, Sign, the logical ops, ...) are computed on the host and cut the
//! gradient. Anything not supported (an operator, an attribute value, a data type) is an error
//! naming the node, its operator and the opset.

mod attr;
mod control;
mod errors;
pub mod export;
mod info;
mod model;
mod ops;
mod optimize;
pub mod proto;
mod tensor;

pub use info::{Dim, Summary, ValueSummary};
pub use model::Model;
pub use tensor::{dtype_from_onnx, load_tensor, tensor_from_proto, tensor_to_proto};
