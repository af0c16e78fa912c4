#!/usr/bin/env bash
# One pass on a GPU machine: what devices fukai finds, the wgpu and CUDA op tests, the device
# benchmark on both, and the same training run on the GPU and the CPU. Binaries come from
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
# libnvrtc and libcublas (CUDA 13: libnvrtc.so.13, libcublas.so.13) from the toolkit or from
# the nvidia-* Python wheels; libcuda.so.1 comes with the driver. The toolkit goes first: its
# NVRTC matches the driver, and PTX from a newer NVRTC than the driver would not load.
cuda_libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -e "$d/libnvrtc.so.13" ] || [ -e "$d/libcublas.so.13" ] && cuda_libs="$cuda_libs:$d"
done
wheels=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__))' 2>/dev/null || true)
if [ -z "$wheels" ]; then
  wheels=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null || true)
fi
if [ -n "$wheels" ]; then
  for f in $(find "$wheels" -name 'libnvrtc.so*' -o -name 'libcublas.so*' 2>/dev/null); do
    case ":$cuda_libs:" in *":$(dirname "$f"):"*) ;; *) cuda_libs="$cuda_libs:$(dirname "$f")" ;; esac
  done
fi
export LD_LIBRARY_PATH="${cuda_libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== machine"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
nproc; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ls -l /usr/local/cuda/lib64/libnvrtc.so* /usr/local/cuda/lib64/libcublas.so* 2>/dev/null | head -4
echo "== devices"; .device/fukai devices
echo "== wgpu op tests"; timeout 240 .device/wgpu_tests --test-threads 2 2>&1 | tail -25
echo "== cuda op tests"; FUKAI_REQUIRE_CUDA=1 timeout 300 .device/cuda_tests --test-threads 2 2>&1 | tail -40
echo "== device benchmark"; timeout 240 .device/device_bench wgpu
echo "== device benchmark (cuda)"; timeout 240 .device/device_bench cuda
echo "== mnist-mlp (10 epochs) on cuda, on wgpu, then on the CPU"
for d in cuda wgpu cpu; do
  rm -rf "/tmp/run-$d"
  start=$SECONDS
  timeout 200 .device/fukai train --config scripts/gpu/mnist-mlp.toml --device $d --out "/tmp/run-$d" 2>&1 | grep -E "epoch  *(1|10)/|test loss|error"
  echo "$d: $((SECONDS - start)) s wall"
done
