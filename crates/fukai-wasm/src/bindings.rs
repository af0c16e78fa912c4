//! The JavaScript API (wasm-bindgen). Byte arrays come in as `Uint8Array`, results go out as
//! `Float32Array` / `Uint32Array`, and a fukai error becomes a thrown `Error` with its message.

use crate::{DigitModel, MnistTraining, SentenceModel, StepStats};
use wasm_bindgen::prelude::*;

fn js(e: fukai::Error) -> JsError {
    JsError::new(&e.to_string())
}

/// An image classifier checkpoint (`fukai train` output) for the digit panel.
#[wasm_bindgen]
pub struct Digits(DigitModel);

#[wasm_bindgen]
impl Digits {
    /// Reads a checkpoint; `name` names the file in errors.
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8], name: &str) -> Result<Digits, JsError> {
        DigitModel::from_bytes(bytes, name).map(Digits).map_err(js)
    }

    /// Side of the square input image.
    pub fn side(&self) -> usize {
        self.0.side()
    }

    /// Class names in output order.
    pub fn classes(&self) -> Vec<String> {
        self.0.classes()
    }

    /// The model's input (side × side in [0, 1]) for an RGBA canvas drawing.
    #[wasm_bindgen(js_name = inputFromDrawing)]
    pub fn input_from_drawing(
        &self,
        rgba: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Vec<f32>, JsError> {
        crate::drawing_to_input(rgba, width, height, self.0.side()).map_err(js)
    }

    /// Class probabilities for an input.
    pub fn probabilities(&self, pixels: &[f32]) -> Result<Vec<f32>, JsError> {
        self.0.probabilities(pixels).map_err(js)
    }

    /// The first conv layer's maps for an input (undefined for a model without convolutions).
    #[wasm_bindgen(js_name = featureMaps)]
    pub fn feature_maps(&self, pixels: &[f32]) -> Result<Option<Maps>, JsError> {
        let m = self.0.feature_maps(pixels).map_err(js)?;
        Ok(m.map(|m| Maps {
            values: m.values,
            channels: m.channels,
            height: m.height,
            width: m.width,
        }))
    }
}

/// Feature maps `[channels, height, width]`.
#[wasm_bindgen]
pub struct Maps {
    values: Vec<f32>,
    /// Number of maps.
    pub channels: usize,
    /// Rows per map.
    pub height: usize,
    /// Columns per map.
    pub width: usize,
}

#[wasm_bindgen]
impl Maps {
    /// The values, row-major.
    #[wasm_bindgen(getter)]
    pub fn values(&self) -> Vec<f32> {
        self.values.clone()
    }
}

/// A sentence encoder (all-MiniLM-L6-v2 or another BERT) from a model directory's files.
#[wasm_bindgen]
pub struct Sentences(SentenceModel);

#[wasm_bindgen]
impl Sentences {
    /// Builds it from the bytes of `config.json`, `model.safetensors`, `tokenizer.json` and
    /// optionally `sentence_bert_config.json`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config: &[u8],
        weights: &[u8],
        tokenizer: &[u8],
        sentence_bert_config: Option<Vec<u8>>,
    ) -> Result<Sentences, JsError> {
        SentenceModel::from_files(config, weights, tokenizer, sentence_bert_config.as_deref())
            .map(Sentences)
            .map_err(js)
    }

    /// Token ids, special tokens included.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, JsError> {
        self.0.tokenize(text).map_err(js)
    }

    /// The unit-length embedding of a text.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, JsError> {
        self.0.embed(text).map_err(js)
    }

    /// Width of the embeddings.
    pub fn dim(&self) -> usize {
        self.0.dim()
    }
}

/// An MLP learning MNIST rows, a few steps per call.
#[wasm_bindgen]
pub struct Training(MnistTraining);

#[wasm_bindgen]
impl Training {
    /// Parses MNIST CSV text (`name` names it in errors), trains on a stratified
    /// `1 - val_fraction` of its rows and validates on the rest.
    #[wasm_bindgen(constructor)]
    pub fn new(
        csv: &[u8],
        name: &str,
        val_fraction: f64,
        hidden: Vec<u32>,
        lr: f64,
        batch: usize,
        seed: u32,
    ) -> Result<Training, JsError> {
        let (x, y) = crate::parse_mnist_csv(csv, name).map_err(js)?;
        let hidden: Vec<usize> = hidden.into_iter().map(|h| h as usize).collect();
        MnistTraining::new(x, y, val_fraction, &hidden, lr, batch, u64::from(seed))
            .map(Training)
            .map_err(js)
    }

    /// Runs `n` optimizer steps; mean loss and accuracy over their batches.
    pub fn steps(&mut self, n: usize) -> Result<Stats, JsError> {
        self.0.steps(n).map(Stats::from).map_err(js)
    }

    /// Rows trained on.
    #[wasm_bindgen(js_name = trainSamples)]
    pub fn train_samples(&self) -> usize {
        self.0.train_samples()
    }

    /// Loss and accuracy on the validation rows.
    pub fn validate(&mut self) -> Result<Stats, JsError> {
        self.0.validate().map(Stats::from).map_err(js)
    }
}

/// Loss and accuracy over some samples.
#[wasm_bindgen]
#[derive(Clone, Copy)]
pub struct Stats {
    /// Mean cross-entropy.
    pub loss: f32,
    /// Fraction classified right.
    pub accuracy: f32,
    /// Samples.
    pub samples: usize,
}

impl From<StepStats> for Stats {
    fn from(s: StepStats) -> Self {
        Stats {
            loss: s.loss,
            accuracy: s.accuracy,
            samples: s.samples,
        }
    }
}
