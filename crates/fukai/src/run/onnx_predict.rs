//! `fukai predict --model model.onnx`: an image or a row of numbers through an ONNX model.
//!
//! An ONNX file says only its input's shape, so the input is read by that shape: `[N, C, H, W]`
//! takes an image file, `[N, F]` a row of `F` numbers. Files written by
//! [`crate::onnx::export`] from a checkpoint also carry the checkpoint's `classes`, `norm` and
//! `task` metadata, so they predict exactly as the checkpoint does; for any other model the
//! input is used as read (pixels in [0, 1]) and the output is taken as class logits.

use super::predict::{image, numbers, Prediction};
use super::Norm;
use crate::bail;
use crate::data::Transform;
use crate::error::Result;
use crate::onnx::{Dim, Model, Summary};
use crate::tensor::Tensor;
use std::path::Path;

/// Runs one input through `model` (described by `summary`, from the same file).
pub fn predict_onnx(model: &Model, summary: &Summary, input: &str) -> Result<Vec<Prediction>> {
    let _g = crate::no_grad();
    let [inp] = &summary.inputs[..] else {
        bail!(
            "predict",
            "the model has {} inputs; predict feeds models with one",
            summary.inputs.len()
        );
    };
    if inp.dtype != "FLOAT" {
        bail!(
            "predict",
            "input {:?} is {}; predict feeds FLOAT inputs (images, rows of numbers)",
            inp.name,
            inp.dtype
        );
    }
    // The first dimension is the batch; the others must be fixed to know how to read a file.
    let mut sample = Vec::new();
    for d in inp.shape.iter().skip(1) {
        match d {
            Dim::Fixed(n) => sample.push(*n),
            Dim::Symbolic(s) => bail!(
                "predict",
                "input {} has a symbolic dimension {s:?} besides the batch; predict needs a fixed sample shape",
                inp
            ),
        }
    }
    let mut notes = Vec::new();
    let mut x = if sample.len() == 3 && Path::new(input).is_file() {
        let (x, n) = image(Path::new(input), &sample)?;
        notes = n;
        x
    } else if sample.len() == 1 {
        numbers(input, sample[0])?
    } else {
        bail!(
            "predict",
            "input {inp}: predict reads an image file for [batch, channels, height, width] inputs and a row of numbers for [batch, features]"
        )
    };
    if let Some(norm) = summary.meta("norm") {
        let n: Norm = serde_json::from_str(norm).map_err(|e| crate::Error::Format {
            file: "onnx metadata".into(),
            msg: format!("field \"norm\": {e}"),
        })?;
        n.transform()?
            .apply(&mut x, &sample, &mut crate::Generator::new(0));
    } else {
        notes.push(
            "no input normalization in the file's metadata: the input is used as read".into(),
        );
    }
    let mut s = vec![1];
    s.extend_from_slice(&sample);
    let out = model.run(&[(inp.name.as_str(), Tensor::from_vec(x, &s)?)])?;
    let y = &out[0].1;
    if summary.meta("task") == Some("regression") && y.numel() == 1 {
        return Ok(vec![Prediction::Value {
            column: out[0].0.clone(),
            value: y.to_dtype(crate::DType::F32)?.to_vec::<f32>()?[0],
            notes,
        }]);
    }
    let probs = y
        .to_dtype(crate::DType::F32)?
        .reshape(&[y.numel()])?
        .softmax(-1)?
        .to_vec::<f32>()?;
    Ok(vec![Prediction::Classes { probs, notes }])
}

/// The class names in an exported file's metadata (empty when absent).
pub fn onnx_classes(summary: &Summary) -> Vec<String> {
    summary
        .meta("classes")
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default()
}
