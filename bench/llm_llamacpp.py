"""llama.cpp (llama-cpp-python, built with GGML_NATIVE) on the same GGUF, prompt and threads as
`fukai generate` in bench/llm.sh: prefill of the prompt in one pass, then greedy decoding of
`--max-tokens` tokens one at a time. Prints the same line as fukai's CLI."""
import argparse
import sys
import time

import llama_cpp
import numpy as np


def last_logits(llm):
    # The last evaluated position's logits: llama-cpp-python keeps `scores` only with
    # logits_all, which would also compute the head for every prompt position.
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--prompt-file", required=True)
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--max-tokens", type=int, default=128)
a = ap.parse_args()

llm = llama_cpp.Llama(
    model_path=a.model, n_ctx=1024, n_threads=a.threads, n_threads_batch=a.threads,
    n_batch=512, verbose=False,
)
ids = llm.tokenize(open(a.prompt_file, encoding="utf-8").read().encode(), add_bos=False, special=False)
t0 = time.perf_counter()
llm.eval(ids)
t1 = time.perf_counter()
out = []
nxt = int(np.argmax(last_logits(llm)))
t2 = time.perf_counter()
for _ in range(a.max_tokens - 1):
    out.append(nxt)
    llm.eval([nxt])
    nxt = int(np.argmax(last_logits(llm)))
t3 = time.perf_counter()
n = a.max_tokens - 1
print(f"prefill: {len(ids)} tokens in {t1 - t0:.2f} s ({len(ids) / (t1 - t0):.1f} tokens/s); "
      f"decode: {n} tokens in {t3 - t2:.2f} s ({n / (t3 - t2):.1f} tokens/s)", file=sys.stderr)
