//! Elementwise operators: arithmetic with NumPy broadcasting, activations, comparisons,
//! logic, Cast, Clip, Where.

use super::super::attr::Node;
use super::util::{host_map, host_zip, like, via_float};
use crate::error::Result;
use crate::ops::Binary;
use crate::{DType, Tensor};

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    let r = match node.op_type() {
        "Add" => binary(node, Binary::Add),
        "Sub" => binary(node, Binary::Sub),
        "Mul" => binary(node, Binary::Mul),
        "Div" => div(node),
        "Pow" => pow(node),
        "Max" => variadic(node, Binary::Maximum, false),
        "Min" => variadic(node, Binary::Minimum, false),
        "Sum" => variadic(node, Binary::Add, false),
        "Mean" => variadic(node, Binary::Add, true),
        "Mod" => modulo(node),
        "PRelu" => prelu(node),
        "Equal" => compare(node, Tensor::eq),
        "Less" => compare(node, Tensor::lt),
        "LessOrEqual" => compare(node, Tensor::le),
        "Greater" => compare(node, Tensor::gt),
        "GreaterOrEqual" => compare(node, Tensor::ge),
        "And" => logic(node, |a, b| a && b),
        "Or" => logic(node, |a, b| a || b),
        "Xor" => logic(node, |a, b| a != b),
        "Not" => host1(node, Some(DType::U8), |x| (x == 0.0) as u8 as f64),
        "Where" => where_op(node),
        "Cast" => cast(node),
        "CastLike" => node
            .input(1)
            .map(|t| t.dtype())
            .and_then(|dt| cast_to(node, dt)),
        "Clip" => clip(node),
        "Identity" => node.input(0).cloned(),
        "Dropout" => return Some(dropout(node)),
        _ => return unary(node),
    };
    Some(r.map(|t| vec![t]))
}

fn binary(node: &Node, op: Binary) -> Result<Tensor> {
    let (a, b) = (node.input(0)?, node.input(1)?);
    // Before opset 7, broadcasting was opt-in and aligned at `axis`.
    if node.opset < 7 && node.i("broadcast", 0)? == 1 && node.has("axis") {
        let ax = super::util::axis(node, node.i("axis", 0)?, a.rank())?;
        let mut shape = b.shape().to_vec();
        shape.extend(std::iter::repeat_n(
            1,
            a.rank().saturating_sub(ax + b.rank()),
        ));
        let b = node.ctx(b.reshape(&shape))?;
        return via_float(node, &[a, &b], |t| t[0].binary(&t[1], op));
    }
    via_float(node, &[a, b], |t| t[0].binary(&t[1], op))
}

fn div(node: &Node) -> Result<Tensor> {
    let (a, b) = (node.input(0)?, node.input(1)?);
    if a.dtype().is_float() {
        return binary(node, Binary::Div);
    }
    // Integer division truncates toward zero (C and ONNX Runtime), exact in f64 here.
    host_zip(node, a, b, a.dtype(), |x, y| (x / y).trunc())
}

fn pow(node: &Node) -> Result<Tensor> {
    let (a, b) = (node.input(0)?, node.input(1)?);
    // The exponent may have its own type since opset 12.
    let b = node.ctx(b.to_dtype(a.dtype()))?;
    if a.dtype().is_float() {
        return via_float(node, &[a, &b], |t| t[0].pow(&t[1]));
    }
    host_zip(node, a, &b, a.dtype(), f64::powf)
}

fn modulo(node: &Node) -> Result<Tensor> {
    let (a, b) = (node.input(0)?, node.input(1)?);
    if node.i("fmod", 0)? == 1 {
        return host_zip(node, a, b, a.dtype(), |x, y| x % y);
    }
    // Python's sign convention: the result has the divisor's sign.
    host_zip(node, a, b, a.dtype(), |x, y| {
        let r = x % y;
        if r != 0.0 && (r < 0.0) != (y < 0.0) {
            r + y
        } else {
            r
        }
    })
}

fn variadic(node: &Node, op: Binary, mean: bool) -> Result<Tensor> {
    let n = node.inputs.len();
    let mut acc = node.input(0)?.clone();
    for i in 1..n {
        let b = node.input(i)?;
        acc = via_float(node, &[&acc, b], |t| t[0].binary(&t[1], op))?;
    }
    if mean {
        acc = via_float(node, &[&acc], |t| t[0].mul_scalar(1.0 / n as f64))?;
    }
    Ok(acc)
}

