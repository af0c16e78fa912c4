//! Stochastic gradient descent with momentum, Nesterov and weight decay (PyTorch's update).

use super::{for_each_grad, update_chunks, Optimizer, Slots, Update};
use crate::error::Result;
use crate::ops::float::Float;
use crate::tensor::Tensor;

/// SGD; build with [`Sgd::new`] and the `momentum`/`nesterov`/`weight_decay` setters.
///
/// ```
/// use fukai::optim::{Optimizer, Sgd};
/// use fukai::Tensor;
/// let w = Tensor::from_vec(vec![1.0f32], &[1])?.with_grad()?;
/// let mut opt = Sgd::new(vec![w.clone()], 0.1).momentum(0.9);
/// w.mul_scalar(2.0)?.sum_all()?.backward()?; // gradient 2
/// opt.step()?;
/// assert!((w.item()? - 0.8).abs() < 1e-6); // 1 - 0.1 * 2
/// assert_eq!(opt.state()?.len(), 1); // the momentum buffer
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Sgd {
    params: Vec<Tensor>,
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    bufs: Slots,
}

impl Sgd {
    /// Plain SGD at learning rate `lr`.
    pub fn new(params: Vec<Tensor>, lr: f64) -> Self {
        let n = params.len();
        Sgd {
            params,
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            bufs: Slots::new("momentum_buffer", n),
        }
    }
    /// Heavy-ball momentum factor.
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = m;
        self
    }
    /// Nesterov momentum.
    pub fn nesterov(mut self, on: bool) -> Self {
        self.nesterov = on;
        self
    }
    /// L2 penalty added to the gradient.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
}

/// One SGD step's settings and momentum buffers.
struct SgdStep<'a> {
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    bufs: &'a mut Slots,
}

impl Update for SgdStep<'_> {
    fn apply_device(&mut self, i: usize, w: &Tensor, g: &Tensor) -> Result<()> {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        {
            let fresh = !self.bufs.is_set(i);
            let b = match self.momentum != 0.0 {
                true => Some(self.bufs.on_device(i, w)?),
                false => None,
            };
            let step = crate::backend::gpu::optim::Step::Sgd {
                fresh,
                nesterov: self.nesterov,
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
            };
            crate::backend::gpu::optim::update(&step, w, g, b.as_ref(), None)
        }
        #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
        {
            let _ = (i, g);
            w.cpu_only("optimizer")
        }
    }
    fn apply<T: Float>(&mut self, i: usize, w: &mut [T], g: &[T]) {
        let (lr, mom, wd) = (T::c(self.lr), T::c(self.momentum), T::c(self.weight_decay));
        let nest = self.nesterov;
        let fresh = !self.bufs.is_set(i);
        let buf: &mut [T] = if mom != T::ZERO {
            self.bufs.get(i, w.len())
        } else {
            &mut []
        };
        update_chunks(
            w,
            g,
            buf,
            &mut [],
            #[inline(always)]
            |w, g, b, _| {
                if b.is_empty() {
                    w.iter_mut()
                        .zip(g)
                        .for_each(|(w, &g)| *w = *w - lr * (g + wd * *w));
                    return;
                }
                for ((w, &g), b) in w.iter_mut().zip(g).zip(b.iter_mut()) {
                    let d = g + wd * *w;
                    *b = if fresh { d } else { mom * *b + d };
                    *w = *w - lr * if nest { d + mom * *b } else { *b };
                }
            },
        )
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        let mut step = SgdStep {
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            bufs: &mut self.bufs,
        };
        for_each_grad(&self.params, &mut step)
    }
    fn params(&self) -> &[Tensor] {
        &self.params
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        self.bufs.save(&self.params, &mut out)?;
        Ok(out)
    }
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        self.bufs.load(&self.params, state)
    }
}
