//! The training loop behind `fukai train`: batches, steps, evaluation each epoch, progress bar,
//! metrics files and checkpoints.

use crate::config::Config;
use crate::dataset::Splits;
use crate::report::{self, EpochMetrics, Evaluation};
use fukai::data::{
    DataLoader, Dataset, InMemory, Normalize, RandomCrop, RandomHorizontalFlip, Transform,
};
use fukai::io::checkpoint::{self, Progress};
use fukai::nn::loss::{cross_entropy_with, CrossEntropyOpts};
use fukai::nn::{Module, Sequential};
use fukai::optim::{clip_grad_norm, Adam, LrSchedule, Optimizer, RmsProp, Sgd};
use fukai::{bail, Result, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Feature normalization fitted on the training set, stored in checkpoints for `predict`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Norm {
    /// Per-channel (images) or per-feature (tables) mean.
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

/// Mean/std over the training set: one value for grey images, per feature for tables.
pub fn fit_norm(cfg: &Config, train: &InMemory) -> Norm {
    let (m, s) = train.feature_stats();
    if cfg.data.format == "table" {
        if cfg.data.standardize {
            return Norm { mean: m, std: s };
        }
        return Norm {
            mean: vec![0.0],
            std: vec![1.0],
        };
    }
    // Images: pool the per-pixel statistics into one mean and std per channel.
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

pub(crate) fn optimizer(cfg: &Config, params: Vec<Tensor>) -> Result<Box<dyn Optimizer>> {
    let t = &cfg.train;
    Ok(match t.optimizer.as_str() {
        "adam" => Box::new(Adam::new(params, t.lr).weight_decay(t.weight_decay)),
        "adamw" => Box::new(Adam::adamw(params, t.lr).weight_decay(t.weight_decay)),
        "sgd" => Box::new(
            Sgd::new(params, t.lr)
                .momentum(t.momentum)
                .nesterov(t.nesterov)
                .weight_decay(t.weight_decay),
        ),
        "rmsprop" => Box::new(
            RmsProp::new(params, t.lr)
                .momentum(t.momentum)
                .weight_decay(t.weight_decay),
        ),
        other => bail!(
            "config",
            "train.optimizer {other:?} is unknown; expected adam, adamw, sgd or rmsprop"
        ),
    })
}

/// One optimizer update at the scheduled learning rate, with the configured gradient clipping;
/// shared by every training loop.
pub(crate) fn optimizer_step(
    cfg: &Config,
    opt: &mut dyn Optimizer,
    sched: &LrSchedule,
    progress: &mut Progress,
) -> Result<()> {
    opt.set_lr(sched.lr(cfg.train.lr, progress.step as usize));
    if let Some(c) = cfg.train.clip_grad_norm {
        clip_grad_norm(opt.params(), c)?;
    }
    opt.step()?;
    opt.zero_grad();
    progress.step += 1;
    Ok(())
}

/// A diverged loss stops the run with a hint instead of training on NaNs.
pub(crate) fn check_finite(loss: f64, epoch: usize, step: u64) -> Result<()> {
    if !loss.is_finite() {
        bail!(
            "train",
            "loss became {loss} at epoch {} step {step}; try a lower learning rate",
            epoch + 1
        );
    }
    Ok(())
}

pub(crate) fn schedule(cfg: &Config, total: usize) -> Result<LrSchedule> {
    let t = &cfg.train;
    Ok(match t.schedule.as_str() {
        "constant" => LrSchedule::Constant,
        "cosine" => LrSchedule::WarmupCosine {
            warmup: t.warmup_steps,
            total,
            min_lr: t.lr * 0.01,
        },
        "onecycle" => LrSchedule::OneCycle {
            total,
            pct_start: 0.25,
        },
        "step" => LrSchedule::Step {
            step_size: (total / 3).max(1),
            gamma: 0.5,
        },
        other => bail!(
            "config",
            "train.schedule {other:?} is unknown; expected constant, cosine, onecycle or step"
        ),
    })
}

/// Checks the values serde cannot.
pub fn validate(cfg: &Config) -> Result<()> {
    let t = &cfg.train;
    if t.epochs == 0 || t.batch_size == 0 || t.accumulate == 0 {
        bail!(
            "config",
            "train.epochs, train.batch_size and train.accumulate must be positive"
        );
    }
    if !(t.lr > 0.0 && t.lr.is_finite()) {
        bail!(
            "config",
            "train.lr must be a positive number, found {}",
            t.lr
        );
    }
    if !(0.0..1.0).contains(&cfg.model.dropout) {
        bail!(
            "config",
            "model.dropout must be in [0, 1), found {}",
            cfg.model.dropout
        );
    }
    if !(0.0..1.0).contains(&cfg.data.test_fraction) {
        bail!(
            "config",
            "data.test_fraction must be in [0, 1), found {}",
            cfg.data.test_fraction
        );
    }
    if !(0.0..=1.0).contains(&t.label_smoothing) {
        bail!(
            "config",
            "train.label_smoothing must be in [0, 1], found {}",
            t.label_smoothing
        );
    }
    if !(t.weight_decay >= 0.0 && t.weight_decay.is_finite()) {
        bail!(
            "config",
            "train.weight_decay must be a non-negative number, found {}",
            t.weight_decay
        );
    }
    if !(0.0..1.0).contains(&t.momentum) {
        bail!(
            "config",
            "train.momentum must be in [0, 1), found {}",
            t.momentum
        );
    }
    if let Some(c) = t.clip_grad_norm {
        if c.is_nan() || c <= 0.0 {
            bail!("config", "train.clip_grad_norm must be positive, found {c}");
        }
    }
    // Names are checked here too, so a typo fails before any data is read.
    optimizer(cfg, Vec::new())?;
    schedule(cfg, 1)?;
    if crate::seq::is_sequence_model(&cfg.model) {
        return crate::seq::validate(cfg);
    }
    if !matches!(cfg.model.kind.as_str(), "mlp" | "cnn") {
        bail!(
            "config",
            "model.kind {:?} is unknown; expected \"mlp\" or \"cnn\"",
            cfg.model.kind
        );
    }
    if !matches!(
        cfg.data.format.as_str(),
        "mnist-csv" | "idx" | "table" | "image-folder" | "audio-manifest"
    ) {
        bail!(
            "config",
            "data.format {:?} is unknown; expected mnist-csv, idx, table, image-folder or audio-manifest",
            cfg.data.format
        );
    }
    Ok(())
}

/// Builds the model for `cfg` and the data's sample shape.
pub fn model_for(cfg: &Config, sample_shape: &[usize], classes: usize) -> Result<Sequential> {
    crate::model::build(&cfg.model, sample_shape, classes)
}

/// Evaluates `model` on `data` (eval mode, no graph).
pub fn evaluate(model: &mut Sequential, data: Arc<dyn Dataset>, norm: &Norm) -> Result<Evaluation> {
    model.set_training(false);
    let _g = fukai::no_grad();
    let classes = data.classes();
    let loader = DataLoader::new(data, 500).transforms(vec![Box::new(norm.transform()?)]);
    let mut ev = Evaluation::new(classes);
    for b in loader.epoch(0) {
        let b = b?;
        let logits = model.forward(&b.x)?;
        let loss = cross_entropy_with(&logits, &b.y, CrossEntropyOpts::default())?.item()?;
        ev.add(
            loss,
            &logits.argmax(-1, false)?.to_vec::<i64>()?,
            &b.y.to_vec::<i64>()?,
        );
    }
    model.set_training(true);
    Ok(ev)
}

/// Where and how a run writes.
pub struct RunOptions {
    /// Run directory (created).
    pub out: PathBuf,
    /// Continue from this checkpoint.
    pub resume: Option<PathBuf>,
    /// Where the data was read from (recorded in the summary).
    pub data_path: PathBuf,
    /// Stop once the run has taken this many optimizer steps (`--steps`: smoke runs, and the
    /// benchmark's short epochs); the schedule still spans the configured epochs.
    pub max_steps: Option<usize>,
}

/// Trains `cfg` on `splits`, writing metrics, curves, summary and checkpoint under `opts.out`.
pub fn run(cfg: &Config, splits: Splits, opts: &RunOptions) -> Result<report::Summary> {
    validate(cfg)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| fukai::Error::Io {
        path: opts.out.display().to_string(),
        source: e,
    })?;
    fukai::manual_seed(cfg.train.seed);
    let shape = splits.train.sample_shape().to_vec();
    let classes = splits.class_names.len().max(splits.train.classes());
    let mut model = model_for(cfg, &shape, classes)?;
    let mut opt = optimizer(cfg, model.parameters())?;
    let norm = fit_norm(cfg, &splits.train);

    let mut tfm: Vec<Box<dyn Transform>> = Vec::new();
    if cfg.data.crop_padding > 0 {
        tfm.push(Box::new(RandomCrop {
            padding: cfg.data.crop_padding,
        }));
    }
    if cfg.data.hflip {
        tfm.push(Box::new(RandomHorizontalFlip { p: 0.5 }));
    }
    tfm.extend(crate::audio_data::train_transforms(&cfg.data));
    tfm.push(Box::new(norm.transform()?));
    let train_set: Arc<dyn Dataset> = Arc::new(splits.train.clone());
    let test_set: Arc<dyn Dataset> = Arc::new(splits.test.clone());
    // A last batch of one sample has no batch statistics (PyTorch refuses it too): drop it.
    let lone_last = cfg.model.batch_norm && train_set.len() % cfg.train.batch_size == 1;
    let loader = DataLoader::new(train_set.clone(), cfg.train.batch_size)
        .shuffle(cfg.train.seed)
        .drop_last(lone_last)
        .transforms(tfm);
    let steps_per_epoch = loader.num_batches().div_ceil(cfg.train.accumulate);
    let sched = schedule(cfg, steps_per_epoch * cfg.train.epochs)?;
    let ce = CrossEntropyOpts {
        label_smoothing: cfg.train.label_smoothing,
        ignore_index: None,
    };

    let ckpt_path = opts.out.join("checkpoint.safetensors");
    let mut progress = Progress { step: 0, epoch: 0 };
    let mut history: Vec<EpochMetrics> = Vec::new();
    if let Some(r) = &opts.resume {
        let (p, meta) = checkpoint::load(r, &model, Some(opt.as_mut()))?;
        progress = p;
        if let Some(h) = meta.get("history") {
            history = serde_json::from_str(h).unwrap_or_default();
        }
        println!(
            "resumed from {} at epoch {}, step {}",
            r.display(),
            progress.epoch,
            progress.step
        );
    }
    let config_json = serde_json::to_string(cfg).expect("config serializes");
    let norm_json = serde_json::to_string(&norm).expect("norm serializes");
    let class_json = serde_json::to_string(&splits.class_names).expect("names serialize");
    let shape_json = serde_json::to_string(&shape).expect("shape serializes");

    println!(
        "fukai train: {} | {} parameters | {} train / {} test samples | {} epochs x {} batches",
        cfg.name,
        model.num_parameters(),
        train_set.len(),
        test_set.len(),
        cfg.train.epochs,
        loader.num_batches()
    );
    let started = Instant::now();
    let mut seen = 0usize;
    for epoch in progress.epoch as usize..cfg.train.epochs {
        let t0 = Instant::now();
        let bar = ProgressBar::new(loader.num_batches() as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, cfg.train.epochs));
        let (mut loss_sum, mut correct, mut count) = (0.0f64, 0usize, 0usize);
        for (i, batch) in loader.epoch(epoch as u64).enumerate() {
            let b = batch?;
            let n = b.y.numel();
            let logits = model.forward(&b.x)?;
            let loss = cross_entropy_with(&logits, &b.y, ce)?;
            let scaled = if cfg.train.accumulate > 1 {
                loss.mul_scalar(1.0 / cfg.train.accumulate as f64)?
            } else {
                loss.clone()
            };
            scaled.backward()?;
            if (i + 1) % cfg.train.accumulate == 0 || i + 1 == loader.num_batches() {
                optimizer_step(cfg, opt.as_mut(), &sched, &mut progress)?;
            }
            let l = loss.item()?;
            check_finite(l, epoch, progress.step)?;
            let pred = logits.argmax(-1, false)?.to_vec::<i64>()?;
            correct += pred
                .iter()
                .zip(b.y.to_vec::<i64>()?)
                .filter(|(p, y)| **p == *y)
                .count();
            loss_sum += l * n as f64;
            count += n;
            seen += n;
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.4} acc {:.2}% {:.0} samples/s",
                loss_sum / count as f64,
                100.0 * correct as f64 / count as f64,
                count as f64 / t0.elapsed().as_secs_f64()
            ));
            if step_limit_reached(opts, &progress) {
                break;
            }
        }
        bar.finish_and_clear();
        let train_secs = t0.elapsed().as_secs_f64();
        let ev = evaluate(&mut model, test_set.clone(), &norm)?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / count.max(1) as f64,
            train_accuracy: correct as f64 / count.max(1) as f64,
            test_loss: ev.loss(),
            test_accuracy: ev.accuracy(),
            lr: opt.lr(),
            seconds: train_secs,
            samples_per_second: count as f64 / train_secs,
        };
        println!(
            "epoch {:>3}/{}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | {:.1}s, {:.0} samples/s",
            m.epoch,
            cfg.train.epochs,
            m.train_loss,
            100.0 * m.train_accuracy,
            m.test_loss,
            100.0 * m.test_accuracy,
            m.seconds,
            m.samples_per_second
        );
        history.push(m);
        progress.epoch = epoch as u64 + 1;
        report::write_metrics(&opts.out, &history)?;
        let hist_json = serde_json::to_string(&history).expect("metrics serialize");
        checkpoint::save(
            &ckpt_path,
            &model,
            opt.as_ref(),
            &progress,
            &[
                ("config", config_json.clone()),
                ("norm", norm_json.clone()),
                ("classes", class_json.clone()),
                ("input_shape", shape_json.clone()),
                ("history", hist_json),
            ],
        )?;
        if step_limit_reached(opts, &progress) {
            break;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let ev = evaluate(&mut model, test_set, &norm)?;
    let summary = report::Summary::new(
        cfg,
        &history,
        &ev,
        wall,
        seen,
        model.num_parameters(),
        &ckpt_path,
        &opts.data_path,
    );
    report::finish(&opts.out, &summary, &history, &ev, &splits.class_names)?;
    Ok(summary)
}

