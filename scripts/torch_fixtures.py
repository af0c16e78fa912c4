#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures that fukai's cross-check tests compare against.

    crates/fukai/tests/fixtures/ops_<family>.safetensors
    crates/fukai/tests/fixtures/nn.safetensors      (modules, losses, optimizer trajectories)

Each case `<case>` stores its inputs (`<case>.x`, `<case>.a`, ... as f32; indices as i64, masks
as u8), every output (`<case>.out`, or `<case>.out0`, `<case>.out1`, ... for several), a random
weight per float output (`<case>.w` / `<case>.w0`, ...), and the gradient of every float input
(`<case>.grad_<input>`) of the loss  sum(out * w)  (summed over outputs). The file metadata maps
each case name to the PyTorch call it records.

Inputs are drawn in f32 with a fixed seed; the op and its gradients are then computed by PyTorch
in float64 and rounded to f32, so the reference carries no f32 rounding of its own and the
tests measure fukai's error alone. Families built with `store=torch.float64` (`nn_f64`) keep
every float tensor in float64 instead, for the tests that replay fukai in f64.

The Rust tests (crates/fukai/tests/torch_crosscheck*.rs) never run Python: regenerate and
commit the files only when a case is added or changed. To set up an environment:

    python3 -m venv .venv
    .venv/bin/pip install -r scripts/requirements.txt
    .venv/bin/python scripts/torch_fixtures.py        # from the repository root
    .venv/bin/python scripts/torch_fixtures.py nn     # only the named families
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "crates", "fukai", "tests", "fixtures")

INF = float("inf")


class Family:
    """Collects the cases of one fixture file."""

    def __init__(self, name, seed, file=None, store=torch.float32):
        self.name = name
        self.file = file or f"ops_{name}.safetensors"
        self.gen = torch.Generator().manual_seed(seed)
        # The dtype float tensors are written in: f32, or f64 for the cases fukai replays in
        # f64 (the reference then keeps all of PyTorch's float64 digits).
        self.store = store
        self.tensors = {}
        self.meta = {}

    # ---- seeded f32 inputs ----
    def randn(self, *shape, scale=1.0):
        return torch.randn(shape, generator=self.gen, dtype=torch.float32) * scale

    def uniform(self, lo, hi, *shape):
        return torch.rand(shape, generator=self.gen, dtype=torch.float32) * (hi - lo) + lo

    def away_from_zero(self, *shape):
        """Random sign times uniform [0.5, 2): safe divisors."""
        sign = torch.where(self.uniform(0, 1, *shape) < 0.5, -1.0, 1.0)
        return sign * self.uniform(0.5, 2.0, *shape)

    def quantized(self, *shape):
        """Multiples of 0.5 in [-2, 2]: many exact ties."""
        return torch.round(self.randn(*shape) * 2.0).clamp(-4, 4) / 2.0

    def randint(self, hi, *shape):
        return torch.randint(0, hi, shape, generator=self.gen, dtype=torch.int64)

    def mask(self, *shape, p=0.4):
        return (self.uniform(0, 1, *shape) < p).to(torch.uint8)

    # ---- recording ----
    def case(self, name, desc, inputs, fn, aux=None):
        """Records `fn(*inputs, *aux)`; `inputs` are f32 tensors to differentiate, `aux`
        integer tensors (indices, u8 masks) passed as they are (masks as bool)."""
        assert "." not in name and name not in self.meta, name
        aux = aux or {}
        leaves = {
            k: v.detach().to(torch.float64).requires_grad_(True) for k, v in inputs.items()
        }
        # Positional: inputs, then aux, in the order given.
        args = list(leaves.values())
        args += [v.bool() if v.dtype == torch.uint8 else v for v in aux.values()]
        outs = fn(*args)
        single = isinstance(outs, torch.Tensor)
        outs = [outs] if single else list(outs)
        loss = None
        for i, out in enumerate(outs):
            suffix = "" if single else str(i)
            if out.dtype.is_floating_point:
                w = self.randn(*out.shape)
                term = (out * w.to(torch.float64)).sum()
                loss = term if loss is None else loss + term
                self.put(f"{name}.w{suffix}", w.to(self.store))
                self.put(f"{name}.out{suffix}", out.detach().to(self.store))
            else:
                self.put(f"{name}.out{suffix}", out.detach().to(torch.int64))
        if loss is not None:
            loss.backward()
        for k, v in inputs.items():
            self.put(f"{name}.{k}", v.to(self.store))
            g = leaves[k].grad
            g = torch.zeros_like(v) if g is None else g
            g = g.to(self.store)
            self.put(f"{name}.grad_{k}", g)
        for k, v in aux.items():
            self.put(f"{name}.{k}", v)
        self.meta[name] = desc

    def trajectory(self, name, desc, problem, params, make_opt, steps=5):
        """Records an optimizer run: `params` (f32 tensors, by name) are copied to float64
        leaves, then `steps` times: zero the gradients, `problem(*params)` -> scalar loss,
        backward, `make_opt(leaves).step()`. Stores the initial values `<case>.<param>`, the
        loss before each step `<case>.loss` [steps], and the parameters after step k
        `<case>.<param>_step<k>` (k = 1..steps)."""
        assert "." not in name and name not in self.meta, name
        leaves = {
            k: v.detach().to(torch.float64).requires_grad_(True) for k, v in params.items()
        }
        opt = make_opt(list(leaves.values()))
        losses = []
        for k in range(1, steps + 1):
            opt.zero_grad()
            loss = problem(*leaves.values())
            loss.backward()
            losses.append(loss.item())
            opt.step()
            for p, v in leaves.items():
                self.put(f"{name}.{p}_step{k}", v.detach().to(self.store))
        for p, v in params.items():
            self.put(f"{name}.{p}", v.to(self.store))
        self.put(f"{name}.loss", torch.tensor(losses, dtype=self.store))
        self.meta[name] = desc

    def put(self, key, t):
        assert key not in self.tensors, key
        self.tensors[key] = t.detach().contiguous().clone()

    def save(self):
        path = os.path.join(OUT_DIR, self.file)
        meta = dict(self.meta)
        rounded = "rounded to float32" if self.store == torch.float32 else "kept in float64"
        meta["__generator__"] = (
            f"scripts/torch_fixtures.py with torch {torch.__version__}; float64 reference "
            f"{rounded}; loss = sum(out * w)"
        )
        write_safetensors(path, self.tensors, meta)
        size = os.path.getsize(path)
        print(f"{os.path.relpath(path, ROOT)}: {len(self.meta)} cases, {size / 1024:.1f} KiB")
        return size


def write_safetensors(path, tensors, metadata):
    """Writes a safetensors file with tensors and metadata in sorted order, so regenerating
    unchanged cases gives identical bytes (safetensors.torch.save_file orders the metadata
    randomly). Checked by reading it back with the safetensors package."""
    dtypes = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.uint8: "U8"}
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        a = t.numpy()
        data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": dtypes[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(len(head).to_bytes(8, "little"))
        fh.write(head)
        for data in blobs:
            fh.write(data)
    os.replace(tmp, path)
    back = load_file(path)
    assert back.keys() == tensors.keys()
    for k, t in tensors.items():  # bitwise, so NaN compares equal to itself
        assert back[k].dtype == t.dtype and back[k].shape == t.shape, (path, k)
        assert back[k].numpy().tobytes() == t.numpy().tobytes(), (path, k)


# ---------------------------------------------------------------------------------------------


def unary():
    f = Family("unary", 1)
    x = f.randn(3, 5)
    x[0, 0] = 0.0  # relu / abs / leaky_relu kinks
    pos = f.uniform(0.5, 2.5, 3, 5)
    wide = f.randn(4, 6, scale=5.0)

    f.case("neg", "torch.neg(x)", {"x": x}, lambda x: -x)
    f.case("exp", "torch.exp(x)", {"x": x}, torch.exp)
    f.case("exp_wide", "torch.exp(x), |x| up to ~15", {"x": wide}, torch.exp)
    f.case("log", "torch.log(x), x in [0.5, 2.5)", {"x": pos}, torch.log)
    f.case("sqrt", "torch.sqrt(x), x in [0.5, 2.5)", {"x": pos}, torch.sqrt)
    f.case("rsqrt", "torch.rsqrt(x), x in [0.5, 2.5)", {"x": pos}, torch.rsqrt)
    f.case("recip", "torch.reciprocal(x), x in [0.5, 2.5)", {"x": pos}, torch.reciprocal)
    f.case("abs", "torch.abs(x) (x has a 0)", {"x": x}, torch.abs)
    f.case("square", "torch.square(x)", {"x": x}, torch.square)
    f.case("sin", "torch.sin(x)", {"x": x}, torch.sin)
    f.case("cos", "torch.cos(x)", {"x": x}, torch.cos)
    for name, src in [("", x), ("_wide", wide)]:
        f.case(f"tanh{name}", "torch.tanh(x)", {"x": src}, torch.tanh)
        f.case(f"sigmoid{name}", "torch.sigmoid(x)", {"x": src}, torch.sigmoid)
        f.case(f"gelu{name}", "F.gelu(x) (erf)", {"x": src}, F.gelu)
        f.case(
            f"gelu_tanh{name}",
            "F.gelu(x, approximate='tanh')",
            {"x": src},
            lambda x: F.gelu(x, approximate="tanh"),
        )
        f.case(f"silu{name}", "F.silu(x)", {"x": src}, F.silu)
    f.case("relu", "F.relu(x) (x has a 0)", {"x": x}, F.relu)
    f.case("leaky_relu", "F.leaky_relu(x) (slope 0.01)", {"x": x}, F.leaky_relu)
    f.case(
        "leaky_relu_0p2", "F.leaky_relu(x, 0.2)", {"x": x}, lambda x: F.leaky_relu(x, 0.2)
    )
    # No element exactly on a bound: there PyTorch 2.15 passes no gradient while fukai (like
    # older PyTorch) passes it; both are valid subgradients.
    assert not ((x == -0.5) | (x == 0.75)).any()
    f.case("clamp", "torch.clamp(x, -0.5, 0.75)", {"x": x}, lambda x: torch.clamp(x, -0.5, 0.75))
    f.case("powf_2p5", "torch.pow(x, 2.5), x > 0", {"x": pos}, lambda x: torch.pow(x, 2.5))
    f.case("powf_m1p5", "torch.pow(x, -1.5), x > 0", {"x": pos}, lambda x: torch.pow(x, -1.5))
    f.case("powf_0p5", "torch.pow(x, 0.5), x > 0", {"x": pos}, lambda x: torch.pow(x, 0.5))
    f.case("powf_2", "torch.pow(x, 2.0)", {"x": x}, lambda x: torch.pow(x, 2.0))
    f.case("powf_3", "torch.pow(x, 3.0), negative x too", {"x": x}, lambda x: torch.pow(x, 3.0))
    f.case("powf_0", "torch.pow(x, 0.0) (x has a 0: gradient 0 there)", {"x": x},
           lambda x: torch.pow(x, 0.0))
    f.case("affine", "x * -2.0 + 0.5", {"x": x}, lambda x: x * -2.0 + 0.5)
    return f


