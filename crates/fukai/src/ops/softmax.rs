//! Fused softmax and log-softmax along a dim, forward and backward: one pass per row instead of
//! the max / sub / exp / sum / div chain.

use super::float::{check_float_on, with_contig, wrap, Float};
use crate::error::Result;
use crate::float_dispatch;
use crate::parallel::for_each_chunk_mut;
use crate::tensor::{normalize_dim, Tensor};

/// Runs `f(row_in..., row_out)` for each of the outer*inner rows of length `r` (stride `inner`).
fn rows<T: Float>(
    inputs: [&[T]; 2],
    outer: usize,
    r: usize,
    inner: usize,
    f: impl Fn(&dyn Fn(usize, usize) -> T, &dyn Fn(usize, usize) -> T, &mut dyn FnMut(usize, T))
        + Sync
        + Send,
) -> Vec<T> {
    let mut out = vec![T::ZERO; outer * r * inner];
    // One chunk per outer index: rows never straddle chunks.
    for_each_chunk_mut(&mut out, (r * inner).max(1), |o, chunk| {
        for j in 0..inner {
            let at = |k: usize| o * r * inner + k * inner + j;
            let a = |_: usize, k: usize| inputs[0][at(k)];
            let b = |_: usize, k: usize| inputs[1][at(k)];
            let mut put = |k: usize, v: T| chunk[k * inner + j] = v;
            f(&a, &b, &mut put);
        }
    });
    out
}

fn forward<T: Float>(x: &[T], outer: usize, r: usize, inner: usize, log: bool) -> Vec<T> {
    rows([x, x], outer, r, inner, |a, _, put| {
        let mut m = T::NEG_INF;
        for k in 0..r {
            m = m.max_nan(a(0, k));
        }
        if m == T::NEG_INF {
            m = T::ZERO;
        }
        let mut s = T::ZERO;
        for k in 0..r {
            s += (a(0, k) - m).exp();
        }
        if log {
            // (x - m) - ln s, not x - (m + ln s): for large logits m + ln s rounds to m's
            // precision (ulp(1e4) is 1e-3 in f32), losing ln s's digits; this is PyTorch's order.
            let ls = s.ln();
            for k in 0..r {
                put(k, (a(0, k) - m) - ls);
            }
        } else {
            let inv = T::ONE / s;
            for k in 0..r {
                put(k, (a(0, k) - m).exp() * inv);
            }
        }
    })
}

fn backward<T: Float>(y: &[T], g: &[T], outer: usize, r: usize, inner: usize, log: bool) -> Vec<T> {
    rows([y, g], outer, r, inner, |y, g, put| {
        if log {
            let mut s = T::ZERO;
            for k in 0..r {
                s += g(0, k);
            }
            for k in 0..r {
                put(k, g(0, k) - y(0, k).exp() * s);
            }
        } else {
            let mut s = T::ZERO;
            for k in 0..r {
                s += g(0, k) * y(0, k);
            }
            for k in 0..r {
                put(k, y(0, k) * (g(0, k) - s));
            }
        }
    })
}

impl Tensor {
    fn softmax_impl(&self, dim: isize, log: bool) -> Result<Tensor> {
        let name = if log { "log_softmax" } else { "softmax" };
        check_float_on(name, self)?;
        let d = normalize_dim(name, dim, self.rank())?;
        let shape = self.shape().to_vec();
        let (outer, r, inner) = if shape.is_empty() {
            (1, 1, 1)
        } else {
            (
                shape[..d].iter().product(),
                shape[d],
                shape[d + 1..].iter().product(),
            )
        };
        let (storage, layout) = if crate::tensor::on_gpu(&[self]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                crate::backend::gpu::softmax::softmax(self, (outer, r, inner), log)?
            }
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
            unreachable!()
        } else {
            float_dispatch!(self.dtype(), T => {
                let out = with_contig::<T, _>(self, |x| forward::<T>(x, outer, r, inner, log));
                wrap(out, &shape)
            })
        };
        let y = Tensor::from_parts(storage.clone(), layout.clone());
        Ok(Tensor::op_result(
            name,
            storage,
            layout,
            &[self],
            move || {
                Box::new(move |g, _| {
                    #[cfg(any(feature = "wgpu", feature = "cuda"))]
                    if crate::tensor::on_gpu(&[&y, g]) {
                        let gx = crate::backend::gpu::softmax::softmax_backward(
                            &y,
                            g,
                            (outer, r, inner),
                            log,
                        )?;
                        return Ok(vec![Some(gx)]);
                    }
                    let (s, l) = float_dispatch!(y.dtype(), T => {
                        let out = with_contig::<T, _>(&y, |yv| with_contig::<T, _>(g, |gv| backward::<T>(yv, gv, outer, r, inner, log)));
                        wrap(out, y.shape())
                    });
                    Ok(vec![Some(Tensor::from_parts(s, l))])
                })
            },
        ))
    }
    /// Softmax along `dim`.
    ///
    /// ```
    /// use fukai::Tensor;
    /// let logits = Tensor::from_vec(vec![0.0f32, 0.0, 1000.0, 1000.0], &[2, 2])?;
    /// // Numerically stable: huge logits do not overflow.
    /// assert_eq!(logits.softmax(-1)?.to_vec::<f32>()?, [0.5, 0.5, 0.5, 0.5]);
    /// let p = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3])?.softmax(0)?;
    /// assert!((p.sum_all()?.item()? - 1.0).abs() < 1e-6);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        self.softmax_impl(dim, false)
    }
    /// Log-softmax along `dim` (stable).
    ///
    /// ```
    /// use fukai::Tensor;
    /// let x = Tensor::from_vec(vec![0.0f32, 0.0], &[2])?;
    /// let v = x.log_softmax(0)?.to_vec::<f32>()?;
    /// assert!(v.iter().all(|&l| (l + 2f32.ln()).abs() < 1e-6));
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        self.softmax_impl(dim, true)
    }
}
