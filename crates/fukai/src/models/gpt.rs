//! A decoder-only Transformer language model (GPT-2 layout, as in nanoGPT): token and learned
//! position embeddings, pre-norm causal blocks, a final LayerNorm and a linear head (optionally
//! tied to the token embedding).

use super::{Model, ModelConfig, Task};
use crate::bail;
use crate::error::Result;
use crate::nn::{
    join, BlockConfig, Embedding, FeedForward, FfnKind, KvCache, LayerNorm, LearnedPositions,
    Linear, Mask, Module, TensorKind, TransformerEncoderLayer,
};
use crate::onnx::export::{layers, transformer, Graph, Value};
use crate::tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// Shape of the model.
///
/// ```
/// use fukai::models::{Gpt, GptConfig};
/// let cfg = GptConfig { vocab: 65, layers: 2, heads: 2, width: 32, context: 16, tie_weights: true };
/// let gpt = Gpt::new(cfg)?;
/// let ids = fukai::Tensor::from_vec(vec![1i64, 2, 3], &[1, 3])?;
/// assert_eq!(gpt.logits(&ids, None)?.shape(), &[1, 3, 65]);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    /// Vocabulary size (0 in a run config: taken from the data's tokenizer).
    #[serde(default)]
    pub vocab: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Model width.
    pub width: usize,
    /// Context length (positions).
    pub context: usize,
    /// Share the token embedding with the output head.
    #[serde(default)]
    pub tie_weights: bool,
}

/// The language model.
pub struct Gpt {
    wte: Embedding,
    wpe: LearnedPositions,
    blocks: Vec<TransformerEncoderLayer>,
    ln_f: LayerNorm,
    /// `None` when tied to `wte`.
    lm_head: Option<Linear>,
    cfg: GptConfig,
}

/// An f32 parameter drawn from N(0, std²) with the default generator.
fn normal(shape: &[usize], std: f64) -> Result<Tensor> {
    Tensor::randn(shape, DType::F32)?
        .mul_scalar(std)?
        .with_grad()
}

impl Gpt {
    /// nanoGPT's initialization: N(0, 0.02) weights and embeddings, zero biases, and the
    /// residual projections scaled by 1/sqrt(2·layers).
    pub fn new(cfg: GptConfig) -> Result<Self> {
        let (c, vocab) = (&cfg, cfg.vocab);
        if c.layers == 0 || c.context == 0 || vocab == 0 {
            bail!(
                "gpt",
                "layers, context and vocabulary must be positive: {c:?}, vocab {vocab}"
            );
        }
        let mut bc = BlockConfig::new(c.width, c.heads);
        bc.ffn = FfnKind::Gelu;
        bc.norm_first = true;
        let proj_std = 0.02 / (2.0 * c.layers as f64).sqrt();
        let mut blocks = Vec::with_capacity(c.layers);
        for _ in 0..c.layers {
            let mut b = TransformerEncoderLayer::new(&bc)?;
            let a = &mut b.self_attn;
            a.in_proj_weight = normal(a.in_proj_weight.shape(), 0.02)?;
            a.out_proj.weight = normal(a.out_proj.weight.shape(), proj_std)?;
            if let FeedForward::Mlp {
                linear1, linear2, ..
            } = &mut b.ffn
            {
                linear1.weight = normal(linear1.weight.shape(), 0.02)?;
                linear2.weight = normal(linear2.weight.shape(), proj_std)?;
                for l in [linear1, linear2] {
                    if let Some(bias) = &l.bias {
                        l.bias = Some(bias.zeros_like()?.with_grad()?);
                    }
                }
            }
            blocks.push(b);
        }
        let mut wpe = LearnedPositions::new(c.context, c.width)?;
        wpe.weight = normal(&[c.context, c.width], 0.02)?;
        Ok(Gpt {
            wte: Embedding {
                weight: normal(&[vocab, c.width], 0.02)?,
            },
            wpe,
            blocks,
            ln_f: LayerNorm::new(c.width)?,
            lm_head: if c.tie_weights {
                None
            } else {
                Some(Linear {
                    weight: normal(&[vocab, c.width], 0.02)?,
                    bias: None,
                })
            },
            cfg: cfg.clone(),
        })
    }

