//! Quantization operators and the ai.onnx.preview.training optimizers, on the host in f64
//! (integer arithmetic is exact there at these magnitudes).

use super::super::attr::Node;
use super::util::{axis, floats};
use crate::error::Result;
use crate::{DType, Tensor};

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    let training = node.proto.domain() == "ai.onnx.preview.training";
    Some(match (training, node.op_type()) {
        (false, "QuantizeLinear") => quantize(node).map(|t| vec![t]),
        (false, "DequantizeLinear") => dequantize(node).map(|t| vec![t]),
        (false, "DynamicQuantizeLinear") => dynamic_quantize(node),
        (false, "MatMulInteger") => matmul_integer(node).map(|t| vec![t]),
        (false, "QLinearMatMul") => qlinear_matmul(node).map(|t| vec![t]),
        (false, "ConvInteger") => conv_integer(node).map(|t| vec![t]),
        (false, "QLinearConv") => qlinear_conv(node).map(|t| vec![t]),
        (true, "Adagrad" | "Adam" | "Momentum") => optimizer(node),
        _ => return None,
    })
}

/// Broadcasts a per-axis parameter (scale or zero point) along `axis` of a rank-`rank` tensor.
fn along(node: &Node, p: &Tensor, a: usize, rank: usize) -> Result<Tensor> {
    if p.rank() == 0 || p.numel() == 1 {
        return node.ctx(p.reshape(&[]));
    }
    let mut s = vec![1; rank];
    s[a] = p.numel();
    node.ctx(p.reshape(&s))
}

/// The integer range of a quantized type: fukai holds uint8 as U8 and int8 as I64.
fn range_of(dt: DType) -> (f64, f64) {
    if dt == DType::U8 {
        (0.0, 255.0)
    } else {
        (-128.0, 127.0)
    }
}

fn f64t(node: &Node, t: &Tensor) -> Result<Tensor> {
    node.ctx(t.to_dtype(DType::F64))
}

fn quant_values(
    node: &Node,
    x: &Tensor,
    scale: &Tensor,
    zp: Option<&Tensor>,
    a: usize,
) -> Result<Tensor> {
    let r = x.rank();
    let out_dt = zp.map_or(DType::U8, |z| z.dtype());
    let (lo, hi) = range_of(out_dt);
    // x / scale is rounded in x's own precision (float32 for float32 inputs), as ONNX's
    // reference and ONNX Runtime do: in f64 a quotient like 25.4999991 would round the
    // other way from float32's 25.5.
    let cd = super::util::compute_dtype(x.dtype());
    let q = node.ctx(
        x.to_dtype(cd)
            .and_then(|xc| xc.div(&along(node, &scale.to_dtype(cd)?, a, r)?))
            .and_then(|q| q.to_dtype(DType::F64)),
    )?;
    let q = super::util::host_map(node, &q, Some(DType::F64), f64::round_ties_even)?;
    let q = match zp {
        Some(z) => node.ctx(q.add(&along(node, &f64t(node, z)?, a, r)?))?,
        None => q,
    };
    node.ctx(q.clamp(lo, hi).and_then(|t| t.to_dtype(out_dt)))
}

/// The axis a per-axis scale runs along; a scalar scale ignores it (and a 1-D input may
/// leave the default axis 1 out of range).
fn per_axis(node: &Node, x: &Tensor) -> Result<usize> {
    if node.input(1)?.numel() <= 1 {
        return Ok(0);
    }
    axis(node, node.i("axis", 1)?, x.rank())
}

fn quantize(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let a = per_axis(node, x)?;
    quant_values(node, x, node.input(1)?, node.opt_input(2), a)
}

fn dequantize(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let r = x.rank();
    let a = per_axis(node, x)?;
    let s = f64t(node, node.input(1)?)?;
    let mut v = f64t(node, x)?;
    if let Some(z) = node.opt_input(2) {
        v = node.ctx(v.sub(&along(node, &f64t(node, z)?, a, r)?))?;
    }
    node.ctx(
        v.mul(&along(node, &s, a, r)?)
            .and_then(|t| t.to_dtype(node.input(1)?.dtype())),
    )
}

