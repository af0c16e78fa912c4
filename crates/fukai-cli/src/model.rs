//! Builds the network a config describes.

use crate::config::ModelConfig;
use fukai::nn::{Activation, BatchNorm, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Sequential};
use fukai::{bail, Result};

/// An MLP or a CNN (3x3 conv stages with 2x2 max pooling, then an MLP head) for inputs of
/// `input_shape` (per sample) and `classes` outputs.
pub fn build(cfg: &ModelConfig, input_shape: &[usize], classes: usize) -> Result<Sequential> {
    let mut net = Sequential::new();
    let mut features: usize = input_shape.iter().product();
    match cfg.kind.as_str() {
        "mlp" => {
            if input_shape.len() > 1 {
                net = net.add(Flatten);
            }
        }
        "cnn" => {
            let [c, mut h, mut w] = match input_shape {
                [c, h, w] => [*c, *h, *w],
                _ => bail!(
                    "model",
                    "a cnn needs [channels, height, width] samples, found {input_shape:?}"
                ),
            };
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
                        "model",
                        "input {input_shape:?} is too small for {} pooling stages",
                        cfg.channels.len()
                    );
                }
                net = net.add(MaxPool2d::new(2));
                (h, w) = (h / 2, w / 2);
            }
            net = net.add(Flatten);
            features = ch * h * w;
        }
        other => bail!(
            "model",
            "unknown model kind {other:?}; expected \"mlp\" or \"cnn\""
        ),
    }
    for &width in &cfg.hidden {
        if cfg.dropout > 0.0 && cfg.kind == "cnn" {
            net = net.add(Dropout::new(cfg.dropout));
        }
        net = net.add(Linear::new(
            features,
            width,
            !cfg.batch_norm || cfg.kind == "cnn",
        )?);
        if cfg.batch_norm && cfg.kind == "mlp" {
            net = net.add(BatchNorm::new(width)?);
        }
        net = net.add(Activation::Relu);
        if cfg.dropout > 0.0 && cfg.kind == "mlp" {
            net = net.add(Dropout::new(cfg.dropout));
        }
        features = width;
    }
    if cfg.dropout > 0.0 && cfg.kind == "cnn" {
        net = net.add(Dropout::new(cfg.dropout));
    }
    Ok(net.add(Linear::new(features, classes, true)?))
}
