//! BERT-family encoders from a Hugging Face model directory (`config.json` and
//! `model.safetensors`), for inference: token ids and an attention mask in, hidden states out.

use super::kernels::{self, Act};
use crate::error::{Error, Result};
use crate::io::{load_safetensors, SafetensorsFile};
use crate::tensor::{DType, Tensor};
use serde::Deserialize;
use std::path::Path;

/// The fields of a BERT `config.json` the encoder uses. Other fields are ignored, as
/// `transformers` does; missing optional ones take `transformers`' defaults.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    /// Must be `"bert"`.
    pub model_type: String,
    /// Rows of the word embedding table.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Feed-forward activation: `gelu` (erf), `gelu_new`/`gelu_pytorch_tanh`, `relu` or `silu`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rows of the position embedding table: the longest input.
    pub max_position_embeddings: usize,
    /// Rows of the token type (segment) table.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Epsilon of every LayerNorm.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Only `"absolute"` is supported.
    #[serde(default = "default_pos_type")]
    pub position_embedding_type: String,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_pos_type() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Parses and checks the JSON text of a `config.json`; `file` names it in errors.
    pub fn from_json(text: &str, file: &str) -> Result<Self> {
        let err = |msg: String| Error::Format {
            file: file.to_string(),
            msg,
        };
        // The architecture first, so a GPT-2 config says "unknown model_type", not "missing vocab_size".
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        match raw.get("model_type").and_then(|v| v.as_str()) {
            Some("bert") => {}
            Some(other) => {
                return Err(err(format!(
                    "field \"model_type\": unknown architecture {other:?}; supported: \"bert\""
                )))
            }
            None => {
                return Err(err(
                    "field \"model_type\": missing or not a string (expected \"bert\")".into(),
                ))
            }
        }
        let cfg: BertConfig =
            serde_json::from_value(raw).map_err(|e| err(format!("invalid BERT config: {e}")))?;
        cfg.act().map_err(err)?;
        let positive = [
            ("vocab_size", cfg.vocab_size),
            ("hidden_size", cfg.hidden_size),
            ("num_attention_heads", cfg.num_attention_heads),
            ("intermediate_size", cfg.intermediate_size),
            ("max_position_embeddings", cfg.max_position_embeddings),
            ("type_vocab_size", cfg.type_vocab_size),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(err(format!("field {name:?} must be positive, found 0")));
            }
        }
        if !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return Err(err(format!(
                "field \"num_attention_heads\": {} does not divide hidden_size {}",
                cfg.num_attention_heads, cfg.hidden_size
            )));
        }
        if cfg.position_embedding_type != "absolute" {
            return Err(err(format!(
                "field \"position_embedding_type\": {:?} is not supported (only \"absolute\")",
                cfg.position_embedding_type
            )));
        }
        if !(cfg.layer_norm_eps.is_finite() && cfg.layer_norm_eps > 0.0) {
            return Err(err(format!(
                "field \"layer_norm_eps\" must be a positive number, found {}",
                cfg.layer_norm_eps
            )));
        }
        Ok(cfg)
    }

    fn act(&self) -> std::result::Result<Act, String> {
        Ok(match self.hidden_act.as_str() {
            "gelu" => Act::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Act::GeluTanh,
            "relu" => Act::Relu,
            "silu" | "swish" => Act::Silu,
            other => {
                return Err(format!(
                    "field \"hidden_act\": unsupported activation {other:?} \
                     (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu)"
                ))
            }
        })
    }
}

/// `y = x W + b` with `W` stored `[in, out]`; the bias is added by the fused kernel that
/// follows each product.
struct Dense {
    w: Tensor,
    b: Tensor,
}

struct Norm {
    w: Tensor,
    b: Tensor,
}

struct Layer {
    /// Query, key and value projections side by side (`[H, 3H]`), the query part pre-scaled by
    /// 1/√head_dim: one product instead of three, and no separate scaling pass.
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    ffn_in: Dense,
    ffn_out: Dense,
    ffn_norm: Norm,
}

/// A BERT encoder (`BertModel` without its pooler) ready for inference.
pub struct BertModel {
    cfg: BertConfig,
    act: Act,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
}

