//! Video prediction: from `input_frames` frames `[B, T_in, C, H, W]` to logits of the next
//! `output_frames` `[B, T_out, C, H, W]`. Frames are first cut into `patch`×`patch` patches
//! stacked as channels (space-to-depth, as PredRNN does), so the recurrent or 3-D convolutions
//! run on a grid `patch` times smaller and see further per step.
//! - `convlstm`: an encoder–forecaster (Shi et al., 2015). Stacked [`ConvLstm2d`] layers read the
//!   input frames; a second stack starts from their final states and rolls forward, fed the last
//!   frame and then its own predictions; a 1×1 convolution turns its state into each frame.
//! - `conv3d`: a 3-D convolutional encoder–decoder over (time, height, width): stride-(1,2,2)
//!   [`Conv3d`]s down, [`ConvTranspose3d`]s back up, then a 1×1 convolution across all input
//!   times and channels gives each predicted frame.

use super::{Model, ModelConfig, Task};
use crate::bail;
use crate::error::Result;
use crate::nn::{
    join, Activation, Conv2d, Conv3d, ConvLstm2d, ConvTranspose3d, Module, Sequential, TensorKind,
};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// A video predictor's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoConfig {
    /// `"convlstm"` or `"conv3d"`.
    pub arch: String,
    /// One frame, `[C, H, W]`, values in [0, 1]; H and W divisible by `patch` (and, for
    /// conv3d, by `patch * 2^(hidden.len() - 1)`).
    pub frame_shape: Vec<usize>,
    /// Frames read.
    pub input_frames: usize,
    /// Frames predicted.
    pub output_frames: usize,
    /// Side of the square patches stacked as channels.
    pub patch: usize,
    /// Hidden channels: per ConvLSTM layer (encoder and forecaster alike), or per conv3d stage.
    pub hidden: Vec<usize>,
    /// Side of the ConvLSTM kernels (odd).
    #[serde(default = "three")]
    pub kernel: usize,
}

fn three() -> usize {
    3
}

enum Net {
    ConvLstm {
        encoder: Vec<ConvLstm2d>,
        forecaster: Vec<ConvLstm2d>,
        head: Conv2d,
    },
    Conv3d {
        body: Sequential,
        head: Conv2d,
        body_channels: usize,
    },
}

/// A video predictor; see the module docs.
///
/// ```
/// use fukai::models::{VideoConfig, VideoPredictor};
/// use fukai::nn::Module;
/// let cfg = VideoConfig { arch: "convlstm".into(), frame_shape: vec![1, 16, 16], input_frames: 3, output_frames: 2, patch: 4, hidden: vec![8], kernel: 3 };
/// let model = VideoPredictor::new(cfg)?;
/// let frames = fukai::Tensor::rand(&[2, 3, 1, 16, 16], fukai::DType::F32)?;
/// assert_eq!(model.forward(&frames)?.shape(), &[2, 2, 1, 16, 16]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct VideoPredictor {
    net: Net,
    cfg: VideoConfig,
}

