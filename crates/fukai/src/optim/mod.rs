//! Optimizers, learning-rate schedules and gradient clipping. Updates run in place on the
//! parameters' storage, outside the autograd graph.
//!
//! Each parameter is updated in its own dtype (f32 or f64) with its state kept in that dtype:
//! an optimizer's update is written once, generic over the float type, and the hyperparameters are
//! rounded to the parameter's type once per step, so the f32 path performs exactly the f32
//! operations it always did.

mod adam;
mod rmsprop;
mod schedule;
mod sgd;

mod groups;
pub use adam::Adam;
pub use groups::Groups;
pub use rmsprop::RmsProp;
pub use schedule::LrSchedule;
pub use sgd::Sgd;

use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::ops::float::{check_float, check_same_dtype, with_contig, Float};
use crate::tensor::{CpuStorage, Layout, Storage, Tensor};
use std::sync::Arc;

/// Something that updates parameters from their gradients.
///
/// The PyTorch loop: `zero_grad`, forward, `backward`, `step`:
///
/// ```
/// use fukai::optim::{Optimizer, Sgd};
/// use fukai::{DType, Tensor};
/// let w = Tensor::zeros(&[1], DType::F32)?.with_grad()?;
/// let mut opt = Sgd::new(vec![w.clone()], 0.1);
/// for _ in 0..100 {
///     opt.zero_grad();
///     let loss = w.add_scalar(-3.0)?.square()?.sum_all()?; // (w - 3)²
///     loss.backward()?;
///     opt.step()?;
/// }
/// assert!((w.item()? - 3.0).abs() < 1e-4);
/// opt.set_lr(0.01);
/// assert_eq!(opt.lr(), 0.01);
/// # Ok::<(), fukai::Error>(())
/// ```
pub trait Optimizer: Send {
    /// Applies one update to every parameter that has a gradient.
    fn step(&mut self) -> Result<()>;
    /// The parameters being optimized.
    fn params(&self) -> &[Tensor];
    /// Current learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate (schedules call this every step).
    fn set_lr(&mut self, lr: f64);
    /// Internal state (moments, step counts) as named tensors, for checkpoints.
    fn state(&self) -> Result<Vec<(String, Tensor)>>;
    /// Restores state saved by [`Optimizer::state`].
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()>;
    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        for p in self.params() {
            p.zero_grad();
        }
    }
}

/// Per-parameter state buffers (moments) in their parameter's dtype, saved as
/// `"{prefix}.{i}"` tensors.
pub(crate) struct Slots {
    name: &'static str,
    bufs: Vec<Option<Slot>>,
}

/// One state buffer: host memory for CPU parameters, a tensor on the parameter's device
/// otherwise.
enum Slot {
    Host(CpuStorage),
    #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
    Device(Tensor),
}