/// Takes named tensors out of a safetensors file, checking each one's shape and dtype.
struct Weights<'a> {
    file: &'a SafetensorsFile,
    prefix: String,
}

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        let err = |msg: String| Error::Format {
            file: self.file.source().to_string(),
            msg,
        };
        let t = self.file.get(&full).ok_or_else(|| {
            err(format!(
                "missing tensor {full:?} (expected shape {shape:?}, from config.json)"
            ))
        })?;
        if t.shape() != shape {
            return Err(err(format!(
                "tensor {full:?}: expected shape {shape:?} (from config.json), found {:?}",
                t.shape()
            )));
        }
        if !t.dtype().is_float() {
            return Err(err(format!(
                "tensor {full:?}: expected a float dtype (F32, F16, BF16, F64), found {}",
                t.dtype()
            )));
        }
        t.to_dtype(DType::F32)
    }

    fn dense(&self, name: &str, inputs: usize, outputs: usize) -> Result<Dense> {
        Ok(Dense {
            w: self
                .get(&format!("{name}.weight"), &[outputs, inputs])?
                .t()?
                .contiguous()?,
            b: self.get(&format!("{name}.bias"), &[outputs])?,
        })
    }

    fn norm(&self, name: &str, dim: usize) -> Result<Norm> {
        Ok(Norm {
            w: self.get(&format!("{name}.weight"), &[dim])?,
            b: self.get(&format!("{name}.bias"), &[dim])?,
        })
    }
}

