//! Thread-local switch for graph recording (PyTorch's `torch.no_grad()`).

use std::cell::Cell;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// True when ops on this thread record the graph.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous grad mode when dropped.
#[must_use = "grad recording resumes as soon as the guard is dropped"]
pub struct NoGradGuard {
    prev: bool,
}

/// Disables graph recording on this thread until the returned guard drops.
///
/// ```
/// use fukai::{DType, Tensor};
/// let w = Tensor::ones(&[2], DType::F32)?.with_grad()?;
/// {
///     let _guard = fukai::no_grad(); // as `with torch.no_grad():`
///     assert!(!fukai::is_grad_enabled());
///     let y = w.mul_scalar(2.0)?;
///     assert!(!y.requires_grad()); // nothing recorded: inference without graph memory
/// }
/// assert!(fukai::is_grad_enabled());
/// assert!(w.mul_scalar(2.0)?.requires_grad());
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn no_grad() -> NoGradGuard {
    let prev = GRAD_ENABLED.with(|g| g.replace(false));
    NoGradGuard { prev }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        let prev = self.prev;
        GRAD_ENABLED.with(|g| g.set(prev));
    }
}
