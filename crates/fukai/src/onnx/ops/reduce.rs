//! Reductions (ReduceSum, ReduceMean, ..., ArgMax) and Softmax / LogSoftmax.

use super::super::attr::Node;
use super::util::{axes, axis, floats, ints, via_float};
use crate::error::Result;
use crate::Tensor;

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    let r = match node.op_type() {
        "ReduceSum" => reduce(node, 13, |x, d, k| x.sum(d, k)),
        "ReduceMean" => reduce(node, 18, |x, d, k| x.mean(d, k)),
        "ReduceMax" => reduce(node, 18, |x, d, k| extreme(x, d, k, true)),
        "ReduceMin" => reduce(node, 18, |x, d, k| extreme(x, d, k, false)),
        "ReduceL1" => reduce(node, 18, |x, d, k| x.abs()?.sum(d, k)),
        "ReduceL2" => reduce(node, 18, |x, d, k| x.square()?.sum(d, k)?.sqrt()),
        "ReduceSumSquare" => reduce(node, 18, |x, d, k| x.square()?.sum(d, k)),
        "ReduceLogSum" => reduce(node, 18, |x, d, k| x.sum(d, k)?.log()),
        "ReduceLogSumExp" => reduce(node, 18, logsumexp),
        "ReduceProd" => reduce_prod(node),
        "ArgMax" => arg(node, true),
        "ArgMin" => arg(node, false),
        "Softmax" => softmax(node, false),
        "LogSoftmax" => softmax(node, true),
        _ => return None,
    };
    Some(r.map(|t| vec![t]))
}

/// The reduced dims: from input 1 since `input_from` (ReduceSum 13, the others 18), else the
/// `axes` attribute; `None` means "all" (or "none" with noop_with_empty_axes).
fn reduce_axes(node: &Node, input_from: i64, rank: usize) -> Result<Option<Vec<usize>>> {
    let a = if node.opset >= input_from {
        node.opt_input(1).map(|t| ints(node, t)).transpose()?
    } else {
        node.ints("axes")?
    };
    match a {
        Some(a) if !a.is_empty() => {
            let mut a = axes(node, &a, rank)?;
            a.sort_unstable();
            a.dedup();
            Ok(Some(a))
        }
        _ if node.i("noop_with_empty_axes", 0)? == 1 => Ok(None),
        _ => Ok(Some((0..rank).collect())),
    }
}

fn reduce(
    node: &Node,
    input_from: i64,
    f: impl Fn(&Tensor, &[isize], bool) -> Result<Tensor>,
) -> Result<Tensor> {
    let x = node.input(0)?;
    let keep = node.i("keepdims", 1)? == 1;
    let Some(dims) = reduce_axes(node, input_from, x.rank())? else {
        return Ok(x.clone());
    };
    if dims.is_empty() {
        return via_float(node, &[x], |t| {
            f(&t[0], &[], keep).or_else(|_| Ok(t[0].clone()))
        });
    }
    let d: Vec<isize> = dims.iter().map(|&d| d as isize).collect();
    via_float(node, &[x], |t| f(&t[0], &d, keep))
}

/// Max or min over several dims, one dim at a time (kept, then squeezed at the end).
fn extreme(x: &Tensor, dims: &[isize], keep: bool, max: bool) -> Result<Tensor> {
    let mut y = x.clone();
    for &d in dims {
        y = if max {
            y.max(d, true)?
        } else {
            y.min(d, true)?
        };
    }
    squeeze_dims(&y, dims, keep)
}

fn squeeze_dims(y: &Tensor, dims: &[isize], keep: bool) -> Result<Tensor> {
    if keep {
        return Ok(y.clone());
    }
    let shape: Vec<usize> = y
        .shape()
        .iter()
        .enumerate()
        .filter(|(i, _)| !dims.contains(&(*i as isize)))
        .map(|(_, &s)| s)
        .collect();
    y.reshape(&shape)
}

