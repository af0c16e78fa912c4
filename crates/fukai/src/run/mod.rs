//! Config-driven runs: what `fukai train` does, as a library call. A [`RunConfig`] (data,
//! model, training) is prepared against its data ([`Run::prepare`]), then trained through the
//! one [`Trainer`] into a run directory: checkpoints, `metrics.jsonl`,
//! `curves.png`, `summary.json`. [`load_trained`] reads any such checkpoint back with what
//! using it needs (class names, normalization, vocabulary, series scaling).
//!
//! ```no_run
//! use fukai::run::{Existing, Run, RunConfig};
//! let cfg: RunConfig = serde_json::from_str(r#"{"name": "iris",
//!     "data": {"format": "table", "path": "iris.csv", "standardize": true},
//!     "model": {"kind": "mlp", "hidden": [64, 64]},
//!     "train": {"epochs": 60, "batch_size": 16, "lr": 0.01}}"#)?;
//! let run = Run::prepare(&cfg, "iris.csv".as_ref(), "runs/iris".as_ref(), Existing::Refuse)?;
//! let outcome = run.train(None, true)?;
//! println!("{:?}", outcome.test.map(|t| t.accuracy()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod audio;
mod config;
mod cv;
mod data;
mod limits;
mod onnx_predict;
mod pictures;
mod predict;
mod table;
mod unlabeled;
mod video;

pub use audio::{predict_input as audio_features, AudioConfig};
pub use config::{DataConfig, ModelSpec, RunConfig};
pub use cv::{cross_validate, headline, summarize, CrossValidation, Fold, Spread};
pub use data::{
    fit_norm, load, prepare, read_text, resolve, shipped_mnist, Norm, Prepared, SeriesInfo,
    Showcase, Splits,
};
pub use onnx_predict::{onnx_classes, predict_onnx};
pub use predict::{image as image_input, numbers, predict, Prediction};
pub use table::{
    csv_options, encode_file, encode_input, prepare_table, table_model, table_spec, Holdout,
};

use crate::error::{Error, Result};
use crate::models::{self, Model, ModelConfig};
use crate::nn::Module;
use crate::text::CharTokenizer;
use crate::train::{Evaluation, FitReport, MetricsJsonl, Stop, SummaryJson, TrainConfig, Trainer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Checks every field of a run config: sizes within their limits, rates in range, names known.
pub fn validate(cfg: &RunConfig) -> Result<()> {
    limits::check(cfg)?;
    cfg.train.validate()?;
    let bad = |msg: String| crate::error::op_err("config", msg);
    if !(0.0..1.0).contains(&cfg.model.dropout) {
        return Err(bad(format!(
            "model.dropout must be in [0, 1), found {}",
            cfg.model.dropout
        )));
    }
    for (name, v) in [
        ("data.test_fraction", cfg.data.test_fraction),
        ("data.val_fraction", cfg.data.val_fraction),
    ] {
        if !(0.0..1.0).contains(&v) {
            return Err(bad(format!("{name} must be in [0, 1), found {v}")));
        }
    }
    let formats = [
        "mnist-csv",
        "idx",
        "table",
        "image-folder",
        "audio-manifest",
        "ts",
        "series-csv",
        "text",
        "moving-mnist",
        "frames",
    ];
    if !formats.contains(&cfg.data.format.as_str()) {
        return Err(bad(format!(
            "data.format {:?} is unknown; expected one of {}",
            cfg.data.format,
            formats.join(", ")
        )));
    }
    if cfg.data.format == "table" {
        table_spec(cfg)?;
        csv_options(cfg)?;
    }
    let kinds = [
        "mlp",
        "cnn",
        "lstm",
        "gru",
        "rnn",
        "gpt",
        "autoencoder",
        "vae",
        "convlstm",
        "conv3d",
    ];
    if !kinds.contains(&cfg.model.kind.as_str()) {
        return Err(bad(format!(
            "model.kind {:?} is unknown; expected one of {}",
            cfg.model.kind,
            kinds.join(", ")
        )));
    }
    Ok(())
}

/// What to do when the run directory already holds a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Refuse (the default: a run is never overwritten unasked).
    Refuse,
    /// Replace the earlier run's files.
    Overwrite,
    /// Continue the run from its newest checkpoint.
    Resume,
}

