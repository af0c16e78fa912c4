//! The one training loop: micro-batches, gradient accumulation, clipping, the schedule,
//! validation each epoch, best-model keeping and early stopping, divergence detection, and
//! checkpoints from which a run resumes bit for bit.

use super::batches::Batches;
use super::config::TrainConfig;
use super::exchange::{self, Micro, Targets};
use super::hooks::{DataParallel, FitInfo, FitReport, Hook, StepInfo, Stop};
use super::metrics::{EpochMetrics, Evaluation};
use crate::bail;
use crate::data::Batch;
use crate::distributed::{self, Collective};
use crate::error::{Error, Result};
use crate::io::checkpoint::{self, Progress};
use crate::models::{Model, Task};
use crate::nn::loss::{
    binary_cross_entropy_with_logits, cross_entropy_with, mse_loss, CrossEntropyOpts,
};
use crate::optim::{clip_grad_norm, Optimizer};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Steps averaged at the start and at the end of the divergence check's windows.
const WINDOW: usize = 10;

/// Everything about a run's position that a checkpoint must carry for an exact resume (the
/// model, optimizer and RNG state travel as tensors and fields of their own).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct State {
    step: u64,
    epoch: u64,
    /// Micro-batches of the current epoch already trained on.
    batch: u64,
    loss_sum: f64,
    correct: u64,
    count: u64,
    epoch_seconds: f64,
    history: Vec<EpochMetrics>,
    best_loss: Option<f64>,
    best_epoch: Option<usize>,
    bad_epochs: usize,
    first_losses: Vec<f64>,
    recent_losses: VecDeque<f64>,
    seen: u64,
    train_seconds: f64,
    stopped_early: bool,
}

/// Trains a [`Model`] with a [`TrainConfig`].
///
/// ```
/// use fukai::data::{DataLoader, InMemory};
/// use fukai::models::{Mlp, MlpConfig};
/// use fukai::train::{TrainConfig, Trainer};
/// use std::sync::Arc;
/// fukai::manual_seed(0);
/// // Two separable blobs.
/// let x: Vec<f32> = (0..64).flat_map(|i| if i % 2 == 0 { [1.0, 1.0] } else { [-1.0, -1.0] }).collect();
/// let y: Vec<i64> = (0..64).map(|i| i % 2).collect();
/// let data = Arc::new(InMemory::new(x, y, &[2], 2)?);
/// let train = DataLoader::new(data.clone(), 16).shuffle(0);
/// let mut trainer = Trainer::new(Mlp::new(MlpConfig::new(&[2], &[8], 2))?, TrainConfig::new(5, 16, 0.05))?;
/// let report = trainer.fit(&train, Some(&DataLoader::new(data, 64)))?;
/// assert_eq!(report.history.len(), 5);
/// assert_eq!(report.val.unwrap().accuracy(), Some(1.0));
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Trainer {
    model: Box<dyn Model>,
    cfg: TrainConfig,
    opt: Box<dyn Optimizer>,
    hooks: Vec<Box<dyn Hook>>,
    dir: Option<PathBuf>,
    metadata: Vec<(String, String)>,
    max_steps: Option<u64>,
    state: State,
    group: Arc<dyn Collective>,
    dp: DataParallel,
}

impl Trainer {
    /// A trainer for `model` (already initialized: seed the default generator before building
    /// it) with the optimizer `cfg` names over its parameters.
    pub fn new(model: impl Model + 'static, cfg: TrainConfig) -> Result<Self> {
        cfg.validate()?;
        let model: Box<dyn Model> = Box::new(model);
        // wgpu has no bf16 products; refusing beats reporting an f32 run as bf16.
        if cfg.precision == crate::Precision::Bf16
            && matches!(model.device(), crate::Device::Wgpu(_))
        {
            bail!(
                "train",
                "precision bf16 runs on the CPU and on CUDA devices, found the model on {}",
                model.device()
            );
        }
        let opt = cfg.optimizer_for(model.parameters())?;
        Ok(Trainer {
            model,
            cfg,
            opt,
            hooks: Vec::new(),
            dir: None,
            metadata: Vec::new(),
            max_steps: None,
            state: State::default(),
            group: distributed::world(),
            dp: DataParallel::default(),
        })
    }