fn step_limit_reached(opts: &RunOptions, progress: &Progress) -> bool {
    opts.max_steps.is_some_and(|m| progress.step >= m as u64)
}

/// A model restored from a `fukai train` checkpoint.
pub struct Trained {
    /// The network, in eval mode.
    pub model: Sequential,
    /// The run's config.
    pub cfg: Config,
    /// Input normalization fitted at training time.
    pub norm: Norm,
    /// Class names.
    pub classes: Vec<String>,
    /// Shape of one input sample.
    pub input_shape: Vec<usize>,
}

impl Trained {
    /// One raw sample, normalized as in training, as a batch of one `[1, ...input_shape]`.
    pub fn batch_of_one(&self, mut x: Vec<f32>) -> Result<Tensor> {
        let norm = self.norm.transform()?;
        norm.apply(&mut x, &self.input_shape, &mut fukai::Generator::new(0));
        let mut shape = vec![1];
        shape.extend_from_slice(&self.input_shape);
        Tensor::from_vec(x, &shape)
    }
}

/// Checks what a checkpoint's metadata says about the data before anything is built from it.
fn check_metadata(path: &Path, norm: &Norm, classes: &[String], shape: &[usize]) -> Result<()> {
    let bad = |msg: String| fukai::Error::Format {
        file: path.display().to_string(),
        msg: format!("metadata field {msg}"),
    };
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if shape.is_empty() || shape.contains(&0) || numel.is_none_or(|n| n > MAX_SAMPLE_VALUES) {
        return Err(bad(format!(
            "\"input_shape\": {shape:?} is not a sample shape (positive dims, at most \
             {MAX_SAMPLE_VALUES} values)"
        )));
    }
    if classes.is_empty() {
        return Err(bad("\"classes\": no class names".into()));
    }
    // One statistic for all channels, one per channel (images) or one per feature (tables).
    let n = norm.mean.len();
    if n == 0 || norm.std.len() != n || !(n == 1 || n == shape[0] || n == numel.unwrap_or(0)) {
        return Err(bad(format!(
            "\"norm\": {} means and {} standard deviations for samples of shape {shape:?} \
             (expected 1, one per channel or one per feature)",
            n,
            norm.std.len()
        )));
    }
    if norm.mean.iter().chain(&norm.std).any(|v| !v.is_finite())
        || norm.std.iter().any(|&s| s <= 0.0)
    {
        return Err(bad(
            "\"norm\": means and standard deviations must be finite, deviations positive".into(),
        ));
    }
    Ok(())
}

