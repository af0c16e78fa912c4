"""Reference for SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized by `transformers`): for two
chat prompts, the prompt ids, the 32 greedy continuation ids, and at the prefill and each
greedy step the 8 largest logits with their ids. Written to
crates/fukai/tests/fixtures/smollm2_reference.json for the GGUF model test.

    /work/venv/bin/python scripts/smollm2_reference.py PATH/SmolLM2-135M-Instruct.Q4_1.gguf
"""

import json
import os
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

OUT = os.path.join(
    os.path.dirname(__file__), "..", "crates", "fukai", "tests", "fixtures", "smollm2_reference.json"
)
PROMPTS = ["What is 2+2?", "Give me three tips for staying healthy."]
STEPS = 32
TOP = 8


def main(path):
    with tempfile.TemporaryDirectory() as d:
        os.symlink(os.path.abspath(path), os.path.join(d, "m.gguf"))
        tok = AutoTokenizer.from_pretrained(d, gguf_file="m.gguf")
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file="m.gguf", torch_dtype=torch.float32)
    model.eval()
    cases = []
    for p in PROMPTS:
        text = tok.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        ids = tok.encode(text, add_special_tokens=False)
        seq = list(ids)
        greedy, tops = [], []
        with torch.no_grad():
            out = model(torch.tensor([seq]), use_cache=True)
            past, logits = out.past_key_values, out.logits[0, -1]
            for _ in range(STEPS):
                v, i = logits.topk(TOP)
                tops.append({"ids": i.tolist(), "logits": [round(x, 5) for x in v.tolist()]})
                nxt = int(i[0])
                greedy.append(nxt)
                out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
                past, logits = out.past_key_values, out.logits[0, -1]
        cases.append(
            {
                "prompt": p,
                "rendered": text,
                "ids": ids,
                "greedy": greedy,
                "greedy_text": tok.decode(greedy),
                "top": tops,
            }
        )
        print(p, "->", repr(tok.decode(greedy)))
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"source": os.path.basename(path), "steps": STEPS, "cases": cases}, f, indent=0)


if __name__ == "__main__":
    main(sys.argv[1])
