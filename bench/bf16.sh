#!/usr/bin/env bash
# f32 against --precision bf16, alternating in each round: one epoch of fashion-cnn and of
# shakespeare-gpt (500 steps), then the matmul workload (fukai f32, fukai_bf16 and gemm
# interleaved in one process). Prints one line per run; bench/bf16.md has the figures.
# Usage: FUKAI_ASSETS=/path/to/assets bench/bf16.sh [rounds] [threads]
set -euo pipefail
rounds=${1:-2}
threads=${2:-2}
bin=${CARGO_TARGET_DIR:-target}/release
out=${BF16_OUT:-/tmp/fukai-bf16}
mkdir -p "$out"
echo "date $(date -u '+%F %R') UTC; commit $(git rev-parse --short HEAD); threads $threads; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  for preset in fashion-cnn shakespeare-gpt; do
    for p in f32 bf16; do
      dir="$out/$preset-$p-$r"
      "$bin/fukai" --threads "$threads" train --preset "$preset" --epochs 1 --precision "$p" \
        --out "$dir" --force > "$dir.log" 2>&1
      python3 - "$dir/summary.json" "$preset" "$p" "$r" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
keys = ["train_seconds", "samples_per_second", "val_loss", "test_loss", "test_accuracy", "test_perplexity"]
vals = " ".join(f"{k}={s[k]:.4f}" for k in keys if isinstance(s.get(k), (int, float)))
print(f"round {sys.argv[4]} {sys.argv[2]} {sys.argv[3]} precision={s.get('precision')} {vals}")
PY
    done
  done
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
done
"$bin/fukai-bench" --threads "$threads" --sizes 256,512,1024 matmul | grep -v peak_rss
