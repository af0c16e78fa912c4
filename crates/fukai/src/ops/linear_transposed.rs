//! A weight not being trained keeps its transpose `[in, out]` beside its memory
//! ([`Storage::derived`], next to `linear_panels`' panels) for products gemm does (more rows
//! than the panels take). Read as `[out, in]` through transposed strides, the weight is the
//! operand gemm lays out again on every call, a gather across rows (its `pack_lhs` was 5% of
//! MiniLM's `perf` samples on 8 × 128 tokens at one thread and 9% at two, an AMD EPYC); from
//! `[in, out]` the same packing copies whole runs of columns. The sums are the same either way
//! (gemm's blocking depends on the sizes, not the strides), so a frozen weight gives the bits
//! a trained one does.

use crate::tensor::Storage;
use std::sync::Arc;

/// A `[n, k]` f32 weight transposed: `[k, n]`, row-major.
pub(crate) struct Transposed {
    n: usize,
    k: usize,
    pub(crate) data: Vec<f32>,
}

impl Transposed {
    /// The transpose of `w` (`[n, k]`), kept in `memory`: the storage `w` is, whole,
    /// read-locked by the caller (so `w` is what it is made from).
    pub(crate) fn kept(w: &[f32], n: usize, k: usize, memory: &Storage) -> Arc<Transposed> {
        memory.derived(
            |t: &Transposed| (t.n, t.k) == (n, k),
            || {
                let mut data = vec![0f32; w.len()];
                super::transpose::transpose((n, k), w, k, &mut data, n);
                Transposed { n, k, data }
            },
        )
    }
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
        // One row is gemm's matrix-vector product on the weight in place: nothing is kept.
        let single = Tensor::from_vec(ramp(n * k, 0.03), &[n, k])?;
        Tensor::from_vec(ramp(k, 0.1), &[1, k])?.linear(&single, None)?;
        assert!(!single.storage().keeps_derived());
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
