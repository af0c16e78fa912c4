//! Transformer encoder and decoder blocks, pre- or post-norm, with a GELU/ReLU MLP or a SwiGLU
//! feed-forward. Parameter names follow PyTorch's `nn.TransformerEncoderLayer` /
//! `nn.TransformerDecoderLayer` (`self_attn`, `multihead_attn`, `linear1`, `linear2`, `norm1..3`).

use super::attention::{KvCache, Mask, MultiHeadAttention};
use super::{join, LayerNorm, Linear, Module, RmsNorm, TensorKind};
use crate::error::Result;
use crate::onnx::export::{transformer as ox, Graph, Value};
use crate::tensor::Tensor;

/// The feed-forward half of a block.
///
/// ```
/// use fukai::nn::{FeedForward, Linear, Module};
/// use fukai::{DType, Tensor};
/// let ffn = FeedForward::Mlp {
///     linear1: Linear::new(8, 32, true)?,
///     linear2: Linear::new(32, 8, true)?,
///     gelu: true,
/// };
/// assert_eq!(ffn.forward(&Tensor::randn(&[2, 3, 8], DType::F32)?)?.shape(), &[2, 3, 8]);
/// assert_eq!(ffn.num_parameters(), 8 * 32 + 32 + 32 * 8 + 8);
/// # Ok::<(), fukai::Error>(())
/// ```
pub enum FeedForward {
    /// `linear2(act(linear1(x)))`.
    Mlp {
        /// `d -> hidden`.
        linear1: Linear,
        /// `hidden -> d`.
        linear2: Linear,
        /// GELU (exact) when true, ReLU otherwise.
        gelu: bool,
    },
    /// `w2(silu(w1 x) · w3 x)` (LLaMA).
    SwiGlu {
        /// Gate `d -> hidden`.
        w1: Linear,
        /// Down `hidden -> d`.
        w2: Linear,
        /// Up `d -> hidden`.
        w3: Linear,
    },
}

impl Module for FeedForward {
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        ox::feed_forward(g, prefix, self, x)
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            FeedForward::Mlp {
                linear1,
                linear2,
                gelu,
            } => {
                let h = linear1.forward(x)?;
                linear2.forward(&if *gelu { h.gelu()? } else { h.relu()? })
            }
            FeedForward::SwiGlu { w1, w2, w3 } => {
                w2.forward(&w1.forward(x)?.silu()?.mul(&w3.forward(x)?)?)
            }
        }
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        match self {
            FeedForward::Mlp {
                linear1, linear2, ..
            } => {
                linear1.visit(&join(prefix, "linear1"), f);
                linear2.visit(&join(prefix, "linear2"), f);
            }
            FeedForward::SwiGlu { w1, w2, w3 } => {
                w1.visit(&join(prefix, "w1"), f);
                w2.visit(&join(prefix, "w2"), f);
                w3.visit(&join(prefix, "w3"), f);
            }
        }
    }
}

/// Feed-forward kind of a block.
///
/// ```
/// use fukai::nn::{BlockConfig, FfnKind, Module, TransformerEncoderLayer};
/// let c = BlockConfig { ffn: FfnKind::SwiGlu, bias: false, ..BlockConfig::new(8, 2) };
/// let block = TransformerEncoderLayer::new(&c)?;
/// assert!(block.state_dict().iter().any(|(n, _)| n == "w3.weight"));
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfnKind {
    /// MLP with exact GELU.
    Gelu,
    /// MLP with ReLU (PyTorch's default).
    Relu,
    /// SwiGLU (three projections, no biases when `bias` is off).
    SwiGlu,
}