BINARY_SHAPES = [
    ((3, 4), (3, 4)),
    ((2, 3, 4), (4,)),
    ((3, 1), (1, 4)),
    ((2, 1, 4), (3, 1)),
    ((4,), (2, 3, 4)),
    ((2, 3), ()),
]


def binary():
    f = Family("binary", 2)
    ops = {
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "div": torch.div,
        "maximum": torch.maximum,
        "minimum": torch.minimum,
        "pow": torch.pow,
    }
    for i, (sa, sb) in enumerate(BINARY_SHAPES):
        for op, fn in ops.items():
            if op in ("maximum", "minimum"):
                a, b = f.quantized(*sa), f.quantized(*sb)  # ties split the gradient
            elif op == "div":
                a, b = f.randn(*sa), f.away_from_zero(*sb)
            elif op == "pow":
                a, b = f.uniform(0.5, 2.0, *sa), f.randn(*sb)
            else:
                a, b = f.randn(*sa), f.randn(*sb)
            f.case(f"{op}_s{i}", f"torch.{op}(a{list(sa)}, b{list(sb)})", {"a": a, "b": b}, fn)
    a = f.uniform(0.5, 2.0, 3, 4)
    a[0, :] = 0.0
    b = f.uniform(1.5, 3.0, 3, 4)
    b[0, 0] = b[1, 1] = 0.0
    f.case("pow_zero", "torch.pow(a, b), a has zeros (with b = 0 once), b >= 0",
           {"a": a, "b": b}, torch.pow)
    f.case("mul_views", "a.t() * b.expand(3, 4), a [4, 3], b [3, 1] (strided operands)",
           {"a": f.randn(4, 3), "b": f.randn(3, 1)}, lambda a, b: a.t() * b.expand(3, 4))
    return f


def reduce():
    f = Family("reduce", 3)
    x = f.randn(2, 3, 4)
    q = f.quantized(2, 3, 4)
    for dims, keep in [((1,), False), ((0, 2), True), ((-1,), False), ((0, 1, 2), False), ((1, 2), True)]:
        tag = "".join(str(d % 3) for d in dims) + ("_keep" if keep else "")
        f.case(f"sum_d{tag}", f"torch.sum(x, {dims}, keepdim={keep})", {"x": x},
               lambda x, dims=dims, keep=keep: torch.sum(x, dims, keepdim=keep))
        f.case(f"mean_d{tag}", f"torch.mean(x, {dims}, keepdim={keep})", {"x": x},
               lambda x, dims=dims, keep=keep: torch.mean(x, dims, keepdim=keep))
        for corr in (0, 1):
            f.case(f"var_c{corr}_d{tag}", f"torch.var(x, {dims}, correction={corr}, keepdim={keep})",
                   {"x": x}, lambda x, dims=dims, keep=keep, corr=corr: torch.var(x, dims, correction=corr, keepdim=keep))
    f.case("sum_all", "torch.sum(x)", {"x": x}, torch.sum)
    f.case("mean_all", "torch.mean(x)", {"x": x}, torch.mean)
    f.case("max_all", "torch.max(x) (no ties)", {"x": x}, torch.max)
    f.case("min_all", "torch.min(x) (no ties)", {"x": x}, torch.min)
    for name, src in [("", x), ("_ties", q)]:
        for dim, keep in [(0, False), (1, False), (-1, True)]:
            tag = f"d{dim % 3}{'_keep' if keep else ''}{name}"
            f.case(f"max_{tag}", f"torch.max(x, {dim}, keepdim={keep}) -> (values, indices)", {"x": src},
                   lambda x, dim=dim, keep=keep: tuple(torch.max(x, dim, keepdim=keep)))
            f.case(f"min_{tag}", f"torch.min(x, {dim}, keepdim={keep}) -> (values, indices)", {"x": src},
                   lambda x, dim=dim, keep=keep: tuple(torch.min(x, dim, keepdim=keep)))
            f.case(f"argmax_{tag}", f"torch.argmax(x, {dim}, keepdim={keep})", {"x": src},
                   lambda x, dim=dim, keep=keep: torch.argmax(x, dim, keepdim=keep))
            f.case(f"argmin_{tag}", f"torch.argmin(x, {dim}, keepdim={keep})", {"x": src},
                   lambda x, dim=dim, keep=keep: torch.argmin(x, dim, keepdim=keep))
    for dim, keep in [(0, False), (1, False), (-1, True)]:
        tag = f"d{dim % 3}{'_keep' if keep else ''}"
        f.case(f"logsumexp_{tag}", f"torch.logsumexp(x, {dim}, keepdim={keep})", {"x": x},
               lambda x, dim=dim, keep=keep: torch.logsumexp(x, dim, keepdim=keep))
    big = f.randn(3, 5, scale=40.0)
    f.case("logsumexp_big", "torch.logsumexp(x, 1), |x| ~ 40-100", {"x": big},
           lambda x: torch.logsumexp(x, 1))
    ninf = f.randn(3, 4)
    ninf[0, 1] = ninf[0, 3] = ninf[2, 0] = -INF
    f.case("logsumexp_neginf", "torch.logsumexp(x, -1), some -inf entries", {"x": ninf},
           lambda x: torch.logsumexp(x, -1))
    allinf = f.randn(3, 4)
    allinf[1, :] = -INF
    f.case("logsumexp_allneginf", "torch.logsumexp(x, -1), row 1 all -inf (-> -inf, NaN grad)",
           {"x": allinf}, lambda x: torch.logsumexp(x, -1))
    nan = f.randn(3, 4)
    nan[1, 2] = float("nan")
    f.case("max_d1_nan", "torch.max(x, 1), a NaN wins", {"x": nan},
           lambda x: tuple(torch.max(x, 1)))
    f.case("argmax_d1_nan", "torch.argmax(x, 1), a NaN wins", {"x": nan}, lambda x: torch.argmax(x, 1))
    f.case("sum_permuted", "x.permute(2, 0, 1).sum(1)", {"x": x}, lambda x: x.permute(2, 0, 1).sum(1))
    f.case("var_permuted", "x.permute(2, 0, 1).var((0, 2))", {"x": x},
           lambda x: x.permute(2, 0, 1).var((0, 2)))
    f.case("max_transposed", "x.transpose(0, 2).max(1)", {"x": x},
           lambda x: tuple(x.transpose(0, 2).max(1)))
    empty = f.randn(2, 0, 3)
    f.case("sum_empty_dim", "torch.sum(x, 1), x [2, 0, 3] (-> zeros)", {"x": empty},
           lambda x: torch.sum(x, 1))
    f.case("mean_empty_dim", "torch.mean(x, 1), x [2, 0, 3] (-> NaN)", {"x": empty},
           lambda x: torch.mean(x, 1))
    return f


def softmax():
    f = Family("softmax", 4)
    x = f.randn(2, 3, 4)
    for dim in (0, 1, 2, -1):
        f.case(f"softmax_d{dim % 3}" + ("_neg" if dim < 0 else ""), f"torch.softmax(x, {dim})",
               {"x": x}, lambda x, dim=dim: torch.softmax(x, dim))
        f.case(f"log_softmax_d{dim % 3}" + ("_neg" if dim < 0 else ""), f"torch.log_softmax(x, {dim})",
               {"x": x}, lambda x, dim=dim: torch.log_softmax(x, dim))
    wide = f.randn(3, 6, scale=20.0)
    f.case("softmax_wide", "torch.softmax(x, 1), |x| ~ 20-60", {"x": wide}, lambda x: torch.softmax(x, 1))
    f.case("log_softmax_wide", "torch.log_softmax(x, 1), |x| ~ 20-60", {"x": wide},
           lambda x: torch.log_softmax(x, 1))
    v = f.randn(7)
    f.case("softmax_1d", "torch.softmax(x, 0), 1-D", {"x": v}, lambda x: torch.softmax(x, 0))
    f.case("log_softmax_1d", "torch.log_softmax(x, 0), 1-D", {"x": v}, lambda x: torch.log_softmax(x, 0))
    m = f.randn(3, 5)
    m[0, 1] = m[0, 4] = m[2, 0] = -INF  # attention-style masking, no fully masked row
    f.case("softmax_masked", "torch.softmax(x, -1), some -inf entries", {"x": m},
           lambda x: torch.softmax(x, -1))
    f.case("log_softmax_masked", "torch.log_softmax(x, -1), some -inf entries", {"x": m},
           lambda x: torch.log_softmax(x, -1))
    allm = f.randn(3, 4)
    allm[1, :] = -INF
    f.case("softmax_allmasked", "torch.softmax(x, -1), row 1 all -inf (-> NaN)", {"x": allm},
           lambda x: torch.softmax(x, -1))
    f.case("softmax_transposed", "x.transpose(0, 2).softmax(1)", {"x": x},
           lambda x: x.transpose(0, 2).softmax(1))
    f.case("log_softmax_transposed", "x.transpose(0, 2).log_softmax(-1)", {"x": x},
           lambda x: x.transpose(0, 2).log_softmax(-1))
    return f


