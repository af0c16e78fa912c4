//! `fukai chat` and `fukai generate --model` end to end: a one-shot answer from SmolLM2's GGUF
//! file (greedy, so the answer is fixed) with its speed report on stderr, a plain-text
//! continuation equal to the library's, and models or flags the commands cannot use refused
//! with an error naming the path or flag and what was expected.

mod common;

use common::tiny_llama::tiny_model;
use common::{expect_success, fukai, s, scratch};
use fukai::io::GgufFile;
use fukai::models::{Decoding, Llama, Session};
use fukai::text::GgufTokenizer;

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
    ]);
    let answer = expect_success(&out, "fukai chat --prompt");
    // transformers' greedy answer on the same file (tests/fixtures/smollm2_reference.json,
    // no repetition penalty), up to the end-of-turn token. The default penalty (1.1) covers
    // the generated tokens only, so it leaves this answer as it is; over the prompt's
    // template tokens too, it turned the answer into one about probability theory.
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

#[test]
#[ignore = "needs the 98 MB SmolLM2 GGUF: scripts/fetch_smollm2.sh, then FUKAI_GGUF_SMOLLM2=<path>"]
fn generate_continues_plain_text_from_a_gguf_file() {
    let Some(path) = fukai::testing::asset_file(
        "FUKAI_GGUF_SMOLLM2",
        "scripts/fetch_smollm2.sh prints the path",
    ) else {
        return;
    };
    let prompt = "The capital of France is";
    let out = fukai(&[
        "generate",
        "--model",
        s(&path),
        "--prompt",
        prompt,
        "--max-tokens",
        "12",
        "--temperature",
        "0",
    ]);
    let text = expect_success(&out, "fukai generate --model");
    let cont = text
        .strip_prefix(prompt)
        .unwrap_or_else(|| panic!("the prompt is printed first: {text:?}"))
        .trim_end_matches('\n');
    assert!(cont.contains("Paris"), "{cont:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tokens/s"),
        "the speed report goes to stderr: {err}"
    );
    // The library's greedy continuation of the same ids (no template, start token first).
    let file = GgufFile::open(&path).unwrap();
    let model = Llama::from_gguf(&file).unwrap();
    let tok = GgufTokenizer::from_gguf(&file).unwrap();
    let ids = tok.encode(prompt, true).unwrap();
    let mut session = Session::new(&model, 0);
    let greedy = model
        .generate(&mut session, &ids, &Decoding::greedy(12), |_| {})
        .unwrap();
    let end = greedy
        .iter()
        .position(|&id| tok.is_control(id))
        .unwrap_or(greedy.len());
    assert_eq!(cont, tok.decode(&greedy[..end]).unwrap());
}

#[test]
fn generate_continues_a_prompt_with_a_llama_directory() {
    let dir = scratch("generate-tiny-llama");
    let model = tiny_model(&dir);
    let run = |extra: &[&str]| {
        let mut args = vec!["generate", "--model", s(&model), "--prompt", "hello"];
        args.extend_from_slice(extra);
        fukai(&args)
    };
    let greedy = ["--temperature", "0", "--max-tokens", "6"];
    let a = run(&greedy);
    let text = expect_success(&a, "fukai generate --model (tiny)");
    assert!(
        text.starts_with("hello"),
        "the prompt comes first: {text:?}"
    );
    assert!(String::from_utf8_lossy(&a.stderr).contains("tokens/s"));
    assert_eq!(
        a.stdout,
        run(&greedy).stdout,
        "greedy decoding is repeatable"
    );
    let sampled = [
        "--temperature",
        "1.0",
        "--top-k",
        "50",
        "--seed",
        "3",
        "--repeat-penalty",
        "1.3",
    ];
    let b = run(&sampled);
    expect_success(&b, "fukai generate --model, sampled");
    assert_eq!(b.stdout, run(&sampled).stdout, "the seed fixes the samples");
    // Bad flags are named.
    for (extra, flag) in [
        (["--repeat-penalty", "0"], "--repeat-penalty"),
        (["--max-tokens", "0"], "--max-tokens"),
        (["--top-p", "1.5"], "--top-p"),
    ] {
        let out = run(&extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(flag) && !err.contains("panicked"),
            "{extra:?}: {err}"
        );
    }
    // --repeat-penalty belongs to --model; --checkpoint and --model exclude each other.
    let out = fukai(&[
        "generate",
        "--checkpoint",
        "x.safetensors",
        "--repeat-penalty",
        "1.1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--model"));
    let out = fukai(&[
        "generate",
        "--checkpoint",
        "x.safetensors",
        "--model",
        s(&model),
    ]);
    assert!(!out.status.success());
}
