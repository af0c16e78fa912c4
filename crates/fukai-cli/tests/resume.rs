//! Resuming is exact: 2 epochs straight equal 1 epoch (`--steps` at the epoch's end) and
//! `fukai train --resume RUN_DIR` for the rest in a new process, bit for bit (model tensors and
//! optimizer state), with dropout and shuffling on so the RNG state has to travel in the
//! checkpoint too. A resume that would change the run's config is refused, naming the fields,
//! and leaves the run directory as it was.

mod common;

use common::{fukai_ok, s, scratch, table_config, write_table};
use fukai::io::load_safetensors;
use fukai::Tensor;

/// The raw bytes of a tensor, for a bitwise comparison.
fn bits(t: &Tensor) -> Vec<u64> {
    t.to_vec_f64()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn resume_is_bit_exact() {
    let dir = scratch("resume");
    let data = dir.join("data.csv");
    write_table(&data, 150);
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, table_config("resume", &data, &[16, 12], "")).unwrap();
    let (a, b) = (dir.join("A"), dir.join("B"));

    fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--epochs",
        "2",
        "--out",
        s(&a),
    ]);
    // B: the same run, stopped after its first epoch (99 train rows after 13 per class are
    // held out for testing and 12 for validation, batch 8: 13 steps per epoch).
    let steps_per_epoch = 13.0;
    fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--epochs",
        "2",
        "--steps",
        "13",
        "--out",
        s(&b),
    ]);
    let half = load_safetensors(b.join("checkpoint.safetensors")).unwrap();
    assert_eq!(half.metadata()["step"], "13");
    assert_eq!(half.metadata()["epoch"], "1");
    assert_eq!(
        half.tensor("optim.step").unwrap().item().unwrap(),
        steps_per_epoch
    );
    // Resumed from the run directory alone: the config and data path come from the checkpoint.
    let out = fukai_ok(&["train", "--resume", s(&b)]);
    assert!(
        out.contains("resuming at epoch 2, batch 0, step 13"),
        "{out}"
    );
    assert!(
        !out.contains("epoch   1/2"),
        "the resumed run retrained epoch 1:\n{out}"
    );
    assert!(out.contains("epoch   2/2"), "{out}");

    let fa = load_safetensors(a.join("checkpoint.safetensors")).unwrap();
    let fb = load_safetensors(b.join("checkpoint.safetensors")).unwrap();
    let names = |f: &fukai::io::SafetensorsFile| {
        f.tensors()
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&fa), names(&fb));
    let model: Vec<String> = names(&fa)
        .into_iter()
        .filter(|n| n.starts_with("model."))
        .collect();
    assert_eq!(model.len(), 6, "3 linear layers: {model:?}");
    for (name, ta) in fa.tensors() {
        let tb = fb.tensor(name).unwrap();
        assert_eq!(ta.shape(), tb.shape(), "{name}");
        assert!(
            bits(ta) == bits(tb),
            "{name} differs between the straight and the resumed run"
        );
    }
    // The optimizer step (Adam's bias correction) continued from the checkpoint.
    assert_eq!(
        fb.tensor("optim.step").unwrap().item().unwrap(),
        2.0 * steps_per_epoch
    );
    for key in ["step", "epoch", "rng_seed", "rng_offset"] {
        assert_eq!(fa.metadata()[key], fb.metadata()[key], "metadata {key}");
    }
    assert_eq!(fb.metadata()["epoch"], "2");
    // The resumed run's history holds both epochs, with the same numbers as the straight run.
    let lines = |d: &std::path::Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    let strip = |t: String| -> Vec<serde_json::Value> {
        t.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                for k in ["seconds", "samples_per_second"] {
                    v.as_object_mut().unwrap().remove(k);
                }
                v
            })
            .collect()
    };
    let (ha, hb) = (strip(lines(&a)), strip(lines(&b)));
    assert_eq!(ha.len(), 2);
    assert_eq!(ha, hb);
    // So do the summaries: the test set, the best epoch and the step count.
    let summary = |d: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap()
    };
    let (sa, sb) = (summary(&a), summary(&b));
    for key in [
        "test_loss",
        "test_accuracy",
        "confusion",
        "val_loss",
        "best_epoch",
        "epochs",
        "steps",
        "stop",
    ] {
        assert!(!sa[key].is_null(), "summary.json lacks {key}: {sa}");
        assert_eq!(sa[key], sb[key], "summary {key}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every file of a run directory, with its bytes.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn resume_refuses_another_config() {
    let dir = scratch("resume-refuse");
    let data = dir.join("data.csv");
    write_table(&data, 90);
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, table_config("refuse", &data, &[8], "")).unwrap();
    let run = dir.join("run");
    fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--steps",
        "3",
        "--out",
        s(&run),
    ]);
    let before = snapshot(&run);
    let ckpt = run.join("checkpoint.safetensors");

    // An override that changes the stored training config: refused by name and value.
    let err = fails(&["train", "--resume", s(&run), "--epochs", "3"]);
    assert!(
        err.contains(s(&ckpt)) && err.contains("train.epochs: checkpoint 2, now 3"),
        "{err}"
    );
    let err = fails(&["train", "--resume", s(&run), "--lr", "0.5"]);
    assert!(err.contains("train.lr: checkpoint 0.01, now 0.5"), "{err}");
    // A config file other than the run's: every differing field is listed.
    let other = dir.join("other.toml");
    std::fs::write(
        &other,
        table_config("refuse", &data, &[10], "").replace("batch_size = 8", "batch_size = 4"),
    )
    .unwrap();
    let err = fails(&["train", "--resume", s(&run), "--config", s(&other)]);
    assert!(
        err.contains("model.hidden") && err.contains("train.batch_size"),
        "{err}"
    );
    assert!(
        !err.contains("model.dropout"),
        "an equal field listed: {err}"
    );
    let err = fails(&["train", "--resume", s(&run), "--preset", "iris-mlp"]);
    assert!(err.contains("name") && err.contains("iris-mlp"), "{err}");
    // A folder without a checkpoint, and --out with --resume.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = fails(&["train", "--resume", s(&empty)]);
    assert!(err.contains("checkpoint.safetensors"), "{err}");
    fails(&["train", "--resume", s(&run), "--out", s(&empty)]);
    assert!(
        snapshot(&run) == before,
        "a refused resume changed the run directory"
    );
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // The run's own config is accepted, and the run finishes where a straight one would.
    let out = fukai_ok(&["train", "--resume", s(&run), "--config", s(&cfg)]);
    assert!(
        out.contains("resuming at epoch 1, batch 3, step 3"),
        "{out}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["epochs"], 2, "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs fukai expecting a clean failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = common::fukai(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "fukai {args:?} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn same_config_same_result() {
    // Two straight runs agree bit for bit (the premise of the resume test), whatever the
    // number of worker threads.
    let dir = scratch("repeat");
    let data = dir.join("data.csv");
    write_table(&data, 90);
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, table_config("repeat", &data, &[8], "")).unwrap();
    let (a, b) = (dir.join("A"), dir.join("B"));
    fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--epochs",
        "1",
        "--out",
        s(&a),
    ]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fukai"))
        .args([
            "train",
            "--config",
            s(&cfg),
            "--epochs",
            "1",
            "--out",
            s(&b),
        ])
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("FUKAI_ASSETS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fa = load_safetensors(a.join("checkpoint.safetensors")).unwrap();
    let fb = load_safetensors(b.join("checkpoint.safetensors")).unwrap();
    for (name, ta) in fa.tensors() {
        assert!(bits(ta) == bits(fb.tensor(name).unwrap()), "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