    /// Context length.
    pub fn context(&self) -> usize {
        self.cfg.context
    }

    /// Fresh caches, one per block.
    pub fn new_caches(&self) -> Vec<KvCache> {
        vec![KvCache::new(); self.blocks.len()]
    }

    /// Logits `[B, T, vocab]` for token ids `[B, T]` (i64). With `caches`, the ids continue
    /// the cached sequence (positions start after it) and the caches grow by T.
    pub fn logits(&self, ids: &Tensor, caches: Option<&mut [KvCache]>) -> Result<Tensor> {
        if ids.rank() != 2 {
            bail!("gpt", "token ids must be [B, T], found {:?}", ids.shape());
        }
        let offset = caches
            .as_ref()
            .and_then(|c| c.first())
            .map_or(0, |c| c.len());
        let t = ids.shape()[1];
        if offset + t > self.cfg.context {
            bail!(
                "gpt",
                "{} positions exceed the context of {}",
                offset + t,
                self.cfg.context
            );
        }
        let mut x = self.wpe.forward_at(&self.wte.forward(ids)?, offset)?;
        let mask = Mask::causal();
        match caches {
            Some(caches) => {
                for (b, c) in self.blocks.iter().zip(caches.iter_mut()) {
                    x = b.forward_masked(&x, &mask, Some(c))?;
                }
            }
            None => {
                for b in &self.blocks {
                    x = b.forward_masked(&x, &mask, None)?;
                }
            }
        }
        let x = self.ln_f.forward(&x)?;
        match &self.lm_head {
            Some(h) => h.forward(&x),
            // Weight tying: the head is the embedding table, transposed.
            None => x.matmul(&self.wte.weight.t()?),
        }
    }
}

impl Module for Gpt {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.logits(ids, None)
    }
    /// `logits(ids, None)` for ids `[B, T]`, both free (`T` up to the context); no cache.
    fn to_onnx(&self, g: &mut Graph, prefix: &str, ids: &Value) -> Result<Value> {
        let p = |n: &str| join(prefix, n);
        let x = self.wte.to_onnx(g, &p("wte"), ids)?;
        let mut x = self.wpe.to_onnx(g, &p("wpe"), &x)?;
        let mask = transformer::causal_mask(g, &x)?;
        for (i, b) in self.blocks.iter().enumerate() {
            x = transformer::encoder_layer(g, &p(&format!("blocks.{i}")), b, &x, Some(&mask))?;
        }
        let x = self.ln_f.to_onnx(g, &p("ln_f"), &x)?;
        match &self.lm_head {
            Some(h) => h.to_onnx(g, &p("lm_head"), &x),
            // Tied: the graph reuses the embedding's initializer (same tensor, stored once).
            None => layers::linear(g, &p("lm_head"), &x, &self.wte.weight, None),
        }
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        self.wte.visit(&join(prefix, "wte"), f);
        self.wpe.visit(&join(prefix, "wpe"), f);
        for (i, b) in self.blocks.iter().enumerate() {
            b.visit(&join(prefix, &format!("blocks.{i}")), f);
        }
        self.ln_f.visit(&join(prefix, "ln_f"), f);
        if let Some(h) = &self.lm_head {
            h.visit(&join(prefix, "lm_head"), f);
        }
    }
    fn describe(&self) -> String {
        format!(
            "GPT({} blocks, width {}, context {})",
            self.blocks.len(),
            self.cfg.width,
            self.cfg.context
        )
    }
}

impl Model for Gpt {
    fn config(&self) -> Option<ModelConfig> {
        Some(ModelConfig::Gpt(self.cfg.clone()))
    }
    fn task(&self) -> Task {
        Task::LanguageModel
    }
}
