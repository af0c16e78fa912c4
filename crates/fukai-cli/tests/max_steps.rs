//! `fukai train --steps N` stops the session after N optimizer steps of the run, mid-epoch if
//! need be, with a checkpoint at that step (the benchmark suite's smoke runs rely on it); the
//! schedule still spans the configured epochs, so only finished epochs reach metrics.jsonl and
//! only a finished run writes summary.json.

mod common;

use common::{fukai_ok, s, scratch, table_config, write_table};
use fukai::io::load_safetensors;

/// What a `--steps` session left behind.
#[derive(Debug, PartialEq)]
struct Left {
    step: String,
    epoch: String,
    metrics_lines: usize,
    summary_steps: Option<u64>,
}

/// Trains with `--steps steps` (2 epochs configured) into a fresh folder.
fn run(dir: &std::path::Path, cfg: &std::path::Path, steps: usize) -> (Left, String) {
    let out = dir.join(format!("steps{steps}"));
    let stdout = fukai_ok(&[
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
    let metrics_lines = std::fs::read_to_string(out.join("metrics.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0);
    let summary_steps = std::fs::read_to_string(out.join("summary.json"))
        .ok()
        .map(|t| {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            v["steps"].as_u64().expect("summary.json has steps")
        });
    let left = Left {
        step: ck.metadata()["step"].clone(),
        epoch: ck.metadata()["epoch"].clone(),
        metrics_lines,
        summary_steps,
    };
    (left, stdout)
}

fn left(step: &str, epoch: &str, metrics_lines: usize, summary_steps: Option<u64>) -> Left {
    Left {
        step: step.into(),
        epoch: epoch.into(),
        metrics_lines,
        summary_steps,
    }
}

#[test]
fn steps_limit_stops_image_and_table_runs() {
    let dir = scratch("max-steps");
    let data = dir.join("data.csv");
    write_table(&data, 150);
    let cfg = dir.join("run.toml");
    // A step schedule (the lr halves every third of the run) shows whether the limit shortened it.
    let text = table_config("steps", &data, &[8], "").replace("\"constant\"", "\"step\"");
    std::fs::write(&cfg, text).unwrap();
    // 111 train rows (13 of each class's 50 held out for testing), 12 of them carved off for
    // validation: 99 rows in batches of 8 are 13 steps per epoch.
    let (l, stdout) = run(&dir, &cfg, 5);
    assert_eq!(l, left("5", "0", 0, None));
    assert!(
        stdout.contains("stopped after step 5") && stdout.contains("--resume"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("test loss"),
        "tested a stopped run:\n{stdout}"
    );
    // A limit on an epoch's last step still ends that epoch (validation, a metrics line)...
    assert_eq!(run(&dir, &cfg, 13).0, left("13", "1", 1, None));
    assert_eq!(run(&dir, &cfg, 17).0, left("17", "1", 1, None));
    // ...and one on the run's last step finishes the run: tested, summarized.
    let (l, stdout) = run(&dir, &cfg, 26);
    assert_eq!(l, left("26", "2", 2, Some(26)));
    assert!(!stdout.contains("stopped after"), "{stdout}");
    // A limit past the run's end: the run finishes (2 x 13 steps) and is tested.
    let (l, stdout) = run(&dir, &cfg, 1000);
    assert_eq!(l, left("26", "2", 2, Some(26)));
    assert!(stdout.contains("test loss"), "{stdout}");
    // The limit does not shorten the schedule: the step-limited run's first epoch (lr
    // included) is the finished run's, number for number.
    let first = |d: &str| -> serde_json::Value {
        let t = std::fs::read_to_string(dir.join(d).join("metrics.jsonl")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(t.lines().next().unwrap()).unwrap();
        for k in ["seconds", "samples_per_second"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    let (a, b) = (first("steps17"), first("steps1000"));
    assert!(
        a["lr"].as_f64().unwrap() < 0.01,
        "the lr never decayed: {a}"
    );
    assert_eq!(a, b);
    std::fs::remove_dir_all(&dir).unwrap();
}
