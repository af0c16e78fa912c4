//! A per-thread bound on what new tensors may allocate, for building models from metadata that
//! has not yet been checked against real weights (a checkpoint's config, a `config.json`).
//!
//! Metadata is a promise; the weights file is a fact. Building the model inside
//! [`with_alloc_limit`], bounded by the weights' size, turns a lying width or layer count into
//! an error before anything of that size is allocated — and then loading the weights compares
//! every shape.

use crate::bail;
use crate::error::Result;
use std::cell::Cell;

thread_local! {
    /// Bytes that new tensors on this thread may still take; `None` = unbounded.
    static LEFT: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` with new constant and random tensors (`zeros`, `ones`, `full`, `arange`, `rand`,
/// `uniform`, `randn`, … — what layer constructors allocate) limited to `max_bytes` in all, on
/// this thread. Past the limit those constructors return an error naming the op and the shape.
/// Limits nest: an inner one never raises an outer one.
///
/// ```
/// use fukai::{tensor::with_alloc_limit, DType, Tensor};
/// // A 1000x1000 f32 layer needs 4 MB: refused under a 1 MB limit, fine under 8 MB.
/// assert!(with_alloc_limit(1 << 20, || Tensor::zeros(&[1000, 1000], DType::F32)).is_err());
/// assert!(with_alloc_limit(8 << 20, || Tensor::zeros(&[1000, 1000], DType::F32)).is_ok());
/// ```
pub fn with_alloc_limit<R>(max_bytes: u64, f: impl FnOnce() -> Result<R>) -> Result<R> {
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            LEFT.with(|l| l.set(self.0));
        }
    }
    let outer = LEFT.with(|l| l.get());
    let _restore = Restore(outer);
    LEFT.with(|l| l.set(Some(outer.map_or(max_bytes, |o| o.min(max_bytes)))));
    f()
}

/// Charges `bytes` for a new tensor of `shape` made by `op`, or errors when that would pass the
/// active limit.
pub(crate) fn charge(op: &'static str, shape: &[usize], bytes: usize) -> Result<()> {
    LEFT.with(|l| {
        let Some(left) = l.get() else {
            return Ok(());
        };
        match left.checked_sub(bytes as u64) {
            Some(rest) => {
                l.set(Some(rest));
                Ok(())
            }
            None => bail!(
                op,
                "shape {shape:?} needs {bytes} bytes, more than the {left} left of the \
                 allocation limit (is the model described larger than its weights?)"
            ),
        }
    })
}
