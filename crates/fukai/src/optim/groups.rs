//! Parameter groups: several optimizers (e.g. weight decay on matrices, none on biases and
//! norms, as GPT training does) stepped, scheduled and checkpointed as one.

use super::Optimizer;
use crate::bail;
use crate::error::Result;
use crate::tensor::Tensor;

/// Optimizers over disjoint parameter sets acting as one. State tensors are saved as
/// `"{group}.{name}"`.
///
/// ```
/// use fukai::optim::{Adam, Groups, Optimizer};
/// use fukai::{DType, Tensor};
/// let w = Tensor::ones(&[2, 2], DType::F32)?.with_grad()?;
/// let b = Tensor::zeros(&[2], DType::F32)?.with_grad()?;
/// let mut opt = Groups::new(vec![
///     Box::new(Adam::adamw(vec![w.clone()], 1e-2).weight_decay(0.1)),
///     Box::new(Adam::adamw(vec![b.clone()], 1e-2).weight_decay(0.0)),
/// ]);
/// opt.set_lr(5e-3);
/// assert_eq!((opt.params().len(), opt.lr()), (2, 5e-3));
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Groups {
    groups: Vec<Box<dyn Optimizer>>,
    params: Vec<Tensor>,
}

impl Groups {
    /// Groups `groups`, in order.
    pub fn new(groups: Vec<Box<dyn Optimizer>>) -> Self {
        let params = groups
            .iter()
            .flat_map(|g| g.params().iter().cloned())
            .collect();
        Groups { groups, params }
    }
}

impl Optimizer for Groups {
    fn step(&mut self) -> Result<()> {
        self.groups.iter_mut().try_for_each(|g| g.step())
    }
    fn params(&self) -> &[Tensor] {
        &self.params
    }
    fn lr(&self) -> f64 {
        self.groups.first().map_or(0.0, |g| g.lr())
    }
    fn set_lr(&mut self, lr: f64) {
        self.groups.iter_mut().for_each(|g| g.set_lr(lr));
    }
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (i, g) in self.groups.iter().enumerate() {
            out.extend(g.state()?.into_iter().map(|(n, t)| (format!("{i}.{n}"), t)));
        }
        Ok(out)
    }
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        if let Some((n, _)) = state.iter().find(|(n, _)| {
            n.split_once('.')
                .and_then(|(g, _)| g.parse::<usize>().ok())
                .is_none_or(|g| g >= self.groups.len())
        }) {
            bail!(
                "Groups",
                "optimizer state {n:?} belongs to no group (there are {})",
                self.groups.len()
            );
        }
        for (i, g) in self.groups.iter_mut().enumerate() {
            let prefix = format!("{i}.");
            let mine: Vec<(String, Tensor)> = state
                .iter()
                .filter_map(|(n, t)| n.strip_prefix(&prefix).map(|s| (s.to_string(), t.clone())))
                .collect();
            g.load_state(&mine)?;
        }
        Ok(())
    }
}
