//! Normalization layers: batch norm (with running statistics), layer norm and RMS norm.

use super::{join, Module, TensorKind};
use crate::bail;
use crate::distributed::Collective;
use crate::error::Result;
use crate::onnx::export::{layers as ox, Graph, Value};
use crate::tensor::{DType, Tensor};
use std::cell::RefCell;
use std::sync::Arc;

/// Batch normalization over the channel dim 1 of `[N, C]`, `[N, C, L]` or `[N, C, H, W]`
/// (PyTorch's BatchNorm1d/2d): batch statistics in training, running ones in eval.
///
/// ```
/// use fukai::nn::{BatchNorm, Module};
/// use fukai::Tensor;
/// let mut bn = BatchNorm::new(1)?;
/// let x = Tensor::from_vec(vec![1.0f32, 3.0], &[2, 1])?;
/// // Training: normalized with the batch's statistics, which also update the running ones.
/// let y = bn.forward(&x)?.to_vec::<f32>()?;
/// assert!((y[0] + 1.0).abs() < 1e-4 && (y[1] - 1.0).abs() < 1e-4);
/// assert!((bn.running_mean.item()? - 0.2).abs() < 1e-6); // 0.9 * 0 + 0.1 * 2
/// bn.eval();
/// assert_eq!(bn.forward(&x)?.shape(), &[2, 1]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct BatchNorm {
    /// Scale `[C]` (init 1).
    pub weight: Tensor,
    /// Shift `[C]` (init 0).
    pub bias: Tensor,
    /// Running mean `[C]` (buffer).
    pub running_mean: Tensor,
    /// Running unbiased variance `[C]` (buffer).
    pub running_var: Tensor,
    /// Batches seen in training (buffer, i64 scalar as in PyTorch).
    pub num_batches_tracked: Tensor,
    eps: f64,
    momentum: f64,
    training: bool,
}

impl BatchNorm {
    /// PyTorch defaults: eps 1e-5, momentum 0.1.
    pub fn new(channels: usize) -> Result<Self> {
        positive("BatchNorm", channels)?;
        Ok(BatchNorm {
            weight: Tensor::ones(&[channels], DType::F32)?.with_grad()?,
            bias: Tensor::zeros(&[channels], DType::F32)?.with_grad()?,
            running_mean: Tensor::zeros(&[channels], DType::F32)?,
            running_var: Tensor::ones(&[channels], DType::F32)?,
            num_batches_tracked: Tensor::zeros(&[], DType::I64)?,
            eps: 1e-5,
            momentum: 0.1,
            training: true,
        })
    }
}

/// Normalizing over nothing has no statistics: refused at construction.
fn positive(layer: &'static str, features: usize) -> Result<()> {
    if features == 0 {
        bail!(layer, "needs at least one feature to normalize, found 0");
    }
    Ok(())
}

impl BatchNorm {
    fn check(&self, x: &Tensor) -> Result<()> {
        let c = self.weight.numel();
        if !(2..=4).contains(&x.rank()) || x.shape()[1] != c {
            bail!(
                "BatchNorm",
                "input shape {:?}: expected [N, {c}], [N, {c}, L] or [N, {c}, H, W]",
                x.shape()
            );
        }
        Ok(())
    }
    /// Training mode: normalizes with the batch statistics (then ReLU when `relu`, fused) and
    /// updates the running estimates.
    fn train_forward(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        self.check(x)?;
        if let Some(group) = SYNC.with(|s| s.borrow().clone()) {
            if group.size() > 1 {
                return self.sync_forward(x, relu, &group);
            }
        }
        let c = self.weight.numel();
        let (y, stats) = if relu {
            x.batch_norm_relu_train(&self.weight, &self.bias, self.eps)?
        } else {
            x.batch_norm_train(&self.weight, &self.bias, self.eps)?
        };
        let n = x.numel() / c;
        if n < 2 {
            bail!(
                "BatchNorm",
                "input shape {:?}: training needs more than one value per channel",
                x.shape()
            );
        }
        let _g = crate::no_grad();
        // Running variance is the unbiased estimate, as in PyTorch.
        let update = RunningUpdate {
            mean: self.running_mean.clone(),
            var: self.running_var.clone(),
            tracked: self.num_batches_tracked.clone(),
            momentum: self.momentum,
            batch_mean: stats.mean,
            batch_var: stats.var.mul_scalar(n as f64 / (n - 1) as f64)?,
            shared: false,
        };
        update.apply_or_defer()?;
        Ok(y)
    }