def matmul():
    f = Family("matmul", 5)
    cases = [
        ("mm", (3, 4), (4, 5), "a @ b", lambda a, b: a @ b),
        ("bmm", (2, 3, 4), (2, 4, 5), "a @ b", lambda a, b: a @ b),
        ("batch_bcast", (2, 1, 3, 4), (3, 4, 5), "a @ b, batch dims broadcast", lambda a, b: a @ b),
        ("batch_bcast2", (3, 4), (2, 4, 5), "a @ b, 2-D @ 3-D", lambda a, b: a @ b),
        ("batch_rhs2d", (2, 3, 4), (4, 5), "a @ b, 3-D @ 2-D", lambda a, b: a @ b),
        ("dot", (4,), (4,), "a @ b, 1-D @ 1-D", lambda a, b: a @ b),
        ("vec_mat", (4,), (4, 5), "a @ b, 1-D @ 2-D", lambda a, b: a @ b),
        ("mat_vec", (3, 4), (4,), "a @ b, 2-D @ 1-D", lambda a, b: a @ b),
        ("vec_bmm", (4,), (2, 4, 5), "a @ b, 1-D @ 3-D", lambda a, b: a @ b),
        ("bmm_vec", (2, 3, 4), (4,), "a @ b, 3-D @ 1-D", lambda a, b: a @ b),
        ("at_b", (4, 3), (4, 5), "a.T @ b", lambda a, b: a.t() @ b),
        ("a_bt", (3, 4), (5, 4), "a @ b.T", lambda a, b: a @ b.t()),
        ("at_bt", (4, 3), (5, 4), "a.T @ b.T", lambda a, b: a.t() @ b.t()),
        ("batch_at_b", (2, 4, 3), (2, 4, 5), "a.transpose(-1, -2) @ b",
         lambda a, b: a.transpose(-1, -2) @ b),
        ("batch_a_bt", (2, 3, 4), (2, 5, 4), "a @ b.transpose(-1, -2)",
         lambda a, b: a @ b.transpose(-1, -2)),
        ("batch_at_rhs2d", (2, 4, 3), (4, 5), "a.transpose(-1, -2) @ b, b 2-D",
         lambda a, b: a.transpose(-1, -2) @ b),
        ("bcast_at_bt", (2, 1, 4, 3), (3, 5, 4), "a.transpose(-1, -2) @ b.transpose(-1, -2), broadcast",
         lambda a, b: a.transpose(-1, -2) @ b.transpose(-1, -2)),
        ("k1", (3, 1), (1, 5), "a @ b, inner dim 1", lambda a, b: a @ b),
        ("big", (17, 33), (33, 9), "a @ b, larger", lambda a, b: a @ b),
        ("k0", (3, 0), (0, 4), "a @ b, inner dim 0 (zeros)", lambda a, b: a @ b),
    ]
    for name, sa, sb, desc, fn in cases:
        f.case(name, f"{desc}; a{list(sa)}, b{list(sb)}", {"a": f.randn(*sa), "b": f.randn(*sb)}, fn)
    return f


def index():
    f = Family("index", 6)
    x = f.randn(2, 3, 4)
    f.case("reshape", "x.reshape(6, 4)", {"x": x}, lambda x: x.reshape(6, 4))
    f.case("reshape_permuted", "x.permute(2, 0, 1).reshape(4, 6) (copy of a strided view)",
           {"x": x}, lambda x: x.permute(2, 0, 1).reshape(4, 6))
    f.case("permute", "x.permute(2, 0, 1)", {"x": x}, lambda x: x.permute(2, 0, 1))
    f.case("permute_neg", "x.permute(-1, 0, -2)", {"x": x}, lambda x: x.permute(-1, 0, -2))
    f.case("transpose", "x.transpose(0, 2)", {"x": x}, lambda x: x.transpose(0, 2))
    m = f.randn(3, 5)
    f.case("t", "x.t()", {"x": m}, lambda x: x.t())
    f.case("narrow_d1", "x.narrow(1, 1, 2)", {"x": x}, lambda x: x.narrow(1, 1, 2))
    f.case("narrow_last", "x.narrow(-1, 0, 3)", {"x": x}, lambda x: x.narrow(-1, 0, 3))
    f.case("narrow_exp", "x.narrow(2, 1, 2).exp() (op on a strided view)", {"x": x},
           lambda x: x.narrow(2, 1, 2).exp())
    c = f.randn(3, 1)
    f.case("expand", "x.expand(2, 3, 4), x [3, 1]", {"x": c}, lambda x: x.expand(2, 3, 4))
    f.case("unsqueeze", "x.unsqueeze(1)", {"x": m}, lambda x: x.unsqueeze(1))
    f.case("squeeze", "x.squeeze(1), x [3, 1]", {"x": c}, lambda x: x.squeeze(1))
    f.case("flatten", "x.flatten(1, 2)", {"x": x}, lambda x: x.flatten(1, 2))

    parts = {"a": f.randn(1, 3, 4), "b": f.randn(2, 3, 4), "c": f.randn(3, 3, 4)}
    f.case("cat_d0", "torch.cat([a, b, c], 0)", parts, lambda a, b, c: torch.cat([a, b, c], 0))
    parts = {"a": f.randn(2, 1, 4), "b": f.randn(2, 3, 4), "c": f.randn(2, 2, 4)}
    f.case("cat_d1", "torch.cat([a, b, c], 1)", parts, lambda a, b, c: torch.cat([a, b, c], 1))
    parts = {"a": f.randn(2, 3, 2), "b": f.randn(2, 3, 1), "c": f.randn(2, 3, 3)}
    f.case("cat_last", "torch.cat([a, b, c], -1)", parts, lambda a, b, c: torch.cat([a, b, c], -1))
    parts = {"a": f.randn(2, 0, 4), "b": f.randn(2, 3, 4), "c": f.randn(2, 1, 4)}
    f.case("cat_empty", "torch.cat([a, b, c], 1), a [2, 0, 4]", parts,
           lambda a, b, c: torch.cat([a, b, c], 1))
    parts = {"a": f.randn(3, 4), "b": f.randn(3, 4), "c": f.randn(3, 4)}
    for dim in (0, 1, -1):
        f.case(f"stack_d{dim % 3}" + ("_neg" if dim < 0 else ""), f"torch.stack([a, b, c], {dim})",
               parts, lambda a, b, c, dim=dim: torch.stack([a, b, c], dim))
    s = f.randn(2, 5, 3)
    f.case("split", "torch.split(x, 2, 1) -> 3 pieces", {"x": s}, lambda x: torch.split(x, 2, 1))
    f.case("chunk_uneven", "torch.chunk(x, 3, 0), x [7, 2] -> 3, 3, 1", {"x": f.randn(7, 2)},
           lambda x: torch.chunk(x, 3, 0))
    f.case("chunk_fewer", "torch.chunk(x, 4, 1), x [2, 6] -> 3 pieces of 2", {"x": f.randn(2, 6)},
           lambda x: torch.chunk(x, 4, 1))

    g = f.randn(3, 5)
    f.case("gather_d0", "torch.gather(x, 0, index), index [4, 5] with repeats", {"x": g},
           lambda x, index: torch.gather(x, 0, index), {"index": f.randint(3, 4, 5)})
    f.case("gather_d1", "torch.gather(x, 1, index), index [2, 3] smaller than x", {"x": g},
           lambda x, index: torch.gather(x, 1, index), {"index": f.randint(5, 2, 3)})
    f.case("gather_last", "torch.gather(x, -1, index), 3-D", {"x": x},
           lambda x, index: torch.gather(x, -1, index), {"index": f.randint(4, 2, 3, 6)})
    f.case("index_select_d0", "torch.index_select(x, 0, index), repeats", {"x": g},
           lambda x, index: torch.index_select(x, 0, index),
           {"index": torch.tensor([2, 0, 2, 1], dtype=torch.int64)})
    f.case("index_select_d1", "torch.index_select(x, 1, index), 3-D", {"x": x},
           lambda x, index: torch.index_select(x, 1, index),
           {"index": torch.tensor([1, 1, 0, 2, 0], dtype=torch.int64)})
    f.case("scatter_add_d0", "x.scatter_add(0, index, src), repeats", {"x": g, "src": f.randn(4, 5)},
           lambda x, src, index: x.scatter_add(0, index, src), {"index": f.randint(3, 4, 5)})
    f.case("scatter_add_d1", "x.scatter_add(1, index, src), index smaller than x",
           {"x": g, "src": f.randn(2, 7)},
           lambda x, src, index: x.scatter_add(1, index, src), {"index": f.randint(5, 2, 7)})
    f.case("index_add_d0", "x.index_add(0, index, src), repeats", {"x": g, "src": f.randn(4, 5)},
           lambda x, src, index: x.index_add(0, index, src),
           {"index": torch.tensor([1, 0, 1, 1], dtype=torch.int64)})
    f.case("index_add_d1", "x.index_add(1, index, src), 3-D", {"x": x, "src": f.randn(2, 5, 4)},
           lambda x, src, index: x.index_add(1, index, src),
           {"index": torch.tensor([2, 2, 0, 1, 2], dtype=torch.int64)})
    f.case("embedding", "F.embedding(ids, weight), ids [2, 3] with repeats",
           {"weight": f.randn(6, 4)}, lambda weight, ids: F.embedding(ids, weight),
           {"ids": torch.tensor([[1, 5, 1], [0, 3, 5]], dtype=torch.int64)})

    f.case("where", "torch.where(cond, a, b), cond [3, 1], a [3, 4], b [4]",
           {"a": f.randn(3, 4), "b": f.randn(4)},
           lambda a, b, cond: torch.where(cond, a, b),
           {"cond": torch.tensor([[1], [0], [1]], dtype=torch.uint8)})
    f.case("where_full", "torch.where(cond, a, b), all [2, 3, 4]", {"a": x, "b": f.randn(2, 3, 4)},
           lambda a, b, cond: torch.where(cond, a, b), {"cond": f.mask(2, 3, 4)})
    f.case("masked_fill", "x.masked_fill(mask, 2.5), mask [3, 1, 4] broadcast over x [3, 2, 4]",
           {"x": f.randn(3, 2, 4)}, lambda x, mask: x.masked_fill(mask, 2.5), {"mask": f.mask(3, 1, 4)})
    f.case("masked_fill_neginf", "x.masked_fill(mask, -inf), mask [3, 5]", {"x": g},
           lambda x, mask: x.masked_fill(mask, -INF), {"mask": f.mask(3, 5)})
    return f


