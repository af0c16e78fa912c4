//! Neural-network building blocks: the [`Module`] trait, layers, activations and losses.
//! Layer initializations match PyTorch's defaults, so the same config trains the same way.

mod activation;
pub mod attention;
mod conv;
mod conv_lstm;
mod init;
mod linear;
pub mod loss;
mod norm;
mod pool;
pub mod position;
mod rnn;
mod sequential;
pub mod transformer;
mod upsample;

pub use activation::{Activation, Dropout, Flatten};
pub use attention::{KvCache, Mask, MultiHeadAttention};
pub use conv::{Conv1d, Conv2d, Conv3d, ConvTranspose2d, ConvTranspose3d};
pub use conv_lstm::ConvLstm2d;
pub use init::{kaiming_uniform, uniform_bound};
pub use linear::{Embedding, Linear};
pub use norm::{
    defer_running_stats, synchronize_batch_norm, BatchNorm, LayerNorm, RmsNorm, RunningUpdate,
};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, AvgPool3d, MaxPool2d, MaxPool3d};
pub use position::{sinusoidal_table, LearnedPositions, Rope, SinusoidalPositions};
pub use rnn::{lengths_from_mask, Rnn, RnnOptions, RnnOutput};
pub use sequential::Sequential;
pub use transformer::{
    BlockConfig, FeedForward, FfnKind, TransformerDecoderLayer, TransformerEncoderLayer,
};
pub use upsample::Upsample;

use crate::bail;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::path::Path;

/// Whether a named tensor is trained (parameter) or only tracked (buffer, e.g. running stats).
///
/// ```
/// use fukai::nn::{BatchNorm, Module, TensorKind};
/// let bn = BatchNorm::new(4)?;
/// let mut seen = Vec::new();
/// bn.visit("bn", &mut |name, _, kind| seen.push((name.to_string(), kind)));
/// assert_eq!(seen[0], ("bn.weight".to_string(), TensorKind::Parameter));
/// assert!(seen.contains(&("bn.running_mean".to_string(), TensorKind::Buffer)));
/// // Buffers are checkpointed but not trained.
/// assert_eq!(bn.parameters().len(), 2);
/// assert_eq!(bn.state_dict().len(), 5);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// Updated by optimizers.
    Parameter,
    /// State saved in checkpoints but not trained.
    Buffer,
}

