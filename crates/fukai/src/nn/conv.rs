//! Convolution layers (PyTorch's Conv1d / Conv2d / Conv3d / ConvTranspose2d / ConvTranspose3d
//! parameter layout and initialization).

use super::{init, join, Module, TensorKind};
use crate::error::Result;
use crate::onnx::export::{layers as ox, Graph, Value};
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
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        ox::conv2d(
            g,
            prefix,
            x,
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
    }
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
        visit_weight_bias(prefix, &self.weight, self.bias.as_ref(), f);
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
        visit_weight_bias(prefix, &self.weight, self.bias.as_ref(), f);
    }
    fn describe(&self) -> String {
        let s = self.weight.shape();
        format!("Conv1d({} -> {}, {})", s[1] * self.groups, s[0], s[2])
    }
}

/// A trainable weight of `shape` and, if asked, a bias of `[outputs]`, both U(±1/√fan_in) as
/// PyTorch initializes its convolutions.
fn weight_and_bias(
    shape: &[usize],
    outputs: usize,
    fan_in: usize,
    bias: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let weight = init::kaiming_uniform(shape, fan_in)?;
    let bias = if bias {
        Some(init::kaiming_uniform(&[outputs], fan_in)?)
    } else {
        None
    };
    Ok((weight, bias))
}

/// Visits `weight` and `bias` under PyTorch's names.
fn visit_weight_bias(
    prefix: &str,
    weight: &Tensor,
    bias: Option<&Tensor>,
    f: &mut dyn FnMut(&str, &Tensor, TensorKind),
) {
    f(&join(prefix, "weight"), weight, TensorKind::Parameter);
    if let Some(b) = bias {
        f(&join(prefix, "bias"), b, TensorKind::Parameter);
    }
}

/// `[a, b, c]` as `"axbxc"`.
fn kernel_text(k: &[usize]) -> String {
    k.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// 3-D convolution over `[N, C, D, H, W]`; weight `[out, in/groups, kd, kh, kw]`.
///
/// ```
/// use fukai::nn::{Conv3d, Module};
/// use fukai::{DType, Tensor};
/// let conv = Conv3d::new(2, 4, 3, 1)?;
/// assert_eq!(conv.weight.shape(), &[4, 2, 3, 3, 3]);
/// let y = conv.forward(&Tensor::randn(&[1, 2, 5, 6, 7], DType::F32)?)?;
/// assert_eq!(y.shape(), &[1, 4, 5, 6, 7]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Conv3d {
    /// `[out, in/groups, kd, kh, kw]`.
    pub weight: Tensor,
    /// `[out]`, if any.
    pub bias: Option<Tensor>,
    /// Stride (d, h, w).
    pub stride: [usize; 3],
    /// Zero padding (d, h, w).
    pub padding: [usize; 3],
    /// Dilation (d, h, w).
    pub dilation: [usize; 3],
    /// Channel groups.
    pub groups: usize,
}

impl Conv3d {
    /// A cubic-kernel convolution with stride 1, no dilation, one group, with bias.
    pub fn new(inputs: usize, outputs: usize, kernel: usize, padding: usize) -> Result<Self> {
        Conv3d::with_options(
            inputs,
            outputs,
            [kernel; 3],
            [1; 3],
            [padding; 3],
            [1; 3],
            1,
            true,
        )
    }
    /// Every option, as in `torch.nn.Conv3d`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_options(
        inputs: usize,
        outputs: usize,
        kernel: [usize; 3],
        stride: [usize; 3],
        padding: [usize; 3],
        dilation: [usize; 3],
        groups: usize,
        bias: bool,
    ) -> Result<Self> {
        let groups = groups.max(1);
        let shape = [outputs, inputs / groups, kernel[0], kernel[1], kernel[2]];
        let fan_in = shape[1..].iter().product();
        let (weight, bias) = weight_and_bias(&shape, outputs, fan_in, bias)?;
        Ok(Conv3d {
            weight,
            bias,
            stride,
            padding,
            dilation,
            groups,
        })
    }
}

impl Module for Conv3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv3d(
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        visit_weight_bias(prefix, &self.weight, self.bias.as_ref(), f);
    }
    fn describe(&self) -> String {
        let s = self.weight.shape();
        format!(
            "Conv3d({} -> {}, {})",
            s[1] * self.groups,
            s[0],
            kernel_text(&s[2..])
        )
    }
}

