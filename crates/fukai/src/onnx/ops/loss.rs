//! Loss operators: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, built from fukai ops
//! so the loss stays differentiable in its scores.

use super::super::attr::Node;
use super::util::{compute_dtype, ints};
use crate::error::Result;
use crate::Tensor;

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    match node.op_type() {
        "NegativeLogLikelihoodLoss" => Some(node.input(0).and_then(|x| {
            let dt = x.dtype();
            let x = node.ctx(x.to_dtype(compute_dtype(dt)))?;
            let loss = nll(node, &x)?;
            Ok(vec![node.ctx(loss.to_dtype(dt))?])
        })),
        "SoftmaxCrossEntropyLoss" => Some(node.input(0).and_then(|x| {
            let dt = x.dtype();
            let x = node.ctx(x.to_dtype(compute_dtype(dt)))?;
            if x.rank() < 2 {
                return Err(node.err(format!("scores of shape {:?}: need [N, C, ...]", x.shape())));
            }
            let log_prob = node.ctx(x.log_softmax(1))?;
            let loss = nll(node, &log_prob)?;
            let mut out = vec![node.ctx(loss.to_dtype(dt))?];
            if node.wants_output(1) {
                out.push(node.ctx(log_prob.to_dtype(dt))?);
            }
            Ok(out)
        })),
        _ => None,
    }
}

/// The negative log-likelihood of `x` ([N, C, d...], log-probabilities) at the node's target
/// (input 1), with the optional class weights (input 2), `ignore_index` and `reduction`, as
/// ONNX's reference: a weighted mean divides by the sum of the weights actually used.
fn nll(node: &Node, x: &Tensor) -> Result<Tensor> {
    if x.rank() < 2 {
        return Err(node.err(format!("input of shape {:?}: need [N, C, ...]", x.shape())));
    }
    let c = x.shape()[1] as i64;
    let target_t = node.input(1)?;
    let target = ints(node, target_t)?;
    let ignore = node.opt_i("ignore_index")?;
    let reduction = node.s("reduction")?.unwrap_or_else(|| "mean".into());
    let tshape = target_t.shape().to_vec();
    let mut want = x.shape().to_vec();
    want.remove(1);
    if tshape != want {
        return Err(node.err(format!(
            "target shape {tshape:?} does not match input shape {:?}",
            x.shape()
        )));
    }
    let ignored = |t: i64| ignore == Some(t);
    for &t in &target {
        if !ignored(t) && !(0..c).contains(&t) {
            return Err(node.err(format!("target {t} out of range for {c} classes")));
        }
    }
    // Ignored positions gather class 0 and are then weighted by 0.
    let safe: Vec<i64> = target
        .iter()
        .map(|&t| if ignored(t) { 0 } else { t })
        .collect();
    let idx = node.ctx(Tensor::from_vec(safe, &tshape).and_then(|t| t.to(x.device())))?;
    let picked = node.ctx(
        idx.unsqueeze(1)
            .and_then(|i| x.gather(1, &i))
            .and_then(|g| g.squeeze(1))
            .and_then(|g| g.neg()),
    )?;
    let weight = match node.opt_input(2) {
        Some(w) => Some(super::util::floats(node, w)?),
        None => None,
    };
    let w: Option<Vec<f64>> = match (&weight, ignore) {
        (None, None) => None,
        _ => Some(
            target
                .iter()
                .map(|&t| {
                    if ignored(t) {
                        0.0
                    } else {
                        weight.as_ref().map_or(1.0, |w| w[t as usize])
                    }
                })
                .collect(),
        ),
    };
    let (loss, wsum) = match w {
        None => (picked, None),
        Some(w) => {
            let s: f64 = w.iter().sum();
            let wt = node.ctx(
                Tensor::from_vec(w, &tshape)
                    .and_then(|t| t.to_dtype(x.dtype()))
                    .and_then(|t| t.to(x.device())),
            )?;
            (node.ctx(picked.mul(&wt))?, Some(s))
        }
    };
    match reduction.as_str() {
        "none" => Ok(loss),
        "sum" => node.ctx(loss.sum_all()),
        "mean" => match wsum {
            Some(s) => node.ctx(loss.sum_all().and_then(|l| l.mul_scalar(1.0 / s))),
            None => node.ctx(loss.mean_all()),
        },
        r => Err(node.err(format!("reduction {r:?}"))),
    }
}
