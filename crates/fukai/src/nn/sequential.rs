//! A chain of modules applied in order; children are named "0", "1", ... as in PyTorch.

use super::{join, Module, TensorKind};
use crate::error::Result;
use crate::onnx::export::{Graph, Value};
use crate::tensor::Tensor;

/// Modules applied one after another.
///
/// ```
/// use fukai::nn::{Activation, Linear, Module, Sequential};
/// use fukai::{DType, Tensor};
/// let model = Sequential::new()
///     .add(Linear::new(4, 8, true)?)
///     .add(Activation::Relu)
///     .add(Linear::new(8, 3, true)?);
/// assert_eq!(model.forward(&Tensor::randn(&[5, 4], DType::F32)?)?.shape(), &[5, 3]);
/// let names: Vec<String> = model.state_dict().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// assert_eq!(model.describe(), "Sequential[Linear(4 -> 8), Relu, Linear(8 -> 3)]");
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a layer (builder style).
    #[allow(clippy::should_implement_trait)] // PyTorch's name; not `+` (takes a module, not a Sequential)
    pub fn add(mut self, m: impl Module + 'static) -> Self {
        self.layers.push(Box::new(m));
        self
    }
    /// Appends a boxed layer.
    pub fn push(&mut self, m: Box<dyn Module>) {
        self.layers.push(m);
    }
    /// The layers.
    pub fn layers(&self) -> &[Box<dyn Module>] {
        &self.layers
    }
    /// Runs the chain and returns every layer's output (for feature-map visualization).
    pub fn forward_all(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut outs = Vec::with_capacity(self.layers.len());
        let mut cur = x.clone();
        for l in &self.layers {
            cur = l.forward(&cur)?;
            outs.push(cur.clone());
        }
        Ok(outs)
    }
}

impl Module for Sequential {
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        let mut cur = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            cur = l.to_onnx(g, &join(prefix, &i.to_string()), &cur)?;
        }
        Ok(cur)
    }
    /// Runs the layers in order; a layer followed by a ReLU runs fused with it when the layer
    /// offers that ([`Module::forward_relu`]), which gives the same result.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut cur = x.clone();
        let mut i = 0;
        while i < self.layers.len() {
            let l = &self.layers[i];
            let next_is_relu = self.layers.get(i + 1).is_some_and(|n| n.is_relu());
            if next_is_relu {
                if let Some(y) = l.forward_relu(&cur) {
                    cur = y?;
                    i += 2;
                    continue;
                }
            }
            cur = l.forward(&cur)?;
            i += 1;
        }
        Ok(cur)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        for (i, l) in self.layers.iter().enumerate() {
            l.visit(&join(prefix, &i.to_string()), f);
        }
    }
    fn set_training(&mut self, on: bool) {
        for l in &mut self.layers {
            l.set_training(on);
        }
    }
    fn describe(&self) -> String {
        let inner: Vec<String> = self.layers.iter().map(|l| l.describe()).collect();
        format!("Sequential[{}]", inner.join(", "))
    }
}
