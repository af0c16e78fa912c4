//! Mel-frequency cepstral coefficients: the orthonormal DCT-II of a log-mel spectrogram over
//! its mel axis, first `n_mfcc` rows (`librosa.feature.mfcc(S=log_mel, dct_type=2,
//! norm="ortho")`, torchaudio's `MFCC` with `norm="ortho"`), with optional sinusoidal liftering.

use super::stft::Spectrogram;
use crate::bail;
use crate::error::Result;

/// The `[n_mfcc, n_mels]` orthonormal DCT-II matrix.
pub fn dct_matrix(n_mfcc: usize, n_mels: usize) -> Vec<f64> {
    let n = n_mels as f64;
    let mut m = Vec::with_capacity(n_mfcc * n_mels);
    for k in 0..n_mfcc {
        let scale = if k == 0 {
            (1.0 / n).sqrt()
        } else {
            (2.0 / n).sqrt()
        };
        m.extend((0..n_mels).map(|i| {
            scale * (std::f64::consts::PI * k as f64 * (2 * i + 1) as f64 / (2.0 * n)).cos()
        }));
    }
    m
}

/// MFCCs `[n_mfcc, frames]` from a log-mel spectrogram `[n_mels, frames]` (e.g. decibels from
/// [`super::power_to_db`]). `lifter > 0` scales coefficient `k` by
/// `1 + lifter / 2 * sin(pi (k + 1) / lifter)` (librosa's convention).
pub fn mfcc(log_mel: &Spectrogram, n_mfcc: usize, lifter: f64) -> Result<Spectrogram> {
    let (n_mels, t) = (log_mel.bins, log_mel.frames);
    if n_mfcc == 0 || n_mfcc > n_mels || log_mel.data.len() != n_mels * t {
        bail!(
            "mfcc",
            "needs 1 <= n_mfcc <= n_mels and a [n_mels, frames] spectrogram, found n_mfcc \
             {n_mfcc}, {n_mels} bands x {t} frames ({} values)",
            log_mel.data.len()
        );
    }
    if !(lifter >= 0.0 && lifter.is_finite()) {
        bail!("mfcc", "lifter must be >= 0, found {lifter}");
    }
    let dct = dct_matrix(n_mfcc, n_mels);
    let mut out = vec![0f32; n_mfcc * t];
    for k in 0..n_mfcc {
        let lift = if lifter > 0.0 {
            1.0 + lifter / 2.0 * (std::f64::consts::PI * (k + 1) as f64 / lifter).sin()
        } else {
            1.0
        };
        for f in 0..t {
            let s: f64 = (0..n_mels)
                .map(|i| dct[k * n_mels + i] * log_mel.data[i * t + f] as f64)
                .sum();
            out[k * t + f] = (s * lift) as f32;
        }
    }
    Ok(Spectrogram {
        data: out,
        bins: n_mfcc,
        frames: t,
    })
}
