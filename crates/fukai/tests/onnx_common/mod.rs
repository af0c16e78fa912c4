//! What the ONNX export tests share: the error measure and the export-import round trip.
#![allow(dead_code)]

use fukai::models::Model;
use fukai::onnx::{export, Model as OnnxModel};
use fukai::Tensor;

/// Largest |a - b| / (1 + |b|).
pub fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let a = a.to_vec::<f32>().unwrap();
    let b = b.to_vec::<f32>().unwrap();
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
}

/// Runs the graph's one input on `x` and returns its one output.
pub fn run_onnx(bytes: &[u8], x: &Tensor) -> Tensor {
    let back = OnnxModel::from_bytes(bytes).unwrap();
    let name = back.inputs()[0].clone();
    back.run(&[(name.as_str(), x.clone())]).unwrap().remove(0).1
}

/// `model` exported, imported back and run on `x`, against its own forward.
pub fn round_trip(model: &dyn Model, x: &Tensor) -> f32 {
    let proto = export::export_model(model, &[]).unwrap();
    let got = run_onnx(&export::to_bytes(&proto), x);
    max_rel(&got, &model.forward(x).unwrap())
}

/// A GPT small enough for a committed fixture (13 tokens, 2 blocks of width 16, context 8).
pub fn tiny_gpt(tie_weights: bool) -> fukai::models::GptConfig {
    fukai::models::GptConfig {
        vocab: 13,
        layers: 2,
        heads: 2,
        width: 16,
        context: 8,
        tie_weights,
    }
}
