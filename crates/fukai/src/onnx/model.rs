//! Loading a model and running its graph.

use super::attr::Node;
use super::errors::{format_err, unsupported};
use super::optimize::{plan, run_fused, Step};
use super::proto::{type_proto, GraphProto, ModelProto, NodeProto};
use super::tensor::tensor_from_proto;
use crate::error::Result;
use crate::Tensor;
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

/// An ONNX model ready to run: its graph, and its initializers as tensors.
pub struct Model {
    graph: GraphProto,
    opset: i64,
    initializers: Vec<(String, Tensor)>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// The graph's nodes as run: fused where `optimize` found a pattern (index 0), and as
    /// written (index 1, `set_fusion(false)`).
    plans: [Vec<Step>; 2],
    /// Per step of each plan, the values no later step reads, dropped after it so that their
    /// memory is reused.
    drops: [Vec<Vec<String>>; 2],
    fusion: bool,
}

impl Model {
    /// Reads a `.onnx` file; tensors stored outside it (external data) are read from its folder.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| crate::Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Model::parse(&bytes, Some(dir), &path.display().to_string())
    }

    /// Reads a model from memory; a model with external data needs [`Model::load`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        Model::parse(bytes, None, "<onnx bytes>")
    }

    fn parse(bytes: &[u8], dir: Option<&Path>, file: &str) -> Result<Model> {
        let model = ModelProto::decode(bytes)
            .map_err(|e| format_err(file, format!("not an ONNX model: {e}")))?;
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain().is_empty() || o.domain() == "ai.onnx")
            .map(|o| o.version())
            // Models from before opset_import existed (IR 1/2) used opset 1.
            .unwrap_or(1);
        let graph = model
            .graph
            .ok_or_else(|| format_err(file, "the model has no graph"))?;
        let mut initializers = Vec::with_capacity(graph.initializer.len());
        for t in &graph.initializer {
            initializers.push((t.name().to_string(), tensor_from_proto(t, dir, file)?));
        }
        if !graph.sparse_initializer.is_empty() {
            return Err(unsupported("sparse initializers"));
        }
        let init_names: std::collections::HashSet<&str> =
            initializers.iter().map(|(n, _)| n.as_str()).collect();
        let mut inputs = Vec::new();
        for v in &graph.input {
            if init_names.contains(v.name()) {
                continue;
            }
            if let Some(ty) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                if !matches!(ty, type_proto::Value::TensorType(_)) {
                    return Err(unsupported(format!(
                        "graph input {:?}: only tensor inputs (not sequences, maps or optionals)",
                        v.name()
                    )));
                }
            }
            inputs.push(v.name().to_string());
        }
        let outputs: Vec<String> = graph.output.iter().map(|v| v.name().to_string()).collect();
        let plans = [
            plan(&graph, opset),
            (0..graph.node.len()).map(Step::Node).collect(),
        ];
        let drops = [
            last_uses(&graph, &plans[0], &outputs),
            last_uses(&graph, &plans[1], &outputs),
        ];
        Ok(Model {
            graph,
            opset,
            initializers,
            inputs,
            outputs,
            plans,
            drops,
            fusion: true,
        })
    }

    /// Turns the load-time graph rewrites (fused linear, GELU, layer norm and attention,
    /// decoded constants; see `onnx/optimize.rs`) on or off. On by default; off runs every
    /// node as the graph spells it, which the tests use to check the rewrites.
    pub fn set_fusion(&mut self, on: bool) {
        self.fusion = on;
    }

    /// The fused ops the load-time rewrites put in place of node chains, in graph order
    /// (`"linear"`, `"gelu"`, `"layer_norm"`, `"add_layer_norm"`, `"attention"`); they run while
    /// fusion is on.
    pub fn fused_ops(&self) -> Vec<&'static str> {
        self.plans[0]
            .iter()
            .filter_map(|s| match s {
                Step::Fused { op, .. } => Some(op.name()),
                _ => None,
            })
            .collect()
    }

    /// The opset of the default (`ai.onnx`) domain the model was exported for.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// The graph inputs the caller provides (initializers excluded), in graph order.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// The graph outputs, in the order [`Model::run`] returns them.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// The floating-point initializers (weights), as handles to the tensors the graph uses:
    /// `set_requires_grad(true)` on them and `run` records a graph that backward reaches them
    /// through; updating them in place changes the model.
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        self.initializers
            .iter()
            .filter(|(_, t)| t.dtype().is_float())
            .cloned()
            .collect()
    }

    /// Every initializer, float or not (shapes, indices) with its name.
    pub fn initializers(&self) -> &[(String, Tensor)] {
        &self.initializers
    }

    /// Runs the graph on named inputs and returns the graph outputs in order. An input with an
    /// initializer's name overrides that initializer, as ONNX allows.
    pub fn run(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<(String, Tensor)>> {
        // On a pool worker, the graph's parallel kernels hand work to the other workers
        // directly instead of waking the pool from outside and waiting to be woken (MiniLM, one
        // sentence at two threads: 4.5 -> 4.0 ms at best).
        crate::parallel::on_pool(|| self.run_here(inputs))
    }

    /// [`Model::run`] on the calling thread.
    fn run_here(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<(String, Tensor)>> {
        let mut env: Scope = HashMap::new();
        for (n, t) in &self.initializers {
            env.insert(n.clone(), t.clone());
        }
        for (n, t) in inputs {
            let Some(name) = self.graph.input.iter().map(|v| v.name()).find(|g| g == n) else {
                crate::bail!(
                    super::errors::OP,
                    "input {n:?} is not an input of the graph; expected one of {:?}",
                    self.inputs
                );
            };
            env.insert(name.to_string(), t.clone());
        }
        if let Some(missing) = self.inputs.iter().find(|n| !env.contains_key(n.as_str())) {
            crate::bail!(
                super::errors::OP,
                "graph input {missing:?} was not given (inputs: {:?})",
                self.inputs
            );
        }
        let which = usize::from(!self.fusion);
        let (steps, drops) = (&self.plans[which], &self.drops[which]);
        for (step, drop) in steps.iter().zip(drops) {
            match step {
                Step::Node(i) => exec_nodes(
                    std::slice::from_ref(&self.graph.node[*i]),
                    self.opset,
                    &mut env,
                )?,
                Step::Skip => {}
                Step::Const(i, t) => {
                    env.insert(self.graph.node[*i].output[0].clone(), t.clone());
                }
                Step::Fused {
                    op,
                    inputs,
                    node,
                    chain,
                } => {
                    let proto = &self.graph.node[*node];
                    let ts = inputs
                        .iter()
                        .map(|n| env.get(n.as_str()).cloned())
                        .collect::<Option<Vec<_>>>();
                    let node = Node {
                        proto,
                        opset: self.opset,
                        inputs: vec![],
                    };
                    let Some(ts) = ts else {
                        return Err(node.err(format!("an input of fused {op:?} is not computed")));
                    };
                    match node.ctx(run_fused(*op, &ts))? {
                        Some(y) => {
                            env.insert(proto.output[0].clone(), y);
                        }
                        None => {
                            let nodes = chain.iter().map(|&i| &self.graph.node[i]);
                            exec_nodes(nodes, self.opset, &mut env)?;
                        }
                    }
                }
            }
            for name in drop {
                env.remove(name.as_str());
            }
        }
        self.outputs
            .iter()
            .map(|n| match env.get(n.as_str()) {
                Some(t) => Ok((n.clone(), t.clone())),
                None => Err(format_err(
                    "onnx graph",
                    format!("output {n:?} is never computed"),
                )),
            })
            .collect()
    }
}

/// For each step, the names it reads that no later step reads and that are not graph outputs.
/// Without this every intermediate value lived until the run ended, so each new one took fresh
/// pages from the OS (a fifth of MiniLM's time went to the kernel clearing them). Graphs with
/// subgraphs keep everything: a branch or loop body reads the enclosing values by name.
fn last_uses(graph: &GraphProto, steps: &[Step], outputs: &[String]) -> Vec<Vec<String>> {
    let mut drops = vec![Vec::new(); steps.len()];
    let nested = graph
        .node
        .iter()
        .flat_map(|n| &n.attribute)
        .any(|a| a.g.is_some() || !a.graphs.is_empty());
    if nested {
        return drops;
    }
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (s, step) in steps.iter().enumerate() {
        let nodes: Vec<usize> = match step {
            Step::Node(i) => vec![*i],
            Step::Fused { inputs, chain, .. } => {
                for n in inputs {
                    last.insert(n, s);
                }
                chain.clone()
            }
            Step::Skip | Step::Const(..) => vec![],
        };
        for i in nodes {
            for n in &graph.node[i].input {
                last.insert(n, s);
            }
        }
    }
    for (name, s) in last {
        if !name.is_empty() && !outputs.iter().any(|o| o == name) {
            drops[s].push(name.to_string());
        }
    }
    drops
}

/// The values visible to a node by name: the graph's inputs, initializers and the outputs of
/// the nodes before it (and, inside a subgraph, the enclosing graphs' values).
pub(super) type Scope = HashMap<String, Tensor>;

/// Runs `nodes` in order, adding each node's outputs to `env`.
pub(super) fn exec_nodes<'a>(
    nodes: impl IntoIterator<Item = &'a NodeProto>,
    opset: i64,
    env: &mut Scope,
) -> Result<()> {
    for proto in nodes {
        let mut node = Node {
            proto,
            opset,
            inputs: Vec::with_capacity(proto.input.len()),
        };
        // The preview training domain holds the optimizers, which ops/quant.rs runs.
        if !(proto.domain().is_empty()
            || proto.domain() == "ai.onnx"
            || (proto.domain() == "ai.onnx.preview.training"
                && matches!(proto.op_type(), "Adagrad" | "Adam" | "Momentum")))
        {
            return Err(node.unsupported(format!("domain {:?}", proto.domain())));
        }
        for name in &proto.input {
            if name.is_empty() {
                node.inputs.push(None);
                continue;
            }
            match env.get(name.as_str()) {
                Some(t) => node.inputs.push(Some(t.clone())),
                None => {
                    return Err(node.err(format!("input {name:?} is not computed before this node")))
                }
            }
        }
        // Control flow runs subgraphs, which see this graph's values.
        let outs = match super::control::run(&node, env) {
            Some(r) => r?,
            None => super::ops::run_node(&node)?,
        };
        for (name, t) in proto.output.iter().zip(outs) {
            if !name.is_empty() {
                env.insert(name.clone(), t);
            }
        }
        if let Some(missing) = proto
            .output
            .iter()
            .find(|n| !n.is_empty() && !env.contains_key(n.as_str()))
        {
            return Err(node.unsupported(format!("output {missing:?}")));
        }
    }
    Ok(())
}

