//! Callbacks a [`Trainer`](super::Trainer) calls as a run goes. The progress bar, the
//! `metrics.jsonl`, `curves.png` and `summary.json` writers are hooks too, so library code gets
//! the same run directory the CLI writes.

use super::metrics::{EpochMetrics, Evaluation};
use crate::error::Result;
use crate::models::Task;
use std::path::{Path, PathBuf};

/// What a run is about to do.
#[derive(Clone, Debug)]
pub struct FitInfo {
    /// What the model's outputs are.
    pub task: Task,
    /// The model, e.g. `"Sequential(...)"`.
    pub model: String,
    /// Trainable scalars.
    pub parameters: usize,
    /// Training samples (windows for language models).
    pub train_samples: usize,
    /// Validation samples, when there is a validation set.
    pub val_samples: Option<usize>,
    /// Epochs configured.
    pub epochs: usize,
    /// Micro-batches per epoch.
    pub batches_per_epoch: usize,
    /// Optimizer steps per epoch.
    pub steps_per_epoch: usize,
    /// Where the run starts: epoch (0-based), batch within it, optimizer step.
    pub start: (u64, u64, u64),
}

/// One optimizer step, as it happened.
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// 0-based epoch.
    pub epoch: u64,
    /// Micro-batches of this epoch done.
    pub batch: usize,
    /// Micro-batches per epoch.
    pub batches: usize,
    /// Optimizer steps taken in the run.
    pub step: u64,
    /// This step's mean loss over its micro-batches.
    pub loss: f64,
    /// Mean loss over the epoch so far.
    pub epoch_loss: f64,
    /// Running training accuracy of the epoch (classification).
    pub epoch_accuracy: Option<f64>,
    /// Learning rate used for the step.
    pub lr: f64,
    /// Training samples per second in this epoch so far.
    pub samples_per_second: f64,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct FitReport {
    /// One entry per completed epoch (including those before a resume).
    pub history: Vec<EpochMetrics>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// The last validation pass.
    pub val: Option<Evaluation>,
    /// 1-based epoch with the lowest validation loss.
    pub best_epoch: Option<usize>,
    /// Why training ended.
    pub stop: Stop,
    /// Seconds spent training (evaluation excluded), over every session of the run.
    pub train_seconds: f64,
    /// Samples trained on per second of training.
    pub samples_per_second: f64,
    /// Trainable scalars.
    pub parameters: usize,
    /// How this session's steps were shared among data-parallel ranks, and what sharing cost.
    pub data_parallel: DataParallel,
}

/// A session's data-parallel figures (one process: 1 rank, nothing exchanged).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DataParallel {
    /// Processes training together.
    pub ranks: usize,
    /// Micro-batches each rank computes per optimizer step.
    pub micro_batches_per_rank: usize,
    /// Optimizer steps this session.
    pub steps: u64,
    /// Seconds of those steps (micro-batches, exchange, optimizer update).
    pub step_seconds: f64,
    /// Seconds of them spent exchanging and combining micro-batch results: encoding,
    /// waiting, transfer, decoding and adding.
    pub exchange_seconds: f64,
    /// Of those, seconds waiting for the slowest rank to finish its micro-batches.
    pub wait_seconds: f64,
    /// Of those, seconds in the transfer itself (MPI all-gather).
    pub transfer_seconds: f64,
    /// Bytes this rank sent to the others.
    pub bytes_sent: u64,
}

/// Why training ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// Every configured epoch ran.
    Finished,
    /// The validation loss stopped improving for `patience` epochs.
    EarlyStopped,
    /// The step limit of this session was reached (the run can be resumed).
    StepLimit,
}

