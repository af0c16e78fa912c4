//! Data-parallel training under `mpirun` (built with `--features mpi`; needs Open MPI's
//! `mpirun`). N ranks train to the same bits as one process with the same micro-batch: model,
//! batch-norm running statistics and optimizer state, with dropout, shuffling and augmentation
//! on; a run resumes on another rank count; a killed rank ends the run within seconds.
#![cfg(feature = "mpi")]

mod common;

use common::{checkpoint_bits, expect_success, s, scratch};
use fukai::io::load_safetensors;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A small CNN with batch norm and dropout on the MNIST digits the repo ships.
const CONFIG: &str = r#"name = "mpi-test"
[data]
format = "mnist-csv"
path = "mnist.csv.gz"
crop_padding = 2
[model]
kind = "cnn"
channels = [8, 16]
batch_norm = true
hidden = [32]
dropout = 0.25
[train]
epochs = 1
batch_size = 32
lr = 0.002
schedule = "cosine"
"#;

fn shipped_mnist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist_5k.csv.gz")
}

fn setup(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    (dir, cfg)
}

/// `mpirun -np N fukai ARGS` (Open MPI; as root too, as in containers and CI), or the plain
/// binary for `ranks == 0`.
fn command(ranks: usize, args: &[&str]) -> Command {
    let exe = env!("CARGO_BIN_EXE_fukai");
    let mut c = if ranks == 0 {
        Command::new(exe)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["-np", &ranks.to_string(), "--oversubscribe", exe]);
        c
    };
    c.args(args)
        .env_remove("FUKAI_ASSETS")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // One thread per rank: the 2 cores of a CI machine hold 4 ranks without thrashing.
        .env("RAYON_NUM_THREADS", "1");
    c
}

fn run(ranks: usize, args: &[&str]) -> Output {
    command(ranks, args)
        .output()
        .expect("mpirun runs (install openmpi-bin)")
}

fn run_ok(ranks: usize, args: &[&str]) -> String {
    expect_success(&run(ranks, args), &format!("{ranks} ranks: fukai {args:?}"))
}

/// Every tensor of a run's checkpoint (model, buffers, optimizer state) as raw bits, by name.
fn tensors(run_dir: &Path) -> Vec<(String, Vec<u64>)> {
    checkpoint_bits(&run_dir.join("checkpoint.safetensors"))
}

/// `train --config CFG --data DATA --out OUT`, then `extra`.
fn train_args<'a>(cfg: &'a Path, data: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--config",
        s(cfg),
        "--data",
        s(data),
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    args
}

/// The runs the bitwise tests compare: micro-batches of 8, `steps` steps.
fn micro8(steps: &str) -> [&str; 4] {
    ["--micro-batch", "8", "--steps", steps]
}

#[test]
fn ranks_train_the_same_bits_as_one_process() {
    let (dir, cfg) = setup("bits");
    let data = shipped_mnist();
    let one = dir.join("one");
    run_ok(0, &train_args(&cfg, &data, &one, &micro8("6")));
    let reference = tensors(&one);
    assert!(
        reference.iter().any(|(n, _)| n.contains("running_mean")),
        "the model must have batch-norm buffers for this test to mean anything"
    );
    for ranks in [1, 2, 4] {
        let out = dir.join(format!("np{ranks}"));
        let stdout = run_ok(ranks, &train_args(&cfg, &data, &out, &micro8("6")));
        // Only rank 0 prints.
        assert_eq!(stdout.matches("fukai train:").count(), 1, "{stdout}");
        let got = tensors(&out);
        assert_eq!(got.len(), reference.len());
        for ((n, a), (m, b)) in reference.iter().zip(&got) {
            assert_eq!(n, m);
            assert!(a == b, "{ranks} ranks: tensor {n} differs from one process");
        }
    }
    // The comparison can fail: one batch of 32 (not four micro-batches of 8) differs.
    let whole = dir.join("whole");
    run_ok(0, &train_args(&cfg, &data, &whole, &["--steps", "6"]));
    assert_ne!(tensors(&whole), reference);
}

#[test]
fn a_run_resumes_on_another_number_of_ranks() {
    let (dir, cfg) = setup("resume");
    let data = shipped_mnist();
    let (straight, moved) = (dir.join("straight"), dir.join("moved"));
    run_ok(0, &train_args(&cfg, &data, &straight, &micro8("8")));
    // 3 steps on 4 ranks, 3 on 1 process, the rest on 2 ranks.
    run_ok(4, &train_args(&cfg, &data, &moved, &micro8("3")));
    let resume = |ranks: usize, steps: &str| {
        run_ok(ranks, &["train", "--resume", s(&moved), "--steps", steps])
    };
    resume(0, "5");
    resume(2, "8");
    assert!(tensors(&straight) == tensors(&moved), "resumed run differs");
}

