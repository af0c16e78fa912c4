//! The training panel: an MLP learning MNIST a few steps at a time, so the Web Worker that
//! drives it can report progress between calls and stop when asked. Everything is fukai's:
//! the data loader (shuffled, addressable batches), the model, the loss and Adam.

use fukai::data::{DataLoader, Dataset, InMemory};
use fukai::models::{Mlp, MlpConfig};
use fukai::nn::loss::cross_entropy;
use fukai::nn::Module;
use fukai::optim::{Adam, Optimizer};
use fukai::{bail, Error, Result, Tensor};
use std::sync::Arc;

const PIXELS: usize = 784;
const CLASSES: usize = 10;

/// MNIST rows as CSV text (784 pixel values 0–255, then the label 0–9; the repository's
/// `data/mnist_5k.csv`): pixels scaled to `[0, 1]`, and labels. `name` names the file in errors.
pub fn parse_mnist_csv(text: &[u8], name: &str) -> Result<(Vec<f32>, Vec<i64>)> {
    let err = |line: usize, msg: String| Error::Format {
        file: name.into(),
        msg: format!("line {line}: {msg}"),
    };
    let text = std::str::from_utf8(text).map_err(|e| err(0, format!("not UTF-8 text: {e}")))?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() != PIXELS + 1 {
            return Err(err(i + 1, format!("{} fields, expected 785", fields.len())));
        }
        for (j, f) in fields.iter().enumerate() {
            let v: u8 = f.trim().parse().map_err(|_| {
                err(
                    i + 1,
                    format!("field {}: {f:?} is not an integer 0..255", j + 1),
                )
            })?;
            if j < PIXELS {
                x.push(f32::from(v) / 255.0);
            } else if usize::from(v) < CLASSES {
                y.push(i64::from(v));
            } else {
                return Err(err(i + 1, format!("label {v} is not a digit 0..9")));
            }
        }
    }
    Ok((x, y))
}

/// Loss and accuracy over some samples.
#[derive(Clone, Copy, Debug)]
pub struct StepStats {
    /// Mean cross-entropy.
    pub loss: f32,
    /// Fraction classified right.
    pub accuracy: f32,
    /// Samples it was computed on.
    pub samples: usize,
}

/// An MLP and its optimizer, trained on the first rows of a data set and validated on the rest.
pub struct MnistTraining {
    model: Mlp,
    opt: Adam,
    train: DataLoader,
    val_x: Tensor,
    val_y: Vec<i64>,
    epoch: u64,
    pos: usize,
}

impl MnistTraining {
    /// Trains on a stratified `1 - val_fraction` of the rows of (`x`: 784 values per row,
    /// `y`: labels) and validates on the rest, with hidden layers `hidden`, Adam at `lr` and
    /// batches of `batch`; `seed` decides the split, the initial weights and the shuffling.
    pub fn new(
        x: Vec<f32>,
        y: Vec<i64>,
        val_fraction: f64,
        hidden: &[usize],
        lr: f64,
        batch: usize,
        seed: u64,
    ) -> Result<Self> {
        if !(lr.is_finite() && lr > 0.0) || batch == 0 {
            bail!(
                "training",
                "learning rate {lr} and batch size {batch} must be positive"
            );
        }
        // The file is sorted by class: a split by position would validate on unseen classes.
        let (train_rows, val_rows) = fukai::data::stratified_split(&y, val_fraction, seed)?;
        if train_rows.is_empty() || val_rows.is_empty() {
            bail!(
                "training",
                "validation fraction {val_fraction} of {} rows leaves {} to train on and {} to validate on; both must be non-empty",
                y.len(),
                train_rows.len(),
                val_rows.len()
            );
        }
        let data = InMemory::new(x, y, &[PIXELS], CLASSES)?;
        let val = data.subset(val_rows)?;
        let val_y: Vec<i64> = (0..val.len()).map(|i| val.label(i)).collect();
        let mut val_x = vec![0.0; val_y.len() * PIXELS];
        for (i, row) in val_x.chunks_exact_mut(PIXELS).enumerate() {
            val.get(i, row)?;
        }
        let val_x = Tensor::from_vec(val_x, &[val_y.len(), PIXELS])?;
        let train = DataLoader::new(Arc::new(data.subset(train_rows)?), batch)
            .shuffle(seed)
            .drop_last(true);
        fukai::manual_seed(seed);
        let model = Mlp::new(MlpConfig::new(&[PIXELS], hidden, CLASSES))?;
        let opt = Adam::new(model.parameters(), lr);
        Ok(MnistTraining {
            model,
            opt,
            train,
            val_x,
            val_y,
            epoch: 0,
            pos: 0,
        })
    }

