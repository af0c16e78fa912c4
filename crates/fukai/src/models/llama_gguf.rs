//! A LLaMA-family model, its tokenizer and its chat template from one GGUF file (llama.cpp's
//! format): the config from the `{arch}.*` metadata, the weights (kept in their blocks) renamed
//! to Hugging Face's names (with the query/key rows un-permuted back to the rotate-half layout),
//! the vocabulary from `tokenizer.ggml.*` and the template from `tokenizer.chat_template`.
//!
//! ```no_run
//! use fukai::io::GgufFile;
//! use fukai::models::Llama;
//! use fukai::text::{ChatMessage, GgufTokenizer};
//! let file = GgufFile::open("smollm2-135m-instruct-q4_1.gguf")?;
//! let model = Llama::from_gguf(&file)?;
//! let tok = GgufTokenizer::from_gguf(&file)?;
//! let prompt = fukai::text::ChatTemplate::from_gguf(&file)?
//!     .render(&[ChatMessage::new("user", "What is 2+2?")], true)?;
//! let ids = tok.encode(&prompt, false)?;
//! let mut caches = model.new_caches();
//! let logits = model.step(&ids, &mut caches)?; // the next token's logits
//! # Ok::<(), fukai::Error>(())
//! ```

use super::llama::{unpermute_qk_gguf, Llama, LlamaConfig, RopeScaling};
use crate::bail;
use crate::error::{Error, Result};
use crate::io::GgufFile;
use crate::quant::QMatrix;
use crate::tensor::{DType, Tensor};
use crate::text::{ChatTemplate, GgufTokenizer, GgufVocab};
use std::collections::HashMap;

/// Architectures whose GGUF tensors and metadata follow llama.cpp's `llama` layout.
const LLAMA_ARCHS: [&str; 1] = ["llama"];

fn format_err(file: &GgufFile, msg: String) -> Error {
    Error::Format {
        file: file.source().to_string(),
        msg,
    }
}

/// `general.architecture`, checked to be one this loader reads.
fn arch(file: &GgufFile) -> Result<&str> {
    let arch = file.get_str("general.architecture")?;
    if !LLAMA_ARCHS.contains(&arch) {
        return Err(format_err(
            file,
            format!(
                "field \"general.architecture\": expected one of {LLAMA_ARCHS:?}, found {arch:?}"
            ),
        ));
    }
    Ok(arch)
}

fn usize_of(file: &GgufFile, key: &str) -> Result<usize> {
    Ok(file.get_u64(key)? as usize)
}

impl LlamaConfig {
    /// The config a GGUF file's metadata describes (`llama.block_count`,
    /// `llama.embedding_length`, …); a missing or inconsistent field is an error naming it.
    pub fn from_gguf(file: &GgufFile) -> Result<LlamaConfig> {
        let a = arch(file)?;
        let key = |k: &str| format!("{a}.{k}");
        let hidden = usize_of(file, &key("embedding_length"))?;
        let heads = usize_of(file, &key("attention.head_count"))?;
        let kv_heads = match file.get(&key("attention.head_count_kv")) {
            Some(_) => usize_of(file, &key("attention.head_count_kv"))?,
            None => heads,
        };
        let head_dim = hidden.checked_div(heads).unwrap_or(0);
        if file.get(&key("rope.dimension_count")).is_some() {
            let rot = usize_of(file, &key("rope.dimension_count"))?;
            if rot != head_dim {
                return Err(format_err(
                    file,
                    format!(
                        "field {:?}: partial rotary embeddings are not supported: expected {head_dim} (the head width), found {rot}",
                        key("rope.dimension_count")
                    ),
                ));
            }
        }
        let vocab = match file.get(&key("vocab_size")) {
            Some(_) => usize_of(file, &key("vocab_size"))?,
            None => file.get_str_array("tokenizer.ggml.tokens")?.len(),
        };
        let rope_scaling = match file.get(&key("rope.scaling.type")) {
            None => RopeScaling::None,
            Some(_) => match file.get_str(&key("rope.scaling.type"))? {
                "none" => RopeScaling::None,
                "linear" => RopeScaling::Linear {
                    factor: file.get_f32(&key("rope.scaling.factor"))? as f64,
                },
                other => {
                    return Err(format_err(
                        file,
                        format!(
                            "field {:?}: expected \"none\" or \"linear\", found {other:?}",
                            key("rope.scaling.type")
                        ),
                    ))
                }
            },
        };
        if file.tensor_info("rope_freqs.weight").is_some() {
            return Err(format_err(
                file,
                "tensor \"rope_freqs.weight\": stored rotary frequency factors (LLaMA 3.1's scaling) are not supported yet".into(),
            ));
        }
        let rope_theta = match file.get(&key("rope.freq_base")) {
            Some(_) => file.get_f32(&key("rope.freq_base"))? as f64,
            None => 10_000.0,
        };
        let cfg = LlamaConfig {
            vocab,
            hidden,
            intermediate: usize_of(file, &key("feed_forward_length"))?,
            layers: usize_of(file, &key("block_count"))?,
            heads,
            kv_heads,
            head_dim,
            rope_theta,
            rope_scaling,
            rms_eps: file.get_f32(&key("attention.layer_norm_rms_epsilon"))? as f64,
            // The head is the embedding table when the file stores no separate one.
            tie_embeddings: file.tensor_info("output.weight").is_none(),
            max_context: usize_of(file, &key("context_length"))?,
        };
        cfg.validate()
            .map_err(|e| format_err(file, format!("inconsistent metadata: {e}")))?;
        Ok(cfg)
    }
}