/// A layer or model: a forward function plus named parameters and buffers.
///
/// A custom module implements `forward` and reports its tensors through `visit`; parameters,
/// state dicts, `zero_grad` and `save`/`load` then come for free. One holding layers that
/// behave differently in training (dropout, batch norm) also forwards `set_training` to them,
/// as [`Sequential`] does: `train()` and `eval()` reach children only through it.
///
/// ```
/// use fukai::nn::{join, Linear, Module, TensorKind};
/// use fukai::{DType, Tensor};
///
/// struct TanhLayer {
///     lin: Linear,
/// }
/// impl Module for TanhLayer {
///     fn forward(&self, x: &Tensor) -> fukai::Result<Tensor> {
///         self.lin.forward(x)?.tanh()
///     }
///     fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
///         self.lin.visit(&join(prefix, "lin"), f);
///     }
/// }
///
/// let m = TanhLayer { lin: Linear::new(3, 2, true)? };
/// let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["lin.weight", "lin.bias"]);
/// assert_eq!(m.num_parameters(), 3 * 2 + 2);
/// let y = m.forward(&Tensor::ones(&[4, 3], DType::F32)?)?;
/// assert_eq!(y.shape(), &[4, 2]);
/// assert!(y.to_vec::<f32>()?.iter().all(|v| v.abs() < 1.0));
/// # Ok::<(), fukai::Error>(())
/// ```
pub trait Module: Send + Sync {
    /// Applies the module.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
    /// Calls `f(name, tensor, kind)` for each parameter and buffer; names are dotted paths
    /// below `prefix`, PyTorch style (`"0.weight"`, `"features.3.running_mean"`).
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {}
    /// Switches train/eval behaviour (dropout, batch norm). Containers forward it to children.
    fn set_training(&mut self, _on: bool) {}
    /// Where the module's first parameter or buffer lives (the CPU for one without any).
    fn device(&self) -> crate::Device {
        let mut found = None;
        self.visit("", &mut |_, t, _| {
            found.get_or_insert(t.device());
        });
        found.unwrap_or_default()
    }
    /// Moves every parameter and buffer to `device` in place (PyTorch's `model.to(device)`):
    /// optimizers built on the parameters keep working, and forward then runs there.
    fn to_device(&self, device: crate::Device) -> Result<()> {
        let mut tensors = Vec::new();
        self.visit("", &mut |_, t, _| tensors.push(t.clone()));
        for t in tensors {
            t.zero_grad();
            t.move_to(device)?;
        }
        Ok(())
    }
    /// Training mode, as PyTorch's `model.train()`: dropout drops, batch norm uses and updates
    /// batch statistics. Layers start in this mode.
    ///
    /// ```
    /// use fukai::nn::{Dropout, Linear, Module, Sequential};
    /// use fukai::{DType, Tensor};
    /// let mut model = Sequential::new().add(Linear::new(4, 64, true)?).add(Dropout::new(0.5));
    /// let x = Tensor::ones(&[2, 4], DType::F32)?;
    /// model.eval();
    /// assert_eq!(model.forward(&x)?.to_vec::<f32>()?, model.forward(&x)?.to_vec::<f32>()?);
    /// model.train();
    /// // Two training passes draw different dropout masks.
    /// assert_ne!(model.forward(&x)?.to_vec::<f32>()?, model.forward(&x)?.to_vec::<f32>()?);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    fn train(&mut self) {
        self.set_training(true);
    }
    /// Inference mode, as PyTorch's `model.eval()`: dropout passes values through, batch norm
    /// uses its running statistics.
    ///
    /// ```
    /// use fukai::nn::{Dropout, Module};
    /// use fukai::{DType, Tensor};
    /// let mut dropout = Dropout::new(0.9);
    /// dropout.eval();
    /// let x = Tensor::ones(&[8], DType::F32)?;
    /// assert_eq!(dropout.forward(&x)?.to_vec::<f32>()?, vec![1.0; 8]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    fn eval(&mut self) {
        self.set_training(false);
    }
    /// `forward(x)` followed by ReLU as one fused op, when this module has one in its current
    /// mode (batch norm in training); `None` means "run the two separately". Containers such
    /// as [`Sequential`] call it for a layer followed by a ReLU; the result must equal the two
    /// ops in sequence.
    fn forward_relu(&self, _x: &Tensor) -> Option<Result<Tensor>> {
        None
    }
    /// Whether this module is a plain ReLU, which the layer before it may fuse.
    fn is_relu(&self) -> bool {
        false
    }
    /// The module's name in summaries, e.g. `"Linear(784 -> 256)"`.
    fn describe(&self) -> String {
        std::any::type_name::<Self>()
            .rsplit("::")
            .next()
            .unwrap_or("Module")
            .to_string()
    }
    /// Appends this module's eval-mode forward to an ONNX graph: `x` is its input and the
    /// returned value its output; weights go in as initializers under `prefix` (their
    /// state-dict names). Layers without a translation return an error naming themselves, so
    /// a custom module can implement this to become exportable ([`crate::onnx::export`]).
    fn to_onnx(
        &self,
        _g: &mut crate::onnx::export::Graph,
        _prefix: &str,
        _x: &crate::onnx::export::Value,
    ) -> Result<crate::onnx::export::Value> {
        Err(crate::onnx::export::unsupported(&self.describe()))
    }

    /// Parameters with their names.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, t, k| {
            if k == TensorKind::Parameter {
                out.push((n.to_string(), t.clone()));
            }
        });
        out
    }
    /// Parameters only.
    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }
    /// Parameters and buffers with their names: what a checkpoint stores.
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, t, _| out.push((n.to_string(), t.clone())));
        out
    }
    /// Total number of trainable scalars.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|p| p.numel()).sum()
    }
    /// Clears every parameter's gradient, as PyTorch's `model.zero_grad()` (an optimizer's
    /// [`crate::optim::Optimizer::zero_grad`] does the same for the tensors it holds).
    ///
    /// ```
    /// use fukai::nn::{Linear, Module};
    /// use fukai::{DType, Tensor};
    /// let layer = Linear::new(3, 2, true)?;
    /// layer.forward(&Tensor::ones(&[1, 3], DType::F32)?)?.sum_all()?.backward()?;
    /// assert!(layer.weight.grad().is_some());
    /// layer.zero_grad();
    /// assert!(layer.parameters().iter().all(|p| p.grad().is_none()));
    /// # Ok::<(), fukai::Error>(())
    /// ```
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad();
        }
    }
    /// Copies values from `state` into this module's tensors in place. Every tensor must be
    /// present with the same shape and dtype; extra entries are an error too.
    ///
    /// ```
    /// use fukai::nn::{Linear, Module};
    /// let a = Linear::new(2, 2, false)?;
    /// let b = Linear::new(2, 2, false)?;
    /// b.load_state_dict(&a.state_dict())?;
    /// assert_eq!(b.weight.to_vec::<f32>()?, a.weight.to_vec::<f32>()?);
    /// assert!(Linear::new(2, 3, false)?.load_state_dict(&a.state_dict()).is_err());
    /// # Ok::<(), fukai::Error>(())
    /// ```
    fn load_state_dict(&self, state: &[(String, Tensor)]) -> Result<()> {
        let own = self.state_dict();
        for (name, t) in &own {
            let Some((_, src)) = state.iter().find(|(n, _)| n == name) else {
                bail!(
                    "load_state_dict",
                    "missing tensor {name:?} (shape {:?})",
                    t.shape()
                );
            };
            if src.shape() != t.shape() || src.dtype() != t.dtype() {
                bail!(
                    "load_state_dict",
                    "tensor {name:?}: model expects {:?} {}, checkpoint has {:?} {}",
                    t.shape(),
                    t.dtype(),
                    src.shape(),
                    src.dtype()
                );
            }
        }
        if let Some((n, _)) = state.iter().find(|(n, _)| !own.iter().any(|(o, _)| o == n)) {
            bail!(
                "load_state_dict",
                "unexpected tensor {n:?}: the model has no such parameter or buffer"
            );
        }
        // Validate everything before writing anything: a failed load leaves the model untouched.
        for (name, t) in &own {
            let src = &state.iter().find(|(n, _)| n == name).expect("checked").1;
            t.copy_from(src)?;
        }
        Ok(())
    }
    /// Writes [`Module::state_dict`] to `path` as safetensors (PyTorch's
    /// `save_file(model.state_dict(), path)`), atomically: a crash mid-save leaves any previous
    /// file intact. Takes `&Path` rather than `impl AsRef<Path>` so `dyn Module` keeps working.
    ///
    /// ```
    /// use fukai::nn::{Linear, Module};
    /// let path = std::env::temp_dir().join(format!("fukai-doc-save-{}.safetensors", std::process::id()));
    /// let trained = Linear::new(3, 2, true)?;
    /// trained.save(&path)?;
    ///
    /// let fresh = Linear::new(3, 2, true)?;
    /// fresh.load(&path)?;
    /// assert_eq!(fresh.weight.to_vec::<f32>()?, trained.weight.to_vec::<f32>()?);
    ///
    /// // A model of another shape is refused, naming the file and both shapes.
    /// let err = Linear::new(3, 4, true)?.load(&path).unwrap_err().to_string();
    /// assert!(err.contains("fukai-doc-save") && err.contains("[4, 3]"), "{err}");
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), fukai::Error>(())
    /// ```
    fn save(&self, path: &Path) -> Result<()> {
        crate::io::save_safetensors(path, &self.state_dict(), None)
    }
    /// Loads weights written by [`Module::save`] (or any safetensors file with exactly this
    /// module's names, shapes and dtypes) in place. Errors name the file; a failed load leaves
    /// the module untouched.
    fn load(&self, path: &Path) -> Result<()> {
        let file = crate::io::load_safetensors(path)?;
        self.load_state_dict(file.tensors())
            .map_err(|e| Error::Format {
                file: path.display().to_string(),
                msg: e.to_string(),
            })
    }
}

/// Joins a module path prefix and a local name with a dot.
///
/// ```
/// assert_eq!(fukai::nn::join("", "weight"), "weight");
/// assert_eq!(fukai::nn::join("encoder.0", "weight"), "encoder.0.weight");
/// ```
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
