#!/usr/bin/env bash
# all-MiniLM-L6-v2 from ONNX, fukai (crates/fukai-bench, workload onnx_minilm) beside ONNX
# Runtime (bench/onnx_minilm_ort.py) on the same committed graph and weights: each round and
# thread count runs both processes one after the other, who goes first alternating, then
# bench/onnx_minilm_report.py writes the markdown section (medians over rounds of each
# process's median) that BENCHMARKS.md carries.
#
# Environment:
#   FUKAI_BENCH_PYTHON   a python with numpy and onnxruntime (default /work/venv/bin/python,
#                        else python3)
#   FUKAI_ASSETS         the shared assets (default ../shared/assets)
#   BENCH_ROUNDS         rounds (default 5); BENCH_THREADS (default "1 2"); BENCH_REPS (15)
#   FUKAI_BENCH_BIN      a fukai-bench binary to use instead of building one
#   BENCH_OUT            where the table goes (default bench/onnx_minilm.md)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -z "${FUKAI_ASSETS:-}" && -d "$ROOT/../shared/assets" ]]; then
    export FUKAI_ASSETS="$ROOT/../shared/assets"
fi
PY="${FUKAI_BENCH_PYTHON:-/work/venv/bin/python}"
[[ -x "$PY" ]] || PY=python3
ROUNDS="${BENCH_ROUNDS:-5}"
THREADS="${BENCH_THREADS:-1 2}"
REPS="${BENCH_REPS:-15}"
RUN_DIR="$ROOT/runs/bench-onnx-minilm/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RUN_DIR"
RESULTS="$RUN_DIR/results.jsonl"

if [[ -n "${FUKAI_BENCH_BIN:-}" ]]; then
    BIN="$FUKAI_BENCH_BIN"
else
    cargo build --release -q -p fukai-bench
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/fukai-bench"
fi

echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)" >"$RUN_DIR/meta.txt"
for round in $(seq 1 "$ROUNDS"); do
    for t in $THREADS; do
        fukai() { RAYON_NUM_THREADS="$t" "$BIN" --threads "$t" --reps "$REPS" onnx_minilm; }
        ort() { "$PY" bench/onnx_minilm_ort.py --threads "$t" --reps "$REPS"; }
        if (( (round + t) % 2 )); then fukai >>"$RESULTS"; ort >>"$RESULTS"
        else ort >>"$RESULTS"; fukai >>"$RESULTS"; fi
        echo "[onnx_minilm] round $round, $t thread(s) done" >&2
    done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RUN_DIR/meta.txt"
# BENCHMARKS.md includes this file (bench/report.py), so a full suite run keeps the table.
"$PY" bench/onnx_minilm_report.py "$RUN_DIR" | tee "${BENCH_OUT:-$ROOT/bench/onnx_minilm.md}"