/// The Hugging Face name of GGUF tensor `name` and, for query/key weights, the head count
/// their rows are permuted by; `None` for tensors a LLaMA model does not load.
fn hf_name(name: &str, cfg: &LlamaConfig) -> Option<(String, Option<usize>)> {
    let plain = |s: &str| Some((s.to_string(), None));
    match name {
        "token_embd.weight" => return plain("model.embed_tokens.weight"),
        "output_norm.weight" => return plain("model.norm.weight"),
        "output.weight" => return plain("lm_head.weight"),
        _ => {}
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let p = format!("model.layers.{layer}");
    let (hf, heads) = match part {
        "attn_norm.weight" => ("input_layernorm.weight", None),
        "ffn_norm.weight" => ("post_attention_layernorm.weight", None),
        "attn_q.weight" => ("self_attn.q_proj.weight", Some(cfg.heads)),
        "attn_k.weight" => ("self_attn.k_proj.weight", Some(cfg.kv_heads)),
        "attn_v.weight" => ("self_attn.v_proj.weight", None),
        "attn_output.weight" => ("self_attn.o_proj.weight", None),
        "ffn_gate.weight" => ("mlp.gate_proj.weight", None),
        "ffn_up.weight" => ("mlp.up_proj.weight", None),
        "ffn_down.weight" => ("mlp.down_proj.weight", None),
        _ => return None,
    };
    Some((format!("{p}.{hf}"), heads))
}

impl Llama {
    /// The model a GGUF file holds. Weights in a quantized block format stay in it, shared
    /// with the file's memory map, and the projections multiply on the blocks (as llama.cpp);
    /// any other use of them (training through them, a LoRA merge) reads their f32 values.
    /// A tensor this layout does not know is an error naming it. Its caches keep keys and
    /// values in f16, as llama.cpp's do ([`Llama::set_kv_dtype`] changes that).
    pub fn from_gguf(file: &GgufFile) -> Result<Llama> {
        Llama::load_gguf(file, true)
    }

    /// The model a GGUF file holds with every weight dequantized to f32: the numbers of a
    /// dequantized reference (`transformers` loading the file), at 4–8× the memory.
    pub fn from_gguf_f32(file: &GgufFile) -> Result<Llama> {
        Llama::load_gguf(file, false)
    }

    fn load_gguf(file: &GgufFile, keep_blocks: bool) -> Result<Llama> {
        let cfg = LlamaConfig::from_gguf(file)?;
        let mut tensors = HashMap::with_capacity(file.tensors().len());
        for info in file.tensors() {
            let Some((name, heads)) = hf_name(&info.name, &cfg) else {
                return Err(format_err(
                    file,
                    format!("tensor {:?}: not part of a LLaMA model's layout", info.name),
                ));
            };
            // Matrices in a block format stay in it (multiplied on the blocks); the rest
            // (norms, f16/f32 weights) become f32.
            let blocks = keep_blocks && QMatrix::supports(info.ggml_type) && info.shape.len() == 2;
            let w = if blocks {
                Tensor::from_qmatrix(file.qmatrix(&info.name)?)
            } else {
                file.tensor_f32(&info.name)?
            };
            let w = match heads {
                Some(h) => unpermute_qk_gguf(&w, h)?,
                None => w,
            };
            tensors.insert(name, w);
        }
        let mut model = Llama::from_tensors(cfg, tensors)
            .map_err(|e| format_err(file, format!("building the model: {e}")))?;
        if keep_blocks {
            model.set_kv_dtype(DType::F16)?;
        }
        Ok(model)
    }
}

/// An optional metadata id.
fn opt_id(file: &GgufFile, key: &str) -> Result<Option<u32>> {
    file.get(key).map(|_| file.get_u32(key)).transpose()
}

impl GgufVocab {
    /// The `tokenizer.ggml.*` fields of a GGUF file.
    pub fn from_gguf(file: &GgufFile) -> Result<GgufVocab> {
        let strings = |k: &str| -> Result<Vec<String>> {
            Ok(match file.get(k) {
                Some(_) => file
                    .get_str_array(k)?
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
                None => Vec::new(),
            })
        };
        let flag = |k: &str, default: bool| -> Result<bool> {
            file.get(k).map_or(Ok(default), |_| file.get_bool(k))
        };
        Ok(GgufVocab {
            model: file.get_str("tokenizer.ggml.model")?.to_string(),
            pre: file
                .get("tokenizer.ggml.pre")
                .map(|_| file.get_str("tokenizer.ggml.pre").map(str::to_string))
                .transpose()?,
            tokens: strings("tokenizer.ggml.tokens")?,
            merges: strings("tokenizer.ggml.merges")?,
            token_type: match file.get("tokenizer.ggml.token_type") {
                Some(_) => file.get_i32_array("tokenizer.ggml.token_type")?,
                None => Vec::new(),
            },
            scores: match file.get("tokenizer.ggml.scores") {
                Some(_) => file.get_f32_array("tokenizer.ggml.scores")?,
                None => Vec::new(),
            },
            bos: opt_id(file, "tokenizer.ggml.bos_token_id")?,
            eos: opt_id(file, "tokenizer.ggml.eos_token_id")?,
            pad: opt_id(file, "tokenizer.ggml.padding_token_id")?,
            unk: opt_id(file, "tokenizer.ggml.unknown_token_id")?,
            add_bos: flag("tokenizer.ggml.add_bos_token", false)?,
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix", false)?,
        })
    }
}

impl GgufTokenizer {
    /// The tokenizer of a GGUF file.
    pub fn from_gguf(file: &GgufFile) -> Result<GgufTokenizer> {
        GgufTokenizer::new(GgufVocab::from_gguf(file)?)
            .map_err(|e| format_err(file, format!("tokenizer: {e}")))
    }
}

impl ChatTemplate {
    /// `tokenizer.chat_template` of a GGUF file, with its BOS and EOS tokens' text.
    pub fn from_gguf(file: &GgufFile) -> Result<ChatTemplate> {
        let tokens = file.get_str_array("tokenizer.ggml.tokens")?;
        let text = |key: &str| -> Result<String> {
            Ok(match opt_id(file, key)? {
                Some(id) => match tokens.get(id as usize) {
                    Some(t) => t.to_string(),
                    None => bail!(
                        "gguf",
                        "{}: field {key:?}: id {id} is outside the {} tokens",
                        file.source(),
                        tokens.len()
                    ),
                },
                None => String::new(),
            })
        };
        ChatTemplate::new(
            file.get_str("tokenizer.chat_template")?,
            &text("tokenizer.ggml.bos_token_id")?,
            &text("tokenizer.ggml.eos_token_id")?,
        )
    }
}