#[test]
fn ranks_that_cannot_share_a_step_are_told_why() {
    let (dir, cfg) = setup("uneven");
    let data = shipped_mnist();
    let out = run(3, &train_args(&cfg, &data, &dir.join("r"), &[]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("3 ranks cannot share steps") && err.contains("--micro-batch"),
        "{err}"
    );
}

/// The PIDs of the processes whose environment says they are MPI rank `rank` of the run
/// writing to `out` (other tests run theirs at the same time).
fn rank_pids(rank: usize, out: &Path) -> Vec<u32> {
    let exe = env!("CARGO_BIN_EXE_fukai");
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let is_fukai = std::fs::read_link(e.path().join("exe"))
            .is_ok_and(|p| p == Path::new(exe) || p.ends_with("fukai"));
        let is_rank = env.split(|&b| b == 0).any(|kv| kv == want.as_bytes());
        // Only this test's run: its run directory is on the command line.
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let mine = cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == s(out).as_bytes());
        if is_fukai && is_rank && mine {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn a_killed_rank_ends_the_run_within_seconds_and_the_checkpoint_resumes() {
    let (dir, cfg) = setup("kill");
    let data = shipped_mnist();
    let out = dir.join("r");
    let mut child = command(
        2,
        &train_args(
            &cfg,
            &data,
            &out,
            &["--micro-batch", "8", "--epochs", "200"],
        ),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("mpirun runs");
    // Wait for the first epoch's checkpoint, then kill rank 1 as an outage would.
    let t0 = Instant::now();
    while !out.join("checkpoint.safetensors").exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pids = rank_pids(1, &out);
    assert_eq!(pids.len(), 1, "rank 1's process: {pids:?}");
    let killed = Instant::now();
    Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the run still hangs 30 s after rank 1 died"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let waited = killed.elapsed();
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success());
    assert!(waited < Duration::from_secs(10), "took {waited:?}");
    assert!(
        err.contains("rank 1"),
        "the error names the dead rank: {err}"
    );
    // The last checkpoint continues on one process.
    let before = tensors(&out);
    let step = load_safetensors(out.join("checkpoint.safetensors"))
        .unwrap()
        .metadata()["step"]
        .parse::<u64>()
        .unwrap();
    run_ok(
        0,
        &[
            "train",
            "--resume",
            s(&out),
            "--steps",
            &(step + 2).to_string(),
        ],
    );
    assert_ne!(tensors(&out), before, "the resumed run trained");
}

/// Tensors of a checkpoint as f64 values, by name.
fn values(run_dir: &Path) -> Vec<(String, Vec<f64>)> {
    let f = load_safetensors(run_dir.join("checkpoint.safetensors")).unwrap();
    let mut v: Vec<(String, Vec<f64>)> = f
        .tensors()
        .iter()
        .filter(|(n, _)| n.starts_with("model."))
        .map(|(n, t)| (n.clone(), t.to_vec_f64().unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn max_difference(a: &[(String, Vec<f64>)], b: &[(String, Vec<f64>)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|((_, x), (_, y))| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn synchronized_batch_norm_normalizes_over_all_ranks() {
    let (dir, _) = setup("syncbn");
    // No dropout: masks are drawn per micro-batch, and this compares different splits.
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, CONFIG.replace("dropout = 0.25", "dropout = 0.0")).unwrap();
    let data = shipped_mnist();
    let go = |ranks: usize, name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut args = train_args(&cfg, &data, &out, &["--steps", "3", "--batch-size", "16"]);
        args.extend_from_slice(extra);
        run_ok(ranks, &args);
        values(&out)
    };
    // One process, one batch of 16 per step: the statistics of all 16.
    let whole = go(0, "whole", &[]);
    // Two ranks with 8 each, synchronized: the statistics of the same 16.
    let synced = go(2, "synced", &["--micro-batch", "8", "--sync-batch-norm"]);
    // Two ranks with 8 each, per micro-batch statistics.
    let split = go(2, "split", &["--micro-batch", "8"]);
    let (near, far) = (
        max_difference(&whole, &synced),
        max_difference(&whole, &split),
    );
    assert!(
        near < 1e-5 && far > 100.0 * near,
        "synchronized: {near:e} from one batch of 16; per micro-batch: {far:e}"
    );
    // Running statistics were updated once per step, from all 16.
    let tracked = synced
        .iter()
        .find(|(n, _)| n.ends_with("num_batches_tracked"))
        .unwrap();
    assert_eq!(tracked.1, vec![3.0]);
}
