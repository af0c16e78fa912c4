//! Band-limited resampling between integer sample rates: a Kaiser-windowed sinc evaluated at the
//! exact rational phases of the rate ratio (a polyphase filter bank).
//!
//! Output sample `n` sits at input time `t = n * from / to`; it is `sum_k x[k] h(t - k)` with
//! `h(tau) = fc * sinc(fc * tau) * kaiser(tau / half_width)`. The cutoff `fc` (relative to the
//! input Nyquist) is `ROLLOFF * min(1, to / from)`, so when downsampling everything above the
//! new Nyquist is removed before it can alias. Samples outside the input count as zero.

use crate::bail;
use crate::error::Result;

/// Zero crossings of the sinc kept on each side (at the cutoff frequency).
const ZEROS: f64 = 32.0;
/// Kaiser window shape: about 90 dB of stopband attenuation.
const BETA: f64 = 9.0;
/// Passband edge as a share of the lower Nyquist frequency: the transition band lies above it.
const ROLLOFF: f64 = 0.9;
/// Largest phase table (phases x taps) kept in memory; rarer ratios evaluate the kernel per tap.
const MAX_TABLE: usize = 1 << 22;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for the
/// arguments a Kaiser window uses).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, q) = (1.0, 1.0, x * x / 4.0);
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// A resampler from one integer rate to another.
pub struct Resampler {
    up: u64,
    down: u64,
    fc: f64,
    half_width: f64,
    /// Taps either side of the centre: the filter spans `-reach..=reach` input samples.
    reach: i64,
    i0_beta: f64,
    /// `up` phases x `2 * reach + 1` taps, when small enough to store.
    table: Option<Vec<f64>>,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz (both non-zero).
    pub fn new(from: u32, to: u32) -> Result<Self> {
        if from == 0 || to == 0 {
            bail!(
                "resample",
                "sample rates must be positive, found {from} -> {to}"
            );
        }
        let g = gcd(from as u64, to as u64);
        let (up, down) = (to as u64 / g, from as u64 / g);
        let fc = ROLLOFF * (to as f64 / from as f64).min(1.0);
        let half_width = ZEROS / fc;
        let reach = half_width.ceil() as i64;
        let mut r = Resampler {
            up,
            down,
            fc,
            half_width,
            reach,
            i0_beta: bessel_i0(BETA),
            table: None,
        };
        let taps = (2 * reach + 1) as usize;
        if up == 1 && down == 1 {
            return Ok(r);
        }
        if (up as usize).saturating_mul(taps) <= MAX_TABLE {
            let mut t = Vec::with_capacity(up as usize * taps);
            for p in 0..up {
                let frac = p as f64 / up as f64;
                t.extend((-reach..=reach).map(|j| r.kernel(frac - j as f64)));
            }
            r.table = Some(t);
        }
        Ok(r)
    }

    fn kernel(&self, tau: f64) -> f64 {
        let r = tau / self.half_width;
        if r.abs() >= 1.0 {
            return 0.0;
        }
        let x = self.fc * tau;
        let sinc = if x == 0.0 {
            1.0
        } else {
            (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
        };
        let window = bessel_i0(BETA * (1.0 - r * r).sqrt()) / self.i0_beta;
        self.fc * sinc * window
    }

    /// Output length for `n` input samples: `ceil(n * to / from)`.
    pub fn output_len(&self, n: usize) -> usize {
        ((n as u128 * self.up as u128).div_ceil(self.down as u128)) as usize
    }

    /// Resamples `x`.
    pub fn process(&self, x: &[f32]) -> Vec<f32> {
        if self.up == 1 && self.down == 1 {
            return x.to_vec();
        }
        let taps = (2 * self.reach + 1) as usize;
        let n_out = self.output_len(x.len());
        let mut out = Vec::with_capacity(n_out);
        let len = x.len() as i64;
        for n in 0..n_out as u64 {
            // t = n * down / up = k0 + p / up
            let num = n as u128 * self.down as u128;
            let k0 = (num / self.up as u128) as i64;
            let p = (num % self.up as u128) as u64;
            let lo = (k0 - self.reach).max(0);
            let hi = (k0 + self.reach).min(len - 1);
            let mut acc = 0f64;
            match &self.table {
                Some(t) => {
                    let row = &t[p as usize * taps..(p as usize + 1) * taps];
                    for k in lo..=hi {
                        acc += x[k as usize] as f64 * row[(k - k0 + self.reach) as usize];
                    }
                }
                None => {
                    let frac = p as f64 / self.up as f64;
                    for k in lo..=hi {
                        acc += x[k as usize] as f64 * self.kernel(frac - (k - k0) as f64);
                    }
                }
            }
            out.push(acc as f32);
        }
        out
    }
}

/// Resamples `x` from `from` Hz to `to` Hz (a copy when the rates are equal).
pub fn resample(x: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    Ok(Resampler::new(from, to)?.process(x))
}
