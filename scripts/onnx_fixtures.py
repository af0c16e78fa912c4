"""ONNX Runtime's outputs for the models fukai exports, as fixtures for tests/onnx_export.rs.

The .onnx files in crates/fukai/tests/fixtures/onnx_export/ are written by fukai itself
(`FUKAI_WRITE_ONNX_FIXTURES=1 cargo test -p fukai --test onnx_export`); this script checks
each with onnx.checker, runs it in onnxruntime on a seeded input, and writes input and output
to NAME.safetensors beside it. Tests never run Python: they read the committed files.

    /work/venv/bin/python scripts/onnx_fixtures.py   (needs numpy, safetensors, onnx, onnxruntime)
"""

import pathlib

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import save_file

DIR = pathlib.Path(__file__).resolve().parent.parent / "crates/fukai/tests/fixtures/onnx_export"


def main():
    files = sorted(DIR.glob("*.onnx"))
    if not files:
        raise SystemExit(f"no .onnx files in {DIR}: run the Rust test with FUKAI_WRITE_ONNX_FIXTURES=1 first")
    for i, path in enumerate(files):
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        inp = model.graph.input[0]
        dims = [d.dim_value if d.dim_value > 0 else 3 for d in inp.type.tensor_type.shape.dim]
        rng = np.random.default_rng(i)
        x = rng.standard_normal(dims).astype(np.float32)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (y,) = sess.run(None, {inp.name: x})
        save_file({"input": x, "output": np.ascontiguousarray(y)}, str(path.with_suffix(".safetensors")))
        print(f"{path.name}: input {list(x.shape)} -> output {list(y.shape)}")


if __name__ == "__main__":
    main()
