//! Fused inference kernels for the encoder: each rewrites a freshly computed f32 activation in
//! place, in one pass over its rows, where the op-by-op version would take several passes and
//! allocations. They record no graph (encoders here run under `no_grad`); `tests` below check
//! each against the composite of ordinary ops.
//!
//! Rows are independent, so results do not depend on how rows are split across threads. Sums
//! run in 8 fixed lanes (the same order on every machine) so that the compiler can vectorize
//! them, and `exp`/`erfc` are the branch-free polynomials of `ops::fastmath` for the same reason.

use crate::bail;
use crate::error::Result;
use crate::ops::fastmath::{erfc_pos, exp};
use crate::parallel::for_each_chunk_mut;
use crate::tensor::{DType, Tensor};

/// Elements per parallel task (whole rows are kept together).
const TASK: usize = 1 << 14;

/// The feed-forward activations `transformers` names in `hidden_act`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// x·Φ(x), erf form (`gelu`).
    Gelu,
    /// GELU's tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// max(x, 0).
    Relu,
    /// x·sigmoid(x).
    Silu,
}

#[inline(always)]
fn activate(act: Act, x: f32) -> f32 {
    match act {
        Act::Gelu => {
            // Φ(x) from erfc(|x|/√2), as `Tensor::gelu`: accurate in the negative tail.
            let tail = 0.5 * erfc_pos(x.abs() * std::f32::consts::FRAC_1_SQRT_2);
            x * if x < 0.0 { tail } else { 1.0 - tail }
        }
        Act::GeluTanh => {
            // tanh(u) = 1 - 2 / (e^{2u} + 1), saturating cleanly at both ends.
            let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
            0.5 * x * (2.0 - 2.0 / (exp(2.0 * u) + 1.0))
        }
        Act::Relu => x.max(0.0),
        Act::Silu => x / (1.0 + exp(-x)),
    }
}

/// Sum in 8 fixed lanes, then the lanes in order.
#[inline(always)]
fn sum(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            lanes[i] += c[i];
        }
    }
    let mut s = 0.0;
    for l in lanes {
        s += l;
    }
    for &x in rest {
        s += x;
    }
    s
}

#[inline(always)]
fn max(v: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            lanes[i] = lanes[i].max(c[i]);
        }
    }
    lanes
        .into_iter()
        .chain(rest.iter().copied())
        .fold(f32::NEG_INFINITY, f32::max)
}

/// Checks that `t` is a contiguous f32 tensor whose last dim is `width`.
fn check(op: &'static str, t: &Tensor, width: usize) -> Result<()> {
    if t.dtype() != DType::F32
        || !t.is_contiguous()
        || t.rank() == 0
        || t.shape()[t.rank() - 1] != width
    {
        bail!(
            op,
            "expected a contiguous f32 tensor with last dim {width}, found {:?} {} ({})",
            t.shape(),
            t.dtype(),
            if t.is_contiguous() {
                "contiguous"
            } else {
                "strided"
            }
        );
    }
    Ok(())
}

fn task_rows(width: usize) -> usize {
    (TASK / width.max(1)).max(1) * width.max(1)
}

/// `x ← act(x + bias)` over the rows of `x` (`[.., n]`, `bias` `[n]`).
pub fn bias_act_(x: &Tensor, bias: &Tensor, act: Option<Act>) -> Result<()> {
    let n = bias.numel();
    check("bias_act_", x, n)?;
    let b = bias.to_vec::<f32>()?;
    x.update_f32(|v| {
        for_each_chunk_mut(v, task_rows(n), |_, chunk| {
            crate::simd::run(
                #[inline(always)]
                || {
                    for row in chunk.chunks_exact_mut(n) {
                        match act {
                            None => row.iter_mut().zip(&b).for_each(|(x, b)| *x += b),
                            Some(a) => row
                                .iter_mut()
                                .zip(&b)
                                .for_each(|(x, b)| *x = activate(a, *x + b)),
                        }
                    }
                },
            )
        })
    })
}

