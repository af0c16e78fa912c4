"""PyTorch twin of `fukai train --preset shakespeare-gpt` (crates/fukai-cli/src/lm.rs, gpt.rs):
nanoGPT's "baby GPT" on the characters of $FUKAI_ASSETS/text/shakespeare.txt.

Same everything as the preset: sorted character vocabulary of the whole file, first 90% train /
last 10% validation, random windows of 64 characters, batch 12; 4 pre-norm blocks of width 128
with 4 heads, fused qkv projection with biases, exact-GELU MLP x4, final LayerNorm, untied head
without bias; nanoGPT's init (N(0, 0.02), residual projections / sqrt(2 * layers), zero biases);
AdamW (0.9, 0.99) with weight decay 0.1 on matrices and embeddings only; lr 1e-3 with 100
linear warmup steps then cosine to 1e-4 at the last step; gradient norm clipped at 1; no dropout.
Validation loss is the mean over 200 random validation windows (fixed seed). tokens/s counts
training steps only (evaluation excluded). Only the random streams differ from fukai's.

    python bench/twins/shakespeare_gpt.py [--steps 2000] [--threads 2] > twin.json
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, layers):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)
        proj_std = 0.02 / math.sqrt(2 * layers)
        for lin, std in ((self.qkv, 0.02), (self.proj, proj_std), (self.fc, 0.02), (self.fc2, proj_std)):
            nn.init.normal_(lin.weight, 0.0, std)
            nn.init.zeros_(lin.bias)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc(self.ln2(x))))


class Gpt(nn.Module):
    def __init__(self, vocab, layers=4, heads=4, d=128, context=64):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d, heads, layers) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        for w in (self.wte.weight, self.wpe.weight, self.head.weight):
            nn.init.normal_(w, 0.0, 0.02)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln_f(x))


def lr_at(step, base=1e-3, min_lr=1e-4, warmup=100, total=2000):
    """fukai's LrSchedule::WarmupCosine."""
    if step < warmup:
        return base * (step + 1) / warmup
    frac = min(max((step - warmup) / max(total - warmup, 1), 0.0), 1.0)
    return min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="text file (default $FUKAI_ASSETS/text/shakespeare.txt)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.data is None:
        root = os.environ.get("FUKAI_ASSETS")
        if not root:
            p.error("pass --data or set FUKAI_ASSETS to the assets folder")
        args.data = os.path.join(root, "text", "shakespeare.txt")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    with open(args.data, encoding="utf-8") as fh:
        text = fh.read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = int(len(data) * 0.9)
    train, val = data[:cut], data[cut:]
    ctx, batch = 64, 12

    def windows(src, starts):
        x = torch.stack([src[s:s + ctx] for s in starts.tolist()])
        y = torch.stack([src[s + 1:s + 1 + ctx] for s in starts.tolist()])
        return x, y

    model = Gpt(len(chars))
    params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(args.seed + 1)
    val_starts = torch.randint(0, len(val) - ctx, (200,), generator=torch.Generator().manual_seed(12345))

    def val_loss():
        model.eval()
        with torch.no_grad():
            total = 0.0
            for chunk in val_starts.split(50):
                x, y = windows(val, chunk)
                logits = model(x)
                total += F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1)).item() * len(chunk)
        model.train()
        return total / len(val_starts)

    print(f"torch twin: {params} parameters, vocabulary {len(chars)}, {args.threads} threads",
          file=sys.stderr)
    train_secs, recent, history = 0.0, [], []
    for step in range(args.steps):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total=args.steps)
        x, y = windows(train, torch.randint(0, len(train) - ctx, (batch,), generator=gen))
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(loss.item())
        train_secs += time.perf_counter() - t0
        if (step + 1) % 100 == 0 or step + 1 == args.steps:
            tps = (step + 1) * batch * ctx / train_secs
            entry = {"step": step + 1, "train_loss": sum(recent) / len(recent), "tokens_per_second": tps}
            if (step + 1) % 500 == 0 or step + 1 == args.steps:
                entry["val_loss"] = val_loss()
            history.append(entry)
            print(json.dumps(entry), file=sys.stderr)
            recent = []
    final = history[-1]
    print(json.dumps({
        "name": "shakespeare-gpt (torch twin)",
        "val_loss": final["val_loss"],
        "train_loss": final["train_loss"],
        "steps": args.steps,
        "tokens_per_second": args.steps * batch * ctx / train_secs,
        "train_seconds": train_secs,
        "parameters": params,
        "vocab_size": len(chars),
        "threads": args.threads,
        "torch": torch.__version__,
        "history": history,
    }, indent=1))


if __name__ == "__main__":
    main()
