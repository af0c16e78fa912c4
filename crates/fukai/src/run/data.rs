//! From a run config and a data path to what the trainer reads: train, validation and test
//! batches, the model config sized to the data, and the metadata a checkpoint needs to use the
//! model later (class names, input normalization, a vocabulary, series scaling).

use super::{audio, DataConfig, RunConfig};
use crate::bail;
use crate::data::{
    self, read_series_csv, read_ts, DataLoader, Dataset, InMemory, Normalize, RandomCrop,
    RandomHorizontalFlip, Transform, Windows,
};
use crate::error::{Error, Result};
use crate::models::{CnnConfig, GptConfig, MlpConfig, ModelConfig, SeqConfig};
use crate::rng::Generator;
use crate::text::{CharTokenizer, TokenWindows};
use crate::train::{Batches, ClipBatches, SequenceBatches, TokenBatches, WindowBatches};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Train and test sets of fixed-shape samples with class names.
pub struct Splits {
    /// Training samples.
    pub train: InMemory,
    /// Held-out samples.
    pub test: InMemory,
    /// Label names.
    pub class_names: Vec<String>,
}

/// Everything a run reads, prepared from its config and data.
pub struct Prepared {
    /// The model to build, sized to the data.
    pub model: ModelConfig,
    /// Training batches (shuffled, augmented).
    pub train: Box<dyn Batches>,
    /// Validation batches carved from the training data (none when `data.val_fraction` is 0).
    pub val: Option<Box<dyn Batches>>,
    /// Test batches, evaluated once at the end.
    pub test: Box<dyn Batches>,
    /// Checkpoint metadata for using the model later.
    pub metadata: Vec<(String, String)>,
    /// Class names (classification).
    pub class_names: Vec<String>,
    /// One line about the data, e.g. `3,600 train / 400 validation / 1,000 test samples`.
    pub describe: String,
    /// What was inferred or left out while reading (tables: ignored columns, dropped rows).
    pub notes: Vec<String>,
    /// A simpler model trained beside this one and reported next to it (tables: the same
    /// pipeline without hidden layers, i.e. logistic or linear regression).
    pub baseline: Option<ModelConfig>,
    /// What a run shows of its model after training: pictures and probes of autoencoders and
    /// video predictors.
    pub showcase: Option<Showcase>,
}

/// The data a run keeps for showing what its model learned (see [`Prepared::showcase`]).
pub enum Showcase {
    /// Autoencoders: images with the labels training never saw, for pictures of the latent
    /// space and the linear probe.
    Images {
        /// Training images (the probe's labeled ones are drawn from these).
        train: InMemory,
        /// Test images.
        test: InMemory,
        /// Label names.
        class_names: Vec<String>,
        /// Labeled training images the probe learns from.
        probe_labels: usize,
    },
    /// Video predictors: the test clips.
    Clips(ClipBatches),
}

/// Feature normalization fitted on the training split, stored in checkpoints for `predict`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Norm {
    /// Per-channel (images, sequences) or per-feature (tables) mean.
    pub mean: Vec<f32>,
    /// Matching standard deviations.
    pub std: Vec<f32>,
}

impl Norm {
    /// The transform applying these statistics.
    pub fn transform(&self) -> Result<Normalize> {
        Normalize::new(self.mean.clone(), self.std.clone())
    }
}

/// Scaling of a forecasting run's series, for `predict` on raw values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesInfo {
    /// Column names of the series, in input order.
    pub columns: Vec<String>,
    /// The predicted column.
    pub target: usize,
    /// Per-column mean and std fitted on the training rows.
    pub mean: Vec<f32>,
    /// Matching standard deviations.
    pub std: Vec<f32>,
    /// Input steps per window.
    pub lookback: usize,
    /// Steps predicted.
    pub horizon: usize,
}

/// The MNIST-5k CSV that ships with this repository (the default job's data).
pub fn shipped_mnist() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist_5k.csv.gz");
    p.canonicalize().unwrap_or(p)
}

