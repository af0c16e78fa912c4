//! Mel filterbanks and log (decibel) compression, with the formulas of `librosa.filters.mel` /
//! `torchaudio.functional.melscale_fbanks`: triangles between `n_mels + 2` points equally spaced
//! on the mel scale, evaluated at the FFT bin frequencies `k * sample_rate / n_fft`.

use super::stft::Spectrogram;
use crate::bail;
use crate::error::Result;

/// Which Hz <-> mel mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MelScale {
    /// `2595 log10(1 + f / 700)` (HTK; torchaudio's default).
    Htk,
    /// Linear below 1 kHz, logarithmic above (Slaney's Auditory Toolbox; librosa's default).
    Slaney,
}

const SLANEY_F_SP: f64 = 200.0 / 3.0;
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;
const SLANEY_MIN_LOG_MEL: f64 = SLANEY_MIN_LOG_HZ / SLANEY_F_SP;
// ln(6.4) / 27: the log region's step.
fn slaney_logstep() -> f64 {
    6.4f64.ln() / 27.0
}

impl MelScale {
    /// Hz to mel.
    pub fn hz_to_mel(self, f: f64) -> f64 {
        match self {
            MelScale::Htk => 2595.0 * (1.0 + f / 700.0).log10(),
            MelScale::Slaney => {
                if f >= SLANEY_MIN_LOG_HZ {
                    SLANEY_MIN_LOG_MEL + (f / SLANEY_MIN_LOG_HZ).ln() / slaney_logstep()
                } else {
                    f / SLANEY_F_SP
                }
            }
        }
    }
    /// Mel to Hz.
    pub fn mel_to_hz(self, m: f64) -> f64 {
        match self {
            MelScale::Htk => 700.0 * (10f64.powf(m / 2595.0) - 1.0),
            MelScale::Slaney => {
                if m >= SLANEY_MIN_LOG_MEL {
                    SLANEY_MIN_LOG_HZ * (slaney_logstep() * (m - SLANEY_MIN_LOG_MEL)).exp()
                } else {
                    m * SLANEY_F_SP
                }
            }
        }
    }
}

/// Mel filterbank settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MelConfig {
    /// Sample rate of the signal the STFT came from.
    pub sample_rate: u32,
    /// FFT size of that STFT.
    pub n_fft: usize,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Lowest band edge in Hz.
    pub f_min: f64,
    /// Highest band edge in Hz (at most sample_rate / 2).
    pub f_max: f64,
    /// Hz <-> mel mapping.
    pub scale: MelScale,
    /// Slaney area normalization: each triangle scaled by `2 / (upper edge - lower edge)`, so
    /// bands carry equal energy for white noise (librosa's default `norm="slaney"`).
    pub slaney_norm: bool,
}

/// A filterbank: `[n_mels, n_fft / 2 + 1]` weights, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct MelFilterbank {
    /// The weights, one row per mel band.
    pub weights: Vec<f32>,
    /// Bands (rows).
    pub n_mels: usize,
    /// FFT bins (columns).
    pub n_freqs: usize,
}

impl MelFilterbank {
    /// Builds the filterbank; errors on an empty band range or too many bands for the FFT.
    pub fn new(cfg: &MelConfig) -> Result<Self> {
        let nyquist = cfg.sample_rate as f64 / 2.0;
        if cfg.n_mels == 0 || cfg.n_fft < 2 || cfg.sample_rate == 0 {
            bail!(
                "mel_filterbank",
                "needs n_mels >= 1, n_fft >= 2 and a positive sample rate, found n_mels {}, \
                 n_fft {}, sample_rate {}",
                cfg.n_mels,
                cfg.n_fft,
                cfg.sample_rate
            );
        }
        if !(cfg.f_min >= 0.0 && cfg.f_min < cfg.f_max && cfg.f_max <= nyquist) {
            bail!(
                "mel_filterbank",
                "needs 0 <= f_min < f_max <= sample_rate / 2 = {nyquist}, found f_min {}, f_max {}",
                cfg.f_min,
                cfg.f_max
            );
        }
        let n_freqs = cfg.n_fft / 2 + 1;
        let (m_lo, m_hi) = (
            cfg.scale.hz_to_mel(cfg.f_min),
            cfg.scale.hz_to_mel(cfg.f_max),
        );
        let pts: Vec<f64> = (0..cfg.n_mels + 2)
            .map(|i| {
                let m = m_lo + (m_hi - m_lo) * i as f64 / (cfg.n_mels + 1) as f64;
                cfg.scale.mel_to_hz(m)
            })
            .collect();
        let freqs: Vec<f64> = (0..n_freqs)
            .map(|k| k as f64 * cfg.sample_rate as f64 / cfg.n_fft as f64)
            .collect();
        let mut weights = vec![0f32; cfg.n_mels * n_freqs];
        for m in 0..cfg.n_mels {
            let (lo, mid, hi) = (pts[m], pts[m + 1], pts[m + 2]);
            let norm = if cfg.slaney_norm {
                2.0 / (hi - lo)
            } else {
                1.0
            };
            for (k, &f) in freqs.iter().enumerate() {
                let down = (f - lo) / (mid - lo);
                let up = (hi - f) / (hi - mid);
                weights[m * n_freqs + k] = (down.min(up).max(0.0) * norm) as f32;
            }
        }
        Ok(MelFilterbank {
            weights,
            n_mels: cfg.n_mels,
            n_freqs,
        })
    }

    /// Mel spectrogram `[n_mels, frames]` from a (power or magnitude) spectrogram
    /// `[n_fft / 2 + 1, frames]`.
    pub fn apply(&self, spec: &Spectrogram) -> Result<Spectrogram> {
        if spec.bins != self.n_freqs || spec.data.len() != spec.bins * spec.frames {
            bail!(
                "mel_filterbank",
                "expects a spectrogram of {} bins, found {} bins x {} frames ({} values)",
                self.n_freqs,
                spec.bins,
                spec.frames,
                spec.data.len()
            );
        }
        let t = spec.frames;
        let mut out = vec![0f32; self.n_mels * t];
        let mut acc = vec![0f64; t];
        for m in 0..self.n_mels {
            acc.iter_mut().for_each(|a| *a = 0.0);
            for k in 0..self.n_freqs {
                let w = self.weights[m * self.n_freqs + k] as f64;
                if w == 0.0 {
                    continue;
                }
                let row = &spec.data[k * t..(k + 1) * t];
                acc.iter_mut()
                    .zip(row)
                    .for_each(|(a, &v)| *a += w * v as f64);
            }
            out[m * t..(m + 1) * t]
                .iter_mut()
                .zip(&acc)
                .for_each(|(o, &a)| *o = a as f32);
        }
        Ok(Spectrogram {
            data: out,
            bins: self.n_mels,
            frames: t,
        })
    }
}

/// Power to decibels, as `librosa.power_to_db(ref=1.0)` / torchaudio's `AmplitudeToDB("power")`:
/// `10 log10(max(x, amin))`, then, with `top_db`, floored at `max - top_db`.
pub fn power_to_db(x: &mut [f32], amin: f32, top_db: Option<f32>) {
    let amin = amin.max(f32::MIN_POSITIVE) as f64;
    for v in x.iter_mut() {
        *v = (10.0 * (*v as f64).max(amin).log10()) as f32;
    }
    if let Some(top) = top_db {
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let floor = max - top.max(0.0);
        x.iter_mut().for_each(|v| *v = v.max(floor));
    }
}