def conv():
    f = Family("conv", 7)

    def conv2d_case(name, xs, ws, stride, padding, dilation, groups, bias=True):
        inputs = {"x": f.randn(*xs), "weight": f.randn(*ws, scale=0.5)}
        if bias:
            inputs["bias"] = f.randn(ws[0])
        desc = (f"F.conv2d(x{list(xs)}, weight{list(ws)}, {'bias' if bias else 'None'}, "
                f"stride={stride}, padding={padding}, dilation={dilation}, groups={groups})")
        f.case(name, desc, inputs,
               lambda x, weight, bias=None: F.conv2d(x, weight, bias, stride, padding, dilation, groups))

    conv2d_case("conv2d_basic", (2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (0, 0), (1, 1), 1)
    conv2d_case("conv2d_stride2_pad1", (2, 3, 7, 6), (4, 3, 3, 3), (2, 2), (1, 1), (1, 1), 1)
    conv2d_case("conv2d_asym", (1, 2, 8, 7), (3, 2, 3, 2), (2, 1), (1, 2), (1, 1), 1)
    conv2d_case("conv2d_dilation", (2, 2, 9, 8), (3, 2, 3, 3), (1, 2), (2, 1), (2, 2), 1)
    conv2d_case("conv2d_groups", (2, 4, 6, 6), (6, 2, 3, 3), (1, 1), (1, 1), (1, 1), 2)
    conv2d_case("conv2d_depthwise", (1, 3, 5, 5), (3, 1, 3, 3), (1, 1), (1, 1), (1, 1), 3)
    conv2d_case("conv2d_nobias", (2, 3, 6, 5), (2, 3, 2, 2), (2, 2), (0, 1), (1, 1), 1, bias=False)
    conv2d_case("conv2d_1x1", (2, 5, 4, 3), (3, 5, 1, 1), (1, 1), (0, 0), (1, 1), 1)

    def conv1d_case(name, xs, ws, stride, padding, dilation, groups, bias=True):
        inputs = {"x": f.randn(*xs), "weight": f.randn(*ws, scale=0.5)}
        if bias:
            inputs["bias"] = f.randn(ws[0])
        desc = (f"F.conv1d(x{list(xs)}, weight{list(ws)}, {'bias' if bias else 'None'}, "
                f"stride={stride}, padding={padding}, dilation={dilation}, groups={groups})")
        f.case(name, desc, inputs,
               lambda x, weight, bias=None: F.conv1d(x, weight, bias, stride, padding, dilation, groups))

    conv1d_case("conv1d_basic", (2, 3, 9), (4, 3, 3), 1, 0, 1, 1)
    conv1d_case("conv1d_stride_pad_dil", (2, 3, 11), (4, 3, 3), 2, 1, 2, 1)
    conv1d_case("conv1d_groups", (2, 3, 8), (6, 1, 3), 1, 1, 1, 3)
    conv1d_case("conv1d_nobias", (1, 2, 7), (3, 2, 4), 3, 2, 1, 1, bias=False)

    def max_pool_case(name, xs, k, s, p):
        f.case(name, f"F.max_pool2d(x{list(xs)}, kernel_size={k}, stride={s}, padding={p})",
               {"x": f.randn(*xs)}, lambda x: F.max_pool2d(x, k, s, p))

    max_pool_case("max_pool2d_k2s2", (2, 3, 6, 7), (2, 2), (2, 2), (0, 0))
    max_pool_case("max_pool2d_k3s2p1", (2, 3, 6, 7), (3, 3), (2, 2), (1, 1))
    max_pool_case("max_pool2d_asym", (1, 2, 7, 6), (3, 2), (1, 2), (1, 0))
    max_pool_case("max_pool2d_overlap", (1, 2, 5, 5), (3, 3), (1, 1), (0, 0))

    def avg_pool_case(name, xs, k, s, p, include):
        f.case(name, f"F.avg_pool2d(x{list(xs)}, kernel_size={k}, stride={s}, padding={p}, "
                     f"count_include_pad={include})",
               {"x": f.randn(*xs)}, lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=include))

    avg_pool_case("avg_pool2d_k2s2", (2, 3, 6, 7), (2, 2), (2, 2), (0, 0), True)
    for include in (True, False):
        tag = "incl" if include else "excl"
        avg_pool_case(f"avg_pool2d_k3s2p1_{tag}", (2, 3, 6, 7), (3, 3), (2, 2), (1, 1), include)
        avg_pool_case(f"avg_pool2d_asym_{tag}", (1, 2, 7, 6), (3, 2), (2, 1), (1, 1), include)

    for name, xs, o in [
        ("adaptive_avg_pool2d_3x2", (2, 3, 7, 5), (3, 2)),
        ("adaptive_avg_pool2d_1x1", (2, 3, 7, 5), (1, 1)),
        ("adaptive_avg_pool2d_same", (1, 2, 4, 3), (4, 3)),
        ("adaptive_avg_pool2d_4x3", (1, 2, 7, 5), (4, 3)),
        ("adaptive_avg_pool2d_up", (1, 2, 3, 2), (5, 4)),
    ]:
        f.case(name, f"F.adaptive_avg_pool2d(x{list(xs)}, {o})", {"x": f.randn(*xs)},
               lambda x, o=o: F.adaptive_avg_pool2d(x, o))
    return f


