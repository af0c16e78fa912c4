//! Sequence runs from the command line: a recurrent classifier on a small generated `.ts` pair,
//! a forecaster on a generated CSV series, and bad `.ts` files or configs failing with errors
//! that name the file and line.

mod common;

use common::{fukai, fukai_ok, s, scratch};
use std::path::Path;

/// Two classes of variable-length 2-channel sequences: rising or falling ramps with noise.
fn write_ts(path: &Path, n: usize, seed: u64) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut text = String::from(
        "@problemName ramps\n@timeStamps false\n@missing false\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true up down\n@data\n",
    );
    for i in 0..n {
        let up = i % 2 == 0;
        let len = 4 + i % 5;
        let dim = |k: f64, r: &mut dyn FnMut() -> f64| {
            (0..len)
                .map(|t| {
                    let v = if up { t as f64 } else { -(t as f64) } * k + r() * 0.5;
                    format!("{v:.3}")
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let (a, b) = (dim(1.0, &mut rnd), dim(0.5, &mut rnd));
        text.push_str(&format!("{a}:{b}:{}\n", if up { "up" } else { "down" }));
    }
    std::fs::write(path, text).unwrap();
}

fn ts_config(dir: &Path, stem: &Path) -> std::path::PathBuf {
    let cfg = dir.join("ramps.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"name = "ramps"
[data]
format = "ts"
path = "{}"
[model]
kind = "gru"
hidden = [8, 8]
bidirectional = true
dropout = 0.1
[train]
epochs = 3
batch_size = 8
lr = 0.01
"#,
            s(stem)
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn ts_classifier_trains_and_reports() {
    let dir = scratch("seq-ts");
    write_ts(&dir.join("ramps_TRAIN.ts"), 40, 1);
    write_ts(&dir.join("ramps_TEST.ts"), 20, 2);
    let cfg = ts_config(&dir, &dir.join("ramps"));
    let out = dir.join("run");
    let stdout = fukai_ok(&["train", "--config", s(&cfg), "--out", s(&out)]);
    assert!(
        stdout.contains("\ntest loss ") && stdout.contains(" acc "),
        "{stdout}"
    );
    // 40 training sequences, 4 of them (one in ten, per class) carved off for validation.
    assert!(
        stdout.contains("36 train / 4 validation / 20 test sequences"),
        "{stdout}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let acc = summary["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.8, "ramps are easy: {acc}");
    for f in ["metrics.jsonl", "curves.png", "checkpoint.safetensors"] {
        assert!(out.join(f).exists(), "{f}");
    }
    // predict on a .ts file: one line per sequence, in order, named FILE #i.
    let ckpt = out.join("checkpoint.safetensors");
    let test = dir.join("ramps_TEST.ts");
    let stdout = fukai_ok(&["predict", "--checkpoint", s(&ckpt), s(&test)]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 20, "{stdout}");
    let mut right = 0;
    for (i, l) in lines.iter().enumerate() {
        let prefix = format!("{} #{}: ", s(&test), i + 1);
        assert!(l.starts_with(&prefix), "{l}");
        let truth = if i % 2 == 0 { "up" } else { "down" };
        right += usize::from(l[prefix.len()..].starts_with(&format!("{truth}  [")));
    }
    assert!(right >= 16, "{right}/20 right:\n{stdout}");
    // eval --json agrees with the summary.
    let ev: serde_json::Value =
        serde_json::from_str(&fukai_ok(&["eval", "--checkpoint", s(&ckpt), "--json"])).unwrap();
    assert_eq!(ev["test"]["samples"], 20, "{ev}");
    assert_eq!(ev["test"]["accuracy"].as_f64().unwrap(), acc, "{ev}");
}

#[test]
fn series_forecaster_reports_rmse_and_naive() {
    let dir = scratch("seq-csv");
    let mut text = String::from("\"T\",\"V\"\n");
    for t in 0..120 {
        let v = 50.0 + 40.0 * (t as f64 * 2.0 * std::f64::consts::PI / 11.0).sin();
        text.push_str(&format!("{t},{v:.3}\n"));
    }
    let csv = dir.join("wave.csv");
    std::fs::write(&csv, text).unwrap();
    let cfg = dir.join("wave.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"wave\"\n[data]\nformat = \"series-csv\"\npath = \"{}\"\ncolumn = \"V\"\nlookback = 12\n[model]\nkind = \"lstm\"\nhidden = [16]\n[train]\nepochs = 40\nbatch_size = 16\nlr = 0.01\n",
            s(&csv)
        ),
    )
    .unwrap();
    let out = dir.join("run");
    let stdout = fukai_ok(&["train", "--config", s(&cfg), "--out", s(&out)]);
    assert!(stdout.contains("naive"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let (rmse, naive) = (
        summary["test_rmse"].as_f64().unwrap(),
        summary["naive_rmse"].as_f64().unwrap(),
    );
    assert!(
        rmse < naive,
        "a sine is predictable: rmse {rmse} vs naive {naive}"
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    // val_metric of a forecaster: RMSE relative to the naive forecast.
    let rel = last["val_metric"].as_f64().unwrap();
    assert!(rel > 0.0 && rel < 1.0, "{last}");
    let ckpt = out.join("checkpoint.safetensors");
    // The checkpoint exports to ONNX as one fused LSTM node, which `onnx info` lists.
    let onnx = dir.join("wave.onnx");
    let msg = fukai_ok(&["export", "--checkpoint", s(&ckpt), "--onnx", s(&onnx)]);
    assert!(msg.starts_with("wrote "), "{msg}");
    let info = fukai_ok(&["onnx", "info", s(&onnx)]);
    assert!(info.contains("  LSTM\n"), "{info}");
    let ev: serde_json::Value =
        serde_json::from_str(&fukai_ok(&["eval", "--checkpoint", s(&ckpt), "--json"])).unwrap();
    assert_eq!(ev["test"]["rmse"].as_f64().unwrap(), rmse, "{ev}");
    assert_eq!(ev["test"]["naive_rmse"].as_f64().unwrap(), naive, "{ev}");
    // predict the next value after the whole series: nearer the sine at t = 120 than the naive
    // forecast typically is.
    let stdout = fukai_ok(&["predict", "--checkpoint", s(&ckpt), s(&csv)]);
    let prefix = format!("{}: next 1 of V: ", s(&csv));
    assert!(stdout.starts_with(&prefix), "{stdout}");
    let next: f64 = stdout[prefix.len()..].trim().parse().unwrap();
    let truth = 50.0 + 40.0 * (120.0 * 2.0 * std::f64::consts::PI / 11.0).sin();
    assert!(
        (next - truth).abs() < naive,
        "next {next}, truth {truth}, naive rmse {naive}"
    );
    let json = fukai_ok(&["predict", "--checkpoint", s(&ckpt), "--json", s(&csv)]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["column"], "V");
    assert_eq!(v["forecast"].as_array().unwrap().len(), 1, "{v}");
}

#[test]
fn bad_ts_and_configs_fail_cleanly() {
    let dir = scratch("seq-bad");
    write_ts(&dir.join("ramps_TRAIN.ts"), 10, 1);
    let mut bad = std::fs::read_to_string(dir.join("ramps_TRAIN.ts")).unwrap();
    bad.push_str("1,2,3:4,5:up\n");
    std::fs::write(dir.join("ramps_TEST.ts"), bad).unwrap();
    let cfg = ts_config(&dir, &dir.join("ramps"));
    let out = dir.join("run");
    let r = fukai(&["train", "--config", s(&cfg), "--out", s(&out)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("ramps_TEST.ts") && err.contains("line 19") && err.contains("ragged"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "the run directory was created for bad data");
    // A forecasting config without its column.
    let cfg2 = dir.join("nocol.toml");
    std::fs::write(
        &cfg2,
        "name = \"x\"\n[data]\nformat = \"series-csv\"\npath = \"/nonexistent.csv\"\n[model]\nkind = \"lstm\"\nhidden = [4]\n[train]\nepochs = 1\nbatch_size = 4\nlr = 0.01\n",
    )
    .unwrap();
    let r = fukai(&["train", "--config", s(&cfg2)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("data.column"), "{err}");
}
