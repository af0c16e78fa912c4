//! Inverted dropout. The keep mask comes from the counter-based generator: element `i` reads
//! lane `i % 4` of block `start + i / 4`, so the mask is the same at any thread count.

use super::float::{check_float_on, with_contig, wrap, Float};
use super::unary::map2;
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::parallel::build_uninit;
use crate::rng::{with_default_generator, Generator};
use crate::tensor::Tensor;

/// Mask elements per parallel task; a multiple of 4 so tasks start on a block boundary.
const CHUNK: usize = 1 << 14;

fn check(t: &Tensor, p: f64) -> Result<()> {
    check_float_on("dropout", t)?;
    if !(0.0..1.0).contains(&p) {
        bail!("dropout", "p must be in [0, 1), found {p}");
    }
    Ok(())
}

/// `n` mask values: `scale` where the draw is kept (probability 1 - p), 0 where dropped.
/// A draw `b` is kept when `b / 2^32 >= p`, i.e. when `b >= ceil(p · 2^32)` (exact: the
/// product is a power-of-two scaling).
fn mask<T: Float>(n: usize, p: f64, scale: T, gen: &Generator, start: u64) -> Vec<T> {
    let threshold = (p * 4_294_967_296.0).ceil() as u64;
    // SAFETY: each group of at most 4·256 elements is zipped with its 1024 draws, so every
    // element is written.
    unsafe {
        build_uninit(n, CHUNK, |ci, chunk| {
            let mut blocks = [[0u32; 4]; 256];
            let first_block = start + (ci * CHUNK / 4) as u64;
            for (gi, group) in chunk.chunks_mut(4 * blocks.len()).enumerate() {
                let used = group.len().div_ceil(4);
                gen.fill_blocks(
                    first_block + (gi * blocks.len()) as u64,
                    &mut blocks[..used],
                );
                // One flat select over the group's draws, so it vectorizes.
                crate::simd::run(
                    #[inline(always)]
                    || {
                        for (v, &b) in group.iter_mut().zip(blocks.as_flattened()) {
                            v.write(if b as u64 >= threshold {
                                scale
                            } else {
                                T::ZERO
                            });
                        }
                    },
                );
            }
        })
    }
}

impl Tensor {
    /// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)`, drawing
    /// from the default generator; the identity when `!train` or `p == 0`.
    pub fn dropout(&self, p: f64, train: bool) -> Result<Tensor> {
        check(self, p)?;
        if !train || p == 0.0 {
            return Ok(self.clone());
        }
        with_default_generator(|g| self.dropout_with(p, g))
    }

    /// Training-mode dropout drawing from `gen` (which advances by one block per 4 elements).
    pub fn dropout_with(&self, p: f64, gen: &mut Generator) -> Result<Tensor> {
        check(self, p)?;
        if p == 0.0 {
            return Ok(self.clone());
        }
        let n = self.numel();
        let start = gen.reserve(n.div_ceil(4) as u64);
        let gen = &*gen;
        let dtype = self.dtype();
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if crate::tensor::on_gpu(&[self]) {
            let scale = 1.0 / (1.0 - p);
            let kernel = crate::backend::gpu::random::dropout;
            let ((s, l), keep) = kernel(self, p, scale, gen.state().0, start)?;
            return Ok(Tensor::op_result("dropout", s, l, &[self], move || {
                Box::new(move |g, _| Ok(vec![Some(g.mul(&keep)?)]))
            }));
        }
        let (keep, out) = float_dispatch!(dtype, T => {
            let m = mask::<T>(n, p, T::c(1.0 / (1.0 - p)), gen, start);
            let out = with_contig::<T, _>(self, |x| map2(x, &m, |a, b| a * b));
            let (ms, ml) = wrap(m, self.shape());
            (Tensor::from_parts(ms, ml), wrap(out, self.shape()))
        });
        Ok(Tensor::op_result(
            "dropout",
            out.0,
            out.1,
            &[self],
            move || Box::new(move |g, _| Ok(vec![Some(g.mul(&keep)?)])),
        ))
    }
}
