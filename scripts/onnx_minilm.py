"""all-MiniLM-L6-v2 as ONNX, exported by torch.onnx.export from the shared model, for
crates/fukai/tests/onnx_minilm.rs and bench/onnx_minilm.py.

The export is ~90 MB of weights, too big to commit, but every weight in it is byte for byte a
tensor of the shared model.safetensors. So the committed .onnx keeps only the graph: each
initializer is external data pointing at its bytes inside model.safetensors (offset and
length), and a test or benchmark puts the .onnx beside that file (a link or a copy) to load it. CI
needs no Python and no download: the assets it already has complete the file.

    /work/venv/bin/python scripts/onnx_minilm.py [ASSETS]   (needs torch, numpy, safetensors,
                                                             onnx, onnxruntime)

ASSETS defaults to $FUKAI_ASSETS or ../shared/assets. Writes, in
crates/fukai/tests/fixtures/onnx_minilm/: all-MiniLM-L6-v2.onnx (the graph), and
expected.safetensors: ONNX Runtime's sentence embeddings of the reference texts
(models/all-MiniLM-L6-v2.reference.json), one run per text, as `embeddings` [N, 384].
"""

import json
import math
import os
import pathlib
import shutil
import struct
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/fukai/tests/fixtures/onnx_minilm"
ONNX_NAME = "all-MiniLM-L6-v2.onnx"
WEIGHTS = "model.safetensors"


class Bert(torch.nn.Module):
    """transformers' BertModel (eager attention, absolute positions, erf GELU) with the
    sentence-transformers head (mean pooling over the mask, L2 normalization), with the
    parameter names of the checkpoint so the safetensors file loads as its state dict."""

    def __init__(self, cfg):
        super().__init__()
        h, self.heads, self.eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
        lin, ln = torch.nn.Linear, lambda: torch.nn.LayerNorm(h, eps=self.eps)
        emb = torch.nn.Module()
        emb.word_embeddings = torch.nn.Embedding(cfg["vocab_size"], h)
        emb.position_embeddings = torch.nn.Embedding(cfg["max_position_embeddings"], h)
        emb.token_type_embeddings = torch.nn.Embedding(cfg["type_vocab_size"], h)
        emb.LayerNorm = ln()
        emb.register_buffer("position_ids", torch.arange(cfg["max_position_embeddings"])[None])
        self.embeddings = emb
        layers = []
        for _ in range(cfg["num_hidden_layers"]):
            l = torch.nn.Module()
            l.attention = torch.nn.Module()
            l.attention.self = torch.nn.Module()
            for n in ("query", "key", "value"):
                setattr(l.attention.self, n, lin(h, h))
            l.attention.output = torch.nn.Module()
            l.attention.output.dense, l.attention.output.LayerNorm = lin(h, h), ln()
            l.intermediate = torch.nn.Module()
            l.intermediate.dense = lin(h, cfg["intermediate_size"])
            l.output = torch.nn.Module()
            l.output.dense, l.output.LayerNorm = lin(cfg["intermediate_size"], h), ln()
            layers.append(l)
        self.encoder = torch.nn.Module()
        self.encoder.layer = torch.nn.ModuleList(layers)

    def forward(self, input_ids, attention_mask):
        b, t = input_ids.shape
        e = self.embeddings
        pos = e.position_ids[:, :t]
        x = e.word_embeddings(input_ids) + e.position_embeddings(pos) + e.token_type_embeddings(torch.zeros_like(input_ids))
        x = e.LayerNorm(x)
        m = attention_mask.to(x.dtype)
        bias = (1.0 - m[:, None, None, :]) * torch.finfo(x.dtype).min
        dh = x.shape[-1] // self.heads
        for l in self.encoder.layer:
            s = l.attention.self
            split = lambda y: y.view(b, t, self.heads, dh).transpose(1, 2)
            q, k, v = split(s.query(x)), split(s.key(x)), split(s.value(x))
            probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + bias, dim=-1)
            ctx = (probs @ v).transpose(1, 2).reshape(b, t, -1)
            x = l.attention.output.LayerNorm(l.attention.output.dense(ctx) + x)
            inner = torch.nn.functional.gelu(l.intermediate.dense(x))
            x = l.output.LayerNorm(l.output.dense(inner) + x)
        mean = (x * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, dim=-1)


