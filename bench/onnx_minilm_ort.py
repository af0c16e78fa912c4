"""ONNX Runtime's side of the onnx_minilm workload (fukai-bench's is
crates/fukai-bench/src/onnx_minilm.rs): the same committed graph and weights, the same inputs,
the same timing (3 warm-up calls, then REPS timed calls, median), the same JSON lines.

    python bench/onnx_minilm_ort.py --threads N [--reps R]   (needs numpy, onnxruntime;
                                                               FUKAI_ASSETS names the assets)
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRAPH = os.path.join(ROOT, "crates/fukai/tests/fixtures/onnx_minilm/all-MiniLM-L6-v2.onnx")
BATCH, TOKENS = 8, 128


def long_ids():
    """fukai-bench's minilm ids: [CLS], 126 ids spread over the vocabulary, [SEP]."""
    rows = []
    for b in range(BATCH):
        row = [1000 + (b * 7919 + t * 104729) % 29000 for t in range(TOKENS)]
        row[0], row[-1] = 101, 102
        rows.append(row)
    return np.array(rows, dtype=np.int64)


def sentences(items, n):
    rows = [it["input_ids"] for it in items[:n]]
    t = max(map(len, rows))
    ids = np.array([r + [0] * (t - len(r)) for r in rows], dtype=np.int64)
    mask = np.array([[1] * len(r) + [0] * (t - len(r)) for r in rows], dtype=np.int64)
    return ids, mask


def emit(**fields):
    print(json.dumps({"workload": "onnx_minilm", "impl": "onnxruntime", **fields}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    assets = os.environ.get("FUKAI_ASSETS")
    if not assets:
        emit(threads=args.threads, skipped="no model: set FUKAI_ASSETS")
        return
    items = json.load(open(os.path.join(assets, "models/all-MiniLM-L6-v2.reference.json")))["items"]
    # ONNX Runtime refuses external data behind a symlink that leaves the model's folder, so
    # the weights are copied beside the graph (fukai links them; both read the same bytes).
    tmp = tempfile.mkdtemp(prefix="ort-minilm-")
    shutil.copy(GRAPH, tmp)
    shutil.copy(os.path.join(assets, "models/all-MiniLM-L6-v2/model.safetensors"), tmp)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(os.path.join(tmp, os.path.basename(GRAPH)), opts,
                                providers=["CPUExecutionProvider"])
    shutil.rmtree(tmp)
    cases = [("1 sentence", *sentences(items, 1)), ("8 sentences", *sentences(items, 8)),
             ("8x128 tokens", long_ids(), np.ones((BATCH, TOKENS), dtype=np.int64))]
    for name, ids, mask in cases:
        feed = {"input_ids": ids, "attention_mask": mask}
        for _ in range(3):
            sess.run(None, feed)
        samples = []
        for _ in range(args.reps):
            t = time.perf_counter()
            sess.run(None, feed)
            samples.append(time.perf_counter() - t)
        samples.sort()
        emit(threads=args.threads, case=name, median_ms=1e3 * float(np.median(samples)),
             min_ms=1e3 * samples[0], max_ms=1e3 * samples[-1], reps=args.reps, iters_per_rep=1)
    print(json.dumps({"workload": "onnx_minilm", "impl": "onnxruntime", "threads": args.threads,
                      "kind": "process",
                      "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


if __name__ == "__main__":
    sys.exit(main())
