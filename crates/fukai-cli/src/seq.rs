//! Sequence models in the CLI: recurrent classifiers over padded variable-length batches
//! (`.ts` files, cross-entropy, accuracy) and one-step forecasters over CSV windows (MSE loss,
//! RMSE against the naive "same as last step" forecast).

use crate::config::{Config, ModelConfig};
use crate::report::{self, EpochMetrics, Evaluation};
use fukai::data::{read_series_csv, read_ts, Sequences, Windows};
use fukai::io::checkpoint::{self, Progress};
use fukai::io::write_atomic;
use fukai::nn::loss::{cross_entropy, mse_loss};
use fukai::nn::{Linear, Module, Rnn, RnnOptions, TensorKind};
use fukai::ops::CellKind;
use fukai::{bail, Error, Generator, Result, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// True for the recurrent model kinds this file trains.
pub fn is_sequence_model(m: &ModelConfig) -> bool {
    matches!(m.kind.as_str(), "lstm" | "gru" | "rnn")
}

/// The sequence presets.
pub fn preset(name: &str) -> Option<Config> {
    use crate::presets::{data, model, train};
    Some(match name {
        // Speaker id from 12 LPC cepstra per frame, 7-29 frames, inputs standardized per
        // channel on the train set. One LSTM layer of 64 read at each sequence's last valid step
        // reached 95.9% (seed 0); reading it in both directions (final states of both passes)
        // reaches 97.3-97.6% (seeds 0, 1).
        "vowels-lstm" => {
            let mut t = train(60, 32, 3e-3);
            t.schedule = "cosine".into();
            let mut m = model("lstm", &[64], &[]);
            m.bidirectional = true;
            Config {
                name: name.into(),
                data: data("ts", "timeseries/uea/JapaneseVowels"),
                model: m,
                train: t,
            }
        }
        // Yearly sunspot numbers 1700-2008: predict next year from the last 20, test on the
        // last 20% of years.
        "sunspots-lstm" => {
            let mut d = data("series-csv", "timeseries/sunspots.csv");
            d.column = Some("SUNACTIVITY".into());
            d.lookback = 20;
            d.horizon = 1;
            let mut t = train(150, 16, 3e-3);
            t.schedule = "cosine".into();
            t.clip_grad_norm = Some(1.0);
            Config {
                name: name.into(),
                data: d,
                model: model("lstm", &[32], &[]),
                train: t,
            }
        }
        _ => return None,
    })
}

/// Checks the parts of a config only sequence runs use.
pub fn validate(cfg: &Config) -> Result<()> {
    let m = &cfg.model;
    if m.hidden.is_empty() || m.hidden.iter().any(|&h| h == 0 || h != m.hidden[0]) {
        bail!(
            "config",
            "model.hidden for a {} lists one positive width per layer, all equal, found {:?}",
            m.kind,
            m.hidden
        );
    }
    if cfg.train.accumulate != 1 {
        bail!(
            "config",
            "train.accumulate is not supported for a {} yet (found {}); use a larger batch_size",
            m.kind,
            cfg.train.accumulate
        );
    }
    if !m.channels.is_empty() || m.batch_norm {
        bail!(
            "config",
            "model.channels and model.batch_norm do not apply to a {}",
            m.kind
        );
    }
    match cfg.data.format.as_str() {
        "ts" => {}
        "series-csv" => {
            if cfg.data.column.is_none() || cfg.data.lookback == 0 || cfg.data.horizon == 0 {
                bail!(
                    "config",
                    "data.format \"series-csv\" needs data.column and positive data.lookback and data.horizon"
                );
            }
        }
        other => bail!(
            "config",
            "data.format {other:?} cannot feed model.kind {:?}: recurrent models read \"ts\" or \"series-csv\"",
            m.kind
        ),
    }
    Ok(())
}

/// A recurrent stack read at its final states (each row's last valid step), then a linear head.
pub struct SeqNet {
    rnn: Rnn,
    head: Linear,
}

impl SeqNet {
    fn new(cfg: &ModelConfig, inputs: usize, outputs: usize) -> Result<Self> {
        let cell = match cfg.kind.as_str() {
            "lstm" => CellKind::Lstm,
            "gru" => CellKind::Gru,
            _ => CellKind::RnnTanh,
        };
        let opts = RnnOptions {
            num_layers: cfg.hidden.len(),
            bidirectional: cfg.bidirectional,
            batch_first: true,
            dropout: cfg.dropout,
            bias: true,
        };
        let rnn = Rnn::new(cell, inputs, cfg.hidden[0], opts)?;
        let feat = cfg.hidden[0] * rnn.directions();
        Ok(SeqNet {
            rnn,
            head: Linear::new(feat, outputs, true)?,
        })
    }

    /// `x`: `[B, T, F]`, rows valid up to `lengths`.
    pub fn forward_lengths(&self, x: &Tensor, lengths: Option<&[usize]>) -> Result<Tensor> {
        let r = self.rnn.forward_seq(x, None, lengths)?;
        let d = self.rnn.directions();
        let layers = self.rnn.options().num_layers;
        let last = r.h_n.narrow(0, (layers - 1) * d, d)?;
        let b = x.shape()[0];
        let feat = if d == 1 {
            last.squeeze(0)?
        } else {
            last.permute(&[1, 0, 2])?
                .contiguous()?
                .reshape(&[b, d * self.rnn.hidden_size()])?
        };
        self.head.forward(&feat)
    }
}

impl Module for SeqNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_lengths(x, None)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        self.rnn.visit(&fukai::nn::join(prefix, "rnn"), f);
        self.head.visit(&fukai::nn::join(prefix, "head"), f);
    }
    fn set_training(&mut self, on: bool) {
        self.rnn.set_training(on);
    }
    fn describe(&self) -> String {
        format!("{} -> {}", self.rnn.describe(), self.head.describe())
    }
}

