//! Convolutional autoencoders for unlabeled images: an encoder of stride-2 convolutions to a
//! latent vector and a decoder of transposed convolutions back to per-pixel logits. With
//! `variational` it is a VAE (Kingma & Welling, 2014): the encoder gives a Gaussian's mean and
//! log-variance, training decodes a sample drawn by the reparameterization trick, and the KL
//! divergence to the standard normal prior joins the loss, weighted by `beta`.

use super::{Model, ModelConfig, Task};
use crate::bail;
use crate::data::Batch;
use crate::error::Result;
use crate::nn::{
    join, Activation, Conv2d, ConvTranspose2d, Flatten, Linear, MaxPool2d, Module, Sequential,
    TensorKind,
};
use crate::tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// An autoencoder's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoencoderConfig {
    /// One sample, `[C, H, W]`, values in [0, 1]; H and W divisible by `2^channels.len()`.
    pub input_shape: Vec<usize>,
    /// Output channels of each 3×3 stride-2 encoder convolution (the decoder mirrors them).
    pub channels: Vec<usize>,
    /// Width of the latent code.
    pub latent: usize,
    /// A VAE: a Gaussian code, sampled in training, with a KL term in the loss.
    #[serde(default)]
    pub variational: bool,
    /// Weight of the KL term (β-VAE; 1 is the plain ELBO).
    #[serde(default = "one")]
    pub beta: f64,
    /// Denoising (Vincent et al., 2008): in training, each input value is zeroed with this
    /// probability and the clean image is the target, which pushes the code towards structure
    /// rather than pixels.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub noise: f64,
    /// Encoder stages halve the image by 2×2 max pooling after a stride-1 convolution, not by
    /// a stride-2 convolution: features that tolerate small shifts, at four times the
    /// encoder's arithmetic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pool: bool,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn one() -> f64 {
    1.0
}

/// A convolutional (variational) autoencoder; see the module docs.
///
/// ```
/// use fukai::models::{Autoencoder, AutoencoderConfig};
/// use fukai::nn::Module;
/// let cfg = AutoencoderConfig { input_shape: vec![1, 28, 28], channels: vec![8, 16], latent: 4, variational: true, beta: 1.0, noise: 0.0, pool: false };
/// let vae = Autoencoder::new(cfg)?;
/// let x = fukai::Tensor::rand(&[2, 1, 28, 28], fukai::DType::F32)?;
/// assert_eq!(vae.encode(&x)?.shape(), &[2, 4]);       // the code's mean
/// assert_eq!(vae.forward(&x)?.shape(), &[2, 1, 28, 28]); // reconstruction logits
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Autoencoder {
    encoder: Sequential,
    to_latent: Linear,
    from_latent: Linear,
    decoder: Sequential,
    /// `[channels, h, w]` where the encoder's convolutions end.
    inner: [usize; 3],
    training: bool,
    cfg: AutoencoderConfig,
}

impl Autoencoder {
    /// Builds the network (weights from the default generator).
    pub fn new(cfg: AutoencoderConfig) -> Result<Self> {
        const OP: &str = "Autoencoder";
        let [c, h, w] = match cfg.input_shape[..] {
            [c, h, w] if c > 0 && h > 0 && w > 0 => [c, h, w],
            _ => bail!(
                OP,
                "needs [channels, height, width] samples, found {:?}",
                cfg.input_shape
            ),
        };
        let stages = cfg.channels.len();
        let fold = 1usize.checked_shl(stages as u32).unwrap_or(0);
        if stages == 0 || stages > 6 || h % fold != 0 || w % fold != 0 {
            bail!(
                OP,
                "{stages} stride-2 stages need 1 to 6 stages and height and width divisible by {fold}, found {h}x{w}"
            );
        }
        if cfg.channels.contains(&0) || cfg.latent == 0 || cfg.latent > 4096 {
            bail!(
                OP,
                "channels and latent must be positive (latent at most 4096), found {:?} and {}",
                cfg.channels,
                cfg.latent
            );
        }
        if !(cfg.beta.is_finite() && cfg.beta >= 0.0) {
            bail!(OP, "beta must be a finite number ≥ 0, found {}", cfg.beta);
        }
        if !(0.0..1.0).contains(&cfg.noise) {
            bail!(OP, "noise must be in [0, 1), found {}", cfg.noise);
        }
        let mut encoder = Sequential::new();
        let mut ch = c;
        let stride = if cfg.pool { 1 } else { 2 };
        for &out in &cfg.channels {
            encoder = encoder
                .add(Conv2d::with_options(
                    ch,
                    out,
                    [3, 3],
                    [stride, stride],
                    [1, 1],
                    [1, 1],
                    1,
                    true,
                )?)
                .add(Activation::Relu);
            if cfg.pool {
                encoder = encoder.add(MaxPool2d::new(2));
            }
            ch = out;
        }
        encoder = encoder.add(Flatten);
        let inner = [ch, h / fold, w / fold];
        let flat = inner.iter().product::<usize>();
        let code = if cfg.variational {
            2 * cfg.latent
        } else {
            cfg.latent
        };
        let to_latent = Linear::new(flat, code, true)?;
        let from_latent = Linear::new(cfg.latent, flat, true)?;
        let mut decoder = Sequential::new();
        let widths: Vec<usize> = cfg
            .channels
            .iter()
            .rev()
            .skip(1)
            .copied()
            .chain([c])
            .collect();
        for (i, &out) in widths.iter().enumerate() {
            decoder = decoder.add(ConvTranspose2d::new(ch, out, 4, 2, 1)?);
            if i + 1 < widths.len() {
                decoder = decoder.add(Activation::Relu);
            }
            ch = out;
        }
        Ok(Autoencoder {
            encoder,
            to_latent,
            from_latent,
            decoder,
            inner,
            training: true,
            cfg,
        })
    }

