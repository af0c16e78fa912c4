"""Shared parts of the PyTorch twins of fukai's Fashion-MNIST presets: IDX reading, the
normalization fukai fits on the training set, augmentation with fukai's semantics, the
train / evaluate loop and the JSON report.

Each twin replicates a preset of crates/fukai-cli/src/presets.rs (model from model.rs, loop
from train.rs); what cannot be identical is the random stream (initial weights, shuffling,
dropout masks and augmentation draw from PyTorch's generator instead of fukai's Philox).
"""

import argparse
import gzip
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def parse_args(description, epochs):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", help="Fashion-MNIST IDX folder (default $FUKAI_ASSETS/fashion-mnist)")
    p.add_argument("--epochs", type=int, default=epochs, help=f"passes over the data (preset: {epochs})")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps (a smoke run)")
    args = p.parse_args()
    if args.data is None:
        root = os.environ.get("FUKAI_ASSETS")
        if not root:
            p.error("pass --data or set FUKAI_ASSETS to the assets folder")
        args.data = os.path.join(root, "fashion-mnist")
    return args


def read_idx(path):
    """An unsigned-byte IDX file (optionally gzipped) as a numpy array."""
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: dims {dims} need {int(np.prod(dims))} bytes, found {data.size}")
    return data.reshape(dims)


def load_fashion(folder):
    """(train_x [N, 1, 28, 28] in [0, 1], train_y, test_x, test_y) as torch tensors."""
    out = []
    for prefix in ("train", "t10k"):
        x = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte"))
        y = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte"))
        out.append(torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1))
        out.append(torch.from_numpy(y.astype(np.int64)))
    return tuple(out)


def fit_norm(train_x):
    """One mean and std for the grey channel over all training pixels (fukai's fit_norm pools
    the per-pixel statistics into the population mean and std of the whole set)."""
    v = train_x.double()
    return v.mean().item(), v.std(unbiased=False).item()


def random_shift(x, pad, gen):
    """fukai's RandomCrop: zero-pad by `pad`, crop back at a uniform offset in [-pad, pad]
    per sample (before normalization, so the padding is black)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    return padded[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


def random_hflip(x, p, gen):
    """fukai's RandomHorizontalFlip: mirror each sample with probability p."""
    flip = torch.rand(x.shape[0], generator=gen) < p
    x = x.clone()
    x[flip] = x[flip].flip(-1)
    return x


def evaluate(model, x, y, mean, std):
    """Test loss and accuracy in eval mode, batches of 500 like fukai's evaluate."""
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), 500):
            xb, yb = (x[i:i + 500] - mean) / std, y[i:i + 500]
            logits = model(xb)
            loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += (logits.argmax(-1) == yb).sum().item()
    model.train()
    return loss_sum / len(y), correct / len(y)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train(name, args, model, opt, sched, batch_size, label_smoothing=0.0, crop_padding=0, hflip=False,
          max_steps=None, quiet=False):
    """fukai's train loop: per epoch a fresh shuffle, augmentation then normalization per
    batch, forward, mean cross-entropy, backward, step (schedule per step), then evaluation.
    Prints one JSON object (unless `quiet`, which also silences the progress lines): per-epoch
    time and accuracy, the final accuracy and peak RSS; returns it too. `max_steps` stops the
    run after that many steps, mid-epoch if need be (fukai's `train --steps`)."""
    torch.set_num_threads(args.threads)
    t_load = time.perf_counter()
    train_x, train_y, test_x, test_y = load_fashion(args.data)
    load_seconds = time.perf_counter() - t_load
    mean, std = fit_norm(train_x)
    gen = torch.Generator().manual_seed(args.seed + 1)
    n = len(train_y)
    epochs = []
    started = time.perf_counter()
    steps = 0
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        loss_sum, correct, count = 0.0, 0, 0
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            xb, yb = train_x[idx], train_y[idx]
            if crop_padding:
                xb = random_shift(xb, crop_padding, gen)
            if hflip:
                xb = random_hflip(xb, 0.5, gen)
            xb = (xb - mean) / std
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            loss_sum += loss.item() * len(yb)
            correct += (logits.argmax(-1) == yb).sum().item()
            count += len(yb)
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        seconds = time.perf_counter() - t0
        test_loss, test_acc = evaluate(model, test_x, test_y, mean, std)
        m = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / count,
            "train_accuracy": correct / count,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "lr": opt.param_groups[0]["lr"],
            "seconds": seconds,
            "samples_per_second": count / seconds,
        }
        epochs.append(m)
        if not quiet:
            print(f"epoch {epoch + 1:>3}/{args.epochs}: train loss {m['train_loss']:.4f} acc "
                  f"{100 * m['train_accuracy']:.2f}% | test loss {test_loss:.4f} acc {100 * test_acc:.2f}% | "
                  f"{seconds:.1f}s, {m['samples_per_second']:.0f} samples/s", file=sys.stderr, flush=True)
        if max_steps is not None and steps >= max_steps:
            break
    report = {
        "name": name,
        "framework": f"torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "data_load_seconds": load_seconds,
        "train_seconds": time.perf_counter() - started,
        "mean_epoch_seconds": sum(e["seconds"] for e in epochs) / max(1, len(epochs)),
        "test_accuracy": epochs[-1]["test_accuracy"] if epochs else None,
        "peak_rss_mib": peak_rss_mib(),
        "epochs": epochs,
    }
    if not quiet:
        print(json.dumps(report, indent=1))
    return report
