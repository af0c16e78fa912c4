//! One training epoch of the `fashion-mlp` and `fashion-cnn` presets, run by the real CLI:
//! `fukai train --preset fashion-mlp --epochs 1 --out <tmp>` in a child process (the `fukai`
//! binary next to this one, or `$FUKAI_CLI`), so the bench times exactly what users run
//! (model, init, optimizer, schedule, batch size, augmentation, label smoothing, the data
//! loader and its prefetch thread). The time is the epoch's training pass from the run's
//! `metrics.jsonl`, scaled to the 60,000 training images the twins train on (the CLI holds
//! 10% of them out for validation): 60,000 / `samples_per_second`, without reading the IDX
//! files and without the evaluations that follow. The PyTorch side runs the twins in `bench/twins/`, timed the same
//! way. Goals: MLP epoch ≤ 0.9×, CNN epoch ≤ 0.8× PyTorch's, peak RSS ≤ PyTorch's.

use crate::harness::{Line, Stats};
use fukai::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workload names and the presets they run.
pub const WORKLOADS: &[(&str, &str)] = &[
    ("fashion_mlp", "fashion-mlp"),
    ("fashion_cnn", "fashion-cnn"),
];

fn err(what: &str, msg: String) -> Error {
    Error::Format {
        file: what.into(),
        msg,
    }
}

/// The `fukai` CLI binary: `$FUKAI_CLI`, else the one built next to fukai-bench.
fn cli_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("FUKAI_CLI") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| err("fukai-bench", e.to_string()))?;
    let p = exe.with_file_name(format!("fukai{}", std::env::consts::EXE_SUFFIX));
    if !p.exists() {
        return Err(err(
            &p.display().to_string(),
            "the fukai CLI is missing: `cargo build --release -p fukai-cli` (or set FUKAI_CLI)"
                .into(),
        ));
    }
    Ok(p)
}

/// Per-epoch training seconds for 60,000 images (and the last epoch's loss) from a run's
/// metrics.jsonl.
fn read_metrics(path: &Path) -> Result<(Vec<f64>, f64)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let (mut seconds, mut loss) = (Vec::new(), f64::NAN);
    for (n, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| err(&format!("{}:{}", path.display(), n + 1), e.to_string()))?;
        let field = |k: &str| {
            v[k].as_f64().ok_or_else(|| {
                err(
                    &format!("{}:{}", path.display(), n + 1),
                    format!("expected a number in field {k:?}, found {}", v[k]),
                )
            })
        };
        // Per 60,000 images, whatever share the run held out for validation.
        seconds.push(60_000.0 / field("samples_per_second")?);
        loss = field("train_loss")?;
    }
    if seconds.is_empty() {
        return Err(err(
            &path.display().to_string(),
            "no epoch was recorded".into(),
        ));
    }
    Ok((seconds, loss))
}

/// Trains `epochs` epochs of the workload's preset (or stops after `max_steps` optimizer
/// steps, for smoke runs) and prints the median epoch time.
pub fn run(workload: &str, threads: usize, epochs: usize, max_steps: Option<usize>) -> Result<()> {
    let preset = WORKLOADS
        .iter()
        .find(|(w, _)| *w == workload)
        .map(|(_, p)| *p)
        .ok_or_else(|| err("fukai-bench", format!("unknown workload {workload:?}")))?;
    let data = std::env::var_os("FUKAI_ASSETS").map(|a| PathBuf::from(a).join("fashion-mnist"));
    let Some(data) = data.filter(|d| d.is_dir()) else {
        Line::new(workload, "fukai", threads)
            .str(
                "skipped",
                "no data: set FUKAI_ASSETS (the folder with fashion-mnist)",
            )
            .print();
        return Ok(());
    };
    let out = std::env::temp_dir().join(format!("fukai-bench-{}-{workload}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let cli = cli_path()?;
    let mut cmd = Command::new(&cli);
    cmd.arg("train");
    match max_steps {
        // Smoke runs: the preset with epochs of `s` steps, so each still ends with its line in
        // metrics.jsonl (`--steps` would end the session mid-epoch, before that line).
        Some(s) => {
            let shown = Command::new(&cli)
                .args(["presets", "show", preset])
                .output()
                .map_err(|e| err("fukai presets show", e.to_string()))?;
            let toml = String::from_utf8_lossy(&shown.stdout)
                .replace("[train]\n", &format!("[train]\nsteps_per_epoch = {s}\n"));
            let cfg = std::env::temp_dir().join(format!(
                "fukai-bench-{}-{workload}.toml",
                std::process::id()
            ));
            std::fs::write(&cfg, toml).map_err(|e| err("fukai-bench", e.to_string()))?;
            cmd.arg("--config").arg(cfg);
        }
        None => {
            cmd.args(["--preset", preset]);
        }
    }
    cmd.arg("--epochs")
        .arg(epochs.to_string())
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .env("RAYON_NUM_THREADS", threads.to_string());
    let output = cmd
        .output()
        .map_err(|e| err("fukai train", e.to_string()))?;
    let metrics = read_metrics(&out.join("metrics.jsonl"));
    let _ = std::fs::remove_dir_all(&out);
    if !output.status.success() {
        return Err(err(
            "fukai train",
            format!(
                "exited with {}:\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ));
    }
    let (seconds, loss) = metrics?;
    let st = Stats {
        samples: seconds,
        iters: 1,
    };
    let mut line = Line::new(workload, "fukai", threads)
        .stats(&st)
        .num("ms_per_epoch", st.median() * 1e3)
        .num("last_train_loss", loss);
    if let Some(s) = max_steps {
        line = line.int("max_steps", s);
    }
    line.print();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_and_bad_lines_named() {
        let dir = std::env::temp_dir().join(format!("fukai-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("metrics.jsonl");
        std::fs::write(
            &p,
            "{\"epoch\":1,\"train_loss\":0.9,\"samples_per_second\":24000}\n{\"epoch\":2,\"train_loss\":0.5,\"samples_per_second\":30000}\n",
        )
        .unwrap();
        assert_eq!(read_metrics(&p).unwrap(), (vec![2.5, 2.0], 0.5));
        std::fs::write(&p, "{\"epoch\":1,\"train_loss\":0.9}\n").unwrap();
        let e = read_metrics(&p).unwrap_err().to_string();
        assert!(
            e.contains("metrics.jsonl:1") && e.contains("samples_per_second"),
            "{e}"
        );
        std::fs::write(&p, "").unwrap();
        assert!(read_metrics(&p).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
