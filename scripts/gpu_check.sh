#!/usr/bin/env bash
# One pass on a GPU machine: what devices fukai finds, the wgpu op tests, the device
# benchmark, and the same training run on the GPU and the CPU. Binaries come from
# scripts/gpu/prepare.sh (.device/); Vulkan loader packages, where the machine lacks them,
# from .gl/*.deb. Output goes to stdout and, when OUT is set, to $OUT/gpu_check.log.
set -u
cd "$(dirname "$0")/.."
log="${OUT:-/tmp}/gpu_check.log"
exec > >(tee "$log") 2>&1
for f in .device/*.gz; do gunzip -f "$f"; done
chmod +x .device/*
if ! ldconfig -p | grep -q libvulkan && ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  if [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; break; fi
done
echo "== machine"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
nproc; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
echo "== devices"; .device/fukai devices
echo "== wgpu op tests"; timeout 90 .device/wgpu_tests --test-threads 2 2>&1 | tail -25
echo "== device benchmark"; timeout 90 .device/device_bench wgpu
# Each run: the device's wall time beside the CPU's at 2 threads (the benchmark machine's core
# count), same binary, same machine. The binary was built elsewhere, so the shipped MNIST is named
# by its path; the other datasets come from .assets/ (carried).
export FUKAI_ASSETS="$PWD/.assets"
train() { # NAME TIMEOUT DEVICE ARGS...
  local name=$1 limit=$2 d=$3; shift 3
  rm -rf "/tmp/run-$name-$d"
  local start=$SECONDS threads=()
  [ "$d" = cpu ] && threads=(--threads 2)
  timeout "$limit" .device/fukai train "${threads[@]}" --device "$d" --out "/tmp/run-$name-$d" "$@" 2>&1 \
    | grep -E "^test |stopped after|error|Error" | sed "s/^/  /"
  echo "$name on $d: $((SECONDS - start)) s wall"
}
echo "== mnist-mlp (10 epochs)"
train mnist-mlp 40 wgpu --config scripts/gpu/mnist-mlp.toml --data data/mnist_5k.csv.gz
train mnist-mlp 40 cpu --config scripts/gpu/mnist-mlp.toml --data data/mnist_5k.csv.gz
echo "== mnist-cnn (the default run: 10 epochs)"
train mnist-cnn 60 wgpu --preset mnist-cnn --data data/mnist_5k.csv.gz
echo "== fashion-cnn: one epoch on the GPU; 150 steps on each for the ratio"
train fashion-cnn-epoch 80 wgpu --preset fashion-cnn --epochs 1
train fashion-cnn 40 wgpu --preset fashion-cnn --steps 150
train fashion-cnn 60 cpu --preset fashion-cnn --steps 150
echo "== shakespeare-gpt: 300 steps"
train shakespeare-gpt 50 wgpu --preset shakespeare-gpt --steps 300
train shakespeare-gpt 50 cpu --preset shakespeare-gpt --steps 300
