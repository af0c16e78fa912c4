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
//!   `layer_norm` kernel, instead of the mean/variance composite; when its input is an `Add`
//!   read by nothing else (a residual connection), `add_layer_norm`, which does not write the
//!   sum out where no gradient is recorded.
//! - The attention block (`Reshape`/`Transpose` of q, k and v into heads, `MatMul(q, kᵀ)`,
//!   scaled by `Div` or `Mul`, an optional additive mask, `Softmax`, `MatMul(·, v)` and the
//!   `Transpose` back) becomes the fused attention kernel (`ops/attention.rs`): scale, mask and
//!   softmax in one pass over each score row, heads read in place, no `[B, H, T, T]` tensors
//!   between nodes. Its reshape targets are only known at run time, so a run whose shapes do
//!   not split q, k and v into equal heads runs the chain as written; so does one whose mask
//!   requires grad (the kernel does not differentiate the mask). One difference stays: a
//!   query row whose keys are all masked with -inf gives zeros fused, NaN as written.
//! - `Constant` nodes are decoded once.
//!
//! [`Model::set_fusion`](super::Model::set_fusion) turns the rewrites off; the tests compare
//! the two paths.

use super::attr::Node;
use super::proto::{tensor_proto::DataType, GraphProto, NodeProto};
use super::tensor::tensor_from_proto;
use crate::error::Result;
use crate::ops::{self, AttnInput, AttnOptions};
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
    /// A fused op; `node` is the chain's last node (its output is the step's output), `chain`
    /// every node it replaces in graph order, for a run the fused op declines.
    Fused {
        op: Fused,
        inputs: Vec<String>,
        node: usize,
        chain: Vec<usize>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Fused {
    /// inputs: x, W `[out, in]`, and optionally b `[out]`.
    Linear,
    /// inputs: x.
    Gelu,
    /// inputs: x, scale `[d]`, bias `[d]`; with `residual`, x and r (normalizes x + r), scale,
    /// bias.
    LayerNorm { eps: f64, residual: bool },
    /// inputs: q, k, v `[B, T, H·hd]`, their reshape targets `[B, T, H, hd]`, and the
    /// additive mask when `mask`. Output `[B, Tq, H, hd]` (the final Transpose's).
    Attention { scale: f64, mask: bool },
}

impl Fused {
    /// The op's name, as [`Model::fused_ops`](super::Model::fused_ops) lists it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fused::Linear => "linear",
            Fused::Gelu => "gelu",
            Fused::LayerNorm {
                residual: false, ..
            } => "layer_norm",
            Fused::LayerNorm { residual: true, .. } => "add_layer_norm",
            Fused::Attention { .. } => "attention",
        }
    }
}

/// Runs a fused op on its inputs (in the order the step lists them). Half-precision inputs
/// compute in f32 and cast back, as the unfused operators do.
/// `None` when the op declines these inputs (only attention does; see the module docs) and the
/// chain must run as written.
pub(crate) fn run_fused(op: Fused, t: &[Tensor]) -> Result<Option<Tensor>> {
    let dt = t[0].dtype();
    let half = matches!(dt, DType::F16 | DType::BF16);
    // Only the float inputs: attention's reshape targets stay int64.
    let cast = |x: &Tensor| {
        if half && x.dtype().is_float() {
            x.to_dtype(DType::F32)
        } else {
            Ok(x.clone())
        }
    };
    let t = t.iter().map(cast).collect::<Result<Vec<_>>>()?;
    let y = match op {
        Fused::Linear => t[0].linear(&t[1], t.get(2))?,
        Fused::Gelu => t[0].gelu()?,
        Fused::LayerNorm {
            eps,
            residual: false,
        } => t[0].layer_norm(Some(&t[1]), Some(&t[2]), eps)?,
        Fused::LayerNorm {
            eps,
            residual: true,
        } => t[0].add_layer_norm(&t[1], Some(&t[2]), Some(&t[3]), eps)?,
        Fused::Attention { scale, mask } => match attention(&t, scale, mask.then(|| &t[6]))? {
            Some(y) => y,
            None => return Ok(None),
        },
    };
    if half {
        return y.to_dtype(dt).map(Some);
    }
    Ok(Some(y))
}

