//! Per-sample transforms. Randomness comes from a generator seeded per (epoch, sample), so
//! augmentation is identical whatever the thread or prefetch schedule.

use crate::bail;
use crate::error::Result;
use crate::rng::Generator;

/// Changes one sample in place; `shape` is the sample's `[C, H, W]` (or other) shape.
///
/// ```
/// use fukai::data::{DataLoader, InMemory, Transform};
/// use fukai::Generator;
/// use std::sync::Arc;
///
/// /// Shifts all of a sample by one random offset in [0, 0.1).
/// struct Jitter;
/// impl Transform for Jitter {
///     fn apply(&self, x: &mut [f32], _shape: &[usize], gen: &mut Generator) {
///         let shift = gen.below(1000) as f32 / 10_000.0;
///         x.iter_mut().for_each(|v| *v += shift);
///     }
/// }
///
/// let data = InMemory::new(vec![1.0; 8], vec![0; 4], &[2], 1)?;
/// let loader = DataLoader::new(Arc::new(data), 4).transforms(vec![Box::new(Jitter)]);
/// let x = loader.epoch(0).next().unwrap()?.x.to_vec::<f32>()?;
/// assert!(x.iter().all(|&v| (1.0..1.1).contains(&v)));
/// // Seeded per (epoch, sample): the same epoch is augmented the same way again.
/// assert_eq!(x, loader.epoch(0).next().unwrap()?.x.to_vec::<f32>()?);
/// # Ok::<(), fukai::Error>(())
/// ```
pub trait Transform: Send + Sync {
    /// Applies the transform.
    fn apply(&self, x: &mut [f32], shape: &[usize], gen: &mut Generator);
}

/// `(x - mean[c]) / std[c]` per channel (one value applies to all channels).
///
/// ```
/// use fukai::data::{Normalize, Transform};
/// let norm = Normalize::new(vec![0.5], vec![0.25])?;
/// let mut x = [0.0, 1.0];
/// norm.apply(&mut x, &[1, 2], &mut fukai::Generator::new(0));
/// assert_eq!(x, [-2.0, 2.0]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// Per-channel means and standard deviations (one each to apply to all channels). Both
    /// must be non-empty, of equal length and finite, and the deviations positive.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        if mean.is_empty() || mean.len() != std.len() {
            bail!(
                "Normalize",
                "need as many standard deviations as means (at least one), found {} and {}",
                mean.len(),
                std.len()
            );
        }
        if let Some(v) = mean.iter().chain(&std).find(|v| !v.is_finite()) {
            bail!("Normalize", "statistics must be finite, found {v}");
        }
        if let Some(s) = std.iter().find(|&&s| s <= 0.0) {
            bail!(
                "Normalize",
                "standard deviations must be positive, found {s}"
            );
        }
        Ok(Normalize { mean, std })
    }
}

impl Transform for Normalize {
    fn apply(&self, x: &mut [f32], shape: &[usize], _: &mut Generator) {
        let c = shape.first().copied().unwrap_or(1).max(1);
        let plane = x.len() / c;
        for (ch, chunk) in x.chunks_mut(plane.max(1)).enumerate() {
            let (m, s) = (
                self.mean[ch.min(self.mean.len() - 1)],
                self.std[ch.min(self.std.len() - 1)],
            );
            chunk.iter_mut().for_each(|v| *v = (*v - m) / s);
        }
    }
}

/// Zero-pads by `padding` on each side, then crops back to the original size at a random
/// offset (the classic CIFAR/MNIST augmentation).
///
/// ```
/// use fukai::data::{RandomCrop, Transform};
/// let mut img: Vec<f32> = (1..=16).map(|v| v as f32).collect(); // [1, 4, 4]
/// RandomCrop { padding: 1 }.apply(&mut img, &[1, 4, 4], &mut fukai::Generator::new(3));
/// // Shifted by at most one pixel each way: every value is an input pixel or padding.
/// assert!(img.iter().all(|&v| v == 0.0 || (1.0..=16.0).contains(&v)));
/// assert_eq!(img.len(), 16);
/// ```
pub struct RandomCrop {
    /// Pixels of zero padding on each border.
    pub padding: usize,
}

impl Transform for RandomCrop {
    fn apply(&self, x: &mut [f32], shape: &[usize], gen: &mut Generator) {
        let [c, h, w] = match shape {
            [c, h, w] => [*c, *h, *w],
            _ => return,
        };
        let p = self.padding as i64;
        let dy = gen.below(2 * p as u64 + 1) as i64 - p;
        let dx = gen.below(2 * p as u64 + 1) as i64 - p;
        let src = x.to_vec();
        for ch in 0..c {
            for i in 0..h as i64 {
                for j in 0..w as i64 {
                    let (si, sj) = (i + dy, j + dx);
                    let inside = si >= 0 && si < h as i64 && sj >= 0 && sj < w as i64;
                    x[ch * h * w + (i as usize) * w + j as usize] = if inside {
                        src[ch * h * w + si as usize * w + sj as usize]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// Mirrors left-right with probability `p`.
///
/// ```
/// use fukai::data::{RandomHorizontalFlip, Transform};
/// let mut img = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [1, 2, 3]
/// RandomHorizontalFlip { p: 1.0 }.apply(&mut img, &[1, 2, 3], &mut fukai::Generator::new(0));
/// assert_eq!(img, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
/// ```
pub struct RandomHorizontalFlip {
    /// Flip probability.
    pub p: f64,
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, x: &mut [f32], shape: &[usize], gen: &mut Generator) {
        let w = *shape.last().unwrap_or(&1);
        if w < 2 || (gen.below(1 << 24) as f64) >= self.p * (1u64 << 24) as f64 {
            return;
        }
        x.chunks_mut(w).for_each(|row| row.reverse());
    }
}