impl Slots {
    pub(crate) fn new(name: &'static str, n: usize) -> Self {
        Slots {
            name,
            bufs: (0..n).map(|_| None).collect(),
        }
    }
    /// The buffer for parameter `i` as `T`, zero-initialized on first use.
    pub(crate) fn get<T: Float>(&mut self, i: usize, len: usize) -> &mut [T] {
        if !matches!(self.bufs[i], Some(Slot::Host(_))) {
            self.bufs[i] = Some(Slot::Host(T::wrap(vec![T::ZERO; len])));
        }
        match &mut self.bufs[i] {
            Some(Slot::Host(b)) => T::slice_mut(b).expect("state kept in its parameter's dtype"),
            _ => unreachable!("set above"),
        }
    }
    /// The buffer for parameter `p` (index `i`) on `p`'s device, zeros on first use; state
    /// loaded from a checkpoint moves there on first use.
    #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
    pub(crate) fn on_device(&mut self, i: usize, p: &Tensor) -> Result<Tensor> {
        let t = match self.bufs[i].take() {
            Some(Slot::Device(t)) if t.device() == p.device() => t,
            Some(Slot::Device(t)) => t.to(p.device())?,
            Some(Slot::Host(h)) => {
                let storage = Arc::new(Storage::new(h));
                Tensor::from_parts(storage, Layout::contiguous(p.shape())).to(p.device())?
            }
            None => Tensor::zeros_on(p.shape(), p.dtype(), p.device())?,
        };
        self.bufs[i] = Some(Slot::Device(t.clone()));
        Ok(t)
    }
    pub(crate) fn is_set(&self, i: usize) -> bool {
        self.bufs[i].is_some()
    }
    pub(crate) fn save(&self, params: &[Tensor], out: &mut Vec<(String, Tensor)>) -> Result<()> {
        for (i, b) in self.bufs.iter().enumerate() {
            let t = match b {
                Some(Slot::Host(b)) => {
                    let storage = Arc::new(Storage::new(b.clone()));
                    Tensor::from_parts(storage, Layout::contiguous(params[i].shape()))
                }
                // Checkpoints hold host tensors, so they load on any device.
                Some(Slot::Device(t)) => t.to(crate::Device::Cpu)?,
                None => continue,
            };
            out.push((format!("{}.{i}", self.name), t));
        }
        Ok(())
    }
    /// Restores the buffers saved by [`Slots::save`], converted to each parameter's dtype.
    pub(crate) fn load(&mut self, params: &[Tensor], state: &[(String, Tensor)]) -> Result<()> {
        for (i, p) in params.iter().enumerate() {
            let key = format!("{}.{i}", self.name);
            self.bufs[i] = match state.iter().find(|(n, _)| *n == key) {
                Some((_, t)) if t.shape() == p.shape() => {
                    crate::ops::float::check_float_on("load_state", p)?;
                    Some(Slot::Host(t.to_dtype(p.dtype())?.host_storage()?))
                }
                Some((_, t)) => bail!(
                    "load_state",
                    "{key}: shape {:?} does not match parameter {:?}",
                    t.shape(),
                    p.shape()
                ),
                None => None,
            };
        }
        Ok(())
    }
}

/// One optimizer's update of one parameter, generic over the float type the parameter holds
/// (closures cannot be generic, hence a trait).
pub(crate) trait Update {
    /// Updates the weights `w` of parameter `i` from its gradient `g` in place.
    fn apply<T: Float>(&mut self, i: usize, w: &mut [T], g: &[T]);
    /// The same update with `w` and `g` on a device, by that device's kernel.
    fn apply_device(&mut self, i: usize, w: &Tensor, g: &Tensor) -> Result<()>;
}

/// Runs `u` on every parameter that has a gradient, in the parameter's own dtype.
pub(crate) fn for_each_grad(params: &[Tensor], u: &mut impl Update) -> Result<()> {
    for (i, p) in params.iter().enumerate() {
        let Some(g) = p.grad() else { continue };
        if g.shape() != p.shape() {
            bail!(
                "optimizer",
                "parameter {i}: gradient {:?} vs parameter {:?}",
                g.shape(),
                p.shape()
            );
        }
        check_same_dtype("optimizer", p, &g)?;
        if !p.device().is_cpu() {
            crate::ops::float::check_float_on("optimizer", p)?;
            if !p.is_contiguous() {
                bail!(
                    "optimizer",
                    "parameter {i} is a strided view of shape {:?}",
                    p.shape()
                );
            }
            u.apply_device(i, p, &g)?;
            continue;
        }
        check_float("optimizer", p)?;
        float_dispatch!(p.dtype(), T => {
            with_contig::<T, _>(&g, |gs| p.update_as::<T>("optimizer", |w| u.apply(i, w, gs)))
        })?;
    }
    Ok(())
}