/// The fused attention on q, k, v `[B, T, W]` and their reshape targets, when the targets
/// split each into the same `H` heads of `hd` columns (`[B, T, H, hd]`, ONNX's 0 and -1
/// allowed); `None` otherwise.
fn attention(t: &[Tensor], scale: f64, mask: Option<&Tensor>) -> Result<Option<Tensor>> {
    let mut heads = None;
    for (x, spec) in t[..3].iter().zip(&t[3..6]) {
        let Some(split) = head_split(x, spec)? else {
            return Ok(None);
        };
        if heads.is_some_and(|h| h != split) {
            return Ok(None);
        }
        heads = Some(split);
    }
    let Some((h, hd)) = heads else {
        return Ok(None);
    };
    let (q, k, v) = (&t[0], &t[1], &t[2]);
    let dt = q.dtype();
    let (b, tq, s) = (q.shape()[0], q.shape()[1], k.shape()[1]);
    // What ONNX allows and the kernel does not take: products that broadcast over the batch,
    // a mask that widens the scores, a mask that requires grad.
    let full = [b, h, tq, s];
    let fits = |m: &Tensor| {
        let mut dims = m.shape().iter().rev().zip(full.iter().rev());
        m.rank() <= 4 && dims.all(|(&d, &f)| d == 1 || d == f) && !m.requires_grad()
    };
    if k.dtype() != dt
        || v.dtype() != dt
        || k.shape()[0] != b
        || v.shape()[..2] != k.shape()[..2]
        || mask.is_some_and(|m| !fits(m))
    {
        return Ok(None);
    }
    let mut opts = AttnOptions::new(h, hd);
    opts.scale = Some(scale);
    opts.attn_mask = mask.map(|m| m.to_dtype(dt)).transpose()?;
    let input = |src| AttnInput { src, col: 0 };
    let y = ops::attention(input(q), input(k), input(v), &opts)?;
    y.reshape(&[b, tq, h, hd]).map(Some)
}

