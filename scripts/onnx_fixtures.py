"""ONNX Runtime's outputs for the models fukai exports, as fixtures for tests/onnx_export.rs.

The .onnx files in crates/fukai/tests/fixtures/onnx_export/ are written by fukai itself
(`FUKAI_WRITE_ONNX_FIXTURES=1 cargo test -p fukai --test onnx_export`); this script checks
each with onnx.checker, runs it in onnxruntime on a seeded input (normal floats, or token
ids below the vocabulary for an int64 input), and writes input and output to
NAME.safetensors beside it. Tests never run Python: they read the committed files.

    /work/venv/bin/python scripts/onnx_fixtures.py   (needs numpy, safetensors, onnx, onnxruntime)
"""

import pathlib
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import save_file

DIR = pathlib.Path(__file__).resolve().parent.parent / "crates/fukai/tests/fixtures/onnx_export"


def main():
    files = sorted(DIR.glob("*.onnx"))
    if not files:
        raise SystemExit(f"no .onnx files in {DIR}: run the Rust test with FUKAI_WRITE_ONNX_FIXTURES=1 first")
    for path in files:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        inp = model.graph.input[0]
        # Free dims: batch 3, the rest (sequence lengths) 5, below the GPT fixture's context.
        dims = [d.dim_value if d.dim_value > 0 else (3 if i == 0 else 5)
                for i, d in enumerate(inp.type.tensor_type.shape.dim)]
        rng = np.random.default_rng(zlib.crc32(path.stem.encode()))
        if inp.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            x = rng.integers(0, vocab_size(model, inp.name), dims, dtype=np.int64)
        else:
            x = rng.standard_normal(dims).astype(np.float32)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (y,) = sess.run(None, {inp.name: x})
        save_file({"input": x, "output": np.ascontiguousarray(y)}, str(path.with_suffix(".safetensors")))
        print(f"{path.name}: input {list(x.shape)} -> output {list(y.shape)}")


def vocab_size(model, ids):
    """Rows of the table the token ids index (the Gather reading the graph input)."""
    tables = {t.name: t.dims for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[1] == ids:
            return tables[node.input[0]][0]
    raise SystemExit(f"{ids}: integer input that no Gather reads")


if __name__ == "__main__":
    main()
