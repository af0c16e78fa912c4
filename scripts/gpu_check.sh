#!/usr/bin/env bash
# One pass on a GPU machine: what devices fukai finds, the wgpu op tests, the device
# benchmark, and the same training run on the GPU and the CPU. Binaries come from
# scripts/gpu/prepare.sh (.device/); Vulkan loader packages, where the machine lacks them,
# from .gl/*.deb. Output goes to stdout and, when OUT is set, to $OUT/gpu_check.log.
set -u
cd "$(dirname "$0")/.."
log="${OUT:-/tmp}/gpu_check.log"
exec > >(tee "$log") 2>&1
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
echo "== wgpu op tests"; timeout 240 .device/wgpu_tests --test-threads 2 2>&1 | tail -25
echo "== device benchmark"; timeout 240 .device/device_bench wgpu
echo "== mnist-mlp (10 epochs) on wgpu, then on the CPU"
for d in wgpu cpu; do
  rm -rf "/tmp/run-$d"
  start=$SECONDS
  timeout 200 .device/fukai train --config scripts/gpu/mnist-mlp.toml --device $d --out "/tmp/run-$d" 2>&1 | grep -E "epoch  *(1|10)/|test loss|error"
  echo "$d: $((SECONDS - start)) s wall"
done
