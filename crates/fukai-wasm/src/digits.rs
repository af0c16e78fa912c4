//! The digit panel's model: a trained image classifier read from checkpoint bytes.

use fukai::data::Transform;
use fukai::models::{Cnn, ModelConfig};
use fukai::nn::Module;
use fukai::run::{load_trained_bytes, Trained};
use fukai::{bail, Error, Generator, Result, Tensor};

/// A classifier of one-channel images (what `fukai train` writes, e.g. mnist-cnn), with the
/// normalization and class names its checkpoint stores.
pub struct DigitModel {
    trained: Trained,
    side: usize,
    /// The CNN rebuilt with its layers reachable (the generic loader hides them), when it has
    /// a convolution.
    cnn: Option<Cnn>,
}

/// The first conv layer's activations for one input: `channels` maps of `height × width`.
pub struct FeatureMaps {
    /// Values `[channels, height, width]`, row-major.
    pub values: Vec<f32>,
    /// Number of maps.
    pub channels: usize,
    /// Rows of each map.
    pub height: usize,
    /// Columns of each map.
    pub width: usize,
}

impl DigitModel {
    /// Reads a checkpoint from its bytes; `name` names the file in errors. The model must take
    /// square one-channel images (`[1, n, n]`).
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self> {
        let trained = load_trained_bytes(bytes, name)?;
        let shape = match &trained.config {
            ModelConfig::Cnn(c) => c.input_shape.clone(),
            ModelConfig::Mlp(c) => c.input_shape.clone(),
            other => {
                return Err(Error::Format {
                    file: name.into(),
                    msg: format!(
                        "metadata field \"model\": a {} model; the digit panel needs an image \
                         classifier (cnn or mlp)",
                        other.kind()
                    ),
                })
            }
        };
        let side = match shape[..] {
            [1, h, w] if h == w => h,
            _ => {
                return Err(Error::Format {
                    file: name.into(),
                    msg: format!(
                        "metadata field \"model\": input shape {shape:?}; the digit panel draws \
                         square grey images [1, n, n]"
                    ),
                })
            }
        };
        let cnn = match &trained.config {
            ModelConfig::Cnn(c) => {
                let mut cnn = Cnn::new(c.clone())?;
                cnn.load_state_dict(&trained.model.state_dict())?;
                cnn.set_training(false);
                Some(cnn).filter(|m| !m.conv_layers().is_empty())
            }
            _ => None,
        };
        Ok(DigitModel { trained, side, cnn })
    }

    /// The side of the square input images.
    pub fn side(&self) -> usize {
        self.side
    }

    /// Class names in output order (the checkpoint's, else the output indices).
    pub fn classes(&self) -> Vec<String> {
        let n = match &self.trained.config {
            ModelConfig::Cnn(c) => c.classes,
            ModelConfig::Mlp(c) => c.classes,
            _ => 0,
        };
        (0..n)
            .map(|i| {
                self.trained
                    .classes
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| i.to_string())
            })
            .collect()
    }

    /// The batch of one image in `[0, 1]` (`side × side`, row-major), normalized as in training.
    fn batch(&self, pixels: &[f32]) -> Result<Tensor> {
        let n = self.side * self.side;
        if pixels.len() != n {
            bail!(
                "predict",
                "expected {n} pixels ({0}x{0}), got {1}",
                self.side,
                pixels.len()
            );
        }
        if let Some(i) = pixels.iter().position(|v| !v.is_finite()) {
            bail!(
                "predict",
                "pixel {i} is {} (pixels must be finite)",
                pixels[i]
            );
        }
        let mut x = pixels.to_vec();
        let shape = [1, self.side, self.side];
        if let Some(norm) = &self.trained.norm {
            norm.transform()?
                .apply(&mut x, &shape, &mut Generator::new(0));
        }
        Tensor::from_vec(x, &[1, 1, self.side, self.side])
    }

    /// Class probabilities for one image in `[0, 1]`.
    pub fn probabilities(&self, pixels: &[f32]) -> Result<Vec<f32>> {
        let x = self.batch(pixels)?;
        let _g = fukai::no_grad();
        self.trained.model.forward(&x)?.softmax(-1)?.to_vec::<f32>()
    }

    /// The first conv layer's activations for one image, or `None` when the model has none.
    pub fn feature_maps(&self, pixels: &[f32]) -> Result<Option<FeatureMaps>> {
        let Some(cnn) = &self.cnn else {
            return Ok(None);
        };
        let x = self.batch(pixels)?;
        let _g = fukai::no_grad();
        let Some(f) = cnn.conv_maps(&x)?.into_iter().next() else {
            return Ok(None);
        };
        let s = f.shape().to_vec();
        Ok(Some(FeatureMaps {
            values: f.to_vec::<f32>()?,
            channels: s[1],
            height: s[2],
            width: s[3],
        }))
    }
}