/// Resolves the data path: `override_path` (`--data`) wins; an absolute config path is used as
/// is; a relative one is tried against `base` (the config file's folder), then
/// `$FUKAI_ASSETS`; the shipped MNIST-5k serves `mnist-csv` (and `moving-mnist` from a CSV)
/// when neither has it.
pub fn resolve(
    cfg: &DataConfig,
    override_path: Option<&Path>,
    base: Option<&Path>,
) -> Result<PathBuf> {
    if let Some(p) = override_path {
        return Ok(p.to_path_buf());
    }
    let rel = cfg.path.as_deref().unwrap_or("");
    if Path::new(rel).is_absolute() {
        return Ok(rel.into());
    }
    if let Some(b) = base {
        let p = b.join(rel);
        if !rel.is_empty() && p.exists() {
            return Ok(p);
        }
    }
    if let Ok(root) = std::env::var("FUKAI_ASSETS") {
        let p = Path::new(&root).join(rel);
        if p.exists() || !shipped_fallback(cfg) {
            return Ok(p);
        }
    }
    if shipped_fallback(cfg) {
        return Ok(shipped_mnist());
    }
    Err(Error::Format {
        file: rel.to_string(),
        msg: "no data location: pass --data PATH or set FUKAI_ASSETS to the assets folder \
              (`fukai data get` downloads public sets)"
            .into(),
    })
}

/// Whether the shipped MNIST-5k serves this config when its own path is not found.
fn shipped_fallback(cfg: &DataConfig) -> bool {
    let csv = cfg
        .path
        .as_deref()
        .is_none_or(|p| p.ends_with(".csv") || p.ends_with(".csv.gz"));
    cfg.format == "mnist-csv" || (cfg.format == "moving-mnist" && csv)
}

fn missing(path: &Path) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "data not found"),
    }
}

/// Loads and splits fixed-shape data; refuses a split with no samples, so no run trains on
/// nothing or reports a score measured on nothing.
pub fn load(cfg: &DataConfig, path: &Path, seed: u64) -> Result<Splits> {
    let splits = load_any(cfg, path, seed)?;
    for (name, set) in [("training", &splits.train), ("test", &splits.test)] {
        if set.is_empty() {
            return Err(Error::Format {
                file: path.display().to_string(),
                msg: format!(
                    "the {name} split is empty ({} training and {} test samples; data.test_fraction = {})",
                    splits.train.len(),
                    splits.test.len(),
                    cfg.test_fraction
                ),
            });
        }
    }
    Ok(splits)
}

/// Mean/std over the training set: one value for grey images, per channel for colour images
/// and spectrograms.
pub fn fit_norm(train: &InMemory) -> Norm {
    let (m, s) = train.feature_stats();
    let c = train.sample_shape()[0];
    let plane = m.len() / c;
    let mut mean = Vec::new();
    let mut std = Vec::new();
    for ch in 0..c {
        let (ms, ss) = (
            &m[ch * plane..(ch + 1) * plane],
            &s[ch * plane..(ch + 1) * plane],
        );
        let mu = ms.iter().map(|&v| v as f64).sum::<f64>() / plane as f64;
        let var = ms
            .iter()
            .zip(ss)
            .map(|(&a, &b)| (b as f64).powi(2) + (a as f64 - mu).powi(2))
            .sum::<f64>()
            / plane as f64;
        mean.push(mu as f32);
        std.push(var.sqrt().max(1e-6) as f32);
    }
    Norm { mean, std }
}

/// The samples of a split view as one contiguous set (same order, same values).
fn compact(set: &InMemory) -> Result<InMemory> {
    let per: usize = set.sample_shape().iter().product();
    let mut x = vec![0f32; set.len() * per];
    let mut y = Vec::with_capacity(set.len());
    for (i, out) in x.chunks_mut(per.max(1)).enumerate() {
        y.push(set.get(i, out)?);
    }
    InMemory::new(x, y, set.sample_shape(), set.classes())
}

/// The training samples and a stratified validation share of them (none for a zero
/// fraction or when it would be empty).
pub(super) fn carve_validation(
    train: &InMemory,
    fraction: f64,
    seed: u64,
) -> Result<(InMemory, Option<InMemory>)> {
    if fraction <= 0.0 {
        return Ok((train.clone(), None));
    }
    let labels: Vec<i64> = (0..train.len()).map(|i| train.label(i)).collect();
    let (tr, va) = data::stratified_split(&labels, fraction, seed ^ VAL_SEED)?;
    Ok((
        compact(&train.subset(tr)?)?,
        Some(train.subset(va)?).filter(|v| !v.is_empty()),
    ))
}

