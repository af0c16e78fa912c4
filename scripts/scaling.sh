#!/usr/bin/env bash
# Data-parallel scaling of fukai on this machine: fashion-cnn for STEPS optimizer steps of the
# preset's global batch (64), as 1 rank x 1 thread, 1 rank x 2 threads, 2 ranks x 1 thread, and
# 4 and 8 ranks oversubscribed on the cores. Prints samples/s of training (data loading and
# evaluation excluded), the exchange's bytes and time per step, and the efficiency against
# 1 rank x 2 threads. Needs FUKAI_ASSETS (Fashion-MNIST) and a fukai built with --features mpi:
#   cargo build --release -p fukai-cli --features mpi && scripts/scaling.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-150}
exe=target/release/fukai
# A fukai without the mpi feature refuses to run under mpirun; build the one this needs.
cargo build --release -p fukai-cli --features mpi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run NAME RANKS THREADS MICRO
run() {
  local name=$1 ranks=$2 threads=$3 micro=$4 out
  local args=(train --preset fashion-cnn --steps "$steps" --micro-batch "$micro" --out "$tmp/$name")
  if [ "$ranks" = 0 ]; then
    out=$(RAYON_NUM_THREADS=$threads "$exe" "${args[@]}")
  else
    out=$(mpirun -np "$ranks" --oversubscribe -x RAYON_NUM_THREADS="$threads" "$exe" "${args[@]}")
  fi
  local sps dp
  sps=$(grep -o '[0-9]* samples/s' <<<"$out" | tail -1 | cut -d' ' -f1)
  dp=$(grep '^data-parallel' <<<"$out" | sed 's/^data-parallel: //' || true)
  printf '%-28s %8s samples/s  %s\n' "$name" "$sps" "$dp"
  echo "$name $sps" >>"$tmp/figures"
}

echo "fashion-cnn, $steps steps of 64 samples, $(nproc) cores, $(date -u +%F)"
run "1 rank x 1 thread (64)" 0 1 64
run "1 rank x 2 threads (64)" 0 2 64
run "1 rank x 2 threads (2x32)" 0 2 32
run "2 ranks x 1 thread (32)" 2 1 32
run "4 ranks x 1 thread (16)" 4 1 16
run "8 ranks x 1 thread (8)" 8 1 8
base=$(grep '^1 rank x 2 threads (64)' "$tmp/figures" | awk '{print $NF}')
two=$(grep '^2 ranks' "$tmp/figures" | awk '{print $NF}')
echo "2 ranks x 1 thread / 1 rank x 2 threads: $(awk -v a="$two" -v b="$base" 'BEGIN{printf "%.1f%%", 100*a/b}')"
