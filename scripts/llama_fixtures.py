"""Fixtures for crates/fukai/tests/llama.rs: two tiny random LlamaForCausalLM models from
`transformers` (grouped-query attention, one with linear RoPE scaling and separate head, one
with LLaMA-3 scaling and a tied head), their logits for a prompt (one prefill pass) and for 8
cached greedy decode steps, and a Q/K projection as GGUF's llama converter permutes it.

Weights are rounded to f16 and stored as f16 (half the bytes); the reference runs in f32 on
those rounded values, so fukai loads exactly the numbers the reference used.

    /work/venv/bin/python scripts/llama_fixtures.py   # torch, transformers, safetensors, gguf
"""

import os

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "fukai", "tests", "fixtures", "llama")

MODELS = {
    "linear": dict(
        tie_word_embeddings=False,
        rope_scaling={"rope_type": "linear", "factor": 2.0},
        rope_theta=10000.0,
    ),
    "llama3": dict(
        tie_word_embeddings=True,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        rope_theta=500000.0,
    ),
}


def build(name, extra, seed):
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        attention_bias=False,
        mlp_bias=False,
        **extra,
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            # Larger than the default init so the tiny net's logits are not nearly uniform;
            # norms away from 1 so their weights matter.
            p.copy_((torch.randn_like(p) * 0.15).half().float())
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_((1.0 + torch.randn_like(p) * 0.2).half().float())
    return cfg, model


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, extra) in enumerate(MODELS.items()):
        cfg, model = build(name, extra, seed=i)
        g = torch.Generator().manual_seed(100 + i)
        prompt = torch.randint(0, 256, (1, 11), generator=g)
        with torch.no_grad():
            out = model(prompt, use_cache=True)
            prefill = out.logits[0]
            past = out.past_key_values
            ids = prompt[0].tolist()
            steps, tokens = [], []
            nxt = int(prefill[-1].argmax())
            for _ in range(8):
                tokens.append(nxt)
                o = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
                past = o.past_key_values
                steps.append(o.logits[0, -1])
                nxt = int(o.logits[0, -1].argmax())
        state = {k: v.half().contiguous() for k, v in model.state_dict().items()}
        if cfg.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        save_file(state, os.path.join(OUT, f"{name}.safetensors"))
        cfg.to_json_file(os.path.join(OUT, f"{name}.config.json"))
        save_file(
            {
                "prompt": torch.tensor(ids, dtype=torch.int64),
                "prefill_logits": prefill.contiguous(),
                "decode_tokens": torch.tensor(tokens, dtype=torch.int64),
                "decode_logits": torch.stack(steps).contiguous(),
            },
            os.path.join(OUT, f"{name}.expected.safetensors"),
        )

    # GGUF's llama converter (convert_hf_to_gguf.py, LlamaModel.permute) reorders each head's
    # rows from "rotate half" to interleaved pairs; the test undoes it.
    def permute(w, n_head):
        return (
            w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape)
        )

    rng = np.random.default_rng(7)
    q = rng.standard_normal((4 * 8, 6)).astype(np.float32)
    k = rng.standard_normal((2 * 8, 6)).astype(np.float32)
    save_file(
        {
            "q": torch.from_numpy(q),
            "q_gguf": torch.from_numpy(np.ascontiguousarray(permute(q, 4))),
            "k": torch.from_numpy(k),
            "k_gguf": torch.from_numpy(np.ascontiguousarray(permute(k, 2))),
        },
        os.path.join(OUT, "permute.safetensors"),
    )


if __name__ == "__main__":
    main()
