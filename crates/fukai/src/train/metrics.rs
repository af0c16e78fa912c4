//! What evaluation measures, per task: loss everywhere; accuracy and the confusion matrix for
//! classifiers; RMSE (and its ratio to a baseline forecast) for regression; perplexity for
//! language models.

use crate::data::Batch;
use crate::error::Result;
use crate::models::Task;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Accumulates one evaluation pass.
///
/// ```
/// use fukai::data::Batch;
/// use fukai::models::Task;
/// use fukai::train::Evaluation;
/// use fukai::Tensor;
/// let mut ev = Evaluation::new(Task::Classification, 2);
/// let logits = Tensor::from_vec(vec![2.0f32, 0.0, 0.0, 1.0], &[2, 2])?;
/// let batch = Batch::new(logits.clone(), Tensor::from_vec(vec![0i64, 0], &[2])?);
/// ev.add(&logits, &batch, 0.5)?;
/// assert_eq!(ev.accuracy(), Some(0.5));
/// assert_eq!(ev.confusion, vec![vec![1, 1], vec![0, 0]]);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// The task measured.
    pub task: Task,
    loss_sum: f64,
    /// Samples (tokens for language models) seen.
    pub count: usize,
    /// `confusion[true][predicted]` (classification).
    pub confusion: Vec<Vec<usize>>,
    se: f64,
    se_baseline: f64,
    has_baseline: bool,
    values: usize,
    sum_t: f64,
    sum_t2: f64,
    /// Regression targets are in units of this (RMSE is reported times it).
    pub scale: f64,
}

impl Evaluation {
    /// Empty; `classes` sizes the confusion matrix (ignored for other tasks).
    pub fn new(task: Task, classes: usize) -> Self {
        let classes = if task == Task::Classification {
            classes
        } else {
            0
        };
        Evaluation {
            task,
            loss_sum: 0.0,
            count: 0,
            confusion: vec![vec![0; classes]; classes],
            se: 0.0,
            se_baseline: 0.0,
            has_baseline: false,
            values: 0,
            sum_t: 0.0,
            sum_t2: 0.0,
            scale: 1.0,
        }
    }

    /// Adds a batch: the model's output, the batch, and the batch's mean loss.
    pub fn add(&mut self, out: &Tensor, batch: &Batch, mean_loss: f64) -> Result<()> {
        match self.task {
            Task::Classification => {
                let pred = out.argmax(-1, false)?.to_vec::<i64>()?;
                let truth = batch.y.to_vec::<i64>()?;
                let k = self.confusion.len();
                for (&p, &t) in pred.iter().zip(&truth) {
                    // Labels beyond the matrix (a class the model lacks) are counted as wrong.
                    if (t as usize) < k && (p as usize) < k {
                        self.confusion[t as usize][p as usize] += 1;
                    }
                }
                self.loss_sum += mean_loss * truth.len() as f64;
                self.count += truth.len();
            }
            Task::Regression | Task::Reconstruction => {
                // A reconstruction's outputs are logits of intensities.
                let p = if self.task == Task::Reconstruction {
                    out.sigmoid()?.to_vec_f64()?
                } else {
                    out.to_vec_f64()?
                };
                let t = batch.y.to_vec_f64()?;
                self.se += p.iter().zip(&t).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
                if let Some(base) = &batch.baseline {
                    let b = base.to_vec_f64()?;
                    self.se_baseline += b.iter().zip(&t).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
                    self.has_baseline = true;
                }
                self.values += t.len();
                self.sum_t += t.iter().sum::<f64>();
                self.sum_t2 += t.iter().map(|v| v * v).sum::<f64>();
                let rows = batch.len();
                self.loss_sum += mean_loss * rows as f64;
                self.count += rows;
            }
            Task::LanguageModel => {
                let n = batch.y.numel();
                self.loss_sum += mean_loss * n as f64;
                self.count += n;
            }
        }
        Ok(())
    }

