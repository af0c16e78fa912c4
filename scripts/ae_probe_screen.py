"""Screens autoencoder objectives for issue 23's linear probe, in PyTorch, fast to change.

A prototype bench, not a fixture: no test reads its output. It trains the `fashion-ae`
preset's network (3x3 convolutions, ReLU, 2x2 max pooling, [32, 64] channels, latent 32,
two 4x4 stride-2 transposed convolutions back, BCE with logits, Adam 0.002 with a cosine
schedule, batch 128) on Fashion-MNIST's 60,000 training images without their labels, with one
change at a time, then fits a multinomial logistic regression on 1,000 labeled images (100 per
class; features standardized on those rows with spreads floored at half the median one, as
fukai's probe does; L2 weight by 5-fold cross-validation; L-BFGS) and prints test accuracy
for the encoder's last maps (`enc`), both stages' maps (`both`: stage 1 average-pooled to
7x7, then stage 2) and the latent code. The figures fukai reports come from
`fukai train --preset fashion-ae`, not from here.

usage: FUKAI_ASSETS=... python scripts/ae_probe_screen.py --epochs 3 [--mask patch7 --p 0.5]
       [--l1 0.05] [--no-bottleneck] [--wta K] [--deep] [--kernel 5] [--pixels]
       [--contrast 1.0 --tau 0.2 --shift 2 --flip]  (an InfoNCE term between two views' codes)
       [--save enc.pt | --load enc.pt] [--readouts enc both sqrt pyr latent]
       (readouts of one trained encoder: `sqrt` the square root of its last maps, `pyr` the
       last maps beside the second stage's pre-pooling maps averaged over 2x2 quadrants and
       maxed over the image; `latent` needs the training run, which --load skips)
"""
import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=10)
ap.add_argument("--channels", type=int, nargs=2, default=[32, 64])
ap.add_argument("--latent", type=int, default=32)
ap.add_argument("--mask", choices=["none", "pixel", "patch4", "patch7"], default="none",
                help="input corruption: pixels or square patches zeroed with probability --p")
ap.add_argument("--p", type=float, default=0.0)
ap.add_argument("--l1", type=float, default=0.0, help="L1 penalty on the encoder's maps")
ap.add_argument("--no-bottleneck", action="store_true", help="decode the encoder maps directly")
ap.add_argument("--wta", type=int, default=0,
                help="keep each map's K largest activations in training (spatial winner-take-all)")
ap.add_argument("--deep", action="store_true", help="two convolutions per stage")
ap.add_argument("--kernel", type=int, default=3)
ap.add_argument("--contrast", type=float, default=0.0,
                help="weight of an InfoNCE term between the codes of two augmented views")
ap.add_argument("--tau", type=float, default=0.2, help="the InfoNCE temperature")
ap.add_argument("--shift", type=int, default=2, help="views: random shifts of up to this many pixels")
ap.add_argument("--flip", action="store_true", help="views: random horizontal flips too")
ap.add_argument("--pixels", action="store_true", help="also probe raw pixels")
ap.add_argument("--grid", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2, 3e-2, 1e-1])
ap.add_argument("--max-iter", type=int, default=150)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--save", help="write the encoder's state dict here")
ap.add_argument("--load", help="read the encoder's state dict from here instead of training")
ap.add_argument("--readouts", nargs="+", choices=["enc", "both", "sqrt", "pyr", "latent"],
                help="which feature sets to probe (default: enc both latent)")
a = ap.parse_args()
if a.load and "latent" in (a.readouts or []):
    ap.error("--load reads the encoder only: the latent readout needs the trained bottleneck")
torch.set_num_threads(a.threads)

root = os.path.join(os.environ.get("FUKAI_ASSETS", "../shared/assets"), "fashion-mnist")


def idx(name):
    d = gzip.open(os.path.join(root, name)).read()
    if "images" in name:
        x = np.frombuffer(d, np.uint8, offset=16).reshape(-1, 1, 28, 28)
        return torch.tensor(x.astype(np.float32) / 255)
    return torch.tensor(np.frombuffer(d, np.uint8, offset=8).astype(np.int64))


Xtr, Ytr = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
Xte, Yte = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
torch.manual_seed(a.seed)
c1, c2 = a.channels
K = a.kernel