impl VideoPredictor {
    /// Builds the network (weights from the default generator).
    pub fn new(cfg: VideoConfig) -> Result<Self> {
        const OP: &str = "VideoPredictor";
        let [c, h, w] = match cfg.frame_shape[..] {
            [c, h, w] if c > 0 && h > 0 && w > 0 => [c, h, w],
            _ => bail!(
                OP,
                "needs frames of shape [channels, height, width], found {:?}",
                cfg.frame_shape
            ),
        };
        let p = cfg.patch;
        if p == 0 || p > 16 || h % p != 0 || w % p != 0 {
            bail!(
                OP,
                "patch must be in 1..=16 and divide the frame's {h}x{w}, found {p}"
            );
        }
        if cfg.input_frames == 0
            || cfg.output_frames == 0
            || cfg.input_frames > 1000
            || cfg.output_frames > 1000
        {
            bail!(
                OP,
                "input_frames and output_frames must be in 1..=1000, found {} and {}",
                cfg.input_frames,
                cfg.output_frames
            );
        }
        if cfg.hidden.is_empty() || cfg.hidden.len() > 8 || cfg.hidden.contains(&0) {
            bail!(
                OP,
                "hidden must list 1 to 8 positive widths, found {:?}",
                cfg.hidden
            );
        }
        let cp = c * p * p;
        let net = match cfg.arch.as_str() {
            "convlstm" => {
                let stack = || -> Result<Vec<ConvLstm2d>> {
                    let mut ins = cp;
                    cfg.hidden
                        .iter()
                        .map(|&hid| {
                            let l = ConvLstm2d::new(ins, hid, cfg.kernel)?;
                            ins = hid;
                            Ok(l)
                        })
                        .collect()
                };
                let last = *cfg.hidden.last().expect("checked non-empty");
                Net::ConvLstm {
                    encoder: stack()?,
                    forecaster: stack()?,
                    head: Conv2d::new(last, cp, 1, 0)?,
                }
            }
            "conv3d" => {
                let down = 1usize << (cfg.hidden.len() - 1);
                if !(h / p).is_multiple_of(down) || !(w / p).is_multiple_of(down) {
                    bail!(
                        OP,
                        "{} conv3d stages halve the {}x{} patch grid {} times: it must be divisible by {down}",
                        cfg.hidden.len(),
                        h / p,
                        w / p,
                        cfg.hidden.len() - 1
                    );
                }
                let mut body = Sequential::new();
                let mut ins = cp;
                for (i, &hid) in cfg.hidden.iter().enumerate() {
                    let s = if i == 0 { [1, 1, 1] } else { [1, 2, 2] };
                    body = body
                        .add(Conv3d::with_options(
                            ins,
                            hid,
                            [3, 3, 3],
                            s,
                            [1, 1, 1],
                            [1, 1, 1],
                            1,
                            true,
                        )?)
                        .add(Activation::Relu);
                    ins = hid;
                }
                for &hid in cfg.hidden.iter().rev().skip(1) {
                    body = body
                        .add(ConvTranspose3d::with_options(
                            ins,
                            hid,
                            [3, 4, 4],
                            [1, 2, 2],
                            [1, 1, 1],
                            [0, 0, 0],
                            [1, 1, 1],
                            1,
                            true,
                        )?)
                        .add(Activation::Relu);
                    ins = hid;
                }
                Net::Conv3d {
                    body,
                    head: Conv2d::new(ins * cfg.input_frames, cp * cfg.output_frames, 1, 0)?,
                    body_channels: ins,
                }
            }
            other => bail!(
                OP,
                "arch must be \"convlstm\" or \"conv3d\", found {other:?}"
            ),
        };
        Ok(VideoPredictor { net, cfg })
    }

    /// Its config.
    pub fn cfg(&self) -> &VideoConfig {
        &self.cfg
    }

    /// `[B, T, C, H, W]` → `[B, T, C*p*p, H/p, W/p]`.
    fn patch(&self, x: &Tensor) -> Result<Tensor> {
        let [b, t, c, h, w] = x.shape()[..] else {
            unreachable!("checked by forward")
        };
        let p = self.cfg.patch;
        x.reshape(&[b * t, c, h / p, p, w / p, p])?
            .permute(&[0, 1, 3, 5, 2, 4])?
            .reshape(&[b, t, c * p * p, h / p, w / p])
    }

    /// The inverse of [`Self::patch`].
    fn unpatch(&self, x: &Tensor) -> Result<Tensor> {
        let [b, t, _, gh, gw] = x.shape()[..] else {
            unreachable!("made by forward")
        };
        let (p, c) = (self.cfg.patch, self.cfg.frame_shape[0]);
        x.reshape(&[b * t, c, p, p, gh, gw])?
            .permute(&[0, 1, 4, 2, 5, 3])?
            .reshape(&[b, t, c, gh * p, gw * p])
    }

