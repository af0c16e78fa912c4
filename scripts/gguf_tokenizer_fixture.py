"""Fixture for crates/fukai/tests/gguf_tokenizer.rs: ids that `transformers` gives for varied
strings with the tokenizer it builds from SmolLM2-135M-Instruct's GGUF metadata, and the
rendered chat template.

The fixture carries only the part of the vocabulary the strings can reach (every token and
merge whose text is a substring of one of their pre-tokenized words, the 256 byte tokens and
the control tokens), with the original ids and the original merge order: byte-level BPE on a
word only ever forms substrings of it, so the ids come out as with the full vocabulary.

    /work/venv/bin/python scripts/gguf_tokenizer_fixture.py PATH/SmolLM2-135M-Instruct.Q4_1.gguf
"""

import json
import os
import sys
import tempfile

from gguf import GGUFReader
from transformers import AutoTokenizer

OUT = os.path.join(
    os.path.dirname(__file__), "..", "crates", "fukai", "tests", "fixtures", "gguf_tokenizer.json"
)

CASES = [
    "Hello, world!",
    "What is 2+2?",
    "  leading spaces and trailing   ",
    "tabs\tand\nnewlines\n\n\nthree",
    "Numbers: 1234567890, 3.14159, -42, 1e10",
    "It's we're they've I'm you'll he'd",
    "Ünïcödé: café, naïve, Straße, Ελληνικά, русский",
    "日本語のテキストと中文",
    "Emoji 😀🎉👍🏽 and 👨‍👩‍👧 family",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "a<|im_end|>b <|im_start|> c",
    "code: fn main() { println!(\"{}\", x); }",
    "mixed CASE words AND acronyms like NASA",
    "     ",
    "\n",
    "x" * 40,
    "punctuation!!! ??? ... ---",
    "under_scores and hyphen-ated",
    "https://example.com/path?q=1&r=2",
    "Give me three tips for staying healthy.",
]

MESSAGES = [
    [{"role": "user", "content": "What is 2+2?"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke."},
    ],
]


def field_strings(r, key):
    f = r.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def main(path):
    r = GGUFReader(path)
    tokens = field_strings(r, "tokenizer.ggml.tokens")
    merges = field_strings(r, "tokenizer.ggml.merges")
    tf = r.fields["tokenizer.ggml.token_type"]
    types = [int(tf.parts[i][0]) for i in tf.data]
    template = r.fields["tokenizer.chat_template"].contents()

    with tempfile.TemporaryDirectory() as d:
        os.symlink(os.path.abspath(path), os.path.join(d, "m.gguf"))
        tok = AutoTokenizer.from_pretrained(d, gguf_file="m.gguf")
    pre = tok.backend_tokenizer.pre_tokenizer
    words = set()
    for text in CASES:
        for part in text.split("<|"):
            words.update(w for w, _ in pre.pre_tokenize_str(part))
    byte_tokens = set(tokens[i] for i in range(len(tokens)) if len(tokens[i]) == 1)

    def reachable(s):
        return any(s in w for w in words)

    keep = [
        [i, t, types[i]]
        for i, t in enumerate(tokens)
        if types[i] != 1 or t in byte_tokens or reachable(t)
    ]
    kept_merges = [m for m in merges if reachable(m.replace(" ", "", 1))]
    cases = [
        {"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in CASES
    ]
    for c in cases:
        c["decoded"] = tok.decode(c["ids"])
    chats = []
    for msgs in MESSAGES:
        for gen in (True, False):
            chats.append(
                {
                    "messages": msgs,
                    "add_generation_prompt": gen,
                    "rendered": tok.apply_chat_template(
                        msgs, tokenize=False, add_generation_prompt=gen
                    ),
                }
            )
    fixture = {
        "source": os.path.basename(path),
        "model": r.fields["tokenizer.ggml.model"].contents(),
        "pre": r.fields["tokenizer.ggml.pre"].contents(),
        "vocab_size": len(tokens),
        "bos": int(r.fields["tokenizer.ggml.bos_token_id"].contents()),
        "eos": int(r.fields["tokenizer.ggml.eos_token_id"].contents()),
        "add_bos": bool(r.fields["tokenizer.ggml.add_bos_token"].contents()),
        "tokens": keep,
        "merges": kept_merges,
        "chat_template": template,
        "cases": cases,
        "chats": chats,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=0)
    print(f"{OUT}: {len(keep)} tokens, {len(kept_merges)} merges, {len(cases)} cases")


if __name__ == "__main__":
    main(sys.argv[1])
