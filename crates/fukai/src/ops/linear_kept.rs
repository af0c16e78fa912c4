//! The layouts a weight not being trained keeps beside its memory ([`Storage::derived`]), each
//! made the first time a product asks for it: `linear_panels`' panels for a few rows, and the
//! transpose `[in, out]` for gemm with more. Read as `[out, in]` through transposed strides,
//! the weight is the operand gemm lays out again on every call, a gather across rows (its
//! `pack_lhs` was 5% of MiniLM's `perf` samples on 8 × 128 tokens at one thread and 9% at two,
//! an AMD EPYC); from `[in, out]` the same packing copies whole runs of columns. The sums are
//! the same either way (gemm's blocking depends on the sizes, not the strides), so a frozen
//! weight gives the bits a trained one does.

use super::linear_panels::Panels;
use crate::tensor::Storage;
use parking_lot::Mutex;
use std::sync::Arc;

/// A frozen `[n, k]` f32 weight's layouts.
pub(crate) struct Kept {
    n: usize,
    k: usize,
    panels: Mutex<Option<Arc<Panels>>>,
    transposed: Mutex<Option<Arc<Vec<f32>>>>,
}

impl Kept {
    /// The layouts kept for a `[n, k]` weight in `memory`: the storage the weight is, whole,
    /// read-locked by the caller (so the weight they are made from is that memory).
    pub(crate) fn of(n: usize, k: usize, memory: &Storage) -> Arc<Kept> {
        memory.derived(
            |d: &Kept| (d.n, d.k) == (n, k),
            || Kept {
                n,
                k,
                panels: Mutex::new(None),
                transposed: Mutex::new(None),
            },
        )
    }

    /// `w`'s panels (`w` being the memory these layouts belong to).
    pub(crate) fn panels(&self, w: &[f32]) -> Arc<Panels> {
        lazily(&self.panels, || Panels::pack(w, self.n, self.k))
    }

    /// `w` transposed, `[k, n]` row-major (`w` being the memory these layouts belong to).
    pub(crate) fn transposed(&self, w: &[f32]) -> Arc<Vec<f32>> {
        lazily(&self.transposed, || {
            let mut t = vec![0f32; w.len()];
            super::transpose::transpose((self.n, self.k), w, self.k, &mut t, self.n);
            t
        })
    }
}

/// The copy in `slot`, made by `make` if there is none yet. The lock is not held while `make`
/// runs, for the reason [`Storage::derived`] gives (it may go parallel); two callers may both
/// make it, and either copy is of the same memory.
fn lazily<T>(slot: &Mutex<Option<Arc<T>>>, make: impl FnOnce() -> T) -> Arc<T> {
    if let Some(kept) = slot.lock().clone() {
        return kept;
    }
    let made = Arc::new(make());
    *slot.lock() = Some(made.clone());
    made
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    fn ramp(len: usize, s: f32) -> Vec<f32> {
        (0..len).map(|i| ((i * 7 % 23) as f32 - 11.0) * s).collect()
    }

    /// The product through a weight in fresh memory that is being trained: read in place.
    fn trained(x: &Tensor, w: &Tensor) -> crate::Result<Vec<f32>> {
        let copy = Tensor::from_vec(w.to_vec::<f32>()?, w.shape())?;
        copy.set_requires_grad(true)?;
        x.linear(&copy, None)?.to_vec()
    }

    #[test]
    fn a_frozen_weight_gives_the_bits_of_a_trained_one_and_follows_its_memory() -> crate::Result<()>
    {
        // Past the panels' rows (gemm on the kept transpose), then a few rows (the panels),
        // both kept beside the same memory; then the memory is written.
        let (k, n) = (40, 24);
        let w = Tensor::from_vec(ramp(n * k, 0.03), &[n, k])?;
        let many = Tensor::from_vec(ramp(300 * k, 0.1), &[300, k])?;
        let few = Tensor::from_vec(ramp(5 * k, 0.2), &[5, k])?;
        let first = many.linear(&w, None)?.to_vec::<f32>()?;
        // Where the panels take 300 rows too (AVX2 without AVX-512), a frozen weight runs
        // another kernel than a trained one, and the two agree to rounding only.
        let gemm = !super::super::linear_panels::takes(300);
        let bits = |v: &[f32]| {
            v.iter()
                .map(|x| {
                    if gemm {
                        x.to_bits()
                    } else {
                        (x * 1e3).round().to_bits()
                    }
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&first), bits(&trained(&many, &w)?));
        let few_first = few.linear(&w, None)?.to_vec::<f32>()?;
        assert_eq!(many.linear(&w, None)?.to_vec::<f32>()?, first);
        assert!(w.storage().keeps_derived());
        w.copy_from(&Tensor::from_vec(ramp(n * k, -0.05), &[n, k])?)?;
        let after = many.linear(&w, None)?.to_vec::<f32>()?;
        assert_ne!(after, first, "the product still read the old transpose");
        assert_eq!(bits(&after), bits(&trained(&many, &w)?));
        assert_ne!(few.linear(&w, None)?.to_vec::<f32>()?, few_first);
        // The same memory read as a [k, n] weight keeps layouts of that shape instead.
        let other = w.reshape(&[k, n])?;
        let x2 = Tensor::from_vec(ramp(300 * n, 0.2), &[300, n])?;
        assert_eq!(
            bits(&x2.linear(&other, None)?.to_vec()?),
            bits(&trained(&x2, &other)?)
        );
        assert_eq!(many.linear(&w, None)?.to_vec::<f32>()?, after);
        Ok(())
    }
}
