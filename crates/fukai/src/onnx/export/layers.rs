//! The ONNX nodes of the built-in layers, called from their `Module::to_onnx`.

use super::{attr_float, attr_int, attr_ints, Graph, Value};
use crate::error::Result;
use crate::nn::{join, Activation};
use crate::tensor::Tensor;

fn dim_out(d: Option<usize>, k: usize, s: usize, p: usize, dil: usize) -> Option<usize> {
    d.and_then(|d| (d + 2 * p).checked_sub(dil * (k - 1) + 1))
        .map(|n| n / s + 1)
}

/// `x · Wᵀ + b` with the weights under `prefix` (see [`project`]).
pub fn linear(
    g: &mut Graph,
    prefix: &str,
    x: &Value,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<Value> {
    let wn = g.weight(&join(prefix, "weight"), w)?;
    let bn = b.map(|b| g.weight(&join(prefix, "bias"), b)).transpose()?;
    Ok(project(
        g,
        x,
        &wn,
        bn.as_deref(),
        w.shape()[0],
        &join(prefix, "out"),
    ))
}

/// `x · Wᵀ + b` for a weight `wn` (`[out, in]`) and bias `bn` already in the graph: a `Gemm`
/// for 2-D inputs, else `MatMul` with the transposed weight (the initializer keeps the state
/// dict's layout either way).
pub fn project(
    g: &mut Graph,
    x: &Value,
    wn: &str,
    bn: Option<&str>,
    out: usize,
    hint: &str,
) -> Value {
    let mut shape = x.shape.clone();
    if let Some(last) = shape.last_mut() {
        *last = Some(out);
    }
    let name = if x.rank() == 2 {
        let mut ins = vec![x.name.as_str(), wn];
        ins.extend(bn);
        g.op("Gemm", &ins, vec![attr_int("transB", 1)], hint)
    } else {
        let wt = g.op(
            "Transpose",
            &[wn],
            vec![attr_ints("perm", &[1, 0])],
            &format!("{wn}_t"),
        );
        let y = g.op("MatMul", &[&x.name, &wt], vec![], hint);
        match bn {
            Some(b) => g.op("Add", &[&y, b], vec![], hint),
            None => y,
        }
    };
    Value {
        name,
        shape,
        dtype: x.dtype,
    }
}

/// A 2-D convolution (`[N, C, H, W]`).
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    g: &mut Graph,
    prefix: &str,
    x: &Value,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> Result<Value> {
    let ws = w.shape().to_vec();
    let wn = g.weight(&join(prefix, "weight"), w)?;
    let bn = b.map(|b| g.weight(&join(prefix, "bias"), b)).transpose()?;
    let mut ins = vec![x.name.as_str(), wn.as_str()];
    if let Some(b) = &bn {
        ins.push(b);
    }
    let i = |a: [usize; 2]| [a[0] as i64, a[1] as i64];
    let attrs = vec![
        attr_ints("kernel_shape", &[ws[2] as i64, ws[3] as i64]),
        attr_ints("strides", &i(stride)),
        attr_ints(
            "pads",
            &[
                padding[0] as i64,
                padding[1] as i64,
                padding[0] as i64,
                padding[1] as i64,
            ],
        ),
        attr_ints("dilations", &i(dilation)),
        attr_int("group", groups as i64),
    ];
    let name = g.op("Conv", &ins, attrs, &join(prefix, "out"));
    let mut shape = vec![x.shape.first().copied().flatten(), Some(ws[0])];
    for k in 0..2 {
        let d = x.shape.get(2 + k).copied().flatten();
        shape.push(dim_out(d, ws[2 + k], stride[k], padding[k], dilation[k]));
    }
    Ok(Value {
        name,
        shape,
        dtype: x.dtype,
    })
}

/// Max or average pooling over `[N, C, H, W]`.
#[allow(clippy::too_many_arguments)] // the pooling layers' own fields, one by one
pub fn pool2d(
    g: &mut Graph,
    prefix: &str,
    x: &Value,
    max: bool,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    count_include_pad: bool,
) -> Result<Value> {
    let p = [
        padding[0] as i64,
        padding[1] as i64,
        padding[0] as i64,
        padding[1] as i64,
    ];
    let mut attrs = vec![
        attr_ints("kernel_shape", &[kernel[0] as i64, kernel[1] as i64]),
        attr_ints("strides", &[stride[0] as i64, stride[1] as i64]),
        attr_ints("pads", &p),
    ];
    if !max {
        attrs.push(attr_int("count_include_pad", count_include_pad as i64));
    }
    let op = if max { "MaxPool" } else { "AveragePool" };
    let name = g.op(op, &[&x.name], attrs, &join(prefix, "out"));
    let mut shape = x.shape.clone();
    for k in 0..2 {
        if let Some(d) = shape.get_mut(2 + k) {
            *d = dim_out(*d, kernel[k], stride[k], padding[k], 1);
        }
    }
    Ok(Value {
        name,
        shape,
        dtype: x.dtype,
    })
}

/// Inference batch norm with the running statistics (channels on dim 1).
pub fn batch_norm(
    g: &mut Graph,
    prefix: &str,
    x: &Value,
    [w, b, mean, var]: [&Tensor; 4],
    eps: f64,
) -> Result<Value> {
    let wn = g.weight(&join(prefix, "weight"), w)?;
    let bn = g.weight(&join(prefix, "bias"), b)?;
    let mn = g.weight(&join(prefix, "running_mean"), mean)?;
    let vn = g.weight(&join(prefix, "running_var"), var)?;
    let name = g.op(
        "BatchNormalization",
        &[&x.name, &wn, &bn, &mn, &vn],
        vec![attr_float("epsilon", eps as f32)],
        &join(prefix, "out"),
    );
    Ok(x.renamed(name))
}

/// Layer norm over the weight's dims (the last ones).
pub fn layer_norm(
    g: &mut Graph,
    prefix: &str,
    x: &Value,
    w: &Tensor,
    b: Option<&Tensor>,
    eps: f64,
) -> Result<Value> {
    let wn = g.weight(&join(prefix, "weight"), w)?;
    let mut ins = vec![x.name.clone(), wn];
    if let Some(b) = b {
        ins.push(g.weight(&join(prefix, "bias"), b)?);
    }
    let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
    let name = g.op(
        "LayerNormalization",
        &ins,
        vec![
            attr_int("axis", -(w.rank() as i64)),
            attr_float("epsilon", eps as f32),
        ],
        &join(prefix, "out"),
    );
    Ok(x.renamed(name))
}

/// An activation; GELU and SiLU are composed, as opset 17 has no node for them.
pub fn activation(g: &mut Graph, prefix: &str, x: &Value, a: Activation) -> Result<Value> {
    let hint = join(prefix, "out");
    let xs = x.name.as_str();
    let name = match a {
        Activation::Relu => g.op("Relu", &[xs], vec![], &hint),
        Activation::Tanh => g.op("Tanh", &[xs], vec![], &hint),
        Activation::Sigmoid => g.op("Sigmoid", &[xs], vec![], &hint),
        Activation::LeakyRelu(s) => g.op(
            "LeakyRelu",
            &[xs],
            vec![attr_float("alpha", s as f32)],
            &hint,
        ),
        Activation::Silu => {
            let s = g.op("Sigmoid", &[xs], vec![], &hint);
            g.op("Mul", &[xs, &s], vec![], &hint)
        }
        Activation::Gelu => {
            // 0.5·x·(1 + erf(x/√2))
            let r = g.scalar("sqrt2", std::f64::consts::SQRT_2, x.dtype)?;
            let one = g.scalar("one", 1.0, x.dtype)?;
            let half = g.scalar("half", 0.5, x.dtype)?;
            let t = g.op("Div", &[xs, &r], vec![], &hint);
            let t = g.op("Erf", &[&t], vec![], &hint);
            let t = g.op("Add", &[&t, &one], vec![], &hint);
            let t = g.op("Mul", &[xs, &t], vec![], &hint);
            g.op("Mul", &[&t, &half], vec![], &hint)
        }
        Activation::GeluTanh => {
            // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
            let c = g.scalar("gelu_c", (2.0 / std::f64::consts::PI).sqrt(), x.dtype)?;
            let k = g.scalar("gelu_k", 0.044715, x.dtype)?;
            let one = g.scalar("one", 1.0, x.dtype)?;
            let half = g.scalar("half", 0.5, x.dtype)?;
            let x2 = g.op("Mul", &[xs, xs], vec![], &hint);
            let x3 = g.op("Mul", &[&x2, xs], vec![], &hint);
            let t = g.op("Mul", &[&x3, &k], vec![], &hint);
            let t = g.op("Add", &[xs, &t], vec![], &hint);
            let t = g.op("Mul", &[&t, &c], vec![], &hint);
            let t = g.op("Tanh", &[&t], vec![], &hint);
            let t = g.op("Add", &[&t, &one], vec![], &hint);
            let t = g.op("Mul", &[xs, &t], vec![], &hint);
            g.op("Mul", &[&t, &half], vec![], &hint)
        }
    };
    Ok(x.renamed(name))
}

/// Flattens every dim after the batch.
pub fn flatten(g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
    if x.rank() <= 1 {
        return Ok(x.clone());
    }
    let name = g.op(
        "Flatten",
        &[&x.name],
        vec![attr_int("axis", 1)],
        &join(prefix, "out"),
    );
    let rest = x.shape[1..]
        .iter()
        .try_fold(1usize, |a, d| d.map(|d| a * d));
    Ok(Value {
        name,
        shape: vec![x.shape[0], rest],
        dtype: x.dtype,
    })
}

/// Rows of a `[vocab, dim]` table at integer ids.
pub fn embedding(g: &mut Graph, prefix: &str, ids: &Value, w: &Tensor) -> Result<Value> {
    let wn = g.weight(&join(prefix, "weight"), w)?;
    let name = g.op(
        "Gather",
        &[&wn, &ids.name],
        vec![attr_int("axis", 0)],
        &join(prefix, "out"),
    );
    let mut shape = ids.shape.clone();
    shape.push(Some(w.shape()[1]));
    Ok(Value {
        name,
        shape,
        dtype: w.dtype(),
    })
}

/// `x` with its dims permuted.
pub fn transpose(g: &mut Graph, x: &Value, perm: &[usize], hint: &str) -> Value {
    let p: Vec<i64> = perm.iter().map(|&i| i as i64).collect();
    let name = g.op("Transpose", &[&x.name], vec![attr_ints("perm", &p)], hint);
    Value {
        name,
        shape: perm.iter().map(|&i| x.shape[i]).collect(),
        dtype: x.dtype,
    }
}

/// `a + b` (same shape, or `b` broadcasting to `a`'s).
pub fn add(g: &mut Graph, a: &Value, b: &str, hint: &str) -> Value {
    a.renamed(g.op("Add", &[&a.name, b], vec![], hint))
}

/// Learned positions: `x [B, T, d]` plus the table's first `T` rows, `T` read at run time so
/// the sequence length stays free (up to the table's length).
pub fn learned_positions(g: &mut Graph, prefix: &str, x: &Value, w: &Tensor) -> Result<Value> {
    let wn = g.weight(&join(prefix, "weight"), w)?;
    let t = g.dim(x, 1);
    let zero = g.ints("zero", &[0])?;
    let rows = g.op(
        "Slice",
        &[&wn, &zero, &t, &zero],
        vec![],
        &join(prefix, "rows"),
    );
    Ok(add(g, x, &rows, &join(prefix, "out")))
}
