//! The `audio-manifest` data format: a manifest CSV (`file,label[,split]`, see
//! `crate::data::read_manifest`) of WAV files, turned into fixed-size log-mel (or MFCC) images
//! `[1, bands, frames]` for the CNN, with SpecAugment and time shifts while training. `predict`
//! reads a WAV file through the same front end.

use super::data::Splits;
use super::DataConfig;
use crate::audio::{FeatureConfig, SpecAugment, TimeShift};
use crate::bail;
use crate::data::{self, Manifest, Transform};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[data.audio]`: the feature front end and the augmentation.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    /// Recordings are resampled to this rate (Hz).
    pub sample_rate: u32,
    /// Fixed clip length (seconds) after trimming silence.
    pub clip_seconds: f64,
    /// Trim leading/trailing audio quieter than the loudest frame minus this (dB; 0 = off).
    pub trim_db: f64,
    /// Scale each trimmed clip to this RMS (0 = off).
    pub target_rms: f32,
    /// STFT size.
    pub n_fft: usize,
    /// STFT hop (samples).
    pub hop_length: usize,
    /// Mel bands.
    pub n_mels: usize,
    /// Lowest mel edge (Hz).
    pub f_min: f64,
    /// Highest mel edge (Hz; 0 = Nyquist).
    pub f_max: f64,
    /// Dynamic range kept (dB; 0 = all).
    pub top_db: f32,
    /// MFCCs instead of log-mel bands (0 = log-mel).
    pub n_mfcc: usize,
    /// SpecAugment frequency masks per training sample.
    pub freq_masks: usize,
    /// Widest frequency mask (bands).
    pub freq_width: usize,
    /// SpecAugment time masks per training sample.
    pub time_masks: usize,
    /// Widest time mask (frames).
    pub time_width: usize,
    /// Random time shift of training samples, up to this many frames either way.
    pub time_shift: usize,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            sample_rate: 16_000,
            clip_seconds: 1.0,
            trim_db: 40.0,
            target_rms: 0.1,
            n_fft: 400,
            hop_length: 160,
            n_mels: 40,
            f_min: 20.0,
            f_max: 0.0,
            top_db: 80.0,
            n_mfcc: 0,
            freq_masks: 2,
            freq_width: 6,
            time_masks: 2,
            time_width: 10,
            time_shift: 8,
        }
    }
}

impl AudioConfig {
    /// The library's front-end settings.
    pub fn features(&self) -> FeatureConfig {
        let pos = |v: f64| (v > 0.0).then_some(v);
        FeatureConfig {
            sample_rate: self.sample_rate,
            clip_seconds: self.clip_seconds,
            trim_db: pos(self.trim_db),
            target_rms: pos(self.target_rms as f64).map(|v| v as f32),
            n_fft: self.n_fft,
            hop_length: self.hop_length,
            n_mels: self.n_mels,
            f_min: self.f_min,
            f_max: pos(self.f_max),
            top_db: pos(self.top_db as f64).map(|v| v as f32),
            n_mfcc: self.n_mfcc,
        }
    }
}

fn audio_cfg(cfg: &DataConfig) -> AudioConfig {
    cfg.audio.clone().unwrap_or_default()
}

/// `path` itself when it is a file, else `path/manifest.csv`.
fn manifest_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("manifest.csv")
    } else {
        path.to_path_buf()
    }
}

/// Train and test sets from the manifest: its `split` column when it has one (`train` / `test`),
/// else a stratified split by `data.test_fraction`.
pub fn load(cfg: &DataConfig, path: &Path, seed: u64) -> Result<Splits> {
    let manifest: Manifest = data::read_manifest(&manifest_path(path))?;
    let feats = audio_cfg(cfg).features();
    let shape = feats.shape();
    let extract = |p: &Path| feats.extract_file(p);
    let (train_rows, test_rows) = if manifest.has_split {
        (
            manifest.rows_in(Some("train")),
            manifest.rows_in(Some("test")),
        )
    } else {
        let labels: Vec<i64> = manifest.rows.iter().map(|r| r.label).collect();
        let (tr, te) = data::stratified_split(&labels, cfg.test_fraction, seed)?;
        let pick = |ix: Vec<usize>| {
            ix.into_iter()
                .map(|i| &manifest.rows[i])
                .collect::<Vec<_>>()
        };
        (pick(tr), pick(te))
    };
    if train_rows.is_empty() || test_rows.is_empty() {
        return Err(Error::Format {
            file: manifest.path.display().to_string(),
            msg: format!(
                "{} train and {} test rows; the split column needs both `train` and `test` rows",
                train_rows.len(),
                test_rows.len()
            ),
        });
    }
    Ok(Splits {
        train: manifest.load(&train_rows, &shape, &extract)?,
        test: manifest.load(&test_rows, &shape, &extract)?,
        class_names: manifest.class_names.clone(),
    })
}

/// The augmentation for training samples (before normalization).
pub fn train_transforms(cfg: &DataConfig) -> Vec<Box<dyn Transform>> {
    if cfg.format != "audio-manifest" {
        return Vec::new();
    }
    let a = audio_cfg(cfg);
    let mut t: Vec<Box<dyn Transform>> = Vec::new();
    if a.time_shift > 0 {
        t.push(Box::new(TimeShift {
            max_shift: a.time_shift,
        }));
    }
    if a.freq_masks + a.time_masks > 0 {
        t.push(Box::new(SpecAugment {
            freq_masks: a.freq_masks,
            freq_width: a.freq_width,
            time_masks: a.time_masks,
            time_width: a.time_width,
        }));
    }
    t
}

/// The features of a WAV file for a model trained on `audio-manifest` data (`None` for other
/// models, whose inputs `predict` reads as before).
pub fn predict_input(cfg: &DataConfig, input: &str, shape: &[usize]) -> Result<Option<Vec<f32>>> {
    if cfg.format != "audio-manifest" {
        return Ok(None);
    }
    let feats = audio_cfg(cfg).features();
    if feats.shape()[..] != *shape {
        bail!(
            "predict",
            "the checkpoint's input shape {shape:?} does not match its audio settings {:?}",
            feats.shape()
        );
    }
    Ok(Some(feats.extract_file(Path::new(input))?))
}
