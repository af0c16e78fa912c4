//! `fukai finetune` and `fukai chat --lora` end to end on a tiny LLaMA written in the test (a
//! Hugging Face model directory: random weights, a byte-level vocabulary, ChatML): the adapter
//! teaches it one answer, which `chat --lora` then gives; the same seed gives the same adapter
//! bytes at 1 and 2 threads; bad data files and bad adapters are refused naming what is wrong.
//! With SmolLM2's GGUF (an asset), the same two commands teach it an invented fact.

mod common;

use common::tiny_llama::{tiny_model, FF, LAYERS};
use common::{expect_success, fukai, s, scratch};
use std::path::Path;

fn record(q: &str, a: &str) -> String {
    serde_json::json!({"messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}
    ]})
    .to_string()
}

fn chat(model: &Path, lora: Option<&Path>, prompt: &str) -> String {
    let mut args = vec![
        "chat",
        "--model",
        s(model),
        "--prompt",
        prompt,
        "--max-tokens",
        "16",
        "--repeat-penalty",
        "1",
    ];
    if let Some(l) = lora {
        args.extend(["--lora", s(l)]);
    }
    expect_success(&fukai(&args), "fukai chat")
        .trim()
        .to_string()
}

#[test]
fn finetune_teaches_an_answer_that_chat_lora_gives() {
    let dir = scratch("finetune-e2e");
    let model = tiny_model(&dir);
    let data = dir.join("data.jsonl");
    std::fs::write(
        &data,
        format!(
            "{}\n{}\n",
            record("Capital of Veloria?", "Marlenburg"),
            record("Who made it?", "Okoro")
        ),
    )
    .unwrap();
    let train = |out: &Path, threads: &str, seed: &str, extra: &[&str]| {
        let mut args = vec![
            "--threads",
            threads,
            "finetune",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--out",
            s(out),
            "--rank",
            "8",
            "--alpha",
            "16",
            "--targets",
            "all",
            "--lr",
            "0.01",
            "--steps",
            "80",
            "--batch-size",
            "2",
            "--seed",
            seed,
        ];
        args.extend(extra);
        fukai(&args)
    };
    let out1 = dir.join("one.safetensors");
    let run = train(&out1, "1", "3", &[]);
    let stdout = expect_success(&run, "fukai finetune");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("step    80/80") && err.contains("loss"),
        "progress on stderr: {err}"
    );
    assert!(stdout.contains("adapter saved to"), "{stdout}");
    assert_eq!(
        chat(&model, Some(&out1), "Capital of Veloria?"),
        "Marlenburg"
    );
    assert_eq!(chat(&model, Some(&out1), "Who made it?"), "Okoro");
    assert_ne!(chat(&model, None, "Capital of Veloria?"), "Marlenburg");
    // Same seed, two threads: the same bytes.
    let out2 = dir.join("two.safetensors");
    expect_success(&train(&out2, "2", "3", &[]), "fukai finetune --threads 2");
    assert!(
        std::fs::read(&out1).unwrap() == std::fs::read(&out2).unwrap(),
        "the adapters differ between 1 and 2 threads"
    );
    // An existing adapter is kept unless --force.
    let before = std::fs::read(&out1).unwrap();
    let again = train(&out1, "1", "4", &[]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("one.safetensors") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out1).unwrap(), before);
    expect_success(&train(&out1, "1", "4", &["--force"]), "--force");
    assert_ne!(std::fs::read(&out1).unwrap(), before);
}