/// Runs a subgraph (a branch or loop body): `outer` is the enclosing scope, `inputs` bind the
/// subgraph's formal inputs in order; returns its outputs in order.
pub(super) fn run_subgraph(
    graph: &GraphProto,
    opset: i64,
    outer: &Scope,
    inputs: Vec<Tensor>,
) -> Result<Vec<Tensor>> {
    let mut env = outer.clone();
    for t in &graph.initializer {
        env.insert(
            t.name().to_string(),
            tensor_from_proto(t, None, "onnx subgraph")?,
        );
    }
    if inputs.len() != graph.input.len() {
        return Err(format_err(
            "onnx subgraph",
            format!(
                "{:?} takes {} inputs, given {}",
                graph.name(),
                graph.input.len(),
                inputs.len()
            ),
        ));
    }
    for (v, t) in graph.input.iter().zip(inputs) {
        env.insert(v.name().to_string(), t);
    }
    exec_nodes(&graph.node, opset, &mut env)?;
    graph
        .output
        .iter()
        .map(|v| {
            env.get(v.name()).cloned().ok_or_else(|| {
                format_err(
                    "onnx subgraph",
                    format!(
                        "{:?}: output {:?} is never computed",
                        graph.name(),
                        v.name()
                    ),
                )
            })
        })
        .collect()
}
