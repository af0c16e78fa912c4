//! Classifiers for fixed-shape samples: an MLP for feature vectors and a CNN (3x3 conv stages,
//! each closed by 2x2 max pooling, then an MLP head) for images. Both are a [`Sequential`]
//! underneath, so their tensors carry PyTorch's `nn.Sequential` names (`0.weight`, ...).

use super::{Model, ModelConfig};
use crate::bail;
use crate::error::Result;
use crate::nn::{
    Activation, BatchNorm, Conv2d, Dropout, Embedding, Flatten, Linear, MaxPool2d, Module,
    Sequential, TensorKind,
};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// A multi-layer perceptron: `Linear → [BatchNorm] → ReLU → [Dropout]` per hidden width, then
/// a linear layer to the classes. Samples of any shape are flattened first.
///
/// ```
/// use fukai::models::{Mlp, MlpConfig};
/// use fukai::nn::Module;
/// let mlp = Mlp::new(MlpConfig::new(&[4], &[16], 3))?;
/// let logits = mlp.forward(&fukai::Tensor::zeros(&[2, 4], fukai::DType::F32)?)?;
/// assert_eq!(logits.shape(), &[2, 3]);
/// assert_eq!(mlp.num_parameters(), 4 * 16 + 16 + 16 * 3 + 3);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Shape of one sample (flattened).
    pub input_shape: Vec<usize>,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Output classes.
    pub classes: usize,
    /// Batch normalization after each hidden linear layer.
    #[serde(default)]
    pub batch_norm: bool,
    /// Dropout after each hidden activation.
    #[serde(default)]
    pub dropout: f64,
    /// Predict `classes` numbers (mean squared error) instead of class logits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regression: bool,
    /// Learned embeddings `[table size, width]` of categorical inputs: the last
    /// `embeddings.len()` input features are category indices into these tables (tabular data
    /// with `model.categorical = "embedding"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeddings: Vec<[usize; 2]>,
}

impl MlpConfig {
    /// No batch norm, no dropout.
    pub fn new(input_shape: &[usize], hidden: &[usize], classes: usize) -> Self {
        MlpConfig {
            input_shape: input_shape.to_vec(),
            hidden: hidden.to_vec(),
            classes,
            batch_norm: false,
            dropout: 0.0,
            regression: false,
            embeddings: Vec::new(),
        }
    }
}

/// A CNN for `[channels, height, width]` samples.
///
/// ```
/// use fukai::models::{Cnn, CnnConfig};
/// use fukai::nn::Module;
/// let cnn = Cnn::new(CnnConfig::new(&[1, 28, 28], &[8, 16], &[32], 10))?;
/// let logits = cnn.forward(&fukai::Tensor::zeros(&[2, 1, 28, 28], fukai::DType::F32)?)?;
/// assert_eq!(logits.shape(), &[2, 10]);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnConfig {
    /// `[channels, height, width]` of one sample.
    pub input_shape: Vec<usize>,
    /// Output channels of each stage.
    pub channels: Vec<usize>,
    /// 3x3 convolutions per stage.
    #[serde(default = "one")]
    pub convs_per_stage: usize,
    /// Hidden widths of the head.
    pub hidden: Vec<usize>,
    /// Output classes.
    pub classes: usize,
    /// Batch normalization after each convolution (whose bias it makes redundant).
    #[serde(default)]
    pub batch_norm: bool,
    /// Dropout before each linear layer of the head.
    #[serde(default)]
    pub dropout: f64,
}

fn one() -> usize {
    1
}

impl CnnConfig {
    /// One convolution per stage, no batch norm, no dropout.
    pub fn new(
        input_shape: &[usize],
        channels: &[usize],
        hidden: &[usize],
        classes: usize,
    ) -> Self {
        CnnConfig {
            input_shape: input_shape.to_vec(),
            channels: channels.to_vec(),
            convs_per_stage: 1,
            hidden: hidden.to_vec(),
            classes,
            batch_norm: false,
            dropout: 0.0,
        }
    }
}

/// The MLP model.
pub struct Mlp {
    net: Sequential,
    embed: Vec<Embedding>,
    cfg: MlpConfig,
}

/// The CNN model.
pub struct Cnn {
    net: Sequential,
    cfg: CnnConfig,
}

/// The most values one input sample may have (a 4096x4096 RGB image is 50M).
pub const MAX_SAMPLE_VALUES: usize = 1 << 26;

