#!/usr/bin/env bash
# fukai's benchmark suite: every workload in fukai (crates/fukai-bench) and in PyTorch
# (bench/torch_bench.py), alternating the two, at 1 and 2 threads, several rounds; then
# bench/report.py writes BENCHMARKS.md.
#
# Environment:
#   FUKAI_BENCH_PYTHON    a python with torch to use (e.g. /work/main/.venv/bin/python);
#                         otherwise bench/.venv, created with `pip install torch numpy transformers` if missing
#   BENCH_ROUNDS          rounds of every (workload, threads) pair (default 3)
#   BENCH_EPOCH_ROUNDS    rounds of the fashion_cnn epoch, which takes minutes (default 1; at
#                         most BENCH_ROUNDS); fashion_mlp's epoch takes seconds and runs BENCH_ROUNDS
#   BENCH_THREADS         thread counts (default "1 2")
#   BENCH_WORKLOADS       workload groups (default "matmul tiny mlp_step conv2d conv3d
#                         convlstm_step lstm_vowels gpt_step minilm fashion_mlp fashion_cnn")
#   FUKAI_ASSETS          the shared assets folder (JapaneseVowels for lstm_vowels,
#                         models/all-MiniLM-L6-v2 for minilm, fashion-mnist for fashion_*;
#                         default ../shared/assets when present); without it those workloads
#                         fail (lstm_vowels) or are reported skipped
#   FUKAI_BENCH_FEATURES  cargo features for fukai-bench (none needed today)
#   BENCH_OUT             where BENCHMARKS.md goes (default: BENCHMARKS.md at the repo root)
#   BENCH_ARGS            extra flags for both programs (e.g. "--sizes 64,256 --tiny-iters 100000",
#                         or "--max-batches 20" for a smoke run of the fashion_* epochs)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ROUNDS="${BENCH_ROUNDS:-3}"
THREADS="${BENCH_THREADS:-1 2}"
WORKLOADS="${BENCH_WORKLOADS:-matmul tiny mlp_step conv2d conv3d convlstm_step lstm_vowels gpt_step minilm fashion_mlp fashion_cnn}"
EPOCH_ROUNDS="${BENCH_EPOCH_ROUNDS:-1}"
# lstm_vowels reads JapaneseVowels from the shared assets.
if [[ -z "${FUKAI_ASSETS:-}" && -d "$ROOT/../shared/assets" ]]; then
    export FUKAI_ASSETS="$ROOT/../shared/assets"
fi
OUT_MD="${BENCH_OUT:-$ROOT/BENCHMARKS.md}"
EXTRA_ARGS="${BENCH_ARGS:-}"
RUN_DIR="$ROOT/runs/bench/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RUN_DIR"
RESULTS="$RUN_DIR/results.jsonl"
: >"$RESULTS"

log() { echo "[bench] $*" >&2; }

# ---- Python with torch ----
if [[ -n "${FUKAI_BENCH_PYTHON:-}" ]]; then
    PY="$FUKAI_BENCH_PYTHON"
else
    PY="$ROOT/bench/.venv/bin/python"
    if ! { [[ -x "$PY" ]] && "$PY" -c 'import torch, numpy' 2>/dev/null; }; then
        log "creating bench/.venv with torch (a large download, once)"
        python3 -m venv "$ROOT/bench/.venv"
        "$ROOT/bench/.venv/bin/pip" install --quiet --upgrade pip
        "$ROOT/bench/.venv/bin/pip" install --quiet torch numpy transformers
    fi
fi
"$PY" -c 'import torch, numpy' || { log "$PY cannot import torch and numpy"; exit 1; }
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)')"

# ---- peak RSS: GNU time if present (installed through apt when we can), else VmHWM ----
TIME_BIN=""
if [[ ! -x /usr/bin/time ]] && command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
    log "installing GNU time"
    { apt-get update -qq && apt-get install -y -qq time; } >/dev/null 2>&1 || true
fi
if [[ -x /usr/bin/time ]] && /usr/bin/time -f '%M' -o /dev/null true 2>/dev/null; then
    TIME_BIN=/usr/bin/time
else
    log "GNU time not available: peak RSS comes from each process's own VmHWM"
fi

# ---- build ----
FEATURES_ARG=()
if [[ -n "${FUKAI_BENCH_FEATURES:-}" ]]; then
    FEATURES_ARG=(--features "$FUKAI_BENCH_FEATURES")
fi
log "building fukai-bench (release)"
cargo build --release --quiet -p fukai-bench "${FEATURES_ARG[@]}"
FUKAI_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/fukai-bench"
# The fashion_* workloads time `fukai train` itself: fukai-bench runs the CLI built next to it.
if [[ " $WORKLOADS " == *" fashion_"* ]]; then
    log "building the fukai CLI (release)"
    cargo build --release --quiet -p fukai-cli
fi

# ---- machine facts ----
CPU_MODEL="$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
START_S=$(date +%s)

