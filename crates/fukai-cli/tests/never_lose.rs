//! A run is never lost, and a resumed run is the run: `kill -9` at random moments, `--steps`
//! stops mid-epoch, then `--resume` to the end give final weights and optimizer state bit for
//! bit equal to one uninterrupted run, for table, image (with augmentation), forecasting and
//! language-model runs.

mod common;

use common::{checkpoint_bits, fukai, fukai_ok, s, scratch, table_config, write_table};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every model and optimizer tensor of a checkpoint, as raw bits, by name.
fn state_bits(ckpt: &Path) -> Vec<(String, Vec<u64>)> {
    let out = checkpoint_bits(ckpt);
    assert!(
        out.iter().any(|(n, _)| n.starts_with("optim.")),
        "no optimizer state in {}",
        ckpt.display()
    );
    out
}

fn assert_same_run(a: &Path, b: &Path) {
    let (x, y) = (
        state_bits(&a.join("checkpoint.safetensors")),
        state_bits(&b.join("checkpoint.safetensors")),
    );
    assert_eq!(x.len(), y.len());
    for ((n, u), (m, v)) in x.iter().zip(&y) {
        assert_eq!(n, m);
        assert!(
            u == v,
            "tensor {n} differs between the uninterrupted run and the resumed one"
        );
    }
    let summary = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap()
    };
    let (sa, sb) = (summary(a), summary(b));
    for k in [
        "test_loss",
        "test_accuracy",
        "test_rmse",
        "val_loss",
        "steps",
        "best_epoch",
    ] {
        assert_eq!(sa[k], sb[k], "summary field {k}");
    }
}

/// `--steps` at each of `stops` (mid-epoch and at an epoch's end), `--resume` after each, must
/// end where the uninterrupted run ends.
fn stop_and_resume(dir: &Path, train_args: &[&str], stops: &[u64]) {
    let (a, b) = (dir.join("A"), dir.join("B"));
    let mut args = vec!["train"];
    args.extend_from_slice(train_args);
    fukai_ok(&[&args[..], &["--out", s(&a)]].concat());
    let first = stops[0].to_string();
    fukai_ok(&[&args[..], &["--out", s(&b), "--steps", &first]].concat());
    for st in &stops[1..] {
        let out = fukai_ok(&["train", "--resume", s(&b), "--steps", &st.to_string()]);
        assert!(out.contains("stopped after step"), "{out}");
    }
    fukai_ok(&["train", "--resume", s(&b)]);
    assert_same_run(&a, &b);
}

#[test]
fn steps_then_resume_is_bit_exact_for_a_table_mlp() {
    let dir = scratch("never-lose-table");
    let data = dir.join("t.csv");
    write_table(&data, 300);
    let cfg = dir.join("run.toml");
    // Accumulation, clipping, dropout, a cosine schedule: every piece of state must travel.
    let extra = "accumulate = 2\nclip_grad_norm = 1.0\nschedule = \"cosine\"\nepochs = 3";
    std::fs::write(
        &cfg,
        table_config("nl", &data, &[16, 12], "")
            .replace("epochs = 2\n", "")
            .replace("schedule = \"constant\"\n", "")
            + extra,
    )
    .unwrap();
    // 300 rows: 225 train, 203 after validation, batch 8: 26 batches = 13 steps per epoch.
    stop_and_resume(&dir, &["--config", s(&cfg)], &[5, 13, 20]);
}

#[test]
fn steps_then_resume_is_bit_exact_for_an_augmented_cnn() {
    let dir = scratch("never-lose-cnn");
    let cfg = dir.join("cnn.toml");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist_5k.csv.gz");
    std::fs::write(
        &cfg,
        format!(
            "name = \"cnn\"\n[data]\nformat = \"mnist-csv\"\npath = \"{}\"\ntest_fraction = 0.8\ncrop_padding = 2\n\
             [model]\nkind = \"cnn\"\nchannels = [4]\nhidden = [16]\ndropout = 0.25\nbatch_norm = true\n\
             [train]\nepochs = 2\nbatch_size = 32\nlr = 0.002\nschedule = \"onecycle\"\nseed = 3\n",
            shipped.display()
        ),
    )
    .unwrap();
    stop_and_resume(&dir, &["--config", s(&cfg)], &[7, 29]);
}

