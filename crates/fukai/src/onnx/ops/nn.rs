//! Neural-network operators: MatMul, Gemm, convolutions, pooling, normalizations.

use super::super::attr::Node;
use super::util::{axis, channel_shape, pad_const, via_float};
use crate::error::Result;
use crate::Tensor;

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    let r = match node.op_type() {
        "MatMul" => matmul(node),
        "Gemm" => gemm(node),
        "Conv" => conv(node),
        "ConvTranspose" => conv_transpose(node),
        "MaxPool" => max_pool(node),
        "AveragePool" => avg_pool(node),
        "GlobalAveragePool" => global(node, false),
        "GlobalMaxPool" => global(node, true),
        "BatchNormalization" => batch_norm(node),
        "InstanceNormalization" => instance_norm(node),
        "LayerNormalization" => return Some(layer_norm(node)),
        _ => return None,
    };
    Some(r.map(|t| vec![t]))
}

fn matmul(node: &Node) -> Result<Tensor> {
    let (a, b) = (node.input(0)?, node.input(1)?);
    via_float(node, &[a, b], |t| t[0].matmul(&t[1]))
}

fn gemm(node: &Node) -> Result<Tensor> {
    let (a, b) = (node.input(0)?, node.input(1)?);
    let alpha = node.f("alpha", 1.0)? as f64;
    let beta = node.f("beta", 1.0)? as f64;
    let (ta, tb) = (node.i("transA", 0)? == 1, node.i("transB", 0)? == 1);
    let c = node.opt_input(2);
    let mut ts = vec![a, b];
    ts.extend(c);
    via_float(node, &ts, |t| {
        let a = if ta { t[0].t()? } else { t[0].clone() };
        let b = if tb { t[1].t()? } else { t[1].clone() };
        let mut y = a.matmul(&b)?;
        if alpha != 1.0 {
            y = y.mul_scalar(alpha)?;
        }
        if let Some(c) = t.get(2) {
            y = y.add(&if beta != 1.0 {
                c.mul_scalar(beta)?
            } else {
                c.clone()
            })?;
        }
        Ok(y)
    })
}

/// Per-axis window geometry after resolving auto_pad.
struct Window {
    kernel: Vec<usize>,
    stride: Vec<usize>,
    dil: Vec<usize>,
    /// (begin, end) padding per spatial axis.
    pads: Vec<(i64, i64)>,
}

fn usizes(node: &Node, name: &str, n: usize, default: usize) -> Result<Vec<usize>> {
    match node.ints(name)? {
        Some(v) if v.len() == n => v
            .iter()
            .map(|&x| {
                usize::try_from(x)
                    .ok()
                    .filter(|&x| x > 0)
                    .ok_or_else(|| node.err(format!("{name} {v:?}")))
            })
            .collect(),
        Some(v) => Err(node.err(format!("{name} {v:?} for {n} spatial axes"))),
        None => Ok(vec![default; n]),
    }
}

fn window(node: &Node, spatial: &[usize], kernel: Vec<usize>) -> Result<Window> {
    let n = spatial.len();
    let stride = usizes(node, "strides", n, 1)?;
    let dil = usizes(node, "dilations", n, 1)?;
    let auto = node.s("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let pads = match auto.as_str() {
        "NOTSET" => {
            let p = node.ints("pads")?.unwrap_or_else(|| vec![0; 2 * n]);
            if p.len() != 2 * n || p.iter().any(|&x| x < 0) {
                return Err(node.err(format!("pads {p:?} for {n} spatial axes")));
            }
            (0..n).map(|i| (p[i], p[i + n])).collect()
        }
        "VALID" => vec![(0, 0); n],
        "SAME_UPPER" | "SAME_LOWER" => (0..n)
            .map(|i| {
                let out = spatial[i].div_ceil(stride[i]);
                let eff = (kernel[i] - 1) * dil[i] + 1;
                let total = ((out - 1) * stride[i] + eff).saturating_sub(spatial[i]) as i64;
                let small = total / 2;
                if auto == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                }
            })
            .collect(),
        a => return Err(node.unsupported(format!("auto_pad {a:?}"))),
    };
    Ok(Window {
        kernel,
        stride,
        dil,
        pads,
    })
}

