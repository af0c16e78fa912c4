#!/usr/bin/env bash
# Regenerates crates/fukai/src/onnx/proto_gen.rs (prost types for onnx.proto). The normal build
# uses the committed file; run this only after replacing onnx.proto. Needs protoc
# (apt-get install protobuf-compiler).
set -euo pipefail
cd "$(dirname "$0")/onnx-proto"
cargo run --release --quiet
