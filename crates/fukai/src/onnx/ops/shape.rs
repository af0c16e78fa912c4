//! Shape and data-movement operators: Reshape, Transpose, Concat, Slice, Gather, Pad, ...,
//! and the ones that make tensors (Constant, ConstantOfShape, Range, Shape).

use super::super::attr::Node;
use super::super::tensor::tensor_from_proto;
use super::util::{axes, axis, ints, pad_const, scalar, via_float};
use crate::error::Result;
use crate::{DType, Tensor};

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    let r = match node.op_type() {
        "Reshape" => reshape(node),
        "Flatten" => flatten(node),
        "Transpose" => transpose(node),
        "Squeeze" => squeeze(node),
        "Unsqueeze" => unsqueeze(node),
        "Concat" => concat(node),
        "Split" => return Some(split(node)),
        "Slice" => slice(node),
        "Gather" => gather(node),
        "GatherElements" => gather_elements(node),
        "Expand" => expand(node),
        "Shape" => shape_op(node),
        "Size" => node
            .input(0)
            .and_then(|x| node.ctx(Tensor::from_vec(vec![x.numel() as i64], &[]))),
        "ConstantOfShape" => constant_of_shape(node),
        "Constant" => constant(node),
        "Range" => range(node),
        "Tile" => tile(node),
        "Pad" => pad(node),
        "DepthToSpace" => depth_to_space(node),
        "SpaceToDepth" => space_to_depth(node),
        _ => return None,
    };
    Some(r.map(|t| vec![t]))
}

fn shape_of(node: &Node, v: &[i64]) -> Result<Vec<usize>> {
    v.iter()
        .map(|&d| usize::try_from(d).map_err(|_| node.err(format!("negative dimension in {v:?}"))))
        .collect()
}

fn reshape(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let spec = if node.opset < 5 {
        node.ints("shape")?.unwrap_or_default()
    } else {
        ints(node, node.input(1)?)?
    };
    let allowzero = node.i("allowzero", 0)? == 1;
    let mut shape = Vec::with_capacity(spec.len());
    for (i, &d) in spec.iter().enumerate() {
        shape.push(match d {
            0 if !allowzero => *x.shape().get(i).ok_or_else(|| {
                node.err(format!(
                    "shape {spec:?}: 0 at {i} copies a dim the input {:?} lacks",
                    x.shape()
                ))
            })? as isize,
            d if d < -1 => return Err(node.err(format!("shape {spec:?} has {d}"))),
            d => d as isize,
        });
    }
    node.ctx(x.reshape_infer(&shape))
}

fn flatten(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let a = node.i("axis", 1)?;
    let r = x.rank() as i64;
    if a < -r || a > r {
        return Err(node.err(format!("axis {a} out of range for rank {r}")));
    }
    let a = if a < 0 { a + r } else { a } as usize;
    let outer: usize = x.shape()[..a].iter().product();
    let inner: usize = x.shape()[a..].iter().product();
    node.ctx(x.reshape(&[outer, inner]))
}

fn transpose(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let perm: Vec<isize> = match node.ints("perm")? {
        Some(p) => p.iter().map(|&d| d as isize).collect(),
        None => (0..x.rank() as isize).rev().collect::<Vec<_>>(),
    };
    node.ctx(x.permute(&perm).and_then(|t| t.contiguous()))
}

/// Axes from the attribute (before `input_from`) or from input 1.
fn axes_arg(node: &Node, input_from: i64) -> Result<Option<Vec<i64>>> {
    if node.opset >= input_from {
        node.opt_input(1).map(|t| ints(node, t)).transpose()
    } else {
        node.ints("axes")
    }
}

fn squeeze(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let shape: Vec<usize> = match axes_arg(node, 13)? {
        Some(a) => {
            let a = axes(node, &a, x.rank())?;
            if let Some(&d) = a.iter().find(|&&d| x.shape()[d] != 1) {
                return Err(node.err(format!("axis {d} of {:?} is not 1", x.shape())));
            }
            x.shape()
                .iter()
                .enumerate()
                .filter(|(i, _)| !a.contains(i))
                .map(|(_, &s)| s)
                .collect()
        }
        None => x.shape().iter().copied().filter(|&s| s != 1).collect(),
    };
    node.ctx(x.reshape(&shape))
}

