//! Sentence embeddings as sentence-transformers computes them: tokenize, encode with BERT,
//! mean-pool over the attention mask, L2-normalize.

use super::bert::{mean_pool_normalized, BertConfig, BertModel};
use crate::error::{Error, Result};
use crate::io::parse_safetensors;
use crate::tensor::Tensor;
use crate::text::hf::HfTokenizer;
use std::path::Path;

/// Texts per forward pass. Texts are grouped by length first, so little padding is computed.
const BATCH: usize = 32;

/// A tokenizer and an encoder from one model directory.
pub struct SentenceEmbedder {
    tokenizer: HfTokenizer,
    model: BertModel,
}

impl SentenceEmbedder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`. Inputs are
    /// truncated to `max_seq_length` of `sentence_bert_config.json` when the directory has one
    /// (as sentence-transformers does), else to the model's number of positions.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let model = BertModel::from_dir(dir)?;
        let tokenizer = HfTokenizer::from_file(dir.join("tokenizer.json"))?;
        let st_path = dir.join("sentence_bert_config.json");
        let st_config = match std::fs::read(&st_path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(Error::Io {
                    path: st_path.display().to_string(),
                    source,
                })
            }
        };
        let max_len = match &st_config {
            Some(b) => max_seq_length(b, &st_path.display().to_string())?,
            None => None,
        };
        Self::from_parts(model, tokenizer, max_len)
    }

    /// [`SentenceEmbedder::from_dir`] from the bytes of the directory's files (a browser has
    /// no paths): `config.json`, `model.safetensors`, `tokenizer.json` and, when the model has
    /// one, `sentence_bert_config.json`. Errors name the file they are about.
    pub fn from_bytes(
        config_json: &[u8],
        weights: &[u8],
        tokenizer_json: &[u8],
        sentence_bert_config: Option<&[u8]>,
    ) -> Result<Self> {
        let text = std::str::from_utf8(config_json).map_err(|e| Error::Format {
            file: "config.json".into(),
            msg: format!("not UTF-8 text: {e}"),
        })?;
        let cfg = BertConfig::from_json(text, "config.json")?;
        let model =
            BertModel::from_weights(cfg, &parse_safetensors(weights, "model.safetensors")?)?;
        let tokenizer = HfTokenizer::from_bytes(tokenizer_json, "tokenizer.json")?;
        let max_len = match sentence_bert_config {
            Some(b) => max_seq_length(b, "sentence_bert_config.json")?,
            None => None,
        };
        Self::from_parts(model, tokenizer, max_len)
    }

    /// Inputs truncated to `max_seq_length` (capped at the model's positions; None: the
    /// positions).
    fn from_parts(
        model: BertModel,
        mut tokenizer: HfTokenizer,
        max_seq_length: Option<usize>,
    ) -> Result<Self> {
        let positions = model.config().max_position_embeddings;
        tokenizer.set_max_len(Some(max_seq_length.map_or(positions, |n| n.min(positions))))?;
        Ok(SentenceEmbedder { tokenizer, model })
    }

    /// The tokenizer (already set to truncate as the model needs).
    pub fn tokenizer(&self) -> &HfTokenizer {
        &self.tokenizer
    }

    /// The encoder.
    pub fn model(&self) -> &BertModel {
        &self.model
    }

    /// Token ids of every text (special tokens included, truncated).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        texts.iter().map(|t| self.tokenizer.encode(t)).collect()
    }

    /// One unit-length embedding per text, in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let ids = self.tokenize(texts)?;
        self.embed_ids(&ids)
    }

    /// Embeddings of already tokenized texts, in input order.
    pub fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![Vec::new(); ids.len()];
        for group in order.chunks(BATCH) {
            let batch: Vec<&[u32]> = group.iter().map(|&i| ids[i].as_slice()).collect();
            let emb = self.embed_batch(&batch)?;
            let h = emb.shape()[1];
            let flat = emb.to_vec::<f32>()?;
            for (row, &i) in group.iter().enumerate() {
                out[i] = flat[row * h..(row + 1) * h].to_vec();
            }
        }
        Ok(out)
    }

    /// Embeddings `[B, hidden]` of one batch, right-padded to its longest member.
    pub fn embed_batch(&self, batch: &[&[u32]]) -> Result<Tensor> {
        let (ids, mask) = pad_batch(batch);
        let hidden = self.model.forward(&ids, &mask)?;
        mean_pool_normalized(&hidden, &mask)
    }
}

/// Ids `[B, T]` (I64, padded with 0) and mask `[B, T]` (F32) for sequences of up to T ids.
pub fn pad_batch(batch: &[&[u32]]) -> (Tensor, Tensor) {
    let t = batch.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut ids = vec![0i64; batch.len() * t];
    let mut mask = vec![0f32; batch.len() * t];
    for (r, seq) in batch.iter().enumerate() {
        for (c, &id) in seq.iter().enumerate() {
            ids[r * t + c] = i64::from(id);
            mask[r * t + c] = 1.0;
        }
    }
    let shape = [batch.len(), t];
    (
        Tensor::from_vec(ids, &shape).expect("length matches shape"),
        Tensor::from_vec(mask, &shape).expect("length matches shape"),
    )
}

/// `max_seq_length` of a `sentence_bert_config.json` (None when it has none); `file` names it
/// in errors.
fn max_seq_length(bytes: &[u8], file: &str) -> Result<Option<usize>> {
    let err = |msg: String| Error::Format {
        file: file.to_string(),
        msg,
    };
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| err(format!("not valid JSON: {e}")))?;
    match v.get("max_seq_length") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(n) => match n.as_u64() {
            Some(n) if n >= 2 => Ok(Some(n as usize)),
            _ => Err(err(format!(
                "field \"max_seq_length\": expected an integer of at least 2, found {n}"
            ))),
        },
    }
}
