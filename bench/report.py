#!/usr/bin/env python3
"""Turns a bench/run.sh run directory (results.jsonl + meta.json) into BENCHMARKS.md.

usage: report.py RUN_DIR [--out BENCHMARKS.md]

Standard library only. Each (workload, impl, threads) value is the median over rounds of each
process's median sample; peak RSS is the largest over rounds of the whole process that ran the
workload's group.
"""

import argparse
import json
import os
import statistics
import sys

TINY = ["tiny_add", "tiny_mul", "tiny_relu", "tiny_sum_all", "tiny_matmul_4x4"]
ORDER = ["matmul", *TINY, "mlp_step", "conv2d", "conv3d", "convlstm_step", "lstm_vowels", "gpt_step", "minilm",
         "fashion_mlp", "fashion_cnn"]
# Forward + both gradients, as in the programs: 3 × 2 × N × C_out × output positions × C_in × taps.
CONV_FLOP = {
    "conv2d": 3 * 2 * 64 * 64 * 28 * 28 * 32 * 9,
    "conv3d": 3 * 2 * 8 * 64 * (10 * 16 * 16) * 32 * (3 * 4 * 4),
}

# Goals, as agreed for the suite. matmul is judged against the gemm crate, the rest against torch.
MATMUL_VS_GEMM = 0.90
TINY_ADD_NS = 1000.0
MLP_RATIO = 0.33
CONV_RATIO = 1.0
LSTM_RATIO = 0.67
CONVLSTM_RATIO = 0.8
MINILM_RATIO = 1.0
# Fashion-MNIST preset epochs: time ratio, and peak RSS no larger than PyTorch's.
FASHION_RATIO = {"fashion_mlp": 0.9, "fashion_cnn": 0.8}
# Per-round medians further apart than this (relative to their median) get a † in the table.
NOISY_SPREAD = 0.5


