//! Adam and AdamW (decoupled weight decay), with PyTorch's bias-corrected update.

use super::{for_each_grad, read_scalar, scalar_state, update_chunks, Optimizer, Slots, Update};
use crate::error::Result;
use crate::ops::float::Float;
use crate::tensor::Tensor;

/// Adam / AdamW. Defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
///
/// ```
/// use fukai::optim::{Adam, Optimizer};
/// use fukai::Tensor;
/// let w = Tensor::from_vec(vec![1.0f32, -1.0], &[2])?.with_grad()?;
/// let mut opt = Adam::new(vec![w.clone()], 0.1);
/// let slope = Tensor::from_vec(vec![3.0f32, -0.5], &[2])?;
/// w.mul(&slope)?.sum_all()?.backward()?;
/// opt.step()?;
/// // Adam's first step moves every weight by about `lr`, against its gradient's sign.
/// let v = w.to_vec::<f32>()?;
/// assert!((v[0] - 0.9).abs() < 1e-6 && (v[1] + 0.9).abs() < 1e-6);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Adam {
    params: Vec<Tensor>,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    step: u64,
    m: Slots,
    v: Slots,
}

impl Adam {
    /// Adam (weight decay, if set, is an L2 term added to the gradient).
    pub fn new(params: Vec<Tensor>, lr: f64) -> Self {
        let n = params.len();
        Adam {
            params,
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            step: 0,
            m: Slots::new("exp_avg", n),
            v: Slots::new("exp_avg_sq", n),
        }
    }
    /// AdamW: weight decay applied to the weights directly (default 0.01 as in PyTorch).
    pub fn adamw(params: Vec<Tensor>, lr: f64) -> Self {
        let mut a = Adam::new(params, lr);
        a.decoupled = true;
        a.weight_decay = 0.01;
        a
    }
    /// Moment decay rates.
    pub fn betas(mut self, b1: f64, b2: f64) -> Self {
        self.betas = (b1, b2);
        self
    }
    /// Denominator epsilon.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    /// Weight decay (L2 for Adam, decoupled for AdamW).
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
}

/// One Adam step's settings (bias corrections folded in) and moment buffers.
struct AdamStep<'a> {
    step_size: f64,
    bc2_sqrt: f64,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    m: &'a mut Slots,
    v: &'a mut Slots,
}

impl Update for AdamStep<'_> {
    fn apply_device(&mut self, i: usize, w: &Tensor, g: &Tensor) -> Result<()> {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        {
            let (m, v) = (self.m.on_device(i, w)?, self.v.on_device(i, w)?);
            let step = crate::backend::gpu::optim::Step::Adam {
                decoupled: self.decoupled,
                step_size: self.step_size,
                betas: self.betas,
                eps: self.eps,
                bc2_sqrt: self.bc2_sqrt,
                lr: self.lr,
                weight_decay: self.weight_decay,
            };
            crate::backend::gpu::optim::update(&step, w, g, Some(&m), Some(&v))
        }
        #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
        {
            let _ = (i, g);
            w.cpu_only("optimizer")
        }
    }
    fn apply<T: Float>(&mut self, i: usize, w: &mut [T], g: &[T]) {
        let step_size = T::c(self.step_size);
        let (b1, b2, eps) = (T::c(self.betas.0), T::c(self.betas.1), T::c(self.eps));
        let (bc2_sqrt, lr) = (T::c(self.bc2_sqrt), T::c(self.lr));
        let (wd, decoupled) = (T::c(self.weight_decay), self.decoupled);
        let m = self.m.get(i, w.len());
        let v = self.v.get(i, w.len());
        update_chunks(
            w,
            g,
            m,
            v,
            #[inline(always)]
            |w, g, m, v| {
                let moments = |w: &mut T, g: T, m: &mut T, v: &mut T| {
                    *m = b1 * *m + (T::ONE - b1) * g;
                    *v = b2 * *v + (T::ONE - b2) * g * g;
                    *w = *w - step_size * *m / (v.sqrt() / bc2_sqrt + eps);
                };
                // Two loops rather than a branch per element, so both vectorize.
                let zipped = w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut());
                if decoupled {
                    for (((w, &g), m), v) in zipped {
                        *w = *w * (T::ONE - lr * wd);
                        moments(w, g, m, v);
                    }
                } else {
                    for (((w, &g), m), v) in zipped {
                        moments(w, g + wd * *w, m, v);
                    }
                }
            },
        )
    }
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = self.betas;
        let mut step = AdamStep {
            step_size: self.lr / (1.0 - b1.powi(t)),
            bc2_sqrt: (1.0 - b2.powi(t)).sqrt(),
            lr: self.lr,
            betas: self.betas,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled: self.decoupled,
            m: &mut self.m,
            v: &mut self.v,
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
        let mut out = vec![scalar_state("step", self.step as f64)];
        self.m.save(&self.params, &mut out)?;
        self.v.save(&self.params, &mut out)?;
        Ok(out)
    }
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        self.step = read_scalar(state, "step", 0.0)? as u64;
        self.m.load(&self.params, state)?;
        self.v.load(&self.params, state)
    }
}