    /// Runs `steps` optimizer steps (continuing into the next epoch when one ends) and returns
    /// the mean training loss and accuracy over their batches.
    pub fn steps(&mut self, steps: usize) -> Result<StepStats> {
        self.model.set_training(true);
        let (mut loss_sum, mut right, mut seen) = (0.0f64, 0usize, 0usize);
        let mut left = steps;
        while left > 0 {
            if self.pos >= self.train.num_batches() {
                self.epoch += 1;
                self.pos = 0;
            }
            let take = left.min(self.train.num_batches() - self.pos);
            for b in self.train.epoch_from(self.epoch, self.pos).take(take) {
                let b = b?;
                let logits = self.model.forward(&b.x)?;
                let loss = cross_entropy(&logits, &b.y)?;
                self.opt.zero_grad();
                loss.backward()?;
                self.opt.step()?;
                let rows = b.y.shape()[0];
                loss_sum += f64::from(loss.item()? as f32) * rows as f64;
                right += correct(&logits, &b.y.to_vec::<i64>()?)?;
                seen += rows;
                self.pos += 1;
                left -= 1;
            }
        }
        Ok(StepStats {
            loss: (loss_sum / seen.max(1) as f64) as f32,
            accuracy: right as f32 / seen.max(1) as f32,
            samples: seen,
        })
    }

    /// Loss and accuracy on the validation rows.
    pub fn validate(&mut self) -> Result<StepStats> {
        self.model.set_training(false);
        let _g = fukai::no_grad();
        let logits = self.model.forward(&self.val_x)?;
        let y = Tensor::from_vec(self.val_y.clone(), &[self.val_y.len()])?;
        let loss = cross_entropy(&logits, &y)?.item()? as f32;
        Ok(StepStats {
            loss,
            accuracy: correct(&logits, &self.val_y)? as f32 / self.val_y.len() as f32,
            samples: self.val_y.len(),
        })
    }

    /// Rows trained on.
    pub fn train_samples(&self) -> usize {
        self.train.dataset().len()
    }

    /// Completed epochs and batches into the current one.
    pub fn progress(&self) -> (u64, usize) {
        (self.epoch, self.pos)
    }
}

/// Rows of `logits` `[B, classes]` whose largest value is at the label.
fn correct(logits: &Tensor, labels: &[i64]) -> Result<usize> {
    let classes = logits.shape()[1];
    let v = logits.to_vec::<f32>()?;
    Ok(labels
        .iter()
        .enumerate()
        .filter(|&(r, &label)| {
            let row = &v[r * classes..(r + 1) * classes];
            let best = (0..classes).fold(0, |b, j| if row[j] > row[b] { j } else { b });
            best as i64 == label
        })
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_errors_name_file_line_and_field() {
        let mut row = "0,".repeat(784);
        row.push_str("12\n");
        let e = parse_mnist_csv(row.as_bytes(), "digits.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("digits.csv") && e.contains("line 1") && e.contains("label 12"),
            "{e}"
        );
        let e = parse_mnist_csv(b"1,2,3\n", "d.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 fields"), "{e}");
    }

    #[test]
    fn training_on_shipped_digits_lowers_the_loss() {
        let path = fukai::run::shipped_mnist();
        let (x, y) = fukai::data::read_mnist_csv(&path).unwrap();
        // Every fourth digit: all classes, 1,250 rows.
        let rows: Vec<usize> = (0..y.len()).step_by(4).collect();
        let x: Vec<f32> = rows
            .iter()
            .flat_map(|&r| x[r * PIXELS..(r + 1) * PIXELS].to_vec())
            .collect();
        let y: Vec<i64> = rows.iter().map(|&r| y[r]).collect();
        let mut t = MnistTraining::new(x, y, 0.2, &[64], 2e-3, 50, 0).unwrap();
        let before = t.validate().unwrap();
        let first = t.steps(20).unwrap();
        let second = t.steps(20).unwrap();
        let after = t.validate().unwrap();
        assert_eq!((first.samples, after.samples), (1000, 250));
        assert_eq!(
            t.progress(),
            (1, 20),
            "40 steps of 20 batches: epoch 1 done too"
        );
        assert!(second.loss < first.loss, "{first:?} then {second:?}");
        assert!(
            after.loss < before.loss && after.accuracy > 0.6,
            "{before:?} -> {after:?}"
        );
    }
}