    /// Adds a hook (called in the order added). In a data-parallel run only rank 0 reports:
    /// on the other ranks hooks are not added.
    pub fn hook(mut self, h: impl Hook + 'static) -> Self {
        if self.group.rank() == 0 {
            self.hooks.push(Box::new(h));
        }
        self
    }

    /// Trains data-parallel in `group` (default: [`distributed::world`], the MPI world under
    /// `mpirun`, else one process). Every rank builds the same trainer and calls the same
    /// methods; rank `r` computes its share of each step's micro-batches (see
    /// [`distributed`](crate::distributed)); only rank 0 runs hooks and writes checkpoints.
    pub fn data_parallel(mut self, group: Arc<dyn Collective>) -> Self {
        if group.rank() != 0 {
            self.hooks.clear();
            self.dir = None;
        }
        self.group = group;
        self
    }

    /// Writes checkpoints into `dir`: `checkpoint.safetensors` (the newest), the last
    /// `keep_checkpoints` in `checkpoints/`, and `best.safetensors` (lowest validation loss).
    pub fn checkpoint_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        // Only rank 0 of a data-parallel run writes.
        if self.group.rank() == 0 {
            self.dir = Some(dir.into());
        }
        self
    }

    /// Adds a metadata field to every checkpoint (class names, normalization, a vocabulary:
    /// what using the model later needs).
    pub fn metadata(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.push((key.to_string(), value.into()));
        self
    }

    /// Ends this session after `steps` optimizer steps in the run (counting those before a
    /// resume), with a checkpoint; the schedule still spans the configured epochs.
    pub fn max_steps(mut self, steps: Option<u64>) -> Self {
        self.max_steps = steps;
        self
    }

    /// The model.
    pub fn model(&self) -> &dyn Model {
        &*self.model
    }
    /// The model, mutably (e.g. to switch train/eval mode).
    pub fn model_mut(&mut self) -> &mut dyn Model {
        &mut *self.model
    }
    /// Gives the model back.
    pub fn into_model(self) -> Box<dyn Model> {
        self.model
    }
    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }
    /// Optimizer steps taken.
    pub fn step(&self) -> u64 {
        self.state.step
    }
    /// Epochs completed.
    pub fn epoch(&self) -> u64 {
        self.state.epoch
    }

    /// Continues from a checkpoint this trainer's kind wrote: model, optimizer, RNG, data
    /// position, history and monitors. The checkpoint's training config and model config must
    /// equal this trainer's; the error names every field that differs.
    pub fn resume(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        // Rank 0 reads the file and hands it to the others: only it needs to see the run
        // directory.
        let read = || {
            std::fs::read(path).map_err(|e| Error::Io {
                path: path.display().to_string(),
                source: e,
            })
        };
        let mine = if self.group.rank() == 0 {
            read()
        } else {
            Ok(Vec::new())
        };
        let bytes = self.group.broadcast(mine)?;
        let file = crate::io::parse_safetensors(&bytes, &path.display().to_string())?;
        let err = |msg: String| Error::Format {
            file: path.display().to_string(),
            msg,
        };
        let meta = file.metadata();
        let (Some(train), Some(state)) = (meta.get("train"), meta.get("trainer_state")) else {
            return Err(err(
                "metadata fields \"train\" and \"trainer_state\" are missing: not a checkpoint \
                 written by fukai::train::Trainer"
                    .into(),
            ));
        };
        let stored: serde_json::Value = serde_json::from_str(train)
            .map_err(|e| err(format!("metadata field \"train\": {e}")))?;
        let mine = serde_json::to_value(&self.cfg).expect("configs serialize");
        let diff = differences("train", &stored, &mine);
        if !diff.is_empty() {
            return Err(err(format!(
                "the checkpoint was trained with a different config: {}",
                diff.join("; ")
            )));
        }
        if let Some(c) = self.model.config() {
            let stored = meta.get(crate::models::CONFIG_KEY).map(|s| {
                serde_json::from_str::<serde_json::Value>(s).unwrap_or(serde_json::Value::Null)
            });
            let mine = serde_json::to_value(&c).expect("configs serialize");
            if let Some(stored) = stored {
                let diff = differences("model", &stored, &mine);
                if !diff.is_empty() {
                    return Err(err(format!(
                        "the checkpoint holds a different model: {}",
                        diff.join("; ")
                    )));
                }
            }
        }
        let state: State = serde_json::from_str(state)
            .map_err(|e| err(format!("metadata field \"trainer_state\": {e}")))?;
        checkpoint::load_file(&file, path, &*self.model, Some(&mut *self.opt))?;
        self.state = state;
        Ok(())
    }

    /// Evaluates the model on every batch of `data` (see [`evaluate`]).
    pub fn evaluate(&mut self, data: &dyn Batches) -> Result<Evaluation> {
        evaluate(&mut *self.model, data)
    }

    /// Trains until the configured epochs are done, early stopping ends the run, or the
    /// session's step limit is reached; validates on `val` after every epoch.
    pub fn fit(&mut self, train: &dyn Batches, val: Option<&dyn Batches>) -> Result<FitReport> {
        let cfg = self.cfg.clone();
        let natural = train.len();
        let batches_per_epoch = match cfg.steps_per_epoch {
            Some(s) => natural.min(s.saturating_mul(cfg.accumulate)),
            None => natural,
        };
        if batches_per_epoch == 0 {
            bail!("train", "the training data has no batches");
        }
        if batches_per_epoch == usize::MAX {
            bail!(
                "train",
                "an endless batch source needs train.steps_per_epoch to define an epoch"
            );
        }
        // Synchronized batch norm needs every rank in every step: whole steps only.
        let sync = cfg.sync_batch_norm && self.group.size() > 1;
        let batches_per_epoch = if sync {
            batches_per_epoch - batches_per_epoch % cfg.accumulate
        } else {
            batches_per_epoch
        };
        if batches_per_epoch == 0 {
            bail!(
                "train",
                "synchronized batch norm: an epoch has fewer batches than one step's {}",
                cfg.accumulate
            );
        }
        let steps_per_epoch = batches_per_epoch.div_ceil(cfg.accumulate);
        let sched = cfg.schedule_for(steps_per_epoch * cfg.epochs)?;
        let task = self.model.task();
        let (rank, ranks) = (self.group.rank(), self.group.size());
        if !cfg.accumulate.is_multiple_of(ranks) {
            bail!(
                "train",
                "train.accumulate = {} micro-batches per step cannot be shared evenly by {ranks} ranks; \
                 choose a micro-batch size (--micro-batch) that makes it a multiple of {ranks}",
                cfg.accumulate
            );
        }
        let per_rank = cfg.accumulate / ranks;
        self.dp = DataParallel {
            ranks,
            micro_batches_per_rank: per_rank,
            ..DataParallel::default()
        };
        let sent_before = self.group.bytes_sent();
        let targets = Targets {
            params: self.model.parameters(),
            state: self
                .model
                .state_dict()
                .into_iter()
                .map(|(_, t)| t)
                .collect(),
        };
        if ranks > 1 {
            self.share_weights(&targets)?;
        }
        self.model.set_training(true);
        let info = FitInfo {
            task,
            model: self.model.describe(),
            parameters: self.model.num_parameters(),
            train_samples: train.samples(),
            val_samples: val.map(|v| v.samples()),
            epochs: cfg.epochs,
            batches_per_epoch,
            steps_per_epoch,
            start: (self.state.epoch, self.state.batch, self.state.step),
        };
        if let Some(dir) = &self.dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                path: dir.display().to_string(),
                source: e,
            })?;
        }
        for h in &mut self.hooks {
            h.on_fit_start(&info)?;
        }
        let mut last_val = None;
        let mut last_save = Instant::now();
        let stop = 'run: loop {
            if self.state.stopped_early {
                break Stop::EarlyStopped;
            }
            if self.state.epoch as usize >= cfg.epochs {
                break Stop::Finished;
            }
            // After the epoch checks: a limit reached on an epoch's last step still ends the
            // epoch (validation, metrics), and one reached on the run's last step finishes it.
            if self.limit_reached() {
                self.save_checkpoint()?;
                break Stop::StepLimit;
            }
            let epoch = self.state.epoch;
            let start = self.state.batch as usize;
            let t0 = Instant::now();
            let secs_before = self.state.epoch_seconds;
            // This rank's micro-batches for the rest of the epoch: of each step's run of
            // `accumulate`, the `per_rank` from `rank · per_rank` on.
            let mine: Vec<usize> = (start..batches_per_epoch)
                .filter(|i| (i % cfg.accumulate) / per_rank == rank)
                .collect();
            let mut data = train.select(epoch, mine);
            let mut i = start;
            while i < batches_per_epoch {
                let first = i - i % cfg.accumulate;
                let end = (first + cfg.accumulate).min(batches_per_epoch);
                let own =
                    (first + rank * per_rank).max(i)..(first + (rank + 1) * per_rank).min(end);
                let step_start = Instant::now();
                let mut micros = Vec::with_capacity(per_rank);
                let mut batches = Vec::with_capacity(per_rank);
                for j in own {
                    let b = data.next().ok_or_else(|| {
                        crate::error::op_err(
                            "train",
                            format!("the training data ended before batch {j} of epoch {epoch}"),
                        )
                    })??;
                    micros.push(self.micro_batch(&b, epoch, j, task, &targets.params)?);
                    batches.push((j, b));
                }
                let exchange_start = Instant::now();
                let micros = exchange::gather(&*self.group, micros, &targets, &mut self.dp)?;
                if let Some(m) = micros.iter().find(|m| !m.loss.is_finite()) {
                    return Err(match batches.iter().find(|(j, _)| *j == m.index) {
                        Some((_, b)) => self.diverged(b, m.loss),
                        None => crate::error::op_err(
                            "train",
                            format!(
                                "diverged at step {} (epoch {}, batch {}, trained on another rank): the loss is {}",
                                self.state.step + 1,
                                epoch + 1,
                                m.index + 1,
                                m.loss
                            ),
                        ),
                    });
                }
                exchange::combine(&micros, &targets)?;
                self.dp.exchange_seconds += exchange_start.elapsed().as_secs_f64();
                let (mut step_loss, mut step_n) = (0.0f64, 0usize);
                for m in &micros {
                    let s = &mut self.state;
                    s.loss_sum += m.loss * m.rows as f64;
                    s.count += m.rows;
                    s.seen += m.rows;
                    s.correct += m.correct;
                    step_loss += m.loss;
                    step_n += 1;
                }
                drop(micros);
                drop(batches);
                i = end;
                let lr = sched.lr(cfg.lr, self.state.step as usize);
                self.opt.set_lr(lr);
                if let Some(c) = cfg.clip_grad_norm {
                    clip_grad_norm(self.opt.params(), c)?;
                }
                self.opt.step()?;
                self.opt.zero_grad();
                self.dp.steps += 1;
                self.dp.step_seconds += step_start.elapsed().as_secs_f64();
                self.dp.bytes_sent = self.group.bytes_sent() - sent_before;
                self.state.step += 1;
                self.state.batch = end as u64;
                self.state.epoch_seconds = secs_before + t0.elapsed().as_secs_f64();
                self.watch_divergence(step_loss / step_n as f64)?;
                let s = &self.state;
                let step = StepInfo {
                    epoch,
                    batch: end,
                    batches: batches_per_epoch,
                    step: s.step,
                    loss: step_loss / step_n as f64,
                    epoch_loss: s.loss_sum / s.count.max(1) as f64,
                    epoch_accuracy: (task == Task::Classification)
                        .then(|| s.correct as f64 / s.count.max(1) as f64),
                    lr,
                    samples_per_second: s.count as f64 / s.epoch_seconds.max(1e-9),
                };
                for h in &mut self.hooks {
                    h.on_step(&step)?;
                }
                let due_steps = cfg
                    .checkpoint_steps
                    .is_some_and(|n| self.state.step.is_multiple_of(n));
                let due_time = last_save.elapsed().as_secs_f64() >= cfg.checkpoint_seconds;
                if self.limit_reached() && end < batches_per_epoch {
                    continue 'run;
                }
                if (due_steps || due_time) && end < batches_per_epoch {
                    self.save_checkpoint()?;
                    last_save = Instant::now();
                }
            }
            // The epoch is complete.
            let val_ev = match val {
                Some(v) => Some(self.evaluate(v)?),
                None => None,
            };
            let s = &mut self.state;
            let seconds = s.epoch_seconds;
            let m = EpochMetrics {
                epoch: epoch as usize + 1,
                step: s.step,
                train_loss: s.loss_sum / s.count.max(1) as f64,
                train_accuracy: (task == Task::Classification)
                    .then(|| s.correct as f64 / s.count.max(1) as f64),
                val_loss: val_ev.as_ref().map(Evaluation::loss),
                val_metric: val_ev.as_ref().and_then(Evaluation::metric),
                lr: self.opt.lr(),
                seconds,
                samples_per_second: s.count as f64 / seconds.max(1e-9),
            };
            s.train_seconds += seconds;
            s.history.push(m);
            s.epoch += 1;
            s.batch = 0;
            (s.loss_sum, s.correct, s.count, s.epoch_seconds) = (0.0, 0, 0, 0.0);
            let mut improved = false;
            if let Some(v) = &val_ev {
                let l = v.loss();
                if s.best_loss.is_none_or(|b| l < b) {
                    (s.best_loss, s.best_epoch, s.bad_epochs) =
                        (Some(l), Some(epoch as usize + 1), 0);
                    improved = true;
                } else {
                    s.bad_epochs += 1;
                }
                if cfg.patience.is_some_and(|p| s.bad_epochs >= p) {
                    s.stopped_early = true;
                }
            }
            for h in &mut self.hooks {
                h.on_epoch_end(&self.state.history, val_ev.as_ref())?;
            }
            if improved {
                if let Some(dir) = &self.dir {
                    crate::models::save(
                        &*self.model,
                        dir.join("best.safetensors"),
                        &self.meta_refs(),
                    )?;
                }
            }
            self.save_checkpoint()?;
            last_save = Instant::now();
            last_val = val_ev;
        };
        let report = self.report(stop, last_val);
        for h in &mut self.hooks {
            h.on_fit_end(&report)?;
        }
        Ok(report)
    }

    /// Evaluates `data` as the test set and passes the result to the hooks (`summary.json`).
    pub fn test(&mut self, data: &dyn Batches, report: &FitReport) -> Result<Evaluation> {
        let ev = self.evaluate(data)?;
        for h in &mut self.hooks {
            h.on_test(report, &ev)?;
        }
        Ok(ev)
    }

    /// Forward and backward on micro-batch `index` of `epoch`, its gradients taken out of the
    /// parameters (each micro-batch's gradient starts from zero) and its batch-norm statistics
    /// held back, for [`exchange::combine`].
    fn micro_batch(
        &self,
        b: &Batch,
        epoch: u64,
        index: usize,
        task: Task,
        params: &[Tensor],
    ) -> Result<Micro> {
        let b = &b.to(self.model.device())?;
        // Dropout draws from a stream of this micro-batch's own: the same on any rank.
        let stream = crate::Generator::new(self.cfg.seed ^ 0x6d69_6372_6f62)
            .fork(epoch, index as u64)
            .state();
        crate::rng::set_default_generator_state(stream.0, 0);
        let a = self.cfg.accumulate;
        let smoothing = self.cfg.label_smoothing;
        let sync = self.cfg.sync_batch_norm.then(|| self.group.clone());
        let model = &*self.model;
        let precision = self.cfg.precision;
        let step = || -> Result<(Tensor, f64)> {
            // Forward and backward in the configured precision; the optimizer step, outside,
            // updates the f32 master weights.
            let _precision = crate::autocast(precision);
            let (out, penalty) = model.forward_with_penalty(b)?;
            let loss = with_penalty(loss(model.task(), &out, b, smoothing)?, penalty)?;
            let l = loss.item()?;
            // Even a non-finite loss goes backward: with synchronized batch norm the other
            // ranks' backward waits for this one's; the step then stops as diverged.
            if a > 1 {
                loss.mul_scalar(1.0 / a as f64)?.backward()?;
            } else {
                loss.backward()?;
            }
            Ok((out, l))
        };
        let (result, stats) = crate::nn::defer_running_stats(|| match sync {
            Some(group) => crate::nn::synchronize_batch_norm(group, step),
            None => step(),
        });
        let (out, loss) = result?;
        let correct = if task == Task::Classification && loss.is_finite() {
            let pred = out.argmax(-1, false)?.to_vec::<i64>()?;
            let truth = b.y.to_vec::<i64>()?;
            pred.iter().zip(&truth).filter(|(p, t)| p == t).count() as u64
        } else {
            0
        };
        let grads = params
            .iter()
            .map(|p| {
                let g = p.grad();
                p.set_grad(None);
                g
            })
            .collect();
        Ok(Micro {
            index,
            grads,
            stats,
            loss,
            rows: b.len() as u64,
            correct,
        })
    }

    /// Gives every rank rank 0's weights and buffers (they start equal when every rank seeds
    /// alike; this makes sure, whatever the ranks did before).
    fn share_weights(&self, targets: &Targets) -> Result<()> {
        let names: Vec<(String, Tensor)> = targets
            .state
            .iter()
            .enumerate()
            .map(|(i, t)| (i.to_string(), t.clone()))
            .collect();
        let mine = if self.group.rank() == 0 {
            crate::io::serialize_safetensors(&names, None)
        } else {
            Ok(Vec::new())
        };
        let bytes = self.group.broadcast(mine)?;
        let file = crate::io::parse_safetensors(&bytes, "the weights of rank 0")?;
        let _g = crate::no_grad();
        for (name, t) in &names {
            t.copy_from(file.tensor(name)?)?;
        }
        Ok(())
    }

    fn limit_reached(&self) -> bool {
        self.max_steps.is_some_and(|m| self.state.step >= m)
    }

    fn report(&self, stop: Stop, val: Option<Evaluation>) -> FitReport {
        let s = &self.state;
        FitReport {
            history: s.history.clone(),
            steps: s.step,
            val,
            best_epoch: s.best_epoch,
            stop,
            train_seconds: s.train_seconds + s.epoch_seconds,
            samples_per_second: s.seen as f64 / (s.train_seconds + s.epoch_seconds).max(1e-9),
            parameters: self.model.num_parameters(),
            data_parallel: self.dp.clone(),
        }
    }

    /// Stops a run whose loss climbs far above where it started: the mean of the last 10 steps
    /// against the lowest single-step loss of the first 10 (a run that diverges at once must
    /// not poison its own reference).
    fn watch_divergence(&mut self, loss: f64) -> Result<()> {
        let s = &mut self.state;
        if s.first_losses.len() < WINDOW {
            s.first_losses.push(loss);
        }
        s.recent_losses.push_back(loss);
        if s.recent_losses.len() > WINDOW {
            s.recent_losses.pop_front();
        }
        let f = self.cfg.divergence_factor;
        if f == 0.0 || s.recent_losses.len() < WINDOW {
            return Ok(());
        }
        let start = s.first_losses.iter().copied().fold(f64::INFINITY, f64::min);
        let now = s.recent_losses.iter().sum::<f64>() / WINDOW as f64;
        if now > f * start.max(1e-8) {
            bail!(
                "train",
                "diverged at step {}: the mean loss of the last {WINDOW} steps, {now:.4e}, is more than {f} times the lowest of the first {WINDOW}, {start:.4e}; lower train.lr (now {})",
                s.step,
                self.cfg.lr
            );
        }
        Ok(())
    }

    /// The error for a non-finite loss, naming the first non-finite tensor found.
    fn diverged(&self, b: &Batch, loss: f64) -> Error {
        let non_finite = |t: &Tensor| {
            t.to_vec_f64()
                .map(|v| v.iter().any(|x| !x.is_finite()))
                .unwrap_or(false)
        };
        let mut culprit = None;
        if non_finite(&b.x) {
            culprit = Some("the input batch".to_string());
        }
        for (name, p) in self.model.named_parameters() {
            if culprit.is_some() {
                break;
            }
            if non_finite(&p) {
                culprit = Some(format!("parameter {name:?}"));
            } else if p.grad().is_some_and(|g| non_finite(&g)) {
                culprit = Some(format!("the gradient of {name:?}"));
            }
        }
        let s = &self.state;
        crate::error::op_err(
            "train",
            format!(
                "diverged at step {} (epoch {}, batch {}): the loss is {loss}; first non-finite tensor: {}; lower train.lr (now {}) or clip gradients (train.clip_grad_norm)",
                s.step + 1,
                s.epoch + 1,
                s.batch + 1,
                culprit.unwrap_or_else(|| "none (the loss itself overflowed)".into()),
                self.cfg.lr
            ),
        )
    }

    fn meta_refs(&self) -> Vec<(&str, String)> {
        self.metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect()
    }

    /// Writes `checkpoints/step-N.safetensors` atomically, points `checkpoint.safetensors`
    /// at it (hard link + rename, so it is always one whole checkpoint) and drops the oldest
    /// beyond `keep_checkpoints`.
    fn save_checkpoint(&mut self) -> Result<()> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        let sub = dir.join("checkpoints");
        std::fs::create_dir_all(&sub).map_err(|e| Error::Io {
            path: sub.display().to_string(),
            source: e,
        })?;
        let path = sub.join(format!("step-{:09}.safetensors", self.state.step));
        let mut extra = self.meta_refs();
        if let Some(c) = self.model.config() {
            extra.push((
                crate::models::CONFIG_KEY,
                serde_json::to_string(&c).expect("configs serialize"),
            ));
        }
        extra.push((
            "train",
            serde_json::to_string(&self.cfg).expect("configs serialize"),
        ));
        extra.push((
            "trainer_state",
            serde_json::to_string(&self.state).expect("state serializes"),
        ));
        let progress = Progress {
            step: self.state.step,
            epoch: self.state.epoch,
        };
        checkpoint::save(&path, &*self.model, &*self.opt, &progress, &extra)?;
        crate::io::link_atomic(&path, dir.join("checkpoint.safetensors"))?;
        // A writer killed mid-save leaves a temporary file: never a checkpoint, so it goes.
        crate::io::remove_stale_temps(&sub);
        let mut old: Vec<PathBuf> = std::fs::read_dir(&sub)
            .map_err(|e| Error::Io {
                path: sub.display().to_string(),
                source: e,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("step-") && n.ends_with(".safetensors"))
            })
            .collect();
        old.sort();
        let excess = old.len().saturating_sub(self.cfg.keep_checkpoints);
        for p in &old[..excess] {
            // A leftover old checkpoint wastes space but loses nothing: ignore failures.
            let _ = std::fs::remove_file(p);
        }
        for h in &mut self.hooks {
            h.on_checkpoint(&path)?;
        }
        Ok(())
    }
}

