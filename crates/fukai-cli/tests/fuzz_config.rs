//! Mutation fuzzing of the TOML run config (issue 16): mutations of the configs in
//! `tests/fuzz_corpus/config/` go through `fukai train --config` under the memory cap, with
//! `--data` pointing nowhere so each run stops after parsing and validating. Every run must
//! fail cleanly (see `common::limited::unclean`), naming the config file, a `section.field` or
//! the missing data. `FUKAI_FUZZ_SECONDS` (default 2) and `FUKAI_FUZZ_SEED` as for the
//! library's loader targets.

mod common;
#[path = "../../fukai/tests/fuzz/mutate.rs"]
mod mutate;

use common::limited::{fukai_limited, unclean};
use common::{s, scratch};
use mutate::{mutate, Rng};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// Why this run's stderr is not an acceptable error, if it is not.
fn unnamed(stderr: &str, pristine: bool) -> Option<String> {
    let missing_data = stderr.contains("no-such-data");
    if pristine && !missing_data {
        return Some("a corpus seed did not get as far as the data".into());
    }
    let names_field = ["data.", "model.", "train.", "--data"]
        .iter()
        .any(|f| stderr.contains(f));
    if missing_data || stderr.contains("fuzz.toml") || names_field {
        None
    } else {
        Some("the error names neither the config file, a field nor the data".into())
    }
}

#[test]
fn fuzz_config_toml() {
    let seeds = seeds();
    let dir = scratch("fuzz-config");
    let cfg = dir.join("fuzz.toml");
    let nowhere = dir.join("no-such-data");
    let out_dir = dir.join("run");
    let base: u64 = env_or("FUKAI_FUZZ_SEED", 16);
    let budget = Duration::from_secs_f64(env_or("FUKAI_FUZZ_SECONDS", 2.0f64).max(0.0));
    let start = Instant::now();
    let mut iter = 0u64;
    while iter < seeds.len() as u64 || start.elapsed() < budget {
        let mut rng = Rng::new(base ^ 0x70_6d_6c ^ iter.wrapping_mul(0x9E37_79B9));
        let pristine = iter < seeds.len() as u64;
        let (pick, bytes) = if pristine {
            (iter as usize, seeds[iter as usize].clone())
        } else {
            let pick = rng.below(seeds.len());
            let other = &seeds[rng.below(seeds.len())];
            (pick, mutate(&mut rng, &seeds[pick], other))
        };
        std::fs::write(&cfg, &bytes).unwrap();
        let args = [
            "train",
            "--config",
            s(&cfg),
            "--data",
            s(&nowhere),
            "--out",
            s(&out_dir),
            "--steps",
            "1",
        ];
        let out = fukai_limited(&args, 60);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(why) = unclean(&out).or_else(|| unnamed(&stderr, pristine)) {
            let keep = dir.join(format!("failure-seed{base}-iter{iter}.toml"));
            std::fs::write(&keep, &bytes).unwrap();
            panic!(
                "config fuzz, FUKAI_FUZZ_SEED={base}, iteration {iter} (corpus file #{pick}): \
                 {why}\ninput kept at {}\nstderr:\n{stderr}",
                keep.display()
            );
        }
        iter += 1;
    }
    eprintln!(
        "config fuzz: {iter} runs in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