#[test]
fn steps_then_resume_is_bit_exact_for_a_forecaster_and_a_gpt() {
    let dir = scratch("never-lose-seq");
    let series = dir.join("s.csv");
    let mut text = String::from("year,value\n");
    for i in 0..200 {
        text += &format!(
            "{i},{:.3}\n",
            (i as f64 * 0.3).sin() * 10.0 + (i % 7) as f64
        );
    }
    std::fs::write(&series, text).unwrap();
    let cfg = dir.join("f.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"f\"\n[data]\nformat = \"series-csv\"\npath = \"{}\"\ncolumn = \"value\"\nlookback = 10\nhorizon = 2\n\
             [model]\nkind = \"gru\"\nhidden = [8, 8]\ndropout = 0.2\n[train]\nepochs = 3\nbatch_size = 16\nlr = 0.01\n",
            series.display()
        ),
    )
    .unwrap();
    stop_and_resume(&dir.join("f"), &["--config", s(&cfg)], &[4, 9]);

    let corpus = dir.join("c.txt");
    std::fs::write(
        &corpus,
        "to be or not to be, that is the question. ".repeat(60),
    )
    .unwrap();
    let gpt = dir.join("g.toml");
    std::fs::write(
        &gpt,
        format!(
            "name = \"g\"\n[data]\nformat = \"text\"\npath = \"{}\"\ntest_fraction = 0.1\nval_fraction = 0.1\neval_windows = 8\n\
             [model]\nkind = \"gpt\"\n[model.gpt]\nlayers = 1\nheads = 2\nwidth = 16\ncontext = 8\n\
             [train]\nepochs = 2\nsteps_per_epoch = 6\nbatch_size = 4\nlr = 0.003\noptimizer = \"adamw\"\n\
             weight_decay = 0.1\ndecay_matrices_only = true\nschedule = \"cosine\"\nwarmup_steps = 2\n",
            corpus.display()
        ),
    )
    .unwrap();
    stop_and_resume(&dir.join("g"), &["--config", s(&gpt)], &[3, 6, 8]);
}

/// The run directory's newest checkpoint, if one was written yet.
fn has_checkpoint(dir: &Path) -> bool {
    dir.join("checkpoint.safetensors").exists()
}

#[test]
fn kill_9_at_random_moments_then_resume_is_bit_exact() {
    let dir = scratch("never-lose-kill");
    let data = dir.join("t.csv");
    write_table(&data, 6000);
    let cfg = dir.join("run.toml");
    // A checkpoint every 3 steps: kills land between, during and right after writes.
    let extra = "checkpoint_steps = 3\nkeep_checkpoints = 2\nschedule = \"cosine\"\nepochs = 3";
    std::fs::write(
        &cfg,
        table_config("kill", &data, &[64, 64], "")
            .replace("epochs = 2\n", "")
            .replace("schedule = \"constant\"\n", "")
            + extra,
    )
    .unwrap();
    let (a, b) = (dir.join("A"), dir.join("B"));
    let started = Instant::now();
    fukai_ok(&["train", "--config", s(&cfg), "--out", s(&a)]);
    let full = started.elapsed();

    // Random moments, different every run; printed so a failure can be replayed.
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // The kill must land while the run is alive. A faster machine (or a warm cache) can finish
    // the run before the drawn moment; then the run starts over and the moments shrink.
    let mut span = full.as_millis().max(200) as u64;
    let mut kills = 0;
    for round in 0..12 {
        let args: Vec<String> = if has_checkpoint(&b) {
            vec!["train".into(), "--resume".into(), s(&b).into()]
        } else {
            vec![
                "train".into(),
                "--config".into(),
                s(&cfg).into(),
                "--out".into(),
                s(&b).into(),
                "--force".into(),
            ]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_fukai"))
            .args(&args)
            .env_remove("FUKAI_ASSETS")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait = 30 + next() % (span * 2 / 3);
        println!("round {round}: kill -9 after {wait} ms ({args:?})");
        std::thread::sleep(Duration::from_millis(wait));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL on Unix: no cleanup runs.
            kills += 1;
        }
        child.wait().unwrap();
        if b.join("summary.json").exists() {
            if kills > 0 {
                break;
            }
            std::fs::remove_dir_all(&b).unwrap();
            span = (span / 2).max(60);
        }
    }
    println!("{kills} kills; full run {full:?}");
    assert!(
        kills >= 1,
        "the run always finished before the kill: nothing was tested"
    );
    if !b.join("summary.json").exists() {
        let out = fukai(&["train", "--resume", s(&b)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_same_run(&a, &b);
    // The run directory holds whole files only: no temporary leftovers from killed writes
    // beyond the checkpoints kept.
    let kept = std::fs::read_dir(b.join("checkpoints")).unwrap().count();
    assert!(
        kept <= 3,
        "{kept} step checkpoints kept, expected at most keep_checkpoints + 1"
    );
}

#[test]
fn an_existing_run_is_never_overwritten_unasked() {
    let dir = scratch("never-lose-out");
    let data = dir.join("t.csv");
    write_table(&data, 60);
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, table_config("out", &data, &[8], "")).unwrap();
    let run = dir.join("run");
    fukai_ok(&["train", "--config", s(&cfg), "--out", s(&run)]);
    let before = std::fs::read(run.join("summary.json")).unwrap();
    let again = fukai(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&run),
        "--seed",
        "5",
    ]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already holds a run") && err.contains("--force") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("summary.json")).unwrap(), before);
    fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&run),
        "--seed",
        "5",
        "--force",
    ]);
    // An unwritable --out fails before any training.
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let bad = fukai(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&blocker.join("run")),
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("file") && !String::from_utf8_lossy(&bad.stdout).contains("epoch"),
        "{err}"
    );
}
