#!/usr/bin/env bash
# Issue 18's goals beside llama.cpp: the same GGUF (SmolLM2-135M-Instruct Q4_1), the same prompt
# (bench/llm_prompt.txt, ~260 tokens), greedy decoding of 128 tokens, 1 and 2 threads, one
# process per measurement so each peak RSS is its own. llama.cpp is llama-cpp-python built here
# with CMAKE_ARGS="-DGGML_NATIVE=ON" (FUKAI_BENCH_PYTHON names its interpreter).
#   FUKAI_BENCH_PYTHON=/work/venv/bin/python bench/llm.sh [MODEL.gguf]
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-${FUKAI_GGUF_SMOLLM2:-$HOME/.cache/fukai/models/smollm2-135m-instruct-q4_1.gguf}}"
python="${FUKAI_BENCH_PYTHON:-python3}"
rounds="${BENCH_ROUNDS:-3}"
cargo build --release -q -p fukai-cli
fukai="${CARGO_TARGET_DIR:-target}/release/fukai"
prompt="$(cat bench/llm_prompt.txt)"
for threads in ${BENCH_THREADS:-1 2}; do
  for round in $(seq "$rounds"); do
    for who in fukai llama.cpp; do
      if [ "$who" = fukai ]; then
        cmd=(env RAYON_NUM_THREADS="$threads" "$fukai" generate --model "$model" --prompt "$prompt"
             --temperature 0 --repeat-penalty 1 --max-tokens 128)
      else
        cmd=("$python" bench/llm_llamacpp.py --model "$model" --prompt-file bench/llm_prompt.txt
             --threads "$threads" --max-tokens 128)
      fi
      line=$( { /usr/bin/time -f "peak RSS %M KB" "${cmd[@]}" >/dev/null; } 2>&1 | grep -E "prefill:|peak RSS" | tr '\n' ' ')
      echo "threads=$threads round=$round $who: $line"
    done
  done
done
