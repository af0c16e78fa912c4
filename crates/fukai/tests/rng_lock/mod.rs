//! The default generator is one per process and the test harness runs a file's tests on
//! parallel threads: a test that seeds it and then draws holds this lock, so that no other test
//! of the file draws in between (which made seeded results differ from run to run).
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

static DEFAULT_RNG: Mutex<()> = Mutex::new(());

/// Holds the default generator for this test; a failed test's poison is ignored.
pub fn hold() -> MutexGuard<'static, ()> {
    DEFAULT_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`hold`], then `fukai::manual_seed(seed)`.
pub fn seeded(seed: u64) -> MutexGuard<'static, ()> {
    let guard = hold();
    fukai::manual_seed(seed);
    guard
}
