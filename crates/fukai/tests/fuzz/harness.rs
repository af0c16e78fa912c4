//! Runs one loader over mutations of its seed corpus for a time budget, and fails on a panic, an
//! error that does not name the file, a single allocation over [`MAX_ALLOC`] or peak memory
//! growing by more than [`MAX_RSS_GROWTH`]. A failure reports the seed and iteration and keeps
//! the input under `target/tmp/fuzz-failures/` for replay. A request over 4 GiB cannot be let
//! through to be reported later: the guard refuses it, which aborts the test binary after
//! printing the case and its input file (see `alloc_guard`).
//!
//! `FUKAI_FUZZ_SECONDS` sets the budget per target (default 2, CI 30); `FUKAI_FUZZ_SEED` picks
//! another deterministic sequence of inputs.

use super::alloc_guard::{set_case, take_largest};
use super::mutate::{mutate, Rng};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Inputs are a few KB; no honest decoding of one needs a buffer anywhere near this.
pub const MAX_ALLOC: usize = 256 << 20;
/// Peak resident memory may not grow by more than this over a target's run.
pub const MAX_RSS_GROWTH: u64 = 1 << 30;

/// What a target feeds and how.
pub struct Target<'a> {
    /// Folder under `tests/fuzz_corpus/`.
    pub corpus: &'a str,
    /// Where each mutated input is written before loading; cases cycle through these. A name
    /// ending in `.gz` gets the input gzipped (and sometimes its compressed bytes mutated).
    pub paths: Vec<PathBuf>,
    /// The loader under test; `Ok` or an `Err` naming the file are both fine.
    pub load: &'a dyn Fn(&Path) -> fukai::Result<()>,
}

/// A fresh folder for one target's inputs (under the build's temp dir, not the system's, so
/// a failure's files are easy to find).
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(name)
}

fn budget() -> Duration {
    let s = std::env::var("FUKAI_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(s.max(0.0))
}

fn base_seed() -> u64 {
    std::env::var("FUKAI_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// The corpus files in name order (so seeds replay the same way everywhere).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Peak resident set (VmHWM) in bytes; None off Linux.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Fuzzes one target; returns the number of cases run.
pub fn run(t: Target) -> u64 {
    let seeds = seeds(t.corpus);
    let name_hash = t.corpus.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let base = base_seed();
    let start = Instant::now();
    let budget = budget();
    let rss0 = peak_rss();
    let mut iter = 0u64;
    // Every seed unmutated first, and each must load: a corpus of broken files would only ever
    // exercise the first check of a loader.
    while iter < seeds.len() as u64 || start.elapsed() < budget {
        let mut rng = Rng::new(base ^ name_hash ^ iter.wrapping_mul(0x9E37_79B9));
        let pristine = iter < seeds.len() as u64;
        let pick = if pristine {
            iter as usize
        } else {
            rng.below(seeds.len())
        };
        let path = &t.paths[iter as usize % t.paths.len()];
        let mut bytes = if pristine {
            seeds[pick].clone()
        } else {
            let other = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, &seeds[pick], other)
        };
        if path.extension().is_some_and(|e| e == "gz") {
            bytes = gzip(&bytes);
            if !pristine && rng.chance(4) {
                bytes = mutate(&mut rng, &bytes, &[]);
            }
        }
        std::fs::write(path, &bytes).unwrap();
        set_case(&format!(
            "fuzz target {:?}, FUKAI_FUZZ_SEED={base}, iteration {iter}: input {}",
            t.corpus,
            path.display()
        ));
        take_largest();
        let result = catch_unwind(AssertUnwindSafe(|| (t.load)(path)));
        let largest = take_largest();
        let mut problem = match result {
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Some(format!("the loader panicked: {msg}"))
            }
            Ok(Err(e)) if pristine => Some(format!("a corpus seed does not load: {e}")),
            Ok(Err(e)) => {
                let name = path.file_name().unwrap().to_string_lossy();
                (!e.to_string().contains(name.as_ref()))
                    .then(|| format!("the error does not name the file {name:?}: {e}"))
            }
            Ok(Ok(())) => None,
        };
        if problem.is_none() && largest > MAX_ALLOC {
            problem = Some(format!(
                "one allocation of {largest} bytes for a {}-byte input",
                bytes.len()
            ));
        }
        if problem.is_none() && iter.is_multiple_of(64) {
            if let (Some(a), Some(b)) = (rss0, peak_rss()) {
                if b > a + MAX_RSS_GROWTH {
                    problem = Some(format!("peak RSS grew from {a} to {b} bytes"));
                }
            }
        }
        if let Some(why) = problem {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("bin");
            let keep = dir.join(format!("{}-seed{base}-iter{iter}.{ext}", t.corpus));
            std::fs::write(&keep, &bytes).unwrap();
            panic!(
                "fuzz target {:?}, FUKAI_FUZZ_SEED={base}, iteration {iter} (corpus file #{pick}): \
                 {why}\ninput kept at {} (load it as {})",
                t.corpus,
                keep.display(),
                path.display()
            );
        }
        iter += 1;
    }
    eprintln!(
        "fuzz target {:?}: {iter} cases in {:.1} s",
        t.corpus,
        start.elapsed().as_secs_f64()
    );
    iter
}