/// The training loss of `task` for a batch: cross-entropy (per token for language models, with
/// optional label smoothing), mean squared error, or binary cross-entropy per reconstructed
/// value.
pub fn loss(task: Task, out: &Tensor, b: &Batch, label_smoothing: f64) -> Result<Tensor> {
    let opts = CrossEntropyOpts {
        label_smoothing,
        ignore_index: None,
    };
    match task {
        Task::Classification => cross_entropy_with(out, &b.y, opts),
        Task::Regression => mse_loss(out, &b.y),
        Task::Reconstruction => binary_cross_entropy_with_logits(out, &b.y),
        Task::LanguageModel => {
            let v = *out.shape().last().unwrap_or(&1);
            let n = b.y.numel();
            cross_entropy_with(&out.reshape(&[n, v])?, &b.y.reshape(&[n])?, opts)
        }
    }
}

/// The task's loss plus the model's own term, if it has one.
fn with_penalty(loss: Tensor, penalty: Option<Tensor>) -> Result<Tensor> {
    match penalty {
        Some(p) => loss.add(&p),
        None => Ok(loss),
    }
}

/// Evaluates `model` on every batch of `data` in eval mode without recording a graph, and
/// leaves it in training mode.
pub fn evaluate(model: &mut dyn Model, data: &dyn Batches) -> Result<Evaluation> {
    if data.len() == usize::MAX {
        bail!("evaluate", "cannot evaluate on an endless batch source");
    }
    model.set_training(false);
    let result = (|| {
        let _g = crate::no_grad();
        let mut ev = Evaluation::new(model.task(), data.classes());
        ev.scale = data.scale();
        let device = model.device();
        for b in data.epoch(0, 0) {
            let b = b?.to(device)?;
            let (out, penalty) = model.forward_with_penalty(&b)?;
            let l = with_penalty(loss(model.task(), &out, &b, 0.0)?, penalty)?.item()?;
            ev.add(&out, &b, l)?;
        }
        Ok(ev)
    })();
    model.set_training(true);
    result
}

/// `section.field: checkpoint A, now B` for every field that differs between two JSON objects.
pub(crate) fn differences(
    section: &str,
    stored: &serde_json::Value,
    mine: &serde_json::Value,
) -> Vec<String> {
    use serde_json::Value;
    let (Value::Object(a), Value::Object(b)) = (stored, mine) else {
        return if stored == mine {
            vec![]
        } else {
            vec![format!("{section}: checkpoint {stored}, now {mine}")]
        };
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (
                a.get(k).unwrap_or(&Value::Null),
                b.get(k).unwrap_or(&Value::Null),
            );
            (x != y).then(|| format!("{section}.{k}: checkpoint {x}, now {y}"))
        })
        .collect()
}
