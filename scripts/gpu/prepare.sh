#!/usr/bin/env bash
# Builds what scripts/gpu_check.sh runs on a GPU machine that has no Rust toolchain: the CLI
# (wgpu and cuda by default), the wgpu and CUDA op tests and the device benchmark, stripped and
# gzipped, into .device/, and copies Fashion-MNIST and the Shakespeare text into .assets/ (both
# git-ignored; carry them). Nothing here needs CUDA: cudarc loads it at run time.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
rm -rf .device; mkdir -p .device
cargo build --release -p fukai-cli
cargo build --release -p fukai --features wgpu,cuda --example device_bench
# The path of the test binary `$1` built with features `$2`.
test_binary() {
  cargo test --release -p fukai --features "$2" --test "$1" --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*'"$1"'-[^"]*"' | cut -d'"' -f4 | tail -1
}
cp "$CARGO_TARGET_DIR/release/fukai" .device/fukai
cp "$CARGO_TARGET_DIR/release/examples/device_bench" .device/device_bench
cp "$(test_binary wgpu wgpu,cuda)" .device/wgpu_tests
cp "$(test_binary cuda wgpu,cuda)" .device/cuda_tests
strip .device/fukai .device/device_bench .device/wgpu_tests .device/cuda_tests
# The working tree that travels to the GPU machine is capped (64 MiB): ship the binaries
# compressed, and the two datasets the timed runs need beside them.
gzip -9f .device/*
assets="${FUKAI_ASSETS:-../shared/assets}"
rm -rf .assets; mkdir -p .assets
cp -r "$assets/fashion-mnist" "$assets/text" .assets/
chmod -R u+w .assets
ls -la .device .assets