/// Seed offset of the validation carve, so it differs from the train/test split's draw.
pub(super) const VAL_SEED: u64 = 0x7a1_da7e;

pub(super) fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("metadata serializes")
}

fn count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn describe(train: usize, val: Option<usize>, test: usize, what: &str) -> String {
    match val {
        Some(v) => format!(
            "{} train / {} validation / {} test {what}",
            count(train),
            count(v),
            count(test)
        ),
        None => format!("{} train / {} test {what}", count(train), count(test)),
    }
}

/// Formats of fixed-shape images.
const IMAGE_FORMATS: &[&str] = &["mnist-csv", "idx", "image-folder"];

/// Prepares the data of `cfg` read from `path`.
pub fn prepare(cfg: &RunConfig, path: &Path) -> Result<Prepared> {
    let m = &cfg.model;
    match m.kind.as_str() {
        "mlp" if cfg.data.format == "table" => {
            super::table::prepare_table(cfg, path, super::table::Holdout::Fraction)
        }
        "mlp" | "cnn" => fixed_shape(cfg, path),
        "lstm" | "gru" | "rnn" if cfg.data.format == "ts" => sequences(cfg, path),
        "lstm" | "gru" | "rnn" if cfg.data.format == "series-csv" => series(cfg, path),
        "gpt" if cfg.data.format == "text" => text(cfg, path),
        "autoencoder" | "vae" if IMAGE_FORMATS.contains(&cfg.data.format.as_str()) => {
            super::unlabeled::prepare(cfg, path)
        }
        "convlstm" | "conv3d" if matches!(cfg.data.format.as_str(), "moving-mnist" | "frames") => {
            super::video::prepare(cfg, path)
        }
        kind => bail!(
            "config",
            "model.kind {kind:?} cannot read data.format {:?}: mlp and cnn read mnist-csv, idx, table, image-folder or audio-manifest; lstm, gru and rnn read ts or series-csv; gpt reads text; autoencoder and vae read mnist-csv, idx or image-folder; convlstm and conv3d read moving-mnist or frames",
            cfg.data.format
        ),
    }
}

fn fixed_shape(cfg: &RunConfig, path: &Path) -> Result<Prepared> {
    let (d, m, t) = (&cfg.data, &cfg.model, &cfg.train);
    let splits = load(d, path, t.seed)?;
    let classes = splits.class_names.len().max(splits.train.classes());
    let shape = splits.train.sample_shape().to_vec();
    let (train, val) = carve_validation(&splits.train, d.val_fraction, t.seed)?;
    if train.is_empty() {
        return Err(Error::Format {
            file: path.display().to_string(),
            msg: format!("no training samples are left after holding out data.val_fraction = {} for validation", d.val_fraction),
        });
    }
    let norm = fit_norm(&train);
    let mut tfm: Vec<Box<dyn Transform>> = Vec::new();
    if d.crop_padding > 0 {
        tfm.push(Box::new(RandomCrop {
            padding: d.crop_padding,
        }));
    }
    if d.hflip {
        tfm.push(Box::new(RandomHorizontalFlip { p: 0.5 }));
    }
    tfm.extend(audio::train_transforms(d));
    tfm.push(Box::new(norm.transform()?));
    // A last batch of one sample has no batch statistics (PyTorch refuses it too): drop it.
    let lone_last = m.batch_norm && train.len() % t.batch_size == 1;
    let describe = describe(
        train.len(),
        val.as_ref().map(|v| v.len()),
        splits.test.len(),
        "samples",
    );
    let eval = |set: InMemory| -> Result<Box<dyn Batches>> {
        Ok(Box::new(
            DataLoader::new(Arc::new(set), 500).transforms(vec![Box::new(norm.transform()?)]),
        ))
    };
    let train_loader = DataLoader::new(Arc::new(train), t.batch_size)
        .shuffle(t.seed)
        .drop_last(lone_last)
        .transforms(tfm);
    let model = if m.kind == "cnn" {
        ModelConfig::Cnn(CnnConfig {
            input_shape: shape.clone(),
            channels: m.channels.clone(),
            convs_per_stage: m.convs_per_stage,
            hidden: m.hidden.clone(),
            classes,
            batch_norm: m.batch_norm,
            dropout: m.dropout,
        })
    } else {
        ModelConfig::Mlp(MlpConfig {
            input_shape: shape.clone(),
            hidden: m.hidden.clone(),
            classes,
            batch_norm: m.batch_norm,
            dropout: m.dropout,
            regression: false,
            embeddings: Vec::new(),
        })
    };
    Ok(Prepared {
        model,
        train: Box::new(train_loader),
        val: val.map(&eval).transpose()?,
        test: eval(splits.test)?,
        metadata: vec![
            ("classes".into(), json(&splits.class_names)),
            ("norm".into(), json(&norm)),
            ("input_shape".into(), json(&shape)),
        ],
        class_names: splits.class_names,
        describe,
        notes: Vec::new(),
        baseline: None,
        showcase: None,
    })
}