def conv(i, o):
    return nn.Conv2d(i, o, K, 1, K // 2)


def stage(i, o):
    body = nn.Sequential(conv(i, o), nn.ReLU(), conv(o, o)) if a.deep else conv(i, o)
    return [body, nn.ReLU(), nn.MaxPool2d(2)]


enc = nn.Sequential(*stage(1, c1), *stage(c1, c2))
flat = c2 * 49
# Built in this order so that a seed gives the same initial weights as the runs in the note.
if not a.no_bottleneck:
    to_latent, from_latent = nn.Linear(flat, a.latent), nn.Linear(a.latent, flat)
dec = nn.Sequential(nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(c1, 1, 4, 2, 1))
params = list(enc.parameters()) + list(dec.parameters())
if not a.no_bottleneck:
    params += list(to_latent.parameters()) + list(from_latent.parameters())
opt = torch.optim.Adam(params, lr=0.002)


def corrupt(x):
    if a.mask == "pixel":
        return x * (torch.rand_like(x) >= a.p)
    if a.mask in ("patch4", "patch7"):
        s = int(a.mask[5:])
        m = (torch.rand(x.shape[0], 1, 28 // s, 28 // s) >= a.p).float()
        return x * F.interpolate(m, scale_factor=s)
    return x


def view(x):
    """A random augmentation per image: a shift of up to --shift pixels (zero fill), a flip."""
    s = a.shift
    n = x.shape[0]
    padded = F.pad(x, (s, s, s, s))
    dx, dy = torch.randint(0, 2 * s + 1, (2, n))
    out = torch.stack([padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28] for i in range(n)])
    if a.flip:
        f = torch.rand(n) < 0.5
        out[f] = out[f].flip(3)
    return out


def info_nce(z1, z2):
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    logits = z1 @ z2.t() / a.tau
    t = torch.arange(len(z1))
    return 0.5 * (F.cross_entropy(logits, t) + F.cross_entropy(logits.t(), t))


steps, step, t0 = a.epochs * math.ceil(60000 / 128), 0, time.time()
if a.load:
    enc.load_state_dict(torch.load(a.load))
for ep in range(0 if a.load else a.epochs):
    perm, total = torch.randperm(60000), 0.0
    for i in range(0, 60000, 128):
        for g in opt.param_groups:
            g["lr"] = 0.002 * 0.5 * (1 + math.cos(math.pi * step / steps))
        step += 1
        x = Xtr[perm[i:i + 128]]
        if a.contrast > 0:
            x, v2 = view(x), view(x)
        f = enc(corrupt(x))
        if a.wta > 0:
            fl = f.flatten(2)
            kth = fl.topk(a.wta, dim=2).values[:, :, -1:]
            f = (fl * (fl >= kth)).view_as(f)
        z = f if a.no_bottleneck else F.relu(from_latent(to_latent(f.flatten(1)))).view(-1, c2, 7, 7)
        loss = F.binary_cross_entropy_with_logits(dec(z), x)
        if a.contrast > 0:
            loss = loss + a.contrast * info_nce(to_latent(f.flatten(1)), to_latent(enc(v2).flatten(1)))
        if a.l1 > 0:
            loss = loss + a.l1 * f.abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
    print(f"epoch {ep} loss {total / math.ceil(60000 / 128):.4f} {time.time() - t0:.0f}s", flush=True)
if a.save:
    torch.save(enc.state_dict(), a.save)

gen = torch.Generator().manual_seed(1)
rows = torch.cat([torch.nonzero(Ytr == c).flatten()[torch.randperm(6000, generator=gen)[:100]]
                  for c in range(10)]).sort().values


def features(X, which):
    out = []
    with torch.no_grad():
        for i in range(0, len(X), 1000):
            x = X[i:i + 1000]
            if which == "pixels":
                out.append(x.flatten(1))
                continue
            h1 = enc[2](enc[1](enc[0](x)))
            pre = enc[4](enc[3](h1))
            h2 = enc[5](pre)
            out.append({"enc": lambda: h2.flatten(1),
                        "both": lambda: torch.cat([F.avg_pool2d(h1, 2).flatten(1), h2.flatten(1)], 1),
                        "sqrt": lambda: h2.sqrt().flatten(1),
                        "pyr": lambda: torch.cat([h2.flatten(1), F.adaptive_avg_pool2d(pre, 2).flatten(1),
                                                  F.adaptive_max_pool2d(pre, 1).flatten(1)], 1),
                        "latent": lambda: to_latent(h2.flatten(1))}[which]())
    return torch.cat(out).double()


def fit(x, y, l2):
    W = torch.zeros(x.shape[1], 10, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(10, dtype=torch.float64, requires_grad=True)
    o = torch.optim.LBFGS([W, b], max_iter=a.max_iter, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        o.zero_grad()
        loss = F.cross_entropy(x @ W + b, y) + l2 * (W * W).sum()
        loss.backward()
        return loss

    o.step(closure)
    return W.detach(), b.detach()


def probe(tr, ytr, te, yte):
    m, s = tr.mean(0), tr.std(0, unbiased=False)
    s = torch.clamp(s, min=max(0.5 * s.median().item(), 1e-6))
    tr, te, n, best = (tr - m) / s, (te - m) / s, len(tr), (-1, None)
    for l2 in a.grid:
        right = 0
        for f in range(5):
            held = torch.zeros(n, dtype=torch.bool)
            held[f * n // 5:(f + 1) * n // 5] = True
            W, b = fit(tr[~held], ytr[~held], l2)
            right += ((tr[held] @ W + b).argmax(1) == ytr[held]).sum().item()
        if right > best[0]:
            best = (right, l2)
    W, b = fit(tr, ytr, best[1])
    return ((te @ W + b).argmax(1) == yte).double().mean().item(), best[1]


result = {}
kinds = (["pixels"] if a.pixels else []) + (a.readouts or ["enc", "both"] + ([] if a.no_bottleneck or a.load else ["latent"]))
for which in kinds:
    acc, l2 = probe(features(Xtr[rows], which), Ytr[rows], features(Xte, which), Yte)
    result[which] = acc
    print(which, f"{acc * 100:.2f}", "l2", l2, flush=True)
print("RESULT", json.dumps(vars(a)), json.dumps(result))
