//! Helpers the operator families share: reading shape-like tensors, axes, and running
//! float-only fukai ops on any dtype.

use super::super::attr::Node;
use crate::error::Result;
use crate::{DType, Tensor};

/// The values of a small integer tensor (shapes, axes, indices).
pub fn ints(node: &Node, t: &Tensor) -> Result<Vec<i64>> {
    if t.dtype() == DType::I64 {
        return node.ctx(t.to_vec::<i64>());
    }
    Ok(node
        .ctx(t.to_vec_f64())?
        .into_iter()
        .map(|v| v as i64)
        .collect())
}

pub fn floats(node: &Node, t: &Tensor) -> Result<Vec<f64>> {
    node.ctx(t.to_vec_f64())
}

/// A one-element tensor's value.
pub fn scalar(node: &Node, t: &Tensor) -> Result<f64> {
    let v = floats(node, t)?;
    if v.len() != 1 {
        return Err(node.err(format!(
            "expected a one-element tensor, found shape {:?}",
            t.shape()
        )));
    }
    Ok(v[0])
}

/// An axis in `-rank..rank` as an index.
pub fn axis(node: &Node, a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(node.err(format!("axis {a} out of range for rank {rank}")));
    }
    Ok((if a < 0 { a + r } else { a }) as usize)
}

pub fn axes(node: &Node, a: &[i64], rank: usize) -> Result<Vec<usize>> {
    a.iter().map(|&x| axis(node, x, rank)).collect()
}

/// The dtype fukai computes `dt` in: f16/bf16 through f32, integers through f64 (exact for
/// the magnitudes shapes and indices have).
pub fn compute_dtype(dt: DType) -> DType {
    match dt {
        DType::F32 | DType::F64 => dt,
        DType::F16 | DType::BF16 => DType::F32,
        _ => DType::F64,
    }
}

/// Runs a float-only fukai op on tensors of any (shared) dtype and casts the result back.
pub fn via_float(
    node: &Node,
    ts: &[&Tensor],
    f: impl FnOnce(&[Tensor]) -> Result<Tensor>,
) -> Result<Tensor> {
    let dt = ts[0].dtype();
    let cd = compute_dtype(dt);
    let conv = ts
        .iter()
        .map(|t| t.to_dtype(cd))
        .collect::<Result<Vec<_>>>();
    let out = node.ctx(conv.and_then(|c| f(&c)))?;
    if out.dtype() == cd && cd != dt {
        return node.ctx(out.to_dtype(dt));
    }
    Ok(out)
}

/// An elementwise function computed on the host in f64 (for functions fukai has no op for;
/// the gradient stops here). The result has `out` dtype, or the input's.
pub fn host_map(
    node: &Node,
    t: &Tensor,
    out: Option<DType>,
    f: impl Fn(f64) -> f64,
) -> Result<Tensor> {
    let v: Vec<f64> = floats(node, t)?.into_iter().map(f).collect();
    node.ctx(
        Tensor::from_vec(v, t.shape())
            .and_then(|r| r.to_dtype(out.unwrap_or(t.dtype())))
            .and_then(|r| r.to(t.device())),
    )
}

/// Two tensors broadcast together, combined on the host in f64 (see [`host_map`]).
pub fn host_zip(
    node: &Node,
    a: &Tensor,
    b: &Tensor,
    out: DType,
    f: impl Fn(f64, f64) -> f64,
) -> Result<Tensor> {
    let shape = node.ctx(crate::tensor::broadcast_shapes(
        "onnx",
        a.shape(),
        b.shape(),
    ))?;
    let va = floats(node, &node.ctx(a.expand(&shape))?)?;
    let vb = floats(node, &node.ctx(b.expand(&shape))?)?;
    let v: Vec<f64> = va.into_iter().zip(vb).map(|(x, y)| f(x, y)).collect();
    node.ctx(Tensor::from_vec(v, &shape).and_then(|r| r.to_dtype(out)))
}

/// A tensor of `t`'s dtype and device holding `v` (for broadcasting against `t`).
pub fn like(node: &Node, t: &Tensor, v: f64) -> Result<Tensor> {
    node.ctx(Tensor::full_on(&[], v, t.dtype(), t.device()))
}

/// Pads each axis by `(begin, end)` elements (negative crops) with the constant `value`.
pub fn pad_const(node: &Node, x: &Tensor, pads: &[(i64, i64)], value: f64) -> Result<Tensor> {
    let mut x = x.clone();
    for (d, &(b, e)) in pads.iter().enumerate() {
        if b == 0 && e == 0 {
            continue;
        }
        let len = x.shape()[d] as i64;
        let (cb, ce) = (
            b.min(0).unsigned_abs() as usize,
            e.min(0).unsigned_abs() as usize,
        );
        if cb + ce > len as usize {
            return Err(node.err(format!("pads ({b}, {e}) crop more than axis {d}'s {len}")));
        }
        if cb + ce > 0 {
            x = node.ctx(x.narrow(d as isize, cb, len as usize - cb - ce))?;
        }
        let mut parts = Vec::with_capacity(3);
        let block = |n: i64| -> Result<Tensor> {
            let mut s = x.shape().to_vec();
            s[d] = n as usize;
            node.ctx(Tensor::full_on(&s, value, x.dtype(), x.device()))
        };
        if b > 0 {
            parts.push(block(b)?);
        }
        parts.push(x.clone());
        if e > 0 {
            parts.push(block(e)?);
        }
        if parts.len() > 1 {
            x = node.ctx(Tensor::cat(&parts, d as isize))?;
        }
    }
    Ok(x)
}

/// The shape `[1, c, 1, ...]` of rank `rank`, for per-channel parameters.
pub fn channel_shape(c: usize, rank: usize) -> Vec<usize> {
    let mut s = vec![1; rank];
    if rank > 1 {
        s[1] = c;
    } else if rank == 1 {
        s[0] = c;
    }
    s
}
