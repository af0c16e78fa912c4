//! A node with its opset, and typed access to its attributes and inputs.

use super::errors::OP;
use super::proto::{
    attribute_proto::AttributeType, AttributeProto, GraphProto, NodeProto, TensorProto,
};
use crate::error::{op_err, Error, Result};
use crate::Tensor;
use std::fmt::Display;

/// One node of the graph as the operators see it.
pub(crate) struct Node<'a> {
    pub proto: &'a NodeProto,
    /// The model's opset for the default domain: operators changed meaning across opsets.
    pub opset: i64,
    pub inputs: Vec<Option<Tensor>>,
}

impl Node<'_> {
    pub fn op_type(&self) -> &str {
        self.proto.op_type()
    }

    /// An error that names the node, its operator and the opset.
    pub fn err(&self, msg: impl Display) -> Error {
        op_err(
            OP,
            format!(
                "node {:?} ({}, opset {}): {msg}",
                self.proto.name(),
                self.proto.op_type(),
                self.opset
            ),
        )
    }

    /// Like [`Node::err`], marked as a missing feature rather than a bad model.
    pub fn unsupported(&self, what: impl Display) -> Error {
        self.err(format!("unsupported {what}"))
    }

    /// Wraps an error from a fukai op with the node it happened in.
    pub fn ctx<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| self.err(e))
    }

    pub fn input(&self, i: usize) -> Result<&Tensor> {
        self.opt_input(i)
            .ok_or_else(|| self.err(format!("input {i} is required but missing")))
    }

    pub fn opt_input(&self, i: usize) -> Option<&Tensor> {
        self.inputs.get(i).and_then(|t| t.as_ref())
    }

    pub fn n_outputs(&self) -> usize {
        self.proto.output.len()
    }

    /// True when output `i` is named (optional outputs may be left empty or absent).
    pub fn wants_output(&self, i: usize) -> bool {
        self.proto.output.get(i).is_some_and(|s| !s.is_empty())
    }

    fn attr(&self, name: &str, ty: AttributeType) -> Result<Option<&AttributeProto>> {
        let Some(a) = self.proto.attribute.iter().find(|a| a.name() == name) else {
            return Ok(None);
        };
        // IR < 3 models may leave the type unset; trust the field then.
        if a.r#type.is_some() && a.r#type() != AttributeType::Undefined && a.r#type() != ty {
            return Err(self.err(format!(
                "attribute {name}: expected {}, found {}",
                ty.as_str_name(),
                a.r#type().as_str_name()
            )));
        }
        Ok(Some(a))
    }

    pub fn opt_i(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.attr(name, AttributeType::Int)?.map(|a| a.i()))
    }
    pub fn i(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.opt_i(name)?.unwrap_or(default))
    }
    pub fn opt_f(&self, name: &str) -> Result<Option<f32>> {
        Ok(self.attr(name, AttributeType::Float)?.map(|a| a.f()))
    }
    pub fn f(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.opt_f(name)?.unwrap_or(default))
    }
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self
            .attr(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }
    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(self
            .attr(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }
    pub fn s(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .attr(name, AttributeType::String)?
            .map(|a| String::from_utf8_lossy(a.s()).into_owned()))
    }
    pub fn t(&self, name: &str) -> Result<Option<&TensorProto>> {
        Ok(self
            .attr(name, AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref()))
    }
    /// A graph attribute (a branch or loop body).
    pub fn g(&self, name: &str) -> Result<Option<&GraphProto>> {
        Ok(self
            .attr(name, AttributeType::Graph)?
            .and_then(|a| a.g.as_ref()))
    }
    /// True when the node has an attribute of that name, whatever its type.
    pub fn has(&self, name: &str) -> bool {
        self.proto.attribute.iter().any(|a| a.name() == name)
    }
}
