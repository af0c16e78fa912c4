//! `fukai train --steps N` on an image or table model stops after N optimizer steps, mid-epoch
//! if need be, and still writes that epoch's metrics and checkpoint (the benchmark suite's
//! smoke runs rely on it).

mod common;

use common::{fukai_ok, s, scratch, table_config, write_table};
use fukai::io::load_safetensors;

/// Trains with `--steps steps` (2 epochs configured) and returns (checkpoint step, checkpoint
/// epoch, metrics.jsonl lines).
fn run(dir: &std::path::Path, cfg: &std::path::Path, steps: usize) -> (String, String, usize) {
    let out = dir.join(format!("steps{steps}"));
    fukai_ok(&[
        "train",
        "--config",
        s(cfg),
        "--epochs",
        "2",
        "--steps",
        &steps.to_string(),
        "--out",
        s(&out),
    ]);
    let ck = load_safetensors(out.join("checkpoint.safetensors")).unwrap();
    let lines = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .count();
    (
        ck.metadata()["step"].clone(),
        ck.metadata()["epoch"].clone(),
        lines,
    )
}

#[test]
fn steps_limit_stops_image_and_table_runs() {
    let dir = scratch("max-steps");
    let data = dir.join("data.csv");
    write_table(&data, 150);
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, table_config("steps", &data, &[8], "")).unwrap();
    // 111 train rows, batch 8: 14 steps per epoch.
    assert_eq!(run(&dir, &cfg, 5), ("5".into(), "1".into(), 1));
    assert_eq!(run(&dir, &cfg, 17), ("17".into(), "2".into(), 2));
    assert_eq!(run(&dir, &cfg, 1000), ("28".into(), "2".into(), 2));
}