/// Attention scores `[B, heads, T, T]` → probabilities in place: softmax over the last dim,
/// with key positions where `mask` `[B, T]` is 0 left out (their probability is exactly 0;
/// a row with no key at all becomes uniform, as an additive −∞ mask gives in PyTorch… up to
/// the NaN it would give there).
pub fn masked_softmax_(scores: &Tensor, mask: &[f32], batch: usize) -> Result<()> {
    if scores.rank() != 4 || scores.shape()[0] != batch {
        bail!(
            "masked_softmax_",
            "scores must be [batch {batch}, heads, T, T], found {:?}",
            scores.shape()
        );
    }
    let t = scores.shape()[3];
    check("masked_softmax_", scores, t)?;
    if mask.len() != batch * t {
        bail!(
            "masked_softmax_",
            "mask has {} values, expected {batch}×{t}",
            mask.len()
        );
    }
    let per_batch = scores.numel() / batch.max(1);
    scores.update_f32(|v| {
        for_each_chunk_mut(v, task_rows(t), |ci, chunk| {
            let first = ci * task_rows(t);
            crate::simd::run(
                #[inline(always)]
                || {
                    for (ri, row) in chunk.chunks_exact_mut(t).enumerate() {
                        let b = (first + ri * t) / per_batch;
                        let keep = &mask[b * t..(b + 1) * t];
                        for (x, &k) in row.iter_mut().zip(keep) {
                            if k == 0.0 {
                                *x = f32::NEG_INFINITY;
                            }
                        }
                        let mut m = max(row);
                        if m == f32::NEG_INFINITY {
                            m = 0.0;
                        }
                        row.iter_mut().for_each(|x| *x = exp(*x - m));
                        let s = sum(row);
                        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
                        row.iter_mut().for_each(|x| *x *= inv);
                    }
                },
            )
        })
    })
}

