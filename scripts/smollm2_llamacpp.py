"""Reference for SmolLM2-135M-Instruct (Q4_1 GGUF) from llama.cpp itself (llama-cpp-python,
built here with CMAKE_ARGS="-DGGML_NATIVE=ON"), which multiplies on the quantized blocks as
fukai's quantized model does: for the prompts of smollm2_reference.json (their ids reused), the
8 largest logits after the prompt and after each of 32 greedy steps, and the greedy ids.
Written to crates/fukai/tests/fixtures/smollm2_llamacpp.json.

    /work/venv/bin/python scripts/smollm2_llamacpp.py PATH/SmolLM2-135M-Instruct.Q4_1.gguf
"""

import json
import os
import sys

import llama_cpp
import numpy as np


def last_logits(llm):
    # The last evaluated position's logits: llama-cpp-python keeps `scores` only with
    # logits_all, which would also compute the head for every prompt position.
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()

FIX = os.path.join(os.path.dirname(__file__), "..", "crates", "fukai", "tests", "fixtures")
STEPS = 32
TOP = 8


def main(path):
    ref = json.load(open(os.path.join(FIX, "smollm2_reference.json"), encoding="utf-8"))
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_threads=1, n_batch=512, verbose=False)
    cases = []
    for case in ref["cases"]:
        llm.reset()
        llm.eval(case["ids"])
        greedy, tops = [], []
        for _ in range(STEPS):
            logits = last_logits(llm)
            order = np.argsort(-logits, kind="stable")[:TOP]
            tops.append({"ids": order.tolist(), "logits": [round(float(logits[i]), 5) for i in order]})
            nxt = int(order[0])
            greedy.append(nxt)
            llm.eval([nxt])
        cases.append({"prompt": case["prompt"], "ids": case["ids"], "greedy": greedy, "top": tops})
        print(case["prompt"], "->", repr(llm.detokenize(greedy).decode("utf-8", "replace")))
    with open(os.path.join(FIX, "smollm2_llamacpp.json"), "w", encoding="utf-8") as f:
        json.dump(
            {"source": os.path.basename(path), "llama_cpp_python": llama_cpp.__version__,
             "steps": STEPS, "cases": cases},
            f, indent=0,
        )


if __name__ == "__main__":
    main(sys.argv[1])