# Runs one benchmark process; appends its JSON lines (tagged with round) and a "run" line with
# its peak RSS to $RESULTS.
run_one() {
    local round=$1 impl=$2 group=$3 threads=$4
    shift 4
    local rss_file="$RUN_DIR/rss.tmp" out_file="$RUN_DIR/out.tmp"
    local err_file="$RUN_DIR/${impl}-${group}-t${threads}-r${round}.stderr"
    local status=0
    # A CNN epoch at 1 thread takes minutes (more on a busy machine); everything else, seconds.
    local limit=600
    [[ $group == fashion_* ]] && limit=1800
    local env_vars=(RAYON_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads")
    # shellcheck disable=SC2086
    if [[ -n "$TIME_BIN" ]]; then
        env "${env_vars[@]}" "$TIME_BIN" -f '%M' -o "$rss_file" \
            timeout "$limit" "$@" --threads "$threads" $EXTRA_ARGS "$group" >"$out_file" 2>"$err_file" || status=$?
    else
        env "${env_vars[@]}" timeout "$limit" "$@" --threads "$threads" $EXTRA_ARGS "$group" \
            >"$out_file" 2>"$err_file" || status=$?
    fi
    sed "s/^{/{\"round\":$round,/" "$out_file" >>"$RESULTS"
    local rss="null"
    if [[ -n "$TIME_BIN" && -s "$rss_file" ]]; then
        rss="$(tail -n1 "$rss_file" | tr -dc '0-9')"
        [[ -n "$rss" ]] || rss="null"
    fi
    printf '{"round":%d,"kind":"run","impl":"%s","group":"%s","threads":%d,"exit":%d,"time_maxrss_kb":%s}\n' \
        "$round" "$impl" "$group" "$threads" "$status" "$rss" >>"$RESULTS"
    if [[ $status -ne 0 ]]; then
        log "  $impl $group t=$threads exited $status (see $err_file)"
    fi
    [[ -s "$err_file" ]] || rm -f "$err_file"
    rm -f "$rss_file" "$out_file"
}

for round in $(seq 1 "$ROUNDS"); do
    for group in $WORKLOADS; do
        if [[ $group == fashion_cnn ]] && ((round > EPOCH_ROUNDS)); then
            continue
        fi
        ti=0
        for t in $THREADS; do
            ti=$((ti + 1))
            log "round $round/$ROUNDS: $group, $t thread(s)"
            # Alternate who goes first (by round and thread count, so that a workload run for one
            # round still has each side go first once), so neither side always runs on a
            # warmer (or busier) machine.
            if (((round + ti) % 2 == 0)); then
                run_one "$round" fukai "$group" "$t" "$FUKAI_BIN"
                run_one "$round" torch "$group" "$t" "$PY" "$ROOT/bench/torch_bench.py"
            else
                run_one "$round" torch "$group" "$t" "$PY" "$ROOT/bench/torch_bench.py"
                run_one "$round" fukai "$group" "$t" "$FUKAI_BIN"
            fi
        done
    done
done

ELAPSED=$(($(date +%s) - START_S))
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
META_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" META_CPU="$CPU_MODEL" META_CORES="$(nproc)" \
    META_RUSTC="$(rustc --version)" META_TORCH="$TORCH_VERSION" META_PYTHON="$("$PY" --version 2>&1)" \
    META_GIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" META_ROUNDS="$ROUNDS" \
    META_THREADS="$THREADS" META_EPOCH_ROUNDS="$EPOCH_ROUNDS" META_FEATURES="${FUKAI_BENCH_FEATURES:-}" META_ARGS="$EXTRA_ARGS" \
    META_LOAD_START="$LOAD_START" META_LOAD_END="$LOAD_END" META_ELAPSED="$ELAPSED" \
    META_RSS="${TIME_BIN:+GNU time (%M)}" \
    "$PY" - "$RUN_DIR/meta.json" <<'EOF'
import json, os, sys
e = os.environ
json.dump({
    "date": e["META_DATE"], "cpu_model": e["META_CPU"], "cores": int(e["META_CORES"]),
    "rustc": e["META_RUSTC"], "torch": e["META_TORCH"], "python": e["META_PYTHON"],
    "git_rev": e["META_GIT"], "rounds": int(e["META_ROUNDS"]), "threads": e["META_THREADS"],
    "epoch_rounds": int(e["META_EPOCH_ROUNDS"]),
    "features": e["META_FEATURES"], "extra_args": e["META_ARGS"],
    "load_start": e["META_LOAD_START"], "load_end": e["META_LOAD_END"],
    "elapsed_s": int(e["META_ELAPSED"]), "rss_source": e["META_RSS"] or "VmHWM (self-reported)",
}, open(sys.argv[1], "w"), indent=1)
EOF
"$PY" "$ROOT/bench/report.py" "$RUN_DIR" --out "$OUT_MD"
log "raw results in ${RUN_DIR#"$ROOT"/}; report in $OUT_MD (${ELAPSED}s)"
