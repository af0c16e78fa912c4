//! Parameter-free layers: activations, dropout, flatten.

use super::Module;
use crate::error::Result;
use crate::tensor::Tensor;

/// An elementwise activation as a layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// max(x, 0)
    Relu,
    /// Exact GELU.
    Gelu,
    /// GELU, tanh approximation.
    GeluTanh,
    /// tanh
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// x·sigmoid(x)
    Silu,
    /// Leaky ReLU with a negative slope.
    LeakyRelu(f64),
}

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match *self {
            Activation::Relu => x.relu(),
            Activation::Gelu => x.gelu(),
            Activation::GeluTanh => x.gelu_tanh(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Silu => x.silu(),
            Activation::LeakyRelu(s) => x.leaky_relu(s),
        }
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
    fn is_relu(&self) -> bool {
        matches!(self, Activation::Relu)
    }
}

/// Zeroes elements with probability `p` in training (scaling the rest by 1/(1-p)).
pub struct Dropout {
    p: f64,
    training: bool,
}

impl Dropout {
    /// A dropout layer, in training mode.
    pub fn new(p: f64) -> Self {
        Dropout { p, training: true }
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.dropout(self.p, self.training)
    }
    fn set_training(&mut self, on: bool) {
        self.training = on;
    }
    fn describe(&self) -> String {
        format!("Dropout({})", self.p)
    }
}

/// Flattens all dims after the first (batch) dim.
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() <= 1 {
            return Ok(x.clone());
        }
        x.flatten(1, -1)
    }
}
