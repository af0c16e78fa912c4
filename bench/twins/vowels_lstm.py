#!/usr/bin/env python3
"""PyTorch twin of `fukai train --preset vowels-lstm` (crates/fukai-cli/src/seq.rs) and of the
`lstm_vowels` bench workload: JapaneseVowels (UEA .ts), inputs standardized per channel with the
training set's statistics, one LSTM layer of 64 read at each sequence's last valid step (packed
sequences), a linear head, cross-entropy, Adam 3e-3, batch 32, 60 epochs.

    FUKAI_ASSETS=/path/to/assets python bench/twins/vowels_lstm.py [--threads 2] [--epochs 60]
        [--bidirectional] [--cosine]

Prints progress on stderr and one JSON report on stdout (test accuracy, per-epoch seconds).
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
from torch.nn.utils.rnn import pack_padded_sequence


def read_ts(path):
    """Minimal UEA .ts reader: (list of [len, dims] float tensors, label indices, class names)."""
    series, labels, classes, data = [], [], None, False
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not data:
                low = line.lower()
                if low.startswith("@classlabel"):
                    classes = line.split()[2:]
                elif low.startswith("@data"):
                    data = True
                continue
            *dims, label = line.split(":")
            cols = [[float(v) for v in d.split(",")] for d in dims]
            series.append(torch.tensor(cols, dtype=torch.float32).T.contiguous())
            labels.append(classes.index(label.strip()))
    return series, torch.tensor(labels), classes


def load(assets):
    stem = os.path.join(assets, "timeseries", "uea", "JapaneseVowels")
    train = read_ts(stem + "_TRAIN.ts")
    test = read_ts(stem + "_TEST.ts")
    allsteps = torch.cat(train[0])
    mean, std = allsteps.mean(0), allsteps.std(0, unbiased=False).clamp_min(1e-8)
    norm = lambda s: [(x - mean) / std for x in s]
    return (norm(train[0]), train[1], train[2]), (norm(test[0]), test[1])


def batch(series, labels, rows):
    xs = [series[i] for i in rows]
    lengths = torch.tensor([len(x) for x in xs])
    x = nn.utils.rnn.pad_sequence(xs, batch_first=True)
    return x, lengths, labels[rows]


class Net(nn.Module):
    def __init__(self, dims, classes, hidden=64, bidirectional=False):
        super().__init__()
        self.rnn = nn.LSTM(dims, hidden, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), classes)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.rnn(packed)
        return self.head(h.permute(1, 0, 2).reshape(x.shape[0], -1))


def train_epoch(net, opt, series, labels, batch_size, gen, sched=None):
    order = torch.randperm(len(series), generator=gen).tolist()
    total = 0.0
    for k in range(0, len(order), batch_size):
        x, lengths, y = batch(series, labels, order[k:k + batch_size])
        opt.zero_grad()
        loss = F.cross_entropy(net(x, lengths), y)
        loss.backward()
        if sched is not None:
            sched()
        opt.step()
        total += loss.item() * len(y)
    return total / len(series)


def accuracy(net, series, labels):
    with torch.no_grad():
        x, lengths, y = batch(series, labels, list(range(len(series))))
        return (net(x, lengths).argmax(-1) == y).float().mean().item()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--cosine", action="store_true", help="cosine decay to 1%% like the preset")
    p.add_argument("--data", default=os.environ.get("FUKAI_ASSETS"))
    a = p.parse_args()
    if not a.data:
        raise SystemExit("set FUKAI_ASSETS or pass --data ASSETS_FOLDER")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    (xs, ys, classes), (xt, yt) = load(a.data)
    net = Net(xs[0].shape[1], len(classes), bidirectional=a.bidirectional)
    lr = 3e-3
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(a.seed)
    total_steps = a.epochs * math.ceil(len(xs) / 32)
    step = [0]

    def cosine():
        t = min(step[0], total_steps) / total_steps
        for g in opt.param_groups:
            g["lr"] = lr * 0.01 + (lr - lr * 0.01) * 0.5 * (1 + math.cos(math.pi * t))
        step[0] += 1

    secs = []
    start = time.perf_counter()
    for e in range(a.epochs):
        t0 = time.perf_counter()
        loss = train_epoch(net, opt, xs, ys, 32, gen, cosine if a.cosine else None)
        secs.append(time.perf_counter() - t0)
        print(f"epoch {e + 1}/{a.epochs}: loss {loss:.4f} ({secs[-1]:.3f}s)", file=sys.stderr)
    train_s = time.perf_counter() - start
    acc = accuracy(net, xt, yt)
    print(json.dumps({"twin": "vowels-lstm", "threads": a.threads, "epochs": a.epochs,
                      "test_accuracy": acc, "train_seconds": train_s,
                      "median_epoch_s": sorted(secs)[len(secs) // 2],
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