/// What a sequence run trains on.
enum Task {
    Classify { train: Sequences, test: Sequences },
    Forecast { w: Windows },
}

impl Task {
    fn load(cfg: &Config, path: &Path) -> Result<Task> {
        if cfg.data.format == "ts" {
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
            let (mean, std) = train.channel_stats();
            train.normalize(&mean, &std);
            test.normalize(&mean, &std);
            return Ok(Task::Classify { train, test });
        }
        let column = cfg.data.column.as_deref().expect("validated");
        let series = read_series_csv(path, &[column])?;
        let rows = series.rows();
        let split = rows - (rows as f64 * cfg.data.test_fraction).round() as usize;
        let w = Windows::new(&series, 0, cfg.data.lookback, cfg.data.horizon, split)?;
        Ok(Task::Forecast { w })
    }
    fn inputs(&self) -> usize {
        match self {
            Task::Classify { train, .. } => train.dims,
            Task::Forecast { w } => w.cols,
        }
    }
    fn outputs(&self) -> usize {
        match self {
            Task::Classify { train, .. } => train.class_names.len(),
            Task::Forecast { w } => w.horizon,
        }
    }
    fn train_len(&self) -> usize {
        match self {
            Task::Classify { train, .. } => train.len(),
            Task::Forecast { w } => w.train.len(),
        }
    }
    fn test_len(&self) -> usize {
        match self {
            Task::Classify { test, .. } => test.len(),
            Task::Forecast { w } => w.test.len(),
        }
    }
    /// Batch `rows` of the train (or test) side: inputs, lengths, target.
    fn batch(&self, test: bool, rows: &[usize]) -> Result<(Tensor, Option<Vec<usize>>, Tensor)> {
        match self {
            Task::Classify { train, test: t } => {
                let (x, l, y) = if test { t } else { train }.batch(rows)?;
                Ok((x, Some(l), y))
            }
            Task::Forecast { w } => {
                let side = if test { &w.test } else { &w.train };
                let starts: Vec<usize> = rows.iter().map(|&r| side[r]).collect();
                let (x, y) = w.batch(&starts)?;
                Ok((x, None, y))
            }
        }
    }
    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        match self {
            Task::Classify { .. } => cross_entropy(out, y),
            Task::Forecast { .. } => mse_loss(out, y),
        }
    }
}

/// Test-set results.
struct TestEval {
    loss: f64,
    /// Classification: accuracy and confusion.
    ev: Option<Evaluation>,
    /// Forecasting: RMSE of the model and of the naive forecast, in the series' units.
    rmse: Option<(f64, f64)>,
}