    fn convlstm(
        encoder: &[ConvLstm2d],
        forecaster: &[ConvLstm2d],
        head: &Conv2d,
        xs: &Tensor,
        steps: usize,
    ) -> Result<Tensor> {
        let t_in = xs.shape()[1];
        let frame = |t: usize| xs.narrow(1, t, 1)?.squeeze(1);
        let mut states: Vec<Option<(Tensor, Tensor)>> = vec![None; encoder.len()];
        let roll = |layers: &[ConvLstm2d], states: &mut [Option<(Tensor, Tensor)>], x: Tensor| {
            let mut inp = x;
            for (l, s) in layers.iter().zip(states.iter_mut()) {
                let (h, c) = l.cell(&inp, s.as_ref().map(|(h, c)| (h, c)))?;
                inp = h.clone();
                *s = Some((h, c));
            }
            Ok::<Tensor, crate::Error>(inp)
        };
        for t in 0..t_in {
            roll(encoder, &mut states, frame(t)?)?;
        }
        let mut prev = frame(t_in - 1)?;
        let mut outs = Vec::with_capacity(steps);
        for _ in 0..steps {
            let h = roll(forecaster, &mut states, prev)?;
            let logits = head.forward(&h)?;
            prev = logits.sigmoid()?;
            outs.push(logits);
        }
        Tensor::stack(&outs, 1)
    }
}

impl Module for VideoPredictor {
    /// Logits of the next `output_frames` frames from `[B, input_frames, C, H, W]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let cfg = &self.cfg;
        let f = &cfg.frame_shape;
        if x.rank() != 5 || x.shape()[1] != cfg.input_frames || x.shape()[2..] != f[..] {
            bail!(
                "VideoPredictor",
                "input must be [batch, {}, {}, {}, {}], found {:?}",
                cfg.input_frames,
                f[0],
                f[1],
                f[2],
                x.shape()
            );
        }
        let xs = self.patch(x)?;
        let out = match &self.net {
            Net::ConvLstm {
                encoder,
                forecaster,
                head,
            } => Self::convlstm(encoder, forecaster, head, &xs, cfg.output_frames)?,
            Net::Conv3d {
                body,
                head,
                body_channels,
            } => {
                let [b, t, _, gh, gw] = xs.shape()[..] else {
                    unreachable!()
                };
                let y = body.forward(&xs.permute(&[0, 2, 1, 3, 4])?)?;
                // Every predicted frame reads every input time: times join the channels.
                let y = y
                    .permute(&[0, 2, 1, 3, 4])?
                    .reshape(&[b, t * body_channels, gh, gw])?;
                let cp = xs.shape()[2];
                head.forward(&y)?
                    .reshape(&[b, cfg.output_frames, cp, gh, gw])?
            }
        };
        self.unpatch(&out)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        match &self.net {
            Net::ConvLstm {
                encoder,
                forecaster,
                head,
            } => {
                for (i, l) in encoder.iter().enumerate() {
                    l.visit(&join(prefix, &format!("encoder.{i}")), f);
                }
                for (i, l) in forecaster.iter().enumerate() {
                    l.visit(&join(prefix, &format!("forecaster.{i}")), f);
                }
                head.visit(&join(prefix, "head"), f);
            }
            Net::Conv3d { body, head, .. } => {
                body.visit(&join(prefix, "body"), f);
                head.visit(&join(prefix, "head"), f);
            }
        }
    }
    fn describe(&self) -> String {
        let c = &self.cfg;
        format!(
            "VideoPredictor({}, {} → {} frames, patch {}, hidden {:?})",
            c.arch, c.input_frames, c.output_frames, c.patch, c.hidden
        )
    }
}

impl Model for VideoPredictor {
    fn config(&self) -> Option<ModelConfig> {
        Some(ModelConfig::Video(self.cfg.clone()))
    }
    fn task(&self) -> Task {
        Task::Reconstruction
    }
}
