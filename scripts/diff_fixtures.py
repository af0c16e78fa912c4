"""Differential fixtures: thousands of small random cases replayed by
crates/fukai/tests/differential.rs against PyTorch's outputs and gradients.

Regenerate (deterministic; the test itself never runs Python):

    python scripts/diff_fixtures.py            # writes crates/fukai/tests/fixtures/differential.safetensors

Each case draws an op family, a dtype (f32 or f64), small shapes (with size-1 dims), values
from a mix meant to hit edge cases (0, +-1e4, 1e-30, exact ties, clamp bounds) and, where fukai
has the view, a non-contiguous view of an input (transpose, permute, narrow) taken before the
op. PyTorch computes in f64 from the exact input values; f32 cases store the results rounded
to f32. Stored per case `c<i>`: the inputs `c<i>.in<k>` (leaves: gradients are taken w.r.t.
them, before any view), auxiliary integer inputs `c<i>.aux<k>`, the output `c<i>.out`, the
weights `c<i>.w` and the gradients `c<i>.grad<k>` of `sum(out * w)`. The case list (op,
dtype, parameters, views) is JSON in the file's metadata under "cases".
"""

import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20261203
OUT = os.path.join(
    os.path.dirname(__file__), "..", "crates", "fukai", "tests", "fixtures", "differential.safetensors"
)
CASES_PER_FAMILY = {
    "unary": 700,
    "binary": 450,
    "reduce": 350,
    "softmax": 150,
    "cross_entropy": 150,
    "bce": 80,
    "mse": 40,
    "layer_norm": 120,
    "matmul": 120,
    "clamp": 100,
}

rng = np.random.default_rng(SEED)

# Ops whose f32 results are well conditioned even with +-1e4 inputs (no cancellation between
# large terms), so the wide value mix can reach them.
UNARY = {
    # name: (domain, wide values allowed)
    "neg": ("any", True),
    "abs": ("any", True),
    "relu": ("any", True),
    "tanh": ("any", True),
    "sigmoid": ("any", True),
    "gelu": ("any", True),
    "gelu_tanh": ("any", False),
    "silu": ("any", True),
    "square": ("any", False),
    "exp": ("small", False),
    "sin": ("any", False),
    "cos": ("any", False),
    "log": ("positive", False),
    "sqrt": ("positive", False),
    "rsqrt": ("positive_away", False),
    "recip": ("nonzero", False),
    "leaky_relu": ("any", True),
    "powf": ("positive_away", False),
    "affine": ("any", False),
}


def rand_shape(max_rank=3, max_dim=4, min_rank=1):
    rank = int(rng.integers(min_rank, max_rank + 1))
    return [int(rng.integers(1, max_dim + 1)) for _ in range(rank)]


