//! A fixed-size feature "image" per recording, for classifiers: resample, trim silence, level
//! the loudness, fit to a fixed duration, then log-mel (or MFCC). The same code runs when a
//! dataset is built and when `predict` reads one file, so training and inference see the same
//! features.

use super::mel::{power_to_db, MelConfig, MelFilterbank, MelScale};
use super::mfcc::mfcc;
use super::resample::resample;
use super::stft::{spectrogram, StftConfig};
use super::wav::{read_wav, Wav};
use crate::bail;
use crate::error::Result;
use std::path::Path;

/// Feature settings. `[1, n_mels (or n_mfcc), frames]` comes out.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureConfig {
    /// Every recording is resampled to this rate first.
    pub sample_rate: u32,
    /// Fixed duration: the (trimmed) clip is placed at the start and zero-padded or cut to it.
    pub clip_seconds: f64,
    /// Trim leading and trailing frames quieter than the loudest frame minus this many dB
    /// (off when `None`).
    pub trim_db: Option<f64>,
    /// Scale the trimmed clip to this RMS level, so the microphone gain does not matter (off
    /// when `None`).
    pub target_rms: Option<f32>,
    /// STFT size.
    pub n_fft: usize,
    /// STFT hop.
    pub hop_length: usize,
    /// Mel bands.
    pub n_mels: usize,
    /// Lowest mel edge (Hz).
    pub f_min: f64,
    /// Highest mel edge (Hz); `None` = Nyquist.
    pub f_max: Option<f64>,
    /// Dynamic range kept below the loudest mel bin (dB); `None` keeps it all.
    pub top_db: Option<f32>,
    /// 0 for log-mel, else this many MFCCs.
    pub n_mfcc: usize,
}

impl Default for FeatureConfig {
    /// 16 kHz, 1 s clips, 25 ms windows (n_fft 400) every 10 ms, 40 HTK mel bands, 80 dB range.
    fn default() -> Self {
        FeatureConfig {
            sample_rate: 16_000,
            clip_seconds: 1.0,
            trim_db: Some(40.0),
            target_rms: Some(0.1),
            n_fft: 400,
            hop_length: 160,
            n_mels: 40,
            f_min: 20.0,
            f_max: None,
            top_db: Some(80.0),
            n_mfcc: 0,
        }
    }
}

/// `[start, end)` of the samples between the first and last frame (`frame` long, every `hop`)
/// whose RMS is within `top_db` dB of the loudest frame's; `(0, 0)` for silence.
pub fn trim_silence(x: &[f32], top_db: f64, frame: usize, hop: usize) -> (usize, usize) {
    let (frame, hop) = (frame.max(1), hop.max(1));
    if x.is_empty() {
        return (0, 0);
    }
    let n_frames = if x.len() <= frame {
        1
    } else {
        1 + (x.len() - frame).div_ceil(hop)
    };
    let energy: Vec<f64> = (0..n_frames)
        .map(|i| {
            let s = &x[(i * hop).min(x.len())..(i * hop + frame).min(x.len())];
            s.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / frame as f64
        })
        .collect();
    let peak = energy.iter().copied().fold(0.0, f64::max);
    if peak <= 0.0 {
        return (0, 0);
    }
    let floor = peak * 10f64.powf(-top_db / 10.0);
    let first = energy.iter().position(|&e| e >= floor).unwrap_or(0);
    let last = energy.iter().rposition(|&e| e >= floor).unwrap_or(0);
    (first * hop, (last * hop + frame).min(x.len()))
}

impl FeatureConfig {
    fn validate(&self) -> Result<()> {
        if self.sample_rate == 0 || !(self.clip_seconds > 0.0 && self.clip_seconds <= 600.0) {
            bail!(
                "audio features",
                "needs a positive sample rate and 0 < clip_seconds <= 600, found {} Hz, {} s",
                self.sample_rate,
                self.clip_seconds
            );
        }
        if self.n_mfcc > self.n_mels {
            bail!(
                "audio features",
                "n_mfcc {} exceeds n_mels {}",
                self.n_mfcc,
                self.n_mels
            );
        }
        Ok(())
    }
    /// Samples in one clip.
    pub fn clip_samples(&self) -> usize {
        (self.clip_seconds * self.sample_rate as f64).round() as usize
    }
    /// The shape [`Self::extract`] returns: `[1, rows, frames]`.
    pub fn shape(&self) -> [usize; 3] {
        let rows = if self.n_mfcc > 0 {
            self.n_mfcc
        } else {
            self.n_mels
        };
        [1, rows, 1 + self.clip_samples() / self.hop_length.max(1)]
    }
    /// The fixed-length waveform the spectrogram is taken of.
    pub fn prepare(&self, wav: &Wav) -> Result<Vec<f32>> {
        self.validate()?;
        let x = resample(&wav.samples, wav.sample_rate, self.sample_rate)?;
        let (a, b) = match self.trim_db {
            Some(db) => trim_silence(&x, db, self.n_fft, self.hop_length / 2),
            None => (0, x.len()),
        };
        let n = self.clip_samples();
        let mut clip = vec![0f32; n];
        let take = (b - a).min(n);
        clip[..take].copy_from_slice(&x[a..a + take]);
        if let Some(target) = self.target_rms {
            let rms = (clip[..take]
                .iter()
                .map(|&v| (v as f64).powi(2))
                .sum::<f64>()
                / take.max(1) as f64)
                .sqrt();
            if rms > 1e-9 {
                let g = (target as f64 / rms) as f32;
                clip.iter_mut().for_each(|v| *v *= g);
            }
        }
        Ok(clip)
    }
    /// Features of one recording, flattened `[1, rows, frames]` (see [`Self::shape`]).
    pub fn extract(&self, wav: &Wav) -> Result<Vec<f32>> {
        let clip = self.prepare(wav)?;
        let stft = StftConfig::new(self.n_fft, self.hop_length);
        let power = spectrogram(&clip, &stft, 2.0)?;
        let bank = MelFilterbank::new(&MelConfig {
            sample_rate: self.sample_rate,
            n_fft: self.n_fft,
            n_mels: self.n_mels,
            f_min: self.f_min,
            f_max: self.f_max.unwrap_or(self.sample_rate as f64 / 2.0),
            scale: MelScale::Htk,
            slaney_norm: false,
        })?;
        let mut mel = bank.apply(&power)?;
        power_to_db(&mut mel.data, 1e-10, self.top_db);
        if self.n_mfcc > 0 {
            mel = mfcc(&mel, self.n_mfcc, 0.0)?;
        }
        Ok(mel.data)
    }
    /// [`Self::extract`] of a WAV file.
    pub fn extract_file(&self, path: &Path) -> Result<Vec<f32>> {
        self.extract(&read_wav(path)?)
    }
}
