#!/usr/bin/env bash
# Builds everything the page needs into web/dist/: the fukai-wasm module (wasm32, simd128) and
# its JavaScript glue (wasm-bindgen), the page, the mnist-cnn weights and the MNIST digits the
# training panel learns from.
#
#   web/build.sh [CHECKPOINT]
#
# Without CHECKPOINT it takes runs/mnist-cnn/best.safetensors, training it first with the
# default `cargo run --release` when there is no such run. Needs the wasm32-unknown-unknown
# rustup target and the wasm-bindgen CLI at the version of the wasm-bindgen crate in
# Cargo.lock (`cargo install wasm-bindgen-cli --version V`); runs binaryen's wasm-opt when it
# is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

ckpt=${1:-}
if [ -z "$ckpt" ]; then
  ckpt=runs/mnist-cnn/best.safetensors
  if [ ! -f "$ckpt" ]; then
    if [ -e runs/mnist-cnn ]; then
      echo "runs/mnist-cnn exists but has no best.safetensors: pass a checkpoint, or move the run away" >&2
      exit 1
    fi
    echo "== training mnist-cnn (cargo run --release)"
    cargo run --release
  fi
fi
[ -f "$ckpt" ] || { echo "no checkpoint at $ckpt" >&2; exit 1; }

want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "wasm-bindgen CLI $want is needed (found: ${have:-none}): cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi

echo "== cargo build -p fukai-wasm --target wasm32-unknown-unknown --profile wasm (simd128)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128" \
  cargo build -p fukai-wasm --target wasm32-unknown-unknown --profile wasm
wasm="${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/wasm/fukai_wasm.wasm"

out=web/dist
rm -rf "$out"
mkdir -p "$out/pkg"
# wasm-opt runs on rustc's module, before wasm-bindgen adds its externref table: Debian's
# binaryen 108 mistypes that table when it optimizes wasm-bindgen's output (the page then fails
# in WebAssembly.Table.set).
if command -v wasm-opt >/dev/null; then
  echo "== wasm-opt -O3"
  opt="${wasm%.wasm}.opt.wasm"
  wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-mutable-globals --enable-reference-types --enable-multivalue "$wasm" -o "$opt"
  wasm=$opt
else
  echo "(no wasm-opt: the module is left as rustc wrote it; apt-get install binaryen to shrink it)"
fi
wasm-bindgen --target web --no-typescript --out-name fukai_wasm --out-dir "$out/pkg" "$wasm"
cp web/index.html web/style.css web/app.js web/train-worker.js "$out/"
cp "$ckpt" "$out/mnist-cnn.safetensors"
cp data/mnist_5k.csv.gz "$out/"

raw=$(stat -c %s "$out/pkg/fukai_wasm_bg.wasm")
gz=$(gzip -9 -c "$out/pkg/fukai_wasm_bg.wasm" | wc -c)
echo "== $out: fukai_wasm_bg.wasm $raw bytes ($gz gzipped); checkpoint $(stat -c %s "$out/mnist-cnn.safetensors") bytes"
echo "serve it with: python3 -m http.server -d $out 8000   # then open http://localhost:8000/"
