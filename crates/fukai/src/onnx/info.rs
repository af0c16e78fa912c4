//! What an ONNX file holds, read from its protobuf alone (no tensor is decoded), for
//! `fukai onnx info` and for callers that need input shapes or metadata before running it.

use super::errors::format_err;
use super::proto::{tensor_proto::DataType, type_proto, ModelProto, ValueInfoProto};
use crate::error::Result;
use prost::Message;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// A graph input or output: name, element type and shape (`None` for a symbolic dimension,
/// with its name when it has one).
#[derive(Clone, Debug, PartialEq)]
pub struct ValueSummary {
    /// The value's name.
    pub name: String,
    /// The ONNX element type (`"FLOAT"`, `"INT64"`, ...), or `"?"` when the file omits it.
    pub dtype: String,
    /// Dimensions: a size, or a symbolic dimension's name (`"batch"`), or `"?"`.
    pub shape: Vec<Dim>,
}

/// One dimension of a declared shape.
#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named (symbolic) or unknown size.
    Symbolic(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => write!(f, "{s}"),
        }
    }
}

/// What `fukai onnx info` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The file's IR version.
    pub ir_version: i64,
    /// `(domain, version)` of each imported opset; the default domain is `""`.
    pub opsets: Vec<(String, i64)>,
    /// Producer name and version (`"pytorch 2.4"`), empty when unset.
    pub producer: String,
    /// Inputs the caller provides (initializers listed as inputs, as old exporters do, are left
    /// out).
    pub inputs: Vec<ValueSummary>,
    /// Graph outputs.
    pub outputs: Vec<ValueSummary>,
    /// Nodes per operator type (domain-qualified outside the default domain), by name.
    pub ops: BTreeMap<String, usize>,
    /// Number of initializers.
    pub initializers: usize,
    /// Elements of all floating-point initializers: the parameter count.
    pub parameters: u64,
    /// The model's `metadata_props`, in file order.
    pub metadata: Vec<(String, String)>,
}

impl Summary {
    /// Reads `path` (external data files are not opened).
    pub fn load(path: impl AsRef<Path>) -> Result<Summary> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| crate::Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Summary::parse(&bytes, &path.display().to_string())
    }

    /// Reads a model from memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Summary> {
        Summary::parse(bytes, "<onnx bytes>")
    }

    fn parse(bytes: &[u8], file: &str) -> Result<Summary> {
        let m = ModelProto::decode(bytes)
            .map_err(|e| format_err(file, format!("not an ONNX model: {e}")))?;
        Ok(Summary::of(&m))
    }

    /// Summarizes a decoded model.
    pub fn of(m: &ModelProto) -> Summary {
        let g = m.graph.clone().unwrap_or_default();
        let init: std::collections::HashSet<&str> =
            g.initializer.iter().map(|t| t.name()).collect();
        let mut ops = BTreeMap::new();
        for n in &g.node {
            let name = match n.domain() {
                "" | "ai.onnx" => n.op_type().to_string(),
                d => format!("{d}.{}", n.op_type()),
            };
            *ops.entry(name).or_insert(0) += 1;
        }
        let is_float = |t: i32| {
            [
                DataType::Float,
                DataType::Double,
                DataType::Float16,
                DataType::Bfloat16,
            ]
            .iter()
            .any(|d| *d as i32 == t)
        };
        let parameters = g
            .initializer
            .iter()
            .filter(|t| is_float(t.data_type()))
            .map(|t| t.dims.iter().map(|&d| d.max(0) as u64).product::<u64>())
            .sum();
        let producer = [m.producer_name(), m.producer_version()]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        Summary {
            ir_version: m.ir_version(),
            opsets: m
                .opset_import
                .iter()
                .map(|o| (o.domain().to_string(), o.version()))
                .collect(),
            producer,
            inputs: g
                .input
                .iter()
                .filter(|v| !init.contains(v.name()))
                .map(value)
                .collect(),
            outputs: g.output.iter().map(value).collect(),
            ops,
            initializers: g.initializer.len(),
            parameters,
            metadata: m
                .metadata_props
                .iter()
                .map(|p| (p.key().to_string(), p.value().to_string()))
                .collect(),
        }
    }

    /// A metadata value by key.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn value(v: &ValueInfoProto) -> ValueSummary {
    let (dtype, shape) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => {
            let dtype = DataType::try_from(t.elem_type())
                .map(|d| d.as_str_name().to_string())
                .unwrap_or_else(|_| format!("type {}", t.elem_type()));
            let shape = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| {
                            use super::proto::tensor_shape_proto::dimension::Value;
                            match &d.value {
                                Some(Value::DimValue(n)) if *n >= 0 => Dim::Fixed(*n as usize),
                                Some(Value::DimParam(p)) if !p.is_empty() => {
                                    Dim::Symbolic(p.clone())
                                }
                                _ => Dim::Symbolic("?".into()),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            (dtype, shape)
        }
        Some(_) => ("non-tensor".to_string(), Vec::new()),
        None => ("?".to_string(), Vec::new()),
    };
    ValueSummary {
        name: v.name().to_string(),
        dtype,
        shape,
    }
}

impl fmt::Display for ValueSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        write!(f, "{} {} [{}]", self.name, self.dtype, dims.join(", "))
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opsets: Vec<String> = self
            .opsets
            .iter()
            .map(|(d, v)| format!("{}:{v}", if d.is_empty() { "ai.onnx" } else { d }))
            .collect();
        writeln!(f, "ir version: {}", self.ir_version)?;
        writeln!(f, "opsets:     {}", opsets.join(", "))?;
        if !self.producer.is_empty() {
            writeln!(f, "producer:   {}", self.producer)?;
        }
        writeln!(f, "inputs:")?;
        for v in &self.inputs {
            writeln!(f, "  {v}")?;
        }
        writeln!(f, "outputs:")?;
        for v in &self.outputs {
            writeln!(f, "  {v}")?;
        }
        writeln!(
            f,
            "parameters: {} in {} initializers",
            self.parameters, self.initializers
        )?;
        let nodes: usize = self.ops.values().sum();
        writeln!(f, "nodes:      {nodes}")?;
        let mut ops: Vec<(&String, &usize)> = self.ops.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (op, n) in ops {
            writeln!(f, "  {n:>5}  {op}")?;
        }
        for (k, v) in &self.metadata {
            let short: String = v.chars().take(80).collect();
            let more = if v.chars().count() > 80 { "…" } else { "" };
            writeln!(f, "metadata {k}: {short}{more}")?;
        }
        Ok(())
    }
}
