//! ONNX export: a module's inference graph as an ONNX `ModelProto` (opset 17, IR version 8),
//! its weights as initializers named as in its state dict.
//!
//! Every layer writes its own nodes through [`Module::to_onnx`], so a [`Sequential`] of
//! supported layers exports as it is, and a custom module exports once it implements
//! `to_onnx` with the [`Graph`] builder. The graph is the eval-mode forward: dropout is the
//! identity and batch norm uses its running statistics. Recurrent stacks become fused
//! `LSTM` / `GRU` / `RNN` nodes ([`rnn`]) and attention plain `MatMul` / `Softmax` nodes
//! ([`transformer`]); batch and sequence length stay free in both (a GPT's up to its context).
//!
//! ```
//! use fukai::nn::{Activation, Linear, Module, Sequential};
//! use fukai::onnx::{export, Model};
//! use fukai::{DType, Tensor};
//! fukai::manual_seed(0);
//! let net = Sequential::new()
//!     .add(Linear::new(4, 8, true)?)
//!     .add(Activation::Relu)
//!     .add(Linear::new(8, 3, true)?);
//! // `None` marks the batch dimension, which stays symbolic in the file.
//! let proto = export::export(&net, &export::Input::f32("x", &[None, Some(4)]), &[])?;
//! let bytes = export::to_bytes(&proto);
//!
//! let back = Model::from_bytes(&bytes)?;
//! let x = Tensor::randn(&[2, 4], DType::F32)?;
//! let y = back.run(&[("x", x.clone())])?.remove(0).1;
//! let want = net.forward(&x)?;
//! let err = y.sub(&want)?.abs()?.max_all()?.item()?;
//! assert!(err < 1e-5);
//! # Ok::<(), fukai::Error>(())
//! ```
//!
//! [`Module::to_onnx`]: crate::nn::Module::to_onnx
//! [`Sequential`]: crate::nn::Sequential

pub mod layers;
pub mod rnn;
pub mod transformer;

use super::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use super::tensor::tensor_to_proto;
use crate::error::{op_err, Error, Result};
use crate::models::{Model, ModelConfig};
use crate::nn::Module;
use crate::tensor::TensorId;
use crate::tensor::{DType, Tensor};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The opset exported graphs use: the newest every mainstream runtime (ONNX Runtime 1.14+,
/// TensorRT 8.6+) reads, and the first with `LayerNormalization`.
pub const OPSET: i64 = 17;
/// The IR version matching [`OPSET`] (ONNX 1.12).
pub const IR_VERSION: i64 = 8;

/// A value in the graph being built: its name and what is known of its shape (`None` for a
/// dimension that depends on the input, such as the batch).
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// The value's name in the graph.
    pub name: String,
    /// Its shape, where known.
    pub shape: Vec<Option<usize>>,
    /// Its element type.
    pub dtype: DType,
}

impl Value {
    /// The value's rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// The same shape and type under another name.
    pub fn renamed(&self, name: String) -> Value {
        Value {
            name,
            ..self.clone()
        }
    }
}

/// The graph's input: name, element type and shape (`None` dimensions become symbolic, the
/// first named `batch`).
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    /// Name of the graph input.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape; `None` for a dimension left free.
    pub shape: Vec<Option<usize>>,
}

impl Input {
    /// A float input.
    pub fn f32(name: &str, shape: &[Option<usize>]) -> Input {
        Input {
            name: name.into(),
            dtype: DType::F32,
            shape: shape.to_vec(),
        }
    }
}

/// An ONNX graph under construction. Layers add nodes with [`Graph::op`] and weights with
/// [`Graph::weight`]; names are made unique here, so layers need not coordinate.
#[derive(Default)]
pub struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    names: HashSet<String>,
    counter: usize,
    /// Initializer names by tensor, so a tensor used twice (a head tied to an embedding) is
    /// stored once.
    by_id: HashMap<TensorId, String>,
}

fn onnx_type(dt: DType) -> DataType {
    match dt {
        DType::F32 => DataType::Float,
        DType::F64 => DataType::Double,
        DType::F16 => DataType::Float16,
        DType::BF16 => DataType::Bfloat16,
        DType::I64 => DataType::Int64,
        DType::U32 => DataType::Uint32,
        DType::U8 => DataType::Uint8,
    }
}