    /// Mean loss per sample (per token for language models).
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }
    /// Share classified correctly (classification only).
    pub fn accuracy(&self) -> Option<f64> {
        (self.task == Task::Classification).then(|| {
            let right: usize = (0..self.confusion.len())
                .map(|i| self.confusion[i][i])
                .sum();
            right as f64 / self.count.max(1) as f64
        })
    }
    /// Root mean squared error in the targets' units (regression only).
    pub fn rmse(&self) -> Option<f64> {
        (self.task == Task::Regression)
            .then(|| (self.se / self.values.max(1) as f64).sqrt() * self.scale)
    }
    /// The baseline's RMSE in the same units, when the batches carried one.
    pub fn baseline_rmse(&self) -> Option<f64> {
        (self.task == Task::Regression && self.has_baseline)
            .then(|| (self.se_baseline / self.values.max(1) as f64).sqrt() * self.scale)
    }
    /// The coefficient of determination, `1 - SSE / SST` around the evaluated targets' own
    /// mean (regression only; 0 is "predicts the mean", 1 is perfect).
    pub fn r2(&self) -> Option<f64> {
        let n = self.values as f64;
        let sst = self.sum_t2 - self.sum_t * self.sum_t / n.max(1.0);
        (self.task == Task::Regression && self.values > 1 && sst > 0.0).then(|| 1.0 - self.se / sst)
    }
    /// Mean squared error per value of the reconstruction's probabilities (reconstruction
    /// only).
    pub fn mse(&self) -> Option<f64> {
        (self.task == Task::Reconstruction).then(|| self.se / self.values.max(1) as f64)
    }
    /// The baseline's mean squared error per value (reconstruction batches that carry one,
    /// e.g. "the last frame again" for video).
    pub fn baseline_mse(&self) -> Option<f64> {
        (self.task == Task::Reconstruction && self.has_baseline)
            .then(|| self.se_baseline / self.values.max(1) as f64)
    }
    /// Perplexity, `exp(loss)` (language models only).
    pub fn perplexity(&self) -> Option<f64> {
        (self.task == Task::LanguageModel).then(|| self.loss().exp())
    }
    /// The task's headline metric besides the loss: accuracy, RMSE relative to the baseline
    /// (RMSE without one), perplexity, or a reconstruction's MSE.
    pub fn metric(&self) -> Option<f64> {
        match self.task {
            Task::Classification => self.accuracy(),
            Task::Regression => match (self.rmse(), self.baseline_rmse()) {
                (Some(r), Some(b)) if b > 0.0 => Some(r / b),
                (r, _) => r,
            },
            Task::LanguageModel => self.perplexity(),
            Task::Reconstruction => self.mse(),
        }
    }
    /// The numbers as a JSON object: `loss`, `samples`, and per task `accuracy` + `confusion`,
    /// `rmse` (+ `naive_rmse`, `r2`), or `perplexity`.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let mut m = serde_json::Map::new();
        m.insert("loss".into(), json!(self.loss()));
        m.insert("samples".into(), json!(self.count));
        if let Some(a) = self.accuracy() {
            m.insert("accuracy".into(), json!(a));
            m.insert("confusion".into(), json!(self.confusion));
        }
        let more = [
            ("rmse", self.rmse()),
            ("naive_rmse", self.baseline_rmse()),
            ("r2", self.r2()),
            ("perplexity", self.perplexity()),
            ("mse", self.mse()),
            ("baseline_mse", self.baseline_mse()),
        ];
        for (k, v) in more {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        m
    }
    /// One line for people: `loss 0.3121 acc 91.20%`, `mse 0.21 rmse 16.3 (naive 20.1)`, ...
    pub fn describe(&self) -> String {
        match self.task {
            Task::Classification => format!(
                "loss {:.4} acc {:.2}%",
                self.loss(),
                100.0 * self.accuracy().unwrap_or(0.0)
            ),
            Task::Regression => {
                let mut s = format!(
                    "mse {:.4} rmse {:.3}",
                    self.loss(),
                    self.rmse().unwrap_or(f64::NAN)
                );
                if let Some(b) = self.baseline_rmse() {
                    s += &format!(" (naive {b:.3})");
                }
                if let Some(r2) = self.r2() {
                    s += &format!(" R² {r2:.3}");
                }
                s
            }
            Task::LanguageModel => format!(
                "loss {:.4} perplexity {:.2}",
                self.loss(),
                self.perplexity().unwrap_or(f64::NAN)
            ),
            Task::Reconstruction => {
                let mut s = format!(
                    "loss {:.4} mse {:.5}",
                    self.loss(),
                    self.mse().unwrap_or(f64::NAN)
                );
                if let Some(b) = self.baseline_mse() {
                    s += &format!(" (baseline {b:.5})");
                }
                s
            }
        }
    }
}

/// One epoch's numbers: a line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Optimizer steps taken by the end of the epoch.
    pub step: u64,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Running training accuracy (classification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_accuracy: Option<f64>,
    /// Validation loss after the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// Validation headline metric (see [`Evaluation::metric`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_metric: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Training time of the epoch (evaluation excluded).
    pub seconds: f64,
    /// Training throughput.
    pub samples_per_second: f64,
}
