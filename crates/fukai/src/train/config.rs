//! What a [`Trainer`](super::Trainer) does: optimizer, schedule, budget, regularization,
//! monitoring and checkpoint policy, as one serde struct (the `[train]` table of a run config).

use crate::autograd::Precision;
use crate::bail;
use crate::error::Result;
use crate::optim::{Adam, Groups, LrSchedule, Optimizer, RmsProp, Sgd};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Training settings. Unknown keys are errors, so a typo never falls back to a default.
///
/// ```
/// let mut cfg = fukai::train::TrainConfig::new(10, 32, 2e-3);
/// cfg.schedule = "cosine".into();
/// cfg.validate()?;
/// assert_eq!(cfg.schedule_for(100)?.lr(2e-3, 100), 2e-5); // cosine ends at lr / 100
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training data (epochs of `steps_per_epoch` steps when that is set).
    pub epochs: usize,
    /// Samples per micro-batch.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Optimizer steps per epoch, for data without a natural epoch (random text windows);
    /// default: one pass over the training batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_per_epoch: Option<usize>,
    /// `adam`, `adamw`, `sgd` or `rmsprop`.
    #[serde(default = "default_optimizer")]
    pub optimizer: String,
    /// Adam's second-moment decay.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// SGD / RMSprop momentum.
    #[serde(default)]
    pub momentum: f64,
    /// Nesterov momentum for SGD.
    #[serde(default)]
    pub nesterov: bool,
    /// Weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Apply weight decay to matrices and embeddings only, not to biases and norm gains (as
    /// GPT training does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decay_matrices_only: bool,
    /// `constant`, `cosine` (with `warmup_steps`, down to `min_lr`), `onecycle` or `step`
    /// (halves every third of the run).
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// Linear warmup steps before the cosine decay.
    #[serde(default)]
    pub warmup_steps: usize,
    /// Final rate of the cosine decay (default `lr / 100`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f64>,
    /// Label smoothing of the cross-entropy.
    #[serde(default)]
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this.
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// Micro-batches accumulated per optimizer step.
    #[serde(default = "one")]
    pub accumulate: usize,
    /// Data-parallel runs: batch norm normalizes with statistics over the micro-batches of all
    /// ranks that run at once (synchronized batch norm) instead of each micro-batch's own.
    /// Each epoch then ends at its last whole step, so that every rank has a micro-batch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sync_batch_norm: bool,
    /// Seed for initialization, shuffling, augmentation and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Stop after this many epochs without a lower validation loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Stop as diverged when the mean loss of the last 10 batches exceeds this many times the
    /// mean of the first 10 (0 = only non-finite losses stop a run).
    #[serde(default = "default_divergence")]
    pub divergence_factor: f64,
    /// Write a checkpoint at least this often (seconds of training), besides every epoch end.
    #[serde(default = "default_checkpoint_seconds")]
    pub checkpoint_seconds: f64,
    /// Write a checkpoint every this many optimizer steps (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_steps: Option<u64>,
    /// Step checkpoints kept in `checkpoints/` (the newest is also `checkpoint.safetensors`).
    #[serde(default = "default_keep")]
    pub keep_checkpoints: usize,
    /// `"f32"` (the default) or `"bf16"`: the precision of the forward and backward matrix
    /// products and convolutions (see [`crate::autocast`]); parameters, gradients and the
    /// optimizer state stay f32.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

fn default_optimizer() -> String {
    "adam".into()
}
fn default_schedule() -> String {
    "constant".into()
}
fn default_beta2() -> f64 {
    0.999
}
fn default_divergence() -> f64 {
    100.0
}
fn default_checkpoint_seconds() -> f64 {
    60.0
}
fn default_keep() -> usize {
    3
}
fn one() -> usize {
    1
}

impl TrainConfig {
    /// Adam at `lr`, constant schedule, `epochs` passes of batches of `batch_size`; every other
    /// field at its default.
    pub fn new(epochs: usize, batch_size: usize, lr: f64) -> Self {
        TrainConfig {
            epochs,
            batch_size,
            lr,
            steps_per_epoch: None,
            optimizer: default_optimizer(),
            beta2: default_beta2(),
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            decay_matrices_only: false,
            schedule: default_schedule(),
            warmup_steps: 0,
            min_lr: None,
            label_smoothing: 0.0,
            clip_grad_norm: None,
            accumulate: 1,
            sync_batch_norm: false,
            seed: 0,
            patience: None,
            divergence_factor: default_divergence(),
            checkpoint_seconds: default_checkpoint_seconds(),
            checkpoint_steps: None,
            keep_checkpoints: default_keep(),
            precision: Precision::F32,
        }
    }

    /// The same training in micro-batches of `micro` samples: the global batch of a step
    /// (`batch_size × accumulate`) is kept and must be a multiple of `micro`. One process and a
    /// data-parallel run with the same micro-batch give the same bits.
    ///
    /// ```
    /// let cfg = fukai::train::TrainConfig::new(1, 64, 1e-3).with_micro_batch(16)?;
    /// assert_eq!((cfg.batch_size, cfg.accumulate), (16, 4));
    /// assert!(fukai::train::TrainConfig::new(1, 64, 1e-3).with_micro_batch(24).is_err());
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn with_micro_batch(&self, micro: usize) -> Result<TrainConfig> {
        let global = self.batch_size.saturating_mul(self.accumulate);
        if micro == 0 || !global.is_multiple_of(micro) {
            bail!(
                "train",
                "micro-batch {micro}: the global batch (batch_size {} × accumulate {} = {global}) \
                 must be a positive multiple of it",
                self.batch_size,
                self.accumulate
            );
        }
        let mut c = self.clone();
        (c.batch_size, c.accumulate) = (micro, global / micro);
        Ok(c)
    }