    /// Training mode with statistics over the micro-batches of every rank of `group` (each rank
    /// holds one part of the batch): per-channel sums and sums of squares all-reduced, so the
    /// gradient flows through the other ranks' parts too.
    fn sync_forward(&self, x: &Tensor, relu: bool, group: &Arc<dyn Collective>) -> Result<Tensor> {
        let c = self.weight.numel();
        let dims: Vec<isize> = (0..x.rank() as isize).filter(|&d| d != 1).collect();
        let local = (x.numel() / c) as f64;
        let n = {
            let _g = crate::no_grad();
            Tensor::from_vec(vec![local], &[1])?
                .all_reduce_sum(group)?
                .item()?
        };
        if n < 2.0 {
            bail!(
                "BatchNorm",
                "synchronized batch norm: {n} values per channel over all ranks; training needs more than one"
            );
        }
        let sum = x.sum(&dims, false)?.all_reduce_sum(group)?;
        let sq = x.mul(x)?.sum(&dims, false)?.all_reduce_sum(group)?;
        let mean = sum.mul_scalar(1.0 / n)?;
        // E[x²] − mean², kept from going below zero by rounding.
        let var = sq.mul_scalar(1.0 / n)?.sub(&mean.mul(&mean)?)?.relu()?;
        let mut bshape = vec![1; x.rank()];
        bshape[1] = c;
        let scale = var.add_scalar(self.eps)?.rsqrt()?.mul(&self.weight)?;
        let y = x
            .sub(&mean.reshape(&bshape)?)?
            .mul(&scale.reshape(&bshape)?)?
            .add(&self.bias.reshape(&bshape)?)?;
        let y = if relu { y.relu()? } else { y };
        let _g = crate::no_grad();
        let update = RunningUpdate {
            mean: self.running_mean.clone(),
            var: self.running_var.clone(),
            tracked: self.num_batches_tracked.clone(),
            momentum: self.momentum,
            batch_mean: mean.detach(),
            batch_var: var.detach().mul_scalar(n / (n - 1.0))?,
            shared: true,
        };
        update.apply_or_defer()?;
        Ok(y)
    }
}

thread_local! {
    /// The group whose ranks' statistics batch norm shares, set by [`synchronize_batch_norm`].
    static SYNC: RefCell<Option<Arc<dyn Collective>>> = const { RefCell::new(None) };
}

/// Runs `f` with every batch-norm layer in training mode normalizing with statistics over all
/// ranks of `group` (synchronized batch norm: PyTorch's `SyncBatchNorm`); every rank must run
/// the same forward and backward at the same time. In a group of one nothing changes.
pub fn synchronize_batch_norm<R>(group: Arc<dyn Collective>, f: impl FnOnce() -> R) -> R {
    let outer = SYNC.with(|s| s.borrow_mut().replace(group));
    let r = f();
    SYNC.with(|s| *s.borrow_mut() = outer);
    r
}

thread_local! {
    /// Running-statistics updates held back by [`defer_running_stats`] on this thread.
    static DEFERRED: RefCell<Option<Vec<RunningUpdate>>> = const { RefCell::new(None) };
}

/// One batch-norm layer's update of its running estimates from one training batch:
/// `running = (1 - momentum) · running + momentum · batch` (the unbiased variance), and one more
/// batch tracked.
#[derive(Clone)]
pub struct RunningUpdate {
    /// The layer's running mean (the tensor updated).
    pub mean: Tensor,
    /// The layer's running variance (the tensor updated).
    pub var: Tensor,
    /// The layer's batch counter.
    pub tracked: Tensor,
    /// The layer's momentum.
    pub momentum: f64,
    /// The batch's per-channel mean.
    pub batch_mean: Tensor,
    /// The batch's per-channel unbiased variance.
    pub batch_var: Tensor,
    /// Statistics of the whole synchronized batch: every rank records the same update, which
    /// is applied once.
    pub shared: bool,
}