fn prelu(node: &Node) -> Result<Tensor> {
    let (x, slope) = (node.input(0)?, node.input(1)?);
    let mut slope = slope.clone();
    // Old exports give a per-channel slope [C] for [N, C, ...] inputs.
    if slope.rank() == 1
        && x.rank() > 2
        && slope.shape()[0] == x.shape()[1]
        && slope.shape()[0] != 1
    {
        slope =
            node.ctx(slope.reshape(&super::util::channel_shape(slope.shape()[0], x.rank())[1..]))?;
    }
    via_float(node, &[x, &slope], |t| {
        let neg = t[0].neg()?.relu()?.neg()?;
        t[0].relu()?.add(&neg.mul(&t[1])?)
    })
}

fn compare(node: &Node, f: fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let (a, b) = (node.input(0)?, node.input(1)?);
    node.ctx(f(a, b))
}

fn logic(node: &Node, f: fn(bool, bool) -> bool) -> Result<Tensor> {
    let (a, b) = (node.input(0)?, node.input(1)?);
    host_zip(node, a, b, DType::U8, |x, y| {
        f(x != 0.0, y != 0.0) as u8 as f64
    })
}

fn where_op(node: &Node) -> Result<Tensor> {
    let (c, a, b) = (node.input(0)?, node.input(1)?, node.input(2)?);
    let c = node.ctx(c.to_dtype(DType::U8))?;
    via_float(node, &[a, b], |t| c.where_cond(&t[0], &t[1]))
}

fn cast(node: &Node) -> Result<Tensor> {
    let to = node.i("to", 0)?;
    let dt = super::super::tensor::dtype_from_onnx(to as i32)
        .ok_or_else(|| node.unsupported(format!("cast to data type {to}")))?;
    if to == 9 {
        // BOOL: any non-zero is true (a plain conversion would truncate 0.5 to 0).
        let x = node.input(0)?;
        return node.ctx(x.ne(&Tensor::full_on(&[], 0.0, x.dtype(), x.device())?));
    }
    cast_to(node, dt)
}

fn cast_to(node: &Node, dt: DType) -> Result<Tensor> {
    node.ctx(node.input(0)?.to_dtype(dt))
}

fn clip(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let (lo, hi) = if node.opset < 11 {
        (
            node.f("min", f32::MIN)? as f64,
            node.f("max", f32::MAX)? as f64,
        )
    } else {
        let get = |i| -> Result<Option<f64>> {
            node.opt_input(i)
                .map(|t| super::util::scalar(node, t))
                .transpose()
        };
        (
            get(1)?.unwrap_or(f64::NEG_INFINITY),
            get(2)?.unwrap_or(f64::INFINITY),
        )
    };
    via_float(node, &[x], |t| {
        // clamp asserts lo <= hi; ONNX then gives hi everywhere (min applied last).
        if lo > hi {
            return t[0].mul_scalar(0.0)?.add_scalar(hi);
        }
        t[0].clamp(lo, hi)
    })
}

fn dropout(node: &Node) -> Result<Vec<Tensor>> {
    let x = node.input(0)?;
    let training = node
        .opt_input(2)
        .map(|t| super::util::scalar(node, t))
        .transpose()?;
    let ratio = match node.opt_input(1) {
        Some(t) => super::util::scalar(node, t)?,
        None => 0.5,
    };
    // With ratio 0 training drops nothing, so it is the identity with an all-true mask.
    if training.unwrap_or(0.0) != 0.0 && ratio != 0.0 {
        return super::dropout::train(node, x, ratio);
    }
    let mut out = vec![x.clone()];
    if node.wants_output(1) {
        out.push(node.ctx(Tensor::ones_on(x.shape(), DType::U8, x.device()))?);
    }
    Ok(out)
}

fn host1(node: &Node, out: Option<DType>, f: impl Fn(f64) -> f64) -> Result<Tensor> {
    host_map(node, node.input(0)?, out, f)
}

fn f1(node: &Node, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    via_float(node, &[node.input(0)?], |t| f(&t[0]))
}

/// exp(min(x, 0)/a) - 1, the negative branch of ELU-like functions.
fn expm1_neg(x: &Tensor, a: f64) -> Result<Tensor> {
    x.neg()?
        .relu()?
        .mul_scalar(-1.0 / a)?
        .exp()?
        .add_scalar(-1.0)
}

