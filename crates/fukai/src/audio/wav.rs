//! WAV decoding (through `hound`) to mono f32 in [-1, 1].
//!
//! Supported: integer PCM of 8, 16, 24 or 32 bits and 32-bit float, any channel count (channels
//! are averaged to mono). Everything else, and files whose data ends before the length their
//! header declares, is an [`Error::Format`] naming the file.

use crate::error::{Error, Result};
use std::path::Path;

/// A decoded recording.
#[derive(Clone, Debug, PartialEq)]
pub struct Wav {
    /// Mono samples in [-1, 1] (integer PCM is divided by 2^(bits-1); channels are averaged).
    pub samples: Vec<f32>,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels in the file (before the mono mix).
    pub channels: u16,
    /// Bits per stored sample.
    pub bits_per_sample: u16,
    /// True for IEEE float samples, false for integer PCM.
    pub float: bool,
}

/// Reads and decodes a WAV file; errors name the file.
pub fn read_wav(path: &Path) -> Result<Wav> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    decode_wav(&bytes, &path.display().to_string())
}

/// Decodes WAV bytes; `name` is used in error messages (e.g. the file name).
pub fn decode_wav(bytes: &[u8], name: &str) -> Result<Wav> {
    let err = |msg: String| Error::Format {
        file: name.to_string(),
        msg,
    };
    const SUPPORTED: &str = "supported: integer PCM of 8, 16, 24 or 32 bits, or 32-bit float";
    let mut reader = hound::WavReader::new(bytes).map_err(|e| match e {
        hound::Error::Unsupported => err(format!("unsupported WAV sample format; {SUPPORTED}")),
        hound::Error::IoError(io) => err(format!("not a complete WAV header ({io})")),
        other => err(format!("invalid WAV header: {other}; {SUPPORTED}")),
    })?;
    let spec = reader.spec();
    let float = spec.sample_format == hound::SampleFormat::Float;
    let bits = spec.bits_per_sample;
    if (float && bits != 32) || (!float && !matches!(bits, 8 | 16 | 24 | 32)) {
        return Err(err(format!(
            "unsupported WAV sample format: {bits}-bit {}; {SUPPORTED}",
            if float { "float" } else { "integer" }
        )));
    }
    if spec.sample_rate == 0 {
        return Err(err("WAV header gives a sample rate of 0".into()));
    }
    let channels = spec.channels as usize;
    let declared = reader.len() as usize;
    // hound reads the whole sample, so the data chunk can at most hold what the file holds: the
    // header's count never sizes an allocation beyond the bytes really there.
    let available = bytes.len() / (bits as usize / 8);
    let mut inter: Vec<f32> = Vec::with_capacity(declared.min(available));
    let truncated = |got: usize| {
        err(format!(
            "truncated WAV: the header declares {} frames of {channels} x {bits}-bit samples, \
             the data ends after {}",
            declared / channels,
            got / channels
        ))
    };
    if float {
        for s in reader.samples::<f32>() {
            let v = s.map_err(|_| truncated(inter.len()))?;
            if !v.is_finite() {
                return Err(err(format!(
                    "float sample {} (frame {}) is {v}",
                    inter.len(),
                    inter.len() / channels
                )));
            }
            inter.push(v);
        }
    } else {
        let norm = 1.0 / (1u64 << (bits - 1)) as f64;
        for s in reader.samples::<i32>() {
            let v = s.map_err(|_| truncated(inter.len()))?;
            inter.push((v as f64 * norm) as f32);
        }
    }
    if inter.len() != declared || !declared.is_multiple_of(channels) {
        return Err(truncated(inter.len()));
    }
    let mono: Vec<f32> = inter
        .chunks_exact(channels)
        .map(|f| (f.iter().map(|&v| v as f64).sum::<f64>() / channels as f64) as f32)
        .collect();
    Ok(Wav {
        samples: mono,
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        bits_per_sample: bits,
        float,
    })
}