def load(run_dir):
    rows = []
    with open(os.path.join(run_dir, "results.jsonl")) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                print(f"report.py: skipping bad line {n}: {line[:80]}", file=sys.stderr)
    meta_path = os.path.join(run_dir, "meta.json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    return rows, meta


def row_key(r):
    return (r["workload"], r.get("size"))


def sort_key(key):
    w, size = key
    return (ORDER.index(w) if w in ORDER else len(ORDER), w, size or 0)


def label(key):
    w, size = key
    if w == "matmul":
        return f"matmul {size}×{size}"
    if w == "conv2d":
        return "conv2d fwd+bwd"
    if w == "convlstm_step":
        return "ConvLSTM encoder–forecaster training step"
    if w == "conv3d":
        return "conv3d fwd+bwd"
    if w == "lstm_vowels":
        return "JapaneseVowels LSTM epoch"
    if w == "minilm":
        return "MiniLM-L6 embed 8×128"
    if w == "gpt_step":
        return "char-GPT training step (200 steps)"
    if w == "fashion_mlp":
        return "Fashion-MNIST MLP epoch (`fashion-mlp`)"
    if w == "fashion_cnn":
        return "Fashion-MNIST CNN epoch (`fashion-cnn`)"
    return w


def in_group(workload, group):
    return group in ("all", workload) or (group == "tiny" and workload.startswith("tiny_"))


def fmt_time(key, ms):
    if ms is None:
        return "—"
    w, size = key
    if w.startswith("tiny_"):
        return f"{ms * 1e6:.0f} ns"
    if w == "mlp_step":
        return f"{ms * 1e3:.1f} µs"
    if w == "matmul":
        gf = 2 * size**3 / (ms * 1e-3) / 1e9
        return f"{fmt_ms(ms)} ({gf:.1f} GFLOP/s)"
    if w in CONV_FLOP:
        return f"{fmt_ms(ms)} ({CONV_FLOP[w] / (ms * 1e-3) / 1e9:.1f} GFLOP/s)"
    if w == "gpt_step":
        return f"{fmt_ms(ms)} ({768 / (ms * 1e-3):,.0f} tok/s)"
    if w.startswith("fashion_") and ms >= 1000:
        return f"{ms / 1e3:.2f} s"
    return fmt_ms(ms)


def fmt_ms(ms):
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{ms * 1e3:.1f} µs"


def fmt_rss(kb):
    return "—" if kb is None else f"{kb / 1024:.0f} MiB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--out", default="BENCHMARKS.md")
    args = ap.parse_args()
    rows, meta = load(args.run_dir)

    # per-round medians: (key, impl, threads) -> [median_ms, ...]
    per_round = {}
    skipped = {}
    smoke = {}  # workload -> batches, for epochs cut short by --max-batches
    for r in rows:
        if r.get("kind") or "workload" not in r:
            continue
        k = (row_key(r), r["impl"], r["threads"])
        if "skipped" in r:
            skipped[k] = r["skipped"]
        elif r.get("median_ms") is not None:
            per_round.setdefault(k, []).append(r["median_ms"])
        if r.get("max_steps") is not None:
            smoke[r["workload"]] = r["max_steps"]

    # peak RSS per (impl, group, threads); GNU time's number if present, else the self-report
    rss_time, rss_self = {}, {}
    for r in rows:
        if r.get("kind") == "run" and r.get("time_maxrss_kb") is not None:
            k = (r["impl"], r["group"], r["threads"])
            rss_time[k] = max(rss_time.get(k, 0), r["time_maxrss_kb"])
        if r.get("kind") == "process" and r.get("peak_rss_kb") is not None:
            for w in r["workload"].split(","):
                k = (r["impl"], w, r["threads"])
                rss_self[k] = max(rss_self.get(k, 0), r["peak_rss_kb"])
    groups = {r["group"] for r in rows if r.get("kind") == "run"}

    def rss(impl, workload, threads):
        for g in groups:
            if in_group(workload, g) and (impl, g, threads) in rss_time:
                return rss_time[(impl, g, threads)]
        return rss_self.get((impl, workload, threads))

    # fukai and gemm run interleaved in one process: compare them round by round (paired), which
    # cancels most of the machine's noise, then take the median of those ratios.
    paired = {}
    for r in rows:
        if r.get("kind") or r.get("workload") != "matmul" or r.get("median_ms") is None:
            continue
        paired.setdefault((row_key(r), r["threads"], r.get("round")), {})[r["impl"]] = r["median_ms"]
    gemm_share = {}
    for (key, t, _), v in paired.items():
        if "fukai" in v and "gemm" in v and v["fukai"] > 0:
            gemm_share.setdefault((key, t), []).append(v["gemm"] / v["fukai"])

    def spread(key, impl, threads):
        v = per_round.get((key, impl, threads))
        if not v or len(v) < 2:
            return 0.0
        m = statistics.median(v)
        return (max(v) - min(v)) / m if m else 0.0

    def noisy(key, impl, threads):
        return " †" if spread(key, impl, threads) > NOISY_SPREAD else ""

    def med(key, impl, threads):
        v = per_round.get((key, impl, threads))
        return statistics.median(v) if v else None

    keys = sorted({k[0] for k in per_round} | {k[0] for k in skipped}, key=sort_key)
    threads_all = sorted({k[2] for k in per_round} | {k[2] for k in skipped})

    table = [
        "| workload | threads | fukai | PyTorch | fukai ÷ PyTorch | fukai peak RSS | "
        "PyTorch peak RSS | goal | met? |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    met_count = goal_count = 0
    for key in keys:
        w, size = key
        for t in threads_all:
            f, p = med(key, "fukai", t), med(key, "torch", t)
            g = med(key, "gemm", t)
            if f is None and p is None and (key, "fukai", t) not in skipped:
                continue
            ratio = f"{f / p:.2f}×" if f is not None and p else "—"
            goal, met = "—", "—"
            if w == "matmul":
                goal = f"≥ {MATMUL_VS_GEMM:.0%} of gemm crate's GFLOP/s"
                if g is not None:
                    goal += f" (gemm: {fmt_time(key, g)})"
                shares = gemm_share.get((key, t))
                if shares:
                    share = statistics.median(shares)  # GFLOP/s ratio = inverse time ratio
                    ok = share >= MATMUL_VS_GEMM
                    met = f"{'✅ yes' if ok else '❌ no'} ({share:.0%})"
                    goal_count += 1
                    met_count += ok
            elif w == "tiny_add":
                goal = "< 1 µs"
                if f is not None:
                    ok = f * 1e6 < TINY_ADD_NS
                    met = f"{'✅ yes' if ok else '❌ no'}"
                    goal_count += 1
                    met_count += ok
            elif w == "mlp_step":
                goal = f"≤ {MLP_RATIO}× PyTorch"
                if f is not None and p:
                    ok = f / p <= MLP_RATIO
                    met = f"{'✅ yes' if ok else '❌ no'}"
                    goal_count += 1
                    met_count += ok
            elif w in CONV_FLOP:
                goal = f"≤ {CONV_RATIO:.1f}× PyTorch"
                if f is not None and p:
                    ok = f / p <= CONV_RATIO
                    met = f"{'✅ yes' if ok else '❌ no'}"
                    goal_count += 1
                    met_count += ok
                elif (key, "fukai", t) in skipped:
                    met = "n/a (fukai side not built: `conv` feature)"
            elif w in ("lstm_vowels", "convlstm_step"):
                # Not `ratio`: that is the row's fukai ÷ PyTorch column.
                limit = LSTM_RATIO if w == "lstm_vowels" else CONVLSTM_RATIO
                goal = f"≤ {limit}× PyTorch"
                if f is not None and p:
                    ok = f / p <= limit
                    met = f"{'✅ yes' if ok else '❌ no'}"
                    goal_count += 1
                    met_count += ok
            elif w == "minilm":
                goal = f"≤ {MINILM_RATIO:.1f}× PyTorch"
                if f is not None and p:
                    ok = f / p <= MINILM_RATIO
                    met = f"{'✅ yes' if ok else '❌ no'}"
                    goal_count += 1
                    met_count += ok
                elif (key, "fukai", t) in skipped:
                    met = "n/a (no model: set FUKAI_ASSETS)"
            elif w in FASHION_RATIO:
                # Two goals: the epoch time, and a peak RSS no larger than PyTorch's.
                goal = f"≤ {FASHION_RATIO[w]}× PyTorch; peak RSS ≤ PyTorch's"
                if w in smoke:
                    # A few batches are mostly warm-up: not the epoch the goal is about.
                    met = "n/a (cut short by --max-batches)"
                elif f is not None and p:
                    ok = f / p <= FASHION_RATIO[w]
                    met = f"time {'✅' if ok else '❌'}"
                    goal_count += 1
                    met_count += ok
                    fr, pr = rss("fukai", w, t), rss("torch", w, t)
                    if fr is not None and pr is not None:
                        ok = fr <= pr
                        met += f", RSS {'✅' if ok else '❌'}"
                        goal_count += 1
                        met_count += ok
                elif (key, "fukai", t) in skipped:
                    met = "n/a (no data: set FUKAI_ASSETS)"
            elif w == "gpt_step":
                # tokens/s >= 1.25x PyTorch's, i.e. step time <= 0.8x.
                goal = "≥ 1.25× PyTorch tok/s"
                if f is not None and p:
                    ok = f / p <= 0.8
                    met = f"{'✅ yes' if ok else '❌ no'}"
                    goal_count += 1
                    met_count += ok
            fcell = fmt_time(key, f) + noisy(key, "fukai", t) if f is not None else (
                "skipped" if (key, "fukai", t) in skipped else "—")
            pcell = fmt_time(key, p) + (noisy(key, "torch", t) if p is not None else "")
            name = label(key) + (f" — first {smoke[w]} batches only" if w in smoke else "")
            table.append(
                f"| {name} | {t} | {fcell} | {pcell} | {ratio} | "
                f"{fmt_rss(rss('fukai', w, t))} | {fmt_rss(rss('torch', w, t))} | {goal} | {met} |"
            )

    # Per-round detail, to judge the noise.
    detail = [
        "| workload | threads | impl | per-round medians | spread (max−min)/median |",
        "|---|---:|---|---|---:|",
    ]
    for key in keys:
        for t in threads_all:
            for impl in ("fukai", "gemm", "torch"):
                v = per_round.get((key, impl, t))
                if not v:
                    continue
                m = statistics.median(v)
                spread = (max(v) - min(v)) / m if m else 0
                vals = " / ".join(fmt_time(key, x).split(" (")[0] for x in v)
                detail.append(f"| {label(key)} | {t} | {impl} | {vals} | {spread:.0%} |")

    m = meta
    out = []
    out.append("# Benchmarks\n")
    out.append(
        "fukai side by side with PyTorch on CPU. Generated by `bench/run.sh` "
        "(programs: `crates/fukai-bench`, `bench/torch_bench.py`; report: `bench/report.py`). "
        "Reproduce with `bench/run.sh` (or `FUKAI_BENCH_PYTHON=/path/to/python bench/run.sh` "
        "to reuse a Python that has torch).\n"
    )
    out.append("| | |\n|---|---|")
    for name, val in [
        ("date", m.get("date")),
        ("CPU", m.get("cpu_model")),
        ("cores", m.get("cores")),
        ("rustc", m.get("rustc")),
        ("torch", f"{m.get('torch')} ({m.get('python')})"),
        ("fukai commit", m.get("git_rev")),
        ("rounds", m.get("rounds") if "epoch_rounds" not in m else
         f"{m.get('rounds')} (Fashion-MNIST CNN epoch: {min(m['epoch_rounds'], m.get('rounds') or 0)})"),
        ("fukai-bench features", m.get("features") or "(none)"),
        ("extra args", m.get("extra_args") or "(none)"),
        ("load average at start / end", f"{m.get('load_start')} / {m.get('load_end')}"),
        ("suite wall time", f"{m.get('elapsed_s')} s"),
        ("peak RSS from", m.get("rss_source")),
    ]:
        out.append(f"| {name} | {val} |")
    out.append("")
    loads = []
    for field in ("load_start", "load_end"):
        try:
            loads.append(float(str(m.get(field, "")).split()[0]))
        except (ValueError, IndexError):
            pass
    cores = m.get("cores") or 1
    if loads and max(loads) > 0.5 * cores:
        out.append(
            f"> **Noisy run.** The 1-minute load average reached {max(loads):.1f} on "
            f"{cores} cores, so other work shared the CPUs: treat single numbers with care and "
            "look at the per-round spread below. Multi-threaded runs suffer most: a worker "
            "thread that is descheduled stalls the whole operation (PyTorch's OpenMP pool, "
            "at 2 threads under load, often takes 16–30 ms for any matmul and some mlp steps "
            "take hundreds of ms; fukai's rayon pool is hit less but not spared).\n"
        )
    out.append(f"Goals met: **{met_count} of {goal_count}** measured.\n")
    out.extend(table)
    out.append("")
    tiny_calls = next(
        (f"{r['reps'] * r['iters_per_rep']:,}" for r in rows
         if str(r.get("workload", "")).startswith("tiny_") and "reps" in r),
        "?",
    )
    out.append(
        "How to read it: times are the median over rounds of each process's median sample "
        "(lower is better); ratio < 1 means fukai is faster; † marks a value whose per-round "
        f"medians spread by more than {NOISY_SPREAD:.0%} of it (see the detail below). matmul is "
        "square f32, judged against the `gemm` crate (0.19, fukai's features) called directly "
        "with a preallocated output; fukai's and gemm's samples are interleaved in one process, "
        "the goal column's percentage is the median over rounds of gemm time ÷ fukai time in the "
        "same process, and the fukai RSS covers both. Tiny ops are forward-only on 4-element (4×4 for matmul) tensors without "
        f"gradient tracking, ns per op over {tiny_calls} calls per process (PyTorch's number includes its Python call "
        "overhead, which is how PyTorch is used). mlp_step is 13-64-64-3 with ReLU, batch 32, "
        "cross-entropy, backward and an SGD update. conv2d is 64×32×28×28 input, 64×32×3×3 "
        "weight, padding 1, forward plus input and weight gradients; conv3d likewise with "
        "8×32×10×32×32 input, 64×32×3×4×4 weight, stride (1, 2, 2), padding 1. The JapaneseVowels LSTM "
        "epoch is 9 training steps (batch 32, 270 sequences of 7-29 steps, 12 channels) of one "
        "LSTM layer of 64 read at each sequence's last valid step, a linear head, cross-entropy "
        "and Adam; PyTorch runs nn.LSTM over packed sequences (bench/twins/vowels_lstm.py). "
        "The ConvLSTM step trains an encoder–forecaster on Moving-MNIST-shaped random frames "
        "(batch 8 × 20 frames of 16×16×16, i.e. 64×64 folded 4×4): ConvLstm2d(16, 64, 3) over 10 "
        "frames, a second one from its final state fed its own sigmoid predictions for 10 steps, "
        "a 1×1 conv head, BCE with logits, Adam; PyTorch runs the same model written with "
        "nn.Conv2d over cat, chunk and sigmoid/tanh (bench/torch_bench.py). "
        "The char-GPT step is one AdamW training step of the shakespeare-gpt preset's model (4 "
        "layers, 4 heads, width 128, context 64, batch 12, 84-token vocabulary) on a synthetic "
        "token stream, median over 200 steps (bench/twins/shakespeare_gpt.py's model in PyTorch). "
        "MiniLM-L6 is all-MiniLM-L6-v2 "
        "(6-layer BERT, hidden 384) embedding 8 texts of 128 tokens: encoder, mean pooling and "
        "L2 normalization, no gradients; PyTorch runs transformers' BertModel. "
        "The Fashion-MNIST epochs are one training epoch (60,000 images) of `fukai train --preset "
        "fashion-mlp` / `fashion-cnn`, run by the CLI itself, against the PyTorch twins in "
        "bench/twins/ (same architecture, init, optimizer, schedule, batch size, augmentation, label "
        "smoothing): forward, backward, optimizer and batching/augmentation (fukai's data loader "
        "builds batches on one prefetch thread besides the compute threads, PyTorch's loop on its "
        "main thread), timed from each run's per-epoch training time, so reading the dataset and "
        "the test evaluation are excluded on both sides; both processes load the dataset and "
        "evaluate, so their peak RSS covers the same work. Peak RSS is of the whole "
        "process that ran the workload's group (PyTorch's includes the torch library itself).\n"
    )
    # Hand-written analysis of the rows that miss their goals (profiles, causes, fixes).
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")
    if os.path.exists(notes):
        out.append(open(notes).read().rstrip("\n") + "\n")
    # bench/onnx_minilm.sh's table (fukai's ONNX import beside ONNX Runtime), from its own run.
    onnx = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx_minilm.md")
    if os.path.exists(onnx):
        out.append(open(onnx).read().rstrip("\n") + "\n")
    # bench/bf16.sh / the bf16_steps example: f32 against bf16 autocast training on the CPU.
    bf16 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bf16.md")
    if os.path.exists(bf16):
        out.append(open(bf16).read().rstrip("\n") + "\n")
    # scripts/gpu_check.sh's figures from a lent GPU machine, written by hand from its log.
    gpu = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpu.md")
    if os.path.exists(gpu):
        out.append(open(gpu).read().rstrip("\n") + "\n")
    out.append("## Per-round detail\n")
    out.extend(detail)
    out.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(out))
    print(f"wrote {args.out}: {met_count}/{goal_count} goals met", file=sys.stderr)


if __name__ == "__main__":
    main()
