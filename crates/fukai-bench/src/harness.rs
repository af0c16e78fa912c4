//! Timing and output shared by every workload: warm-up, calibrated samples, medians, and the
//! one-JSON-object-per-line format that `bench/report.py` reads (the PyTorch twin in
//! `bench/torch_bench.py` prints the same keys).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How many calls of `f` make one sample of about `target` (at least 1). Runs `f` a few times,
/// which doubles as warm-up.
pub fn calibrate(f: &mut dyn FnMut(), target: Duration) -> usize {
    let target = target.as_secs_f64();
    let mut n = 1usize;
    loop {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        let dt = t.elapsed().as_secs_f64();
        if dt >= target / 4.0 || n >= 1 << 24 {
            // One more round, keeping the faster estimate: a preempted round would otherwise
            // shrink every sample of this case.
            let per = if dt >= target {
                dt / n as f64
            } else {
                let t = Instant::now();
                for _ in 0..n {
                    f();
                }
                dt.min(t.elapsed().as_secs_f64()) / n as f64
            };
            return ((target / per.max(1e-12)).round() as usize).max(1);
        }
        n *= 2;
    }
}

/// Summary of per-iteration times (seconds).
#[derive(Clone, Debug)]
pub struct Stats {
    /// Per-iteration time of each sample.
    pub samples: Vec<f64>,
    /// Iterations per sample.
    pub iters: usize,
}

impl Stats {
    fn sorted(&self) -> Vec<f64> {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        s
    }
    /// Median per-iteration time.
    pub fn median(&self) -> f64 {
        let s = self.sorted();
        let n = s.len();
        if n == 0 {
            return f64::NAN;
        }
        if n % 2 == 1 {
            s[n / 2]
        } else {
            0.5 * (s[n / 2 - 1] + s[n / 2])
        }
    }
    /// Fastest sample.
    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
    /// Slowest sample.
    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
}

/// One case of an interleaved measurement: a name and the operation (one call = one iteration).
pub struct Case<'a> {
    pub name: &'static str,
    pub run: Box<dyn FnMut() + 'a>,
}

/// Calibrates each case to samples of about `target`, then takes `reps` samples of each,
/// round-robin (A B A B ...), so that a noisy neighbour hits every case alike.
pub fn interleaved(cases: &mut [Case<'_>], reps: usize, target: Duration) -> Vec<Stats> {
    let iters: Vec<usize> = cases
        .iter_mut()
        .map(|c| calibrate(&mut c.run, target))
        .collect();
    let mut out: Vec<Stats> = iters
        .iter()
        .map(|&iters| Stats {
            samples: Vec::with_capacity(reps),
            iters,
        })
        .collect();
    for _ in 0..reps {
        for (c, st) in cases.iter_mut().zip(out.iter_mut()) {
            let t = Instant::now();
            for _ in 0..st.iters {
                (c.run)();
            }
            st.samples.push(t.elapsed().as_secs_f64() / st.iters as f64);
        }
    }
    out
}

/// `reps` samples of exactly `iters` calls each, after `warmup` calls.
pub fn fixed(f: &mut dyn FnMut(), warmup: usize, reps: usize, iters: usize) -> Stats {
    for _ in 0..warmup {
        f();
    }
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        samples.push(t.elapsed().as_secs_f64() / iters as f64);
    }
    Stats { samples, iters }
}

/// Like [`fixed`] with `reps` samples of up to `iters` calls, but keeps the whole measurement
/// within about `budget`: warm-up stops after `warmup` calls or a tenth of the budget, and its
/// pace caps the calls per sample. A stalled machine then costs samples, not minutes.
pub fn budgeted(
    f: &mut dyn FnMut(),
    warmup: usize,
    reps: usize,
    iters: usize,
    budget: Duration,
) -> Stats {
    let budget = budget.as_secs_f64();
    let t = Instant::now();
    let mut done = 0usize;
    while done < warmup.max(3) && (done < 3 || t.elapsed().as_secs_f64() < budget / 10.0) {
        f();
        done += 1;
    }
    let per = t.elapsed().as_secs_f64() / done as f64;
    let fit = (budget / reps.max(1) as f64 / per.max(1e-12)) as usize;
    fixed(f, 0, reps, iters.min(fit).max(1))
}

/// One JSON object, printed as one line.
pub struct Line(String);

impl Line {
    /// A measurement of `workload` by `implementation` at `threads`.
    pub fn new(workload: &str, implementation: &str, threads: usize) -> Line {
        let mut s = String::from("{");
        write!(
            s,
            "\"workload\":{},\"impl\":{},\"threads\":{threads}",
            quote(workload),
            quote(implementation)
        )
        .unwrap();
        Line(s)
    }
    /// Adds a number (non-finite values become null).
    pub fn num(mut self, key: &str, v: f64) -> Line {
        if v.is_finite() {
            write!(self.0, ",{}:{}", quote(key), round_sig(v)).unwrap();
        } else {
            write!(self.0, ",{}:null", quote(key)).unwrap();
        }
        self
    }
    /// Adds an integer.
    pub fn int(mut self, key: &str, v: usize) -> Line {
        write!(self.0, ",{}:{v}", quote(key)).unwrap();
        self
    }
    /// Adds a string.
    pub fn str(mut self, key: &str, v: &str) -> Line {
        write!(self.0, ",{}:{}", quote(key), quote(v)).unwrap();
        self
    }
    /// Adds median/min/max in milliseconds, and the sample counts.
    pub fn stats(self, st: &Stats) -> Line {
        self.num("median_ms", st.median() * 1e3)
            .num("min_ms", st.min() * 1e3)
            .num("max_ms", st.max() * 1e3)
            .int("reps", st.samples.len())
            .int("iters_per_rep", st.iters)
    }
    /// Prints the line to stdout.
    pub fn print(mut self) {
        self.0.push('}');
        println!("{}", self.0);
    }
}

/// Six significant digits: plenty for timings, and short lines.
fn round_sig(v: f64) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    let mag = v.abs().log10().floor() as i32;
    let scale = 10f64.powi(5 - mag);
    (v * scale).round() / scale
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// This process's peak resident set (VmHWM) in KiB, where /proc has it.
pub fn peak_rss_kb() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident set of the largest child process waited for so far, in KiB (Linux).
pub fn children_peak_rss_kb() -> Option<usize> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage only writes the struct it is given, which lives for the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage succeeded, so it filled the struct (and zeroed() made it valid anyway).
    let kb = unsafe { usage.assume_init() }.ru_maxrss;
    (kb > 0).then_some(kb as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd() {
        let st = |v: &[f64]| Stats {
            samples: v.to_vec(),
            iters: 1,
        };
        assert_eq!(st(&[3.0, 1.0, 2.0]).median(), 2.0);
        assert_eq!(st(&[4.0, 1.0, 3.0, 2.0]).median(), 2.5);
        assert_eq!(st(&[4.0, 1.0, 3.0, 2.0]).min(), 1.0);
    }

    #[test]
    fn line_is_json() {
        let mut l = Line::new("matmul", "fukai", 2)
            .int("size", 64)
            .num("x", 1.0 / 3.0)
            .num("nan", f64::NAN)
            .str("note", "a \"b\"");
        l.0.push('}');
        assert_eq!(
            l.0,
            r#"{"workload":"matmul","impl":"fukai","threads":2,"size":64,"x":0.333333,"nan":null,"note":"a \"b\""}"#
        );
    }

    #[test]
    fn round_keeps_six_digits() {
        assert_eq!(round_sig(123.456789), 123.457);
        assert_eq!(round_sig(0.000123456789), 0.000123457);
    }
}