    /// The config `ranks` data-parallel processes train with: unchanged when each step's
    /// micro-batches share evenly among them, else each batch split into `ranks` micro-batches
    /// (the global batch kept); an error when neither works.
    pub fn for_ranks(&self, ranks: usize) -> Result<TrainConfig> {
        if ranks <= 1 || self.accumulate.is_multiple_of(ranks) {
            return Ok(self.clone());
        }
        if self.batch_size.is_multiple_of(ranks) {
            return self.with_micro_batch(self.batch_size / ranks);
        }
        bail!(
            "train",
            "{ranks} ranks cannot share steps of {} micro-batches of {}: choose --micro-batch so \
             that batch_size × accumulate / micro-batch is a multiple of {ranks}",
            self.accumulate,
            self.batch_size
        )
    }

    /// Checks what serde cannot: positive sizes, rates and factors in range, known names.
    pub fn validate(&self) -> Result<()> {
        let in_range = |name: &str, v: f64, lo: f64, hi: f64, closed: bool| -> Result<()> {
            let ok = v >= lo && (v < hi || (closed && v == hi));
            if !ok {
                let close = if closed { ']' } else { ')' };
                bail!("train", "{name} must be in [{lo}, {hi}{close}, found {v}");
            }
            Ok(())
        };
        if self.epochs == 0 || self.batch_size == 0 || self.accumulate == 0 {
            bail!(
                "train",
                "epochs, batch_size and accumulate must be positive, found {}, {} and {}",
                self.epochs,
                self.batch_size,
                self.accumulate
            );
        }
        if self.steps_per_epoch == Some(0) || self.checkpoint_steps == Some(0) {
            bail!(
                "train",
                "steps_per_epoch and checkpoint_steps must be positive"
            );
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("train", "lr must be a positive number, found {}", self.lr);
        }
        if let Some(m) = self.min_lr {
            in_range("min_lr", m, 0.0, self.lr, true)?;
        }
        in_range("beta2", self.beta2, 0.0, 1.0, false)?;
        in_range("momentum", self.momentum, 0.0, 1.0, false)?;
        in_range("label_smoothing", self.label_smoothing, 0.0, 1.0, true)?;
        in_range("weight_decay", self.weight_decay, 0.0, f64::MAX, true)?;
        in_range(
            "divergence_factor",
            self.divergence_factor,
            0.0,
            f64::MAX,
            true,
        )?;
        in_range(
            "checkpoint_seconds",
            self.checkpoint_seconds,
            0.0,
            f64::MAX,
            true,
        )?;
        if let Some(c) = self.clip_grad_norm {
            if !(c > 0.0 && c.is_finite()) {
                bail!("train", "clip_grad_norm must be positive, found {c}");
            }
        }
        if self.keep_checkpoints == 0 {
            bail!("train", "keep_checkpoints must be at least 1");
        }
        self.optimizer_for(Vec::new())?;
        self.schedule_for(1)?;
        Ok(())
    }

    /// The configured optimizer over `params`.
    pub fn optimizer_for(&self, params: Vec<Tensor>) -> Result<Box<dyn Optimizer>> {
        let one = |params: Vec<Tensor>, wd: f64| -> Result<Box<dyn Optimizer>> {
            Ok(match self.optimizer.as_str() {
                "adam" => Box::new(
                    Adam::new(params, self.lr)
                        .betas(0.9, self.beta2)
                        .weight_decay(wd),
                ),
                "adamw" => Box::new(
                    Adam::adamw(params, self.lr)
                        .betas(0.9, self.beta2)
                        .weight_decay(wd),
                ),
                "sgd" => Box::new(
                    Sgd::new(params, self.lr)
                        .momentum(self.momentum)
                        .nesterov(self.nesterov)
                        .weight_decay(wd),
                ),
                "rmsprop" => Box::new(
                    RmsProp::new(params, self.lr)
                        .momentum(self.momentum)
                        .weight_decay(wd),
                ),
                other => bail!(
                    "train",
                    "optimizer {other:?} is unknown; expected adam, adamw, sgd or rmsprop"
                ),
            })
        };
        if !self.decay_matrices_only {
            return one(params, self.weight_decay);
        }
        let (decay, rest): (Vec<Tensor>, Vec<Tensor>) =
            params.into_iter().partition(|p| p.rank() >= 2);
        Ok(Box::new(Groups::new(vec![
            one(decay, self.weight_decay)?,
            one(rest, 0.0)?,
        ])))
    }

    /// The configured schedule for a run of `total` optimizer steps.
    pub fn schedule_for(&self, total: usize) -> Result<LrSchedule> {
        Ok(match self.schedule.as_str() {
            "constant" => LrSchedule::Constant,
            "cosine" => LrSchedule::WarmupCosine {
                warmup: self.warmup_steps,
                total,
                min_lr: self.min_lr.unwrap_or(self.lr * 0.01),
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
                "train",
                "schedule {other:?} is unknown; expected constant, cosine, onecycle or step"
            ),
        })
    }
}