fn dynamic_quantize(node: &Node) -> Result<Vec<Tensor>> {
    let x = node.input(0)?;
    let v = floats(node, x)?;
    let lo = v.iter().copied().fold(0.0f64, f64::min);
    let hi = v.iter().copied().fold(0.0f64, f64::max);
    // The scale is computed in float32, as the reference does.
    let scale = ((hi - lo) as f32 / 255.0) as f64;
    let s32 = scale as f32;
    let zp = (0.0 - lo as f32 / s32).round_ties_even().clamp(0.0, 255.0) as f64;
    let y: Vec<f64> = v
        .iter()
        .map(|&x| ((x as f32 / s32).round_ties_even() as f64 + zp).clamp(0.0, 255.0))
        .collect();
    Ok(vec![
        node.ctx(Tensor::from_vec(y, x.shape()).and_then(|t| t.to_dtype(DType::U8)))?,
        node.ctx(Tensor::from_vec(vec![scale], &[]).and_then(|t| t.to_dtype(DType::F32)))?,
        node.ctx(Tensor::from_vec(vec![zp], &[]).and_then(|t| t.to_dtype(DType::U8)))?,
    ])
}

/// `t - zp` in f64, with a per-row (for A) or per-column (for B) zero point broadcast.
fn centered(node: &Node, t: &Tensor, zp: Option<&Tensor>, rows: bool) -> Result<Tensor> {
    let v = f64t(node, t)?;
    let Some(z) = zp else { return Ok(v) };
    let z = f64t(node, z)?;
    let z = if z.numel() > 1 && rows {
        node.ctx(z.reshape(&[z.numel(), 1]))?
    } else {
        z
    };
    node.ctx(v.sub(&z))
}

fn matmul_integer(node: &Node) -> Result<Tensor> {
    let a = centered(node, node.input(0)?, node.opt_input(2), true)?;
    let b = centered(node, node.input(1)?, node.opt_input(3), false)?;
    node.ctx(a.matmul(&b).and_then(|t| t.to_dtype(DType::I64)))
}

fn qlinear_matmul(node: &Node) -> Result<Tensor> {
    let a = centered(node, node.input(0)?, node.opt_input(2), true)?;
    let b = centered(node, node.input(3)?, node.opt_input(5), false)?;
    let s = node.ctx(f64t(node, node.input(1)?)?.mul(&f64t(node, node.input(3 + 1)?)?))?;
    let y = node.ctx(a.matmul(&b).and_then(|t| t.mul(&s)))?;
    quant_values(node, &y, node.input(6)?, node.opt_input(7), 0)
}

/// Runs the Conv operator of this node's attributes on `x` and `w` (f64, exact for integers).
fn conv_with(node: &Node, x: Tensor, w: Tensor, b: Option<Tensor>) -> Result<Tensor> {
    let conv = Node {
        proto: node.proto,
        opset: node.opset,
        inputs: vec![Some(x), Some(w), b],
    };
    super::nn::conv_node(&conv)
}

fn conv_integer(node: &Node) -> Result<Tensor> {
    let x = centered(node, node.input(0)?, node.opt_input(2), false)?;
    let w = node.input(1)?;
    let w = centered(node, w, None, false)?;
    let w = match node.opt_input(3) {
        Some(z) => node.ctx(w.sub(&along(node, &f64t(node, z)?, 0, w.rank())?))?,
        None => w,
    };
    node.ctx(conv_with(node, x, w, None)?.to_dtype(DType::I64))
}

fn qlinear_conv(node: &Node) -> Result<Tensor> {
    let x = centered(node, node.input(0)?, node.opt_input(2), false)?;
    let w = f64t(node, node.input(3)?)?;
    let w = match node.opt_input(5) {
        Some(z) => node.ctx(w.sub(&along(node, &f64t(node, z)?, 0, w.rank())?))?,
        None => w,
    };
    let b = node.opt_input(8).map(|b| f64t(node, b)).transpose()?;
    let acc = conv_with(node, x, w, b)?;
    let xs = f64t(node, node.input(1)?)?;
    let ws = along(node, &f64t(node, node.input(4)?)?, 1, acc.rank())?;
    let y = node.ctx(acc.mul(&xs).and_then(|t| t.mul(&ws)))?;
    quant_values(node, &y, node.input(6)?, node.opt_input(7), 1)
}