fn seq_config(cfg: &RunConfig, inputs: usize, outputs: usize) -> Result<SeqConfig> {
    let m = &cfg.model;
    if m.hidden.is_empty() || m.hidden.iter().any(|&h| h == 0 || h != m.hidden[0]) {
        bail!(
            "config",
            "model.hidden for a {} lists one positive width per layer, all equal, found {:?}",
            m.kind,
            m.hidden
        );
    }
    if !m.channels.is_empty() || m.batch_norm {
        bail!(
            "config",
            "model.channels and model.batch_norm do not apply to a {}",
            m.kind
        );
    }
    Ok(SeqConfig {
        cell: m.kind.clone(),
        inputs,
        hidden: m.hidden[0],
        layers: m.hidden.len(),
        bidirectional: m.bidirectional,
        dropout: m.dropout,
        outputs,
    })
}

fn sequences(cfg: &RunConfig, path: &Path) -> Result<Prepared> {
    let t = &cfg.train;
    // `path` is the file stem (…/JapaneseVowels) or the _TRAIN.ts file itself.
    let s = path.display().to_string();
    let stem = s
        .strip_suffix("_TRAIN.ts")
        .or_else(|| s.strip_suffix("_TEST.ts"))
        .unwrap_or(&s);
    let mut train = read_ts(format!("{stem}_TRAIN.ts"))?;
    let mut test = read_ts(format!("{stem}_TEST.ts"))?;
    if test.dims != train.dims || test.class_names != train.class_names {
        bail!(
            "ts",
            "{stem}_TEST.ts has {} dims and classes {:?}, the train file {} and {:?}",
            test.dims,
            test.class_names,
            train.dims,
            train.class_names
        );
    }
    if train.is_empty() || test.is_empty() {
        bail!(
            "ts",
            "{stem}: {} training and {} test sequences; neither may be empty",
            train.len(),
            test.len()
        );
    }
    let (mut rows, mut val_rows) = ((0..train.len()).collect::<Vec<_>>(), Vec::new());
    if cfg.data.val_fraction > 0.0 {
        (rows, val_rows) =
            data::stratified_split(&train.labels, cfg.data.val_fraction, t.seed ^ VAL_SEED)?;
    }
    // Channel statistics from the rows trained on only.
    let fit = data::Sequences {
        series: rows.iter().map(|&r| train.series[r].clone()).collect(),
        lengths: rows.iter().map(|&r| train.lengths[r]).collect(),
        labels: rows.iter().map(|&r| train.labels[r]).collect(),
        dims: train.dims,
        class_names: train.class_names.clone(),
    };
    let (mean, std) = fit.channel_stats();
    train.normalize(&mean, &std);
    test.normalize(&mean, &std);
    let model = ModelConfig::SeqClassifier(seq_config(cfg, train.dims, train.class_names.len())?);
    let describe = describe(
        rows.len(),
        (!val_rows.is_empty()).then_some(val_rows.len()),
        test.len(),
        "sequences",
    );
    let names = train.class_names.clone();
    let dims = train.dims;
    let train = Arc::new(train);
    let n_test = test.len();
    Ok(Prepared {
        model,
        train: Box::new(SequenceBatches::new(train.clone(), rows, t.batch_size).shuffle(t.seed)),
        val: (!val_rows.is_empty())
            .then(|| Box::new(SequenceBatches::new(train, val_rows, 500)) as Box<dyn Batches>),
        test: Box::new(SequenceBatches::new(
            Arc::new(test),
            (0..n_test).collect(),
            500,
        )),
        metadata: vec![
            ("classes".into(), json(&names)),
            ("norm".into(), json(&Norm { mean, std })),
            ("input_shape".into(), json(&[dims])),
        ],
        class_names: names,
        describe,
        notes: Vec::new(),
        baseline: None,
        showcase: None,
    })
}

