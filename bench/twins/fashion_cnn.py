#!/usr/bin/env python3
"""PyTorch twin of `fukai train --preset fashion-cnn` (crates/fukai-cli/src/presets.rs, model
from model.rs):

    two stages of [3x3 conv (padding 1, no bias) -> BatchNorm -> ReLU] x 2 -> 2x2 max pool, with
    32 then 64 channels; flatten; dropout 0.3 -> Linear(3136, 256) -> ReLU -> dropout 0.3 ->
    Linear(256, 10). PyTorch-default init (fukai's too). AdamW(lr=2e-3, weight_decay=5e-4),
    one-cycle schedule stepped per batch (pct_start 0.25, cosine, div 25, final div 1e4, no
    momentum cycling: fukai does not cycle betas), batch 64, 12 epochs, label smoothing 0.05,
    augmentation: random shift by up to 2 pixels (zero padding) and horizontal flips (p 0.5),
    then standardization with the training set's pixel mean / std.

    FUKAI_ASSETS=/path/to/assets python bench/twins/fashion_cnn.py [--epochs N] [--threads 2]

Progress goes to stderr; stdout gets one JSON object with per-epoch time and accuracy, the final
test accuracy and the peak RSS.
"""

import torch
from torch import nn

from fashion_common import parse_args, train

BATCH = 64
TRAIN_SAMPLES = 60_000


def stage(cin, cout):
    layers = []
    for c in (cin, cout):
        layers += [nn.Conv2d(c, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return layers + [nn.MaxPool2d(2)]


def build(epochs):
    """The preset's model, optimizer and schedule for a run of `epochs`, and the keyword
    arguments of fashion_common.train (bench/torch_bench.py times these too)."""
    model = nn.Sequential(
        *stage(1, 32),
        *stage(32, 64),
        nn.Flatten(),
        nn.Dropout(0.3), nn.Linear(64 * 7 * 7, 256), nn.ReLU(),
        nn.Dropout(0.3), nn.Linear(256, 10),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    steps = epochs * -(-TRAIN_SAMPLES // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=2e-3, total_steps=steps, pct_start=0.25, anneal_strategy="cos",
        cycle_momentum=False, div_factor=25.0, final_div_factor=1e4)
    return model, opt, sched, {"batch_size": BATCH, "label_smoothing": 0.05, "crop_padding": 2,
                               "hflip": True}


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=12)
    torch.manual_seed(args.seed)
    model, opt, sched, kwargs = build(args.epochs)
    train("fashion-cnn", args, model, opt, sched, max_steps=args.steps, **kwargs)


if __name__ == "__main__":
    main()
