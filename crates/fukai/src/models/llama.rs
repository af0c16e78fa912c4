//! LLaMA-family decoders (LLaMA 2/3, SmolLM2, TinyLlama, ...): RMSNorm, rotary positions
//! (optionally scaled), grouped-query causal attention with a key/value cache, and a SwiGLU
//! feed-forward, built from the library's own layers so the forward pass is differentiable.
//!
//! Weights come in as plain named tensors with Hugging Face's names
//! (`model.layers.N.self_attn.q_proj.weight`, ...), so any loader (safetensors, GGUF) can feed
//! [`Llama::from_tensors`]. GGUF files written by llama.cpp's converter store the `q_proj` and
//! `k_proj` rows of each head permuted for its interleaved RoPE; undo that with
//! [`unpermute_qk_gguf`] before handing them over (the other tensors are stored as they are,
//! under GGUF's own names, which the loader maps to these).

use super::{Model, Task};
use crate::bail;
use crate::error::{Error, Result};
use crate::nn::{
    join, Embedding, FeedForward, KvCache, Linear, Mask, Module, MultiHeadAttention, RmsNorm, Rope,
    TensorKind, TransformerEncoderLayer,
};
use crate::tensor::{DType, Tensor};
use std::collections::HashMap;

/// How rotary frequencies are stretched for contexts longer than the model was trained on.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor` (every frequency divided by it).
    Linear {
        /// Stretch, > 0.
        factor: f64,
    },
    /// LLaMA 3.1's: long wavelengths divided by `factor`, short ones kept, a smooth blend
    /// between `original_context / low_freq_factor` and `original_context / high_freq_factor`.
    Llama3 {
        /// Stretch of the long wavelengths, > 0.
        factor: f64,
        /// Wavelengths above `original_context / low_freq_factor` are fully stretched.
        low_freq_factor: f64,
        /// Wavelengths below `original_context / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// Context the model was pretrained with.
        original_context: usize,
    },
}

