#!/usr/bin/env python3
"""PyTorch twins of fukai-bench's workloads, printing the same JSON lines.

usage: torch_bench.py [--threads N] [--reps R] [--sizes 64,128,..] [--tiny-iters N]
                      [--mlp-steps N] [--model DIR] [--max-batches N] [WORKLOAD...]

Same shapes, warm-up, sample sizes and statistics (median of samples) as
crates/fukai-bench; see that crate for what each workload measures.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

SIZES = [64, 128, 256, 512, 1024, 2048]
TINY_OPS = ["tiny_add", "tiny_mul", "tiny_relu", "tiny_sum_all", "tiny_matmul_4x4"]
TINY_REPS = 20
MLP_DIMS = [13, 64, 64, 3]
MLP_BATCH = 32
LR = 0.01
MLP_BUDGET_S = 5.0
# Convolution workloads, as in crates/fukai-bench/src/conv.rs: input, weight, stride, padding.
CONVS = {
    "conv2d": ((64, 32, 28, 28), (64, 32, 3, 3), (1, 1), (1, 1)),
    "conv3d": ((8, 32, 10, 32, 32), (64, 32, 3, 4, 4), (1, 2, 2), (1, 1, 1)),
}
CONVLSTM_FRAMES = (8, 20, 16, 16, 16)
CONVLSTM_HIDDEN = 64
MINILM_BATCH = 8
MINILM_TOKENS = 128

clock = time.perf_counter


def round_sig(v):
    if v == 0 or not math.isfinite(v):
        return v if math.isfinite(v) else None
    mag = math.floor(math.log10(abs(v)))
    return round(v, 5 - mag)


def emit(workload, impl, threads, **fields):
    line = {"workload": workload, "impl": impl, "threads": threads}
    for k, v in fields.items():
        line[k] = round_sig(v) if isinstance(v, float) else v
    print(json.dumps(line, separators=(",", ":")), flush=True)


def stats_fields(samples, iters):
    s = sorted(samples)
    n = len(s)
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    return med, {
        "median_ms": med * 1e3,
        "min_ms": s[0] * 1e3,
        "max_ms": s[-1] * 1e3,
        "reps": n,
        "iters_per_rep": iters,
    }


def calibrate(f, target):
    """Calls of f per sample of about `target` seconds (doubles as warm-up)."""
    n = 1
    while True:
        t = clock()
        for _ in range(n):
            f()
        dt = clock() - t
        if dt >= target / 4 or n >= 1 << 24:
            if dt < target:
                t = clock()
                for _ in range(n):
                    f()
                dt = min(dt, clock() - t)
            return max(1, round(target / max(dt / n, 1e-12)))
        n *= 2


def fixed(f, warmup, reps, iters):
    for _ in range(warmup):
        f()
    samples = []
    for _ in range(reps):
        t = clock()
        for _ in range(iters):
            f()
        samples.append((clock() - t) / iters)
    return samples


def budgeted(f, warmup, reps, iters, budget):
    """fixed() within about `budget` seconds; mirrors harness::budgeted in fukai-bench."""
    t = clock()
    done = 0
    while done < max(warmup, 3) and (done < 3 or clock() - t < budget / 10):
        f()
        done += 1
    per = (clock() - t) / done
    iters = max(1, min(iters, int(budget / max(reps, 1) / max(per, 1e-12))))
    return fixed(f, 0, reps, iters), iters


def run_matmul(threads, sizes, reps):
    for n in sizes:
        a = torch.randn(n, n)
        b = torch.randn(n, n)
        torch.matmul(a, b)

        def f():
            torch.matmul(a, b)

        target = 0.001 if n >= 1024 else 0.025
        iters = calibrate(f, target)
        samples = fixed(f, 0, reps or (5 if n >= 2048 else 9), iters)
        med, fields = stats_fields(samples, iters)
        emit("matmul", "torch", threads, size=n, **fields, gflops=2 * n**3 / med / 1e9)


def run_tiny(op, threads, total):
    a, b = torch.randn(4), torch.randn(4)
    m, k = torch.randn(4, 4), torch.randn(4, 4)
    iters = max(1, total // TINY_REPS)
    # Each loop is as tight as Python allows: a local function object, arguments in locals.
    if op == "tiny_add":
        fn, args = torch.add, (a, b)
    elif op == "tiny_mul":
        fn, args = torch.mul, (a, b)
    elif op == "tiny_relu":
        fn, args = torch.relu, (a,)
    elif op == "tiny_sum_all":
        fn, args = torch.sum, (a,)
    elif op == "tiny_matmul_4x4":
        fn, args = torch.matmul, (m, k)
    else:
        raise SystemExit(f"unknown tiny op {op}")
    r = range(iters)

    def sample():
        t = clock()
        for _ in r:
            fn(*args)
        return (clock() - t) / iters

    for _ in range(iters // 10 + 1):
        fn(*args)
    samples = [sample() for _ in range(TINY_REPS)]
    med, fields = stats_fields(samples, iters)
    emit(op, "torch", threads, **fields, ns_per_op=med * 1e9)


def run_mlp(threads, steps, reps):
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(MLP_DIMS, MLP_DIMS[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(MLP_DIMS) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    x = torch.randn(MLP_BATCH, MLP_DIMS[0])
    y = torch.tensor([(i * 7 + 1) % 3 for i in range(MLP_BATCH)], dtype=torch.long)
    losses = []

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    samples, iters = budgeted(step, -(-steps // 10), reps, max(1, -(-steps // reps)), MLP_BUDGET_S)
    if not losses[-1] < losses[0]:
        raise SystemExit(f"mlp_step: loss did not fall ({losses[0]} -> {losses[-1]})")
    med, fields = stats_fields(samples, iters)
    emit("mlp_step", "torch", threads, **fields, us_per_step=med * 1e6,
         first_loss=losses[0], last_loss=losses[-1])


def run_conv(name, threads, reps):
    shape_x, shape_w, stride, padding = CONVS[name]
    conv = F.conv2d if len(stride) == 2 else F.conv3d
    x = torch.randn(*shape_x, requires_grad=True)
    fan_in = math.prod(shape_w[1:])
    w = (torch.randn(*shape_w) / math.sqrt(fan_in)).requires_grad_()

    def step():
        y = conv(x, w, None, stride, padding, 1, 1)
        y.sum().backward()
        x.grad = None
        w.grad = None

    samples = fixed(step, 2, reps, 1)
    out_len = math.prod((i + 2 * p - k) // s + 1
                        for i, k, s, p in zip(shape_x[2:], shape_w[2:], stride, padding))
    flop = 3 * 2 * shape_x[0] * shape_w[0] * out_len * math.prod(shape_w[1:])
    med, fields = stats_fields(samples, 1)
    emit(name, "torch", threads, **fields, gflops=flop / med / 1e9)


class ConvLSTM(nn.Module):
    """ConvLSTM as PyTorch users write it (fukai's nn::ConvLstm2d twin): one conv over
    cat([x, h]) -> 4*hidden channels, chunked i, f, g, o."""

    def __init__(self, inputs, hidden, kernel):
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(inputs + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def cell(self, x, state):
        h, c = state
        i, f, g, o = self.conv(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, x):
        b, _, _, hgt, wd = x.shape
        h = c = x.new_zeros(b, self.hidden, hgt, wd)
        outs = []
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
            outs.append(h)
        return torch.stack(outs, dim=1), (h, c)


def run_convlstm(threads, reps):
    """The encoder-forecaster of crates/fukai-bench/src/convlstm.rs."""
    b, t, ch, hgt, wd = CONVLSTM_FRAMES
    encoder = ConvLSTM(ch, CONVLSTM_HIDDEN, 3)
    forecaster = ConvLSTM(ch, CONVLSTM_HIDDEN, 3)
    head = nn.Conv2d(CONVLSTM_HIDDEN, ch, 1)
    params = [*encoder.parameters(), *forecaster.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    frames = torch.rand(*CONVLSTM_FRAMES, generator=torch.Generator().manual_seed(1))
    seen = t // 2
    losses = []

    def step():
        opt.zero_grad()
        _, state = encoder(frames[:, :seen])
        inp, logits = frames[:, seen - 1], []
        for _ in range(seen, t):
            state = forecaster.cell(inp, state)
            out = head(state[0])
            inp = torch.sigmoid(out)
            logits.append(out)
        loss = F.binary_cross_entropy_with_logits(torch.stack(logits, 1), frames[:, seen:])
        loss.backward()
        opt.step()
        losses.append(loss.item())

    samples, iters = budgeted(step, 2, reps, 1, 20.0)
    if not losses[-1] < losses[0]:
        raise SystemExit(f"convlstm_step: loss did not fall ({losses[0]} -> {losses[-1]})")
    med, fields = stats_fields(samples, iters)
    emit("convlstm_step", "torch", threads, **fields, ms_per_step=med * 1e3,
         first_loss=losses[0], last_loss=losses[-1])


def run_lstm_vowels(threads, reps):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "twins"))
    import vowels_lstm as twin
    assets = os.environ.get("FUKAI_ASSETS")
    if not assets:
        raise SystemExit("lstm_vowels needs FUKAI_ASSETS (the folder with timeseries/uea)")
    (xs, ys, classes), _ = twin.load(assets)
    net = twin.Net(xs[0].shape[1], len(classes))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(7)
    losses = []

    def epoch():
        losses.append(twin.train_epoch(net, opt, xs, ys, 32, gen))

    samples, iters = budgeted(epoch, 2, reps, 1, 10.0)
    if not losses[-1] < losses[0]:
        raise SystemExit(f"lstm_vowels: loss did not fall ({losses[0]} -> {losses[-1]})")
    med, fields = stats_fields(samples, iters)
    emit("lstm_vowels", "torch", threads, **fields, ms_per_epoch=med * 1e3,
         first_loss=losses[0], last_loss=losses[-1])
FASHION = {"fashion_mlp": "fashion_mlp", "fashion_cnn": "fashion_cnn"}  # workload -> twin module


def run_fashion(workload, threads, epochs, max_steps):
    """Training epochs of the twin of `fukai train --preset fashion-mlp / fashion-cnn`
    (bench/twins/): the twin's own model, optimizer, schedule and loop, timed by the loop's
    per-epoch `seconds` (training pass only: no IDX reading, no test evaluation), as fukai-bench
    times the CLI's metrics.jsonl."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "twins"))
    import importlib

    import fashion_common

    assets = os.environ.get("FUKAI_ASSETS")
    data = os.path.join(assets, "fashion-mnist") if assets else None
    if data is None or not os.path.isdir(data):
        emit(workload, "torch", threads, skipped="no data: set FUKAI_ASSETS (the folder with fashion-mnist)")
        return
    twin = importlib.import_module(FASHION[workload])
    args = argparse.Namespace(data=data, epochs=epochs, threads=threads, seed=0)
    torch.manual_seed(0)
    model, opt, sched, kwargs = twin.build(epochs)
    report = fashion_common.train(workload, args, model, opt, sched, max_steps=max_steps, quiet=True,
                                  **kwargs)
    seconds = [e["seconds"] for e in report["epochs"]]
    med, fields = stats_fields(seconds, 1)
    extra = {"max_steps": max_steps} if max_steps is not None else {}
    emit(workload, "torch", threads, **fields, ms_per_epoch=med * 1e3,
         last_train_loss=report["epochs"][-1]["train_loss"], **extra)


def minilm_ids():
    """The token ids fukai-bench's minilm workload uses: [CLS], 126 spread ids, [SEP]."""
    rows = []
    for b in range(MINILM_BATCH):
        row = [1000 + (b * 7919 + t * 104729) % 29000 for t in range(MINILM_TOKENS)]
        row[0], row[-1] = 101, 102
        rows.append(row)
    return torch.tensor(rows, dtype=torch.int64)


def run_minilm(threads, reps, model_dir):
    """transformers' BertModel from the same directory, then mean pooling and F.normalize."""
    if model_dir is None and os.environ.get("FUKAI_ASSETS"):
        model_dir = os.path.join(os.environ["FUKAI_ASSETS"], "models", "all-MiniLM-L6-v2")
    if model_dir is None:
        emit("minilm", "torch", threads, skipped="no model: pass --model DIR or set FUKAI_ASSETS")
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir).eval()
    ids = minilm_ids()
    mask = torch.ones_like(ids)

    def step():
        with torch.inference_mode():
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            F.normalize(pooled, p=2, dim=1)

    samples = fixed(step, 2, reps, 1)
    med, fields = stats_fields(samples, 1)
    emit("minilm", "torch", threads, **fields, texts_per_s=MINILM_BATCH / med)
