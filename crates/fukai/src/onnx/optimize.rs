//! Graph rewrites planned once at load, so a run does not pay for what exporters spell out
//! op by op. Each rewrite replaces a chain of nodes by one fused fukai op that computes the
//! same function, differentiably, from the chain's own inputs read at run time (so updated or
//! overridden initializers are honored and gradients still reach them):
//!
//! - `MatMul(x, Transpose(W))` `+ b` (how `torch.onnx.export` writes `nn.Linear` on 3-D input)
//!   becomes `x.linear(W, b)`: the transpose is read through the kernel's strides instead of
//!   being materialized each run, and the bias is added in the same pass.
//! - `x · 0.5 · (1 + Erf(x / √2))` (exact GELU before opset 20) becomes `x.gelu()`, instead of
//!   five passes of which Erf runs on the host in f64.
//! - `LayerNormalization` over the last axis with only its first output becomes the fused
//!   `layer_norm` kernel, instead of the mean/variance composite.
//! - `Constant` nodes are decoded once.
//!
//! [`Model::set_fusion`](super::Model::set_fusion) turns the rewrites off; the tests compare
//! the two paths.

use super::attr::Node;
use super::proto::{tensor_proto::DataType, GraphProto, NodeProto};
use super::tensor::tensor_from_proto;
use crate::error::Result;
use crate::{DType, Tensor};
use std::collections::HashMap;

/// One step of a planned run.
pub(crate) enum Step {
    /// Run graph node `i` as it is.
    Node(usize),
    /// Skip a graph node: a fused step computes what it fed.
    Skip,
    /// Graph node `i` is a `Constant`, decoded at load.
    Const(usize, Tensor),
    /// A fused op; `node` is the chain's last node (its output is the step's output).
    Fused {
        op: Fused,
        inputs: Vec<String>,
        node: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Fused {
    /// inputs: x, W `[out, in]`, and optionally b `[out]`.
    Linear,
    /// inputs: x.
    Gelu,
    /// inputs: x, scale `[d]`, bias `[d]`.
    LayerNorm { eps: f64 },
}

/// Runs a fused op on its inputs (in the order the step lists them). Half-precision inputs
/// compute in f32 and cast back, as the unfused operators do.
pub(crate) fn run_fused(op: Fused, t: &[Tensor]) -> Result<Tensor> {
    let dt = t[0].dtype();
    let half = matches!(dt, DType::F16 | DType::BF16);
    let cast = |x: &Tensor| {
        if half {
            x.to_dtype(DType::F32)
        } else {
            Ok(x.clone())
        }
    };
    let t = t.iter().map(cast).collect::<Result<Vec<_>>>()?;
    let y = match op {
        Fused::Linear => t[0].linear(&t[1], t.get(2)),
        Fused::Gelu => t[0].gelu(),
        Fused::LayerNorm { eps } => t[0].layer_norm(Some(&t[1]), Some(&t[2]), eps),
    }?;
    if half {
        return y.to_dtype(dt);
    }
    Ok(y)
}

/// The graph's facts a rewrite checks: who produces and who reads each value.
struct Facts<'g> {
    graph: &'g GraphProto,
    producer: HashMap<&'g str, usize>,
    /// Readers of each value, graph outputs counted as one more.
    uses: HashMap<&'g str, usize>,
    /// Shapes of the float (f32, f64) initializers: the fused kernels take those.
    init: HashMap<&'g str, &'g [i64]>,
}

impl<'g> Facts<'g> {
    fn new(graph: &'g GraphProto) -> Self {
        let mut producer = HashMap::new();
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.as_str(), i);
            }
            for x in &n.input {
                *uses.entry(x.as_str()).or_default() += 1;
            }
        }
        for o in &graph.output {
            *uses.entry(o.name()).or_default() += 1;
        }
        let init = graph
            .initializer
            .iter()
            .filter(|t| [DataType::Float as i32, DataType::Double as i32].contains(&t.data_type()))
            .map(|t| (t.name(), t.dims.as_slice()))
            .collect();
        Facts {
            graph,
            producer,
            uses,
            init,
        }
    }

    /// The node producing `v`, if it has `op` type and `v` has no other reader.
    fn sole(&self, v: &str, op: &str) -> Option<(usize, &'g NodeProto)> {
        let i = *self.producer.get(v)?;
        let n = &self.graph.node[i];
        (n.op_type() == op && n.domain().is_empty() && self.uses.get(v) == Some(&1))
            .then_some((i, n))
    }

    /// The value of a one-element float constant (a `Constant` node or an initializer).
    fn scalar(&self, v: &str) -> Option<f64> {
        let proto = match self.producer.get(v) {
            Some(&i) => {
                let n = &self.graph.node[i];
                if n.op_type() != "Constant" {
                    return None;
                }
                n.attribute
                    .iter()
                    .find(|a| a.name() == "value")?
                    .t
                    .as_ref()?
            }
            None => self.graph.initializer.iter().find(|t| t.name() == v)?,
        };
        let t = tensor_from_proto(proto, None, "onnx graph").ok()?;
        (t.numel() == 1 && t.dtype().is_float())
            .then(|| t.to_vec_f64().ok().map(|v| v[0]))
            .flatten()
    }

    fn init_rank(&self, v: &str) -> Option<usize> {
        self.init.get(v).map(|d| d.len())
    }
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-6 * b.abs())
}

