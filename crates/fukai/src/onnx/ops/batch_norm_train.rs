//! BatchNormalization in training mode (opset 14+): normalizes with the batch's own statistics
//! and returns the updated running mean and variance. Built from fukai ops, so it is
//! differentiable; inference mode is in nn.rs.

use super::super::attr::Node;
use super::util::{channel_shape, via_float};
use crate::error::Result;
use crate::Tensor;

/// Claims BatchNormalization nodes with `training_mode=1`; everything else goes on to nn.rs.
pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    if node.op_type() != "BatchNormalization" || node.opset < 14 {
        return None;
    }
    match node.i("training_mode", 0) {
        Ok(1) => Some(batch_norm_training(node)),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    }
}

fn batch_norm_training(node: &Node) -> Result<Vec<Tensor>> {
    let x = node.input(0)?;
    if x.rank() < 2 {
        return Err(node.err(format!(
            "input must be [N, C, ...], found shape {:?}",
            x.shape()
        )));
    }
    let eps = node.f("epsilon", 1e-5)? as f64;
    let momentum = node.f("momentum", 0.9)? as f64;
    let ps = [
        node.input(1)?,
        node.input(2)?,
        node.input(3)?,
        node.input(4)?,
    ];
    let c = x.shape()[1];
    if let Some(p) = ps.iter().find(|p| p.numel() != c) {
        return Err(node.err(format!(
            "scale, bias, mean and var must have {c} elements, found shape {:?}",
            p.shape()
        )));
    }
    let shape = channel_shape(c, x.rank());
    // Statistics over every axis but the channel one; the variance is the biased (population)
    // one, as ONNX's reference uses for both normalizing and the running update.
    let dims: Vec<isize> = (0..x.rank() as isize).filter(|&d| d != 1).collect();
    let mut ts = vec![x];
    ts.extend(ps);
    let mut running = None;
    let y = via_float(node, &ts, |t| {
        let r = |i: usize| t[i].reshape(&shape);
        let mean = t[0].mean(&dims, true)?;
        let var = t[0].var(&dims, 0, true)?;
        let y = t[0]
            .sub(&mean)?
            .div(&var.add_scalar(eps)?.sqrt()?)?
            .mul(&r(1)?)?
            .add(&r(2)?)?;
        let update = |run: &Tensor, batch: &Tensor| -> Result<Tensor> {
            run.mul_scalar(momentum)?
                .add(&batch.reshape(&[c])?.mul_scalar(1.0 - momentum)?)
        };
        running = Some((
            update(&t[3].reshape(&[c])?, &mean)?,
            update(&t[4].reshape(&[c])?, &var)?,
        ));
        Ok(y)
    })?;
    let mut out = vec![y];
    if let Some((m, v)) = running {
        let dt = node.input(3)?.dtype();
        out.push(node.ctx(m.to_dtype(dt))?);
        out.push(node.ctx(v.to_dtype(node.input(4)?.dtype()))?);
    }
    Ok(out)
}