def values(shape, kind="any", wide=False, ties=True):
    """Random values of one of several flavours, as float64 numpy."""
    n = int(np.prod(shape)) if shape else 1
    if kind == "small":
        v = rng.normal(0, 2.0, n)
    elif kind == "positive":
        v = np.exp(rng.normal(0, 1.5, n))
        if rng.random() < 0.2:
            v[rng.integers(0, n)] = 1e-30
    elif kind == "positive_away":
        v = rng.uniform(0.3, 3.0, n)
    elif kind == "nonzero":
        v = rng.uniform(0.3, 3.0, n) * rng.choice([-1.0, 1.0], n)
    else:
        flavour = rng.random()
        if flavour < 0.5:
            v = rng.normal(0, 1.0, n)
        elif flavour < 0.7:
            v = rng.normal(0, 6.0, n)
        else:
            # Specials sprinkled into normals.
            v = rng.normal(0, 2.0, n)
            specials = [0.0, 1e-30, -1e-30, 0.5, -0.5, 1.0, -6.0, 20.4]
            if wide:
                specials += [1e4, -1e4, 1e4 - 1.0]
            for i in range(n):
                if rng.random() < 0.4:
                    v[i] = specials[rng.integers(0, len(specials))]
    if ties and n > 1 and rng.random() < 0.3:
        # Exact ties: copy one value over a few others.
        src = rng.integers(0, n)
        for i in rng.integers(0, n, size=max(1, n // 3)):
            v[i] = v[src]
    return v.reshape(shape)


def as_dtype(v, dtype):
    """Rounds to the case dtype first, so both sides start from the same exact values."""
    t = torch.tensor(v, dtype=torch.float64)
    if dtype == "f32":
        t = t.to(torch.float32).to(torch.float64)
    return t


def apply_view(t, spec):
    if spec is None:
        return t
    if spec["kind"] == "transpose":
        return t.transpose(spec["d0"], spec["d1"])
    if spec["kind"] == "permute":
        return t.permute(*spec["perm"])
    if spec["kind"] == "narrow":
        return t.narrow(spec["dim"], spec["start"], spec["len"])
    raise ValueError(spec)


def base_shape_for_view(shape, spec):
    """The leaf shape whose view has `shape` (inverse of apply_view on shapes)."""
    if spec is None:
        return list(shape)
    if spec["kind"] == "transpose":
        s = list(shape)
        s[spec["d0"]], s[spec["d1"]] = s[spec["d1"]], s[spec["d0"]]
        return s
    if spec["kind"] == "permute":
        s = [0] * len(shape)
        for i, p in enumerate(spec["perm"]):
            s[p] = shape[i]
        return s
    if spec["kind"] == "narrow":
        s = list(shape)
        s[spec["dim"]] = spec["start"] + spec["len"] + int(rng.integers(0, 2))
        return s
    raise ValueError(spec)


def maybe_view(shape):
    """A view fukai also has (or None) and the leaf shape it must be taken from to give `shape`."""
    r, rank = rng.random(), len(shape)
    spec = None
    if rank >= 2 and r < 0.2:
        spec = {"kind": "transpose", "d0": 0, "d1": rank - 1}
    elif rank == 3 and r < 0.3:
        spec = {"kind": "permute", "perm": [int(p) for p in rng.permutation(3)]}
    elif rank >= 1 and r < 0.45:
        d = int(rng.integers(0, rank))
        spec = {"kind": "narrow", "dim": d, "start": int(rng.integers(0, 2)), "len": shape[d]}
    return spec, base_shape_for_view(shape, spec)


# ---------------------------------------------------------------------------------------------
# Families: each returns (op, params, leaves (float64 values), aux (int64), views, fn) where
# fn(*viewed_leaves, *aux) computes the output in torch.


def fam_unary(dtype):
    name = list(UNARY)[rng.integers(0, len(UNARY))]
    domain, wide = UNARY[name]
    shape = rand_shape()
    spec, leaf_shape = maybe_view(shape)
    x = values(leaf_shape, domain, wide=wide)
    params = {}
    fns = {
        "neg": torch.neg,
        "abs": torch.abs,
        "relu": torch.relu,
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "gelu": F.gelu,
        "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "silu": F.silu,
        "square": torch.square,
        "exp": torch.exp,
        "sin": torch.sin,
        "cos": torch.cos,
        "log": torch.log,
        "sqrt": torch.sqrt,
        "rsqrt": torch.rsqrt,
        "recip": torch.reciprocal,
    }
    if name == "leaky_relu":
        params["slope"] = float(rng.choice([0.01, 0.2]))
        fn = lambda t: F.leaky_relu(t, params["slope"])
    elif name == "powf":
        params["p"] = float(rng.choice([2.5, -1.5, 0.5, 2.0, 3.0]))
        fn = lambda t: torch.pow(t, params["p"])
    elif name == "affine":
        params["a"], params["b"] = float(rng.normal()), float(rng.normal())
        fn = lambda t: t * params["a"] + params["b"]
    else:
        fn = fns[name]
    return name, params, [x], [], [spec], fn


def broadcast_partner(shape):
    """A shape that broadcasts with `shape`: trailing dims kept or set to 1, leading dropped."""
    drop = int(rng.integers(0, len(shape) + 1)) if rng.random() < 0.4 else 0
    s = [d if rng.random() < 0.7 else 1 for d in shape[drop:]]
    return s


def fam_binary(dtype):
    name = ["add", "sub", "mul", "div", "maximum", "minimum", "pow"][rng.integers(0, 7)]
    shape = rand_shape()
    other = broadcast_partner(shape)
    a_shape, b_shape = (shape, other) if rng.random() < 0.5 else (other, shape)
    specs, leaves = [], []
    for i, s in enumerate([a_shape, b_shape]):
        spec, leaf_shape = maybe_view(s) if s else (None, s)
        if name == "div" and i == 1:
            v = values(leaf_shape, "nonzero")
        elif name == "pow" and i == 0:
            v = values(leaf_shape, "positive_away")
        elif name == "pow":
            v = values(leaf_shape, "small") * 0.5
        else:
            v = values(leaf_shape, "any", wide=name in ("add", "sub", "maximum", "minimum"))
        specs.append(spec)
        leaves.append(v)
    if name in ("maximum", "minimum") and rng.random() < 0.5 and leaves[0].shape == leaves[1].shape and specs[0] == specs[1]:
        # Exact ties between the operands at some positions.
        mask = rng.random(leaves[0].shape) < 0.5
        leaves[1] = np.where(mask, leaves[0], leaves[1])
    fn = {
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "div": torch.div,
        "maximum": torch.maximum,
        "minimum": torch.minimum,
        "pow": torch.pow,
    }[name]
    return name, {}, leaves, [], specs, fn


def fam_reduce(dtype):
    name = ["sum", "mean", "sum_all", "mean_all", "max", "min", "max_all", "min_all", "var", "logsumexp"][
        rng.integers(0, 10)
    ]
    shape = rand_shape()
    spec, leaf_shape = maybe_view(shape)
    wide = name in ("max", "min", "max_all", "min_all", "logsumexp")
    x = values(leaf_shape, "any", wide=wide)
    if name.endswith("_all") and rng.random() < 0.5 and x.size > 1:
        # Ties at the extreme.
        flat = x.reshape(-1)
        ext = flat.max() if name.startswith("max") else flat.min()
        for i in rng.integers(0, flat.size, size=max(1, flat.size // 3)):
            flat[i] = ext
    params = {}
    rank = len(shape)
    if name in ("sum", "mean", "var"):
        k = int(rng.integers(1, rank + 1))
        dims = sorted(int(d) for d in rng.choice(rank, size=k, replace=False))
        params = {"dims": dims, "keepdim": bool(rng.random() < 0.5)}
        if name == "var":
            n = int(np.prod([shape[d] for d in dims]))
            params["correction"] = int(rng.integers(0, 2)) if n > 1 else 0
            fn = lambda t: torch.var(t, dim=params["dims"], correction=params["correction"], keepdim=params["keepdim"])
        else:
            op = torch.sum if name == "sum" else torch.mean
            fn = lambda t: op(t, dim=params["dims"], keepdim=params["keepdim"])
    elif name in ("max", "min", "logsumexp"):
        params = {"dim": int(rng.integers(-rank, rank)), "keepdim": bool(rng.random() < 0.5)}
        if name == "logsumexp":
            fn = lambda t: torch.logsumexp(t, dim=params["dim"], keepdim=params["keepdim"])
        else:
            # Ties along the dim: fukai gives the gradient to the first index, which is what
            # torch's max(dim) on CPU reports; avoid ambiguity by breaking exact ties here.
            x = x + np.arange(x.size).reshape(x.shape) * 1e-3
            op = torch.max if name == "max" else torch.min
            fn = lambda t: op(t, dim=params["dim"], keepdim=params["keepdim"]).values
    else:
        fn = {
            "sum_all": torch.sum,
            "mean_all": torch.mean,
            "max_all": torch.max,
            "min_all": torch.min,
        }[name]
    return name, params, [x], [], [spec], fn


def fam_softmax(dtype):
    name = ["softmax", "log_softmax"][rng.integers(0, 2)]
    shape = rand_shape()
    spec, leaf_shape = maybe_view(shape)
    x = values(leaf_shape, "any", wide=True)
    if rng.random() < 0.3:
        # Large common offset (the precision case of issue 16).
        x = x + float(rng.choice([1e4, -1e4]))
    params = {"dim": int(rng.integers(-len(shape), len(shape)))}
    op = torch.softmax if name == "softmax" else torch.log_softmax
    return name, params, [x], [], [spec], lambda t: op(t, dim=params["dim"])


def fam_cross_entropy(dtype):
    fused = bool(rng.random() < 0.5)
    n, c = int(rng.integers(1, 6)), int(rng.integers(2, 6))
    x = values([n, c], "any", wide=True)
    if rng.random() < 0.3:
        x = x + float(rng.choice([1e4, -1e4]))
    y = rng.integers(0, c, size=n)
    ignore = rng.random() < 0.4
    if ignore:
        y = np.where(rng.random(n) < 0.35, -100, y)
        if rng.random() < 0.1:
            y[:] = -100
    ls = float(rng.choice([0.0, 0.0, 0.1, 0.3]))
    params = {"fused": fused, "label_smoothing": ls, "ignore_index": -100 if ignore else None}
    spec = None
    if rng.random() < 0.3:
        spec = {"kind": "transpose", "d0": 0, "d1": 1}
        x = x.T.copy()
    kw = {"label_smoothing": ls}
    if ignore:
        kw["ignore_index"] = -100
    fn = lambda t, target: F.cross_entropy(t, target, **kw)
    name = "cross_entropy" if fused else "cross_entropy_composite"
    return name, params, [x], [y.astype(np.int64)], [spec], fn


def fam_bce(dtype):
    shape = rand_shape()
    x = values(shape, "any", wide=True)
    t = rng.uniform(0, 1, shape)
    if rng.random() < 0.3:
        t = (t > 0.5).astype(np.float64)
    fn = lambda a, b: F.binary_cross_entropy_with_logits(a, b)
    return "bce_with_logits", {}, [x, t], [], [None, None], fn


def fam_mse(dtype):
    shape = rand_shape()
    a, b = values(shape, "any"), values(shape, "any")
    if rng.random() < 0.3:
        b = a.copy()
    name = ["mse", "l1"][rng.integers(0, 2)]
    fn = F.mse_loss if name == "mse" else F.l1_loss
    return name, {}, [a, b], [], [None, None], fn


def fam_layer_norm(dtype):
    shape = rand_shape(max_rank=3, max_dim=5)
    d = shape[-1]
    x = values(shape, "any")
    r = rng.random()
    if r < 0.2:
        # Constant rows (exact zeros expected), of large values too.
        x = np.broadcast_to(x[..., :1], shape).copy()
        x = x * float(rng.choice([1.0, 1000.0, 12345.678]))
    elif r < 0.35 and dtype == "f64":
        # A large common offset; f64 only: in f32 the rounding of the inputs near 100 already
        # moves the normalized values by more than the f32 tolerance (for PyTorch too).
        x = x + float(rng.choice([10.0, 100.0]))
    affine = int(rng.integers(0, 3))  # 0: none, 1: weight, 2: weight and bias
    leaves = [x]
    if affine >= 1:
        leaves.append(rng.normal(1.0, 0.5, [d]))
    if affine == 2:
        leaves.append(rng.normal(0.0, 0.5, [d]))
    eps = float(rng.choice([1e-5, 1e-3]))
    params = {"eps": eps, "affine": affine}

    def fn(t, *wb):
        w = wb[0] if len(wb) >= 1 else None
        b = wb[1] if len(wb) >= 2 else None
        want = F.layer_norm(t, [d], w, b, eps)
        # The reference: layer norm with the mean corrected by the residuals' mean, so that a
        # constant row is exactly constant (F.layer_norm's mean is an ulp off for 12345.678,
        # which its 1/sqrt(eps) then magnifies to ~1e-10 in f64). Same function otherwise.
        m = t.mean(-1, keepdim=True)
        m = m + (t - m).mean(-1, keepdim=True)
        c = t - m
        y = c / torch.sqrt((c * c).mean(-1, keepdim=True) + eps)
        if w is not None:
            y = y * w
        if b is not None:
            y = y + b
        assert torch.allclose(y, want, rtol=1e-9, atol=1e-9), (y, want)
        return y

    return "layer_norm", params, leaves, [], [None] * len(leaves), fn


def fam_matmul(dtype):
    m, k, n = (int(rng.integers(1, 5)) for _ in range(3))
    kind = rng.integers(0, 3)
    if kind == 0:
        sa, sb = [m, k], [k, n]
    elif kind == 1:
        b = int(rng.integers(1, 4))
        sa, sb = [b, m, k], [k, n]
    else:
        b = int(rng.integers(1, 4))
        sa, sb = [b, m, k], [b, k, n]
    specs, leaves = [], []
    for s in (sa, sb):
        spec = None
        if rng.random() < 0.35:
            spec = {"kind": "transpose", "d0": len(s) - 2, "d1": len(s) - 1}
        leaf = base_shape_for_view(s, spec)
        specs.append(spec)
        leaves.append(values(leaf, "any"))
    return "matmul", {}, leaves, [], specs, torch.matmul


def fam_clamp(dtype):
    shape = rand_shape()
    spec, leaf_shape = maybe_view(shape)
    lo = float(rng.choice([-0.5, -1.0, 0.0, -1e4]))
    hi = lo + float(rng.choice([0.0, 0.75, 1.5, 2e4]))
    x = values(leaf_shape, "any", wide=True)
    flat = x.reshape(-1)
    for i in range(flat.size):
        if rng.random() < 0.3:
            flat[i] = lo if rng.random() < 0.5 else hi
    params = {"lo": lo, "hi": hi}
    return "clamp", params, [x], [], [spec], lambda t: torch.clamp(t, lo, hi)


def save_sorted(tensors, path, metadata):
    """A safetensors file with its header in sorted key order: the library's writer orders
    the header by a hash map, so regenerating would change the bytes though not the content."""
    names = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        blob = t.numpy().tobytes()
        header[key] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for blob in blobs:
            f.write(blob)


FAMILIES = {
    "unary": fam_unary,
    "binary": fam_binary,
    "reduce": fam_reduce,
    "softmax": fam_softmax,
    "cross_entropy": fam_cross_entropy,
    "bce": fam_bce,
    "mse": fam_mse,
    "layer_norm": fam_layer_norm,
    "matmul": fam_matmul,
    "clamp": fam_clamp,
}


def main():
    tensors, cases = {}, []
    stored = {"f32": torch.float32, "f64": torch.float64}
    for family, count in CASES_PER_FAMILY.items():
        for _ in range(count):
            dtype = "f32" if rng.random() < 0.5 else "f64"
            op, params, leaves, aux, specs, fn = FAMILIES[family](dtype)
            key = f"c{len(cases)}"
            ts = [as_dtype(v, dtype).requires_grad_(True) for v in leaves]
            aux_t = [torch.tensor(a, dtype=torch.int64) for a in aux]
            out = fn(*[apply_view(t, s) for t, s in zip(ts, specs)], *aux_t)
            w = torch.tensor(rng.normal(0, 1, list(out.shape)), dtype=torch.float64)
            if dtype == "f32":
                w = w.to(torch.float32).to(torch.float64)
            (out * w).sum().backward()
            for i, t in enumerate(ts):
                tensors[f"{key}.in{i}"] = t.detach().to(stored[dtype]).contiguous()
                g = t.grad if t.grad is not None else torch.zeros_like(t)
                tensors[f"{key}.grad{i}"] = g.to(stored[dtype]).contiguous()
            for i, a in enumerate(aux_t):
                tensors[f"{key}.aux{i}"] = a.contiguous()
            tensors[f"{key}.out"] = out.detach().to(stored[dtype]).contiguous()
            tensors[f"{key}.w"] = w.to(stored[dtype]).contiguous()
            cases.append(
                {"op": op, "dtype": dtype, "params": params, "views": specs, "inputs": len(ts), "aux": len(aux_t)}
            )
    save_sorted(tensors, OUT, {"cases": json.dumps(cases, separators=(",", ":")), "seed": str(SEED)})
    size = os.path.getsize(OUT)
    print(f"{len(cases)} cases, {len(tensors)} tensors, {size / 1e6:.2f} MB -> {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
