//! Pooling layers.

use super::Module;
use crate::error::Result;
use crate::onnx::export::{layers as ox, Graph, Value};
use crate::tensor::Tensor;

/// Max pooling over `[N, C, H, W]` (stride defaults to the kernel size, as in PyTorch).
///
/// ```
/// use fukai::nn::{MaxPool2d, Module};
/// use fukai::Tensor;
/// let x = Tensor::from_vec(vec![1.0f32, 5.0, 3.0, 2.0], &[1, 1, 2, 2])?;
/// let y = MaxPool2d::new(2).forward(&x)?;
/// assert_eq!(y.shape(), &[1, 1, 1, 1]);
/// assert_eq!(y.to_vec::<f32>()?, [5.0]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct MaxPool2d {
    /// Window (h, w).
    pub kernel: [usize; 2],
    /// Step (h, w).
    pub stride: [usize; 2],
    /// Implicit -inf padding (h, w).
    pub padding: [usize; 2],
}

impl MaxPool2d {
    /// Square window `k` with stride `k`.
    pub fn new(k: usize) -> Self {
        MaxPool2d {
            kernel: [k, k],
            stride: [k, k],
            padding: [0, 0],
        }
    }
}

impl Module for MaxPool2d {
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        ox::pool2d(
            g,
            prefix,
            x,
            true,
            self.kernel,
            self.stride,
            self.padding,
            false,
        )
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.max_pool2d(self.kernel, self.stride, self.padding)
    }
    fn describe(&self) -> String {
        format!("MaxPool2d({}x{})", self.kernel[0], self.kernel[1])
    }
}

/// Average pooling over `[N, C, H, W]`.
///
/// ```
/// use fukai::nn::{AvgPool2d, Module};
/// use fukai::Tensor;
/// let x = Tensor::from_vec(vec![1.0f32, 5.0, 3.0, 2.0], &[1, 1, 2, 2])?;
/// assert_eq!(AvgPool2d::new(2).forward(&x)?.to_vec::<f32>()?, [2.75]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct AvgPool2d {
    /// Window (h, w).
    pub kernel: [usize; 2],
    /// Step (h, w).
    pub stride: [usize; 2],
    /// Zero padding (h, w).
    pub padding: [usize; 2],
    /// Whether padded positions count toward a window's divisor (PyTorch's
    /// `count_include_pad`; true by default, as there). When false, a window straddling the
    /// border averages only the input elements it covers.
    pub count_include_pad: bool,
}

impl AvgPool2d {
    /// Square window `k` with stride `k`.
    pub fn new(k: usize) -> Self {
        AvgPool2d {
            kernel: [k, k],
            stride: [k, k],
            padding: [0, 0],
            count_include_pad: true,
        }
    }
    /// Sets [`AvgPool2d::count_include_pad`].
    pub fn count_include_pad(mut self, on: bool) -> Self {
        self.count_include_pad = on;
        self
    }
}

impl Module for AvgPool2d {
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        ox::pool2d(
            g,
            prefix,
            x,
            false,
            self.kernel,
            self.stride,
            self.padding,
            self.count_include_pad,
        )
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.avg_pool2d(
            self.kernel,
            self.stride,
            self.padding,
            self.count_include_pad,
        )
    }
    fn describe(&self) -> String {
        format!("AvgPool2d({}x{})", self.kernel[0], self.kernel[1])
    }
}

/// Average pooling to a fixed output size, whatever the input size.
///
/// ```
/// use fukai::nn::{AdaptiveAvgPool2d, Module};
/// use fukai::{DType, Tensor};
/// let pool = AdaptiveAvgPool2d { output: [1, 1] };
/// let y = pool.forward(&Tensor::full(&[2, 3, 7, 5], 2.0, DType::F32)?)?;
/// assert_eq!(y.shape(), &[2, 3, 1, 1]);
/// assert_eq!(y.to_vec::<f32>()?, vec![2.0; 6]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct AdaptiveAvgPool2d {
    /// Output (h, w).
    pub output: [usize; 2],
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.adaptive_avg_pool2d(self.output)
    }
    fn describe(&self) -> String {
        format!("AdaptiveAvgPool2d({}x{})", self.output[0], self.output[1])
    }
}

/// 3-D max pooling over `[N, C, D, H, W]` (stride defaults to the kernel size, as in PyTorch).
///
/// ```
/// use fukai::nn::{MaxPool3d, Module};
/// use fukai::Tensor;
/// let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 2, 2, 4])?;
/// let y = MaxPool3d::new(2).forward(&x)?;
/// assert_eq!(y.shape(), &[1, 1, 1, 1, 2]);
/// assert_eq!(y.to_vec::<f32>()?, [13.0, 15.0]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct MaxPool3d {
    /// Window (d, h, w).
    pub kernel: [usize; 3],
    /// Step (d, h, w).
    pub stride: [usize; 3],
    /// Implicit -inf padding (d, h, w).
    pub padding: [usize; 3],
}

impl MaxPool3d {
    /// Cubic window `k` with stride `k`.
    pub fn new(k: usize) -> Self {
        MaxPool3d {
            kernel: [k; 3],
            stride: [k; 3],
            padding: [0; 3],
        }
    }
}

impl Module for MaxPool3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.max_pool3d(self.kernel, self.stride, self.padding)
    }
    fn describe(&self) -> String {
        let [d, h, w] = self.kernel;
        format!("MaxPool3d({d}x{h}x{w})")
    }
}

/// 3-D average pooling over `[N, C, D, H, W]`.
///
/// ```
/// use fukai::nn::{AvgPool3d, Module};
/// use fukai::{DType, Tensor};
/// let y = AvgPool3d::new(2).forward(&Tensor::full(&[1, 1, 2, 4, 4], 3.0, DType::F32)?)?;
/// assert_eq!(y.shape(), &[1, 1, 1, 2, 2]);
/// assert_eq!(y.to_vec::<f32>()?, vec![3.0; 4]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct AvgPool3d {
    /// Window (d, h, w).
    pub kernel: [usize; 3],
    /// Step (d, h, w).
    pub stride: [usize; 3],
    /// Zero padding (d, h, w).
    pub padding: [usize; 3],
    /// Whether padded positions count toward a window's divisor (PyTorch's
    /// `count_include_pad`; true by default, as there).
    pub count_include_pad: bool,
}

impl AvgPool3d {
    /// Cubic window `k` with stride `k`.
    pub fn new(k: usize) -> Self {
        AvgPool3d {
            kernel: [k; 3],
            stride: [k; 3],
            padding: [0; 3],
            count_include_pad: true,
        }
    }
    /// Sets [`AvgPool3d::count_include_pad`].
    pub fn count_include_pad(mut self, on: bool) -> Self {
        self.count_include_pad = on;
        self
    }
}

impl Module for AvgPool3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.avg_pool3d(
            self.kernel,
            self.stride,
            self.padding,
            self.count_include_pad,
        )
    }
    fn describe(&self) -> String {
        let [d, h, w] = self.kernel;
        format!("AvgPool3d({d}x{h}x{w})")
    }
}
