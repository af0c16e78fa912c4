//! Models as library types. Each has a serde config ([`ModelConfig`]) that checkpoints store, so
//! [`load`] rebuilds a trained model from its file alone:
//! - [`Mlp`] and [`Cnn`]: classifiers of fixed-shape samples (tables, images, spectrograms);
//! - [`SeqClassifier`] and [`SeqForecaster`]: RNN/GRU/LSTM over sequences and series windows;
//! - [`Gpt`]: a decoder-only Transformer language model with KV-cache generation;
//! - [`BertModel`]: pretrained BERT encoders read from Hugging Face model directories;
//! - [`Llama`]: LLaMA-family chat models (SmolLM2, LLaMA 3, ...) from named tensors.
//!
//! ```
//! use fukai::models::{self, Mlp, MlpConfig, Model};
//! let dir = std::env::temp_dir().join(format!("fukai-doc-models-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let mlp = Mlp::new(MlpConfig::new(&[4], &[8], 3))?;
//! models::save(&mlp, dir.join("mlp.safetensors"), &[])?;
//! let back = models::load(dir.join("mlp.safetensors"))?;
//! assert_eq!(back.config(), mlp.config());
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), fukai::Error>(())
//! ```

mod autoencoder;
pub mod bert;
mod feedforward;
mod finetune;
mod generate;
mod gpt;
pub mod kernels;
pub mod llama;
mod llama_decode;
mod llama_gguf;
mod lora;
mod recurrent;
#[cfg(feature = "hf")]
pub mod sentence;
mod video;

pub use autoencoder::{Autoencoder, AutoencoderConfig};
pub use bert::{mean_pool_normalized, BertConfig, BertModel};
pub use feedforward::{Cnn, CnnConfig, Mlp, MlpConfig, MAX_SAMPLE_VALUES};
pub use finetune::{finetune, ChatExample, FinetuneConfig, FinetuneReport, StepReport};
pub use generate::{penalize_repeats, Sampling};
pub use gpt::{Gpt, GptConfig};
pub use llama::{unpermute_qk_gguf, Llama, LlamaConfig, RopeScaling};
pub use llama_decode::{Decoding, Session};
pub use lora::{lora_delta, LoraAdapter, LoraConfig, LoraTarget};
pub use recurrent::{SeqClassifier, SeqConfig, SeqForecaster};
#[cfg(feature = "hf")]
pub use sentence::SentenceEmbedder;
pub use video::{VideoConfig, VideoPredictor};

use crate::data::Batch;
use crate::error::{Error, Result};
use crate::io::{load_safetensors, save_safetensors};
use crate::nn::Module;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// What a model's outputs are, which decides the loss and the metrics a trainer reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Logits `[B, classes]` against labels `[B]`: cross-entropy, accuracy, confusion matrix.
    Classification,
    /// Values `[B, k]` against targets `[B, k]`: mean squared error, RMSE.
    Regression,
    /// Next-token logits `[B, T, vocab]` against ids `[B, T]`: cross-entropy per token,
    /// perplexity.
    LanguageModel,
    /// Logits shaped like the targets `[B, ...]`, which are intensities in `[0, 1]` (the input
    /// itself for an autoencoder, the next frames for a video predictor): binary cross-entropy
    /// per value, plus the model's own term (a VAE's KL divergence); MSE of the sigmoid reported
    /// beside a baseline when batches carry one.
    Reconstruction,
}

/// A trainable model: a [`Module`] that knows its task and, for the library's own models,
/// its config.
pub trait Model: Module {
    /// The config that rebuilds this model (`None` for a custom model, whose checkpoints then
    /// load into a model built by its own code, e.g. with [`Module::load_state_dict`]).
    fn config(&self) -> Option<ModelConfig> {
        None
    }
    /// What the outputs mean.
    fn task(&self) -> Task {
        Task::Classification
    }
    /// The output for a batch; sequence models also read its lengths.
    fn forward_batch(&self, batch: &Batch) -> Result<Tensor> {
        self.forward(&batch.x)
    }
    /// The output and a term the model adds to its task's loss (a VAE's KL divergence, already
    /// weighted and per target value), which training minimizes and evaluation reports.
    fn forward_with_penalty(&self, batch: &Batch) -> Result<(Tensor, Option<Tensor>)> {
        Ok((self.forward_batch(batch)?, None))
    }
}

/// Any of the library's models, as stored in checkpoints (`"kind"` names the model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelConfig {
    /// [`Mlp`].
    Mlp(MlpConfig),
    /// [`Cnn`].
    Cnn(CnnConfig),
    /// [`SeqClassifier`].
    SeqClassifier(SeqConfig),
    /// [`SeqForecaster`].
    SeqForecaster(SeqConfig),
    /// [`Gpt`].
    Gpt(GptConfig),
    /// [`Autoencoder`] (a VAE when `variational`).
    Autoencoder(AutoencoderConfig),
    /// [`VideoPredictor`].
    Video(VideoConfig),
}

