//! Recurrent stacks ([`Rnn`]) as ONNX `RNN` / `GRU` / `LSTM` nodes, one per layer with both
//! directions in the same node.
//!
//! fukai's gates are PyTorch's (LSTM i f g o, GRU r z n); ONNX orders them i o f c and z r h,
//! so W, R and B are repacked at export and stored under names of their own
//! (`{prefix}.W_l0`, `.R_l0`, `.B_l0`): no state-dict tensor has their layout. fukai's GRU
//! applies the reset gate after the recurrent product, which is ONNX's
//! `linear_before_reset = 1`. The nodes run time-major: ONNX Runtime's CPU kernels reject
//! `layout = 1`, so batch-first callers transpose around the stack instead.

use super::layers::transpose;
use super::{attr_int, attr_string, attr_strings, Graph, Value};
use crate::error::Result;
use crate::nn::{join, Rnn};
use crate::ops::CellKind;
use crate::tensor::Tensor;

/// What [`rnn_stack`] computed.
pub struct RnnValues {
    /// The last layer's output at every step, `[T, B, D·H]` (both directions side by side),
    /// when asked for.
    pub output: Option<Value>,
    /// The last layer's final hidden state, `[B, D·H]` (forward then reverse).
    pub h_last: Value,
}

/// One direction's `([w_ih, w_hh], [b_ih, b_hh])`, as `Rnn::weights` lists them.
type DirWeights<'a> = ([&'a Tensor; 2], [Option<&'a Tensor>; 2]);

/// `t`'s `[G·H, ...]` rows with the gate blocks in ONNX's order.
fn onnx_gates(cell: CellKind, t: &Tensor, h: usize) -> Result<Tensor> {
    let order: &[usize] = match cell {
        CellKind::Lstm => &[0, 3, 1, 2],
        CellKind::Gru => &[1, 0, 2],
        CellKind::RnnTanh | CellKind::RnnRelu => return Ok(t.detach()),
    };
    let blocks = order
        .iter()
        .map(|&k| t.detach().narrow(0, k * h, h))
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&blocks, 0)
}

/// `y`, whose dim `axis` holds the `dirs` directions, with that dim moved next to the last
/// (the hidden units) and merged into it: fukai's `[.., D·H]` layout.
fn merge_dirs(g: &mut Graph, y: &Value, axis: usize, dirs: usize, hint: &str) -> Result<Value> {
    let r = y.rank();
    let h = y.shape[r - 1];
    if dirs == 1 {
        let axes = g.ints("axes", &[axis as i64])?;
        let name = g.op("Squeeze", &[&y.name, &axes], vec![], hint);
        let mut shape = y.shape.clone();
        shape.remove(axis);
        return Ok(Value {
            name,
            shape,
            dtype: y.dtype,
        });
    }
    let mut perm: Vec<usize> = (0..r - 1).filter(|&i| i != axis).collect();
    perm.extend([axis, r - 1]);
    let t = transpose(g, y, &perm, hint);
    let mut spec = vec![0i64; r - 2];
    spec.push(-1);
    let spec = g.ints("shape", &spec)?;
    let name = g.op("Reshape", &[&t.name, &spec], vec![], hint);
    let mut shape = t.shape[..r - 2].to_vec();
    shape.push(h.map(|h| h * dirs));
    Ok(Value {
        name,
        shape,
        dtype: y.dtype,
    })
}

/// The stack's eval-mode pass over time-major `x` (`[T, B, F]`, no padding: every row runs
/// all `T` steps). Dropout between layers is the identity here.
pub fn rnn_stack(
    g: &mut Graph,
    prefix: &str,
    rnn: &Rnn,
    x: &Value,
    output: bool,
) -> Result<RnnValues> {
    let (cell, h, dirs) = (rnn.cell(), rnn.hidden_size(), rnn.directions());
    let layers = rnn.options().num_layers;
    let op = match cell {
        CellKind::Lstm => "LSTM",
        CellKind::Gru => "GRU",
        CellKind::RnnTanh | CellKind::RnnRelu => "RNN",
    };
    let params = rnn.weights();
    let (t, b) = (x.shape[0], x.shape[1]);
    let mut inp = x.clone();
    let mut out = None;
    let mut h_last = None;
    for l in 0..layers {
        let ps = &params[l * dirs..(l + 1) * dirs];
        let stack = |f: &dyn Fn(&DirWeights) -> Result<Tensor>| {
            let per_dir = ps.iter().map(f).collect::<Result<Vec<_>>>()?;
            Tensor::stack(&per_dir, 0)
        };
        let w = stack(&|p| onnx_gates(cell, p.0[0], h))?;
        let r = stack(&|p| onnx_gates(cell, p.0[1], h))?;
        let mut ins = vec![
            inp.name.clone(),
            g.weight(&join(prefix, &format!("W_l{l}")), &w)?,
            g.weight(&join(prefix, &format!("R_l{l}")), &r)?,
        ];
        if ps[0].1[0].is_some() {
            // ONNX's B is [Wb, Rb] per direction; fukai has both biases or neither.
            let bias = stack(&|p| {
                let part = |t: Option<&Tensor>| onnx_gates(cell, t.expect("both biases"), h);
                Tensor::cat(&[part(p.1[0])?, part(p.1[1])?], 0)
            })?;
            ins.push(g.weight(&join(prefix, &format!("B_l{l}")), &bias)?);
        }
        let mut attrs = vec![
            attr_int("hidden_size", h as i64),
            attr_string(
                "direction",
                if dirs == 2 {
                    "bidirectional"
                } else {
                    "forward"
                },
            ),
        ];
        match cell {
            CellKind::Gru => attrs.push(attr_int("linear_before_reset", 1)),
            CellKind::RnnRelu => attrs.push(attr_strings("activations", &vec!["Relu"; dirs])),
            CellKind::RnnTanh | CellKind::Lstm => {}
        }
        let last = l + 1 == layers;
        let y_hint = if last && !output {
            String::new()
        } else {
            join(prefix, &format!("y_l{l}"))
        };
        let h_hint = if last {
            join(prefix, "h_n")
        } else {
            String::new()
        };
        let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
        let outs = g.op_n(op, &ins, attrs, &[&y_hint, &h_hint]);
        let dt = x.dtype;
        if !y_hint.is_empty() {
            let y = Value {
                name: outs[0].clone(),
                shape: vec![t, Some(dirs), b, Some(h)],
                dtype: dt,
            };
            inp = merge_dirs(g, &y, 1, dirs, &y_hint)?;
            if last {
                out = Some(inp.clone());
            }
        }
        if last {
            let hn = Value {
                name: outs[1].clone(),
                shape: vec![Some(dirs), b, Some(h)],
                dtype: dt,
            };
            h_last = Some(merge_dirs(g, &hn, 0, dirs, &h_hint)?);
        }
    }
    Ok(RnnValues {
        output: out,
        h_last: h_last.expect("at least one layer"),
    })
}
