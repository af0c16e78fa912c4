//! Learning-rate schedules as pure functions of the step, so a resumed run gets the same rate.

use std::f64::consts::PI;

/// How the learning rate evolves over `total` steps from a base rate.
///
/// ```
/// use fukai::optim::LrSchedule;
/// let warm = LrSchedule::cosine(110, 10, 0.0);
/// assert_eq!(warm.lr(1.0, 4), 0.5); // halfway through the warmup
/// assert!((warm.lr(1.0, 60) - 0.5).abs() < 1e-12); // halfway down the cosine
/// assert_eq!(LrSchedule::step(10, 0.1).lr(1.0, 25), 0.1f64.powi(2));
/// assert_eq!(LrSchedule::constant().lr(3e-4, 1000), 3e-4);
/// assert!(LrSchedule::one_cycle(100, 0.3).lr(1.0, 29) > 0.99);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `step_size` steps.
    Step {
        /// Steps between decays.
        step_size: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// Linear warmup for `warmup` steps, then cosine decay to `min_lr` at `total`.
    /// `warmup: 0` is plain cosine annealing.
    WarmupCosine {
        /// Warmup steps.
        warmup: usize,
        /// Total steps.
        total: usize,
        /// Final rate.
        min_lr: f64,
    },
    /// One-cycle (PyTorch defaults: 30% up from base/25 with cosine, down to base/1e4).
    OneCycle {
        /// Total steps.
        total: usize,
        /// Fraction of steps spent increasing.
        pct_start: f64,
    },
}

impl LrSchedule {
    /// The base rate throughout: [`LrSchedule::Constant`].
    pub fn constant() -> Self {
        LrSchedule::Constant
    }
    /// Linear warmup over `warmup_steps`, then cosine decay to `min_lr` at `total_steps`
    /// ([`LrSchedule::WarmupCosine`]); `warmup_steps = 0` is PyTorch's `CosineAnnealingLR`.
    pub fn cosine(total_steps: usize, warmup_steps: usize, min_lr: f64) -> Self {
        LrSchedule::WarmupCosine {
            warmup: warmup_steps,
            total: total_steps,
            min_lr,
        }
    }
    /// PyTorch's `OneCycleLR` over `total_steps`, rising for the fraction `pct_start` of them
    /// ([`LrSchedule::OneCycle`]; PyTorch's default is 0.3).
    pub fn one_cycle(total_steps: usize, pct_start: f64) -> Self {
        LrSchedule::OneCycle {
            total: total_steps,
            pct_start,
        }
    }
    /// PyTorch's `StepLR`: the rate times `gamma` every `step_size` steps
    /// ([`LrSchedule::Step`]).
    pub fn step(step_size: usize, gamma: f64) -> Self {
        LrSchedule::Step { step_size, gamma }
    }
    /// The rate at `step` (0-based) for base rate `base`.
    ///
    /// Driving an optimizer: set the rate before each step.
    ///
    /// ```
    /// use fukai::optim::{LrSchedule, Optimizer, Sgd};
    /// use fukai::{DType, Tensor};
    /// let w = Tensor::zeros(&[1], DType::F32)?.with_grad()?;
    /// let mut opt = Sgd::new(vec![w], 0.1);
    /// let schedule = LrSchedule::step(2, 0.5);
    /// let mut seen = Vec::new();
    /// for step in 0..6 {
    ///     opt.set_lr(schedule.lr(0.1, step));
    ///     seen.push(opt.lr());
    /// }
    /// assert_eq!(seen, [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn lr(&self, base: f64, step: usize) -> f64 {
        let cos = |from: f64, to: f64, frac: f64| {
            to + (from - to) * 0.5 * (1.0 + (PI * frac.clamp(0.0, 1.0)).cos())
        };
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { step_size, gamma } => {
                base * gamma.powi((step / step_size.max(1)) as i32)
            }
            LrSchedule::WarmupCosine {
                warmup,
                total,
                min_lr,
            } => {
                if step < warmup {
                    base * (step + 1) as f64 / warmup as f64
                } else {
                    let span = total.saturating_sub(warmup).max(1);
                    cos(base, min_lr, (step - warmup) as f64 / span as f64)
                }
            }
            LrSchedule::OneCycle { total, pct_start } => {
                let (initial, fin) = (base / 25.0, base / 25.0 / 1e4);
                let up = ((pct_start * total as f64) - 1.0).max(1.0);
                let s = step as f64;
                if s <= up {
                    cos(initial, base, s / up)
                } else {
                    cos(base, fin, (s - up) / ((total as f64 - 1.0) - up).max(1.0))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_schedules() {
        let c = LrSchedule::WarmupCosine {
            warmup: 10,
            total: 110,
            min_lr: 1e-4,
        };
        assert!((c.lr(1e-3, 0) - 1e-4).abs() < 1e-12);
        assert!((c.lr(1e-3, 9) - 1e-3).abs() < 1e-12);
        assert!((c.lr(1e-3, 110) - 1e-4).abs() < 1e-12);
        let s = LrSchedule::Step {
            step_size: 5,
            gamma: 0.5,
        };
        assert_eq!(s.lr(1.0, 4), 1.0);
        assert_eq!(s.lr(1.0, 10), 0.25);
        let o = LrSchedule::OneCycle {
            total: 100,
            pct_start: 0.3,
        };
        assert!((o.lr(1.0, 0) - 0.04).abs() < 1e-12);
        assert!(o.lr(1.0, 29) > 0.99);
        assert!(o.lr(1.0, 99) < 1e-5);
    }
}