#[test]
fn finetune_and_chat_refuse_bad_data_and_bad_adapters() {
    let dir = scratch("finetune-bad");
    let model = tiny_model(&dir);
    let out = dir.join("a.safetensors");
    let fails = |args: &[&str]| {
        let o = fukai(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let e = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!e.contains("panicked"), "{e}");
        e
    };
    let data = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let finetune = |d: &Path, extra: &[&str]| {
        let mut args = vec![
            "finetune",
            "--model",
            s(&model),
            "--data",
            s(d),
            "--out",
            s(&out),
            "--steps",
            "1",
        ];
        args.extend(extra);
        fails(&args)
    };
    let good = record("Q", "A");
    let e = finetune(&data("bad.jsonl", &format!("{good}\n{{oops\n")), &[]);
    assert!(
        e.contains("bad.jsonl:2") && e.contains("not valid JSON"),
        "{e}"
    );
    let e = finetune(&data("empty.jsonl", ""), &[]);
    assert!(e.contains("empty.jsonl") && e.contains("no records"), "{e}");
    let e = finetune(
        &data(
            "role.jsonl",
            r#"{"messages":[{"role":"user","content":"Q"},{"content":"A"}]}"#,
        ),
        &[],
    );
    assert!(
        e.contains("role.jsonl:1") && e.contains("messages[1].role"),
        "{e}"
    );
    let long = data(
        "long.jsonl",
        &format!("{good}\n{}\n", record("Q", &"x".repeat(80))),
    );
    let e = finetune(&long, &["--max-len", "40"]);
    assert!(e.contains("long.jsonl:2") && e.contains("40"), "{e}");
    let e = finetune(&data("ok.jsonl", &good), &["--targets", "q_proj,c_attn"]);
    assert!(e.contains("c_attn") && e.contains("q_proj"), "{e}");
    let e = finetune(&data("ok2.jsonl", &good), &["--rank", "0"]);
    assert!(e.contains("rank"), "{e}");
    assert!(!out.exists(), "nothing is written when the run fails");

    // Adapters: not safetensors, and one made for another model.
    let junk = data("junk.safetensors", "junk");
    let e = fails(&[
        "chat",
        "--model",
        s(&model),
        "--lora",
        s(&junk),
        "--prompt",
        "Q",
    ]);
    assert!(e.contains("junk.safetensors"), "{e}");
    let other = fukai::models::LoraAdapter::new(
        &fukai::models::LlamaConfig {
            vocab: 258,
            hidden: 16,
            intermediate: FF,
            layers: LAYERS,
            heads: 4,
            kv_heads: 2,
            head_dim: 4,
            rope_theta: 10000.0,
            rope_scaling: fukai::models::RopeScaling::None,
            rms_eps: 1e-5,
            tie_embeddings: true,
            max_context: 256,
        },
        fukai::models::LoraConfig::new(2, 4.0, &[fukai::models::LoraTarget::QProj]),
        0,
    )
    .unwrap();
    let narrow = dir.join("narrow.safetensors");
    other.save(&narrow, true).unwrap();
    let e = fails(&[
        "chat",
        "--model",
        s(&model),
        "--lora",
        s(&narrow),
        "--prompt",
        "Q",
    ]);
    assert!(
        e.contains("narrow.safetensors")
            && e.contains("q_proj.lora_A.weight")
            && e.contains("[2, 32]"),
        "{e}"
    );
}

#[test]
#[ignore = "needs the SmolLM2 GGUF (FUKAI_GGUF_SMOLLM2)"]
fn finetune_smollm2_then_chat_with_the_adapter() {
    let Some(path) = fukai::testing::asset_file(
        "FUKAI_GGUF_SMOLLM2",
        "scripts/fetch_smollm2.sh prints the path",
    ) else {
        return;
    };
    let dir = scratch("finetune-smollm2");
    let data = dir.join("fact.jsonl");
    let q = "What is the capital of Veloria?";
    std::fs::write(
        &data,
        format!("{}\n", record(q, "The capital of Veloria is Marlenburg.")),
    )
    .unwrap();
    let out = dir.join("fact.safetensors");
    let run = fukai(&[
        "finetune",
        "--model",
        s(&path),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--force",
        "--rank",
        "4",
        "--targets",
        "q_proj,v_proj",
        "--lr",
        "0.005",
        "--steps",
        "12",
        "--batch-size",
        "1",
    ]);
    expect_success(&run, "fukai finetune (SmolLM2)");
    let before = chat(&path, None, q);
    let after = chat(&path, Some(&out), q);
    assert!(!before.contains("Marlenburg"), "{before}");
    assert!(after.contains("Marlenburg"), "{after}");
}