fn evaluate(net: &mut SeqNet, task: &Task) -> Result<TestEval> {
    net.set_training(false);
    let _g = fukai::no_grad();
    let n = task.test_len();
    let rows: Vec<usize> = (0..n).collect();
    let (x, lengths, y) = task.batch(true, &rows)?;
    let out = net.forward_lengths(&x, lengths.as_deref())?;
    let loss = task.loss(&out, &y)?.item()?;
    net.set_training(true);
    Ok(match task {
        Task::Classify { train, .. } => {
            let mut ev = Evaluation::new(train.class_names.len());
            ev.add(
                loss,
                &out.argmax(-1, false)?.to_vec::<i64>()?,
                &y.to_vec::<i64>()?,
            );
            TestEval {
                loss,
                ev: Some(ev),
                rmse: None,
            }
        }
        Task::Forecast { w } => {
            let (p, t) = (out.to_vec::<f32>()?, y.to_vec::<f32>()?);
            let h = w.horizon;
            let (mut se, mut se_naive) = (0f64, 0f64);
            for (i, &s) in w.test.iter().enumerate() {
                // The naive forecast repeats the last observed value for every step ahead.
                let last = w.unscale(w.values[(s + w.lookback - 1) * w.cols + w.target]) as f64;
                for k in 0..h {
                    let truth = w.unscale(t[i * h + k]) as f64;
                    se += (w.unscale(p[i * h + k]) as f64 - truth).powi(2);
                    se_naive += (last - truth).powi(2);
                }
            }
            let m = (w.test.len() * h).max(1) as f64;
            TestEval {
                loss,
                ev: None,
                rmse: Some(((se / m).sqrt(), (se_naive / m).sqrt())),
            }
        }
    })
}

/// summary.json of a sequence run.
#[derive(Serialize)]
struct SeqSummary<'a> {
    name: &'a str,
    task: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_accuracy: Option<f64>,
    test_loss: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_rmse: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    naive_rmse: Option<f64>,
    epochs: usize,
    train_seconds: f64,
    samples_per_second: f64,
    parameters: usize,
    checkpoint: String,
    data: String,
    config: &'a Config,
    #[serde(skip_serializing_if = "Option::is_none")]
    confusion: Option<Vec<Vec<usize>>>,
}