fn unsqueeze(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let a = axes_arg(node, 13)?.ok_or_else(|| node.err("axes are required"))?;
    let rank = x.rank() + a.len();
    let a = axes(node, &a, rank)?;
    let mut src = x.shape().iter();
    let shape: Vec<usize> = (0..rank)
        .map(|i| {
            if a.contains(&i) {
                1
            } else {
                *src.next().unwrap_or(&1)
            }
        })
        .collect();
    node.ctx(x.reshape(&shape))
}

fn concat(node: &Node) -> Result<Tensor> {
    let parts: Vec<Tensor> = node.inputs.iter().flatten().cloned().collect();
    let first = parts.first().ok_or_else(|| node.err("no inputs"))?;
    let a = axis(node, node.i("axis", 0)?, first.rank())?;
    node.ctx(Tensor::cat(&parts, a as isize))
}

fn split(node: &Node) -> Result<Vec<Tensor>> {
    let x = node.input(0)?;
    let a = axis(node, node.i("axis", 0)?, x.rank())?;
    let len = x.shape()[a];
    let n = node.n_outputs();
    let sizes = if node.opset >= 13 {
        node.opt_input(1).map(|t| ints(node, t)).transpose()?
    } else {
        node.ints("split")?
            .or(node.opt_input(1).map(|t| ints(node, t)).transpose()?)
    };
    let sizes: Vec<usize> = match sizes {
        Some(s) => shape_of(node, &s)?,
        None => {
            let n = node.i("num_outputs", n as i64)?.max(1) as usize;
            let chunk = len.div_ceil(n);
            (0..n)
                .map(|i| chunk.min(len.saturating_sub(i * chunk)))
                .collect()
        }
    };
    if sizes.iter().sum::<usize>() != len {
        return Err(node.err(format!(
            "split {sizes:?} does not add up to axis {a}'s {len}"
        )));
    }
    let mut start = 0;
    sizes
        .iter()
        .map(|&s| {
            let t = node.ctx(x.narrow(a as isize, start, s));
            start += s;
            t
        })
        .collect()
}

fn slice(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let (starts, ends, ax, steps) = if node.opset < 10 {
        (
            node.ints("starts")?.unwrap_or_default(),
            node.ints("ends")?.unwrap_or_default(),
            node.ints("axes")?,
            None,
        )
    } else {
        let opt = |i| node.opt_input(i).map(|t| ints(node, t)).transpose();
        (
            ints(node, node.input(1)?)?,
            ints(node, node.input(2)?)?,
            opt(3)?,
            opt(4)?,
        )
    };
    let ax = ax.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || ax.len() != starts.len() || steps.len() != starts.len() {
        return Err(node.err("starts, ends, axes and steps differ in length"));
    }
    let mut y = x.clone();
    for i in 0..starts.len() {
        let d = axis(node, ax[i], x.rank())?;
        let n = x.shape()[d] as i64;
        let step = steps[i];
        if step == 0 {
            return Err(node.err("step 0"));
        }
        let clampi = |v: i64, lo: i64, hi: i64| {
            let v = if v < 0 { v + n } else { v };
            v.clamp(lo, hi)
        };
        let idx: Vec<i64> = if step > 0 {
            let (s, e) = (clampi(starts[i], 0, n), clampi(ends[i], 0, n));
            if step == 1 {
                y = node.ctx(y.narrow(d as isize, s as usize, (e - s).max(0) as usize))?;
                continue;
            }
            (s..e).step_by(step as usize).collect()
        } else {
            let (s, e) = (clampi(starts[i], -1, n - 1), clampi(ends[i], -1, n - 1));
            let mut v = Vec::new();
            let mut k = s;
            while k > e {
                v.push(k);
                k += step;
            }
            v
        };
        let len = idx.len();
        let idx = node.ctx(Tensor::from_vec(idx, &[len]))?;
        y = node.ctx(y.index_select(d as isize, &idx))?;
    }
    Ok(y)
}