/// Runs an elementwise update `f(weights, grads, state1, state2)` over matching fixed-size
/// chunks, in parallel and vectorized ([`crate::simd`]; callers mark `f` `#[inline(always)]`,
/// or it is compiled out of line without the wide instructions). A state slice is either as
/// long as the weights or empty (then every chunk gets an empty slice). Each element's arithmetic is the
/// same however the work is split, so results never depend on the thread count.
pub(crate) fn update_chunks<T: Float>(
    mut w: &mut [T],
    mut g: &[T],
    mut s1: &mut [T],
    mut s2: &mut [T],
    f: impl Fn(&mut [T], &[T], &mut [T], &mut [T]) + Sync + Send,
) {
    const CHUNK: usize = 1 << 14;
    let mut parts = Vec::with_capacity(w.len().div_ceil(CHUNK));
    while !w.is_empty() {
        let n = CHUNK.min(w.len());
        let (a, rest) = std::mem::take(&mut w).split_at_mut(n);
        w = rest;
        let (b, rest) = g.split_at(n);
        g = rest;
        let (n1, n2) = (n.min(s1.len()), n.min(s2.len()));
        let (c, rest) = std::mem::take(&mut s1).split_at_mut(n1);
        s1 = rest;
        let (d, rest) = std::mem::take(&mut s2).split_at_mut(n2);
        s2 = rest;
        parts.push((a, b, c, d));
    }
    crate::parallel::for_each_item(parts, |(a, b, c, d)| {
        crate::simd::run(
            #[inline(always)]
            || f(a, b, c, d),
        )
    });
}

/// A scalar f64 saved as a 0-dim tensor.
pub(crate) fn scalar_state(name: &str, v: f64) -> (String, Tensor) {
    (name.to_string(), Tensor::scalar(v, crate::DType::F64))
}

/// Reads a scalar saved by [`scalar_state`] (default when absent).
pub(crate) fn read_scalar(state: &[(String, Tensor)], name: &str, default: f64) -> Result<f64> {
    match state.iter().find(|(n, _)| n == name) {
        Some((_, t)) => t.item(),
        None => Ok(default),
    }
}

/// Σ x² in f64, in 8 fixed lanes (vectorized; a single running sum was a ~1 ms serial chain
/// per step for an 800k-parameter model).
fn sum_squares<T: Float>(v: &[T]) -> f64 {
    crate::simd::run(
        #[inline(always)]
        || {
            let mut lanes = [0f64; 8];
            let chunks = v.chunks_exact(8);
            let tail = chunks.remainder();
            for c in chunks {
                for k in 0..8 {
                    lanes[k] += c[k].to_f64() * c[k].to_f64();
                }
            }
            let mut s = lanes.into_iter().fold(0.0, |a, b| a + b);
            for &x in tail {
                s += x.to_f64() * x.to_f64();
            }
            s
        },
    )
}

/// Scales all gradients so their global L2 norm is at most `max_norm`; returns the norm
/// before clipping. The norm is summed in parameter order, so it is reproducible.
///
/// ```
/// use fukai::Tensor;
/// let w = Tensor::from_vec(vec![0.0f32, 0.0], &[2])?.with_grad()?;
/// w.set_grad(Some(Tensor::from_vec(vec![3.0f32, 4.0], &[2])?));
/// let norm = fukai::optim::clip_grad_norm(&[w.clone()], 1.0)?;
/// assert_eq!(norm, 5.0);
/// let g = w.grad().unwrap().to_vec::<f32>()?;
/// assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5);
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> Result<f64> {
    let mut sq = 0.0f64;
    for p in params {
        if let Some(g) = p.grad() {
            if !g.device().is_cpu() {
                // One readback per parameter; the sum of squares runs on the device.
                sq += g.square()?.sum_all()?.item()?;
                continue;
            }
            check_float("clip_grad_norm", &g)?;
            sq += float_dispatch!(g.dtype(), T => with_contig::<T, _>(&g, sum_squares));
        }
    }
    let norm = sq.sqrt();
    let scale = max_norm / (norm + 1e-6);
    if scale < 1.0 {
        for p in params {
            if let Some(g) = p.grad() {
                p.set_grad(Some(g.mul_scalar(scale)?));
            }
        }
    }
    Ok(norm)
}
