//! fukai (深い, "deep"): a deep-learning framework in Rust.
//!
//! A [`Tensor`] is an n-dimensional array with a runtime [`DType`] and [`Device`], eager
//! define-by-run reverse-mode autodiff, and fast deterministic CPU kernels.
//!
//! ```
//! use fukai::{DType, Tensor};
//! let w = Tensor::randn(&[3, 2], DType::F32)?.with_grad()?;
//! let x = Tensor::ones(&[4, 3], DType::F32)?;
//! let loss = x.matmul(&w)?.relu()?.sum_all()?;
//! loss.backward()?;
//! assert_eq!(w.grad().unwrap().shape(), &[3, 2]);
//! # Ok::<(), fukai::Error>(())
//! ```

#![warn(missing_docs)]

pub mod audio;
pub mod autograd;
mod backend;
pub mod data;
pub mod distributed;
pub mod error;
pub mod io;
pub mod models;
pub mod nn;
pub mod onnx;
pub mod ops;
pub mod optim;
pub mod parallel;
pub mod quant;
pub mod rng;
pub mod run;
pub mod simd;
pub mod tensor;
pub mod testing;
pub mod text;
pub mod train;

pub use autograd::{
    autocast, is_grad_enabled, no_grad, precision, AutocastGuard, NoGradGuard, Precision,
};
pub use error::{Error, Result};
pub use ops::Interpolation;
pub use rng::{manual_seed, Generator};
pub use tensor::{devices, DType, Device, DeviceInfo, Tensor};
