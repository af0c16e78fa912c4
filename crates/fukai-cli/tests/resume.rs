//! Resuming is exact: 2 epochs straight equal 1 epoch, a checkpoint, and 1 more epoch in a new
//! process, bit for bit (model tensors and optimizer state), with dropout and shuffling on so
//! the RNG state has to travel in the checkpoint too.

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
    fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--epochs",
        "1",
        "--out",
        s(&b),
    ]);
    let half = load_safetensors(b.join("checkpoint.safetensors")).unwrap();
    // 111 train rows (13 of each class's 50 held out), batch 8 -> 14 steps per epoch.
    let steps_per_epoch = 14.0;
    assert_eq!(half.metadata()["step"], "14");
    assert_eq!(half.metadata()["epoch"], "1");
    assert_eq!(
        half.tensor("optim.step").unwrap().item().unwrap(),
        steps_per_epoch
    );
    let out = fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--epochs",
        "2",
        "--out",
        s(&b),
        "--resume",
        s(&b.join("checkpoint.safetensors")),
    ]);
    assert!(
        out.contains("resumed from") && out.contains("at epoch 1, step 14"),
        "{out}"
    );
    assert!(
        !out.contains("epoch   1/2"),
        "the resumed run retrained epoch 1:\n{out}"
    );

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
    std::fs::remove_dir_all(&dir).unwrap();
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