/// The files a run writes into its directory.
pub const RUN_FILES: &[&str] = &[
    "checkpoint.safetensors",
    "best.safetensors",
    "checkpoints",
    "metrics.jsonl",
    "summary.json",
    "curves.png",
    "reconstructions.png",
    "samples.png",
    "latent.png",
    "predictions.png",
    "predictions.gif",
];

/// Makes `out` ready for a run: refuses an existing run unless told otherwise, and proves the
/// folder writable before any training time is spent.
pub fn prepare_dir(out: &Path, existing: Existing) -> Result<()> {
    let io = |e: std::io::Error| Error::Io {
        path: out.display().to_string(),
        source: e,
    };
    let has_run = RUN_FILES.iter().any(|f| out.join(f).exists());
    match existing {
        Existing::Refuse if has_run => {
            return Err(Error::Format {
                file: out.display().to_string(),
                msg: format!(
                    "the run directory already holds a run; pass --resume {} to continue it, --force to overwrite it, or --out for a new one",
                    out.display()
                ),
            })
        }
        Existing::Resume if !out.join("checkpoint.safetensors").exists() => {
            return Err(Error::Format {
                file: out.display().to_string(),
                msg: "no checkpoint.safetensors to resume from".into(),
            })
        }
        Existing::Overwrite => {
            for f in RUN_FILES {
                let p = out.join(f);
                let r = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else if p.exists() {
                    std::fs::remove_file(&p)
                } else {
                    Ok(())
                };
                r.map_err(io)?;
            }
        }
        _ => {}
    }
    std::fs::create_dir_all(out).map_err(io)?;
    let probe = out.join(format!(".fukai-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(io)?;
    std::fs::remove_file(&probe).map_err(io)
}

/// A run ready to train: data prepared, directory checked.
pub struct Run {
    /// The config.
    pub cfg: RunConfig,
    /// The data, prepared.
    pub data: Prepared,
    /// Where the data was read.
    pub data_path: PathBuf,
    /// The run directory.
    pub out: PathBuf,
    existing: Existing,
    device: crate::Device,
}

/// How a run ended.
pub struct RunOutcome {
    /// The trainer's report.
    pub report: FitReport,
    /// The test set's evaluation (none when the session stopped at a step limit).
    pub test: Option<Evaluation>,
    /// The newest checkpoint.
    pub checkpoint: PathBuf,
    /// The baseline model's test evaluation (tables: logistic or linear regression), with its
    /// name.
    pub baseline: Option<(String, Evaluation)>,
    /// What the run showed of its model after the test (autoencoders: the linear probes;
    /// video: errors per predicted frame beside the copy-last-frame baseline), also in
    /// `summary.json` under `"showcase"`, with the pictures it wrote.
    pub showcase: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Trains `model` (a simpler model reported beside the run's) on the run's data, without
/// checkpoints or hooks, and evaluates it on the test set.
fn train_baseline(
    model: &ModelConfig,
    cfg: &RunConfig,
    data: &Prepared,
) -> Result<(String, Evaluation)> {
    // Its own stream of initial weights; the run's model is seeded afresh afterwards.
    crate::manual_seed(cfg.train.seed ^ 0xba5e_11e0);
    let m = model.build()?;
    let name = match m.task() {
        models::Task::Regression => "linear regression",
        _ => "logistic regression",
    };
    let mut t = Trainer::new(m, cfg.train.clone())?;
    let report = t.fit(&*data.train, data.val.as_deref())?;
    Ok((name.to_string(), t.test(&*data.test, &report)?))
}

impl Run {
    /// Validates `cfg`, loads and splits the data at `data_path`, then prepares `out` (bad data
    /// or config fails before the directory is touched).
    pub fn prepare(
        cfg: &RunConfig,
        data_path: &Path,
        out: &Path,
        existing: Existing,
    ) -> Result<Run> {
        Run::prepare_holdout(cfg, data_path, out, existing, Holdout::Fraction)
    }

    /// [`Run::prepare`] with a chosen test holdout; a fold ([`Holdout::Fold`]) is for tables.
    pub fn prepare_holdout(
        cfg: &RunConfig,
        data_path: &Path,
        out: &Path,
        existing: Existing,
        holdout: Holdout,
    ) -> Result<Run> {
        validate(cfg)?;
        // Data-parallel ranks (under mpirun) share each step's micro-batches.
        let mut cfg = cfg.clone();
        cfg.train = cfg.train.for_ranks(crate::distributed::world().size())?;
        let cfg = &cfg;
        let data = match holdout {
            Holdout::Fraction => prepare(cfg, data_path)?,
            fold => prepare_table(cfg, data_path, fold)?,
        };
        // Only rank 0 writes the run directory.
        if crate::distributed::is_main() {
            prepare_dir(out, existing)?;
        }
        Ok(Run {
            cfg: cfg.clone(),
            data,
            // Stored in the checkpoint for eval and --resume, which may run elsewhere.
            data_path: std::path::absolute(data_path).unwrap_or_else(|_| data_path.into()),
            out: out.to_path_buf(),
            existing,
            device: crate::Device::Cpu,
        })
    }

    /// Trains on `device` (the CPU unless set); checkpoints stay device-independent.
    pub fn device(mut self, device: crate::Device) -> Run {
        self.device = device;
        self
    }

    /// Trains (continuing the directory's run for [`Existing::Resume`]) until done or
    /// `max_steps` optimizer steps, then evaluates the test set once. `progress` adds the
    /// progress bar and per-epoch lines (feature `report`).
    pub fn train(self, max_steps: Option<u64>, progress: bool) -> Result<RunOutcome> {
        let Run {
            cfg,
            data,
            data_path,
            out,
            existing,
            device,
        } = self;
        // A session cut short by --steps leaves the baseline to the session that finishes.
        let baseline = match (&data.baseline, max_steps) {
            (Some(b), None) => Some(train_baseline(b, &cfg, &data)?),
            _ => None,
        };
        crate::manual_seed(cfg.train.seed);
        let model = data.model.build()?;
        model.to_device(device)?;
        let task = model.task();
        let mut extra = serde_json::Map::new();
        extra.insert("name".into(), cfg.name.clone().into());
        extra.insert("data".into(), data_path.display().to_string().into());
        extra.insert("precision".into(), cfg.train.precision.name().into());
        let ckpt = out.join("checkpoint.safetensors");
        extra.insert("checkpoint".into(), ckpt.display().to_string().into());
        extra.insert(
            "config".into(),
            serde_json::to_value(&cfg).expect("configs serialize"),
        );
        if let Some((name, ev)) = &baseline {
            let mut b = ev.to_json();
            b.insert("model".into(), name.clone().into());
            extra.insert("baseline".into(), b.into());
        }
        let mut trainer = Trainer::new(model, cfg.train.clone())?
            .checkpoint_dir(&out)
            .max_steps(max_steps)
            .metadata(
                "run",
                serde_json::to_string(&cfg).expect("configs serialize"),
            )
            .metadata("data", data_path.display().to_string())
            .hook(MetricsJsonl(out.join("metrics.jsonl")))
            .hook(SummaryJson {
                path: out.join("summary.json"),
                extra,
            });
        for (k, v) in &data.metadata {
            trainer = trainer.metadata(k, v.clone());
        }
        #[cfg(feature = "report")]
        {
            trainer = trainer.hook(crate::train::Curves::new(out.join("curves.png"), task));
            if progress {
                trainer = trainer.hook(crate::train::Progress::new());
            }
        }
        let _ = (task, progress);
        if existing == Existing::Resume {
            trainer.resume(&ckpt)?;
        }
        let report = trainer.fit(&*data.train, data.val.as_deref())?;
        let test = match report.stop {
            Stop::StepLimit => None,
            _ => Some(trainer.test(&*data.test, &report)?),
        };
        let showcase = match (&test, &data.showcase) {
            (Some(_), Some(s)) if crate::distributed::is_main() => {
                let shown = show(trainer.model(), s, &out, cfg.train.seed)?;
                add_to_summary(&out.join("summary.json"), &shown)?;
                Some(shown)
            }
            _ => None,
        };
        Ok(RunOutcome {
            report,
            test,
            checkpoint: ckpt,
            baseline,
            showcase,
        })
    }
}

/// Pictures and probes of a trained autoencoder or video model, written into `out`.
fn show(
    model: &dyn Model,
    data: &Showcase,
    out: &Path,
    seed: u64,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    // The showcase needs the concrete model: a fresh one carrying the trained tensors.
    let state = model.state_dict();
    match model.config() {
        Some(ModelConfig::Autoencoder(c)) => {
            let mut m = models::Autoencoder::new(c)?;
            m.load_state_dict(&state)?;
            m.set_training(false);
            unlabeled::show(&m, data, out, seed)
        }
        Some(ModelConfig::Video(c)) => {
            let mut m = models::VideoPredictor::new(c)?;
            m.load_state_dict(&state)?;
            m.set_training(false);
            video::show(&m, data, out)
        }
        _ => Ok(Default::default()),
    }
}

/// Adds `shown` to the run's `summary.json` under `"showcase"`.
fn add_to_summary(path: &Path, shown: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let mut summary: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Format {
            file: path.display().to_string(),
            msg: e.to_string(),
        })?;
    summary.insert("showcase".into(), shown.clone().into());
    let text = serde_json::to_string_pretty(&summary).expect("summary serializes");
    crate::io::write_atomic(path, text.as_bytes())
}

/// A trained model read back from any run's checkpoint, with what using it needs.
pub struct Trained {
    /// The model, in eval mode.
    pub model: Box<dyn Model>,
    /// Its config.
    pub config: ModelConfig,
    /// The run's config (absent for a model saved by library code without one).
    pub run: Option<RunConfig>,
    /// Where the run read its data.
    pub data: Option<PathBuf>,
    /// Class names (classifiers).
    pub classes: Vec<String>,
    /// Input normalization (image, table, audio and sequence classifiers).
    pub norm: Option<Norm>,
    /// Shape of one input sample.
    pub input_shape: Option<Vec<usize>>,
    /// Character vocabulary (language models).
    pub tokenizer: Option<CharTokenizer>,
    /// Series scaling (forecasters).
    pub series: Option<SeriesInfo>,
    /// The fitted table schema (table models): how raw rows become inputs.
    pub table: Option<crate::data::Schema>,
    /// Every metadata field of the file.
    pub metadata: HashMap<String, String>,
}

impl Trained {
    /// The training config the run used.
    pub fn train_config(&self) -> Option<TrainConfig> {
        self.run.as_ref().map(|r| r.train.clone())
    }
    /// Optimizer steps the checkpoint had taken.
    pub fn step(&self) -> Option<u64> {
        self.metadata.get("step").and_then(|s| s.parse().ok())
    }
}

/// Loads a checkpoint written by a run (or by [`models::save`]), checking every metadata field
/// it reads before anything is built from it.
pub fn load_trained(path: &Path) -> Result<Trained> {
    trained_from(models::load_checkpoint(path)?, &path.display().to_string())
}

/// [`load_trained`] from the checkpoint's bytes (a browser has no paths); `source` names the
/// file in errors.
pub fn load_trained_bytes(bytes: &[u8], source: &str) -> Result<Trained> {
    trained_from(models::load_checkpoint_bytes(bytes, source)?, source)
}

fn trained_from(loaded: models::Loaded, source: &str) -> Result<Trained> {
    let meta = loaded.metadata;
    let bad = |k: &str, msg: String| Error::Format {
        file: source.to_string(),
        msg: format!("metadata field {k:?}: {msg}"),
    };
    fn field<T: serde::de::DeserializeOwned>(
        meta: &HashMap<String, String>,
        k: &str,
        bad: &dyn Fn(&str, String) -> Error,
    ) -> Result<Option<T>> {
        meta.get(k)
            .map(|v| serde_json::from_str(v).map_err(|e| bad(k, e.to_string())))
            .transpose()
    }
    let run: Option<RunConfig> = field(&meta, "run", &bad)?;
    if let Some(r) = &run {
        validate(r).map_err(|e| bad("run", e.to_string()))?;
    }
    let classes: Vec<String> = field(&meta, "classes", &bad)?.unwrap_or_default();
    let norm: Option<Norm> = field(&meta, "norm", &bad)?;
    let input_shape: Option<Vec<usize>> = field(&meta, "input_shape", &bad)?;
    let series: Option<SeriesInfo> = field(&meta, "series", &bad)?;
    let model_shape = match &loaded.config {
        ModelConfig::Mlp(c) => Some(&c.input_shape),
        ModelConfig::Cnn(c) => Some(&c.input_shape),
        _ => None,
    };
    if let (Some(given), Some(model)) = (&input_shape, model_shape) {
        if given != model {
            return Err(bad(
                "input_shape",
                format!("{given:?}, but the model reads samples of shape {model:?}"),
            ));
        }
    }
    let table: Option<crate::data::Schema> = field(&meta, "table", &bad)?;
    if let Some(sc) = &table {
        sc.validate().map_err(|e| bad("table", e.to_string()))?;
        let width = match &loaded.config {
            ModelConfig::Mlp(c) => Some(c.input_shape.iter().product::<usize>()),
            _ => None,
        };
        if width != Some(sc.width()) {
            return Err(bad(
                "table",
                format!(
                    "the schema encodes {} inputs, the model reads {width:?}",
                    sc.width()
                ),
            ));
        }
    }
    if let Some(n) = &norm {
        n.transform().map_err(|e| bad("norm", e.to_string()))?;
        let per = input_shape
            .as_ref()
            .map(|s| (s[0], s.iter().product::<usize>()));
        let k = n.mean.len();
        if let Some((c, all)) = per {
            if !(k == 1 || k == c || k == all) {
                return Err(bad(
                    "norm",
                    format!("{k} statistics for samples of shape {input_shape:?} (expected 1, one per channel or one per feature)"),
                ));
            }
        }
    }
    let (task_classes, is_classifier) = match &loaded.config {
        ModelConfig::Mlp(c) => (c.classes, true),
        ModelConfig::Cnn(c) => (c.classes, true),
        ModelConfig::SeqClassifier(c) => (c.outputs, true),
        _ => (0, false),
    };
    if is_classifier && !classes.is_empty() && classes.len() > task_classes {
        return Err(bad(
            "classes",
            format!(
                "{} names for a model with {task_classes} outputs",
                classes.len()
            ),
        ));
    }
    let tokenizer = match meta.get("vocab") {
        Some(v) => Some(CharTokenizer::from_vocab(v).map_err(|e| bad("vocab", e.to_string()))?),
        None => None,
    };
    if let (Some(t), ModelConfig::Gpt(g)) = (&tokenizer, &loaded.config) {
        if t.vocab_size() != g.vocab {
            return Err(bad(
                "vocab",
                format!(
                    "{} characters for a model with a vocabulary of {}",
                    t.vocab_size(),
                    g.vocab
                ),
            ));
        }
    }
    Ok(Trained {
        model: loaded.model,
        config: loaded.config,
        run,
        data: meta.get("data").map(PathBuf::from),
        classes,
        norm,
        input_shape,
        tokenizer,
        series,
        table,
        metadata: meta,
    })
}

/// Every field where two configs differ, as `field: checkpoint A, now B`.
pub fn config_differences(stored: &RunConfig, now: &RunConfig) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(stored).expect("configs serialize"),
        serde_json::to_value(now).expect("configs serialize"),
    );
    let mut out = Vec::new();
    for section in ["name", "data", "model", "train"] {
        out.extend(crate::train::differences(section, &a[section], &b[section]));
    }
    out
}