/// `y ← LayerNorm(y + bias + residual)` over rows of width `n`, with scale `w` and shift `b`.
pub fn residual_layer_norm_(
    y: &Tensor,
    bias: &Tensor,
    residual: &Tensor,
    (w, b): (&Tensor, &Tensor),
    eps: f64,
) -> Result<()> {
    let n = w.numel();
    check("residual_layer_norm_", y, n)?;
    if residual.shape() != y.shape() {
        bail!(
            "residual_layer_norm_",
            "residual {:?} differs from input {:?}",
            residual.shape(),
            y.shape()
        );
    }
    let (bias, w, b) = (
        bias.to_vec::<f32>()?,
        w.to_vec::<f32>()?,
        b.to_vec::<f32>()?,
    );
    let eps = eps as f32;
    residual.with_f32(|r| {
        y.update_f32(|v| {
            for_each_chunk_mut(v, task_rows(n), |ci, chunk| {
                let r = &r[ci * task_rows(n)..];
                crate::simd::run(
                    #[inline(always)]
                    || {
                        for (row, res) in chunk.chunks_exact_mut(n).zip(r.chunks_exact(n)) {
                            for ((x, r), b) in row.iter_mut().zip(res).zip(&bias) {
                                *x = *x + b + r;
                            }
                            let mean = sum(row) / n as f32;
                            row.iter_mut().for_each(|x| *x -= mean);
                            let mut sq = [0f32; 8];
                            let chunks = row.chunks_exact(8);
                            let rest = chunks.remainder();
                            for c in chunks {
                                for i in 0..8 {
                                    sq[i] += c[i] * c[i];
                                }
                            }
                            let mut var = 0.0;
                            for l in sq {
                                var += l;
                            }
                            for &x in rest {
                                var += x * x;
                            }
                            let inv = 1.0 / (var / n as f32 + eps).sqrt();
                            for ((x, w), b) in row.iter_mut().zip(&w).zip(&b) {
                                *x = *x * inv * w + b;
                            }
                        }
                    },
                )
            })
        })
    })??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() <= tol * 1f32.max(y.abs()),
                "{x} vs {y} (tolerance {tol})"
            );
        }
    }

    #[test]
    fn bias_act_equals_composite() {
        crate::manual_seed(1);
        let x = Tensor::randn(&[5, 3, 24], DType::F32)
            .unwrap()
            .mul_scalar(3.0)
            .unwrap();
        let b = Tensor::randn(&[24], DType::F32).unwrap();
        let xb = x.add(&b).unwrap();
        for (act, want) in [
            (None, xb.clone()),
            (Some(Act::Gelu), xb.gelu().unwrap()),
            (Some(Act::GeluTanh), xb.gelu_tanh().unwrap()),
            (Some(Act::Relu), xb.relu().unwrap()),
            (Some(Act::Silu), xb.silu().unwrap()),
        ] {
            let y = x.contiguous().unwrap().mul_scalar(1.0).unwrap();
            bias_act_(&y, &b, act).unwrap();
            close(&y, &want, 1e-6);
        }
    }

    #[test]
    fn masked_softmax_equals_composite() {
        crate::manual_seed(2);
        let (b, h, t) = (3, 2, 13);
        let s = Tensor::randn(&[b, h, t, t], DType::F32)
            .unwrap()
            .mul_scalar(4.0)
            .unwrap();
        let mut mask = vec![1f32; b * t];
        mask[t - 3..t].iter_mut().for_each(|m| *m = 0.0);
        mask[2 * t + 5..3 * t].iter_mut().for_each(|m| *m = 0.0);
        let bias: Vec<f32> = mask
            .iter()
            .map(|&m| if m == 0.0 { f32::MIN } else { 0.0 })
            .collect();
        let bias = Tensor::from_vec(bias, &[b, 1, 1, t]).unwrap();
        let want = s.add(&bias).unwrap().softmax(-1).unwrap();
        let got = s.mul_scalar(1.0).unwrap();
        masked_softmax_(&got, &mask, b).unwrap();
        close(&got, &want, 1e-6);
        // Masked keys get exactly zero.
        let v = got.to_vec::<f32>().unwrap();
        assert!(v[..t * t * h]
            .chunks(t)
            .all(|r| r[t - 3..].iter().all(|&p| p == 0.0)));
    }

    #[test]
    fn residual_layer_norm_equals_composite() {
        crate::manual_seed(3);
        let (n, d) = (37, 20);
        let y = Tensor::randn(&[n, d], DType::F32).unwrap();
        let r = Tensor::randn(&[n, d], DType::F32)
            .unwrap()
            .mul_scalar(2.0)
            .unwrap();
        let bias = Tensor::randn(&[d], DType::F32).unwrap();
        let w = Tensor::randn(&[d], DType::F32).unwrap();
        let b = Tensor::randn(&[d], DType::F32).unwrap();
        let x = y.add(&bias).unwrap().add(&r).unwrap();
        let mean = x.mean(&[-1], true).unwrap();
        let c = x.sub(&mean).unwrap();
        let var = c.square().unwrap().mean(&[-1], true).unwrap();
        let want = c
            .mul(&var.add_scalar(1e-12).unwrap().rsqrt().unwrap())
            .unwrap()
            .mul(&w)
            .unwrap()
            .add(&b)
            .unwrap();
        let got = y.mul_scalar(1.0).unwrap();
        residual_layer_norm_(&got, &bias, &r, (&w, &b), 1e-12).unwrap();
        close(&got, &want, 2e-6);
    }

    #[test]
    fn kernels_reject_strided_inputs() {
        let x = Tensor::zeros(&[4, 6], DType::F32).unwrap();
        let e = bias_act_(
            &x.t().unwrap(),
            &Tensor::zeros(&[4], DType::F32).unwrap(),
            None,
        );
        assert!(e.unwrap_err().to_string().contains("strided"));
    }
}