fn gather(node: &Node) -> Result<Tensor> {
    let (x, idx) = (node.input(0)?, node.input(1)?);
    let a = axis(node, node.i("axis", 0)?, x.rank())?;
    let n = x.shape()[a] as i64;
    let flat: Vec<i64> = ints(node, idx)?
        .into_iter()
        .map(|i| {
            let j = if i < 0 { i + n } else { i };
            if (0..n).contains(&j) {
                Ok(j)
            } else {
                Err(node.err(format!("index {i} out of range for axis {a} of size {n}")))
            }
        })
        .collect::<Result<_>>()?;
    let count = flat.len();
    let picked = node.ctx(x.index_select(a as isize, &Tensor::from_vec(flat, &[count])?))?;
    let mut shape = x.shape()[..a].to_vec();
    shape.extend_from_slice(idx.shape());
    shape.extend_from_slice(&x.shape()[a + 1..]);
    node.ctx(picked.reshape(&shape))
}

fn gather_elements(node: &Node) -> Result<Tensor> {
    let (x, idx) = (node.input(0)?, node.input(1)?);
    let a = axis(node, node.i("axis", 0)?, x.rank())?;
    let n = x.shape()[a] as i64;
    let v: Vec<i64> = ints(node, idx)?
        .into_iter()
        .map(|i| if i < 0 { i + n } else { i })
        .collect();
    let idx = node.ctx(Tensor::from_vec(v, idx.shape()))?;
    via_float(node, &[x], |t| t[0].gather(a as isize, &idx))
}

fn expand(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let s = shape_of(node, &ints(node, node.input(1)?)?)?;
    let shape = node.ctx(crate::tensor::broadcast_shapes("Expand", x.shape(), &s))?;
    node.ctx(x.expand(&shape).and_then(|t| t.contiguous()))
}

fn shape_op(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let r = x.rank() as i64;
    let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let s = clampi(node.i("start", 0)?);
    let e = clampi(node.i("end", r)?);
    let v: Vec<i64> = x.shape()[s..e.max(s)].iter().map(|&d| d as i64).collect();
    let n = v.len();
    node.ctx(Tensor::from_vec(v, &[n]))
}

fn constant_of_shape(node: &Node) -> Result<Tensor> {
    let s = shape_of(node, &ints(node, node.input(0)?)?)?;
    let value = match node.t("value")? {
        Some(t) => tensor_from_proto(t, None, "ConstantOfShape value")?,
        None => Tensor::zeros(&[1], DType::F32)?,
    };
    if value.numel() != 1 {
        return Err(node.err("value must have one element"));
    }
    node.ctx(
        value
            .reshape(&[])
            .and_then(|v| v.expand(&s))
            .and_then(|v| v.contiguous()),
    )
}

fn constant(node: &Node) -> Result<Tensor> {
    if let Some(t) = node.t("value")? {
        return tensor_from_proto(t, None, "Constant value");
    }
    if let Some(v) = node.opt_f("value_float")? {
        return Tensor::from_vec(vec![v], &[]);
    }
    if let Some(v) = node.floats("value_floats")? {
        let n = v.len();
        return Tensor::from_vec(v, &[n]);
    }
    if let Some(v) = node.opt_i("value_int")? {
        return Tensor::from_vec(vec![v], &[]);
    }
    if let Some(v) = node.ints("value_ints")? {
        let n = v.len();
        return Tensor::from_vec(v, &[n]);
    }
    Err(node.unsupported("constant kind (only value, value_float(s), value_int(s))"))
}

fn range(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let start = scalar(node, x)?;
    let limit = scalar(node, node.input(1)?)?;
    let delta = scalar(node, node.input(2)?)?;
    if delta == 0.0 {
        return Err(node.err("delta 0"));
    }
    let n = ((limit - start) / delta).ceil().max(0.0) as usize;
    let v: Vec<f64> = (0..n).map(|i| start + i as f64 * delta).collect();
    node.ctx(Tensor::from_vec(v, &[n]).and_then(|t| t.to_dtype(x.dtype())))
}

