//! Fused affine map `x Wᵀ + b`, with no broadcast add and no second pass over the output. The
//! product runs on `linear_panels` where the weight's layout for it can be kept (a weight not
//! being trained), which adds the bias as it stores each sum; else the bias is written into
//! the output rows and the product accumulated onto it, by `linear_rows` (the weight read in
//! place) for a few rows, else by gemm.

use super::float::{check_float_on, check_same_dtype, with_contig, wrap, Float};
use super::linear_panels::{self, Panels};
use super::linear_rows;
use super::linear_transposed::Transposed;
use super::matmul::{gemm_at, parallelism};
use crate::autograd::{autocast, precision, Precision};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::tensor::{DType, Storage, Tensor};

/// From this many input rows on, a quantized weight is dequantized and multiplied by gemm.
const QUANT_GEMM_ROWS: usize = 16;

/// `m` copies of the bias `b`, one per output row, for the sums to start from: built in pieces
/// of whole rows on the pool (copied on the calling thread, they were a serial pass over
/// every output: 1.8% of the samples `perf` took of MiniLM on 8 x 128 tokens at one thread).
/// Each row is one slice copy: zipped with `b.iter().cycle()`, the copy ran one element at a
/// time (5.9% of the samples on the same run).
fn bias_rows<T: Float>(b: &[T], m: usize) -> Vec<T> {
    let len = m * b.len();
    let rows = (crate::parallel::elementwise_piece(len) / b.len().max(1)).max(1);
    let fill = |_, piece: &mut [std::mem::MaybeUninit<T>]| {
        for row in piece.chunks_exact_mut(b.len().max(1)) {
            for (d, &v) in row.iter_mut().zip(b) {
                d.write(v);
            }
        }
    };
    // SAFETY: `fill` writes every element of each piece.
    unsafe { crate::parallel::build_uninit(len, rows * b.len(), fill) }
}

/// `x Wᵀ + b`. `keep`: the storage that is `w`, whole, where the weight is not being trained
/// in this call, so its panels can be kept there (read-locked by the caller).
fn forward<T: Float>(
    prec: Precision,
    x: &[T],
    (w, keep): (&[T], Option<&Storage>),
    b: Option<&[T]>,
    (m, k, n): (usize, usize, usize),
) -> Vec<T> {
    let f32_kernels = T::DTYPE == DType::F32 && prec != Precision::Bf16;
    // SAFETY (each use): T is f32 there, so these are the same slices retyped.
    let f32s = |v: &[T]| unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len()) };
    if let Some(memory) = keep.filter(|_| f32_kernels && linear_panels::takes(m)) {
        let mut out = Vec::<T>::with_capacity(m * n);
        let spare = out.spare_capacity_mut();
        // SAFETY: as for `f32s` (uninitialized f32 slots).
        let spare = unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast(), m * n) };
        let panels = Panels::kept(f32s(w), n, k, memory);
        linear_panels::linear_into(f32s(x), &panels, b.map(f32s), spare, m);
        // SAFETY: `linear_into` wrote all m·n outputs.
        unsafe { out.set_len(m * n) };
        return out;
    }
    let mut out = match b {
        Some(b) => bias_rows(b, m),
        None => vec![T::ZERO; m * n],
    };
    if f32_kernels && linear_rows::takes(m) {
        // SAFETY: as for `f32s`.
        let out =
            unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len()) };
        linear_rows::add_linear_rows(f32s(x), f32s(w), out, (m, k, n));
    } else if m > 0 && n > 0 && k > 0 {
        // A frozen weight hands gemm its kept transpose `[k, n]` (`linear_transposed`); a
        // trained one, and one row (gemm's matrix-vector path, which reads the weight once),
        // read it as `[n, k]` through transposed strides.
        let transposed = keep
            .filter(|_| f32_kernels && m > 1)
            .map(|memory| Transposed::kept(f32s(w), n, k, memory));
        let (rhs, strides) = match &transposed {
            Some(t) => (t.data.as_ptr().cast::<T>(), (n as isize, 1)),
            None => (w.as_ptr(), (1, k as isize)),
        };
        // SAFETY: x is [m, k], the weight [k, n] at `strides` (either layout holds n·k values),
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
                rhs,
                strides,
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
                // The dequantized weight is frozen and whole for the call, so the product has
                // the bits a dense f32 weight of the same values gives.
                let dense = Tensor::from_vec(q.to_f32(), &[n, k])?;
                let memory = dense.storage().as_ref();
                with_contig::<f32, _>(&dense, |wv| {
                    forward::<f32>(prec, &xv, (wv, Some(memory)), bv.as_deref(), (m, k, n))
                })
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
            // A weight not being trained that is its storage's whole memory keeps its layouts
            // for the products there (`linear_panels`, `linear_transposed`).
            let lw = w.layout();
            let whole = lw.is_contiguous() && lw.offset() == 0 && w.storage().len() == n * k;
            let frozen = !Tensor::records_backward(&[weight]);
            let keep = (whole && frozen).then(|| w.storage().as_ref());
            float_dispatch!(self.dtype(), T => {
                let bv = b.as_ref().map(|b| b.to_vec::<T>()).transpose()?;
                let out = with_contig::<T, _>(&x, |xv| with_contig::<T, _>(&w, |wv| forward::<T>(prec, xv, (wv, keep), bv.as_deref(), (m, k, n))));
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
