//! Parameter initialization, matching PyTorch's defaults.

use crate::error::Result;
use crate::tensor::{DType, Tensor};

/// The bound PyTorch uses for layer weights: `kaiming_uniform_(a=√5)` reduces to U(±1/√fan_in).
///
/// ```
/// assert_eq!(fukai::nn::uniform_bound(4), 0.5);
/// assert_eq!(fukai::nn::uniform_bound(0), 0.0);
/// ```
pub fn uniform_bound(fan_in: usize) -> f64 {
    if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f64).sqrt()
    }
}

/// A trainable f32 tensor drawn from U(-bound, bound) with the default generator.
///
/// ```
/// let w = fukai::nn::kaiming_uniform(&[8, 16], 16)?;
/// assert!(w.requires_grad());
/// assert!(w.to_vec::<f32>()?.iter().all(|v| v.abs() <= 0.25));
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn kaiming_uniform(shape: &[usize], fan_in: usize) -> Result<Tensor> {
    let b = uniform_bound(fan_in);
    Tensor::uniform(shape, -b, b, DType::F32)?.with_grad()
}