fn check_common(what: &'static str, shape: &[usize], classes: usize, dropout: f64) -> Result<()> {
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if shape.is_empty() || shape.contains(&0) || numel.is_none_or(|n| n > MAX_SAMPLE_VALUES) {
        bail!(
            what,
            "input_shape must have positive dims and at most {MAX_SAMPLE_VALUES} values, found {shape:?}"
        );
    }
    if classes == 0 {
        bail!(what, "classes must be positive");
    }
    if !(0.0..1.0).contains(&dropout) {
        bail!(what, "dropout must be in [0, 1), found {dropout}");
    }
    Ok(())
}

impl Mlp {
    /// Builds the network (weights from the default generator).
    pub fn new(cfg: MlpConfig) -> Result<Self> {
        check_common("Mlp", &cfg.input_shape, cfg.classes, cfg.dropout)?;
        let mut net = Sequential::new();
        if cfg.input_shape.len() > 1 {
            net = net.add(Flatten);
        }
        let inputs: usize = cfg.input_shape.iter().product();
        let cats = cfg.embeddings.len();
        if cats > 0 && (cfg.input_shape.len() != 1 || cats > inputs) {
            bail!(
                "Mlp",
                "{cats} embedded inputs need flat samples of at least {cats} features, found {:?}",
                cfg.input_shape
            );
        }
        let mut embed = Vec::new();
        for &[n, d] in &cfg.embeddings {
            if n == 0 || d == 0 || n > crate::data::MAX_CATEGORIES + 1 || d > 4096 {
                bail!(
                    "Mlp",
                    "embedding [{n}, {d}] must have 1..=65537 rows and 1..=4096 columns"
                );
            }
            let mut e = Embedding::new(n, d)?;
            // Row 0 is "unknown": never seen in training, so it must contribute nothing.
            let mut w = e.weight.to_vec::<f32>()?;
            w[..d].fill(0.0);
            e.weight = Tensor::from_vec(w, &[n, d])?.with_grad()?;
            embed.push(e);
        }
        let mut features = inputs - cats + cfg.embeddings.iter().map(|e| e[1]).sum::<usize>();
        for &width in &cfg.hidden {
            net = net.add(Linear::new(features, width, !cfg.batch_norm)?);
            if cfg.batch_norm {
                net = net.add(BatchNorm::new(width)?);
            }
            net = net.add(Activation::Relu);
            if cfg.dropout > 0.0 {
                net = net.add(Dropout::new(cfg.dropout));
            }
            features = width;
        }
        let net = net.add(Linear::new(features, cfg.classes, true)?);
        Ok(Mlp { net, embed, cfg })
    }
}

impl Cnn {
    /// Builds the network (weights from the default generator).
    pub fn new(cfg: CnnConfig) -> Result<Self> {
        check_common("Cnn", &cfg.input_shape, cfg.classes, cfg.dropout)?;
        let [c, mut h, mut w] = match cfg.input_shape[..] {
            [c, h, w] => [c, h, w],
            _ => bail!(
                "Cnn",
                "a cnn needs [channels, height, width] samples, found {:?}",
                cfg.input_shape
            ),
        };
        let mut net = Sequential::new();
        let mut ch = c;
        for &out in &cfg.channels {
            for _ in 0..cfg.convs_per_stage.max(1) {
                net = net.add(Conv2d::with_options(
                    ch,
                    out,
                    [3, 3],
                    [1, 1],
                    [1, 1],
                    [1, 1],
                    1,
                    !cfg.batch_norm,
                )?);
                if cfg.batch_norm {
                    net = net.add(BatchNorm::new(out)?);
                }
                net = net.add(Activation::Relu);
                ch = out;
            }
            if h < 2 || w < 2 {
                bail!(
                    "Cnn",
                    "input {:?} is too small for {} pooling stages",
                    cfg.input_shape,
                    cfg.channels.len()
                );
            }
            net = net.add(MaxPool2d::new(2));
            (h, w) = (h / 2, w / 2);
        }
        net = net.add(Flatten);
        let mut features = ch * h * w;
        for &width in &cfg.hidden {
            if cfg.dropout > 0.0 {
                net = net.add(Dropout::new(cfg.dropout));
            }
            net = net.add(Linear::new(features, width, true)?);
            net = net.add(Activation::Relu);
            features = width;
        }
        if cfg.dropout > 0.0 {
            net = net.add(Dropout::new(cfg.dropout));
        }
        let net = net.add(Linear::new(features, cfg.classes, true)?);
        Ok(Cnn { net, cfg })
    }