/// `(H, hd)` when reshaping `x` `[B, T, W]` by the ONNX shape `spec` (0 copies the input's
/// dim, -1 is inferred) gives `[B, T, H, hd]`.
fn head_split(x: &Tensor, spec: &Tensor) -> Result<Option<(usize, usize)>> {
    if x.rank() != 3 || spec.rank() != 1 || spec.numel() != 4 || spec.dtype() != DType::I64 {
        return Ok(None);
    }
    let mut dims = Vec::with_capacity(4);
    for (i, d) in spec.to_vec::<i64>()?.into_iter().enumerate() {
        dims.push(match d {
            0 => *x.shape().get(i).unwrap_or(&0) as isize,
            d if d < -1 => return Ok(None),
            d => d as isize,
        });
    }
    let Ok(r) = x.reshape_infer(&dims) else {
        return Ok(None);
    };
    let s = r.shape();
    Ok((s[..2] == x.shape()[..2]).then_some((s[2], s[3])))
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
/// mean and inverse deviation outputs nobody reads; with the `Add` that feeds it when nothing
/// else reads the sum and no other rewrite took that node (`free`).
fn layer_norm(
    f: &Facts,
    n: &NodeProto,
    free: impl Fn(usize) -> bool,
) -> Option<(Vec<usize>, Fused, Vec<String>)> {
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
    if let Some((ai, add)) = f.sole(&n.input[0], "Add").filter(|&(ai, _)| free(ai)) {
        if let [a, b] = add.input.as_slice() {
            let inputs = vec![a.clone(), b.clone(), n.input[1].clone(), n.input[2].clone()];
            let op = Fused::LayerNorm {
                eps,
                residual: true,
            };
            return Some((vec![ai], op, inputs));
        }
    }
    let op = Fused::LayerNorm {
        eps,
        residual: false,
    };
    Some((vec![], op, n.input.clone()))
}

/// A `Transpose` node's explicit `perm`.
fn perm(n: &NodeProto) -> Option<&[i64]> {
    let p = n.attribute.iter().find(|a| a.name() == "perm")?;
    Some(p.ints.as_slice())
}

/// `Transpose(Reshape(x, spec), perm)`, both read only there: (skipped nodes, x, spec).
fn heads(f: &Facts, v: &str, want: &[i64]) -> Option<(Vec<usize>, String, String)> {
    let (ti, tr) = f.sole(v, "Transpose")?;
    let (ri, re) = f.sole(tr.input.first()?, "Reshape")?;
    let allowzero = re.attribute.iter().find(|a| a.name() == "allowzero");
    if perm(tr)? != want || re.input.len() != 2 || allowzero.is_some_and(|a| a.i() != 0) {
        return None;
    }
    Some((vec![ti, ri], re.input[0].clone(), re.input[1].clone()))
}

/// `MatMul(Transpose(Reshape(q, sq), [0,2,1,3]), Transpose(Reshape(k, sk), [0,2,3,1]))`, then
/// optionally a `Div` or `Mul` by a scalar: (skipped nodes, scale, [q, sq, k, sk]).
fn scores(f: &Facts, v: &str) -> Option<(Vec<usize>, f64, [String; 4])> {
    let (mut skipped, mut scale, mut v) = (vec![], 1.0, v);
    if let Some((i, n)) = f.sole(v, "Div") {
        scale = 1.0 / f.scalar(n.input.get(1)?)?;
        (skipped, v) = (vec![i], n.input.first()?);
    } else if let Some((i, n)) = f.sole(v, "Mul") {
        let [a, b] = n.input.as_slice() else {
            return None;
        };
        let (c, x) = match f.scalar(b) {
            Some(c) => (c, a),
            None => (f.scalar(a)?, b),
        };
        (skipped, scale, v) = (vec![i], c, x);
    }
    let (mi, mm) = f.sole(v, "MatMul")?;
    let (qs, q, sq) = heads(f, mm.input.first()?, &[0, 2, 1, 3])?;
    let (ks, k, sk) = heads(f, mm.input.get(1)?, &[0, 2, 3, 1])?;
    skipped.push(mi);
    skipped.extend(qs.into_iter().chain(ks));
    Some((skipped, scale, [q, sq, k, sk]))
}

/// The attention block, anchored on the `Transpose([0,2,1,3])` after `MatMul(Softmax(scores
/// [+ mask]), Transpose(Reshape(v, sv), [0,2,1,3]))`: (skipped nodes, op, inputs).
fn attention_block(
    f: &Facts,
    opset: i64,
    tr: &NodeProto,
) -> Option<(Vec<usize>, Fused, Vec<String>)> {
    if perm(tr)? != [0, 2, 1, 3] {
        return None;
    }
    let (pi, pv) = f.sole(tr.input.first()?, "MatMul")?;
    let (si, sm) = f.sole(pv.input.first()?, "Softmax")?;
    let axis = sm
        .attribute
        .iter()
        .find(|a| a.name() == "axis")
        .map(|a| a.i());
    // Before opset 13 Softmax flattens from its axis (default 1); on the last axis of the
    // rank-4 scores both readings agree.
    if !(matches!(axis, Some(-1 | 3)) || axis.is_none() && opset >= 13) {
        return None;
    }
    let (vs, v, sv) = heads(f, pv.input.get(1)?, &[0, 2, 1, 3])?;
    let x = sm.input.first()?;
    let (mut skipped, scale, [q, sq, k, sk], mask) = match f.sole(x, "Add") {
        Some((ai, add)) => {
            let [a, b] = add.input.as_slice() else {
                return None;
            };
            // The mask is whichever operand is not the scaled product.
            let with = |s: &str, m: &String| scores(f, s).map(|r| (r, m.clone()));
            let ((mut sk, scale, qk), m) = with(a, b).or_else(|| with(b, a))?;
            sk.push(ai);
            (sk, scale, qk, Some(m))
        }
        None => {
            let (sk, scale, qk) = scores(f, x)?;
            (sk, scale, qk, None)
        }
    };
    skipped.extend([pi, si].into_iter().chain(vs));
    let mut inputs = vec![q, k, v, sq, sk, sv];
    inputs.extend(mask.clone());
    let op = Fused::Attention {
        scale,
        mask: mask.is_some(),
    };
    Some((skipped, op, inputs))
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
            "LayerNormalization" => layer_norm(&f, n, |j| matches!(steps[j], Step::Node(_))),
            "Transpose" => attention_block(&f, opset, n),
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
        for &s in &skipped {
            steps[s] = Step::Skip;
        }
        let mut chain = skipped;
        chain.push(i);
        chain.sort_unstable();
        steps[i] = Step::Fused {
            op,
            inputs,
            node: i,
            chain,
        };
    }
    steps
}
