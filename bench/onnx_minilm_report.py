"""The markdown table of a bench/onnx_minilm.sh run: per (case, threads), the median over
rounds of each process's median time, fukai beside ONNX Runtime, and the ratio.

    python bench/onnx_minilm_report.py RUN_DIR
"""

import datetime
import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict


def ort_version():
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:
        return "?"


def main():
    run_dir = sys.argv[1]
    times = defaultdict(list)
    for line in open(os.path.join(run_dir, "results.jsonl")):
        r = json.loads(line)
        if "case" in r and "median_ms" in r:
            times[(r["case"], r["threads"], r["impl"])].append(r["median_ms"])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    meta = open(os.path.join(run_dir, "meta.txt")).read().split("\n")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print("## all-MiniLM-L6-v2 from ONNX beside ONNX Runtime\n")
    print("The graph `torch.onnx.export` wrote (`scripts/onnx_minilm.py`, opset 17, committed in "
          "`crates/fukai/tests/fixtures/onnx_minilm/` with its weights read from the shared "
          "model.safetensors), run by `fukai::onnx::Model` (fukai-bench `onnx_minilm`) and by "
          f"ONNX Runtime {ort_version()} (`bench/onnx_minilm_ort.py`, `intra_op_num_threads` = "
          "threads, default graph optimizations) on the same inputs: the first reference "
          "sentence (11 tokens), the first 8 padded to 26 tokens, and 8 × 128 fixed ids. "
          "Each process: 3 warm-up runs, then the median of the timed runs; the table gives "
          "the median over rounds, both processes run one after the other in each round.\n")
    print(f"date {date}; CPU {cpu}, {os.cpu_count()} cores; fukai commit {commit}; "
          f"{', '.join(m for m in meta if m)}. Command: `bench/onnx_minilm.sh`.\n")
    print("| case | threads | fukai (ONNX import) | ONNX Runtime | fukai ÷ ORT | rounds | goal | met? |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    cases = sorted({(c, t) for c, t, _ in times}, key=lambda k: (k[1], k[0]))
    for case, t in cases:
        f, o = times[(case, t, "fukai")], times[(case, t, "onnxruntime")]
        if not f or not o:
            continue
        mf, mo = statistics.median(f), statistics.median(o)
        ratio = mf / mo
        spread = f"fukai {min(f):.2f}–{max(f):.2f}, ORT {min(o):.2f}–{max(o):.2f} ms"
        print(f"| {case} | {t} | {mf:.2f} ms | {mo:.2f} ms | {ratio:.2f}× | {len(f)} ({spread}) "
              f"| ≤ 1.0× | {'✅ yes' if ratio <= 1.0 else '❌ no'} |")


if __name__ == "__main__":
    main()