def conv3d():
    """3-D convolution, transposed convolutions (1-D to 3-D) and 3-D pooling."""
    f = Family("conv3d", 8)

    def conv_case(name, fn, xs, ws, bias, **kw):
        inputs = {"x": f.randn(*xs), "weight": f.randn(*ws, scale=0.5)}
        if bias:
            # conv weights are [O, C/g, ...]; transposed ones [C_in, C_out/g, ...].
            out = ws[1] * kw.get("groups", 1) if "transpose" in fn.__name__ else ws[0]
            inputs["bias"] = f.randn(out)
        args = ", ".join(f"{k}={v}" for k, v in kw.items())
        desc = (f"F.{fn.__name__}(x{list(xs)}, weight{list(ws)}, {'bias' if bias else 'None'}, "
                f"{args})")
        f.case(name, desc, inputs, lambda x, weight, bias=None: fn(x, weight, bias, **kw))

    conv3d = F.conv3d
    conv_case("conv3d_basic", conv3d, (2, 3, 4, 5, 4), (4, 3, 2, 3, 2), True)
    conv_case("conv3d_stride_pad", conv3d, (2, 2, 5, 7, 6), (3, 2, 3, 3, 3), True,
              stride=(1, 2, 2), padding=(1, 1, 1))
    conv_case("conv3d_dilation", conv3d, (1, 2, 6, 6, 7), (3, 2, 2, 3, 2), True,
              stride=(2, 1, 1), padding=(1, 2, 0), dilation=(2, 1, 3))
    conv_case("conv3d_groups", conv3d, (2, 4, 3, 5, 5), (6, 2, 1, 3, 3), True,
              padding=(0, 1, 1), groups=2)
    conv_case("conv3d_nobias", conv3d, (1, 3, 4, 4, 5), (2, 3, 2, 2, 2), False,
              stride=(2, 2, 2), padding=(0, 1, 1))
    conv_case("conv3d_unbatched", conv3d, (2, 3, 4, 4), (3, 2, 2, 2, 2), True, padding=(1, 0, 1))
    conv_case("conv3d_1x1x1", conv3d, (2, 5, 2, 3, 3), (4, 5, 1, 1, 1), True)

    ct1, ct2, ct3 = F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d
    conv_case("conv_transpose1d_basic", ct1, (2, 3, 6), (3, 4, 3), True)
    conv_case("conv_transpose1d_stride_outpad", ct1, (2, 3, 5), (3, 2, 4), True,
              stride=3, padding=1, output_padding=2)
    conv_case("conv_transpose1d_groups_dil", ct1, (1, 4, 5), (4, 2, 3), False,
              padding=2, dilation=2, groups=2)
    conv_case("conv_transpose2d_basic", ct2, (2, 3, 4, 5), (3, 2, 3, 3), True)
    conv_case("conv_transpose2d_up2", ct2, (2, 4, 3, 4), (4, 3, 2, 2), True, stride=2)
    conv_case("conv_transpose2d_stride_pad_outpad", ct2, (1, 3, 4, 3), (3, 2, 3, 3), True,
              stride=(2, 2), padding=(1, 1), output_padding=(1, 0))
    conv_case("conv_transpose2d_dil_outpad", ct2, (1, 2, 4, 4), (2, 3, 3, 2), True,
              padding=(1, 0), output_padding=(1, 0), dilation=(2, 1))
    conv_case("conv_transpose2d_groups", ct2, (2, 4, 3, 3), (4, 3, 2, 3), False,
              stride=(1, 2), padding=(0, 1), groups=2)
    # 3x3, stride 1, 16 channels: runs through Winograd, with the bias added after.
    conv_case("conv_transpose2d_winograd", ct2, (1, 16, 5, 6), (16, 16, 3, 3), True,
              padding=1)
    conv_case("conv_transpose3d_basic", ct3, (1, 2, 3, 3, 4), (2, 3, 2, 2, 2), True)
    conv_case("conv_transpose3d_up2", ct3, (2, 4, 2, 3, 3), (4, 2, 2, 2, 2), True, stride=2)
    conv_case("conv_transpose3d_stride_pad_outpad", ct3, (1, 3, 3, 4, 3), (3, 2, 3, 3, 3), True,
              stride=(1, 2, 2), padding=(1, 1, 1), output_padding=(0, 1, 1))
    conv_case("conv_transpose3d_dil_groups", ct3, (1, 4, 3, 3, 3), (4, 1, 2, 2, 3), False,
              stride=(1, 2, 1), padding=(0, 1, 1), output_padding=(1, 1, 0),
              dilation=(2, 1, 2), groups=2)
    conv_case("conv_transpose3d_unbatched", ct3, (2, 2, 3, 2), (2, 3, 2, 2, 2), True,
              stride=(2, 1, 2), output_padding=(1, 0, 0))

    def max_pool_case(name, xs, k, s, p):
        f.case(name, f"F.max_pool3d(x{list(xs)}, kernel_size={k}, stride={s}, padding={p})",
               {"x": f.randn(*xs)}, lambda x: F.max_pool3d(x, k, s, p))

    max_pool_case("max_pool3d_k2s2", (2, 2, 4, 6, 5), (2, 2, 2), (2, 2, 2), (0, 0, 0))
    max_pool_case("max_pool3d_k3s2p1", (1, 2, 5, 6, 7), (3, 3, 3), (2, 2, 2), (1, 1, 1))
    max_pool_case("max_pool3d_asym_overlap", (1, 3, 4, 5, 6), (2, 3, 2), (1, 2, 1), (1, 1, 0))
    max_pool_case("max_pool3d_unbatched", (2, 4, 4, 4), (2, 2, 2), (2, 1, 2), (0, 1, 1))
    # Many exact ties: the gradient goes to the first maximum in scan order.
    f.case("max_pool3d_ties", "F.max_pool3d(quantized x[1, 2, 4, 4, 4], 2, 1, 1)",
           {"x": f.quantized(1, 2, 4, 4, 4)}, lambda x: F.max_pool3d(x, 2, 1, 1))

    def avg_pool_case(name, xs, k, s, p, include):
        f.case(name, f"F.avg_pool3d(x{list(xs)}, kernel_size={k}, stride={s}, padding={p}, "
                     f"count_include_pad={include})",
               {"x": f.randn(*xs)}, lambda x: F.avg_pool3d(x, k, s, p, count_include_pad=include))

    avg_pool_case("avg_pool3d_k2s2", (2, 2, 4, 6, 5), (2, 2, 2), (2, 2, 2), (0, 0, 0), True)
    for include in (True, False):
        tag = "incl" if include else "excl"
        avg_pool_case(f"avg_pool3d_k3s2p1_{tag}", (1, 2, 5, 6, 7), (3, 3, 3), (2, 2, 2),
                      (1, 1, 1), include)
        avg_pool_case(f"avg_pool3d_asym_{tag}", (1, 3, 4, 5, 6), (2, 3, 2), (1, 2, 1),
                      (1, 1, 0), include)
    return f


def optimizer_trajectories(f):
    """Every optimizer's first 5 steps on one problem (cases `opt_<name>`), stored in f.store."""
    # ---- optimizers: 5 steps on loss = mean((x @ w + b - y)^2) + 0.05 * sum(w^4) ----
    x, y = f.randn(8, 4), f.randn(8, 3)
    w0, b0 = f.randn(4, 3), f.randn(3, scale=0.5)

    def problem(w, b):
        return ((x.double() @ w + b - y.double()) ** 2).mean() + 0.05 * (w ** 4).sum()

    optims = [
        ("sgd", "SGD(lr=0.1)", lambda p: torch.optim.SGD(p, lr=0.1)),
        ("sgd_momentum", "SGD(lr=0.05, momentum=0.9)",
         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
        ("sgd_nesterov_wd", "SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)",
         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
        ("sgd_wd", "SGD(lr=0.1, weight_decay=0.1)",
         lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.1)),
        ("adam", "Adam(lr=0.1)", lambda p: torch.optim.Adam(p, lr=0.1)),
        ("adam_wd", "Adam(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)",
         lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
        ("adamw", "AdamW(lr=0.1, weight_decay=0.1)",
         lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.1)),
        ("rmsprop", "RMSprop(lr=0.01)", lambda p: torch.optim.RMSprop(p, lr=0.01)),
        ("rmsprop_momentum_wd", "RMSprop(lr=0.01, alpha=0.9, momentum=0.9, weight_decay=0.1)",
         lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.9, weight_decay=0.1)),
    ]
    for name, desc, make in optims:
        f.put(f"opt_{name}.x", x.to(f.store))
        f.put(f"opt_{name}.y", y.to(f.store))
        f.trajectory(f"opt_{name}", f"torch.optim.{desc}, 5 steps on mean((x @ w + b - y)^2) "
                     "+ 0.05 * sum(w^4)", problem, {"w": w0, "b": b0}, make)


def nn():
    """Modules (with their parameters as differentiated inputs), losses and optimizers."""
    f = Family("nn", 8, file="nn.safetensors")

    # ---- Linear, Conv2d ----
    f.case("linear", "nn.Linear(5, 3): F.linear(x[4, 5], weight, bias)",
           {"x": f.randn(4, 5), "weight": f.randn(3, 5, scale=0.5), "bias": f.randn(3)}, F.linear)
    f.case("linear_3d", "nn.Linear(5, 3): F.linear(x[2, 4, 5], weight, bias)",
           {"x": f.randn(2, 4, 5), "weight": f.randn(3, 5, scale=0.5), "bias": f.randn(3)}, F.linear)
    f.case("linear_nobias", "nn.Linear(5, 3, bias=False): F.linear(x[4, 5], weight)",
           {"x": f.randn(4, 5), "weight": f.randn(3, 5, scale=0.5)}, F.linear)
    f.case("conv2d_pad1", "nn.Conv2d(3, 4, 3, padding=1) on x[2, 3, 6, 5]",
           {"x": f.randn(2, 3, 6, 5), "weight": f.randn(4, 3, 3, 3, scale=0.5), "bias": f.randn(4)},
           lambda x, weight, bias: F.conv2d(x, weight, bias, 1, 1))
    f.case("conv2d_stride2_nobias", "nn.Conv2d(2, 3, 3, stride=2, bias=False) on x[1, 2, 7, 7]",
           {"x": f.randn(1, 2, 7, 7), "weight": f.randn(3, 2, 3, 3, scale=0.5)},
           lambda x, weight: F.conv2d(x, weight, None, 2, 0))

    # ---- BatchNorm: train mode from fresh running stats (0, 1), one step; eval mode ----
    def bn_train(x, weight, bias):
        c = x.shape[1]
        rm = torch.zeros(c, dtype=torch.float64)
        rv = torch.ones(c, dtype=torch.float64)
        out = F.batch_norm(x, rm, rv, weight, bias, training=True, momentum=0.1, eps=1e-5)
        return out, rm, rv

    def bn_eval(x, weight, bias, running_mean, running_var):
        return F.batch_norm(x, running_mean.double(), running_var.double(), weight, bias,
                            training=False, eps=1e-5)

    for name, xs in [("batchnorm1d", (6, 4)), ("batchnorm1d_3d", (4, 3, 5)), ("batchnorm2d", (3, 4, 5, 5))]:
        c = xs[1]
        affine = {"weight": f.uniform(0.5, 1.5, c), "bias": f.randn(c)}
        x = f.randn(*xs, scale=2.0) + 0.5
        f.case(f"{name}_train", f"nn.BatchNorm(x{list(xs)}) in train mode, fresh stats: "
               "(out, running_mean, running_var) after one step", {"x": x, **affine}, bn_train)
        f.case(f"{name}_eval", f"nn.BatchNorm(x{list(xs)}) in eval mode with given running stats",
               {"x": x, **affine}, bn_eval,
               {"running_mean": f.randn(c), "running_var": f.uniform(0.5, 2.0, c)})

    f.case("layernorm", "nn.LayerNorm(6) on x[3, 4, 6]",
           {"x": f.randn(3, 4, 6, scale=2.0), "weight": f.uniform(0.5, 1.5, 6), "bias": f.randn(6)},
           lambda x, weight, bias: F.layer_norm(x, (6,), weight, bias, eps=1e-5))

    # ---- losses (mean reduction) ----
    target = f.randint(5, 7)
    ignored = target.clone()
    ignored[1] = ignored[4] = -100
    ce_cases = [
        ("cross_entropy", "F.cross_entropy(logits[7, 5], target)", f.randn(7, 5), target, {}),
        ("cross_entropy_wide", "F.cross_entropy(logits[7, 5] ~ 20, target)", f.randn(7, 5, scale=20.0),
         target, {}),
        ("cross_entropy_ls", "F.cross_entropy(logits, target, label_smoothing=0.1)", f.randn(7, 5),
         target, {"label_smoothing": 0.1}),
        ("cross_entropy_ignore", "F.cross_entropy(logits, target, ignore_index=-100), 2 rows ignored",
         f.randn(7, 5), ignored, {"ignore_index": -100}),
        ("cross_entropy_ls_ignore", "F.cross_entropy(logits, target, label_smoothing=0.1, "
         "ignore_index=-100), 2 rows ignored", f.randn(7, 5), ignored,
         {"label_smoothing": 0.1, "ignore_index": -100}),
    ]
    for name, desc, logits, t, kw in ce_cases:
        f.case(name, desc, {"logits": logits},
               lambda logits, target, kw=kw: F.cross_entropy(logits, target, **kw), {"target": t})
    f.case("nll", "F.nll_loss(input[7, 5], target)", {"input": f.randn(7, 5)},
           lambda input, target: F.nll_loss(input, target), {"target": target})
    f.case("mse", "F.mse_loss(input[3, 4], target[3, 4])", {"input": f.randn(3, 4), "target": f.randn(3, 4)},
           F.mse_loss)
    f.case("l1", "F.l1_loss(input[3, 4], target[3, 4])", {"input": f.randn(3, 4), "target": f.randn(3, 4)},
           F.l1_loss)
    for name, scale in [("bce_with_logits", 1.0), ("bce_with_logits_wide", 15.0)]:
        f.case(name, f"F.binary_cross_entropy_with_logits(input[3, 4] ~ {scale}, target in [0, 1])",
               {"input": f.randn(3, 4, scale=scale), "target": f.uniform(0, 1, 3, 4)},
               F.binary_cross_entropy_with_logits)

    optimizer_trajectories(f)
    return f


