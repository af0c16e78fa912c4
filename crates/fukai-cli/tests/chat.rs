//! `fukai chat` end to end: a one-shot answer from SmolLM2's GGUF file (greedy, so the answer
//! is fixed) with its speed report on stderr, and models it cannot load refused with an error
//! naming the path and what it expected.

mod common;

use common::{expect_success, fukai, s, scratch};

#[test]
#[ignore = "needs the 98 MB SmolLM2 GGUF: scripts/fetch_smollm2.sh, then FUKAI_GGUF_SMOLLM2=<path>"]
fn chat_answers_one_prompt_from_a_gguf_file() {
    let Some(path) = fukai::testing::asset_file(
        "FUKAI_GGUF_SMOLLM2",
        "scripts/fetch_smollm2.sh prints the path",
    ) else {
        return;
    };
    let model = path.to_str().expect("a UTF-8 path");
    let out = fukai(&[
        "chat",
        "--model",
        model,
        "--prompt",
        "What is 2+2?",
        "--max-tokens",
        "24",
        "--repeat-penalty",
        "1",
    ]);
    let answer = expect_success(&out, "fukai chat --prompt");
    // transformers' greedy answer on the same file (tests/fixtures/smollm2_reference.json,
    // no repetition penalty), up to the end-of-turn token.
    assert_eq!(
        answer.trim(),
        "The answer to this classic math problem is 4.",
        "only the answer is printed"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tokens/s"),
        "the speed report goes to stderr: {err}"
    );
}

#[test]
fn chat_refuses_what_it_cannot_load() {
    let dir = scratch("chat-bad-model");
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a model").unwrap();
    let out = fukai(&["chat", "--model", s(&text), "--prompt", "hi"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notes.txt") && err.contains(".gguf"),
        "the error names the path and what it expected: {err}"
    );
    let fake = dir.join("broken.gguf");
    std::fs::write(&fake, b"GGUF\x03\x00\x00\x00").unwrap();
    let out = fukai(&["chat", "--model", s(&fake), "--prompt", "hi"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.gguf") && !err.contains("panicked"),
        "a truncated GGUF file is an error naming it: {err}"
    );
}
