//! The sentence panel's model: a BERT encoder and its tokenizer from the bytes of a Hugging
//! Face model directory's files (the user picks them, or the page fetches them).

use fukai::io::parse_safetensors;
use fukai::models::sentence::pad_batch;
use fukai::models::{mean_pool_normalized, BertConfig, BertModel};
use fukai::text::hf::HfTokenizer;
use fukai::{Error, Result};

/// A sentence encoder: tokenizer, BERT, mean pooling over the tokens, L2 normalization.
pub struct SentenceModel {
    tokenizer: HfTokenizer,
    model: BertModel,
}

impl SentenceModel {
    /// Builds the encoder from `config.json`, `model.safetensors`, `tokenizer.json` and, when
    /// the directory has one, `sentence_bert_config.json` (its `max_seq_length` truncates
    /// inputs, as sentence-transformers does; else the model's positions do). Each error names
    /// the file it is about.
    pub fn from_files(
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
        let file = parse_safetensors(weights, "model.safetensors")?;
        let model = BertModel::from_weights(cfg, &file)?;
        let mut tokenizer = HfTokenizer::from_bytes(tokenizer_json, "tokenizer.json")?;
        let positions = model.config().max_position_embeddings;
        let max_len = match sentence_bert_config {
            Some(b) => max_seq_length(b)?.map_or(positions, |n| n.min(positions)),
            None => positions,
        };
        tokenizer.set_max_len(Some(max_len))?;
        Ok(SentenceModel { tokenizer, model })
    }

    /// Token ids of `text`, special tokens included, truncated as the model needs.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text)
    }

    /// The unit-length embedding of `text`.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let ids = self.tokenize(text)?;
        self.embed_ids(&ids)
    }

    /// The unit-length embedding of already tokenized text.
    pub fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let _g = fukai::no_grad();
        let (ids, mask) = pad_batch(&[ids]);
        let hidden = self.model.forward(&ids, &mask)?;
        mean_pool_normalized(&hidden, &mask)?.to_vec::<f32>()
    }

    /// Width of the embeddings.
    pub fn dim(&self) -> usize {
        self.model.config().hidden_size
    }
}

/// `max_seq_length` of a `sentence_bert_config.json` (None when it has none).
fn max_seq_length(bytes: &[u8]) -> Result<Option<usize>> {
    let err = |msg: String| Error::Format {
        file: "sentence_bert_config.json".into(),
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
