//! Control flow (If, Loop, Scan): operators whose attributes are subgraphs, run eagerly by the
//! interpreter with the enclosing scope visible. Tensors flow through unchanged, so gradients
//! reach whatever the taken branch or the unrolled iterations computed. Errors inside a
//! subgraph already name the inner node, so they pass through unwrapped.

use super::attr::Node;
use super::model::{run_subgraph, Scope};
use super::ops::util::{axis, scalar};
use super::proto::GraphProto;
use crate::error::Result;
use crate::{DType, Tensor};

/// Runs `node` if it is a control-flow operator; `None` hands it to the ordinary operators.
pub(super) fn run(node: &Node, env: &Scope) -> Option<Result<Vec<Tensor>>> {
    match node.op_type() {
        "If" => Some(if_op(node, env)),
        "Loop" => Some(loop_op(node, env)),
        "Scan" => Some(scan(node, env)),
        _ => None,
    }
}

fn graph<'a>(node: &'a Node, name: &str) -> Result<&'a GraphProto> {
    node.g(name)?
        .ok_or_else(|| node.err(format!("graph attribute {name} is required")))
}

fn truthy(node: &Node, t: &Tensor) -> Result<bool> {
    Ok(scalar(node, t)? != 0.0)
}

fn if_op(node: &Node, env: &Scope) -> Result<Vec<Tensor>> {
    let branch = if truthy(node, node.input(0)?)? {
        "then_branch"
    } else {
        "else_branch"
    };
    run_subgraph(graph(node, branch)?, node.opset, env, Vec::new())
}

/// Stacks per-iteration values along a new axis 0 (the scan outputs of Loop and Scan).
fn stack(node: &Node, parts: &[Tensor], what: &str) -> Result<Tensor> {
    if parts.is_empty() {
        // No iteration ran, so the element shape is unknown; ONNX Runtime gives an empty
        // tensor here too.
        return node.ctx(Tensor::zeros(&[0], DType::F32));
    }
    node.ctx(Tensor::stack(parts, 0))
        .map_err(|e| node.err(format!("{what}: iterations disagree in shape: {e}")))
}

fn loop_op(node: &Node, env: &Scope) -> Result<Vec<Tensor>> {
    let body = graph(node, "body")?;
    let max_trips = node
        .opt_input(0)
        .map(|t| scalar(node, t).map(|v| v as i64))
        .transpose()?;
    let mut cond = node.opt_input(1).map(|t| truthy(node, t)).transpose()?;
    let mut carried: Vec<Tensor> = (2..node.inputs.len())
        .map(|i| node.input(i).cloned())
        .collect::<Result<_>>()?;
    let n_carried = carried.len();
    if body.input.len() != n_carried + 2 {
        return Err(node.err(format!(
            "the body takes {} inputs; Loop passes the iteration number, the condition and {n_carried} loop-carried values",
            body.input.len()
        )));
    }
    if body.output.len() < n_carried + 1 {
        return Err(node.err(format!(
            "the body has {} outputs, fewer than the condition and {n_carried} loop-carried values",
            body.output.len()
        )));
    }
    if max_trips.is_none() && cond.is_none() {
        // ONNX allows it (a loop the body must end), but a body that never ends would hang.
        return Err(node.unsupported("Loop with neither a trip count nor a condition"));
    }
    let n_scan = body.output.len() - 1 - n_carried;
    let mut scans: Vec<Vec<Tensor>> = vec![Vec::new(); n_scan];
    let mut i = 0i64;
    while max_trips.is_none_or(|m| i < m) && cond.unwrap_or(true) {
        let iter = node.ctx(Tensor::from_vec(vec![i], &[]))?;
        let c = node.ctx(Tensor::from_vec(vec![u8::from(cond.unwrap_or(true))], &[]))?;
        let mut args = vec![iter, c];
        args.append(&mut carried);
        let mut outs = run_subgraph(body, node.opset, env, args)?;
        let rest = outs.split_off(1);
        // The body's condition output only matters when the loop has a condition.
        if cond.is_some() {
            cond = Some(truthy(node, &outs[0])?);
        }
        let mut rest = rest.into_iter();
        carried = rest.by_ref().take(n_carried).collect();
        for (s, t) in scans.iter_mut().zip(rest) {
            s.push(t);
        }
        i += 1;
    }
    let mut out = carried;
    for s in &scans {
        out.push(stack(node, s, "a scan output")?);
    }
    Ok(out)
}