impl ModelConfig {
    /// Builds the model (weights drawn from the default generator).
    pub fn build(&self) -> Result<Box<dyn Model>> {
        Ok(match self.clone() {
            ModelConfig::Mlp(c) => Box::new(Mlp::new(c)?),
            ModelConfig::Cnn(c) => Box::new(Cnn::new(c)?),
            ModelConfig::SeqClassifier(c) => Box::new(SeqClassifier::new(c)?),
            ModelConfig::SeqForecaster(c) => Box::new(SeqForecaster::new(c)?),
            ModelConfig::Gpt(c) => Box::new(Gpt::new(c)?),
            ModelConfig::Autoencoder(c) => Box::new(Autoencoder::new(c)?),
            ModelConfig::Video(c) => Box::new(VideoPredictor::new(c)?),
        })
    }
    /// The model kind as written in configs (`"mlp"`, `"seq-classifier"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Mlp(_) => "mlp",
            ModelConfig::Cnn(_) => "cnn",
            ModelConfig::SeqClassifier(_) => "seq-classifier",
            ModelConfig::SeqForecaster(_) => "seq-forecaster",
            ModelConfig::Gpt(_) => "gpt",
            ModelConfig::Autoencoder(_) => "autoencoder",
            ModelConfig::Video(_) => "video",
        }
    }
}

impl Module for Box<dyn Model> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        (**self).forward(x)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, crate::nn::TensorKind)) {
        (**self).visit(prefix, f)
    }
    fn set_training(&mut self, on: bool) {
        (**self).set_training(on)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn to_onnx(
        &self,
        g: &mut crate::onnx::export::Graph,
        prefix: &str,
        x: &crate::onnx::export::Value,
    ) -> Result<crate::onnx::export::Value> {
        (**self).to_onnx(g, prefix, x)
    }
}

impl Model for Box<dyn Model> {
    fn config(&self) -> Option<ModelConfig> {
        (**self).config()
    }
    fn task(&self) -> Task {
        (**self).task()
    }
    fn forward_batch(&self, batch: &Batch) -> Result<Tensor> {
        (**self).forward_batch(batch)
    }
    fn forward_with_penalty(&self, batch: &Batch) -> Result<(Tensor, Option<Tensor>)> {
        (**self).forward_with_penalty(batch)
    }
}

/// Metadata key holding the model's [`ModelConfig`] as JSON.
pub const CONFIG_KEY: &str = "model";

/// Writes `model`'s tensors (as `model.NAME`) and config, plus `extra` metadata, to a
/// safetensors file atomically: what [`load`] reads back.
pub fn save(model: &dyn Model, path: impl AsRef<Path>, extra: &[(&str, String)]) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = model
        .state_dict()
        .into_iter()
        .map(|(n, t)| (format!("model.{n}"), t))
        .collect();
    let mut meta: HashMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    if let Some(c) = model.config() {
        meta.insert(
            CONFIG_KEY.into(),
            serde_json::to_string(&c).expect("configs serialize"),
        );
    }
    save_safetensors(path, &tensors, Some(&meta))
}

/// A model read back from a checkpoint, with the file's other metadata (class names, input
/// normalization, vocabulary, training progress, ...).
pub struct Loaded {
    /// The model, in eval mode.
    pub model: Box<dyn Model>,
    /// Its config.
    pub config: ModelConfig,
    /// Every metadata field of the file.
    pub metadata: HashMap<String, String>,
}

/// Loads a model saved by [`save`] or a trainer checkpoint: builds it from the stored config
/// and fills in its tensors. The file is checked first (every tensor finite, the config within
/// what the file's tensors can hold), so a hostile file is an error, never a huge allocation.
pub fn load(path: impl AsRef<Path>) -> Result<Box<dyn Model>> {
    Ok(load_checkpoint(path)?.model)
}

/// [`load`], keeping the config and metadata.
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<Loaded> {
    let path = path.as_ref();
    checkpoint_from(load_safetensors(path)?, &path.display().to_string())
}

/// [`load_checkpoint`] from the file's bytes (a browser has no paths); `source` names the file
/// in errors.
pub fn load_checkpoint_bytes(bytes: &[u8], source: &str) -> Result<Loaded> {
    checkpoint_from(crate::io::parse_safetensors(bytes, source)?, source)
}

fn checkpoint_from(file: crate::io::SafetensorsFile, source: &str) -> Result<Loaded> {
    let err = |msg: String| Error::Format {
        file: source.to_string(),
        msg,
    };
    let meta = file.metadata().clone();
    let Some(json) = meta.get(CONFIG_KEY) else {
        return Err(err(format!(
            "metadata field {CONFIG_KEY:?} is missing: not a model saved by fukai (a custom \
             model's weights load with Module::load_state_dict)"
        )));
    };
    let config: ModelConfig = serde_json::from_str(json)
        .map_err(|e| err(format!("metadata field {CONFIG_KEY:?}: {e}")))?;
    file.check_finite()?;
    let mut model = crate::tensor::with_alloc_limit(file.build_limit(), || config.build())
        .map_err(|e| {
            err(format!(
                "the model its metadata describes cannot be built from its tensors: {e}"
            ))
        })?;
    let state: Vec<(String, Tensor)> = file
        .tensors()
        .iter()
        .filter_map(|(n, t)| n.strip_prefix("model.").map(|s| (s.to_string(), t.clone())))
        .collect();
    model
        .load_state_dict(&state)
        .map_err(|e| err(e.to_string()))?;
    model.set_training(false);
    Ok(Loaded {
        model,
        config,
        metadata: meta,
    })
}
