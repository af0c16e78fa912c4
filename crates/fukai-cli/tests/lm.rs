//! The language-model path end to end on a tiny text: `fukai train` with a gpt config
//! (`train.steps_per_epoch` steps between validations) writes a summary with `val_loss` and
//! `test_perplexity` and a checkpoint that `fukai eval`, `predict` and `generate` use alone
//! (vocabulary included); `--steps` stops it and `--resume` finishes it; a prompt character
//! outside the vocabulary is an error naming it.

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
    assert_eq!(summary["task"], "language-model", "{summary}");
    assert_eq!(summary["steps"], 30, "3 epochs of steps_per_epoch = 10");
    let test = summary["test_loss"].as_f64().unwrap();
    let ppl = summary["test_perplexity"].as_f64().unwrap();
    assert!((ppl - test.exp()).abs() < 1e-6 * ppl, "{ppl} vs e^{test}");
    assert!(summary["samples_per_second"].as_f64().unwrap() > 0.0);
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().filter(|l| l.contains("val_loss")).count(), 3);

    // eval on the stored data: validation and test, as in the summary.
    let ckpt_path = out.join("checkpoint.safetensors");
    let e = fukai(&["eval", "--checkpoint", &s(&ckpt_path), "--json"]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let ev: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    assert_eq!(ev["test"]["loss"].as_f64().unwrap(), test, "{ev}");
    assert_eq!(ev["validation"]["loss"].as_f64().unwrap(), val, "{ev}");
    assert!(ev["test"]["perplexity"].as_f64().unwrap() > 1.0, "{ev}");
    // The checkpoint exports to ONNX (token ids in, causal mask built in the graph).
    let onnx = dir.join("gpt.onnx");
    let x = fukai(&[
        "export",
        "--checkpoint",
        &s(&ckpt_path),
        "--onnx",
        &s(&onnx),
    ]);
    assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
    let info = fukai(&["onnx", "info", &s(&onnx)]);
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(
        info.contains("input_ids") && info.contains("  Trilu\n"),
        "{info}"
    );
    // predict: the likeliest next characters, as text and as JSON.
    let p = fukai(&[
        "predict",
        "--checkpoint",
        &s(&ckpt_path),
        "the c",
        "--top-k",
        "2",
    ]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let p = String::from_utf8(p.stdout).unwrap();
    assert!(p.starts_with("\"the c\" -> next: \""), "{p}");
    assert_eq!(p.matches('%').count(), 2, "--top-k 2: {p}");
    let p = fukai(&[
        "predict",
        "--checkpoint",
        &s(&ckpt_path),
        "--json",
        "the c",
        "sat o",
    ]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8(p.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["input"], "sat o");
    let next = rows[0]["next"].as_array().unwrap();
    assert_eq!(next.len(), 3, "default --top-k 3");
    let probs: Vec<f64> = next
        .iter()
        .map(|n| n["probability"].as_f64().unwrap())
        .collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]) && probs.iter().sum::<f64>() <= 1.0 + 1e-6);

    // --steps stops a GPT run too (it no longer sets the run's length: the cosine schedule
    // still spans 30 steps), and --resume finishes it where the straight run ended.
    let part = dir.join("part");
    let o = fukai(&[
        "train",
        "--config",
        &s(&dir.join("gpt.toml")),
        "--data",
        &s(&dir.join("text.txt")),
        "--out",
        &s(&part),
        "--steps",
        "20",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ck = fukai::io::load_safetensors(part.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.metadata()["step"], "20");
    assert!(!part.join("summary.json").exists());
    let o = fukai(&["train", "--resume", &s(&part)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let resumed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(part.join("summary.json")).unwrap()).unwrap();
    assert_eq!(resumed["steps"], 30, "{resumed}");
    assert_eq!(resumed["test_loss"], summary["test_loss"], "{resumed}");

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
    for (flag, value, needle) in [
        ("--top-p", "1.5", "--top-p must be in (0, 1], found 1.5"),
        ("--top-k", "0", "--top-k must be at least 1"),
        (
            "--temperature",
            "-1",
            "--temperature must be >= 0, found -1",
        ),
    ] {
        let arg = format!("{flag}={value}");
        let bad = fukai(&["generate", "--checkpoint", &ckpt, &arg]);
        let msg = String::from_utf8_lossy(&bad.stderr);
        assert!(!bad.status.success() && msg.contains(needle), "{msg}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
