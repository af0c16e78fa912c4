"""PyTorch twin of `crates/fukai/examples/conv_layers.rs`: per-layer 3x3 conv timings (batch 64,
padding 1), forward, input gradient and weight gradient, min / median ms.

    python bench/conv_layers.py THREADS
"""
import sys
import time

import torch

REPS = 15


def timed(f):
    for _ in range(2):
        f()
    ts = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return ts[0], ts[REPS // 2]


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    F = torch.nn.functional
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads")
    for c, o, hw in [(1, 32, 28), (32, 32, 28), (32, 64, 14), (64, 64, 14)]:
        x = torch.randn(64, c, hw, hw)
        w = torch.randn(o, c, 3, 3)
        gy = torch.randn(64, o, hw, hw)

        wf = w.clone().requires_grad_(True)

        # Forward as in training (a weight that needs its gradient, nothing backpropagated):
        # under no_grad PyTorch can take a different, slower path for some shapes.
        def fwd():
            F.conv2d(x, wf, padding=1)

        def bwd(needs_x):
            xg = x.clone().requires_grad_(needs_x)
            wg = w.clone().requires_grad_(not needs_x)

            def step():
                xg.grad = wg.grad = None
                F.conv2d(xg, wg, padding=1).backward(gy)

            return step

        f = timed(fwd)
        dx = timed(bwd(True))
        dw = timed(bwd(False))
        print(
            f"{c:>2}->{o:<2} @{hw:<2}       {f[0]:6.2f} / {f[1]:6.2f}    "
            f"{dx[0] - f[0]:6.2f} / {dx[1] - f[1]:6.2f}   {dw[0] - f[0]:6.2f} / {dw[1] - f[1]:6.2f}"
        )


if __name__ == "__main__":
    main()