fn value_info(name: &str, dtype: DType, shape: Option<&[Option<usize>]>) -> ValueInfoProto {
    let shape = shape.map(|s| TensorShapeProto {
        dim: s
            .iter()
            .enumerate()
            .map(|(i, d)| tensor_shape_proto::Dimension {
                value: Some(match d {
                    Some(n) => tensor_shape_proto::dimension::Value::DimValue(*n as i64),
                    None if i == 0 => {
                        tensor_shape_proto::dimension::Value::DimParam("batch".into())
                    }
                    None => tensor_shape_proto::dimension::Value::DimParam(format!("d{i}")),
                }),
                ..Default::default()
            })
            .collect(),
    });
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(onnx_type(dtype) as i32),
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

/// A list-of-integers attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A tensor attribute (`ConstantOfShape`'s value).
pub fn attr_tensor(name: &str, t: &Tensor) -> Result<AttributeProto> {
    Ok(AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(tensor_to_proto("", t)?),
        ..Default::default()
    })
}

/// A string attribute.
pub fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// A list-of-strings attribute.
pub fn attr_strings(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Strings as i32),
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

/// The error for a module without an ONNX translation.
pub fn unsupported(what: &str) -> Error {
    op_err(
        "onnx export",
        format!("{what} has no ONNX export (implement Module::to_onnx for it)"),
    )
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// `hint`, or `hint_N` when taken; every node output and initializer goes through here.
    pub fn fresh(&mut self, hint: &str) -> String {
        let hint = if hint.is_empty() { "v" } else { hint };
        let mut name = hint.to_string();
        while self.names.contains(&name) {
            self.counter += 1;
            name = format!("{hint}_{}", self.counter);
        }
        self.names.insert(name.clone());
        name
    }

    /// Adds a weight as an initializer under its state-dict name (made unique if needed) and
    /// returns the name the graph uses; a tensor added before keeps its first name.
    pub fn weight(&mut self, name: &str, t: &Tensor) -> Result<String> {
        if let Some(n) = self.by_id.get(&t.id()) {
            return Ok(n.clone());
        }
        let name = self.fresh(name);
        self.by_id.insert(t.id(), name.clone());
        let t = if t.device().is_cpu() {
            t.clone()
        } else {
            t.to(crate::Device::Cpu)?
        };
        self.initializers.push(tensor_to_proto(&name, &t.detach())?);
        Ok(name)
    }

    /// Adds an int64 constant (shapes, axes) as an initializer.
    pub fn ints(&mut self, hint: &str, v: &[i64]) -> Result<String> {
        self.weight(hint, &Tensor::from_vec(v.to_vec(), &[v.len()])?)
    }

    /// Adds a float scalar constant, typed like `like`.
    pub fn scalar(&mut self, hint: &str, v: f64, like: DType) -> Result<String> {
        self.weight(hint, &Tensor::from_vec(vec![v], &[])?.to_dtype(like)?)
    }

    /// Dimension `axis` of `x` as a 1-element int64 tensor (`Shape` with start/end), for
    /// shapes that follow a free input dimension such as the sequence length.
    pub fn dim(&mut self, x: &Value, axis: usize) -> String {
        let a = axis as i64;
        self.op(
            "Shape",
            &[&x.name],
            vec![attr_int("start", a), attr_int("end", a + 1)],
            "dim",
        )
    }

    /// Adds a node with one output named after `hint` and returns that name.
    pub fn op(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        hint: &str,
    ) -> String {
        self.op_n(op, inputs, attrs, &[hint]).remove(0)
    }

    /// Adds a node with one output per hint (an empty hint leaves that output unused).
    pub fn op_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        hints: &[&str],
    ) -> Vec<String> {
        let outputs: Vec<String> = hints
            .iter()
            .map(|h| {
                if h.is_empty() {
                    String::new()
                } else {
                    self.fresh(h)
                }
            })
            .collect();
        let name = format!("{op}_{}", self.nodes.len());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.clone(),
            name: Some(name),
            op_type: Some(op.into()),
            attribute: attrs,
            ..Default::default()
        });
        outputs
    }

    /// The finished model: the graph with `input` and `output`, opset 17, and `metadata`
    /// as `metadata_props`.
    pub fn finish(
        self,
        input: &Input,
        output: &Value,
        metadata: &[(String, String)],
    ) -> ModelProto {
        let graph = GraphProto {
            node: self.nodes,
            name: Some("fukai".into()),
            initializer: self.initializers,
            input: vec![value_info(&input.name, input.dtype, Some(&input.shape))],
            output: vec![value_info(&output.name, output.dtype, Some(&output.shape))],
            ..Default::default()
        };
        ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET),
            }],
            producer_name: Some("fukai".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            graph: Some(graph),
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: Some(k.clone()),
                    value: Some(v.clone()),
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// Exports `module`'s eval-mode forward on `input` as an ONNX model whose one output is named
/// `output`, with `metadata` as the model's `metadata_props`.
pub fn export(
    module: &dyn Module,
    input: &Input,
    metadata: &[(String, String)],
) -> Result<ModelProto> {
    let mut g = Graph::new();
    g.names.insert(input.name.clone());
    let x = Value {
        name: input.name.clone(),
        shape: input.shape.clone(),
        dtype: input.dtype,
    };
    let y = module.to_onnx(&mut g, "", &x)?;
    // The output gets a stable name; an Identity keeps initializer names intact when a graph
    // is only its input (an empty Sequential).
    let out = g.op("Identity", &[&y.name], vec![], "output");
    let y = y.renamed(out);
    Ok(g.finish(input, &y, metadata))
}

/// The input a library model reads: `[batch, ...sample]` floats for feed-forward models,
/// `[batch, time, features]` for sequence models, `[batch, time]` token ids for GPT.
pub fn model_input(config: &ModelConfig) -> Result<Input> {
    Ok(match config {
        ModelConfig::Mlp(c) => {
            let mut s = vec![None];
            s.extend(c.input_shape.iter().map(|&d| Some(d)));
            Input::f32("input", &s)
        }
        ModelConfig::Cnn(c) => {
            let mut s = vec![None];
            s.extend(c.input_shape.iter().map(|&d| Some(d)));
            Input::f32("input", &s)
        }
        ModelConfig::SeqClassifier(c) | ModelConfig::SeqForecaster(c) => {
            Input::f32("input", &[None, None, Some(c.inputs)])
        }
        ModelConfig::Gpt(_) => Input {
            name: "input_ids".into(),
            dtype: DType::I64,
            shape: vec![None, None],
        },
        other => {
            return Err(op_err(
                "onnx export",
                format!("a {} model has no ONNX export", other.kind()),
            ))
        }
    })
}

/// Exports one of the library's models (its input from its config, see [`model_input`]),
/// recording its kind and task in the metadata beside `metadata`.
pub fn export_model(model: &dyn Model, metadata: &[(String, String)]) -> Result<ModelProto> {
    let Some(config) = model.config() else {
        return Err(op_err(
            "onnx export",
            "a custom model: export it with onnx::export::export and its input's shape",
        ));
    };
    let input = model_input(&config)?;
    let task = serde_json::to_value(model.task())
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let mut meta = vec![
        ("fukai.kind".to_string(), config.kind().to_string()),
        ("task".to_string(), task),
    ];
    meta.extend(metadata.iter().cloned());
    export(model, &input, &meta)
}

/// The model's protobuf bytes.
pub fn to_bytes(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Writes the model to `path` atomically.
pub fn save(model: &ModelProto, path: impl AsRef<Path>) -> Result<()> {
    crate::io::write_atomic(path.as_ref(), &to_bytes(model))
}

/// Exports a trained checkpoint to `onnx`, carrying over the metadata prediction needs
/// (class names, input normalization, input shape), and returns the exported model.
pub fn export_checkpoint(checkpoint: &Path, onnx: &Path) -> Result<ModelProto> {
    let loaded = crate::models::load_checkpoint(checkpoint)?;
    let meta: Vec<(String, String)> = ["classes", "norm", "input_shape", "vocab", "series"]
        .iter()
        .filter_map(|k| loaded.metadata.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    let proto = export_model(&loaded.model, &meta)?;
    save(&proto, onnx)?;
    Ok(proto)
}