/// Shape and constants of a LLaMA-family model.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Vocabulary size (rows of the embedding).
    pub vocab: usize,
    /// Model width.
    pub hidden: usize,
    /// Width of the SwiGLU feed-forward.
    pub intermediate: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`; fewer is grouped-query attention).
    pub kv_heads: usize,
    /// Width of one head; must be `hidden / heads` (the attention layer's layout).
    pub head_dim: usize,
    /// RoPE frequency base.
    pub rope_theta: f64,
    /// RoPE frequency scaling.
    pub rope_scaling: RopeScaling,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// The output head is the embedding table.
    pub tie_embeddings: bool,
    /// Longest sequence (prompt and generated tokens together).
    pub max_context: usize,
}

impl LlamaConfig {
    /// Checks that the numbers describe a model this layout can run; the error names the field.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("vocab", self.vocab),
            ("hidden", self.hidden),
            ("intermediate", self.intermediate),
            ("layers", self.layers),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("head_dim", self.head_dim),
            ("max_context", self.max_context),
        ] {
            if v == 0 {
                bail!("llama", "field `{name}` must be positive, found 0");
            }
        }
        if self.vocab > u32::MAX as usize {
            bail!(
                "llama",
                "field `vocab`: at most {} tokens, found {}",
                u32::MAX,
                self.vocab
            );
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            bail!(
                "llama",
                "field `kv_heads`: must divide heads {}, found {}",
                self.heads,
                self.kv_heads
            );
        }
        if self.head_dim * self.heads != self.hidden {
            bail!(
                "llama",
                "field `head_dim`: expected hidden / heads = {} / {}, found {}",
                self.hidden,
                self.heads,
                self.head_dim
            );
        }
        if !self.head_dim.is_multiple_of(2) {
            bail!(
                "llama",
                "field `head_dim`: RoPE needs an even width, found {}",
                self.head_dim
            );
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            bail!(
                "llama",
                "field `rope_theta`: expected a finite number > 1, found {}",
                self.rope_theta
            );
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            bail!(
                "llama",
                "field `rms_eps`: expected a finite number > 0, found {}",
                self.rms_eps
            );
        }
        let positive = |name: &str, v: f64| -> Result<()> {
            if !(v.is_finite() && v > 0.0) {
                bail!(
                    "llama",
                    "field `rope_scaling.{name}`: expected a finite number > 0, found {v}"
                );
            }
            Ok(())
        };
        match self.rope_scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => positive("factor", factor)?,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_context,
            } => {
                positive("factor", factor)?;
                positive("low_freq_factor", low_freq_factor)?;
                positive("high_freq_factor", high_freq_factor)?;
                if high_freq_factor <= low_freq_factor {
                    bail!(
                        "llama",
                        "field `rope_scaling.high_freq_factor`: expected > low_freq_factor {low_freq_factor}, found {high_freq_factor}"
                    );
                }
                if original_context == 0 {
                    bail!(
                        "llama",
                        "field `rope_scaling.original_context` must be positive, found 0"
                    );
                }
            }
        }
        Ok(())
    }

    /// The rotation speed of each of a head's `head_dim / 2` pairs, scaling applied.
    pub fn inv_freq(&self) -> Vec<f64> {
        let hd = self.head_dim as f64;
        let base = (0..self.head_dim / 2).map(|i| self.rope_theta.powf(-2.0 * i as f64 / hd));
        match self.rope_scaling {
            RopeScaling::None => base.collect(),
            RopeScaling::Linear { factor } => base.map(|f| f / factor).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor: low,
                high_freq_factor: high,
                original_context,
            } => {
                let ctx = original_context as f64;
                base.map(|f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen > ctx / low {
                        f / factor
                    } else if wavelen < ctx / high {
                        f
                    } else {
                        let smooth = (ctx / wavelen - low) / (high - low);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
            }
        }
    }

    /// Reads a Hugging Face `config.json` of `model_type` "llama" (rope settings either in
    /// `rope_theta` / `rope_scaling` or in transformers 5's `rope_parameters`); `file` names it
    /// in errors.
    pub fn from_hf_json(text: &str, file: &str) -> Result<Self> {
        let err = |msg: String| Error::Format {
            file: file.to_string(),
            msg,
        };
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        match v.get("model_type").and_then(|m| m.as_str()) {
            Some("llama") => {}
            other => {
                return Err(err(format!(
                    "field \"model_type\": expected \"llama\", found {other:?}"
                )))
            }
        }
        let uint = |k: &str| -> Result<usize> {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| err(format!("field {k:?}: expected a non-negative integer")))
        };
        let float_in = |obj: &serde_json::Value, k: &str| -> Result<Option<f64>> {
            match obj.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(x) => x
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| err(format!("field {k:?}: expected a number, found {x}"))),
            }
        };
        let (hidden, heads) = (uint("hidden_size")?, uint("num_attention_heads")?);
        let rope = v
            .get("rope_parameters")
            .or_else(|| v.get("rope_scaling"))
            .filter(|r| !r.is_null())
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let rope_theta = float_in(&rope, "rope_theta")?
            .or(float_in(&v, "rope_theta")?)
            .unwrap_or(10000.0);
        let kind = rope
            .get("rope_type")
            .or_else(|| rope.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("default");
        let need = |k: &str| -> Result<f64> {
            float_in(&rope, k)?.ok_or_else(|| err(format!("field \"rope_scaling.{k}\": missing")))
        };
        let rope_scaling = match kind {
            "default" => RopeScaling::None,
            "linear" => RopeScaling::Linear {
                factor: need("factor")?,
            },
            "llama3" => RopeScaling::Llama3 {
                factor: need("factor")?,
                low_freq_factor: need("low_freq_factor")?,
                high_freq_factor: need("high_freq_factor")?,
                original_context: need("original_max_position_embeddings")? as usize,
            },
            other => {
                return Err(err(format!(
                    "field \"rope_type\": {other:?} is not supported (default, linear, llama3)"
                )))
            }
        };
        let cfg = LlamaConfig {
            vocab: uint("vocab_size")?,
            hidden,
            intermediate: uint("intermediate_size")?,
            layers: uint("num_hidden_layers")?,
            heads,
            kv_heads: v
                .get("num_key_value_heads")
                .and_then(|x| x.as_u64())
                .map_or(heads, |x| x as usize),
            head_dim: v
                .get("head_dim")
                .and_then(|x| x.as_u64())
                .map_or(hidden.checked_div(heads).unwrap_or(0), |x| x as usize),
            rope_theta,
            rope_scaling,
            rms_eps: float_in(&v, "rms_norm_eps")?.unwrap_or(1e-6),
            tie_embeddings: v
                .get("tie_word_embeddings")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            max_context: uint("max_position_embeddings")?,
        };
        for (k, on) in [("attention_bias", true), ("mlp_bias", true)] {
            if v.get(k).and_then(|x| x.as_bool()) == Some(on) {
                return Err(err(format!(
                    "field {k:?}: biases are not supported, found true"
                )));
            }
        }
        cfg.validate()
            .map_err(|e| err(format!("inconsistent config: {e}")))?;
        Ok(cfg)
    }
}

/// Undoes the row permutation llama.cpp's `convert_hf_to_gguf.py` applies to `q_proj` (with
/// `n_heads` = query heads) and `k_proj` (with `n_heads` = key/value heads): within each head
/// GGUF interleaves the two rotary halves (rows `0, hd/2, 1, hd/2+1, ...`), for its pairwise
/// RoPE; Hugging Face's "rotate half" layout keeps them apart. `w` is `[n_heads·hd, in]`.
pub fn unpermute_qk_gguf(w: &Tensor, n_heads: usize) -> Result<Tensor> {
    let rows = match w.shape() {
        &[r, _] => r,
        s => bail!("unpermute_qk_gguf", "weight must be 2-D, found {s:?}"),
    };
    if n_heads == 0 || !rows.is_multiple_of(2 * n_heads) {
        bail!(
            "unpermute_qk_gguf",
            "rows {rows} must split into {n_heads} heads of even width"
        );
    }
    // Hugging Face row (h, j, i) (half j, pair i) is GGUF row (h, i, j).
    let (hd, half) = (rows / n_heads, rows / n_heads / 2);
    let order: Vec<usize> = (0..rows)
        .map(|r| {
            let (h, j, i) = (r / hd, r % hd / half, r % half);
            h * hd + 2 * i + j
        })
        .collect();
    // Quantized rows move as whole blocks (tensor/quantized.rs), never dequantized.
    if let Some(q) = w.qmatrix() {
        return Ok(Tensor::from_qmatrix(q.select_rows(&order)?));
    }
    let idx = Tensor::from_vec(order.iter().map(|&r| r as i64).collect(), &[rows])?;
    w.index_select(0, &idx)
}

/// A LLaMA-family causal language model.
pub struct Llama {
    embed: Embedding,
    pub(super) blocks: Vec<TransformerEncoderLayer>,
    norm: RmsNorm,
    /// `None` when tied to the embedding.
    lm_head: Option<Linear>,
    cfg: LlamaConfig,
    /// A LoRA adapter applied on top of the (frozen) weights.
    pub(super) lora: Option<super::lora::LoraAdapter>,
    /// What [`Llama::new_caches`] store keys and values as.
    kv_dtype: DType,
}

/// Takes the named tensors out of the map, checking each one's shape.
struct Named {
    map: HashMap<String, Tensor>,
}

impl Named {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.map.remove(name).ok_or_else(|| {
            crate::error::op_err(
                "llama",
                format!("missing tensor {name:?} (expected shape {shape:?})"),
            )
        })?;
        if t.shape() != shape {
            bail!(
                "llama",
                "tensor {name:?}: expected shape {shape:?} (from the config), found {:?}",
                t.shape()
            );
        }
        if !t.dtype().is_float() {
            bail!(
                "llama",
                "tensor {name:?}: expected a float dtype, found {}",
                t.dtype()
            );
        }
        t.to_dtype(DType::F32)
    }
    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        Ok(Linear {
            weight: self.take(&format!("{name}.weight"), &[out, inp])?,
            bias: None,
        })
    }
    fn norm(&mut self, name: &str, dim: usize, eps: f64) -> Result<RmsNorm> {
        let mut n = RmsNorm::new(dim, eps)?;
        n.weight = self.take(&format!("{name}.weight"), &[dim])?;
        Ok(n)
    }
}

impl Llama {
    /// Builds the model from tensors named as in Hugging Face's `LlamaForCausalLM` state dict
    /// (any float dtype, converted to f32). With tied embeddings `lm_head.weight` may be absent
    /// (and is ignored if present); a missing, misshapen or unexpected tensor is an error naming
    /// it. Parameters keep the `requires_grad` they came with.
    pub fn from_tensors(cfg: LlamaConfig, tensors: HashMap<String, Tensor>) -> Result<Self> {
        cfg.validate()?;
        let (d, kvd, ff) = (cfg.hidden, cfg.kv_heads * cfg.head_dim, cfg.intermediate);
        let mut w = Named { map: tensors };
        let embed = Embedding {
            weight: w.take("model.embed_tokens.weight", &[cfg.vocab, d])?,
        };
        let rope = Rope::from_inv_freq(&cfg.inv_freq(), cfg.max_context)?;
        let mut blocks = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let p = format!("model.layers.{i}");
            let qkv = Tensor::cat(
                &[
                    w.take(&format!("{p}.self_attn.q_proj.weight"), &[d, d])?,
                    w.take(&format!("{p}.self_attn.k_proj.weight"), &[kvd, d])?,
                    w.take(&format!("{p}.self_attn.v_proj.weight"), &[kvd, d])?,
                ],
                0,
            )?;
            let out = w.linear(&format!("{p}.self_attn.o_proj"), d, d)?;
            let mut self_attn =
                MultiHeadAttention::from_parts(cfg.heads, cfg.kv_heads, qkv, None, out)?;
            self_attn.rope = Some(rope.clone());
            let ffn = FeedForward::SwiGlu {
                w1: w.linear(&format!("{p}.mlp.gate_proj"), ff, d)?,
                w2: w.linear(&format!("{p}.mlp.down_proj"), d, ff)?,
                w3: w.linear(&format!("{p}.mlp.up_proj"), ff, d)?,
            };
            blocks.push(TransformerEncoderLayer {
                self_attn,
                ffn,
                norm1: Box::new(w.norm(&format!("{p}.input_layernorm"), d, cfg.rms_eps)?),
                norm2: Box::new(w.norm(
                    &format!("{p}.post_attention_layernorm"),
                    d,
                    cfg.rms_eps,
                )?),
                norm_first: true,
            });
        }
        let norm = w.norm("model.norm", d, cfg.rms_eps)?;
        let lm_head = if cfg.tie_embeddings {
            w.map.remove("lm_head.weight");
            None
        } else {
            Some(w.linear("lm_head", cfg.vocab, d)?)
        };
        // Rotary tables are computed, not loaded.
        w.map.retain(|k, _| !k.ends_with("rotary_emb.inv_freq"));
        if let Some(extra) = w.map.keys().min() {
            bail!(
                "llama",
                "unexpected tensor {extra:?} ({} left over); a LLaMA model has none",
                w.map.len()
            );
        }
        Ok(Llama {
            embed,
            blocks,
            norm,
            lm_head,
            cfg,
            lora: None,
            kv_dtype: DType::F32,
        })
    }

    /// A model of config `cfg` with random weights (N(0, 0.02²) projections and embedding,
    /// unit norms) drawn from a generator seeded with `seed`: for tests and examples that need
    /// a small LLaMA and no file.
    pub fn random(cfg: LlamaConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let (d, kvd, ff) = (cfg.hidden, cfg.kv_heads * cfg.head_dim, cfg.intermediate);
        let mut gen = crate::rng::Generator::new(seed);
        let mut normal = |shape: &[usize]| -> Result<Tensor> {
            let n = shape.iter().product();
            let v: Vec<f32> = gen
                .normal_f64(n)
                .into_iter()
                .map(|x| (0.02 * x) as f32)
                .collect();
            Tensor::from_vec(v, shape)
        };
        let mut t = HashMap::new();
        t.insert(
            "model.embed_tokens.weight".to_string(),
            normal(&[cfg.vocab, d])?,
        );
        for i in 0..cfg.layers {
            let p = format!("model.layers.{i}");
            for (name, shape) in [
                ("self_attn.q_proj", [d, d]),
                ("self_attn.k_proj", [kvd, d]),
                ("self_attn.v_proj", [kvd, d]),
                ("self_attn.o_proj", [d, d]),
                ("mlp.gate_proj", [ff, d]),
                ("mlp.up_proj", [ff, d]),
                ("mlp.down_proj", [d, ff]),
            ] {
                t.insert(format!("{p}.{name}.weight"), normal(&shape)?);
            }
            for n in ["input_layernorm", "post_attention_layernorm"] {
                t.insert(format!("{p}.{n}.weight"), Tensor::ones(&[d], DType::F32)?);
            }
        }
        t.insert(
            "model.norm.weight".to_string(),
            Tensor::ones(&[d], DType::F32)?,
        );
        if !cfg.tie_embeddings {
            t.insert("lm_head.weight".to_string(), normal(&[cfg.vocab, d])?);
        }
        Llama::from_tensors(cfg, t)
    }

    /// The config.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Fresh key/value caches, one per layer, storing [`Llama::kv_dtype`].
    pub fn new_caches(&self) -> Vec<KvCache> {
        vec![KvCache::with_dtype(self.kv_dtype); self.blocks.len()]
    }

    /// What the caches store keys and values as: f32 for a model built from f32 tensors, f16
    /// for one read from GGUF blocks (llama.cpp's default: half the memory a decode step
    /// reads; attention computes in f32 on the widened values).
    pub fn kv_dtype(&self) -> DType {
        self.kv_dtype
    }

    /// Sets [`Llama::kv_dtype`] for caches made from now on: f32 or f16.
    pub fn set_kv_dtype(&mut self, dtype: DType) -> Result<()> {
        if !matches!(dtype, DType::F32 | DType::F16) {
            bail!(
                "llama",
                "the key/value cache must be f32 or f16, found {dtype}"
            );
        }
        self.kv_dtype = dtype;
        Ok(())
    }

    /// Final hidden states `[B, T, hidden]` for ids `[B, T]` (i64); with `caches` the ids
    /// continue the cached sequence and the caches grow by T.
    pub(super) fn hidden(&self, ids: &Tensor, caches: Option<&mut [KvCache]>) -> Result<Tensor> {
        if ids.rank() != 2 || ids.shape()[1] == 0 {
            bail!(
                "llama",
                "token ids must be [B, T] with T >= 1, found {:?}",
                ids.shape()
            );
        }
        let offset = caches
            .as_ref()
            .and_then(|c| c.first())
            .map_or(0, |c| c.len());
        let t = ids.shape()[1];
        if offset + t > self.cfg.max_context {
            bail!(
                "llama",
                "{} positions exceed the context of {}",
                offset + t,
                self.cfg.max_context
            );
        }
        let mut x = self.embed.forward(ids)?;
        let mask = Mask::causal();
        match caches {
            Some(caches) => {
                if caches.len() != self.blocks.len() {
                    bail!(
                        "llama",
                        "expected {} caches (one per layer), found {}",
                        self.blocks.len(),
                        caches.len()
                    );
                }
                for (i, (b, c)) in self.blocks.iter().zip(caches.iter_mut()).enumerate() {
                    x = match &self.lora {
                        Some(l) => l.block(i, b, &x, Some(c))?,
                        None => b.forward_masked(&x, &mask, Some(c))?,
                    };
                }
            }
            None => {
                for (i, b) in self.blocks.iter().enumerate() {
                    x = match &self.lora {
                        Some(l) => l.block(i, b, &x, None)?,
                        None => b.forward_masked(&x, &mask, None)?,
                    };
                }
            }
        }
        self.norm.forward(&x)
    }

    pub(super) fn head(&self, x: &Tensor) -> Result<Tensor> {
        match &self.lm_head {
            Some(h) => h.forward(x),
            None => x.linear(&self.embed.weight, None),
        }
    }

    /// Logits `[B, T, vocab]` for ids `[B, T]` (i64), differentiable; with `caches`, the ids
    /// continue the cached sequence (positions start after it) and the caches grow by T.
    pub fn logits(&self, ids: &Tensor, caches: Option<&mut [KvCache]>) -> Result<Tensor> {
        self.head(&self.hidden(ids, caches)?)
    }

    /// Feeds `ids` after the cached ones in one pass (a whole prompt, or one decoded token)
    /// and returns the logits of the last position only: the head, the widest product, runs
    /// on one row. Inference: no graph is recorded (use [`Llama::logits`] to train).
    pub fn step(&self, ids: &[u32], caches: &mut [KvCache]) -> Result<Vec<f32>> {
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.cfg.vocab) {
            bail!(
                "llama",
                "token id {bad} is outside the vocabulary of {}",
                self.cfg.vocab
            );
        }
        let x = Tensor::from_vec(ids.iter().map(|&i| i as i64).collect(), &[1, ids.len()])?;
        // On a pool worker, each of the step's ~200 parallel products hands work to the other
        // workers directly instead of waking the pool from outside and waiting to be woken.
        crate::parallel::on_pool(|| {
            // Grad mode is per thread and this runs on a pool worker: record nothing there
            // either (an adapter's parameters want gradients; logits as numbers need none, and
            // a recorded step would keep its keys and values out of an f16 cache).
            let _g = crate::no_grad();
            let h = self.hidden(&x, Some(caches))?;
            let last = h.narrow(1, ids.len() - 1, 1)?;
            self.head(&last)?
                .reshape(&[self.cfg.vocab])?
                .to_vec::<f32>()
        })
    }
}

impl Module for Llama {
    /// `logits(ids, None)`.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.logits(ids, None)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        self.embed.visit(&join(prefix, "embed_tokens"), f);
        for (i, b) in self.blocks.iter().enumerate() {
            b.visit(&join(prefix, &format!("layers.{i}")), f);
        }
        self.norm.visit(&join(prefix, "norm"), f);
        if let Some(h) = &self.lm_head {
            h.visit(&join(prefix, "lm_head"), f);
        }
    }
    fn describe(&self) -> String {
        let c = &self.cfg;
        format!(
            "Llama({} layers, width {}, {} heads / {} kv heads, context {})",
            c.layers, c.hidden, c.heads, c.kv_heads, c.max_context
        )
    }
}

impl Model for Llama {
    fn task(&self) -> Task {
        Task::LanguageModel
    }
}