fn tile(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let reps = ints(node, node.input(1)?)?;
    if reps.len() != x.rank() {
        return Err(node.err(format!("repeats {reps:?} for rank {}", x.rank())));
    }
    let mut y = x.clone();
    for (d, &r) in reps.iter().enumerate() {
        if r != 1 {
            let r = usize::try_from(r).map_err(|_| node.err(format!("negative repeat {r}")))?;
            y = node.ctx(Tensor::cat(&vec![y; r], d as isize))?;
        }
    }
    Ok(y)
}

fn pad(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let r = x.rank();
    let mode = node.s("mode")?.unwrap_or_else(|| "constant".into());
    let (pads, value) = if node.opset < 11 {
        let p = node
            .ints(if node.opset < 2 { "paddings" } else { "pads" })?
            .unwrap_or_default();
        (p, node.f("value", 0.0)? as f64)
    } else {
        let v = node
            .opt_input(2)
            .map(|t| scalar(node, t))
            .transpose()?
            .unwrap_or(0.0);
        (ints(node, node.input(1)?)?, v)
    };
    let ax: Vec<usize> = match node.opt_input(3) {
        Some(t) => axes(node, &ints(node, t)?, r)?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * ax.len() {
        return Err(node.err(format!("pads {pads:?} for {} axes", ax.len())));
    }
    let mut per = vec![(0i64, 0i64); r];
    for (k, &d) in ax.iter().enumerate() {
        per[d] = (pads[k], pads[k + ax.len()]);
    }
    match mode.as_str() {
        "constant" => pad_const(node, x, &per, value),
        "reflect" | "edge" => {
            let mut y = x.clone();
            for (d, &(b, e)) in per.iter().enumerate() {
                if b == 0 && e == 0 {
                    continue;
                }
                let n = x.shape()[d] as i64;
                let map = |i: i64| -> i64 {
                    if mode == "edge" {
                        return i.clamp(0, n - 1);
                    }
                    // Reflect without repeating the edge, bouncing as often as needed.
                    let period = 2 * (n - 1).max(1);
                    let m = i.rem_euclid(period);
                    if m < n {
                        m
                    } else {
                        period - m
                    }
                };
                let idx: Vec<i64> = (-b..n + e).map(map).collect();
                let len = idx.len();
                y = node.ctx(y.index_select(d as isize, &Tensor::from_vec(idx, &[len])?))?;
            }
            Ok(y)
        }
        m => Err(node.unsupported(format!("mode {m:?}"))),
    }
}

fn depth_to_space(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let b = node.i("blocksize", 0)? as usize;
    let &[n, c, h, w] = x.shape() else {
        return Err(node.err(format!("expected [N, C, H, W], found {:?}", x.shape())));
    };
    if b == 0 || c % (b * b) != 0 {
        return Err(node.err(format!("blocksize {b} does not divide {c} channels")));
    }
    let oc = c / (b * b);
    let crd = node.s("mode")?.as_deref() == Some("CRD");
    let (shape, perm): (Vec<usize>, [isize; 6]) = if crd {
        (vec![n, oc, b, b, h, w], [0, 1, 4, 2, 5, 3])
    } else {
        (vec![n, b, b, oc, h, w], [0, 3, 4, 1, 5, 2])
    };
    node.ctx(
        x.reshape(&shape)?
            .permute(&perm)?
            .contiguous()?
            .reshape(&[n, oc, h * b, w * b]),
    )
}

fn space_to_depth(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let b = node.i("blocksize", 0)? as usize;
    let &[n, c, h, w] = x.shape() else {
        return Err(node.err(format!("expected [N, C, H, W], found {:?}", x.shape())));
    };
    if b == 0 || h % b != 0 || w % b != 0 {
        return Err(node.err(format!("blocksize {b} does not divide {h}x{w}")));
    }
    node.ctx(
        x.reshape(&[n, c, h / b, b, w / b, b])?
            .permute(&[0, 3, 5, 1, 2, 4])?
            .contiguous()?
            .reshape(&[n, c * b * b, h / b, w / b]),
    )
}
