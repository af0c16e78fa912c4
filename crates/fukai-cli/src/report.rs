//! What a run leaves behind: metrics.jsonl, summary.json, curves.png and a confusion matrix.

use crate::config::Config;
use fukai::io::write_atomic;
use fukai::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One epoch's numbers (one line of metrics.jsonl).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (running, during the epoch).
    pub train_accuracy: f64,
    /// Test loss after the epoch.
    pub test_loss: f64,
    /// Test accuracy after the epoch.
    pub test_accuracy: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Training time of the epoch.
    pub seconds: f64,
    /// Training throughput.
    pub samples_per_second: f64,
}

/// Accumulates loss, accuracy and the confusion matrix over an evaluation pass.
pub struct Evaluation {
    loss_sum: f64,
    n: usize,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    /// Empty, for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Evaluation {
            loss_sum: 0.0,
            n: 0,
            confusion: vec![vec![0; classes]; classes],
        }
    }
    /// Adds a batch: its mean loss, predictions and labels.
    pub fn add(&mut self, mean_loss: f64, pred: &[i64], truth: &[i64]) {
        self.loss_sum += mean_loss * truth.len() as f64;
        self.n += truth.len();
        for (&p, &t) in pred.iter().zip(truth) {
            self.confusion[t as usize][p as usize] += 1;
        }
    }
    /// Mean loss.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.n.max(1) as f64
    }
    /// Share classified correctly.
    pub fn accuracy(&self) -> f64 {
        let right: usize = (0..self.confusion.len())
            .map(|i| self.confusion[i][i])
            .sum();
        right as f64 / self.n.max(1) as f64
    }
}

/// summary.json.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Preset or config name.
    pub name: String,
    /// Final test accuracy.
    pub test_accuracy: f64,
    /// Final test loss.
    pub test_loss: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// Wall time of training (evaluations included).
    pub train_seconds: f64,
    /// Training samples per second of training time.
    pub samples_per_second: f64,
    /// Trainable scalars.
    pub parameters: usize,
    /// The checkpoint file.
    pub checkpoint: String,
    /// Where the data came from.
    pub data: String,
    /// The full config.
    pub config: Config,
    /// `confusion[true][predicted]` on the test set.
    pub confusion: Vec<Vec<usize>>,
}

impl Summary {
    /// Assembles the summary of a finished run.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: &Config,
        history: &[EpochMetrics],
        ev: &Evaluation,
        wall: f64,
        seen: usize,
        parameters: usize,
        ckpt: &Path,
        data: &Path,
    ) -> Self {
        let train_time: f64 = history.iter().map(|m| m.seconds).sum();
        Summary {
            name: cfg.name.clone(),
            test_accuracy: ev.accuracy(),
            test_loss: ev.loss(),
            epochs: history.len(),
            train_seconds: wall,
            samples_per_second: if train_time > 0.0 {
                seen as f64 / train_time
            } else {
                0.0
            },
            parameters,
            checkpoint: ckpt.display().to_string(),
            data: data.display().to_string(),
            config: cfg.clone(),
            confusion: ev.confusion.clone(),
        }
    }
}

/// Rewrites metrics.jsonl (one JSON object per epoch).
pub fn write_metrics(dir: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut s = String::new();
    for m in history {
        s.push_str(&serde_json::to_string(m).expect("metrics serialize"));
        s.push('\n');
    }
    write_atomic(dir.join("metrics.jsonl"), s.as_bytes())
}

/// The confusion matrix as aligned text.
pub fn confusion_table(confusion: &[Vec<usize>], names: &[String]) -> String {
    let short: Vec<String> = (0..confusion.len())
        .map(|i| {
            names
                .get(i)
                .cloned()
                .unwrap_or_else(|| i.to_string())
                .chars()
                .take(10)
                .collect()
        })
        .collect();
    let w = short.iter().map(|s| s.len()).max().unwrap_or(1).max(5);
    let mut out = format!("{:>w$} | predicted\n", "true");
    out.push_str(&format!("{:>w$} |", ""));
    for s in &short {
        out.push_str(&format!(" {s:>w$}"));
    }
    out.push('\n');
    for (i, row) in confusion.iter().enumerate() {
        out.push_str(&format!("{:>w$} |", short[i]));
        for v in row {
            out.push_str(&format!(" {v:>w$}"));
        }
        out.push('\n');
    }
    out
}

/// Writes summary.json and curves.png and prints the end-of-run report.
pub fn finish(
    dir: &Path,
    s: &Summary,
    history: &[EpochMetrics],
    ev: &Evaluation,
    names: &[String],
) -> Result<()> {
    write_atomic(
        dir.join("summary.json"),
        serde_json::to_string_pretty(s)
            .expect("summary serializes")
            .as_bytes(),
    )?;
    crate::plot::curves(&dir.join("curves.png"), history)?;
    println!(
        "\nconfusion matrix (test set):\n{}",
        confusion_table(&ev.confusion, names)
    );
    println!(
        "test accuracy {:.2}% | test loss {:.4} | {} epochs in {:.1}s | {:.0} samples/s",
        100.0 * s.test_accuracy,
        s.test_loss,
        s.epochs,
        s.train_seconds,
        s.samples_per_second
    );
    Ok(())
}