fn spatial_rank(node: &Node, x: &Tensor) -> Result<usize> {
    let n = x.rank().saturating_sub(2);
    if !(1..=3).contains(&n) {
        return Err(node.unsupported(format!("input of rank {} (1 to 3 spatial axes)", x.rank())));
    }
    Ok(n)
}

fn full_pads(w: &Window) -> Vec<(i64, i64)> {
    let mut p = vec![(0, 0); 2];
    p.extend_from_slice(&w.pads);
    p
}

fn conv(node: &Node) -> Result<Tensor> {
    let (x, wt) = (node.input(0)?, node.input(1)?);
    let bias = node.opt_input(2);
    let n = spatial_rank(node, x)?;
    let kernel = wt.shape()[2..].to_vec();
    let w = window(node, &x.shape()[2..], kernel)?;
    let g = node.i("group", 1)?.max(1) as usize;
    let symmetric = w.pads.iter().all(|&(b, e)| b == e);
    let mut ts = vec![x, wt];
    ts.extend(bias);
    via_float(node, &ts, |t| {
        let (x, p) = if symmetric {
            (
                t[0].clone(),
                w.pads.iter().map(|&(b, _)| b as usize).collect::<Vec<_>>(),
            )
        } else {
            // Asymmetric padding (SAME_*, explicit pads): zero-pad first, then no padding.
            (pad_const(node, &t[0], &full_pads(&w), 0.0)?, vec![0; n])
        };
        let b = t.get(2);
        let (s, d) = (&w.stride, &w.dil);
        match n {
            1 => x.conv1d(&t[1], b, s[0], p[0], d[0], g),
            2 => x.conv2d(&t[1], b, [s[0], s[1]], [p[0], p[1]], [d[0], d[1]], g),
            _ => x.conv3d(
                &t[1],
                b,
                [s[0], s[1], s[2]],
                [p[0], p[1], p[2]],
                [d[0], d[1], d[2]],
                g,
            ),
        }
    })
}

