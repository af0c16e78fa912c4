//! RMSprop (PyTorch's variant: eps outside the square root, optional momentum).

use super::{for_each_grad, update_chunks, Optimizer, Slots};
use crate::error::Result;
use crate::tensor::Tensor;

/// RMSprop. Defaults: alpha 0.99, eps 1e-8, no momentum, no weight decay.
pub struct RmsProp {
    params: Vec<Tensor>,
    lr: f64,
    alpha: f32,
    eps: f32,
    momentum: f32,
    weight_decay: f32,
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
        self.alpha = a as f32;
        self
    }
    /// Momentum factor.
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = m as f32;
        self
    }
    /// L2 penalty added to the gradient.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd as f32;
        self
    }
}

impl Optimizer for RmsProp {
    fn step(&mut self) -> Result<()> {
        let (lr, a, eps, mom, wd) = (
            self.lr as f32,
            self.alpha,
            self.eps,
            self.momentum,
            self.weight_decay,
        );
        let (sqs, bufs) = (&mut self.sq, &mut self.buf);
        for_each_grad(&self.params, |i, w, g| {
            let sq = sqs.get(i, w.len());
            let mut none = Vec::new();
            let buf = if mom != 0.0 {
                bufs.get(i, w.len())
            } else {
                &mut none
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
                        sq[k] = a * sq[k] + (1.0 - a) * g * g;
                        let upd = g / (sq[k].sqrt() + eps);
                        if b.is_empty() {
                            *w -= lr * upd;
                        } else {
                            b[k] = mom * b[k] + upd;
                            *w -= lr * b[k];
                        }
                    }
                },
            )
        })
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