impl RunningUpdate {
    /// Applies the update now, or holds it back inside [`defer_running_stats`].
    fn apply_or_defer(self) -> Result<()> {
        DEFERRED.with(|d| match &mut *d.borrow_mut() {
            Some(list) => {
                list.push(self);
                Ok(())
            }
            None => self.apply(),
        })
    }

    /// Applies the update to the layer's buffers.
    pub fn apply(&self) -> Result<()> {
        let _g = crate::no_grad();
        let m = self.momentum;
        self.mean.copy_from(
            &self
                .mean
                .mul_scalar(1.0 - m)?
                .add(&self.batch_mean.mul_scalar(m)?)?,
        )?;
        self.var.copy_from(
            &self
                .var
                .mul_scalar(1.0 - m)?
                .add(&self.batch_var.mul_scalar(m)?)?,
        )?;
        let t = self.tracked.item()? as i64;
        self.tracked.copy_from(&Tensor::from_vec(vec![t + 1], &[])?)
    }
}

/// Runs `f` with every batch-norm running-statistics update on this thread held back and
/// returned in the order they happened, for the caller to apply (data-parallel training applies
/// the updates of every rank's micro-batches in one global order). Normalization itself is
/// unchanged: training mode normalizes with the batch's own statistics.
///
/// ```
/// use fukai::nn::{defer_running_stats, BatchNorm, Module};
/// use fukai::Tensor;
/// let bn = BatchNorm::new(1)?;
/// let x = Tensor::from_vec(vec![1.0f32, 3.0], &[2, 1])?;
/// let (y, updates) = defer_running_stats(|| bn.forward(&x));
/// y?;
/// assert_eq!(bn.running_mean.item()?, 0.0); // not yet
/// for u in &updates { u.apply()?; }
/// assert!((bn.running_mean.item()? - 0.2).abs() < 1e-6);
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn defer_running_stats<R>(f: impl FnOnce() -> R) -> (R, Vec<RunningUpdate>) {
    let outer = DEFERRED.with(|d| d.borrow_mut().replace(Vec::new()));
    let r = f();
    let mine = DEFERRED.with(|d| std::mem::replace(&mut *d.borrow_mut(), outer));
    (r, mine.unwrap_or_default())
}

impl Module for BatchNorm {
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        ox::batch_norm(
            g,
            prefix,
            x,
            [
                &self.weight,
                &self.bias,
                &self.running_mean,
                &self.running_var,
            ],
            self.eps,
        )
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.training {
            return self.train_forward(x, false);
        }
        self.check(x)?;
        let c = self.weight.numel();
        // Eval: a per-channel affine map with the running statistics, broadcast against dim 1.
        let mut bshape = vec![1; x.rank()];
        bshape[1] = c;
        let inv = self
            .running_var
            .reshape(&bshape)?
            .add_scalar(self.eps)?
            .rsqrt()?;
        x.sub(&self.running_mean.reshape(&bshape)?)?
            .mul(&inv.mul(&self.weight.reshape(&bshape)?)?)?
            .add(&self.bias.reshape(&bshape)?)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        f(&join(prefix, "weight"), &self.weight, TensorKind::Parameter);
        f(&join(prefix, "bias"), &self.bias, TensorKind::Parameter);
        f(
            &join(prefix, "running_mean"),
            &self.running_mean,
            TensorKind::Buffer,
        );
        f(
            &join(prefix, "running_var"),
            &self.running_var,
            TensorKind::Buffer,
        );
        f(
            &join(prefix, "num_batches_tracked"),
            &self.num_batches_tracked,
            TensorKind::Buffer,
        );
    }
    fn set_training(&mut self, on: bool) {
        self.training = on;
    }
    fn describe(&self) -> String {
        format!("BatchNorm({})", self.weight.numel())
    }
    fn forward_relu(&self, x: &Tensor) -> Option<Result<Tensor>> {
        self.training.then(|| self.train_forward(x, true))
    }
}

