#!/usr/bin/env bash
# One short pass on a GPU machine with the CLI alone (.device/fukai from a release build,
# gzipped): the presets and a GPT-2-small-shaped model trained on cuda in f32, tf32 and bf16
# (--precision), for accuracy beside speed. Assets from .assets/ (carried), as gpu_check.sh.
set -u
cd "$(dirname "$0")/../.."
log="${OUT:-/tmp}/precision_check.log"
exec > >(tee "$log") 2>&1
for f in .device/*.gz; do gunzip -f "$f"; done
chmod +x .device/*
cuda_libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -e "$d/libnvrtc.so.13" ] || [ -e "$d/libcublas.so.13" ] && cuda_libs="$cuda_libs:$d"
done
export LD_LIBRARY_PATH="${cuda_libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== machine"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
echo "== devices"; .device/fukai devices
export FUKAI_ASSETS="$PWD/.assets"
train() { # NAME TIMEOUT PRECISION ARGS...
  local name=$1 limit=$2 p=$3; shift 3
  rm -rf "/tmp/run-$name-$p"
  local start=$SECONDS
  timeout "$limit" .device/fukai train --device cuda --precision "$p" --out "/tmp/run-$name-$p" "$@" 2>&1 \
    | grep -E "^test |stopped after|val|error|Error" | tail -4 | sed "s/^/  /"
  echo "$name in $p: $((SECONDS - start)) s wall"
}
for p in f32 tf32 bf16; do
  echo "== precision $p"
  train mnist-cnn 40 $p --preset mnist-cnn --data data/mnist_5k.csv.gz
  train fashion-cnn 60 $p --preset fashion-cnn --epochs 1
  train shakespeare-gpt 40 $p --preset shakespeare-gpt --steps 600
  train gpt2-small 90 $p --config scripts/gpu/gpt2_small.toml --steps 40
done
nvidia-smi --query-gpu=memory.used --format=csv,noheader || true
