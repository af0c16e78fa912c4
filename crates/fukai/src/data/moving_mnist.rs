//! Moving MNIST (Srivastava et al., 2015): digits bouncing inside a larger frame, the standard
//! test bed for video prediction. Clips are made on demand from any set of 28×28 digits, each
//! from its own seeded stream, so clip `i` is the same wherever and whenever it is read and a
//! data set of any size costs no memory.

use super::video::Clips;
use crate::error::{op_err, Result};
use crate::rng::Generator;
use std::sync::Arc;

/// Side of an MNIST digit.
const DIGIT: usize = 28;

/// How clips are made; the defaults are the standard set's (20 frames of 64×64, two digits).
#[derive(Clone, Debug, PartialEq)]
pub struct MovingMnistConfig {
    /// Clips in the set.
    pub clips: usize,
    /// Frames per clip.
    pub frames: usize,
    /// Side of the square frame (at least 28).
    pub size: usize,
    /// Digits per clip.
    pub digits: usize,
    /// Speed range in pixels per frame.
    pub speed: (f64, f64),
    /// Seed of the set: clip `i` comes from stream `i` of this seed.
    pub seed: u64,
}

impl Default for MovingMnistConfig {
    fn default() -> Self {
        MovingMnistConfig {
            clips: 10_000,
            frames: 20,
            size: 64,
            digits: 2,
            speed: (2.0, 5.0),
            seed: 0,
        }
    }
}

/// A Moving MNIST set over given digit images.
///
/// ```
/// use fukai::data::{Clips, MovingMnist, MovingMnistConfig};
/// // Two "digits": a white square and a grey one (any 28×28 images in [0, 1] do).
/// let mut digits = vec![0f32; 2 * 28 * 28];
/// digits[..28 * 28].fill(1.0);
/// digits[28 * 28..].fill(0.5);
/// let cfg = MovingMnistConfig { clips: 4, frames: 5, ..Default::default() };
/// let set = MovingMnist::new(digits, cfg)?;
/// assert_eq!((set.len(), set.frames(), set.frame_shape()), (4, 5, [1, 64, 64]));
/// let (mut a, mut b) = (vec![0f32; set.clip_len()], vec![0f32; set.clip_len()]);
/// set.clip(3, &mut a)?;
/// set.clip(3, &mut b)?;
/// assert_eq!(a, b); // the same clip every time
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MovingMnist {
    digits: Arc<Vec<f32>>,
    count: usize,
    cfg: MovingMnistConfig,
}

impl MovingMnist {
    /// A set drawing from `digits` (`[N, 28, 28]` values in [0, 1]).
    pub fn new(digits: Vec<f32>, cfg: MovingMnistConfig) -> Result<Self> {
        const OP: &str = "MovingMnist";
        let plane = DIGIT * DIGIT;
        if digits.is_empty() || !digits.len().is_multiple_of(plane) {
            return Err(op_err(
                OP,
                format!(
                    "digits must be [N, 28, 28] with N ≥ 1, found {} values",
                    digits.len()
                ),
            ));
        }
        if cfg.size < DIGIT || cfg.size > 4096 {
            return Err(op_err(
                OP,
                format!("frame size must be in 28..=4096, found {}", cfg.size),
            ));
        }
        if cfg.frames == 0 || cfg.digits == 0 || cfg.clips == 0 {
            return Err(op_err(
                OP,
                format!(
                    "clips, frames and digits per clip must be positive, found {}, {} and {}",
                    cfg.clips, cfg.frames, cfg.digits
                ),
            ));
        }
        let (lo, hi) = cfg.speed;
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi) {
            return Err(op_err(
                OP,
                format!("speed must be a range 0 ≤ lo ≤ hi, found ({lo}, {hi})"),
            ));
        }
        let count = digits.len() / plane;
        Ok(MovingMnist {
            digits: Arc::new(digits),
            count,
            cfg,
        })
    }

    /// The config the set was made with.
    pub fn config(&self) -> &MovingMnistConfig {
        &self.cfg
    }

    /// The same digits under another config (a test set with another seed, say).
    pub fn with_config(&self, cfg: MovingMnistConfig) -> Result<Self> {
        MovingMnist::new(self.digits.to_vec(), cfg)
    }

    /// The top-left corner of each digit in each frame, and which digits: what clip `index`
    /// draws (`[frame][digit] = (row, col)`).
    pub fn trajectory(&self, index: usize) -> (Vec<usize>, Vec<Vec<(usize, usize)>>) {
        let cfg = &self.cfg;
        let mut g = Generator::new(cfg.seed).fork(index as u64, 0x6d6e_6973);
        let lim = (cfg.size - DIGIT) as f64;
        let which: Vec<usize> = (0..cfg.digits)
            .map(|_| g.below(self.count as u64) as usize)
            .collect();
        let mut paths = vec![Vec::with_capacity(cfg.digits); cfg.frames];
        for _ in 0..cfg.digits {
            let u = g.uniform_f64(4);
            let (mut y, mut x) = (u[0] * lim, u[1] * lim);
            let theta = std::f64::consts::TAU * u[2];
            let speed = cfg.speed.0 + (cfg.speed.1 - cfg.speed.0) * u[3];
            let (mut vy, mut vx) = (speed * theta.sin(), speed * theta.cos());
            for frame in paths.iter_mut() {
                frame.push((y.round() as usize, x.round() as usize));
                (y, vy) = bounce(y + vy, vy, lim);
                (x, vx) = bounce(x + vx, vx, lim);
            }
        }
        (which, paths)
    }
}

/// Reflects a coordinate that left `[0, lim]` back inside, reversing its velocity.
fn bounce(p: f64, v: f64, lim: f64) -> (f64, f64) {
    if p < 0.0 {
        ((-p).min(lim), -v)
    } else if p > lim {
        ((2.0 * lim - p).max(0.0), -v)
    } else {
        (p, v)
    }
}

impl Clips for MovingMnist {
    fn len(&self) -> usize {
        self.cfg.clips
    }
    fn frames(&self) -> usize {
        self.cfg.frames
    }
    fn frame_shape(&self) -> [usize; 3] {
        [1, self.cfg.size, self.cfg.size]
    }
    /// Overlapping digits combine by their maximum, as in the original set.
    fn clip(&self, index: usize, out: &mut [f32]) -> Result<()> {
        let s = self.cfg.size;
        if index >= self.len() || out.len() != self.clip_len() {
            return Err(op_err(
                "MovingMnist::clip",
                format!(
                    "clip {index} of {} into {} values (a clip has {})",
                    self.len(),
                    out.len(),
                    self.clip_len()
                ),
            ));
        }
        out.fill(0.0);
        let (which, paths) = self.trajectory(index);
        for (frame, spots) in out.chunks_exact_mut(s * s).zip(&paths) {
            for (&d, &(y0, x0)) in which.iter().zip(spots) {
                let digit = &self.digits[d * DIGIT * DIGIT..(d + 1) * DIGIT * DIGIT];
                for (r, row) in digit.chunks_exact(DIGIT).enumerate() {
                    let dst = &mut frame[(y0 + r) * s + x0..(y0 + r) * s + x0 + DIGIT];
                    for (o, &v) in dst.iter_mut().zip(row) {
                        *o = o.max(v);
                    }
                }
            }
        }
        Ok(())
    }
}
