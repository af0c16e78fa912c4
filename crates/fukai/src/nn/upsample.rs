//! The resizing layer: [`Tensor::interpolate`] / [`Tensor::upsample`] as a [`Module`].

use super::Module;
use crate::error::Result;
use crate::ops::Interpolation;
use crate::tensor::Tensor;

/// What an [`Upsample`] resizes to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Scale(Vec<usize>),
    Size(Vec<usize>),
}

/// Resizes the spatial dims of `[N, C, L]`, `[N, C, H, W]` or `[N, C, D, H, W]` by integer
/// factors or to a fixed size (PyTorch's `nn.Upsample`); no parameters.
///
/// ```
/// use fukai::nn::{Module, Upsample};
/// use fukai::{DType, Interpolation, Tensor};
/// let up = Upsample::new(&[2, 2], Interpolation::Linear { align_corners: false });
/// assert_eq!(up.forward(&Tensor::randn(&[1, 3, 4, 5], DType::F32)?)?.shape(), &[1, 3, 8, 10]);
/// let fixed = Upsample::to_size(&[7], Interpolation::Nearest);
/// assert_eq!(fixed.forward(&Tensor::randn(&[2, 3, 4], DType::F32)?)?.shape(), &[2, 3, 7]);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Upsample {
    target: Target,
    mode: Interpolation,
}

impl Upsample {
    /// Scales each spatial dim by the matching entry of `scale`.
    pub fn new(scale: &[usize], mode: Interpolation) -> Self {
        Upsample {
            target: Target::Scale(scale.to_vec()),
            mode,
        }
    }
    /// Resizes the spatial dims to `size`.
    pub fn to_size(size: &[usize], mode: Interpolation) -> Self {
        Upsample {
            target: Target::Size(size.to_vec()),
            mode,
        }
    }
}

impl Module for Upsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.target {
            Target::Scale(s) => x.upsample(s, self.mode),
            Target::Size(s) => x.interpolate(s, self.mode),
        }
    }
    fn describe(&self) -> String {
        match &self.target {
            Target::Scale(s) => format!("Upsample(scale {s:?}, {:?})", self.mode),
            Target::Size(s) => format!("Upsample(size {s:?}, {:?})", self.mode),
        }
    }
}