/// Layer normalization over the last dims (`normalized_shape`), with learned scale and shift.
///
/// ```
/// use fukai::nn::{LayerNorm, Module};
/// use fukai::Tensor;
/// let ln = LayerNorm::new(2)?;
/// let y = ln.forward(&Tensor::from_vec(vec![1.0f32, 3.0, 10.0, 10.0], &[2, 2])?)?;
/// let v = y.to_vec::<f32>()?;
/// assert!((v[0] + 1.0).abs() < 1e-4 && (v[1] - 1.0).abs() < 1e-4);
/// assert_eq!(&v[2..], &[0.0, 0.0]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct LayerNorm {
    /// Scale (init 1).
    pub weight: Tensor,
    /// Shift (init 0).
    pub bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Normalizes over a last dim of size `dim` (eps 1e-5 like PyTorch).
    pub fn new(dim: usize) -> Result<Self> {
        positive("LayerNorm", dim)?;
        Ok(LayerNorm {
            weight: Tensor::ones(&[dim], DType::F32)?.with_grad()?,
            bias: Tensor::zeros(&[dim], DType::F32)?.with_grad()?,
            eps: 1e-5,
        })
    }
    /// The same layer with another epsilon.
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
}

impl Module for LayerNorm {
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        ox::layer_norm(g, prefix, x, &self.weight, Some(&self.bias), self.eps)
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let d = self.weight.numel();
        if x.rank() == 0 || x.shape()[x.rank() - 1] != d {
            bail!(
                "LayerNorm",
                "input shape {:?}: last dim must be {d}",
                x.shape()
            );
        }
        // One fused kernel (ops/layer_norm.rs), proven equal to the composite in the tests.
        x.layer_norm(Some(&self.weight), Some(&self.bias), self.eps)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        f(&join(prefix, "weight"), &self.weight, TensorKind::Parameter);
        f(&join(prefix, "bias"), &self.bias, TensorKind::Parameter);
    }
    fn describe(&self) -> String {
        format!("LayerNorm({})", self.weight.numel())
    }
}

/// RMS normalization over the last dim with a learned scale (no centering, no shift), as in
/// LLaMA and PyTorch's `nn.RMSNorm`.
///
/// ```
/// use fukai::nn::{Module, RmsNorm};
/// use fukai::Tensor;
/// let norm = RmsNorm::new(2, 1e-6)?;
/// let y = norm.forward(&Tensor::from_vec(vec![3.0f32, 4.0], &[1, 2])?)?;
/// // The root mean square of (3, 4) is √12.5.
/// let rms = 12.5f32.sqrt();
/// let v = y.to_vec::<f32>()?;
/// assert!((v[0] - 3.0 / rms).abs() < 1e-5 && (v[1] - 4.0 / rms).abs() < 1e-5);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct RmsNorm {
    /// Scale (init 1).
    pub weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Normalizes over a last dim of size `dim` with `eps` (PyTorch's default is f32 epsilon;
    /// LLaMA uses 1e-5 or 1e-6).
    pub fn new(dim: usize, eps: f64) -> Result<Self> {
        positive("RmsNorm", dim)?;
        Ok(RmsNorm {
            weight: Tensor::ones(&[dim], DType::F32)?.with_grad()?,
            eps,
        })
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let d = self.weight.numel();
        if x.rank() == 0 || x.shape()[x.rank() - 1] != d {
            bail!(
                "RmsNorm",
                "input shape {:?}: last dim must be {d}",
                x.shape()
            );
        }
        x.rms_norm(Some(&self.weight), self.eps)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        f(&join(prefix, "weight"), &self.weight, TensorKind::Parameter);
    }
    fn describe(&self) -> String {
        format!("RmsNorm({})", self.weight.numel())
    }
}
