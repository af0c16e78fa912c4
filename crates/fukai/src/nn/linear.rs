//! Fully connected layer and embedding table.

use super::{init, join, Module, TensorKind};
use crate::bail;
use crate::error::Result;
use crate::tensor::{DType, Tensor};

/// `y = x Wᵀ + b` with `W: [out, in]` (PyTorch's layout, so state dicts load as-is).
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
