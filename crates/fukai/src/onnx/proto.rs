//! The ONNX protobuf messages (`onnx.proto`), generated once by `scripts/gen_onnx_proto.sh`
//! with prost-build and committed, so building fukai needs neither protoc nor prost-build.
#![allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]

include!("proto_gen.rs");
