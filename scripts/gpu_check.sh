#!/usr/bin/env bash
# One pass on a GPU machine: what devices fukai finds, the wgpu and CUDA op tests, the device
# benchmark on both, and the same training run on the GPU and the CPU. Binaries come from
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
echo "== cuda op tests"; FUKAI_REQUIRE_CUDA=1 timeout 120 .device/cuda_tests --test-threads 4 2>&1 | tail -40
echo "== device benchmark (cuda)"; timeout 150 .device/device_bench cuda
echo "== wgpu op tests"; timeout 60 .device/wgpu_tests --test-threads 4 2>&1 | tail -4
echo "== device benchmark (wgpu)"; FUKAI_BENCH_GPT=none timeout 60 .device/device_bench wgpu
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
echo "== mnist-cnn (the default run: 10 epochs)"
for d in cuda wgpu cpu; do train mnist-cnn 40 $d --preset mnist-cnn --data data/mnist_5k.csv.gz; done
echo "== fashion-cnn: 150 steps on each"
for d in cuda wgpu cpu; do train fashion-cnn 30 $d --preset fashion-cnn --steps 150; done
echo "== fashion-cnn: one epoch on cuda"
train fashion-cnn-epoch 40 cuda --preset fashion-cnn --epochs 1
echo "== shakespeare-gpt: 300 steps"
for d in cuda wgpu cpu; do train shakespeare-gpt 30 $d --preset shakespeare-gpt --steps 300; done
echo "== bf16 autocast (--precision bf16) on cuda, the f32 runs above beside it"
train fashion-cnn-bf16 30 cuda --preset fashion-cnn --steps 150 --precision bf16
train shakespeare-gpt-bf16 30 cuda --preset shakespeare-gpt --steps 300 --precision bf16