fn shuffled(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut gen = Generator::new(seed).fork(0x5e9, epoch);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = gen.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// Trains a sequence model and writes the run directory.
pub fn run(cfg: &Config, data_path: &Path, out: &PathBuf) -> Result<()> {
    validate(cfg)?;
    // Bad data fails before the run directory is touched.
    let task = Task::load(cfg, data_path)?;
    if task.train_len() == 0 || task.test_len() == 0 {
        return Err(Error::Format {
            file: data_path.display().to_string(),
            msg: format!(
                "{} training and {} test samples: neither split may be empty (data.test_fraction = {})",
                task.train_len(),
                task.test_len(),
                cfg.data.test_fraction
            ),
        });
    }
    std::fs::create_dir_all(out).map_err(|e| Error::Io {
        path: out.display().to_string(),
        source: e,
    })?;
    fukai::manual_seed(cfg.train.seed);
    let mut net = SeqNet::new(&cfg.model, task.inputs(), task.outputs())?;
    let mut opt = crate::train::optimizer(cfg, net.parameters())?;
    let bs = cfg.train.batch_size;
    let batches = task.train_len().div_ceil(bs);
    let sched = crate::train::schedule(cfg, batches * cfg.train.epochs)?;
    let classify = matches!(task, Task::Classify { .. });
    println!(
        "fukai train: {} | {} | {} parameters | {} train / {} test {} | {} epochs x {} batches",
        cfg.name,
        net.describe(),
        net.num_parameters(),
        task.train_len(),
        task.test_len(),
        if classify { "sequences" } else { "windows" },
        cfg.train.epochs,
        batches
    );
    let mut history = Vec::new();
    let mut progress = Progress { step: 0, epoch: 0 };
    let ckpt = out.join("checkpoint.safetensors");
    let started = Instant::now();
    let mut seen = 0usize;
    let mut last = None;
    for epoch in 0..cfg.train.epochs {
        let t0 = Instant::now();
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, cfg.train.epochs));
        let order = shuffled(task.train_len(), cfg.train.seed, epoch as u64);
        let (mut loss_sum, mut correct, mut count) = (0f64, 0usize, 0usize);
        for rows in order.chunks(bs) {
            let (x, lengths, y) = task.batch(false, rows)?;
            let o = net.forward_lengths(&x, lengths.as_deref())?;
            let loss = task.loss(&o, &y)?;
            loss.backward()?;
            crate::train::optimizer_step(cfg, opt.as_mut(), &sched, &mut progress)?;
            let l = loss.item()?;
            crate::train::check_finite(l, epoch, progress.step)?;
            if classify {
                let pred = o.argmax(-1, false)?.to_vec::<i64>()?;
                let truth = y.to_vec::<i64>()?;
                correct += pred.iter().zip(&truth).filter(|(p, t)| p == t).count();
            }
            loss_sum += l * rows.len() as f64;
            count += rows.len();
            seen += rows.len();
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.4} {:.0} samples/s",
                loss_sum / count as f64,
                count as f64 / t0.elapsed().as_secs_f64()
            ));
        }
        bar.finish_and_clear();
        let secs = t0.elapsed().as_secs_f64();
        let te = evaluate(&mut net, &task)?;
        // Forecasting has no accuracy: the curves' second panel shows the test RMSE relative
        // to the naive forecast's (below 1 means better than naive).
        let (train_acc, test_acc) = match (&te.ev, te.rmse) {
            (Some(ev), _) => (correct as f64 / count.max(1) as f64, ev.accuracy()),
            (None, Some((r, n))) => (f64::NAN, r / n),
            _ => unreachable!("one of the two"),
        };
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / count.max(1) as f64,
            train_accuracy: train_acc,
            test_loss: te.loss,
            test_accuracy: test_acc,
            lr: opt.lr(),
            seconds: secs,
            samples_per_second: count as f64 / secs,
        };
        match te.rmse {
            None => println!(
                "epoch {:>3}/{}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | {:.2}s",
                m.epoch,
                cfg.train.epochs,
                m.train_loss,
                100.0 * train_acc,
                te.loss,
                100.0 * test_acc,
                secs
            ),
            Some((r, n)) => println!(
                "epoch {:>3}/{}: train mse {:.4} | test mse {:.4} rmse {:.2} (naive {:.2}) | {:.2}s",
                m.epoch, cfg.train.epochs, m.train_loss, te.loss, r, n, secs
            ),
        }
        history.push(m);
        progress.epoch = epoch as u64 + 1;
        last = Some(te);
    }
    let wall = started.elapsed().as_secs_f64();
    report::write_metrics(out, &history)?;
    let config_json = serde_json::to_string(cfg).expect("config serializes");
    checkpoint::save(
        &ckpt,
        &net,
        opt.as_ref(),
        &progress,
        &[("config", config_json)],
    )?;
    let te = last.expect("at least one epoch");
    let train_time: f64 = history.iter().map(|m| m.seconds).sum();
    let summary = SeqSummary {
        name: &cfg.name,
        task: if classify {
            "classification"
        } else {
            "forecasting"
        },
        test_accuracy: te.ev.as_ref().map(|e| e.accuracy()),
        test_loss: te.loss,
        test_rmse: te.rmse.map(|r| r.0),
        naive_rmse: te.rmse.map(|r| r.1),
        epochs: history.len(),
        train_seconds: wall,
        samples_per_second: seen as f64 / train_time.max(1e-9),
        parameters: net.num_parameters(),
        checkpoint: ckpt.display().to_string(),
        data: data_path.display().to_string(),
        config: cfg,
        confusion: te.ev.as_ref().map(|e| e.confusion.clone()),
    };
    write_atomic(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)
            .expect("summary serializes")
            .as_bytes(),
    )?;
    if classify {
        crate::plot::curves(&out.join("curves.png"), &history)?;
    } else {
        // The plot's accuracy panel shows test RMSE / naive RMSE for forecasters.
        let h: Vec<EpochMetrics> = history
            .iter()
            .cloned()
            .map(|mut m| {
                m.train_accuracy = m.test_accuracy;
                m
            })
            .collect();
        crate::plot::curves(&out.join("curves.png"), &h)?;
    }
    match (&te.ev, te.rmse) {
        (Some(ev), _) => {
            let Task::Classify { train, .. } = &task else {
                unreachable!("classification")
            };
            println!(
                "\nconfusion matrix (test set):\n{}",
                report::confusion_table(&ev.confusion, &train.class_names)
            );
            println!(
                "test accuracy {:.2}% | test loss {:.4} | {} epochs in {:.1}s",
                100.0 * ev.accuracy(),
                te.loss,
                history.len(),
                wall
            );
        }
        (None, Some((r, n))) => println!(
            "\ntest RMSE {r:.3} vs naive (same as last step) {n:.3} on the last {:.0}% | {} epochs in {:.1}s",
            100.0 * cfg.data.test_fraction,
            history.len(),
            wall
        ),
        _ => {}
    }
    println!("\nrun directory: {}", out.display());
    println!("  summary.json, metrics.jsonl, curves.png, checkpoint.safetensors");
    Ok(())
}
