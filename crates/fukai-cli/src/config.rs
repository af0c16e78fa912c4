//! Run configuration: what `--config FILE.toml` holds and what presets are made of. Unknown keys
//! are errors, so a typo never silently falls back to a default.

use serde::{Deserialize, Serialize};

/// Parses a TOML config. Errors name the line, the key and the `[section]` it is in.
pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str::<Config>(text).map_err(|e| {
        let section = e.span().and_then(|span| {
            text[..span.start.min(text.len())]
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| l.starts_with('['))
                .map(|l| {
                    l.split(']')
                        .next()
                        .unwrap_or(l)
                        .trim_start_matches('[')
                        .trim()
                        .to_string()
                })
        });
        let msg = e.to_string();
        match section {
            Some(s) if !s.is_empty() => format!("in section [{s}]: {msg}"),
            _ => msg,
        }
    })
}

/// A whole training run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name shown in summaries (the preset name for presets).
    pub name: String,
    /// Where the data comes from.
    pub data: DataConfig,
    /// The network.
    pub model: ModelConfig,
    /// Optimization.
    pub train: TrainConfig,
}

/// Data source and preprocessing.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `mnist-csv`, `idx` (a folder with MNIST-style train/t10k files), `table` (CSV),
    /// `image-folder` (a folder with train/ and test/ class folders) or `audio-manifest` (a
    /// manifest CSV of WAV files and labels, or its folder).
    pub format: String,
    /// File or folder; relative paths are resolved against $FUKAI_ASSETS when set.
    #[serde(default)]
    pub path: Option<String>,
    /// Share of samples held out for testing when the source has no split.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Standardize features with train-set mean/std (tables).
    #[serde(default)]
    pub standardize: bool,
    /// Random crop with this much padding during training (images; 0 = off).
    #[serde(default)]
    pub crop_padding: usize,
    /// Random horizontal flips during training (not for digits).
    #[serde(default)]
    pub hflip: bool,
    /// Resize images to this (h, w) for `image-folder`.
    #[serde(default)]
    pub image_size: Option<[usize; 2]>,
    /// 1 (grey) or 3 (RGB) for `image-folder`.
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// Front end and augmentation for `audio-manifest` (defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<crate::audio_data::AudioConfig>,
    /// Target column of a `series-csv` file (forecasting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Input steps per forecasting window (`series-csv`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lookback: usize,
    /// Steps ahead predicted per window (`series-csv`; 1 = one step ahead).
    #[serde(default = "one")]
    pub horizon: usize,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn default_test_fraction() -> f64 {
    0.2
}
fn default_channels() -> usize {
    3
}

/// Network architecture.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `mlp` or `cnn`.
    pub kind: String,
    /// Hidden widths of the MLP, or of the classifier head after the CNN's convolutions.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Output channels of each 3x3 conv stage (each followed by 2x2 max pooling).
    #[serde(default)]
    pub channels: Vec<usize>,
    /// Convolutions per stage.
    #[serde(default = "one")]
    pub convs_per_stage: usize,
    /// Batch normalization after each conv / hidden layer.
    #[serde(default)]
    pub batch_norm: bool,
    /// Dropout before each hidden linear layer.
    #[serde(default)]
    pub dropout: f64,
    /// Recurrent models (`lstm`, `gru`, `rnn`): also run each sequence backwards.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bidirectional: bool,
    /// Language models (`kind = "gpt"`): layers, heads, width and context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpt: Option<crate::gpt::GptConfig>,
}

fn one() -> usize {
    1
}

/// Optimizer and schedule.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// `adam`, `adamw`, `sgd` or `rmsprop`.
    #[serde(default = "default_optimizer")]
    pub optimizer: String,
    /// SGD / RMSprop momentum.
    #[serde(default)]
    pub momentum: f64,
    /// Nesterov momentum for SGD.
    #[serde(default)]
    pub nesterov: bool,
    /// Weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// `constant`, `cosine`, `onecycle` or `step` (halves every third of the run).
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// Linear warmup steps before cosine.
    #[serde(default)]
    pub warmup_steps: usize,
    /// Label smoothing of the cross-entropy.
    #[serde(default)]
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this (off when absent).
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// Micro-batches accumulated per optimizer step.
    #[serde(default = "one")]
    pub accumulate: usize,
    /// Seed for initialization, shuffling and augmentation.
    #[serde(default)]
    pub seed: u64,
    /// Step-based runs (language models): optimizer steps, final learning rate, Adam's
    /// second beta, evaluation windows and interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lm: Option<crate::lm::LmTrainConfig>,
}

fn default_optimizer() -> String {
    "adam".into()
}
fn default_schedule() -> String {
    "constant".into()
}
