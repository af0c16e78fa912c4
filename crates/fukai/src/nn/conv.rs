//! Convolution layers (PyTorch's Conv1d / Conv2d parameter layout and initialization).

use super::{init, join, Module, TensorKind};
use crate::error::Result;
use crate::tensor::Tensor;

/// 2-D convolution over `[N, C, H, W]`; weight `[out, in/groups, kh, kw]`.
///
/// ```
/// use fukai::nn::{Conv2d, Module};
/// use fukai::{DType, Tensor};
/// // A 3x3 box filter with zero padding 1: each output sums the inputs it covers.
/// let conv = Conv2d::new(1, 1, 3, 1)?;
/// conv.weight.copy_from(&Tensor::ones(&[1, 1, 3, 3], DType::F32)?)?;
/// conv.bias.as_ref().unwrap().copy_from(&Tensor::zeros(&[1], DType::F32)?)?;
/// let y = conv.forward(&Tensor::ones(&[1, 1, 4, 4], DType::F32)?)?;
/// assert_eq!(y.shape(), &[1, 1, 4, 4]);
/// let v = y.to_vec::<f32>()?;
/// assert_eq!((v[0], v[1], v[5]), (4.0, 6.0, 9.0));
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Conv2d {
    /// `[out, in/groups, kh, kw]`.
    pub weight: Tensor,
    /// `[out]`, if any.
    pub bias: Option<Tensor>,
    /// Stride (h, w).
    pub stride: [usize; 2],
    /// Zero padding (h, w).
    pub padding: [usize; 2],
    /// Dilation (h, w).
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
}

impl Conv2d {
    /// A square-kernel convolution with stride 1, no dilation, one group.
    pub fn new(inputs: usize, outputs: usize, kernel: usize, padding: usize) -> Result<Self> {
        Conv2d::with_options(
            inputs,
            outputs,
            [kernel, kernel],
            [1, 1],
            [padding, padding],
            [1, 1],
            1,
            true,
        )
    }
    /// Every option, as in `torch.nn.Conv2d`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_options(
        inputs: usize,
        outputs: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
        bias: bool,
    ) -> Result<Self> {
        let groups = groups.max(1);
        let fan_in = inputs / groups * kernel[0] * kernel[1];
        Ok(Conv2d {
            weight: init::kaiming_uniform(
                &[outputs, inputs / groups, kernel[0], kernel[1]],
                fan_in,
            )?,
            bias: if bias {
                Some(init::kaiming_uniform(&[outputs], fan_in)?)
            } else {
                None
            },
            stride,
            padding,
            dilation,
            groups,
        })
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        f(&join(prefix, "weight"), &self.weight, TensorKind::Parameter);
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b, TensorKind::Parameter);
        }
    }
    fn describe(&self) -> String {
        let s = self.weight.shape();
        format!(
            "Conv2d({} -> {}, {}x{})",
            s[1] * self.groups,
            s[0],
            s[2],
            s[3]
        )
    }
}

/// 1-D convolution over `[N, C, L]`; weight `[out, in/groups, k]`.
///
/// ```
/// use fukai::nn::{Conv1d, Module};
/// use fukai::{DType, Tensor};
/// let conv = Conv1d::new(2, 3, 3, 0)?;
/// assert_eq!(conv.weight.shape(), &[3, 2, 3]);
/// let y = conv.forward(&Tensor::randn(&[4, 2, 10], DType::F32)?)?;
/// assert_eq!(y.shape(), &[4, 3, 8]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Conv1d {
    /// `[out, in/groups, k]`.
    pub weight: Tensor,
    /// `[out]`, if any.
    pub bias: Option<Tensor>,
    /// Stride.
    pub stride: usize,
    /// Zero padding.
    pub padding: usize,
    /// Dilation.
    pub dilation: usize,
    /// Channel groups.
    pub groups: usize,
}

impl Conv1d {
    /// A convolution with stride 1, no dilation, one group, with bias.
    pub fn new(inputs: usize, outputs: usize, kernel: usize, padding: usize) -> Result<Self> {
        let fan_in = inputs * kernel;
        Ok(Conv1d {
            weight: init::kaiming_uniform(&[outputs, inputs, kernel], fan_in)?,
            bias: Some(init::kaiming_uniform(&[outputs], fan_in)?),
            stride: 1,
            padding,
            dilation: 1,
            groups: 1,
        })
    }
}

impl Module for Conv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv1d(
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        f(&join(prefix, "weight"), &self.weight, TensorKind::Parameter);
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b, TensorKind::Parameter);
        }
    }
    fn describe(&self) -> String {
        let s = self.weight.shape();
        format!("Conv1d({} -> {}, {})", s[1] * self.groups, s[0], s[2])
    }
}