/// Scan: opset 8 has a leading batch axis on every input and an optional sequence_lens input;
/// opset 9 dropped both and added per-input axes and directions.
fn scan(node: &Node, env: &Scope) -> Result<Vec<Tensor>> {
    let body = graph(node, "body")?;
    let n_scan_in = usize::try_from(node.i("num_scan_inputs", -1)?)
        .map_err(|_| node.err("num_scan_inputs is required"))?;
    if node.opset < 9 {
        if node.opt_input(0).is_some() {
            return Err(node.unsupported("sequence_lens (only full-length sequences)"));
        }
        let ins: Vec<Tensor> = (1..node.inputs.len())
            .map(|i| node.input(i).cloned())
            .collect::<Result<_>>()?;
        let batch = ins
            .first()
            .map_or(0, |t| t.shape().first().copied().unwrap_or(0));
        let mut per_batch = Vec::with_capacity(batch);
        for b in 0..batch {
            let slice: Vec<Tensor> = ins
                .iter()
                .map(|t| node.ctx(t.narrow(0, b, 1).and_then(|t| t.squeeze(0))))
                .collect::<Result<_>>()?;
            let axes = Axes {
                in_dirs: node.ints("directions")?.unwrap_or_default(),
                ..Axes::default()
            };
            per_batch.push(scan_once(node, env, body, slice, n_scan_in, &axes)?);
        }
        // Re-add the batch axis to every output.
        let n_out = per_batch.first().map_or(0, Vec::len);
        return (0..n_out)
            .map(|k| {
                let parts: Vec<Tensor> = per_batch.iter().map(|o| o[k].clone()).collect();
                stack(node, &parts, "Scan output")
            })
            .collect();
    }
    let ins: Vec<Tensor> = (0..node.inputs.len())
        .map(|i| node.input(i).cloned())
        .collect::<Result<_>>()?;
    let axes = Axes {
        in_dirs: node.ints("scan_input_directions")?.unwrap_or_default(),
        in_axes: node.ints("scan_input_axes")?.unwrap_or_default(),
        out_dirs: node.ints("scan_output_directions")?.unwrap_or_default(),
        out_axes: node.ints("scan_output_axes")?.unwrap_or_default(),
    };
    scan_once(node, env, body, ins, n_scan_in, &axes)
}

/// Per scan input and output: its axis and whether it runs in reverse (1) or forward (0).
#[derive(Default)]
struct Axes {
    in_dirs: Vec<i64>,
    in_axes: Vec<i64>,
    out_dirs: Vec<i64>,
    out_axes: Vec<i64>,
}

/// One scan over `ins` (states then scan inputs, without a batch axis); returns the final
/// states then the stacked scan outputs (along their axes).
fn scan_once(
    node: &Node,
    env: &Scope,
    body: &GraphProto,
    ins: Vec<Tensor>,
    n_scan_in: usize,
    axes: &Axes,
) -> Result<Vec<Tensor>> {
    if n_scan_in > ins.len() {
        return Err(node.err(format!(
            "num_scan_inputs {n_scan_in} exceeds the {} inputs",
            ins.len()
        )));
    }
    let n_state = ins.len() - n_scan_in;
    let mut state = ins[..n_state].to_vec();
    let mut scan_ins = Vec::with_capacity(n_scan_in);
    let mut len = None;
    for (k, t) in ins[n_state..].iter().enumerate() {
        let a = axis(node, axes.in_axes.get(k).copied().unwrap_or(0), t.rank())?;
        let l = t.shape()[a];
        if len.is_some_and(|n| n != l) {
            return Err(node.err(format!(
                "scan inputs disagree in length ({} vs {l})",
                len.unwrap_or(0)
            )));
        }
        len = Some(l);
        scan_ins.push((t, a, axes.in_dirs.get(k).copied().unwrap_or(0) == 1));
    }
    let len = len.unwrap_or(0);
    let n_scan_out = body.output.len().saturating_sub(n_state);
    let mut scans: Vec<Vec<Tensor>> = vec![Vec::new(); n_scan_out];
    for step in 0..len {
        let mut args = state.clone();
        for (t, a, reverse) in &scan_ins {
            let at = if *reverse { len - 1 - step } else { step };
            args.push(
                node.ctx(
                    t.narrow(*a as isize, at, 1)
                        .and_then(|s| s.squeeze(*a as isize)),
                )?,
            );
        }
        let outs = run_subgraph(body, node.opset, env, args)?;
        if outs.len() < n_state {
            return Err(node.err(format!(
                "the body has {} outputs, fewer than the {n_state} states",
                outs.len()
            )));
        }
        let mut outs = outs.into_iter();
        state = outs.by_ref().take(n_state).collect();
        for (s, t) in scans.iter_mut().zip(outs) {
            s.push(t);
        }
    }
    let mut result = state;
    for (k, mut s) in scans.into_iter().enumerate() {
        if axes.out_dirs.get(k).copied().unwrap_or(0) == 1 {
            s.reverse();
        }
        let y = stack(node, &s, "a scan output")?;
        let a = axes.out_axes.get(k).copied().unwrap_or(0);
        let y = if a != 0 && y.rank() > 0 {
            let a = axis(node, a, y.rank())?;
            // Move the stacking axis 0 to `a`.
            let perm: Vec<isize> = (0..y.rank())
                .map(|j| match j.cmp(&a) {
                    std::cmp::Ordering::Less => j as isize + 1,
                    std::cmp::Ordering::Equal => 0,
                    std::cmp::Ordering::Greater => j as isize,
                })
                .collect();
            node.ctx(y.permute(&perm))?
        } else {
            y
        };
        result.push(y);
    }
    Ok(result)
}
