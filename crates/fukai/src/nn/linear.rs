//! Fully connected layer and embedding table.

use super::{init, join, Module, TensorKind};
use crate::bail;
use crate::error::Result;
use crate::onnx::export::{layers as ox, Graph, Value};
use crate::tensor::{DType, Tensor};

/// `y = x Wᵀ + b` with `W: [out, in]` (PyTorch's layout, so state dicts load as-is).
///
/// ```
/// use fukai::nn::{Linear, Module};
/// use fukai::Tensor;
/// let layer = Linear::new(2, 1, true)?;
/// layer.weight.copy_from(&Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2])?)?;
/// layer.bias.as_ref().unwrap().copy_from(&Tensor::from_vec(vec![0.5f32], &[1])?)?;
/// let y = layer.forward(&Tensor::from_vec(vec![3.0f32, 4.0], &[1, 2])?)?;
/// assert_eq!(y.to_vec::<f32>()?, [3.0 + 8.0 + 0.5]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Linear {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`, if any.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// PyTorch-default initialized layer.
    pub fn new(inputs: usize, outputs: usize, bias: bool) -> Result<Self> {
        Ok(Linear {
            weight: init::kaiming_uniform(&[outputs, inputs], inputs)?,
            bias: if bias {
                Some(init::kaiming_uniform(&[outputs], inputs)?)
            } else {
                None
            },
        })
    }
}

impl Module for Linear {
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        ox::linear(g, prefix, x, &self.weight, self.bias.as_ref())
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let k = self.weight.shape()[1];
        if x.rank() == 0 || x.shape()[x.rank() - 1] != k {
            bail!(
                "Linear",
                "input shape {:?}: last dim must be {k} (weight {:?})",
                x.shape(),
                self.weight.shape()
            );
        }
        // Fused (ops/linear.rs): the bias is the gemm's starting value.
        x.linear(&self.weight, self.bias.as_ref())
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        f(&join(prefix, "weight"), &self.weight, TensorKind::Parameter);
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b, TensorKind::Parameter);
        }
    }
    fn describe(&self) -> String {
        format!(
            "Linear({} -> {})",
            self.weight.shape()[1],
            self.weight.shape()[0]
        )
    }
}

/// A lookup table of `[vocab, dim]` vectors, initialized N(0, 1) like PyTorch.
///
/// ```
/// use fukai::nn::{Embedding, Module};
/// use fukai::Tensor;
/// let table = Embedding::new(10, 4)?;
/// let ids = Tensor::from_vec(vec![3i64, 7, 3], &[3])?;
/// let out = table.forward(&ids)?;
/// assert_eq!(out.shape(), &[3, 4]);
/// assert_eq!(out.narrow(0, 0, 1)?.to_vec::<f32>()?, table.weight.narrow(0, 3, 1)?.to_vec::<f32>()?);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Embedding {
    /// `[vocab, dim]`.
    pub weight: Tensor,
}

impl Embedding {
    /// A new table.
    pub fn new(vocab: usize, dim: usize) -> Result<Self> {
        Ok(Embedding {
            weight: Tensor::randn(&[vocab, dim], DType::F32)?.with_grad()?,
        })
    }
}

impl Module for Embedding {
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        ox::embedding(g, prefix, x, &self.weight)
    }
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.weight.embedding(ids)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        f(&join(prefix, "weight"), &self.weight, TensorKind::Parameter);
    }
    fn describe(&self) -> String {
        format!(
            "Embedding({}, {})",
            self.weight.shape()[0],
            self.weight.shape()[1]
        )
    }
}