impl BertModel {
    /// Loads `config.json` and `model.safetensors` from a model directory.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|source| Error::Io {
            path: config_path.display().to_string(),
            source,
        })?;
        let cfg = BertConfig::from_json(&text, &config_path.display().to_string())?;
        let weights = load_safetensors(dir.join("model.safetensors"))?;
        Self::from_weights(cfg, &weights)
    }

    /// Builds the encoder from a config and the tensors of a `BertModel` (names as saved by
    /// `transformers`, optionally under a `bert.` prefix as task heads save them).
    pub fn from_weights(cfg: BertConfig, file: &SafetensorsFile) -> Result<Self> {
        file.check_finite()?;
        let act = cfg.act().map_err(|msg| Error::Format {
            file: "config.json".into(),
            msg,
        })?;
        let prefix = if file.get("embeddings.word_embeddings.weight").is_none()
            && file.get("bert.embeddings.word_embeddings.weight").is_some()
        {
            "bert."
        } else {
            ""
        };
        let w = Weights {
            file,
            prefix: prefix.into(),
        };
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let head_dim = h / cfg.num_attention_heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        // Not sized from the config: a num_hidden_layers of 2^64-1 must fail on the first
        // missing layer's tensor, not on the allocation.
        let mut layers = Vec::new();
        for l in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let q = w.dense(&format!("{p}.attention.self.query"), h, h)?;
            let k = w.dense(&format!("{p}.attention.self.key"), h, h)?;
            let v = w.dense(&format!("{p}.attention.self.value"), h, h)?;
            let qkv = Dense {
                w: Tensor::cat(&[q.w.mul_scalar(scale)?, k.w, v.w], 1)?,
                b: Tensor::cat(&[q.b.mul_scalar(scale)?, k.b, v.b], 0)?,
            };
            layers.push(Layer {
                qkv,
                attn_out: w.dense(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                ffn_in: w.dense(&format!("{p}.intermediate.dense"), h, i)?,
                ffn_out: w.dense(&format!("{p}.output.dense"), i, h)?,
                ffn_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        Ok(BertModel {
            word: w.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[cfg.max_position_embeddings, h],
            )?,
            token_type: w.get(
                "embeddings.token_type_embeddings.weight",
                &[cfg.type_vocab_size, h],
            )?,
            emb_norm: w.norm("embeddings.LayerNorm", h)?,
            layers,
            act,
            cfg,
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// Hidden states `[B, T, hidden]` of the last layer for token ids `[B, T]` (I64 or U32),
    /// with `mask` `[B, T]` (1 for tokens, 0 for padding; any dtype) keeping padding out of
    /// attention. Every token has segment (token type) 0.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let _guard = crate::no_grad();
        let op = "BertModel::forward";
        if ids.rank() != 2 || mask.shape() != ids.shape() {
            crate::bail!(
                op,
                "ids must be [batch, seq] and mask the same shape, found {:?} and {:?}",
                ids.shape(),
                mask.shape()
            );
        }
        let (b, t) = (ids.shape()[0], ids.shape()[1]);
        if t > self.cfg.max_position_embeddings {
            crate::bail!(
                op,
                "{t} tokens, but the model has {} positions (truncate the input)",
                self.cfg.max_position_embeddings
            );
        }
        let h = self.cfg.hidden_size;
        let x = self.word.embedding(ids)?.reshape(&[b * t, h])?;
        let pos_type = self
            .position
            .narrow(0, 0, t)?
            .add(&self.token_type.narrow(0, 0, 1)?)?
            .expand(&[b, t, h])?
            .contiguous()?
            .reshape(&[b * t, h])?;
        let zero = Tensor::zeros(&[h], DType::F32)?;
        let n = &self.emb_norm;
        kernels::residual_layer_norm_(&x, &zero, &pos_type, (&n.w, &n.b), self.cfg.layer_norm_eps)?;
        let keep = mask.to_dtype(DType::F32)?.to_vec::<f32>()?;
        let mut x = x;
        for layer in &self.layers {
            x = self.layer(layer, &x, &keep, b, t)?;
        }
        x.reshape(&[b, t, h])
    }

    fn layer(&self, l: &Layer, x: &Tensor, keep: &[f32], b: usize, t: usize) -> Result<Tensor> {
        let h = self.cfg.hidden_size;
        let nh = self.cfg.num_attention_heads;
        let dh = h / nh;
        let eps = self.cfg.layer_norm_eps;
        // [B·T, 3H] viewed as [B, T, 3, heads, dh]; q, k, v are strided views of it, so the
        // batched products below read the heads in place.
        let qkv = x.matmul(&l.qkv.w)?;
        kernels::bias_act_(&qkv, &l.qkv.b, None)?;
        let qkv = qkv.reshape(&[b, t, 3, nh, dh])?;
        let part = |i: usize| -> Result<Tensor> {
            qkv.narrow(2, i, 1)?.squeeze(2)?.permute(&[0, 2, 1, 3])
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let probs = q.matmul(&k.transpose(-1, -2)?)?;
        kernels::masked_softmax_(&probs, keep, b)?;
        let ctx = probs
            .matmul(&v)?
            .permute(&[0, 2, 1, 3])?
            .contiguous()?
            .reshape(&[b * t, h])?;
        let y = ctx.matmul(&l.attn_out.w)?;
        let n = &l.attn_norm;
        kernels::residual_layer_norm_(&y, &l.attn_out.b, x, (&n.w, &n.b), eps)?;
        let inner = y.matmul(&l.ffn_in.w)?;
        kernels::bias_act_(&inner, &l.ffn_in.b, Some(self.act))?;
        let out = inner.matmul(&l.ffn_out.w)?;
        let n = &l.ffn_norm;
        kernels::residual_layer_norm_(&out, &l.ffn_out.b, &y, (&n.w, &n.b), eps)?;
        Ok(out)
    }
}

/// Mean of `hidden` `[B, T, H]` over the positions where `mask` `[B, T]` is nonzero, then
/// scaled to unit L2 norm (sentence-transformers' mean pooling and `Normalize`): `[B, H]`.
pub fn mean_pool_normalized(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let op = "mean_pool_normalized";
    if hidden.rank() != 3 || mask.shape() != &hidden.shape()[..2] {
        crate::bail!(
            op,
            "hidden must be [B, T, H] and mask [B, T], found {:?} and {:?}",
            hidden.shape(),
            mask.shape()
        );
    }
    let m = mask.to_dtype(hidden.dtype())?.unsqueeze(-1)?;
    // sentence-transformers clamps the count to 1e-9, so an all-padding row pools to zeros.
    let count = m.sum(&[1], false)?.clamp(1e-9, f64::INFINITY)?;
    let mean = hidden.mul(&m)?.sum(&[1], false)?.div(&count)?;
    // F.normalize: divide by max(‖v‖, 1e-12).
    let norm = mean
        .square()?
        .sum(&[-1], true)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    mean.div(&norm)
}
