//! Running `fukai` the way a hostile file would meet it in production: with the address space
//! capped (`ulimit -v`), so a buffer sized from an unchecked header fails the run instead of
//! swapping the machine, and with a wall-clock limit, so a hang fails the test instead of CI.

use std::process::{Command, Output};

/// The cap of issue 16: 4,000,000 KiB (about 3.8 GiB) of address space.
pub const ULIMIT_KB: u64 = 4_000_000;

/// Runs `fukai ARGS` under `ulimit -v ULIMIT_KB` and a `timeout_s` limit (exit 124 when hit).
/// A signal that ends the run shows as exit 128 + signal, as `timeout` passes it on.
pub fn fukai_limited(args: &[&str], timeout_s: u32) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -v {ULIMIT_KB} && exec timeout -k 5 {timeout_s} \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_fukai"))
        .args(args)
        .env_remove("FUKAI_ASSETS")
        .output()
        .expect("bash runs")
}

/// Why `out` is not a clean failure (non-zero exit, no signal, no panic, no timeout), if it is
/// not one.
pub fn unclean(out: &Output) -> Option<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        _ if out.status.success() => Some("it succeeded".into()),
        None => Some(format!("killed by a signal ({})", out.status)),
        Some(101) => Some("a Rust panic (exit 101)".into()),
        Some(124) => Some("still running at the time limit".into()),
        Some(c) if c > 128 => Some(format!(
            "killed by signal {} (6 = abort, e.g. a failed allocation)",
            c - 128
        )),
        _ if stderr.contains("panicked") => Some("a panic message on stderr".into()),
        _ => None,
    }
}
