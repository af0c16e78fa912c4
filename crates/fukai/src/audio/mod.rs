//! Audio: WAV decoding, resampling, STFT, mel filterbanks, log-mel and MFCC features, and
//! SpecAugment-style augmentation. Signals are plain `f32` slices; spectrograms are
//! `[rows, frames]` maps ([`Spectrogram`]) that batch as one-channel images `[1, rows, frames]`.
//!
//! ```
//! use fukai::audio::{spectrogram, MelConfig, MelFilterbank, MelScale, StftConfig, power_to_db};
//! let sr = 8000;
//! let tone: Vec<f32> = (0..sr).map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / sr as f32).sin()).collect();
//! let power = spectrogram(&tone, &StftConfig::new(256, 80), 2.0)?;
//! let bank = MelFilterbank::new(&MelConfig {
//!     sample_rate: sr as u32, n_fft: 256, n_mels: 40, f_min: 0.0, f_max: 4000.0,
//!     scale: MelScale::Htk, slaney_norm: false,
//! })?;
//! let mut log_mel = bank.apply(&power)?;
//! power_to_db(&mut log_mel.data, 1e-10, Some(80.0));
//! assert_eq!((log_mel.bins, log_mel.frames), (40, 101));
//! # Ok::<(), fukai::Error>(())
//! ```

mod augment;
mod features;
mod mel;
mod mfcc;
mod resample;
mod stft;
mod wav;

pub use augment::{SpecAugment, TimeShift};
pub use features::{trim_silence, FeatureConfig};
pub use mel::{power_to_db, MelConfig, MelFilterbank, MelScale};
pub use mfcc::{dct_matrix, mfcc};
pub use resample::{resample, Resampler};
pub use stft::{spectrogram, PadMode, Spectrogram, StftConfig, Window};
pub use wav::{decode_wav, read_wav, Wav};
