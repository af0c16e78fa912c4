//! fukai in the browser. The three panels of the web page (`web/`) are three types here, plain
//! Rust over the `fukai` library so that native tests run exactly the code the page runs:
//!
//! - [`DigitModel`]: a trained image classifier (mnist-cnn) from checkpoint bytes; a canvas
//!   drawing becomes its 28×28 input ([`drawing_to_input`]), it gives class probabilities and
//!   the first conv layer's feature maps.
//! - [`SentenceModel`]: a Hugging Face BERT encoder (all-MiniLM-L6-v2) from the bytes of its
//!   `config.json`, `model.safetensors` and `tokenizer.json`; sentence embeddings as
//!   sentence-transformers computes them.
//! - [`MnistTraining`]: an MLP trained step by step on MNIST rows with fukai's data loader,
//!   loss and Adam, so a Web Worker can run a few steps, report, and stop when asked.
//!
//! On `wasm32` the `bindings` module exports them through wasm-bindgen; every error becomes a
//! JavaScript `Error` carrying fukai's message (which names the file and field).

mod digits;
mod drawing;
mod sentences;
mod training;

#[cfg(target_arch = "wasm32")]
mod bindings;

pub use digits::{DigitModel, FeatureMaps};
pub use drawing::drawing_to_input;
pub use sentences::SentenceModel;
pub use training::{parse_mnist_csv, MnistTraining, StepStats};