/// Shape of a block.
///
/// ```
/// use fukai::nn::{BlockConfig, FfnKind};
/// // A pre-norm GPT-style block: GELU MLP, norms before the sublayers.
/// let c = BlockConfig { ffn: FfnKind::Gelu, norm_first: true, ..BlockConfig::new(64, 4) };
/// assert_eq!((c.kv_heads, c.ffn_hidden), (4, 256));
/// ```
#[derive(Clone, Debug)]
pub struct BlockConfig {
    /// Model width.
    pub d_model: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads` for plain multi-head attention).
    pub kv_heads: usize,
    /// Hidden width of the feed-forward.
    pub ffn_hidden: usize,
    /// Feed-forward kind.
    pub ffn: FfnKind,
    /// Normalize before each sublayer (GPT-2) instead of after (the original Transformer).
    pub norm_first: bool,
    /// RMSNorm instead of LayerNorm.
    pub rms_norm: bool,
    /// Biases in the projections (and LayerNorm shifts).
    pub bias: bool,
    /// Norm epsilon.
    pub eps: f64,
}

impl BlockConfig {
    /// PyTorch's layer defaults for width `d_model`: post-norm, ReLU MLP of 4·d, biases.
    pub fn new(d_model: usize, heads: usize) -> Self {
        BlockConfig {
            d_model,
            heads,
            kv_heads: heads,
            ffn_hidden: 4 * d_model,
            ffn: FfnKind::Relu,
            norm_first: false,
            rms_norm: false,
            bias: true,
            eps: 1e-5,
        }
    }
    fn norm(&self) -> Result<Box<dyn Module>> {
        Ok(if self.rms_norm {
            Box::new(RmsNorm::new(self.d_model, self.eps)?)
        } else {
            Box::new(LayerNorm::new(self.d_model)?.with_eps(self.eps))
        })
    }
    fn feed_forward(&self) -> Result<FeedForward> {
        let (d, h, b) = (self.d_model, self.ffn_hidden, self.bias);
        Ok(match self.ffn {
            FfnKind::SwiGlu => FeedForward::SwiGlu {
                w1: Linear::new(d, h, b)?,
                w2: Linear::new(h, d, b)?,
                w3: Linear::new(d, h, b)?,
            },
            k => FeedForward::Mlp {
                linear1: Linear::new(d, h, b)?,
                linear2: Linear::new(h, d, b)?,
                gelu: k == FfnKind::Gelu,
            },
        })
    }
}

/// Self-attention then feed-forward, each with a residual connection.
///
/// ```
/// use fukai::nn::{BlockConfig, Mask, Module, TransformerEncoderLayer};
/// use fukai::{DType, Tensor};
/// let mut block = TransformerEncoderLayer::new(&BlockConfig::new(16, 4))?;
/// block.eval();
/// let x = Tensor::randn(&[2, 5, 16], DType::F32)?;
/// assert_eq!(block.forward(&x)?.shape(), &[2, 5, 16]);
/// let causal = block.forward_masked(&x, &Mask::causal(), None)?;
/// assert_eq!(causal.shape(), &[2, 5, 16]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct TransformerEncoderLayer {
    /// Self-attention.
    pub self_attn: MultiHeadAttention,
    /// Feed-forward.
    pub ffn: FeedForward,
    /// Norm around the attention.
    pub norm1: Box<dyn Module>,
    /// Norm around the feed-forward.
    pub norm2: Box<dyn Module>,
    /// Pre-norm when true.
    pub norm_first: bool,
}

impl TransformerEncoderLayer {
    /// A freshly initialized block.
    pub fn new(c: &BlockConfig) -> Result<Self> {
        Ok(TransformerEncoderLayer {
            self_attn: MultiHeadAttention::new(c.d_model, c.heads, c.kv_heads, c.bias)?,
            ffn: c.feed_forward()?,
            norm1: c.norm()?,
            norm2: c.norm()?,
            norm_first: c.norm_first,
        })
    }
    /// The block with masks and an optional key/value cache (causal decoding, as in GPT).
    pub fn forward_masked(
        &self,
        x: &Tensor,
        mask: &Mask,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        if self.norm_first {
            let x = x.add(
                &self
                    .self_attn
                    .attend(&self.norm1.forward(x)?, None, mask, cache)?,
            )?;
            x.add(&self.ffn.forward(&self.norm2.forward(&x)?)?)
        } else {
            let x = self
                .norm1
                .forward(&x.add(&self.self_attn.attend(x, None, mask, cache)?)?)?;
            self.norm2.forward(&x.add(&self.ffn.forward(&x)?)?)
        }
    }
}