    /// The layers, e.g. to read the first convolution's filters or intermediate feature maps.
    pub fn layers(&self) -> &Sequential {
        &self.net
    }

    /// Positions in [`Cnn::layers`] of the convolutions, in order.
    pub fn conv_layers(&self) -> Vec<usize> {
        (self.net.layers().iter().enumerate())
            .filter(|(_, l)| l.describe().starts_with("Conv2d"))
            .map(|(i, _)| i)
            .collect()
    }

    /// Each convolution's feature maps `[B, C, H, W]` for `x`, taken after its activation (the
    /// first ReLU at or after it: batch norm may sit between), from one forward pass.
    pub fn conv_maps(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let layers = self.net.layers();
        let outs = self.net.forward_all(x)?;
        Ok(self
            .conv_layers()
            .into_iter()
            .map(|i| {
                let act = (i..outs.len())
                    .find(|&j| layers[j].describe().starts_with("Relu"))
                    .unwrap_or(i);
                outs[act].clone()
            })
            .collect())
    }
}

impl Mlp {
    /// The layers.
    pub fn layers(&self) -> &Sequential {
        &self.net
    }
}

macro_rules! sequential_model {
    ($ty:ident, $variant:ident) => {
        impl Module for $ty {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                self.net.forward(x)
            }
            fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
                self.net.visit(prefix, f)
            }
            fn set_training(&mut self, on: bool) {
                self.net.set_training(on)
            }
            fn describe(&self) -> String {
                self.net.describe()
            }
            fn to_onnx(
                &self,
                g: &mut crate::onnx::export::Graph,
                prefix: &str,
                x: &crate::onnx::export::Value,
            ) -> Result<crate::onnx::export::Value> {
                self.net.to_onnx(g, prefix, x)
            }
        }
        impl Model for $ty {
            fn config(&self) -> Option<ModelConfig> {
                Some(ModelConfig::$variant(self.cfg.clone()))
            }
        }
    };
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.embed.is_empty() {
            return self.net.forward(x);
        }
        let n = x.shape().last().copied().unwrap_or(0);
        let cats = self.embed.len();
        if x.rank() != 2 || n != self.cfg.input_shape[0] {
            bail!(
                "Mlp",
                "input must be [batch, {}], found {:?}",
                self.cfg.input_shape[0],
                x.shape()
            );
        }
        let mut parts = vec![x.narrow(1, 0, n - cats)?];
        for (j, e) in self.embed.iter().enumerate() {
            let ids = x.narrow(1, n - cats + j, 1)?.reshape(&[x.shape()[0]])?;
            parts.push(e.forward(&ids.to_dtype(crate::DType::I64)?)?);
        }
        self.net.forward(&Tensor::cat(&parts, 1)?)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        self.net.visit(prefix, f);
        for (j, e) in self.embed.iter().enumerate() {
            e.visit(&crate::nn::join(prefix, &format!("embed.{j}")), f);
        }
    }
    fn set_training(&mut self, on: bool) {
        self.net.set_training(on)
    }
    fn to_onnx(
        &self,
        g: &mut crate::onnx::export::Graph,
        prefix: &str,
        x: &crate::onnx::export::Value,
    ) -> Result<crate::onnx::export::Value> {
        if !self.embed.is_empty() {
            return Err(crate::onnx::export::unsupported(
                "an Mlp with embedded categorical inputs",
            ));
        }
        self.net.to_onnx(g, prefix, x)
    }
    fn describe(&self) -> String {
        let e: Vec<String> = self.embed.iter().map(|e| e.describe()).collect();
        if e.is_empty() {
            self.net.describe()
        } else {
            format!("[{}] -> {}", e.join(", "), self.net.describe())
        }
    }
}

impl Model for Mlp {
    fn config(&self) -> Option<ModelConfig> {
        Some(ModelConfig::Mlp(self.cfg.clone()))
    }
    fn task(&self) -> super::Task {
        if self.cfg.regression {
            super::Task::Regression
        } else {
            super::Task::Classification
        }
    }
}
sequential_model!(Cnn, Cnn);
