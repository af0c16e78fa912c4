//! A run's configuration: what `fukai train --config FILE.toml` holds and what presets are made
//! of. Unknown keys are errors, so a typo never silently falls back to a default.

use crate::data::{ColumnRef, Encoding, Impute};
use crate::models::GptConfig;
use crate::train::TrainConfig;
use serde::{Deserialize, Serialize};

/// A whole training run.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Name shown in summaries (the preset name for presets).
    pub name: String,
    /// Where the data comes from.
    pub data: DataConfig,
    /// The network.
    pub model: ModelSpec,
    /// Optimization.
    pub train: TrainConfig,
}

/// Data source and preprocessing.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `mnist-csv`, `idx` (a folder with MNIST-style train/t10k files), `table` (CSV),
    /// `image-folder` (a folder with train/ and test/ class folders), `audio-manifest` (a
    /// manifest CSV of WAV files and labels, or its folder), `moving-mnist` (clips made from the
    /// MNIST digits at `path`, an MNIST CSV or IDX folder) or `frames` (a folder of clip folders
    /// of frame images, `clip_0001/frame_000.png …`, or one with train/ and test/ such folders).
    pub format: String,
    /// Share of the training samples held out for validation (monitoring, best model, early
    /// stopping); series and text hold out the end of their training part instead.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// Windows averaged for a language model's validation and test loss.
    #[serde(default = "default_eval_windows")]
    pub eval_windows: usize,
    /// File or folder; a relative path is resolved against the config file's folder, then
    /// against `$FUKAI_ASSETS`.
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
    pub audio: Option<super::audio::AudioConfig>,
    /// Target column of a `series-csv` file (forecasting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Input steps per forecasting window (`series-csv`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lookback: usize,
    /// Steps ahead predicted per window (`series-csv`; 1 = one step ahead).
    #[serde(default = "one")]
    pub horizon: usize,
    /// Tables: the target column, by name or 0-based index (default: the last column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<ColumnRef>,
    /// Tables: `"classification"` (the default) or `"regression"` (mean squared error; RMSE
    /// and R² reported against predicting the training mean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Tables: the only feature columns to use (default: every column but the label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<ColumnRef>>,
    /// Tables: columns read as categories even if they hold numbers (or many strings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<ColumnRef>,
    /// Tables: columns that must hold numbers (a non-number is an error naming its line).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numeric: Vec<ColumnRef>,
    /// Tables: columns left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<ColumnRef>,
    /// Tables: cells meaning "missing" (default: pandas' list: "", NA, N/A, NaN, null, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<Vec<String>>,
    /// Tables: missing features become the training `"mean"` (strings: a "missing"
    /// category), the `"median"`, or their rows are dropped (`"drop"`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub impute: Impute,
    /// Tables: the field delimiter, one character (default: a comma, a tab for `.tsv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// Tables: whether the first row names the columns (default: inferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// Tables: a string column with more distinct values is ignored unless named in
    /// `categorical` (free text, identifiers, dates).
    #[serde(default = "default_max_categories")]
    pub max_categories: usize,
    /// Video (`moving-mnist`, `frames`): frames per clip read as input; the rest are predicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_frames: Option<usize>,
    /// `moving-mnist`: training clips made per epoch's set (validation and test sets are a
    /// tenth of this each, from held-out digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clips: Option<usize>,
    /// `moving-mnist`: frames per clip (default 20: 10 in, 10 predicted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
    /// `moving-mnist`: side of the square frame in pixels (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_size: Option<usize>,
    /// Autoencoders: labeled training images the linear probe learns from (default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_labels: Option<usize>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn default_max_categories() -> usize {
    50
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn default_val_fraction() -> f64 {
    0.1
}
fn default_eval_windows() -> usize {
    200
}
fn default_test_fraction() -> f64 {
    0.2
}
fn default_channels() -> usize {
    3
}

/// Network architecture; input and output sizes come from the data.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// `mlp`, `cnn`, `lstm`, `gru`, `rnn`, `gpt`, `autoencoder`, `vae` (images without labels),
    /// `convlstm` or `conv3d` (video prediction).
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
    /// Tables: categorical columns enter as `"onehot"` vectors (the default) or learned
    /// `"embedding"`s.
    #[serde(default, skip_serializing_if = "is_default")]
    pub categorical: Encoding,
    /// Tables with embeddings: the width of every embedding (default: by category count,
    /// `round(1.6 n^0.56)`, at most 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_dim: Option<usize>,
    /// Language models (`kind = "gpt"`): layers, heads, width and context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpt: Option<GptConfig>,
    /// Autoencoders: width of the latent code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent: Option<usize>,
    /// VAE: weight of the KL term (β-VAE; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// Autoencoders: share of input pixels zeroed in training (denoising; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    /// Autoencoders: each encoder stage halves the image with 2×2 max pooling after a stride-1
    /// convolution instead of convolving with stride 2 (more shift-tolerant features, four
    /// times the encoder's arithmetic).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pool: bool,
    /// Video models: side of the square patches stacked as channels (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<usize>,
}

fn one() -> usize {
    1
}