GPT_VOCAB, GPT_WIDTH, GPT_LAYERS, GPT_HEADS, GPT_CONTEXT, GPT_BATCH, GPT_STEPS = 84, 128, 4, 4, 64, 12, 200


def run_gpt(threads, reps):
    """200 char-GPT training steps per sample: fukai-bench's gpt_step (crates/fukai-bench/src/gpt.rs)."""

    class Block(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.heads = heads
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
            q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
            return x + self.fc2(F.gelu(self.fc(self.ln2(x))))

    class Gpt(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(GPT_VOCAB, GPT_WIDTH)
            self.wpe = nn.Embedding(GPT_CONTEXT, GPT_WIDTH)
            self.blocks = nn.ModuleList(Block(GPT_WIDTH, GPT_HEADS) for _ in range(GPT_LAYERS))
            self.ln_f = nn.LayerNorm(GPT_WIDTH)
            self.head = nn.Linear(GPT_WIDTH, GPT_VOCAB, bias=False)

        def forward(self, idx):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for blk in self.blocks:
                x = blk(x)
            return self.head(self.ln_f(x))

    model = Gpt()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(7)
    noise = torch.rand(100_000, generator=g, dtype=torch.float64)
    stream = [0] * len(noise)
    for i in range(1, len(stream)):
        stream[i] = (stream[i - 1] * 5 + 3) % GPT_VOCAB if noise[i] < 0.8 else int(noise[i] * 1e6) % GPT_VOCAB
    stream = torch.tensor(stream, dtype=torch.long)
    losses = []

    def step():
        starts = torch.randint(0, len(stream) - GPT_CONTEXT - 1, (GPT_BATCH,), generator=g).tolist()
        x = torch.stack([stream[s:s + GPT_CONTEXT] for s in starts])
        y = torch.stack([stream[s + 1:s + 1 + GPT_CONTEXT] for s in starts])
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, GPT_VOCAB), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())

    samples = fixed(step, 10, reps, GPT_STEPS)
    if not losses[-1] < losses[0]:
        raise SystemExit(f"gpt_step: loss did not fall ({losses[0]} -> {losses[-1]})")
    med, fields = stats_fields(samples, GPT_STEPS)
    emit("gpt_step", "torch", threads, **fields, ms_per_step=med * 1e3,
         tokens_per_second=GPT_BATCH * GPT_CONTEXT / med, first_loss=losses[0], last_loss=losses[-1])