/// Inputs of a two-input node as (the one produced by `op`, the other), either order.
fn pick<'g>(f: &Facts<'g>, n: &'g NodeProto, op: &str) -> Option<(usize, &'g NodeProto, &'g str)> {
    let [a, b] = n.input.as_slice() else {
        return None;
    };
    if let Some((i, p)) = f.sole(a, op) {
        return Some((i, p, b));
    }
    f.sole(b, op).map(|(i, p)| (i, p, a.as_str()))
}

/// `Add(MatMul(x, Transpose(W)), b)`: (skipped nodes, inputs x, W, b).
fn linear(f: &Facts, add: &NodeProto) -> Option<(Vec<usize>, Vec<String>)> {
    let (mi, mm, b) = pick(f, add, "MatMul")?;
    let (ti, tr) = f.sole(mm.input.get(1)?, "Transpose")?;
    let w = tr.input.first()?;
    let perm = tr.attribute.iter().find(|a| a.name() == "perm");
    let out = *f.init.get(w.as_str())?.first()?;
    if f.init_rank(w) != Some(2)
        || perm.is_some_and(|p| p.ints != [1, 0])
        || f.init.get(b).map(|d| d.to_vec()) != Some(vec![out])
    {
        return None;
    }
    let x = mm.input.first()?.clone();
    Some((vec![ti, mi], vec![x, w.clone(), b.to_string()]))
}

/// `Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)` with either operand order of each Mul and Add.
fn gelu(f: &Facts, outer: &NodeProto) -> Option<(Vec<usize>, Vec<String>)> {
    let (ii, inner, half) = pick(f, outer, "Mul")?;
    let (ai, add, x) = pick(f, inner, "Add")?;
    let (ei, erf, one) = pick(f, add, "Erf")?;
    let (di, div) = f.sole(erf.input.first()?, "Div")?;
    if !close(f.scalar(half), 0.5)
        || !close(f.scalar(one), 1.0)
        || div.input.first().map(String::as_str) != Some(x)
        || !close(f.scalar(div.input.get(1)?), std::f64::consts::SQRT_2)
    {
        return None;
    }
    Some((vec![di, ei, ai, ii], vec![x.to_string()]))
}

/// `LayerNormalization` over the last axis with scale and bias initializers of rank 1, whose
/// mean and inverse deviation outputs nobody reads.
fn layer_norm(f: &Facts, n: &NodeProto) -> Option<(Vec<usize>, Fused, Vec<String>)> {
    let attr = |k: &str| n.attribute.iter().find(|a| a.name() == k);
    let axis = attr("axis").map_or(-1, |a| a.i());
    let eps = attr("epsilon").map_or(1e-5, |a| a.f()) as f64;
    let stash = attr("stash_type").map_or(1, |a| a.i());
    if axis != -1
        || stash != 1
        || n.input.len() != 3
        || n.output.iter().skip(1).any(|o| !o.is_empty())
    {
        return None;
    }
    if f.init_rank(&n.input[1]) != Some(1) || f.init_rank(&n.input[2]) != Some(1) {
        return None;
    }
    Some((vec![], Fused::LayerNorm { eps }, n.input.clone()))
}

/// The steps that run `graph`: every node once, in order, fused where a rewrite applies.
pub(crate) fn plan(graph: &GraphProto, opset: i64) -> Vec<Step> {
    let f = Facts::new(graph);
    let mut steps: Vec<Step> = (0..graph.node.len()).map(Step::Node).collect();
    for (i, n) in graph.node.iter().enumerate() {
        if !n.domain().is_empty() || n.output.len() != 1 && n.op_type() != "LayerNormalization" {
            continue;
        }
        let found = match n.op_type() {
            "Add" => linear(&f, n).map(|(s, x)| (s, Fused::Linear, x)),
            "Mul" => gelu(&f, n).map(|(s, x)| (s, Fused::Gelu, x)),
            "LayerNormalization" => layer_norm(&f, n),
            "Constant" => {
                let node = Node {
                    proto: n,
                    opset,
                    inputs: vec![],
                };
                if let Ok(Some(t)) = super::ops::run_node(&node).map(|mut v| v.pop()) {
                    steps[i] = Step::Const(i, t);
                }
                None
            }
            _ => None,
        };
        let Some((skipped, op, inputs)) = found else {
            continue;
        };
        // A chain is fused only when none of its nodes is already part of another.
        if skipped.iter().any(|&s| !matches!(steps[s], Step::Node(_)))
            || !matches!(steps[i], Step::Node(_))
        {
            continue;
        }
        for s in skipped {
            steps[s] = Step::Skip;
        }
        steps[i] = Step::Fused {
            op,
            inputs,
            node: i,
        };
    }
    steps
}
