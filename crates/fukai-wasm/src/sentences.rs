//! The sentence panel's model: fukai's [`SentenceEmbedder`] from the bytes of a Hugging Face
//! model directory's files (the user picks them, or the page fetches them).

use fukai::models::SentenceEmbedder;
use fukai::Result;

/// A sentence encoder: tokenizer, BERT, mean pooling over the tokens, L2 normalization.
pub struct SentenceModel {
    inner: SentenceEmbedder,
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
        let inner = SentenceEmbedder::from_bytes(
            config_json,
            weights,
            tokenizer_json,
            sentence_bert_config,
        )?;
        Ok(SentenceModel { inner })
    }

    /// Token ids of `text`, special tokens included, truncated as the model needs.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.inner.tokenizer().encode(text)
    }

    /// The unit-length embedding of `text`.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let ids = self.tokenize(text)?;
        self.embed_ids(&ids)
    }

    /// The unit-length embedding of already tokenized text.
    pub fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let _g = fukai::no_grad();
        self.inner.embed_batch(&[ids])?.to_vec::<f32>()
    }

    /// Width of the embeddings.
    pub fn dim(&self) -> usize {
        self.inner.model().config().hidden_size
    }
}