fn optimizer(node: &Node) -> Result<Vec<Tensor>> {
    let r = super::util::scalar(node, node.input(0)?)?;
    let t = super::util::scalar(node, node.input(1)?)?;
    let rest: Vec<&Tensor> = (2..node.inputs.len())
        .map(|i| node.input(i))
        .collect::<Result<_>>()?;
    let kind = node.op_type();
    let groups = if kind == "Adam" { 4 } else { 3 };
    if !rest.len().is_multiple_of(groups) {
        return Err(node.err(format!("{} tensor inputs for {kind}", rest.len())));
    }
    let n = rest.len() / groups;
    let norm = node.f("norm_coefficient", 0.0)? as f64;
    let mut outs: Vec<Vec<Tensor>> = vec![Vec::new(); groups - 1];
    for i in 0..n {
        let x = floats(node, rest[i])?;
        let g = floats(node, rest[n + i])?;
        let gr: Vec<f64> = x.iter().zip(&g).map(|(x, g)| norm * x + g).collect();
        let mk = |v: Vec<f64>| -> Result<Tensor> {
            node.ctx(Tensor::from_vec(v, rest[i].shape()).and_then(|t| t.to_dtype(rest[i].dtype())))
        };
        match kind {
            "Adagrad" => {
                let h = floats(node, rest[2 * n + i])?;
                let decay = node.f("decay_factor", 0.0)? as f64;
                let eps = node.f("epsilon", 0.0)? as f64;
                let rr = r / (1.0 + t * decay);
                let hn: Vec<f64> = h.iter().zip(&gr).map(|(h, g)| h + g * g).collect();
                let xn = (0..x.len())
                    .map(|k| x[k] - rr * gr[k] / (hn[k].sqrt() + eps))
                    .collect();
                outs[0].push(mk(xn)?);
                outs[1].push(mk(hn)?);
            }
            "Momentum" => {
                let v = floats(node, rest[2 * n + i])?;
                let alpha = node.f("alpha", 0.0)? as f64;
                let beta = node.f("beta", 0.0)? as f64;
                let nesterov = match node.s("mode")?.as_deref() {
                    Some("nesterov") => true,
                    Some("standard") | None => false,
                    Some(m) => return Err(node.err(format!("mode {m:?}"))),
                };
                let b = if t > 0.0 { beta } else { 1.0 };
                let vn: Vec<f64> = v.iter().zip(&gr).map(|(v, g)| alpha * v + b * g).collect();
                let xn = (0..x.len())
                    .map(|k| {
                        if nesterov {
                            x[k] - r * (gr[k] + alpha * vn[k])
                        } else {
                            x[k] - r * vn[k]
                        }
                    })
                    .collect();
                outs[0].push(mk(xn)?);
                outs[1].push(mk(vn)?);
            }
            _ => {
                let v = floats(node, rest[2 * n + i])?;
                let h = floats(node, rest[3 * n + i])?;
                let alpha = node.f("alpha", 0.9)? as f64;
                let beta = node.f("beta", 0.999)? as f64;
                let eps = node.f("epsilon", 0.0)? as f64;
                let post = node.f("norm_coefficient_post", 0.0)? as f64;
                let vn: Vec<f64> = v
                    .iter()
                    .zip(&gr)
                    .map(|(v, g)| alpha * v + (1.0 - alpha) * g)
                    .collect();
                let hn: Vec<f64> = h
                    .iter()
                    .zip(&gr)
                    .map(|(h, g)| beta * h + (1.0 - beta) * g * g)
                    .collect();
                let ra = if t > 0.0 {
                    r * (1.0 - beta.powf(t)).sqrt() / (1.0 - alpha.powf(t))
                } else {
                    r
                };
                let xn = (0..x.len())
                    .map(|k| (1.0 - post) * (x[k] - ra * vn[k] / (hn[k].sqrt() + eps)))
                    .collect();
                outs[0].push(mk(xn)?);
                outs[1].push(mk(vn)?);
                outs[2].push(mk(hn)?);
            }
        }
    }
    Ok(outs.into_iter().flatten().collect())
}
