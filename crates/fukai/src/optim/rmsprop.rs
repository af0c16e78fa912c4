//! RMSprop (PyTorch's variant: eps outside the square root, optional momentum).

use super::{for_each_grad, update_chunks, Optimizer, Slots, Update};
use crate::error::Result;
use crate::ops::float::Float;
use crate::tensor::Tensor;

/// RMSprop. Defaults: alpha 0.99, eps 1e-8, no momentum, no weight decay.
///
/// ```
/// use fukai::optim::{Optimizer, RmsProp};
/// use fukai::Tensor;
/// let w = Tensor::from_vec(vec![1.0f32], &[1])?.with_grad()?;
/// let mut opt = RmsProp::new(vec![w.clone()], 0.01);
/// w.mul_scalar(2.0)?.sum_all()?.backward()?;
/// opt.step()?;
/// // First step: lr · g / √((1 - alpha) · g²) = 0.01 / √0.01 = 0.1.
/// assert!((w.item()? - 0.9).abs() < 1e-5);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct RmsProp {
    params: Vec<Tensor>,
    lr: f64,
    alpha: f64,
    eps: f64,
    momentum: f64,
    weight_decay: f64,
    sq: Slots,
    buf: Slots,
}

impl RmsProp {
    /// RMSprop at learning rate `lr`.
    pub fn new(params: Vec<Tensor>, lr: f64) -> Self {
        let n = params.len();
        RmsProp {
            params,
            lr,
            alpha: 0.99,
            eps: 1e-8,
            momentum: 0.0,
            weight_decay: 0.0,
            sq: Slots::new("square_avg", n),
            buf: Slots::new("momentum_buffer", n),
        }
    }
    /// Smoothing constant of the squared-gradient average.
    pub fn alpha(mut self, a: f64) -> Self {
        self.alpha = a;
        self
    }
    /// Momentum factor.
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = m;
        self
    }
    /// L2 penalty added to the gradient.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
}

/// One RMSprop step's settings and buffers.
struct RmsStep<'a> {
    lr: f64,
    alpha: f64,
    eps: f64,
    momentum: f64,
    weight_decay: f64,
    sq: &'a mut Slots,
    buf: &'a mut Slots,
}

impl Update for RmsStep<'_> {
    fn apply_device(&mut self, i: usize, w: &Tensor, g: &Tensor) -> Result<()> {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        {
            let sq = self.sq.on_device(i, w)?;
            let b = match self.momentum != 0.0 {
                true => Some(self.buf.on_device(i, w)?),
                false => None,
            };
            let step = crate::backend::gpu::optim::Step::RmsProp {
                lr: self.lr,
                alpha: self.alpha,
                eps: self.eps,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
            };
            crate::backend::gpu::optim::update(&step, w, g, Some(&sq), b.as_ref())
        }
        #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
        {
            let _ = (i, g);
            w.cpu_only("optimizer")
        }
    }
    fn apply<T: Float>(&mut self, i: usize, w: &mut [T], g: &[T]) {
        let (lr, a, eps) = (T::c(self.lr), T::c(self.alpha), T::c(self.eps));
        let (mom, wd) = (T::c(self.momentum), T::c(self.weight_decay));
        let sq = self.sq.get(i, w.len());
        let buf: &mut [T] = if mom != T::ZERO {
            self.buf.get(i, w.len())
        } else {
            &mut []
        };
        update_chunks(
            w,
            g,
            sq,
            buf,
            #[inline(always)]
            |w, g, sq, b| {
                for (k, (w, &g)) in w.iter_mut().zip(g).enumerate() {
                    let g = g + wd * *w;
                    sq[k] = a * sq[k] + (T::ONE - a) * g * g;
                    let upd = g / (sq[k].sqrt() + eps);
                    if b.is_empty() {
                        *w = *w - lr * upd;
                    } else {
                        b[k] = mom * b[k] + upd;
                        *w = *w - lr * b[k];
                    }
                }
            },
        )
    }
}

impl Optimizer for RmsProp {
    fn step(&mut self) -> Result<()> {
        let mut step = RmsStep {
            lr: self.lr,
            alpha: self.alpha,
            eps: self.eps,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            sq: &mut self.sq,
            buf: &mut self.buf,
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
        self.sq.save(&self.params, &mut out)?;
        self.buf.save(&self.params, &mut out)?;
        Ok(out)
    }
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        self.sq.load(&self.params, state)?;
        self.buf.load(&self.params, state)
    }
}
