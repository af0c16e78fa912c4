//! Pooling layers.

use super::Module;
use crate::error::Result;
use crate::tensor::Tensor;

/// Max pooling over `[N, C, H, W]` (stride defaults to the kernel size, as in PyTorch).
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
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.max_pool2d(self.kernel, self.stride, self.padding)
    }
    fn describe(&self) -> String {
        format!("MaxPool2d({}x{})", self.kernel[0], self.kernel[1])
    }
}

/// Average pooling over `[N, C, H, W]`.
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