/// The most values one input sample may have (a 4096x4096 RGB image is 50M).
pub const MAX_SAMPLE_VALUES: usize = 1 << 26;

/// The error for a checkpoint whose metadata describes a model that cannot be built, or not
/// within what its tensors hold.
pub fn mismatch(path: &Path, e: fukai::Error) -> fukai::Error {
    fukai::Error::Format {
        file: path.display().to_string(),
        msg: format!("the model its metadata describes cannot be built from its tensors: {e}"),
    }
}

/// Loads a checkpoint written by `run`: the model (eval mode), its config, normalization and
/// class names.
pub fn load_trained(path: &Path) -> Result<Trained> {
    let file = fukai::io::load_safetensors(path)?;
    file.check_finite()?;
    let get = |k: &str| -> Result<String> {
        file.metadata()
            .get(k)
            .cloned()
            .ok_or_else(|| fukai::Error::Format {
                file: path.display().to_string(),
                msg: format!("metadata field {k:?} is missing (not a `fukai train` checkpoint?)"),
            })
    };
    let bad = |k: &str, e: serde_json::Error| fukai::Error::Format {
        file: path.display().to_string(),
        msg: format!("metadata field {k:?}: {e}"),
    };
    let cfg: Config = serde_json::from_str(&get("config")?).map_err(|e| bad("config", e))?;
    crate::limits::check(&cfg).map_err(|e| mismatch(path, e))?;
    let norm: Norm = serde_json::from_str(&get("norm")?).map_err(|e| bad("norm", e))?;
    let classes: Vec<String> =
        serde_json::from_str(&get("classes")?).map_err(|e| bad("classes", e))?;
    let shape: Vec<usize> =
        serde_json::from_str(&get("input_shape")?).map_err(|e| bad("input_shape", e))?;
    check_metadata(path, &norm, &classes, &shape)?;
    let mut model = fukai::tensor::with_alloc_limit(file.build_limit(), || {
        model_for(&cfg, &shape, classes.len())
    })
    .map_err(|e| mismatch(path, e))?;
    checkpoint::load(path, &model, None)?;
    model.set_training(false);
    Ok(Trained {
        model,
        cfg,
        norm,
        classes,
        input_shape: shape,
    })
}