/// Called by the trainer at each stage; every method defaults to doing nothing. An error
/// stops the run.
///
/// ```
/// use fukai::data::{DataLoader, InMemory};
/// use fukai::models::{Mlp, MlpConfig};
/// use fukai::train::{EpochMetrics, Evaluation, Hook, StepInfo, TrainConfig, Trainer};
/// use std::sync::{Arc, Mutex};
/// /// Counts steps and keeps each epoch's validation loss.
/// struct Log(Arc<Mutex<(u64, Vec<f64>)>>);
/// impl Hook for Log {
///     fn on_step(&mut self, _: &StepInfo) -> fukai::Result<()> {
///         self.0.lock().unwrap().0 += 1;
///         Ok(())
///     }
///     fn on_epoch_end(&mut self, h: &[EpochMetrics], _: Option<&Evaluation>) -> fukai::Result<()> {
///         self.0.lock().unwrap().1.push(h.last().unwrap().val_loss.unwrap());
///         Ok(())
///     }
/// }
/// let data = Arc::new(InMemory::new(vec![0.0, 1.0, 1.0, 0.0], vec![0, 1], &[2], 2)?);
/// let seen = Arc::new(Mutex::new((0, Vec::new())));
/// let mut t = Trainer::new(Mlp::new(MlpConfig::new(&[2], &[4], 2))?, TrainConfig::new(3, 1, 0.1))?
///     .hook(Log(seen.clone()));
/// t.fit(&DataLoader::new(data.clone(), 1), Some(&DataLoader::new(data, 2)))?;
/// let seen = seen.lock().unwrap();
/// assert_eq!((seen.0, seen.1.len()), (6, 3)); // 2 steps per epoch, 3 epochs
/// # Ok::<(), fukai::Error>(())
/// ```
pub trait Hook {
    /// Before the first step (also after a resume).
    fn on_fit_start(&mut self, _info: &FitInfo) -> Result<()> {
        Ok(())
    }
    /// After each optimizer step.
    fn on_step(&mut self, _step: &StepInfo) -> Result<()> {
        Ok(())
    }
    /// After each epoch's validation; `history` holds every epoch so far, this one last.
    fn on_epoch_end(&mut self, _history: &[EpochMetrics], _val: Option<&Evaluation>) -> Result<()> {
        Ok(())
    }
    /// After a checkpoint was written.
    fn on_checkpoint(&mut self, _path: &Path) -> Result<()> {
        Ok(())
    }
    /// When training ends (not on error).
    fn on_fit_end(&mut self, _report: &FitReport) -> Result<()> {
        Ok(())
    }
    /// After the test set was evaluated.
    fn on_test(&mut self, _report: &FitReport, _test: &Evaluation) -> Result<()> {
        Ok(())
    }
}

/// Rewrites `metrics.jsonl` (one JSON object per epoch) after each epoch.
///
/// ```
/// use fukai::data::{DataLoader, InMemory};
/// use fukai::models::{Mlp, MlpConfig};
/// use fukai::train::{MetricsJsonl, SummaryJson, TrainConfig, Trainer};
/// use std::sync::Arc;
/// let dir = std::env::temp_dir().join(format!("fukai-doc-hooks-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let data = Arc::new(InMemory::new(vec![0.0, 1.0, 1.0, 0.0], vec![0, 1], &[2], 2)?);
/// let (train, test) = (DataLoader::new(data.clone(), 2), DataLoader::new(data, 2));
/// let mut t = Trainer::new(Mlp::new(MlpConfig::new(&[2], &[4], 2))?, TrainConfig::new(2, 2, 0.1))?
///     .hook(MetricsJsonl(dir.join("metrics.jsonl")))
///     .hook(SummaryJson { path: dir.join("summary.json"), extra: Default::default() });
/// let report = t.fit(&train, None)?;
/// t.test(&test, &report)?;
/// assert_eq!(std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines().count(), 2);
/// let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
/// assert_eq!(summary["steps"], 2);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct MetricsJsonl(pub PathBuf);

impl Hook for MetricsJsonl {
    fn on_epoch_end(&mut self, history: &[EpochMetrics], _: Option<&Evaluation>) -> Result<()> {
        let mut s = String::new();
        for m in history {
            s.push_str(&serde_json::to_string(m).expect("metrics serialize"));
            s.push('\n');
        }
        crate::io::write_atomic(&self.0, s.as_bytes())
    }
}

/// Writes `summary.json` once the test set is evaluated: the run's outcome, its config and
/// whatever `extra` fields the caller adds (e.g. the data path).
pub struct SummaryJson {
    /// The file.
    pub path: PathBuf,
    /// Fields merged into the summary.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The summary object for a finished run.
pub fn summary(
    report: &FitReport,
    test: &Evaluation,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        m.insert(k.to_string(), v);
    };
    put("task", json!(test.task));
    for (k, v) in test.to_json() {
        // `test_loss`, `test_accuracy`, ...; the confusion matrix and naive RMSE keep their names.
        let key = match k.as_str() {
            "confusion" | "naive_rmse" => k,
            _ => format!("test_{k}"),
        };
        put(&key, v);
    }
    if let Some(v) = &report.val {
        put("val_loss", json!(v.loss()));
    }
    put("best_epoch", json!(report.best_epoch));
    put("epochs", json!(report.history.len()));
    put("steps", json!(report.steps));
    put("stop", json!(report.stop));
    put("train_seconds", json!(report.train_seconds));
    put("samples_per_second", json!(report.samples_per_second));
    put("parameters", json!(report.parameters));
    put("threads", json!(crate::parallel::num_threads()));
    m
}

impl Hook for SummaryJson {
    fn on_test(&mut self, report: &FitReport, test: &Evaluation) -> Result<()> {
        let mut m = summary(report, test);
        m.extend(self.extra.clone());
        let text = serde_json::to_string_pretty(&m).expect("summary serializes");
        crate::io::write_atomic(&self.path, text.as_bytes())
    }
}
