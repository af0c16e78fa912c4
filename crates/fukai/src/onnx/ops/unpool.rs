//! MaxUnpool, on the host: a scatter of the pooled values to the positions MaxPool's indices
//! recorded, into a zero tensor (fukai has no scatter kernel; the gradient stops here).

use super::super::attr::Node;
use super::misc::{host, make};
use super::util::ints;
use crate::error::Result;
use crate::Tensor;

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    match node.op_type() {
        "MaxUnpool" => Some(max_unpool(node).map(|t| vec![t])),
        _ => None,
    }
}

fn max_unpool(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let (xs, idx) = (host(node, x)?, host(node, node.input(1)?)?);
    if xs.shape.len() < 3 || idx.shape != xs.shape {
        return Err(node.err(format!(
            "X must be [N, C, spatial...] and I the same shape, found {:?} and {:?}",
            xs.shape, idx.shape
        )));
    }
    let sp = xs.shape.len() - 2;
    let kernel = node
        .ints("kernel_shape")?
        .ok_or_else(|| node.err("kernel_shape is required"))?;
    let strides = node.ints("strides")?.unwrap_or_else(|| vec![1; sp]);
    let pads = node.ints("pads")?.unwrap_or_else(|| vec![0; 2 * sp]);
    if kernel.len() != sp || strides.len() != sp || pads.len() != 2 * sp {
        return Err(node.err(format!(
            "kernel_shape {kernel:?}, strides {strides:?}, pads {pads:?} do not fit {sp} spatial axes"
        )));
    }
    // The inverse of MaxPool's output size: (in - 1) * stride + kernel - pads. MaxPool's
    // indices address this shape, flattened with batch and channel.
    let mut inferred = xs.shape[..2].to_vec();
    for d in 0..sp {
        let v = (xs.shape[d + 2] as i64 - 1) * strides[d] + kernel[d] - pads[d] - pads[d + sp];
        if v < 0 {
            return Err(node.err(format!("output size {v} on spatial axis {d}")));
        }
        inferred.push(v as usize);
    }
    let total: usize = inferred.iter().product();
    let mut out = vec![0.0; total];
    for (&v, &i) in xs.v.iter().zip(&idx.v) {
        if i < 0.0 || i as usize >= total {
            return Err(node.err(format!(
                "index {i} out of range for output shape {inferred:?}"
            )));
        }
        out[i as usize] = v;
    }
    let Some(t) = node.opt_input(2) else {
        return make(node, out, &inferred, x.dtype());
    };
    // An explicit output_shape may be larger (MaxPool's input had a remainder its windows did
    // not reach): the unpooled values keep their positions and zeros fill the end of each
    // axis, as ONNX Runtime does.
    let shape = ints(node, t)?;
    if shape.len() != inferred.len() || shape.iter().zip(&inferred).any(|(&s, &i)| s < i as i64) {
        return Err(node.err(format!(
            "output_shape {shape:?} must have rank {} and be at least {inferred:?}",
            inferred.len()
        )));
    }
    let shape: Vec<usize> = shape.into_iter().map(|d| d as usize).collect();
    let pads: Vec<(i64, i64)> = shape
        .iter()
        .zip(&inferred)
        .map(|(&s, &i)| (0, (s - i) as i64))
        .collect();
    let y = make(node, out, &inferred, x.dtype())?;
    super::util::pad_const(node, &y, &pads, 0.0)
}