fn logsumexp(x: &Tensor, dims: &[isize], keep: bool) -> Result<Tensor> {
    // Stable: shift by the (detached) max over the same dims.
    let m = extreme(&x.detach(), dims, true, true)?;
    let m = m.where_cond_finite()?;
    let s = x.sub(&m)?.exp()?.sum(dims, true)?.log()?.add(&m)?;
    squeeze_dims(&s, dims, keep)
}

trait FiniteShift {
    fn where_cond_finite(&self) -> Result<Tensor>;
}

impl FiniteShift for Tensor {
    /// An all -inf slice would make the shift NaN; shift those by 0 instead.
    fn where_cond_finite(&self) -> Result<Tensor> {
        let finite = self.abs()?.lt(&Tensor::full_on(
            &[],
            f64::INFINITY,
            self.dtype(),
            self.device(),
        )?)?;
        finite.where_cond(self, &self.mul_scalar(0.0)?.detach())
    }
}

fn reduce_prod(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let keep = node.i("keepdims", 1)? == 1;
    let Some(dims) = reduce_axes(node, 18, x.rank())? else {
        return Ok(x.clone());
    };
    // No product op in fukai: computed on the host (no gradient).
    let v = floats(node, x)?;
    let shape = x.shape();
    let mut out_shape: Vec<usize> = shape.to_vec();
    for &d in &dims {
        out_shape[d] = 1;
    }
    let strides = crate::tensor::contiguous_strides(shape);
    let ostrides = crate::tensor::contiguous_strides(&out_shape);
    let mut out = vec![1.0f64; out_shape.iter().product()];
    for (i, &val) in v.iter().enumerate() {
        let mut o = 0;
        for k in 0..shape.len() {
            let c = (i / strides[k]) % shape[k];
            if out_shape[k] != 1 {
                o += c * ostrides[k];
            }
        }
        out[o] *= val;
    }
    if !keep {
        out_shape = shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !dims.contains(i))
            .map(|(_, &s)| s)
            .collect();
    }
    node.ctx(Tensor::from_vec(out, &out_shape).and_then(|t| t.to_dtype(x.dtype())))
}

fn arg(node: &Node, max: bool) -> Result<Tensor> {
    let x = node.input(0)?;
    let a = axis(node, node.i("axis", 0)?, x.rank())?;
    let keep = node.i("keepdims", 1)? == 1;
    let last = node.i("select_last_index", 0)? == 1;
    let cd = super::util::compute_dtype(x.dtype());
    let mut xf = node.ctx(x.detach().to_dtype(cd))?;
    let n = x.shape()[a];
    if last {
        // The last extreme is the first one of the reversed axis.
        let rev: Vec<i64> = (0..n as i64).rev().collect();
        xf = node.ctx(xf.index_select(a as isize, &Tensor::from_vec(rev, &[n])?))?;
    }
    let i = node.ctx(if max {
        xf.argmax(a as isize, keep)
    } else {
        xf.argmin(a as isize, keep)
    })?;
    if last {
        return node.ctx(
            i.to_dtype(crate::DType::F64)?
                .affine(-1.0, n as f64 - 1.0)?
                .to_dtype(crate::DType::I64),
        );
    }
    Ok(i)
}

fn softmax(node: &Node, log: bool) -> Result<Tensor> {
    let x = node.input(0)?;
    let r = x.rank();
    if node.opset >= 13 {
        let a = axis(node, node.i("axis", -1)?, r)?;
        return via_float(node, &[x], |t| {
            if log {
                t[0].log_softmax(a as isize)
            } else {
                t[0].softmax(a as isize)
            }
        });
    }
    // Before opset 13 the input is seen as 2-D [prod(..axis), prod(axis..)].
    let a = node.i("axis", 1)?;
    let a = if a < 0 { a + r as i64 } else { a }.clamp(0, r as i64) as usize;
    let outer: usize = x.shape()[..a].iter().product();
    let inner: usize = x.shape()[a..].iter().product();
    via_float(node, &[x], |t| {
        let flat = t[0].reshape(&[outer, inner])?;
        let y = if log {
            flat.log_softmax(1)?
        } else {
            flat.softmax(1)?
        };
        y.reshape(t[0].shape())
    })
}