/// 2-D transposed convolution over `[N, C, H, W]` (PyTorch's `ConvTranspose2d`); weight
/// `[in, out/groups, kh, kw]`.
///
/// ```
/// use fukai::nn::{ConvTranspose2d, Module};
/// use fukai::{DType, Tensor};
/// // Kernel 2, stride 2: doubles the height and width.
/// let up = ConvTranspose2d::new(8, 4, 2, 2, 0)?;
/// assert_eq!(up.weight.shape(), &[8, 4, 2, 2]);
/// let y = up.forward(&Tensor::randn(&[1, 8, 5, 6], DType::F32)?)?;
/// assert_eq!(y.shape(), &[1, 4, 10, 12]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct ConvTranspose2d {
    /// `[in, out/groups, kh, kw]`.
    pub weight: Tensor,
    /// `[out]`, if any.
    pub bias: Option<Tensor>,
    /// Stride (h, w).
    pub stride: [usize; 2],
    /// Padding removed from each side of the output (h, w).
    pub padding: [usize; 2],
    /// Extra size added to one side of the output (h, w), to pick among the sizes a strided
    /// convolution maps to the same input size.
    pub output_padding: [usize; 2],
    /// Dilation (h, w).
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
}

impl ConvTranspose2d {
    /// A square-kernel transposed convolution with no output padding or dilation, one group,
    /// with bias.
    pub fn new(
        inputs: usize,
        outputs: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        ConvTranspose2d::with_options(
            inputs,
            outputs,
            [kernel; 2],
            [stride; 2],
            [padding; 2],
            [0; 2],
            [1; 2],
            1,
            true,
        )
    }
    /// Every option, as in `torch.nn.ConvTranspose2d`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_options(
        inputs: usize,
        outputs: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        output_padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
        bias: bool,
    ) -> Result<Self> {
        let groups = groups.max(1);
        let shape = [inputs, outputs / groups, kernel[0], kernel[1]];
        // PyTorch takes fan_in from the weight's second dim, here the outputs per group.
        let fan_in = shape[1..].iter().product();
        let (weight, bias) = weight_and_bias(&shape, outputs, fan_in, bias)?;
        Ok(ConvTranspose2d {
            weight,
            bias,
            stride,
            padding,
            output_padding,
            dilation,
            groups,
        })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv_transpose2d(
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            self.output_padding,
            self.dilation,
            self.groups,
        )
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        visit_weight_bias(prefix, &self.weight, self.bias.as_ref(), f);
    }
    fn describe(&self) -> String {
        let s = self.weight.shape();
        format!(
            "ConvTranspose2d({} -> {}, {})",
            s[0],
            s[1] * self.groups,
            kernel_text(&s[2..])
        )
    }
}

/// 3-D transposed convolution over `[N, C, D, H, W]` (PyTorch's `ConvTranspose3d`); weight
/// `[in, out/groups, kd, kh, kw]`.
///
/// ```
/// use fukai::nn::{ConvTranspose3d, Module};
/// use fukai::{DType, Tensor};
/// let up = ConvTranspose3d::new(4, 2, 2, 2, 0)?;
/// let y = up.forward(&Tensor::randn(&[1, 4, 3, 5, 6], DType::F32)?)?;
/// assert_eq!(y.shape(), &[1, 2, 6, 10, 12]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct ConvTranspose3d {
    /// `[in, out/groups, kd, kh, kw]`.
    pub weight: Tensor,
    /// `[out]`, if any.
    pub bias: Option<Tensor>,
    /// Stride (d, h, w).
    pub stride: [usize; 3],
    /// Padding removed from each side of the output (d, h, w).
    pub padding: [usize; 3],
    /// Extra size added to one side of the output (d, h, w).
    pub output_padding: [usize; 3],
    /// Dilation (d, h, w).
    pub dilation: [usize; 3],
    /// Channel groups.
    pub groups: usize,
}

impl ConvTranspose3d {
    /// A cubic-kernel transposed convolution with no output padding or dilation, one group,
    /// with bias.
    pub fn new(
        inputs: usize,
        outputs: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        ConvTranspose3d::with_options(
            inputs,
            outputs,
            [kernel; 3],
            [stride; 3],
            [padding; 3],
            [0; 3],
            [1; 3],
            1,
            true,
        )
    }
    /// Every option, as in `torch.nn.ConvTranspose3d`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_options(
        inputs: usize,
        outputs: usize,
        kernel: [usize; 3],
        stride: [usize; 3],
        padding: [usize; 3],
        output_padding: [usize; 3],
        dilation: [usize; 3],
        groups: usize,
        bias: bool,
    ) -> Result<Self> {
        let groups = groups.max(1);
        let shape = [inputs, outputs / groups, kernel[0], kernel[1], kernel[2]];
        // PyTorch takes fan_in from the weight's second dim, here the outputs per group.
        let fan_in = shape[1..].iter().product();
        let (weight, bias) = weight_and_bias(&shape, outputs, fan_in, bias)?;
        Ok(ConvTranspose3d {
            weight,
            bias,
            stride,
            padding,
            output_padding,
            dilation,
            groups,
        })
    }
}

impl Module for ConvTranspose3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv_transpose3d(
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            self.output_padding,
            self.dilation,
            self.groups,
        )
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        visit_weight_bias(prefix, &self.weight, self.bias.as_ref(), f);
    }
    fn describe(&self) -> String {
        let s = self.weight.shape();
        format!(
            "ConvTranspose3d({} -> {}, {})",
            s[0],
            s[1] * self.groups,
            kernel_text(&s[2..])
        )
    }
}