def rnn():
    """nn.RNN (tanh, relu), nn.GRU, nn.LSTM with parameters as differentiated inputs; variable
    lengths through pack_padded_sequence; outputs (padded with zeros), h_n and c_n."""
    return recurrent_cases(Family("rnn", 11, file="rnn.safetensors"))


def recurrent_cases(f):
    """The cases of `rnn` into `f`."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    def run(kind, feat, hidden, layers, bidir, batch_first, with_state):
        cls = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "gru": torch.nn.GRU,
               "lstm": torch.nn.LSTM}[kind]
        extra = {"nonlinearity": kind[4:]} if kind.startswith("rnn") else {}
        mod = cls(feat, hidden, layers, bidirectional=bidir, batch_first=batch_first,
                  **extra).double()
        names = [n for n, _ in mod.named_parameters()]

        def fn(x, *rest):
            nstate = (2 if kind == "lstm" else 1) if with_state else 0
            state = rest[:nstate]
            params = dict(zip(names, rest[nstate:len(names) + nstate]))
            lengths = rest[-1]
            packed = pack_padded_sequence(x, lengths, batch_first=batch_first,
                                          enforce_sorted=False)
            hx = None
            if with_state:
                hx = tuple(state) if kind == "lstm" else state[0]
            out, hn = torch.func.functional_call(mod, params, (packed, hx))
            out, _ = pad_packed_sequence(out, batch_first=batch_first,
                                         total_length=x.shape[1 if batch_first else 0])
            return (out, *hn) if kind == "lstm" else (out, hn)
        return mod, names, fn

    configs = [
        # (case suffix, T, B, F, H, layers, bidirectional, batch_first, initial state, lengths)
        ("bidir2", 6, 3, 4, 5, 2, True, False, False, [6, 2, 4]),
        ("state_bf", 5, 4, 3, 4, 1, False, True, True, [5, 1, 3, 5]),
    ]
    for kind in ["rnn_tanh", "rnn_relu", "gru", "lstm"]:
        for suffix, t, b, feat, hidden, layers, bidir, bf, with_state, lens in configs:
            mod, names, fn = run(kind, feat, hidden, layers, bidir, bf, with_state)
            dirs = 2 if bidir else 1
            inputs = {"x": f.randn(*((b, t, feat) if bf else (t, b, feat)))}
            if with_state:
                inputs["h0"] = f.randn(layers * dirs, b, hidden, scale=0.5)
                if kind == "lstm":
                    inputs["c0"] = f.randn(layers * dirs, b, hidden, scale=0.5)
            for n, p in mod.named_parameters():
                inputs[n] = f.uniform(-0.6, 0.6, *p.shape)
            f.case(f"{kind}_{suffix}",
                   f"nn.{type(mod).__name__}({feat}, {hidden}, {layers}, bidirectional={bidir}, "
                   f"batch_first={bf}) over a packed sequence with lengths {lens}; "
                   "outputs (out, h_n[, c_n])",
                   inputs, fn, {"lengths": torch.tensor(lens, dtype=torch.int64)})
    return f


def audio():
    """Audio front end against torch.stft (f64) and librosa (mel filters, power_to_db, MFCC):
    `<case>.x` the input, `<case>.out` the reference. Needs librosa (in scripts/requirements.txt)."""
    import librosa

    f = Family("audio", 11)
    sr = 8000
    t = torch.arange(2000, dtype=torch.float64) / sr
    # A chirp (200 Hz -> 3 kHz), a steady 440 Hz tone and a little noise: energy in every band.
    chirp = torch.sin(2 * torch.pi * (200 * t + 0.5 * (2800 / t[-1]) * t * t))
    x = (0.5 * chirp + 0.3 * torch.sin(2 * torch.pi * 440 * t)
         + 0.05 * f.randn(2000).to(torch.float64)).to(torch.float32)

    def stft_power(sig, n_fft, hop, win, center, pad_mode):
        window = torch.hann_window(win, periodic=True, dtype=torch.float64)
        spec = torch.stft(sig.to(torch.float64), n_fft, hop_length=hop, win_length=win,
                          window=window, center=center, pad_mode=pad_mode, return_complex=True)
        return spec.abs() ** 2

    cases = [("stft_reflect", 256, 80, 256, True, "reflect"),
             ("stft_win200_zeros", 256, 64, 200, True, "constant"),
             ("stft_nocenter", 128, 50, 128, False, "reflect")]
    for name, n_fft, hop, win, center, pad in cases:
        f.put(f"{name}.x", x)
        f.put(f"{name}.out", stft_power(x, n_fft, hop, win, center, pad).to(torch.float32))
        f.meta[name] = (f"torch.stft(x, n_fft={n_fft}, hop_length={hop}, win_length={win}, "
                        f"hann_window(periodic), center={center}, pad_mode={pad}).abs()**2")

    mels = [("mel_htk", 8000, 256, 40, 20.0, 4000.0, True, None),
            ("mel_slaney", 16000, 512, 64, 0.0, 8000.0, False, "slaney"),
            ("mel_htk_slaneynorm", 8000, 256, 32, 100.0, 3500.0, True, "slaney")]
    for name, msr, n_fft, n_mels, fmin, fmax, htk, norm in mels:
        fb = librosa.filters.mel(sr=msr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                                 htk=htk, norm=norm, dtype=np.float64)
        f.put(f"{name}.out", torch.from_numpy(fb).to(torch.float32))
        f.meta[name] = (f"librosa.filters.mel(sr={msr}, n_fft={n_fft}, n_mels={n_mels}, "
                        f"fmin={fmin}, fmax={fmax}, htk={htk}, norm={norm})")

    # The whole chain on x: power STFT (n_fft 256, hop 80) -> HTK mel (40 bands, 20-4000 Hz)
    # -> dB (amin 1e-10, top_db 80) -> MFCC.
    power = stft_power(x, 256, 80, 256, True, "reflect").numpy()
    fb = librosa.filters.mel(sr=sr, n_fft=256, n_mels=40, fmin=20.0, fmax=4000.0, htk=True,
                             norm=None, dtype=np.float64)
    mel = fb @ power
    f.put("melspec.x", x)
    f.put("melspec.out", torch.from_numpy(mel).to(torch.float32))
    f.meta["melspec"] = "mel_htk filters @ stft_reflect power"
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    f.put("logmel.x", x)
    f.put("logmel.out", torch.from_numpy(db).to(torch.float32))
    f.meta["logmel"] = "librosa.power_to_db(melspec, ref=1.0, amin=1e-10, top_db=80.0)"
    for name, n_mfcc, lifter in [("mfcc13", 13, 0), ("mfcc20_lifter22", 20, 22)]:
        m = librosa.feature.mfcc(S=db, n_mfcc=n_mfcc, dct_type=2, norm="ortho", lifter=lifter)
        f.put(f"{name}.x", torch.from_numpy(db).to(torch.float32))
        f.put(f"{name}.out", torch.from_numpy(m).to(torch.float32))
        f.meta[name] = (f"librosa.feature.mfcc(S=logmel, n_mfcc={n_mfcc}, dct_type=2, "
                        f"norm='ortho', lifter={lifter})")
    return f
# ---------------------------------------------------------------------------------------------
# A tiny BERT model directory and tokenizers (needs `transformers` and `tokenizers` too).

BERT_DIR = os.path.join(OUT_DIR, "tiny_bert")

TOKENIZER_TEXTS = [
    "Hello, world!",
    "The cat sat on the mat.",
    "",
    "unbelievable learning RATES",
    "naïve café résumé Zürich",
    "ディープラーニング",
    "  spaces\tand\nnewlines  ",
    "token " * 20,
]


class DirFixture:
    """A fixture written as a folder of files; save() reports their size."""

    def __init__(self, paths):
        self.paths = paths

    def save(self):
        size = sum(os.path.getsize(p) for p in self.paths)
        for p in self.paths:
            print(f"{os.path.relpath(p, ROOT)}: {os.path.getsize(p) / 1024:.1f} KiB")
        return size


def tiny_wordpiece():
    """A BERT-style WordPiece tokenizer over a small hand-made vocabulary. The file also pads
    and truncates to 8 (as real tokenizer.json files often do), which loaders must override."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors, decoders
    from tokenizers.models import WordPiece

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = ["the", "cat", "sat", "on", "mat", "hello", "world", "un", "##believ", "##able",
             "learn", "##ing", "rate", "##s", "na", "##ive", "cafe", "res", "##ume", "zur",
             "##ich", "token", "space", "and", "new", "##line", "デ", "ィ", "ー", "プ", "ラ",
             "ニ", "ン", "グ", ",", "!", ".", "a", "##a"]
    vocab = {t: i for i, t in enumerate(special + words)}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece()
    tok.enable_truncation(8)
    tok.enable_padding(length=8)
    tok.add_special_tokens(special)
    return tok


