//! Short-time Fourier transform of a real signal (through `realfft`), with the conventions of
//! `torch.stft` / `torchaudio.transforms.Spectrogram`: a periodic window of `win_length` centred
//! in `n_fft`, frames every `hop_length` samples, and with `center` the signal padded by
//! `n_fft / 2` on both sides (reflect or zeros) so frame `t` is centred on sample `t * hop`.

use crate::bail;
use crate::error::Result;
use realfft::RealFftPlanner;

/// Window functions (periodic, as `torch.hann_window(n)` / `scipy.signal.get_window`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// `0.5 - 0.5 cos(2 pi n / N)`.
    Hann,
    /// `0.54 - 0.46 cos(2 pi n / N)`.
    Hamming,
    /// All ones.
    Rectangular,
}

impl Window {
    /// The periodic window of length `n`.
    pub fn values(self, n: usize) -> Vec<f64> {
        let w = std::f64::consts::TAU / n.max(1) as f64;
        (0..n)
            .map(|i| match self {
                Window::Hann => 0.5 - 0.5 * (w * i as f64).cos(),
                Window::Hamming => 0.54 - 0.46 * (w * i as f64).cos(),
                Window::Rectangular => 1.0,
            })
            .collect()
    }
}

/// How `center` pads the signal's ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// Mirror without repeating the edge sample (`torch.stft`'s default); needs more than
    /// `n_fft / 2` samples.
    Reflect,
    /// Zeros.
    Zeros,
}

/// STFT settings.
#[derive(Clone, Debug, PartialEq)]
pub struct StftConfig {
    /// FFT size: `n_fft / 2 + 1` frequency bins.
    pub n_fft: usize,
    /// Samples between frames.
    pub hop_length: usize,
    /// Window length (at most `n_fft`; centred and zero-padded to it).
    pub win_length: usize,
    /// Window function.
    pub window: Window,
    /// Pad by `n_fft / 2` on both sides so frames are centred on `t * hop`.
    pub center: bool,
    /// Padding used when `center` is on.
    pub pad_mode: PadMode,
}

impl StftConfig {
    /// Hann window of `n_fft`, centred frames with reflect padding (torch's defaults).
    pub fn new(n_fft: usize, hop_length: usize) -> Self {
        StftConfig {
            n_fft,
            hop_length,
            win_length: n_fft,
            window: Window::Hann,
            center: true,
            pad_mode: PadMode::Reflect,
        }
    }
    /// Frequency bins: `n_fft / 2 + 1`.
    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }
    /// Frames for a signal of `n` samples.
    pub fn frames(&self, n: usize) -> usize {
        if self.center {
            1 + n / self.hop_length.max(1)
        } else if n >= self.n_fft {
            1 + (n - self.n_fft) / self.hop_length.max(1)
        } else {
            0
        }
    }
}

/// A real-valued time-frequency map, `[bins, frames]` row-major (frequency is the row, as in
/// torch's `[freq, time]`), so it reads as a one-channel image with time along the width.
#[derive(Clone, Debug, PartialEq)]
pub struct Spectrogram {
    /// `bins * frames` values.
    pub data: Vec<f32>,
    /// Rows (frequency bins or mel bands or coefficients).
    pub bins: usize,
    /// Columns (frames).
    pub frames: usize,
}

/// `|STFT(x)|^power` (power 1: magnitude, 2: power spectrum), shape `[n_fft / 2 + 1, frames]`.
pub fn spectrogram(x: &[f32], cfg: &StftConfig, power: f64) -> Result<Spectrogram> {
    let (n_fft, hop, win) = (cfg.n_fft, cfg.hop_length, cfg.win_length);
    if n_fft < 2 || hop == 0 || win == 0 || win > n_fft {
        bail!(
            "stft",
            "needs n_fft >= 2, hop_length >= 1 and 1 <= win_length <= n_fft, found n_fft {n_fft}, \
             hop_length {hop}, win_length {win}"
        );
    }
    if !(power > 0.0 && power.is_finite()) {
        bail!("stft", "power must be positive, found {power}");
    }
    let half = n_fft / 2;
    let padded: Vec<f64> = if cfg.center {
        if cfg.pad_mode == PadMode::Reflect && x.len() <= half {
            bail!(
                "stft",
                "reflect padding needs more than n_fft / 2 = {half} samples, found {}",
                x.len()
            );
        }
        let n = x.len() as i64;
        (-(half as i64)..n + half as i64)
            .map(|i| {
                let j = if i < 0 {
                    -i
                } else if i >= n {
                    2 * (n - 1) - i
                } else {
                    i
                };
                if (0..n).contains(&i) || cfg.pad_mode == PadMode::Reflect {
                    x[j as usize] as f64
                } else {
                    0.0
                }
            })
            .collect()
    } else {
        x.iter().map(|&v| v as f64).collect()
    };
    let frames = cfg.frames(x.len());
    let bins = cfg.bins();
    // The window, zero-padded to n_fft with win_length centred (torch.stft's layout).
    let mut window = vec![0f64; n_fft];
    let off = (n_fft - win) / 2;
    window[off..off + win].copy_from_slice(&cfg.window.values(win));
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    let mut data = vec![0f32; bins * frames];
    for t in 0..frames {
        let start = t * hop;
        for (i, v) in input.iter_mut().enumerate() {
            *v = padded[start + i] * window[i];
        }
        fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch)
            .expect("buffers come from the plan");
        for (f, c) in spectrum.iter().enumerate() {
            let p = c.re * c.re + c.im * c.im;
            data[f * frames + t] = if power == 2.0 {
                p as f32
            } else {
                p.powf(power / 2.0) as f32
            };
        }
    }
    Ok(Spectrogram { data, bins, frames })
}