impl Module for TransformerEncoderLayer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_masked(x, &Mask::default(), None)
    }
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        ox::encoder_layer(g, prefix, self, x, None)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        self.self_attn.visit(&join(prefix, "self_attn"), f);
        self.ffn.visit(prefix, f);
        self.norm1.visit(&join(prefix, "norm1"), f);
        self.norm2.visit(&join(prefix, "norm2"), f);
    }
    fn describe(&self) -> String {
        format!("TransformerEncoderLayer({})", self.self_attn.describe())
    }
}

/// Masked self-attention, cross-attention over an encoder's output, then feed-forward.
///
/// ```
/// use fukai::nn::{BlockConfig, Mask, TransformerDecoderLayer};
/// use fukai::{DType, Tensor};
/// let block = TransformerDecoderLayer::new(&BlockConfig::new(16, 4))?;
/// let x = Tensor::randn(&[2, 5, 16], DType::F32)?;
/// let memory = Tensor::randn(&[2, 9, 16], DType::F32)?;
/// let y = block.forward_with(&x, &memory, &Mask::causal(), &Mask::default())?;
/// assert_eq!(y.shape(), &[2, 5, 16]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct TransformerDecoderLayer {
    /// Self-attention.
    pub self_attn: MultiHeadAttention,
    /// Cross-attention over the memory.
    pub multihead_attn: MultiHeadAttention,
    /// Feed-forward.
    pub ffn: FeedForward,
    /// Norm around the self-attention.
    pub norm1: Box<dyn Module>,
    /// Norm around the cross-attention.
    pub norm2: Box<dyn Module>,
    /// Norm around the feed-forward.
    pub norm3: Box<dyn Module>,
    /// Pre-norm when true.
    pub norm_first: bool,
}

impl TransformerDecoderLayer {
    /// A freshly initialized block.
    pub fn new(c: &BlockConfig) -> Result<Self> {
        Ok(TransformerDecoderLayer {
            self_attn: MultiHeadAttention::new(c.d_model, c.heads, c.kv_heads, c.bias)?,
            multihead_attn: MultiHeadAttention::new(c.d_model, c.heads, c.kv_heads, c.bias)?,
            ffn: c.feed_forward()?,
            norm1: c.norm()?,
            norm2: c.norm()?,
            norm3: c.norm()?,
            norm_first: c.norm_first,
        })
    }
    /// `x: [B, T, d]` attends to itself under `self_mask` and to `memory: [B, S, d]` under
    /// `memory_mask`.
    pub fn forward_with(
        &self,
        x: &Tensor,
        memory: &Tensor,
        self_mask: &Mask,
        memory_mask: &Mask,
    ) -> Result<Tensor> {
        let sa = |h: &Tensor| self.self_attn.attend(h, None, self_mask, None);
        let ca = |h: &Tensor| {
            self.multihead_attn
                .attend(h, Some(memory), memory_mask, None)
        };
        if self.norm_first {
            let x = x.add(&sa(&self.norm1.forward(x)?)?)?;
            let x = x.add(&ca(&self.norm2.forward(&x)?)?)?;
            x.add(&self.ffn.forward(&self.norm3.forward(&x)?)?)
        } else {
            let x = self.norm1.forward(&x.add(&sa(x)?)?)?;
            let x = self.norm2.forward(&x.add(&ca(&x)?)?)?;
            self.norm3.forward(&x.add(&self.ffn.forward(&x)?)?)
        }
    }
}

impl Module for TransformerDecoderLayer {
    /// Causal self-attention with the input as its own memory (a stand-alone decoder call
    /// needs [`TransformerDecoderLayer::forward_with`]).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, x, &Mask::causal(), &Mask::default())
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        self.self_attn.visit(&join(prefix, "self_attn"), f);
        self.multihead_attn
            .visit(&join(prefix, "multihead_attn"), f);
        self.ffn.visit(prefix, f);
        self.norm1.visit(&join(prefix, "norm1"), f);
        self.norm2.visit(&join(prefix, "norm2"), f);
        self.norm3.visit(&join(prefix, "norm3"), f);
    }
    fn describe(&self) -> String {
        format!("TransformerDecoderLayer({})", self.self_attn.describe())
    }
}