fn series(cfg: &RunConfig, path: &Path) -> Result<Prepared> {
    let (d, t) = (&cfg.data, &cfg.train);
    let Some(column) = d.column.as_deref() else {
        bail!("config", "data.format \"series-csv\" needs data.column");
    };
    if d.lookback == 0 || d.horizon == 0 {
        bail!(
            "config",
            "data.format \"series-csv\" needs positive data.lookback and data.horizon"
        );
    }
    let series = read_series_csv(path, &[column])?;
    let rows = series.rows();
    let split = rows - (rows as f64 * d.test_fraction).round() as usize;
    let w = Windows::new(&series, 0, d.lookback, d.horizon, split)?;
    // Validation: the last training windows, in time order (a random carve would leak).
    let n_val = (w.train.len() as f64 * d.val_fraction).round() as usize;
    let cut = w.train.len() - n_val.min(w.train.len().saturating_sub(1));
    let (train_starts, val_starts) = (w.train[..cut].to_vec(), w.train[cut..].to_vec());
    if w.test.is_empty() {
        return Err(Error::Format {
            file: path.display().to_string(),
            msg: format!("no test windows (data.test_fraction = {})", d.test_fraction),
        });
    }
    let info = SeriesInfo {
        columns: series.names.clone(),
        target: w.target,
        mean: w.mean.clone(),
        std: w.std.clone(),
        lookback: w.lookback,
        horizon: w.horizon,
    };
    let model = ModelConfig::SeqForecaster(seq_config(cfg, w.cols, w.horizon)?);
    let describe = describe(
        train_starts.len(),
        (!val_starts.is_empty()).then_some(val_starts.len()),
        w.test.len(),
        "windows",
    );
    let test_starts = w.test.clone();
    let w = Arc::new(w);
    Ok(Prepared {
        model,
        train: Box::new(WindowBatches::new(w.clone(), train_starts, t.batch_size).shuffle(t.seed)),
        val: (!val_starts.is_empty())
            .then(|| Box::new(WindowBatches::new(w.clone(), val_starts, 500)) as Box<dyn Batches>),
        test: Box::new(WindowBatches::new(w, test_starts, 500)),
        metadata: vec![("series".into(), json(&info))],
        class_names: Vec::new(),
        describe,
        notes: Vec::new(),
        baseline: None,
        showcase: None,
    })
}

/// Reads a text file, refusing one that is not UTF-8.
pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
}

/// The fixed evaluation windows of a text part: `n` starts drawn from a seeded stream.
fn eval_windows(w: TokenWindows, n: usize, seed: u64) -> TokenBatches {
    let starts = w.sample_starts(n.max(1), &mut Generator::new(seed ^ 0x05ee_d5a1));
    TokenBatches::fixed(w, starts, 50)
}

