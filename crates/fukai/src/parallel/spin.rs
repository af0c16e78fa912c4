//! Keeping the pool's other workers awake while one caller's computation runs on it.
//!
//! A rayon worker that finds no work spins for a few dozen rounds, then sleeps, and the next
//! parallel kernel waits for it to be woken (a futex wake; on a virtual machine, an interrupt
//! to a halted CPU). A model pass has serial stretches between its parallel kernels (graph
//! steps, small ops) long enough for the other workers to fall asleep, so every kernel paid
//! the wake-up: MiniLM on one sentence ran no faster at two threads than at one. While `f`
//! runs, each other worker runs a job that executes whatever pool work appears and spins
//! otherwise, as ONNX Runtime's and OpenMP's pools do by default. Results are unchanged: work
//! is split the same way whoever runs it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether [`while_running`] keeps the workers spinning (see [`set_spinning`]).
static ENABLED: AtomicBool = AtomicBool::new(true);
/// Held by the one computation whose workers spin now.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Turns spinning on or off for later model runs (on by default). Off, the pool's idle workers
/// sleep between parallel kernels: less CPU burnt while a pass runs, more time waiting for
/// them to wake.
pub fn set_spinning(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Sets its flag when dropped, on return or unwind.
struct SetOnDrop<'a>(&'a AtomicBool, bool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(self.1, Ordering::Release);
    }
}

/// Runs `f` on the calling pool worker while the pool's other workers spin, executing any
/// work of the pool they find, until `f` returns. `f` runs on the calling thread in any case.
///
/// One computation at a time spins: two could each end up with a spinner stacked above the
/// other's computation on the same thread (a worker waiting on a join runs whatever job it
/// finds, a spinner included), and each would wait for the other. With one, every spinner
/// waits for a computation that has no spinner above it, and so ends; and a spinner left
/// without work gives up after [`IDLE_LIMIT`] whatever happens.
pub(crate) fn while_running<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let threads = rayon::current_num_threads();
    let me = rayon::current_thread_index();
    if threads < 2
        || me.is_none()
        || !ENABLED.load(Ordering::Relaxed)
        || TAKEN
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
    {
        return f();
    }
    let _turn = SetOnDrop(&TAKEN, false);
    // The spinners are not waited for: one may be running another caller's job it picked up
    // (a whole model run, say), and this computation's result should not wait for that.
    let done = Arc::new(AtomicBool::new(false));
    for _ in 1..threads {
        let done = done.clone();
        rayon::spawn(move || spin_until(&done, me));
    }
    let _done = SetOnDrop(&done, true);
    f()
}

/// How long a spinner waits with no work before it gives up and lets its worker sleep as
/// usual: far longer than the serial stretches of a model pass (tens of microseconds), and a
/// bound on any wait a spinner could cause.
const IDLE_LIMIT: Duration = Duration::from_millis(2);

/// Executes pool work until `done`, spinning while there is none, for at most [`IDLE_LIMIT`]
/// at a time. A spinner that lands on the computation's own thread (popped while it waits on
/// a join) returns at once.
fn spin_until(done: &AtomicBool, owner: Option<usize>) {
    if rayon::current_thread_index() == owner {
        return;
    }
    let mut idle = 0u32;
    let mut idle_since = None;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            (idle, idle_since) = (0, None);
            continue;
        }
        idle = idle.wrapping_add(1);
        if idle.is_multiple_of(64) {
            let now = Instant::now();
            match idle_since {
                None => idle_since = Some(now),
                Some(t) if now - t > IDLE_LIMIT => return,
                Some(_) => {}
            }
        }
        // Now and then, let the OS run another thread that wants this CPU.
        if idle.is_multiple_of(4096) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    }

    /// Parallel work whose result has one right answer: sums of fixed chunks, `len` values each.
    fn work_of(seed: u64, len: u64) -> Vec<f64> {
        crate::parallel::map_range(64, |i| {
            (0..len)
                .map(|j| ((seed + i as u64 * len + j) as f64).sqrt())
                .sum()
        })
    }

    fn work(seed: u64) -> Vec<f64> {
        work_of(seed, 2000)
    }

    #[test]
    fn spinning_changes_no_result() {
        let p = pool(2);
        let plain = p.install(|| work(7));
        for _ in 0..20 {
            assert_eq!(p.install(|| while_running(|| work(7))), plain);
        }
    }

    #[test]
    fn concurrent_callers_all_finish() {
        // Three threads outside a two-worker pool, each running computations with nested
        // parallel work on it: with every one spinning, two could wait on each other forever.
        // Small pieces, so that workers steal from each other all the time.
        let p = std::sync::Arc::new(pool(2));
        let want: Vec<Vec<f64>> = (0..4).map(|c| p.install(|| work_of(c, 20))).collect();
        let (tx, rx) = mpsc::channel();
        for c in 0..4u64 {
            let (p, tx, want) = (p.clone(), tx.clone(), want[c as usize].clone());
            std::thread::spawn(move || {
                for _ in 0..3000 {
                    assert_eq!(p.install(|| while_running(|| work_of(c, 20))), want);
                }
                tx.send(c).unwrap();
            });
        }
        for _ in 0..4 {
            rx.recv_timeout(Duration::from_secs(120))
                .expect("a caller did not finish: spinning workers deadlocked");
        }
    }

    #[test]
    fn an_idle_spinner_gives_up() {
        // Nothing will ever set `done` and no work comes: the spinner returns on its own.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let never = AtomicBool::new(false);
            let t = Instant::now();
            pool(2).install(|| spin_until(&never, None));
            tx.send(t.elapsed()).unwrap();
        });
        let took = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the spinner did not give up");
        assert!(took >= IDLE_LIMIT, "gave up after {took:?}");
    }

    #[test]
    fn a_panic_inside_ends_the_spinners() {
        let p = pool(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.install(|| while_running(|| -> u8 { panic!("inside") }))
        }));
        assert!(r.is_err());
        // The next computation spins and finishes (the turn was given back).
        assert_eq!(
            p.install(|| while_running(|| work(3))),
            p.install(|| work(3))
        );
    }
}
