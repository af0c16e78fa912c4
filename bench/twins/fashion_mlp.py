#!/usr/bin/env python3
"""PyTorch twin of `fukai train --preset fashion-mlp` (crates/fukai-cli/src/presets.rs):

    MLP 784-256-128-10, each hidden layer Linear -> ReLU -> Dropout(0.2), no batch norm;
    PyTorch-default init (fukai's too); inputs standardized with the training set's pixel
    mean / std; Adam(lr=1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay); cosine decay per
    step from 1e-3 to 1e-5 over the run (fukai's WarmupCosine with no warmup, min_lr = lr / 100);
    batch 128 reshuffled every epoch (last partial batch kept); 20 epochs; plain cross-entropy;
    no augmentation.

    FUKAI_ASSETS=/path/to/assets python bench/twins/fashion_mlp.py [--epochs N] [--threads 2]

Progress goes to stderr; stdout gets one JSON object with per-epoch time and accuracy, the final
test accuracy and the peak RSS.
"""

import math

import torch
from torch import nn

from fashion_common import parse_args, train

LR = 1e-3
BATCH = 128
TRAIN_SAMPLES = 60_000


def build(epochs):
    """The preset's model, optimizer and schedule for a run of `epochs`, and the keyword
    arguments of fashion_common.train (bench/torch_bench.py times these too)."""
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(128, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    # fukai's schedule in closed form: lr(step) = min + (base - min) (1 + cos(pi step / total)) / 2.
    total = epochs * -(-TRAIN_SAMPLES // BATCH)
    floor = 0.01

    def cosine(step):
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    return model, opt, sched, {"batch_size": BATCH}


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=20)
    torch.manual_seed(args.seed)
    model, opt, sched, kwargs = build(args.epochs)
    train("fashion-mlp", args, model, opt, sched, max_steps=args.steps, **kwargs)


if __name__ == "__main__":
    main()
