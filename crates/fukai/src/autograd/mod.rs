//! Define-by-run reverse-mode autodiff. Each op that sees an input requiring grad records a
//! [`Node`]: its inputs and a closure mapping the output gradient to input gradients. `backward`
//! walks the recorded graph once in reverse topological order and frees each node as it goes, so
//! memory returns to where it was before the forward pass.

mod autocast;
mod grad_mode;

pub use autocast::{autocast, precision, AutocastGuard, Precision};
pub use grad_mode::{is_grad_enabled, no_grad, NoGradGuard};

use crate::error::{Error, Result};
use crate::tensor::{Layout, Storage, Tensor, TensorId};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Maps the output gradient (and which inputs need one) to one optional gradient per input.
pub type BackwardFn = Box<dyn Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

/// One recorded operation.
pub struct Node {
    pub(crate) name: &'static str,
    pub(crate) inputs: Vec<Tensor>,
    pub(crate) backward: BackwardFn,
}

impl Tensor {
    /// Whether an op over `inputs` records a backward ([`Tensor::op_result`]'s test): grad mode
    /// is on and an input requires grad. Ops that keep extra state for their backward ask it
    /// first, so inference pays for none.
    pub(crate) fn records_backward(inputs: &[&Tensor]) -> bool {
        is_grad_enabled() && inputs.iter().any(|t| t.requires_grad())
    }

    /// Wraps an op's output; records `make_backward()` when grad mode is on and an input requires
    /// grad. The closure is built lazily so inference pays nothing for saved tensors.
    pub(crate) fn op_result(
        name: &'static str,
        storage: Arc<Storage>,
        layout: Layout,
        inputs: &[&Tensor],
        make_backward: impl FnOnce() -> BackwardFn,
    ) -> Tensor {
        let node = Tensor::records_backward(inputs).then(|| Node {
            name,
            inputs: inputs.iter().map(|t| (*t).clone()).collect(),
            backward: make_backward(),
        });
        Tensor::from_op(storage, layout, node)
    }

    /// Backpropagates from a single-element tensor (the loss): gradients accumulate into the
    /// `grad()` of every leaf that requires grad.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2])?;
    /// let w = Tensor::from_vec(vec![3.0f32, 4.0], &[2, 1])?.with_grad()?;
    /// let loss = x.matmul(&w)?.relu()?.sum_all()?; // 1·3 + 2·4 = 11
    /// assert_eq!(loss.item()?, 11.0);
    /// loss.backward()?;
    /// assert_eq!(w.grad().unwrap().to_vec::<f32>()?, [1.0, 2.0]);
    /// // backward needs a single-element output (or an explicit gradient, see backward_with).
    /// assert!(x.matmul(&w)?.t()?.matmul(&x)?.backward().is_err());
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::Autograd(format!(
                "backward() needs a single-element output, found shape {:?}; pass a gradient with backward_with",
                self.shape()
            )));
        }
        let one = Tensor::ones_on(self.shape(), self.dtype(), self.device())?;
        self.backward_with(&one)
    }

    /// Backpropagates with an explicit upstream gradient of this tensor's shape.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2])?.with_grad()?;
    /// let y = x.mul_scalar(3.0)?;
    /// y.backward_with(&Tensor::from_vec(vec![1.0f32, 10.0], &[2])?)?;
    /// assert_eq!(x.grad().unwrap().to_vec::<f32>()?, [3.0, 30.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        if grad.shape() != self.shape() || grad.dtype() != self.dtype() {
            return Err(Error::Autograd(format!(
                "backward_with: gradient {:?} {} does not match output {:?} {}",
                grad.shape(),
                grad.dtype(),
                self.shape(),
                self.dtype()
            )));
        }
        if !self.requires_grad() {
            return Err(Error::Autograd(
                "backward: the output does not require grad (no input was marked with_grad, or it was computed under no_grad)".into(),
            ));
        }
        let _guard = no_grad();
        let order = topo_order(self);
        let mut grads: HashMap<TensorId, Tensor, IdHash> = HashMap::default();
        grads.insert(self.id(), grad.detach());
        for t in order {
            let Some(g) = grads.remove(&t.id()) else {
                continue;
            };
            if t.is_leaf() {
                let acc = match t.grad() {
                    Some(old) => old.add(&g)?,
                    None => g,
                };
                t.set_grad(Some(acc));
                continue;
            }
            let node = t.0.node.lock().take().ok_or_else(|| {
                Error::Autograd("backward through a graph that was already freed (backward called twice on the same graph?)".into())
            })?;
            let needs: Vec<bool> = node.inputs.iter().map(|i| i.requires_grad()).collect();
            let input_grads = (node.backward)(&g, &needs)?;
            for ((input, gi), need) in node.inputs.iter().zip(input_grads).zip(needs) {
                let (Some(gi), true) = (gi, need) else {
                    continue;
                };
                if gi.shape() != input.shape() {
                    return Err(Error::Autograd(format!(
                        "{}: backward produced a gradient of shape {:?} for an input of shape {:?}",
                        node.name,
                        gi.shape(),
                        input.shape()
                    )));
                }
                let acc = match grads.remove(&input.id()) {
                    Some(old) => old.add(&gi)?,
                    None => gi,
                };
                grads.insert(input.id(), acc);
            }
        }
        Ok(())
    }
}

/// Tensor ids are distinct counters, so one multiply spreads them well; SipHash's flooding
/// resistance buys nothing here and cost about 5% of a small MLP's training step.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 ^ b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type IdHash = BuildHasherDefault<IdHasher>;

/// Tensors reachable from `root` through recorded nodes, each after all of its consumers.
fn topo_order(root: &Tensor) -> Vec<Tensor> {
    let mut post = Vec::new();
    let mut seen: HashSet<TensorId, IdHash> = HashSet::default();
    // Iterative DFS: long unrolled RNN graphs would overflow a recursive one.
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            post.push(t);
            continue;
        }
        if !seen.insert(t.id()) {
            continue;
        }
        let inputs: Vec<Tensor> = match &*t.0.node.lock() {
            Some(node) => node
                .inputs
                .iter()
                .filter(|i| i.requires_grad())
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        stack.push((t, true));
        for i in inputs {
            if !seen.contains(&i.id()) {
                stack.push((i, false));
            }
        }
    }
    post.reverse();
    post
}