fn conv_transpose(node: &Node) -> Result<Tensor> {
    let (x, wt) = (node.input(0)?, node.input(1)?);
    let bias = node.opt_input(2);
    let n = spatial_rank(node, x)?;
    let spatial = x.shape()[2..].to_vec();
    let kernel = wt.shape()[2..].to_vec();
    let stride = usizes(node, "strides", n, 1)?;
    let dil = usizes(node, "dilations", n, 1)?;
    let g = node.i("group", 1)?.max(1) as usize;
    let out_pad: Vec<i64> = node.ints("output_padding")?.unwrap_or_else(|| vec![0; n]);
    if out_pad.len() != n {
        return Err(node.err(format!("output_padding {out_pad:?} for {n} spatial axes")));
    }
    // The full (unpadded) transposed output, then cropped or zero-extended per axis: that
    // covers pads, output_padding, output_shape and auto_pad with one kernel call.
    let full: Vec<i64> = (0..n)
        .map(|i| ((spatial[i] - 1) * stride[i] + (kernel[i] - 1) * dil[i] + 1) as i64)
        .collect();
    let auto = node.s("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let out_shape = node.ints("output_shape")?;
    let pads: Vec<(i64, i64)> = if out_shape.is_some() || auto.starts_with("SAME") {
        let target: Vec<i64> = match &out_shape {
            Some(s) => s[s.len().saturating_sub(n)..].to_vec(),
            None => (0..n).map(|i| (spatial[i] * stride[i]) as i64).collect(),
        };
        if target.len() != n {
            return Err(node.err(format!("output_shape {out_shape:?}")));
        }
        (0..n)
            .map(|i| {
                let total = full[i] + out_pad[i] - target[i];
                if auto == "SAME_UPPER" {
                    (total / 2, total - total / 2)
                } else {
                    (total - total / 2, total / 2)
                }
            })
            .collect()
    } else if auto == "VALID" || auto == "NOTSET" {
        match node.ints("pads")? {
            Some(p) if p.len() == 2 * n => (0..n).map(|i| (p[i], p[i + n])).collect(),
            Some(p) => return Err(node.err(format!("pads {p:?}"))),
            None => vec![(0, 0); n],
        }
    } else {
        return Err(node.unsupported(format!("auto_pad {auto:?}")));
    };
    via_float(node, &[x, wt], |t| {
        let (s, d) = (&stride, &dil);
        let y = match n {
            1 => t[0].conv_transpose1d(&t[1], None, s[0], 0, 0, d[0], g)?,
            2 => {
                t[0].conv_transpose2d(&t[1], None, [s[0], s[1]], [0, 0], [0, 0], [d[0], d[1]], g)?
            }
            _ => t[0].conv_transpose3d(
                &t[1],
                None,
                [s[0], s[1], s[2]],
                [0; 3],
                [0; 3],
                [d[0], d[1], d[2]],
                g,
            )?,
        };
        let mut crop = vec![(0, 0); 2];
        // output_padding adds at the end: a negative crop there extends with zeros.
        crop.extend((0..n).map(|i| (-pads[i].0, out_pad[i] - pads[i].1)));
        let y = pad_const(node, &y, &crop, 0.0)?;
        match bias {
            Some(b) => {
                let b = b.to_dtype(y.dtype())?;
                y.add(&b.reshape(&channel_shape(b.numel(), y.rank()))?)
            }
            None => Ok(y),
        }
    })
}

/// Output length of a pooling axis and the extra end padding ceil_mode needs.
fn pool_len(len: usize, k: usize, s: usize, (b, e): (i64, i64), ceil: bool) -> (usize, i64) {
    let padded = len as i64 + b + e;
    let span = padded - k as i64;
    if span < 0 {
        return (0, 0);
    }
    let mut out = if ceil {
        span.div_euclid(s as i64) + i64::from(span % s as i64 != 0)
    } else {
        span / s as i64
    } + 1;
    // A window may not start inside the end padding.
    if ceil && (out - 1) * s as i64 >= len as i64 + b {
        out -= 1;
    }
    let need = (out - 1) * s as i64 + k as i64;
    (out as usize, (need - padded).max(0))
}

fn pool_geometry(node: &Node, x: &Tensor) -> Result<(usize, Window, Vec<i64>)> {
    let n = spatial_rank(node, x)?;
    let kernel = usizes(node, "kernel_shape", n, 0)?;
    if kernel.contains(&0) {
        return Err(node.err("kernel_shape is required"));
    }
    let w = window(node, &x.shape()[2..], kernel)?;
    if w.dil.iter().any(|&d| d != 1) {
        return Err(node.unsupported(format!("dilations {:?} in pooling", w.dil)));
    }
    let ceil = node.i("ceil_mode", 0)? == 1;
    let extra = (0..n)
        .map(|i| pool_len(x.shape()[2 + i], w.kernel[i], w.stride[i], w.pads[i], ceil).1)
        .collect();
    Ok((n, w, extra))
}

/// Pools an already padded input with no further padding.
fn pool_raw(x: &Tensor, n: usize, w: &Window, max: bool) -> Result<Tensor> {
    let (k, s) = (&w.kernel, &w.stride);
    match (n, max) {
        (1, true) => x.max_pool1d(k[0], s[0], 0),
        (1, false) => x.avg_pool1d(k[0], s[0], 0, true),
        (2, true) => x.max_pool2d([k[0], k[1]], [s[0], s[1]], [0, 0]),
        (2, false) => x.avg_pool2d([k[0], k[1]], [s[0], s[1]], [0, 0], true),
        (_, true) => x.max_pool3d([k[0], k[1], k[2]], [s[0], s[1], s[2]], [0; 3]),
        (_, false) => x.avg_pool3d([k[0], k[1], k[2]], [s[0], s[1], s[2]], [0; 3], true),
    }
}

fn with_extra(w: &Window, extra: &[i64]) -> Vec<(i64, i64)> {
    let mut p = vec![(0, 0); 2];
    p.extend(w.pads.iter().zip(extra).map(|(&(b, e), &x)| (b, e + x)));
    p
}

fn max_pool(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    if node.wants_output(1) {
        return Err(node.unsupported("Indices output"));
    }
    let (n, w, extra) = pool_geometry(node, x)?;
    let pads = with_extra(&w, &extra);
    via_float(node, &[x], |t| {
        let xp = pad_const(node, &t[0], &pads, f64::NEG_INFINITY)?;
        pool_raw(&xp, n, &w, true)
    })
}

fn avg_pool(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let (n, w, extra) = pool_geometry(node, x)?;
    let include = node.i("count_include_pad", 0)? == 1;
    let pads = with_extra(&w, &extra);
    let plain = extra.iter().all(|&e| e == 0) && (include || w.pads.iter().all(|&p| p == (0, 0)));
    via_float(node, &[x], |t| {
        let xp = pad_const(node, &t[0], &pads, 0.0)?;
        let sum = pool_raw(&xp, n, &w, false)?;
        if plain {
            return Ok(sum);
        }
        // The divisor counts the input (and the explicit pads with count_include_pad), never
        // the extra end padding of ceil_mode: pool a mask the same way and divide.
        let mut ms = vec![1, 1];
        ms.extend_from_slice(&t[0].shape()[2..]);
        let ones = Tensor::ones_on(&ms, t[0].dtype(), t[0].device())?;
        let m = pad_const(node, &ones, &full_pads(&w), if include { 1.0 } else { 0.0 })?;
        let mut tail = vec![(0, 0); 2];
        tail.extend(extra.iter().map(|&e| (0, e)));
        let m = pad_const(node, &m, &tail, 0.0)?;
        sum.div(&pool_raw(&m, n, &w, false)?)
    })
}

fn global(node: &Node, max: bool) -> Result<Tensor> {
    let x = node.input(0)?;
    let dims: Vec<isize> = (2..x.rank() as isize).collect();
    via_float(node, &[x], |t| {
        if !max {
            return t[0].mean(&dims, true);
        }
        let mut y = t[0].clone();
        for &d in &dims {
            y = y.max(d, true)?;
        }
        Ok(y)
    })
}

fn batch_norm(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    if node.i("training_mode", 0)? == 1
        || (node.opset >= 7 && node.opset < 14 && node.wants_output(1))
    {
        return Err(node.unsupported("training mode (only inference is implemented)"));
    }
    let eps = node.f("epsilon", 1e-5)? as f64;
    let ps = [
        node.input(1)?,
        node.input(2)?,
        node.input(3)?,
        node.input(4)?,
    ];
    let c = ps[0].numel();
    let shape = channel_shape(c, x.rank());
    let mut ts = vec![x];
    ts.extend(ps);
    via_float(node, &ts, |t| {
        let r = |i: usize| t[i].reshape(&shape);
        let scale = r(1)?.div(&r(4)?.add_scalar(eps)?.sqrt()?)?;
        t[0].sub(&r(3)?)?.mul(&scale)?.add(&r(2)?)
    })
}

fn instance_norm(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let eps = node.f("epsilon", 1e-5)? as f64;
    let (s, b) = (node.input(1)?, node.input(2)?);
    let shape = channel_shape(s.numel(), x.rank());
    let dims: Vec<isize> = (2..x.rank() as isize).collect();
    via_float(node, &[x, s, b], |t| {
        let m = t[0].mean(&dims, true)?;
        let v = t[0].var(&dims, 0, true)?;
        t[0].sub(&m)?
            .div(&v.add_scalar(eps)?.sqrt()?)?
            .mul(&t[1].reshape(&shape)?)?
            .add(&t[2].reshape(&shape)?)
    })
}

fn layer_norm(node: &Node) -> Result<Vec<Tensor>> {
    let x = node.input(0)?;
    let a = axis(node, node.i("axis", -1)?, x.rank())?;
    let eps = node.f("epsilon", 1e-5)? as f64;
    let dims: Vec<isize> = (a as isize..x.rank() as isize).collect();
    let mut ts = vec![x, node.input(1)?];
    ts.extend(node.opt_input(2));
    let mut stats = None;
    let y = via_float(node, &ts, |t| {
        let m = t[0].mean(&dims, true)?;
        let inv = t[0].var(&dims, 0, true)?.add_scalar(eps)?.rsqrt()?;
        let mut y = t[0].sub(&m)?.mul(&inv)?.mul(&t[1])?;
        if let Some(b) = t.get(2) {
            y = y.add(b)?;
        }
        stats = Some((m, inv));
        Ok(y)
    })?;
    let mut out = vec![y];
    if let Some((m, inv)) = stats {
        if node.wants_output(1) || node.wants_output(2) {
            out.push(m);
            out.push(inv);
        }
    }
    Ok(out)
}