fn unary(node: &Node) -> Option<Result<Vec<Tensor>>> {
    let r = match node.op_type() {
        "Neg" => f1(node, Tensor::neg),
        "Abs" => f1(node, Tensor::abs),
        "Sqrt" => f1(node, Tensor::sqrt),
        "Exp" => f1(node, Tensor::exp),
        "Log" => f1(node, Tensor::log),
        "Relu" => f1(node, Tensor::relu),
        "Sigmoid" => f1(node, Tensor::sigmoid),
        "Tanh" => f1(node, Tensor::tanh),
        "Sin" => f1(node, Tensor::sin),
        "Cos" => f1(node, Tensor::cos),
        "Reciprocal" => f1(node, Tensor::recip),
        "LeakyRelu" => node
            .f("alpha", 0.01)
            .and_then(|a| f1(node, |x| x.leaky_relu(a as f64))),
        "Elu" => node.f("alpha", 1.0).and_then(|a| {
            f1(node, |x| {
                x.relu()?.add(&expm1_neg(x, 1.0)?.mul_scalar(a as f64)?)
            })
        }),
        "Celu" => node.f("alpha", 1.0).and_then(|a| {
            let a = a as f64;
            f1(node, |x| x.relu()?.add(&expm1_neg(x, a)?.mul_scalar(a)?))
        }),
        "Selu" => (|| {
            let a = node.f("alpha", 1.673_263_2)? as f64;
            let g = node.f("gamma", 1.050_701)? as f64;
            f1(node, |x| {
                x.relu()?
                    .add(&expm1_neg(x, 1.0)?.mul_scalar(a)?)?
                    .mul_scalar(g)
            })
        })(),
        // relu(x) + log(1 + e^-|x|): no overflow for large |x|.
        "Softplus" => f1(node, |x| {
            x.relu()?
                .add(&x.abs()?.neg()?.exp()?.add_scalar(1.0)?.log()?)
        }),
        "Softsign" => f1(node, |x| x.div(&x.abs()?.add_scalar(1.0)?)),
        "HardSigmoid" => (|| {
            let a = node.f("alpha", 0.2)? as f64;
            let b = node.f("beta", 0.5)? as f64;
            f1(node, |x| x.affine(a, b)?.clamp(0.0, 1.0))
        })(),
        "HardSwish" => f1(node, |x| x.mul(&x.affine(1.0 / 6.0, 0.5)?.clamp(0.0, 1.0)?)),
        "Mish" => f1(node, |x| {
            let sp = x
                .relu()?
                .add(&x.abs()?.neg()?.exp()?.add_scalar(1.0)?.log()?)?;
            x.mul(&sp.tanh()?)
        }),
        "ThresholdedRelu" => node.f("alpha", 1.0).and_then(|a| {
            let x = node.input(0)?;
            let m = node.ctx(x.gt(&like(node, x, a as f64)?))?;
            via_float(node, &[x], |t| m.where_cond(&t[0], &t[0].mul_scalar(0.0)?))
        }),
        "Erf" => host1(node, None, libm::erf),
        "Floor" => host1(node, None, f64::floor),
        "Ceil" => host1(node, None, f64::ceil),
        "Round" => host1(node, None, f64::round_ties_even),
        "Sign" => host1(node, None, |x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }),
        "Tan" => host1(node, None, f64::tan),
        "Asin" => host1(node, None, f64::asin),
        "Acos" => host1(node, None, f64::acos),
        "Atan" => host1(node, None, f64::atan),
        "Sinh" => host1(node, None, f64::sinh),
        "Cosh" => host1(node, None, f64::cosh),
        "Asinh" => host1(node, None, f64::asinh),
        "Acosh" => host1(node, None, f64::acosh),
        "Atanh" => host1(node, None, f64::atanh),
        "IsNaN" => host1(node, Some(DType::U8), |x| x.is_nan() as u8 as f64),
        "IsInf" => (|| {
            let pos = node.i("detect_positive", 1)? != 0;
            let neg = node.i("detect_negative", 1)? != 0;
            host1(node, Some(DType::U8), move |x| {
                ((x == f64::INFINITY && pos) || (x == f64::NEG_INFINITY && neg)) as u8 as f64
            })
        })(),
        _ => return None,
    };
    Some(r.map(|t| vec![t]))
}
