//! Training-time augmentation of spectrogram "images" `[C, F, T]` (or `[F, T]`): SpecAugment's
//! frequency and time masks (Park et al. 2019) and a random time shift. They are
//! [`Transform`]s, so the loader drives them with a generator forked per (epoch, sample): the
//! same seed gives the same masks whatever the thread count or batch order.

use crate::data::Transform;
use crate::rng::Generator;

fn dims(shape: &[usize]) -> Option<(usize, usize, usize)> {
    match shape {
        [f, t] => Some((1, *f, *t)),
        [c, f, t] => Some((*c, *f, *t)),
        _ => None,
    }
}

/// Frequency and time masking: `freq_masks` bands of `0..=freq_width` rows and `time_masks`
/// spans of `0..=time_width` columns, at uniform positions, set to the sample's mean (the value
/// the masked region has after normalization, so masks carry no information of their own).
#[derive(Clone, Debug)]
pub struct SpecAugment {
    /// Number of frequency masks.
    pub freq_masks: usize,
    /// Largest frequency mask, in rows.
    pub freq_width: usize,
    /// Number of time masks.
    pub time_masks: usize,
    /// Largest time mask, in frames.
    pub time_width: usize,
}

impl Transform for SpecAugment {
    fn apply(&self, x: &mut [f32], shape: &[usize], gen: &mut Generator) {
        let Some((c, f, t)) = dims(shape) else {
            return;
        };
        if x.is_empty() {
            return;
        }
        let mean = (x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64) as f32;
        let mut span = |len: usize, max: usize| {
            let w = gen.below(max.min(len) as u64 + 1) as usize;
            let start = gen.below((len - w) as u64 + 1) as usize;
            (start, w)
        };
        for _ in 0..self.freq_masks {
            let (f0, w) = span(f, self.freq_width);
            for ch in 0..c {
                x[ch * f * t + f0 * t..ch * f * t + (f0 + w) * t].fill(mean);
            }
        }
        for _ in 0..self.time_masks {
            let (t0, w) = span(t, self.time_width);
            for row in x.chunks_mut(t) {
                row[t0..t0 + w].fill(mean);
            }
        }
    }
}

/// Shifts every row by the same random number of frames in `-max_shift..=max_shift`, filling the
/// vacated frames with the sample's minimum (the silence floor of a log spectrogram). Apply it
/// before normalization.
#[derive(Clone, Debug)]
pub struct TimeShift {
    /// Largest shift, in frames.
    pub max_shift: usize,
}

impl Transform for TimeShift {
    fn apply(&self, x: &mut [f32], shape: &[usize], gen: &mut Generator) {
        let Some((_, _, t)) = dims(shape) else {
            return;
        };
        if x.is_empty() || t == 0 {
            return;
        }
        let m = self.max_shift.min(t - 1) as i64;
        let shift = gen.below(2 * m as u64 + 1) as i64 - m;
        if shift == 0 {
            return;
        }
        let floor = x.iter().copied().fold(f32::INFINITY, f32::min);
        let s = shift.unsigned_abs() as usize;
        for row in x.chunks_mut(t) {
            if shift > 0 {
                row.copy_within(0..t - s, s);
                row[..s].fill(floor);
            } else {
                row.copy_within(s.., 0);
                row[t - s..].fill(floor);
            }
        }
    }
}
