//! Stochastic gradient descent with momentum, Nesterov and weight decay (PyTorch's update).

use super::{for_each_grad, update_chunks, Optimizer, Slots};
use crate::error::Result;
use crate::tensor::Tensor;

/// SGD; build with [`Sgd::new`] and the `momentum`/`nesterov`/`weight_decay` setters.
pub struct Sgd {
    params: Vec<Tensor>,
    lr: f64,
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
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
        self.momentum = m as f32;
        self
    }
    /// Nesterov momentum.
    pub fn nesterov(mut self, on: bool) -> Self {
        self.nesterov = on;
        self
    }
    /// L2 penalty added to the gradient.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd as f32;
        self
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        let (lr, mom, nest, wd) = (
            self.lr as f32,
            self.momentum,
            self.nesterov,
            self.weight_decay,
        );
        let bufs = &mut self.bufs;
        for_each_grad(&self.params, |i, w, g| {
            let fresh = !bufs.is_set(i);
            let mut none = Vec::new();
            let buf = if mom != 0.0 {
                bufs.get(i, w.len())
            } else {
                &mut none
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
                            .for_each(|(w, &g)| *w -= lr * (g + wd * *w));
                        return;
                    }
                    for ((w, &g), b) in w.iter_mut().zip(g).zip(b.iter_mut()) {
                        let d = g + wd * *w;
                        *b = if fresh { d } else { mom * *b + d };
                        *w -= lr * if nest { d + mom * *b } else { *b };
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
        self.bufs.save(&self.params, &mut out)?;
        Ok(out)
    }
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        self.bufs.load(&self.params, state)
    }
}
