//! Recurrent sequence models: a stacked RNN/GRU/LSTM read at each sequence's final states (its
//! last valid step, in both directions when bidirectional), then a linear head. The same
//! network classifies padded variable-length sequences ([`SeqClassifier`]) or predicts the next
//! `outputs` values of a series ([`SeqForecaster`]).

use super::{Model, ModelConfig, Task};
use crate::bail;
use crate::data::Batch;
use crate::error::Result;
use crate::nn::{join, Linear, Module, Rnn, RnnOptions, TensorKind};
use crate::onnx::export::{layers::transpose, rnn::rnn_stack, Graph, Value};
use crate::ops::CellKind;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Shape of a recurrent model.
///
/// ```
/// use fukai::models::{SeqClassifier, SeqConfig};
/// use fukai::nn::Module;
/// let m = SeqClassifier::new(SeqConfig::new("lstm", 12, 32, 9))?;
/// let logits = m.forward(&fukai::Tensor::zeros(&[4, 20, 12], fukai::DType::F32)?)?;
/// assert_eq!(logits.shape(), &[4, 9]);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeqConfig {
    /// `lstm`, `gru` or `rnn` (tanh).
    pub cell: String,
    /// Features per time step.
    pub inputs: usize,
    /// Hidden width of every layer.
    pub hidden: usize,
    /// Stacked layers.
    #[serde(default = "one")]
    pub layers: usize,
    /// Also read each sequence backwards.
    #[serde(default)]
    pub bidirectional: bool,
    /// Dropout between stacked layers.
    #[serde(default)]
    pub dropout: f64,
    /// Classes (classifier) or predicted steps (forecaster).
    pub outputs: usize,
}

fn one() -> usize {
    1
}

impl SeqConfig {
    /// One unidirectional layer without dropout.
    pub fn new(cell: &str, inputs: usize, hidden: usize, outputs: usize) -> Self {
        SeqConfig {
            cell: cell.into(),
            inputs,
            hidden,
            layers: 1,
            bidirectional: false,
            dropout: 0.0,
            outputs,
        }
    }
}

/// The network both sequence models share.
struct SeqNet {
    rnn: Rnn,
    head: Linear,
    cfg: SeqConfig,
}

impl SeqNet {
    fn new(cfg: SeqConfig) -> Result<Self> {
        let cell = match cfg.cell.as_str() {
            "lstm" => CellKind::Lstm,
            "gru" => CellKind::Gru,
            "rnn" => CellKind::RnnTanh,
            other => bail!(
                "SeqConfig",
                "cell {other:?} is unknown; expected \"lstm\", \"gru\" or \"rnn\""
            ),
        };
        if cfg.inputs == 0 || cfg.hidden == 0 || cfg.layers == 0 || cfg.outputs == 0 {
            bail!(
                "SeqConfig",
                "inputs, hidden, layers and outputs must be positive, found {cfg:?}"
            );
        }
        if !(0.0..1.0).contains(&cfg.dropout) {
            bail!(
                "SeqConfig",
                "dropout must be in [0, 1), found {}",
                cfg.dropout
            );
        }
        let opts = RnnOptions {
            num_layers: cfg.layers,
            bidirectional: cfg.bidirectional,
            batch_first: true,
            dropout: cfg.dropout,
            bias: true,
        };
        let rnn = Rnn::new(cell, cfg.inputs, cfg.hidden, opts)?;
        let feat = cfg.hidden * rnn.directions();
        Ok(SeqNet {
            rnn,
            head: Linear::new(feat, cfg.outputs, true)?,
            cfg,
        })
    }

    fn forward_lengths(&self, x: &Tensor, lengths: Option<&[usize]>) -> Result<Tensor> {
        let r = self.rnn.forward_seq(x, None, lengths)?;
        let d = self.rnn.directions();
        let last = r.h_n.narrow(0, (self.cfg.layers - 1) * d, d)?;
        let b = x.shape()[0];
        let feat = if d == 1 {
            last.squeeze(0)?
        } else {
            last.permute(&[1, 0, 2])?
                .contiguous()?
                .reshape(&[b, d * self.rnn.hidden_size()])?
        };
        self.head.forward(&feat)
    }

    /// The graph of `forward_lengths(x, None)`: every row runs all `T` steps (the graph has
    /// no lengths input; pad-free batches or one sequence at a time).
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        let xt = transpose(g, x, &[1, 0, 2], &join(prefix, "time_major"));
        let last = rnn_stack(g, &join(prefix, "rnn"), &self.rnn, &xt, false)?.h_last;
        self.head.to_onnx(g, &join(prefix, "head"), &last)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        self.rnn.visit(&join(prefix, "rnn"), f);
        self.head.visit(&join(prefix, "head"), f);
    }
}

macro_rules! seq_model {
    ($(#[$doc:meta])* $ty:ident, $variant:ident, $task:expr) => {
        $(#[$doc])*
        pub struct $ty(SeqNet);

        impl $ty {
            /// Builds the model (weights from the default generator).
            pub fn new(cfg: SeqConfig) -> Result<Self> {
                Ok($ty(SeqNet::new(cfg)?))
            }
            /// Outputs for `x` `[B, T, F]` whose rows are valid up to `lengths` (all `T`
            /// when `None`).
            pub fn forward_lengths(&self, x: &Tensor, lengths: Option<&[usize]>) -> Result<Tensor> {
                self.0.forward_lengths(x, lengths)
            }
        }

        impl Module for $ty {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                self.0.forward_lengths(x, None)
            }
            fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
                self.0.visit(prefix, f)
            }
            fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
                self.0.to_onnx(g, prefix, x)
            }
            fn set_training(&mut self, on: bool) {
                self.0.rnn.set_training(on);
            }
            fn describe(&self) -> String {
                format!("{} -> {}", self.0.rnn.describe(), self.0.head.describe())
            }
        }

        impl Model for $ty {
            fn config(&self) -> Option<ModelConfig> {
                Some(ModelConfig::$variant(self.0.cfg.clone()))
            }
            fn task(&self) -> Task {
                $task
            }
            fn forward_batch(&self, b: &Batch) -> Result<Tensor> {
                self.0.forward_lengths(&b.x, b.lengths.as_deref())
            }
        }
    };
}

seq_model!(
    /// Classifies sequences (`[B, T, F]`, padded, with lengths) into `outputs` classes.
    SeqClassifier,
    SeqClassifier,
    Task::Classification
);
seq_model!(
    /// Predicts the next `outputs` values of a series from a window `[B, T, F]` (MSE).
    SeqForecaster,
    SeqForecaster,
    Task::Regression
);
