//! Fused affine map `x Wᵀ + b`: the bias is written into the output rows and the product
//! accumulated onto it, so no broadcast add and no second pass over the output. The product
//! runs on `linear_panels` (the weight laid out once for it) for a weight not being trained
//! or a few rows, else on gemm.

use super::float::{check_float_on, check_same_dtype, with_contig, wrap, Float};
use super::linear_panels::{self, Panels};
use super::matmul::{gemm_at, parallelism};
use crate::autograd::{autocast, is_grad_enabled, precision, Precision};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::tensor::{DType, Storage, Tensor};

/// From this many input rows on, a quantized weight is dequantized and multiplied by gemm.
const QUANT_GEMM_ROWS: usize = 16;

/// `x Wᵀ + b`. `frozen`: the weight is not being trained in this call; then its panels are
/// kept in `w_memory`, the storage `w` is whole (None where `w` is a copy made for the call).
fn forward<T: Float>(
    prec: Precision,
    x: &[T],
    (w, w_memory, frozen): (&[T], Option<&Storage>, bool),
    b: Option<&[T]>,
    (m, k, n): (usize, usize, usize),
) -> Vec<T> {
    let mut out = match b {
        Some(b) => {
            let mut v = Vec::with_capacity(m * n);
            for _ in 0..m {
                v.extend_from_slice(b);
            }
            v
        }
        None => vec![T::ZERO; m * n],
    };
    if T::DTYPE == DType::F32 && prec != Precision::Bf16 && linear_panels::takes(m, frozen) {
        // SAFETY: T is f32, so these are the same slices retyped.
        let (x, w, out) = unsafe {
            (
                std::slice::from_raw_parts(x.as_ptr().cast::<f32>(), x.len()),
                std::slice::from_raw_parts(w.as_ptr().cast::<f32>(), w.len()),
                std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len()),
            )
        };
        // The caller holds `w_memory`'s read lock, so `w` is what the panels are made from.
        let panels = Panels::of(w, n, k, w_memory.filter(|_| frozen));
        linear_panels::add_linear(x, &panels, out, m);
    } else if m > 0 && n > 0 && k > 0 {
        // SAFETY: x is [m, k], w is [n, k] (read as its transpose [k, n] through strides),
        // out is [m, n]; none alias.
        unsafe {
            gemm_at::<T>(
                prec,
                m,
                n,
                k,
                out.as_mut_ptr(),
                n as isize,
                x.as_ptr(),
                (k as isize, 1),
                w.as_ptr(),
                (1, k as isize),
                true,
                parallelism(m, n, k),
            )
        };
    }
    out
}

impl Tensor {
    /// `self Wᵀ + b` over the last dim (PyTorch's `F.linear`): `self` is `[.., in]`, `weight`
    /// `[out, in]`, `bias` `[out]`. One fused kernel; differentiable in all three.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        check_float_on("linear", self)?;
        check_same_dtype("linear", self, weight)?;
        let k = self.shape().last().copied().unwrap_or(0);
        if self.rank() == 0 || weight.rank() != 2 || weight.shape()[1] != k {
            bail!(
                "linear",
                "input {:?} and weight {:?}: expected [.., in] and [out, in]",
                self.shape(),
                weight.shape()
            );
        }
        let n = weight.shape()[0];
        let prec = precision();
        if let Some(b) = bias {
            check_same_dtype("linear", self, b)?;
            if b.shape() != [n] {
                bail!("linear", "bias must be [{n}], found {:?}", b.shape());
            }
        }
        // The rows are the leading dims' product, not numel / k: with k = 0 there are still
        // rows, each just the bias.
        let m: usize = self.shape()[..self.rank() - 1].iter().product();
        let mut shape = self.shape().to_vec();
        *shape.last_mut().expect("rank >= 1") = n;
        let (x, w, b) = (
            self.detach().contiguous()?,
            weight.detach().contiguous()?,
            bias.map(|b| b.detach()),
        );
        // A quantized weight (tensor/quantized.rs) is multiplied on its blocks, with the input
        // quantized to 8 bits per block as llama.cpp does; the backward reads its f32 values.
        let quantized = weight
            .qmatrix()
            .filter(|_| self.dtype() == DType::F32 && self.device() == crate::Device::Cpu);
        let (storage, layout) = if let Some(q) = quantized {
            let (xv, bv) = (
                x.to_vec::<f32>()?,
                b.as_ref().map(|b| b.to_vec()).transpose()?,
            );
            // Many rows (a prompt's prefill) amortize dequantizing the weight for gemm; a few
            // (decoding) read each block once, in the integer kernels.
            let y = if m >= QUANT_GEMM_ROWS {
                forward::<f32>(
                    prec,
                    &xv,
                    (&q.to_f32(), None, false),
                    bv.as_deref(),
                    (m, k, n),
                )
            } else {
                let mut y = q.matmul(&xv, m)?;
                if let Some(bv) = &bv {
                    for row in y.chunks_exact_mut(n.max(1)) {
                        row.iter_mut().zip(bv).for_each(|(y, b)| *y += b);
                    }
                }
                y
            };
            wrap(y, &shape)
        } else if crate::tensor::on_gpu(&[self, weight]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                // x [m, k] row-major; Wᵀ read through strides, never copied.
                let la = crate::tensor::Layout::new(vec![m, k], vec![k, 1], x.layout().offset());
                let lb = crate::tensor::Layout::new(vec![k, n], vec![1, k], w.layout().offset());
                let s = crate::backend::gpu::matmul::matmul(
                    &x,
                    &la,
                    &w,
                    &lb,
                    &[],
                    (m, k, n),
                    b.as_ref(),
                )?;
                (s, crate::tensor::Layout::contiguous(&shape))
            }
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
            unreachable!()
        } else {
            // A weight that is its storage's whole memory can keep its panels there.
            let lw = w.layout();
            let whole = lw.is_contiguous() && lw.offset() == 0 && w.storage().len() == n * k;
            let w_memory = whole.then(|| w.storage().as_ref());
            let frozen = !(is_grad_enabled() && weight.requires_grad());
            float_dispatch!(self.dtype(), T => {
                let bv = b.as_ref().map(|b| b.to_vec::<T>()).transpose()?;
                let out = with_contig::<T, _>(&x, |xv| with_contig::<T, _>(&w, |wv| forward::<T>(prec, xv, (wv, w_memory, frozen), bv.as_deref(), (m, k, n))));
                wrap(out, &shape)
            })
        };
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        let in_shape = self.shape().to_vec();
        Ok(Tensor::op_result(
            "linear",
            storage,
            layout,
            &inputs,
            move || {
                Box::new(move |g, needs| {
                    // The backward products run at the forward's precision.
                    let _precision = autocast(prec);
                    let g2 = g.reshape(&[m, n])?;
                    let gx = if needs[0] {
                        Some(g2.matmul(&w)?.reshape(&in_shape)?)
                    } else {
                        None
                    };
                    let gw = if needs[1] {
                        Some(g2.t()?.matmul(&x.reshape(&[m, k])?)?)
                    } else {
                        None
                    };
                    let mut out = vec![gx, gw];
                    if needs.len() > 2 {
                        out.push(if needs[2] {
                            Some(g2.sum(&[0], false)?)
                        } else {
                            None
                        });
                    }
                    Ok(out)
                })
            },
        ))
    }
}
