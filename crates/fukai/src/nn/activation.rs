//! Parameter-free layers: activations, dropout, flatten.

use super::Module;
use crate::error::Result;
use crate::onnx::export::{layers as ox, Graph, Value};
use crate::tensor::Tensor;

/// An elementwise activation as a layer.
///
/// ```
/// use fukai::nn::{Activation, Module};
/// use fukai::Tensor;
/// let x = Tensor::from_vec(vec![-2.0f32, 0.0, 3.0], &[3])?;
/// assert_eq!(Activation::Relu.forward(&x)?.to_vec::<f32>()?, [0.0, 0.0, 3.0]);
/// assert_eq!(Activation::LeakyRelu(0.5).forward(&x)?.to_vec::<f32>()?, [-1.0, 0.0, 3.0]);
/// assert_eq!(Activation::Sigmoid.forward(&x)?.to_vec::<f32>()?[1], 0.5);
/// # Ok::<(), fukai::Error>(())
/// ```
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
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        ox::activation(g, prefix, x, *self)
    }
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
///
/// ```
/// use fukai::nn::{Dropout, Module};
/// use fukai::{DType, Tensor};
/// let mut dropout = Dropout::new(0.5);
/// let x = Tensor::ones(&[1000], DType::F32)?;
/// // Training: each element is dropped or scaled by 1 / (1 - p).
/// let y = dropout.forward(&x)?.to_vec::<f32>()?;
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// assert!(y.contains(&0.0) && y.contains(&2.0));
/// dropout.eval();
/// assert_eq!(dropout.forward(&x)?.to_vec::<f32>()?, vec![1.0; 1000]);
/// # Ok::<(), fukai::Error>(())
/// ```
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
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        // Inference: the identity.
        let _ = (g, prefix);
        Ok(x.clone())
    }
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
///
/// ```
/// use fukai::nn::{Flatten, Module};
/// use fukai::{DType, Tensor};
/// let y = Flatten.forward(&Tensor::zeros(&[2, 3, 4], DType::F32)?)?;
/// assert_eq!(y.shape(), &[2, 12]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Flatten;

impl Module for Flatten {
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        ox::flatten(g, prefix, x)
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() <= 1 {
            return Ok(x.clone());
        }
        x.flatten(1, -1)
    }
}