    /// The encoder's layers (stride-2 convolutions with their ReLUs, then a flatten), e.g. to
    /// read every stage's feature maps with [`Sequential::forward_all`].
    pub fn encoder(&self) -> &Sequential {
        &self.encoder
    }

    /// Its config.
    pub fn cfg(&self) -> &AutoencoderConfig {
        &self.cfg
    }

    /// The code `[B, 2*latent]` (VAE: means, then log-variances) or `[B, latent]`.
    fn code(&self, x: &Tensor) -> Result<Tensor> {
        self.to_latent.forward(&self.features(x)?)
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let want = &self.cfg.input_shape;
        if x.rank() != 4 || x.shape()[1..] != want[..] {
            bail!(
                "Autoencoder",
                "input must be [batch, {}, {}, {}], found {:?}",
                want[0],
                want[1],
                want[2],
                x.shape()
            );
        }
        Ok(())
    }

    /// The latent code of `x` `[B, C, H, W]`: a VAE's posterior mean. What a linear probe or a
    /// picture of the latent space reads.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let code = self.code(x)?;
        if self.cfg.variational {
            code.narrow(1, 0, self.cfg.latent)
        } else {
            Ok(code)
        }
    }

    /// The encoder's last feature maps, flattened `[B, channels * h * w]`: the representation
    /// before the bottleneck.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        self.encoder.forward(x)
    }

    /// Logits `[B, C, H, W]` of the image decoded from codes `z` `[B, latent]` (the sigmoid
    /// gives intensities).
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let [c, h, w] = self.inner;
        let b = z.shape().first().copied().unwrap_or(0);
        if z.rank() != 2 || z.shape()[1] != self.cfg.latent {
            bail!(
                "Autoencoder::decode",
                "codes must be [batch, {}], found {:?}",
                self.cfg.latent,
                z.shape()
            );
        }
        let x = self
            .from_latent
            .forward(z)?
            .relu()?
            .reshape(&[b, c, h, w])?;
        self.decoder.forward(&x)
    }

    /// Reconstruction logits and, for a VAE, `beta` times the KL divergence per sample divided
    /// by the values per sample (the scale of the per-value reconstruction loss). Training
    /// decodes `mu + sigma * eps` (eps from the default generator); evaluation decodes `mu`.
    fn run(&self, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let code = if self.training && self.cfg.noise > 0.0 {
            // Dropout's mask without its rescaling: masked pixels read as black.
            let p = self.cfg.noise;
            self.code(&x.dropout(p, true)?.mul_scalar(1.0 - p)?)?
        } else {
            self.code(x)?
        };
        if !self.cfg.variational {
            return Ok((self.decode(&code)?, None));
        }
        let k = self.cfg.latent;
        let (mu, logvar) = (code.narrow(1, 0, k)?, code.narrow(1, k, k)?);
        let z = if self.training {
            let eps = Tensor::randn(mu.shape(), DType::F32)?
                .to_dtype(mu.dtype())?
                .to(mu.device())?;
            mu.add(&logvar.mul_scalar(0.5)?.exp()?.mul(&eps)?)?
        } else {
            mu.clone()
        };
        // KL(N(mu, sigma²) || N(0, 1)) = -1/2 Σ (1 + log σ² - mu² - σ²), averaged over samples.
        let kl = logvar
            .add_scalar(1.0)?
            .sub(&mu.square()?)?
            .sub(&logvar.exp()?)?
            .sum_all()?
            .mul_scalar(-0.5 / x.shape()[0].max(1) as f64)?;
        let per_value = self.cfg.input_shape.iter().product::<usize>() as f64;
        let penalty = kl.mul_scalar(self.cfg.beta / per_value)?;
        Ok((self.decode(&z)?, Some(penalty)))
    }
}

impl Module for Autoencoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.run(x)?.0)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        self.encoder.visit(&join(prefix, "encoder"), f);
        self.to_latent.visit(&join(prefix, "to_latent"), f);
        self.from_latent.visit(&join(prefix, "from_latent"), f);
        self.decoder.visit(&join(prefix, "decoder"), f);
    }
    fn set_training(&mut self, on: bool) {
        self.training = on;
        self.encoder.set_training(on);
        self.decoder.set_training(on);
    }
    fn describe(&self) -> String {
        format!(
            "{}(encoder: {}, latent {}, decoder: {})",
            if self.cfg.variational {
                "Vae"
            } else {
                "Autoencoder"
            },
            self.encoder.describe(),
            self.cfg.latent,
            self.decoder.describe()
        )
    }
}

impl Model for Autoencoder {
    fn config(&self) -> Option<ModelConfig> {
        Some(ModelConfig::Autoencoder(self.cfg.clone()))
    }
    fn task(&self) -> Task {
        Task::Reconstruction
    }
    fn forward_with_penalty(&self, batch: &Batch) -> Result<(Tensor, Option<Tensor>)> {
        self.run(&batch.x)
    }
}
