//! The language-model path end to end on a tiny text: `fukai train` with a gpt config writes a
//! summary with `val_loss` and `tokens_per_second` and a checkpoint that `fukai generate` samples
//! from alone (vocabulary included); a prompt character outside the vocabulary is an error
//! naming it.

use std::path::Path;
use std::process::{Command, Output};

fn fukai(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fukai"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("fukai runs")
}

const CONFIG: &str = r#"
name = "tiny-gpt"
[data]
format = "text"
test_fraction = 0.2
eval_windows = 10
[model]
kind = "gpt"
[model.gpt]
layers = 1
heads = 2
width = 16
context = 8
tie_weights = true
[train]
epochs = 3
steps_per_epoch = 10
batch_size = 4
lr = 0.01
min_lr = 0.001
weight_decay = 0.1
decay_matrices_only = true
schedule = "cosine"
warmup_steps = 2
clip_grad_norm = 1.0
"#;

#[test]
fn train_then_generate() {
    let dir = std::env::temp_dir().join(format!("fukai-lm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = "the cat sat on the mat. the dog sat on the log. ".repeat(20);
    std::fs::write(dir.join("text.txt"), &text).unwrap();
    std::fs::write(dir.join("gpt.toml"), CONFIG).unwrap();
    let s = |p: &Path| p.display().to_string();
    let out = dir.join("run");
    let o = fukai(&[
        "train",
        "--config",
        &s(&dir.join("gpt.toml")),
        "--data",
        &s(&dir.join("text.txt")),
        "--out",
        &s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let val = summary["val_loss"].as_f64().unwrap();
    // Untrained, the loss is ln(vocab) ≈ 2.6; 30 steps on this text must do better.
    assert!(val < 2.5, "val_loss {val}");
    assert!(summary["tokens_per_second"].as_f64().unwrap() > 0.0);
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().filter(|l| l.contains("val_loss")).count(), 3);

    let ckpt = s(&out.join("checkpoint.safetensors"));
    let gen = |seed: &str| {
        fukai(&[
            "generate",
            "--checkpoint",
            &ckpt,
            "--prompt",
            "the ",
            "--max-tokens",
            "40",
            "--top-k",
            "5",
            "--seed",
            seed,
        ])
    };
    let a = gen("1");
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let sample = String::from_utf8(a.stdout.clone()).unwrap();
    // Prompt, 40 characters (beyond the context of 8, so the cache restarts), newline.
    assert!(sample.starts_with("the "), "{sample:?}");
    assert_eq!(
        sample.trim_end_matches('\n').chars().count(),
        44,
        "{sample:?}"
    );
    assert!(sample.chars().all(|c| c == '\n' || text.contains(c)));
    assert_eq!(gen("1").stdout, a.stdout, "same seed, same text");

    let bad = fukai(&["generate", "--checkpoint", &ckpt, "--prompt", "the Zebra"]);
    assert!(!bad.status.success());
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(
        msg.contains("'Z'") && msg.contains("--prompt") && msg.contains("vocabulary"),
        "{msg}"
    );
    let bad = fukai(&["generate", "--checkpoint", &ckpt, "--top-p", "1.5"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--top-p"));
    std::fs::remove_dir_all(&dir).ok();
}