def peak_rss_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def expand(workloads):
    out = []
    for w in workloads:
        if w == "all":
            out += ["matmul", *TINY_OPS, "mlp_step", *CONVS, "convlstm_step", "lstm_vowels", "gpt_step", "minilm",
                    *FASHION]
        elif w == "tiny":
            out += TINY_OPS
        elif w in ("matmul", "mlp_step", "convlstm_step", "lstm_vowels", "gpt_step", "minilm") or w in TINY_OPS \
                or w in CONVS \
                or w in FASHION:
            out.append(w)
        else:
            raise SystemExit(f"torch_bench.py: unknown workload {w!r}")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--tiny-iters", type=int, default=1_000_000)
    p.add_argument("--mlp-steps", type=int, default=2000)
    p.add_argument("--model", default=None)
    p.add_argument("--max-batches", type=int, default=None,
                   help="stop the fashion_* epochs after N batches (a smoke run)")
    p.add_argument("workloads", nargs="*", default=["all"])
    args = p.parse_args()
    workloads = expand(args.workloads or ["all"])
    threads = max(1, args.threads)
    # Before any work: intra-op threads, and one inter-op thread (we never run ops concurrently).
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    if torch.get_num_threads() != threads:
        raise SystemExit(f"asked for {threads} threads, torch uses {torch.get_num_threads()}")
    torch.manual_seed(0)
    start = clock()
    for w in workloads:
        if w == "matmul":
            run_matmul(threads, [int(s) for s in args.sizes.split(",")], args.reps)
        elif w == "mlp_step":
            run_mlp(threads, args.mlp_steps, args.reps or 15)
        elif w in CONVS:
            run_conv(w, threads, args.reps or (7 if w == "conv2d" else 5))
        elif w == "convlstm_step":
            run_convlstm(threads, args.reps or 5)
        elif w == "lstm_vowels":
            run_lstm_vowels(threads, args.reps or 9)
        elif w == "minilm":
            run_minilm(threads, args.reps or 10, args.model)
        elif w == "gpt_step":
            run_gpt(threads, args.reps or 1)
        elif w in FASHION:
            run_fashion(w, threads, args.reps or 1, args.max_batches)
        else:
            run_tiny(w, threads, args.tiny_iters)
    fields = {"kind": "process", "wall_s": clock() - start}
    rss = peak_rss_kb()
    if rss is not None:
        fields["peak_rss_kb"] = rss
    emit(",".join(workloads), "torch", threads, **fields)


if __name__ == "__main__":
    sys.exit(main())