def tiny_bpe():
    """A byte-level BPE (GPT-2 style) trained on a few sentences."""
    from tokenizers import Tokenizer, pre_tokenizers, decoders
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    tok = Tokenizer(BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = ["The cat sat on the mat.", "Deep learning learns representations.",
              "Attention is all you need; the cat attends to the mat.",
              "Tokens, tokens, tokens: byte pairs merge into words."] * 4
    tok.train_from_iterator(corpus, trainer)
    return tok


def bert():
    """tiny_bert/: config.json, model.safetensors (random weights) and tokenizer.json of a
    2-layer BERT, plus expected.safetensors: a padded batch of ids and mask and the last hidden
    state transformers' BertModel gives for it (computed in float64, rounded to f32); and
    tokenizers.json: the ids the Python tokenizers give for some texts, for both tokenizers."""
    from transformers import BertConfig, BertModel

    os.makedirs(BERT_DIR, exist_ok=True)
    wp = tiny_wordpiece()
    wp.save(os.path.join(BERT_DIR, "tokenizer.json"))
    bpe = tiny_bpe()
    bpe_path = os.path.join(OUT_DIR, "bpe_tokenizer.json")
    bpe.save(bpe_path)
    wp.no_padding()
    wp.no_truncation()
    expected_ids = {
        "wordpiece": [{"text": t, "ids": wp.encode(t).ids} for t in TOKENIZER_TEXTS],
        "bpe": [{"text": t, "ids": bpe.encode(t).ids, "decoded": bpe.decode(bpe.encode(t).ids)}
                for t in TOKENIZER_TEXTS],
    }
    ids_path = os.path.join(OUT_DIR, "tokenizers.json")
    with open(ids_path, "w") as fh:
        json.dump(expected_ids, fh, ensure_ascii=False, indent=1)
        fh.write("\n")

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=wp.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=16,
                     type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu")
    model = BertModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():
        for p in model.parameters():  # larger than the default init, so every weight matters
            p.copy_(torch.randn(p.shape) * 0.5)
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()
             if k != "embeddings.position_ids" and not k.endswith("token_type_ids")}
    write_safetensors(os.path.join(BERT_DIR, "model.safetensors"), state, {"format": "pt"})
    with open(os.path.join(BERT_DIR, "config.json"), "w") as fh:
        conf = {k: v for k, v in cfg.to_dict().items() if not k.startswith("_")}
        conf["architectures"] = ["BertModel"]
        json.dump(conf, fh, indent=2, sort_keys=True)
        fh.write("\n")

    rows = [wp.encode(t).ids[:16] for t in ["The cat sat on the mat.", "", "hello world, un"]]
    t = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), t, dtype=torch.int64)
    mask = torch.zeros(len(rows), t, dtype=torch.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    model64 = model.double()
    model64.load_state_dict({k: v.double() for k, v in state.items()}, strict=False)
    with torch.no_grad():
        hidden = model64(input_ids=ids, attention_mask=mask).last_hidden_state
    expected = {"ids": ids, "mask": mask.to(torch.uint8), "hidden": hidden.float()}
    exp_path = os.path.join(OUT_DIR, "tiny_bert_expected.safetensors")
    write_safetensors(exp_path, expected,
                      {"__generator__": f"scripts/torch_fixtures.py bert with torch "
                                        f"{torch.__version__}: BertModel last_hidden_state in float64"})
    return DirFixture([os.path.join(BERT_DIR, f) for f in
                       ("config.json", "model.safetensors", "tokenizer.json")]
                      + [exp_path, bpe_path, ids_path])
def transformer():
    """Multi-head attention (self, cross, masks, grouped kv heads) and whole encoder / decoder
    blocks: every parameter is a differentiated input, replayed through torch.func."""
    f = Family("transformer", 9, file="transformer.safetensors")
    d, h = 8, 2

    def params_of(mod):
        return {n.replace(".", "__"): p.detach().float() for n, p in mod.named_parameters()}

    def causal(t, s=None):
        s = s or t
        return torch.triu(torch.full((t, s), float("-inf"), dtype=torch.float64), 1)

    def init(mod):
        for p in mod.parameters():
            with torch.no_grad():
                p.copy_(f.randn(*p.shape, scale=0.4))
        return mod

    # ---- nn.MultiheadAttention ----
    mha = init(torch.nn.MultiheadAttention(d, h, batch_first=True))
    ps = params_of(mha)
    names = list(ps)
    x, mem = f.randn(2, 4, d), f.randn(2, 5, d)
    pad = torch.zeros(2, 5, dtype=torch.uint8)
    pad[0, 3:] = 1
    pad[1, 1] = 1

    def mha_self(*a):
        p = dict(zip(names, a[:len(names)]))
        x = a[len(names)]
        p = {k.replace("__", "."): v for k, v in p.items()}
        return torch.func.functional_call(mha.double(), p, (x, x, x),
                                          {"attn_mask": causal(4), "need_weights": False})[0]

    def mha_cross(*a):
        p = {k.replace("__", "."): v for k, v in zip(names, a[:len(names)])}
        x, mem, pad = a[len(names):]
        return torch.func.functional_call(mha.double(), p, (x, mem, mem),
                                          {"key_padding_mask": pad, "need_weights": False})[0]

    f.case("mha_self_causal", "nn.MultiheadAttention(8, 2, batch_first) self-attention on x[2, 4, 8], "
           "causal float mask", {**ps, "x": x}, mha_self)
    f.case("mha_cross_padding", "nn.MultiheadAttention(8, 2, batch_first) from x[2, 4, 8] over "
           "memory[2, 5, 8] with a key padding mask", {**ps, "x": x, "memory": mem}, mha_cross,
           {"pad": pad})

    # ---- grouped-query attention (4 query heads, 2 kv heads), causal, written out ----
    hq, hkv, hd = 4, 2, 2
    w_in = f.randn(hq * hd + 2 * hkv * hd, d, scale=0.4)
    b_in = f.randn(hq * hd + 2 * hkv * hd, scale=0.1)
    w_out, b_out = f.randn(d, d, scale=0.4), f.randn(d, scale=0.1)

    def gqa(in_proj_weight, in_proj_bias, out_proj__weight, out_proj__bias, x):
        qkv = x @ in_proj_weight.T + in_proj_bias
        q, k, v = qkv.split([hq * hd, hkv * hd, hkv * hd], -1)
        b, t, _ = x.shape
        q = q.view(b, t, hq, hd).transpose(1, 2)
        k = k.view(b, t, hkv, hd).transpose(1, 2).repeat_interleave(hq // hkv, 1)
        v = v.view(b, t, hkv, hd).transpose(1, 2).repeat_interleave(hq // hkv, 1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return o.transpose(1, 2).reshape(b, t, hq * hd) @ out_proj__weight.T + out_proj__bias

    f.case("mha_gqa_causal", "grouped-query attention: 4 query heads, 2 kv heads of width 2, "
           "causal, F.scaled_dot_product_attention with repeat_interleave'd k/v",
           {"in_proj_weight": w_in, "in_proj_bias": b_in, "out_proj__weight": w_out,
            "out_proj__bias": b_out, "x": f.randn(2, 5, d)}, gqa)

    # ---- whole blocks ----
    for norm_first in (False, True):
        tag = "pre" if norm_first else "post"
        enc = init(torch.nn.TransformerEncoderLayer(d, h, 16, dropout=0.0, activation="gelu",
                                                    batch_first=True, norm_first=norm_first))
        eps = params_of(enc)
        en = list(eps)

        def enc_fn(*a, enc=enc, en=en):
            p = {k.replace("__", "."): v for k, v in zip(en, a[:len(en)])}
            x, pad = a[len(en):]
            return torch.func.functional_call(enc.double(), p, (x,),
                                              {"src_mask": causal(5), "src_key_padding_mask": pad})

        epad = torch.zeros(2, 5, dtype=torch.uint8)
        epad[1, 4] = 1
        f.case(f"encoder_{tag}", f"nn.TransformerEncoderLayer(8, 2, 16, gelu, norm_first={norm_first}) "
               "on x[2, 5, 8], causal src_mask and a key padding mask",
               {**eps, "x": f.randn(2, 5, d)}, enc_fn, {"pad": epad})

        dec = init(torch.nn.TransformerDecoderLayer(d, h, 16, dropout=0.0, activation="relu",
                                                    batch_first=True, norm_first=norm_first))
        dps = params_of(dec)
        dn = list(dps)

        def dec_fn(*a, dec=dec, dn=dn):
            p = {k.replace("__", "."): v for k, v in zip(dn, a[:len(dn)])}
            x, mem, pad = a[len(dn):]
            return torch.func.functional_call(dec.double(), p, (x, mem),
                                              {"tgt_mask": causal(4), "memory_key_padding_mask": pad})

        f.case(f"decoder_{tag}", f"nn.TransformerDecoderLayer(8, 2, 16, relu, norm_first={norm_first}) "
               "on x[2, 4, 8] over memory[2, 5, 8]: causal tgt_mask, memory key padding",
               {**dps, "x": f.randn(2, 4, d), "memory": f.randn(2, 5, d)}, dec_fn, {"pad": pad})
    return f


def nn_f64():
    """The recurrent layers and the optimizer trajectories again, kept in float64, for fukai's
    f64 parameters (compared to about 1e-10 rather than f32's 1e-5)."""
    f = Family("nn_f64", 12, file="nn_f64.safetensors", store=torch.float64)
    recurrent_cases(f)
    optimizer_trajectories(f)
    return f


def pool():
    """nn.AvgPool2d modules with and without count_include_pad."""
    f = Family("pool", 13, file="nn_pool.safetensors")
    for include in (True, False):
        tag = "include" if include else "exclude"
        for name, xs, k, s, p in [("k3s2p1", (2, 3, 7, 6), 3, 2, 1),
                                  ("k3x2s1p1", (1, 2, 5, 6), (3, 2), 1, 1),
                                  ("k2s2p1", (2, 2, 5, 5), 2, 2, 1)]:
            mod = torch.nn.AvgPool2d(k, s, p, count_include_pad=include)
            f.case(f"avgpool_{name}_{tag}", f"nn.AvgPool2d({k}, {s}, {p}, "
                   f"count_include_pad={include}) on x{list(xs)}", {"x": f.randn(*xs)}, mod)
    return f


def attn_mask():
    """nn.MultiheadAttention with boolean attn_masks (True = may not attend), 2-D [L, S] and
    3-D [N*heads, L, S], and a 3-D float mask. No row is fully masked (PyTorch gives NaN there
    and fukai zeros)."""
    f = Family("attn_mask", 14, file="attn_mask.safetensors")
    d, h, n, t, s = 8, 2, 2, 4, 5
    mha = torch.nn.MultiheadAttention(d, h, batch_first=True)
    for prm in mha.parameters():
        with torch.no_grad():
            prm.copy_(f.randn(*prm.shape, scale=0.4))
    ps = {k.replace(".", "__"): v.detach().float() for k, v in mha.named_parameters()}
    names = list(ps)

    def bool_mask(*shape):
        m = f.mask(*shape, p=0.4)
        m[..., 0] = 0  # every query sees key 0
        return m

    def run(kv_from_x, float_mask=False):
        def fn(*a):
            p = {k.replace("__", "."): v for k, v in zip(names, a[:len(names)])}
            rest = a[len(names):]
            x, mem = (rest[0], rest[0]) if kv_from_x else rest[:2]
            mask = rest[-1]
            if float_mask:
                mask = mask.double()
            return torch.func.functional_call(mha.double(), p, (x, mem, mem),
                                              {"attn_mask": mask, "need_weights": False})[0]
        return fn

    x, mem = f.randn(n, t, d), f.randn(n, s, d)
    f.case("mha_bool_2d_self", f"nn.MultiheadAttention({d}, {h}, batch_first) self-attention on "
           f"x[{n}, {t}, {d}], bool attn_mask [{t}, {t}]", {**ps, "x": x}, run(True),
           {"mask": bool_mask(t, t)})
    f.case("mha_bool_2d_cross", f"nn.MultiheadAttention({d}, {h}, batch_first) from x[{n}, {t}, {d}] "
           f"over memory[{n}, {s}, {d}], bool attn_mask [{t}, {s}]", {**ps, "x": x, "memory": mem},
           run(False), {"mask": bool_mask(t, s)})
    f.case("mha_bool_3d_cross", f"nn.MultiheadAttention({d}, {h}, batch_first) from x[{n}, {t}, {d}] "
           f"over memory[{n}, {s}, {d}], bool attn_mask [{n * h}, {t}, {s}]",
           {**ps, "x": x, "memory": mem}, run(False), {"mask": bool_mask(n * h, t, s)})
    f.case("mha_float_3d_cross", f"nn.MultiheadAttention({d}, {h}, batch_first) from x[{n}, {t}, {d}] "
           f"over memory[{n}, {s}, {d}], float attn_mask [{n * h}, {t}, {s}]",
           {**ps, "x": x, "memory": mem}, run(False, float_mask=True),
           {"mask": f.randn(n * h, t, s)})
    return f


class ConvLSTMCell(torch.nn.Module):
    """ConvLSTM (Shi et al. 2015, no peepholes) as PyTorch users write it: one conv over
    cat([x, h]) -> 4*hidden channels, chunked i, f, g, o. fukai's nn::ConvLstm2d twin."""

    def __init__(self, inputs, hidden, kernel):
        super().__init__()
        self.hidden = hidden
        self.conv = torch.nn.Conv2d(inputs + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x, state):
        h, c = state
        i, f, g, o = self.conv(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def resample():
    """F.interpolate (nearest, linear/bilinear/trilinear with and without align_corners; up,
    down and mixed sizes) and a ConvLSTM layer: one step, and sequences from a given and from
    a zero state (outputs, final h and c, gradients of inputs, state, weight and bias)."""
    f = Family("resample", 15)
    linear = {3: "linear", 4: "bilinear", 5: "trilinear"}
    for tag, xs, size in [("1d_up", (2, 3, 5), (9,)),
                          ("1d_down", (2, 2, 11), (4,)),
                          ("2d_up", (1, 2, 5, 6), (12, 13)),
                          ("2d_down", (2, 2, 9, 7), (4, 3)),
                          ("2d_mixed", (1, 3, 4, 9), (7, 5)),
                          ("2d_x2", (1, 2, 3, 4), (6, 8)),
                          ("3d_up", (1, 2, 3, 4, 2), (5, 7, 4)),
                          ("3d_mixed", (1, 2, 5, 3, 4), (3, 6, 4))]:
        x = f.randn(*xs)
        f.case(f"nearest_{tag}", f"F.interpolate(x{list(xs)}, size={size}, mode='nearest')",
               {"x": x}, lambda x, size=size: F.interpolate(x, size=size, mode="nearest"))
        for align in (False, True):
            mode = linear[len(xs)]
            f.case(f"{mode}_{tag}_{'ac' if align else 'hp'}",
                   f"F.interpolate(x{list(xs)}, size={size}, mode='{mode}', align_corners={align})",
                   {"x": x},
                   lambda x, size=size, mode=mode, align=align:
                   F.interpolate(x, size=size, mode=mode, align_corners=align))
    f.case("upsample_scale2_bilinear", "nn.Upsample(scale_factor=2, mode='bilinear')(x[1, 2, 3, 5])",
           {"x": f.randn(1, 2, 3, 5)},
           torch.nn.Upsample(scale_factor=2, mode="bilinear"))
    f.case("upsample_scale3_nearest", "nn.Upsample(scale_factor=3, mode='nearest')(x[1, 2, 4, 3])",
           {"x": f.randn(1, 2, 4, 3)},
           torch.nn.Upsample(scale_factor=3, mode="nearest"))

    b, t, c_in, hid, hw = 2, 3, 3, 4, (5, 6)
    cell = ConvLSTMCell(c_in, hid, 3).double()
    params = {"weight": f.randn(*cell.conv.weight.shape, scale=0.3),
              "bias": f.randn(*cell.conv.bias.shape, scale=0.3)}

    def run(x, h, c, weight, bias):
        outs, state = [], (h, c)
        for k in range(x.shape[1]):
            state = torch.func.functional_call(cell, {"conv.weight": weight, "conv.bias": bias},
                                               (x[:, k], state))
            outs.append(state[0])
        return torch.stack(outs, dim=1), state[0], state[1]

    desc = (f"ConvLSTMCell({c_in}, {hid}, 3) (conv over cat([x, h]), chunks i f g o) over "
            f"x[B={b}, T={t}, C={c_in}, {hw[0]}, {hw[1]}] from (h0, c0): outputs, h, c")
    f.case("convlstm_seq", desc,
           {"x": f.randn(b, t, c_in, *hw), "h0": f.randn(b, hid, *hw), "c0": f.randn(b, hid, *hw),
            **params}, run)
    f.case("convlstm_step", "one step of " + desc,
           {"x": f.randn(b, 1, c_in, *hw), "h0": f.randn(b, hid, *hw), "c0": f.randn(b, hid, *hw),
            **params}, lambda *a: run(*a)[1:])

    def from_zero(x, weight, bias):
        zeros = x.new_zeros(x.shape[0], hid, *x.shape[3:])
        return run(x, zeros, zeros, weight, bias)

    f.case("convlstm_zero_state", desc.replace("from (h0, c0)", "from zeros"),
           {"x": f.randn(b, t, c_in, *hw), **params}, from_zero)
    return f


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    families = (unary, binary, reduce, softmax, matmul, index, conv, conv3d, nn, rnn, audio,
                bert, transformer, nn_f64, pool, attn_mask, resample)
    wanted = sys.argv[1:] or [b.__name__ for b in families]
    unknown = set(wanted) - {b.__name__ for b in families}
    assert not unknown, f"unknown families {sorted(unknown)}"
    total = 0
    for build in families:
        if build.__name__ in wanted:
            total += build().save()
    print(f"total {total / 1024:.1f} KiB")


if __name__ == "__main__":
    sys.exit(main())
