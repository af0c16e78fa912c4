//! `fukai predict`: one input through a trained model, printing the class and probabilities.

use crate::train::load_trained;
use fukai::nn::Module;
use fukai::{bail, Error, Result};
use std::path::Path;

/// Reads `input` (an image file, or comma-separated features) into a sample of `shape`.
pub fn read_input(input: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let p = Path::new(input);
    if p.exists() && shape.len() == 3 {
        let img = image_input(p, shape)?;
        return Ok(img);
    }
    let n: usize = shape.iter().product();
    let text = if p.exists() {
        let bytes = std::fs::read(p).map_err(|e| Error::Io {
            path: input.into(),
            source: e,
        })?;
        String::from_utf8(bytes).map_err(|_| Error::Format {
            file: input.into(),
            msg: format!(
                "not a text file (an image or other binary?): this model takes a row of {n} \
                 comma-separated numbers"
            ),
        })?
    } else {
        input.to_string()
    };
    let row = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let vals: std::result::Result<Vec<f32>, _> =
        row.split(',').map(|c| c.trim().parse::<f32>()).collect();
    let Ok(vals) = vals else {
        bail!(
            "predict",
            "input {input:?} is neither an existing image file nor a row of numbers"
        )
    };
    if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
        bail!(
            "predict",
            "feature {} of the input is {} (every feature must be a finite number)",
            i + 1,
            vals[i]
        );
    }
    if vals.len() != n {
        bail!(
            "predict",
            "the model expects {n} features, the row has {}",
            vals.len()
        );
    }
    Ok(vals)
}

fn image_input(p: &Path, shape: &[usize]) -> Result<Vec<f32>> {
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let img = image::open(p).map_err(|e| Error::Format {
        file: p.display().to_string(),
        msg: format!("cannot decode image: {e}"),
    })?;
    let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
    Ok(if c == 1 {
        img.to_luma8()
            .pixels()
            .map(|px| px.0[0] as f32 / 255.0)
            .collect()
    } else {
        let rgb = img.to_rgb8();
        let mut out = vec![0.0; 3 * h * w];
        for (i, px) in rgb.pixels().enumerate() {
            for ch in 0..3 {
                out[ch * h * w + i] = px.0[ch] as f32 / 255.0;
            }
        }
        out
    })
}

/// Runs the prediction and prints the result.
pub fn run(checkpoint: &Path, input: &str) -> Result<()> {
    let t = load_trained(checkpoint)?;
    let raw = match crate::audio_data::predict_input(&t.cfg.data, input, &t.input_shape)? {
        Some(features) => features,
        None => read_input(input, &t.input_shape)?,
    };
    let x = t.batch_of_one(raw)?;
    let _g = fukai::no_grad();
    let probs = t.model.forward(&x)?.softmax(-1)?.to_vec::<f32>()?;
    if probs.iter().any(|p| !p.is_finite()) {
        bail!(
            "predict",
            "the model's output is not finite for this input (is the input far outside the \
             training data?)"
        );
    }
    let best = probs
        .iter()
        .enumerate()
        .fold(0, |b, (i, &p)| if p > probs[b] { i } else { b });
    println!(
        "prediction: {} ({:.2}%)",
        t.classes
            .get(best)
            .cloned()
            .unwrap_or_else(|| best.to_string()),
        100.0 * probs[best]
    );
    for (i, p) in probs.iter().enumerate() {
        println!(
            "  {:>12}: {:6.2}%",
            t.classes.get(i).cloned().unwrap_or_else(|| i.to_string()),
            100.0 * p
        );
    }
    Ok(())
}