fn text(cfg: &RunConfig, path: &Path) -> Result<Prepared> {
    let (d, t) = (&cfg.data, &cfg.train);
    let Some(g) = &cfg.model.gpt else {
        bail!(
            "config",
            "model.kind = \"gpt\" needs a [model.gpt] table (layers, heads, width, context)"
        );
    };
    let Some(per_epoch) = t.steps_per_epoch else {
        bail!("config", "a gpt run samples random windows: set train.steps_per_epoch (steps between validations)");
    };
    let text = read_text(path)?;
    let tok = CharTokenizer::from_text(&text);
    let tokens = tok.encode(&text)?;
    // Training text, then validation (the end of the training part), then the test tail.
    let n = tokens.len();
    let test_cut = n - (n as f64 * d.test_fraction) as usize;
    let val_cut = test_cut - (test_cut as f64 * d.val_fraction) as usize;
    let part = |a: usize, b: usize, what: &str| {
        TokenWindows::new(tokens[a..b].to_vec(), g.context).map_err(|e| Error::Format {
            file: path.display().to_string(),
            msg: format!("the {what} part ({} characters): {e}", b - a),
        })
    };
    let train = part(0, val_cut, "training")?;
    let val = (d.val_fraction > 0.0)
        .then(|| part(val_cut, test_cut, "validation"))
        .transpose()?;
    let test = part(test_cut, n, "test")?;
    let model = ModelConfig::Gpt(GptConfig {
        vocab: tok.vocab_size(),
        ..g.clone()
    });
    let describe = format!(
        "{} characters ({} distinct): {} train / {} validation / {} test",
        count(n),
        tok.vocab_size(),
        count(val_cut),
        count(test_cut - val_cut),
        count(n - test_cut)
    );
    Ok(Prepared {
        model,
        train: Box::new(TokenBatches::random(
            train,
            t.batch_size,
            t.seed.wrapping_add(1),
            per_epoch * t.accumulate,
        )),
        val: val
            .map(|v| Box::new(eval_windows(v, d.eval_windows, t.seed ^ 0x7a1)) as Box<dyn Batches>),
        test: Box::new(eval_windows(test, d.eval_windows, t.seed)),
        metadata: vec![("vocab".into(), tok.vocab_string())],
        class_names: Vec::new(),
        describe,
        notes: Vec::new(),
        baseline: None,
        showcase: None,
    })
}

fn load_any(cfg: &DataConfig, path: &Path, seed: u64) -> Result<Splits> {
    if !path.exists() {
        return Err(missing(path));
    }
    let digits = || (0..10).map(|d| d.to_string()).collect::<Vec<_>>();
    match cfg.format.as_str() {
        "mnist-csv" => {
            let (x, y) = data::read_mnist_csv(path)?;
            let all = InMemory::new(x, y.clone(), &[1, 28, 28], 10)?;
            let (tr, te) = data::stratified_split(&y, cfg.test_fraction, seed)?;
            Ok(Splits {
                train: all.subset(tr)?,
                test: all.subset(te)?,
                class_names: digits(),
            })
        }
        "idx" => {
            let part = |prefix: &str| -> Result<InMemory> {
                let img = find(path, &format!("{prefix}-images-idx3-ubyte"))?;
                let lab = find(path, &format!("{prefix}-labels-idx1-ubyte"))?;
                let (x, [n, h, w]) = data::read_idx_images(&img)?;
                let y = data::read_idx_labels(&lab)?;
                if y.len() != n {
                    return Err(Error::Format {
                        file: lab.display().to_string(),
                        msg: format!("{} labels for {n} images in {}", y.len(), img.display()),
                    });
                }
                InMemory::new(x, y, &[1, h, w], 10)
            };
            let names = if path.to_string_lossy().contains("fashion") {
                [
                    "T-shirt/top",
                    "Trouser",
                    "Pullover",
                    "Dress",
                    "Coat",
                    "Sandal",
                    "Shirt",
                    "Sneaker",
                    "Bag",
                    "Ankle boot",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
            } else {
                digits()
            };
            Ok(Splits {
                train: part("train")?,
                test: part("t10k")?,
                class_names: names,
            })
        }
        "image-folder" => {
            let size = cfg.image_size.unwrap_or([64, 64]);
            let (train, names) = data::read_image_folder(&path.join("train"), size, cfg.channels)?;
            let (test, test_names) =
                data::read_image_folder(&path.join("test"), size, cfg.channels)?;
            if names != test_names {
                return Err(Error::Format {
                    file: path.display().to_string(),
                    msg: format!("train classes {names:?} differ from test classes {test_names:?}"),
                });
            }
            Ok(Splits {
                train,
                test,
                class_names: names,
            })
        }
        "audio-manifest" => super::audio::load(cfg, path, seed),
        other => Err(Error::Format {
            file: path.display().to_string(),
            msg: format!(
                "data format {other:?} has no fixed-shape loader; expected mnist-csv, idx, image-folder or audio-manifest (tables go through run::prepare)"
            ),
        }),
    }
}

/// `dir/name` or `dir/name.gz`, whichever exists.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    for cand in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if cand.exists() {
            return Ok(cand);
        }
    }
    Err(missing(&dir.join(format!("{name}[.gz]"))))
}