def safetensors_offsets(path):
    """name -> (absolute byte offset, length) of each tensor's data in a safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {k: (8 + n + v["data_offsets"][0], v["data_offsets"][1] - v["data_offsets"][0])
            for k, v in header.items() if k != "__metadata__"}


def link_to_safetensors(model, weights_path):
    """Moves every initializer whose bytes are a tensor of the safetensors file out of the
    graph, as external data at that tensor's place in the file. Returns how many moved."""
    offsets = safetensors_offsets(weights_path)
    raw = pathlib.Path(weights_path).read_bytes()
    by_bytes = {raw[o:o + n]: (o, n) for o, n in offsets.values()}
    moved = 0
    for t in model.graph.initializer:
        hit = by_bytes.get(t.raw_data) if len(t.raw_data) >= 1024 else None
        if hit is None:
            continue
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        for k, v in (("location", WEIGHTS), ("offset", str(hit[0])), ("length", str(hit[1]))):
            e = t.external_data.add()
            e.key, e.value = k, v
        moved += 1
    return moved


def session(onnx_path, weights_path, threads=1):
    """An ONNX Runtime session on the committed graph, beside a copy of the weights (ONNX
    Runtime refuses external data behind a symlink that leaves the model's folder)."""
    tmp = tempfile.mkdtemp(prefix="onnx-minilm-")
    shutil.copy(onnx_path, os.path.join(tmp, ONNX_NAME))
    shutil.copy(weights_path, os.path.join(tmp, WEIGHTS))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    s = ort.InferenceSession(os.path.join(tmp, ONNX_NAME), opts, providers=["CPUExecutionProvider"])
    shutil.rmtree(tmp)
    return s


def main():
    assets = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FUKAI_ASSETS", ROOT.parent / "shared/assets"))
    mdir = assets / "models/all-MiniLM-L6-v2"
    weights = mdir / WEIGHTS
    cfg = json.loads((mdir / "config.json").read_text())
    model = Bert(cfg).eval()
    # The pooler ([CLS] dense + tanh) is not part of the sentence embedding.
    state = {k: v for k, v in load_file(str(weights)).items() if not k.startswith("pooler.")}
    model.load_state_dict(state, strict=True)
    ref = json.loads((assets / "models/all-MiniLM-L6-v2.reference.json").read_text())["items"]

    OUT.mkdir(parents=True, exist_ok=True)
    ids = torch.tensor([ref[0]["input_ids"]])
    with tempfile.TemporaryDirectory() as tmp:
        full = os.path.join(tmp, "full.onnx")
        # Opset 17: LayerNormalization is one op; GELU is exported as its erf formula.
        # No constant folding: folding would store each Linear weight transposed, bytes that
        # are not in model.safetensors (the importer transposes at load instead).
        torch.onnx.export(model, (ids, torch.ones_like(ids)), full, dynamo=False, opset_version=17,
                          do_constant_folding=False, input_names=["input_ids", "attention_mask"],
                          output_names=["sentence_embedding"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                        "attention_mask": {0: "batch", 1: "seq"},
                                        "sentence_embedding": {0: "batch"}})
        m = onnx.load(full)
        onnx.checker.check_model(m, full_check=True)
        full_sess = ort.InferenceSession(full, providers=["CPUExecutionProvider"])
        moved = link_to_safetensors(m, weights)
        onnx.save(m, str(OUT / ONNX_NAME))
    print(f"{ONNX_NAME}: {len(m.graph.node)} nodes, {moved} initializers linked to {WEIGHTS}, "
          f"{(OUT / ONNX_NAME).stat().st_size} bytes")

    sess = session(OUT / ONNX_NAME, weights)
    embs = []
    worst = 0.0
    for it in ref:
        x = np.array([it["input_ids"]], dtype=np.int64)
        feed = {"input_ids": x, "attention_mask": np.ones_like(x)}
        (e,) = sess.run(None, feed)
        (e_full,) = full_sess.run(None, feed)
        assert np.array_equal(e, e_full), "linked and inline exports differ"
        with torch.no_grad():
            e_torch = model(torch.from_numpy(x), torch.from_numpy(feed["attention_mask"])).numpy()
        worst = max(worst, float(np.abs(e - e_torch).max()))
        cos = float(e[0] @ np.array(it["embedding"], dtype=np.float32))
        assert cos > 0.99999, f"{it['text']!r}: cosine {cos} to sentence-transformers"
        embs.append(e[0])
    print(f"ONNX Runtime vs torch: worst |diff| {worst:.2e}; all cosines to the reference > 0.99999")
    save_file({"embeddings": np.stack(embs).astype(np.float32)}, str(OUT / "expected.safetensors"),
              metadata={"generator": f"scripts/onnx_minilm.py, onnxruntime {ort.__version__}, torch {torch.__version__}"})


if __name__ == "__main__":
    main()
