"""Writes the fixtures of crates/fukai/tests/gguf_*.rs with the `gguf` Python package (llama.cpp's
gguf-py, `pip install gguf`), the reference the Rust side is checked against:

  gguf_dequant.safetensors  for each GGML type fukai dequantizes, a few random but valid blocks
                            ("<TYPE>.raw", u8) and gguf.quants.dequantize of them ("<TYPE>.f32")
  gguf_smollm2.json         what gguf-py reads from SmolLM2-135M-Instruct Q4_1
                            (scripts/fetch_smollm2.sh): counts, some metadata, and a few
                            tensors' type, shape, offset, first 32 dequantized values and sum

Usage: python scripts/gguf_fixtures.py [MODEL.gguf]   (the model part is skipped without it)
"""

import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader, quants
from safetensors.numpy import save_file

OUT = Path(__file__).resolve().parent.parent / "crates/fukai/tests/fixtures"

# Byte offsets of each block's f16 scales: random bytes there could be NaN or infinity, so
# they get finite values; every other byte of a block is valid whatever its value.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def blocks(rng, qtype, n_blocks):
    block, size = quants.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for at in F16_FIELDS[qtype]:
        # Scales of either sign over several binades, and an exact zero in the last block.
        scale = (rng.standard_normal(n_blocks) * 10.0 ** rng.integers(-4, 1, n_blocks))
        scale[-1] = 0.0
        raw[:, at:at + 2] = scale.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1), block


def dequant_fixtures():
    rng = np.random.default_rng(18)
    out = {}
    for qtype in F16_FIELDS:
        raw, block = blocks(rng, qtype, 3 if block_is_k(qtype) else 8)
        out[f"{qtype.name}.raw"] = raw
        out[f"{qtype.name}.f32"] = quants.dequantize(raw, qtype).reshape(-1).astype(np.float32)
    # Plain types: the conversion of their stored bits, including subnormals and signed zeros.
    vals = np.concatenate([rng.standard_normal(40) * 100, [0.0, -0.0, 1e-6, -6e-8, 65504.0]])
    for qtype, dt in [(T.F32, np.float32), (T.F16, np.float16)]:
        raw = vals.astype(dt).view(np.uint8)
        out[f"{qtype.name}.raw"] = raw
        out[f"{qtype.name}.f32"] = quants.dequantize(raw, qtype).reshape(-1).astype(np.float32)
    bf = (vals.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    out["BF16.raw"] = bf
    out["BF16.f32"] = quants.dequantize(bf, T.BF16).reshape(-1).astype(np.float32)
    save_file(out, str(OUT / "gguf_dequant.safetensors"))


def block_is_k(qtype):
    return quants.GGML_QUANT_SIZES[qtype][0] == 256


def model_fixture(path):
    r = GGUFReader(path)
    fields = {}
    for key in ["general.architecture", "llama.block_count", "llama.embedding_length",
                "llama.attention.head_count_kv", "llama.rope.freq_base",
                "tokenizer.ggml.model", "tokenizer.ggml.bos_token_id"]:
        f = r.fields[key]
        v = f.contents()
        fields[key] = v
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    tensors = {}
    for t in r.tensors:
        if t.name not in ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight",
                          "blk.0.attn_norm.weight", "output_norm.weight"]:
            continue
        values = quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        rows = values.reshape(-1, values.shape[-1])
        tensors[t.name] = {
            "type": t.tensor_type.name,
            "shape": [int(d) for d in reversed(t.shape)],
            "file_offset": int(t.data_offset),
            "first_row_head": [float(x) for x in rows[0][:32]],
            "sum": float(values.astype(np.float64).sum()),
        }
    fixture = {
        "tensor_count": len(r.tensors),
        "kv_count": len(r.fields) - 3,  # GGUFReader lists version and the two counts as fields
        "metadata": fields,
        "tokens": {"count": len(tokens), "first": tokens[:3], "last": tokens[-1]},
        "tensors": tensors,
    }
    (OUT / "gguf_smollm2.json").write_text(json.dumps(fixture, indent=1, separators=(",", ": ")) + "\n")


if __name__ == "__main__":
    dequant_fixtures()
    if len(sys.argv) > 1:
        model_fixture(sys.argv[1])
