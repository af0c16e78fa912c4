//! Inputs through a trained model of any kind, as `fukai predict` runs them: classifiers read
//! image, WAV, `.ts` or CSV files (or a CSV row) and give class probabilities; forecasters read
//! a CSV of the series and give the next values in its units; language models read text and
//! give the next character's distribution. Each result says how its input was preprocessed.

use super::{audio, read_text, Trained};
use crate::bail;
use crate::data::{self, Batch, Transform};
use crate::error::{Error, Result};
use crate::models::ModelConfig;
use crate::nn::Module;
use crate::tensor::{DType, Tensor};
use std::path::Path;

/// What a model made of one input (a `.ts` file gives one per sequence).
#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    /// Class probabilities, in class order.
    Classes {
        /// Probability per class.
        probs: Vec<f32>,
        /// Preprocessing applied (resizing, grey conversion) and warnings (image polarity).
        notes: Vec<String>,
    },
    /// The next values of a series' target column, in its units.
    Forecast {
        /// The predicted column.
        column: String,
        /// The next `horizon` values.
        values: Vec<f32>,
    },
    /// A regression table model's prediction, in the target's units.
    Value {
        /// The predicted column.
        column: String,
        /// The value.
        value: f32,
        /// Imputed cells and unseen categories.
        notes: Vec<String>,
    },
    /// The distribution of the next token after a text.
    NextToken {
        /// Probability per vocabulary id.
        probs: Vec<f32>,
    },
}

/// Runs `input` (a path or, for tables, a row of cells or a JSON object; text for language
/// models) through
/// the model, in eval mode without a graph.
pub fn predict(t: &Trained, input: &str) -> Result<Vec<Prediction>> {
    let _g = crate::no_grad();
    match &t.config {
        ModelConfig::SeqForecaster(_) => forecast(t, input),
        ModelConfig::Gpt(_) => next_token(t, input),
        ModelConfig::SeqClassifier(_) => sequences(t, input),
        ModelConfig::Mlp(_) if t.table.is_some() => table(t, input),
        ModelConfig::Autoencoder(_) | ModelConfig::Video(_) => crate::bail!(
            "predict",
            "a {} model has no classes or values to predict; its run directory holds its pictures, and the library's Autoencoder::encode / decode and VideoPredictor::forward use it",
            t.config.kind()
        ),
        _ => classify(t, input),
    }
}

/// A row of comma-separated numbers: the argument itself, or the first line of a text file.
pub fn numbers(input: &str, n: usize) -> Result<Vec<f32>> {
    let p = Path::new(input);
    let text = if p.is_file() {
        let bytes = std::fs::read(p).map_err(|e| Error::Io {
            path: input.into(),
            source: e,
        })?;
        String::from_utf8(bytes).map_err(|_| Error::Format {
            file: input.into(),
            msg: format!("not a text file (an image or other binary?): this model takes a row of {n} comma-separated numbers"),
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
            "input {input:?} is neither an existing file of the model's kind nor a row of numbers"
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

/// An image file as a `[c, h, w]` sample in [0, 1], and what was done to it.
pub fn image(p: &Path, shape: &[usize]) -> Result<(Vec<f32>, Vec<String>)> {
    let [c, h, w] = shape[..] else {
        bail!(
            "predict",
            "an image model takes [c, h, w] samples, not {shape:?}"
        );
    };
    let img = image::open(p).map_err(|e| Error::Format {
        file: p.display().to_string(),
        msg: format!("cannot decode image: {e}"),
    })?;
    let mut notes = Vec::new();
    if (img.width(), img.height()) != (w as u32, h as u32) {
        notes.push(format!(
            "resized {}x{} to {w}x{h}",
            img.width(),
            img.height()
        ));
    }
    let colour = img.color().has_color();
    let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
    if c == 1 {
        if colour {
            notes.push("converted colour to grey".into());
        }
        let px = img
            .to_luma8()
            .pixels()
            .map(|p| p.0[0] as f32 / 255.0)
            .collect();
        return Ok((px, notes));
    }
    let rgb = img.to_rgb8();
    let mut out = vec![0.0; 3 * h * w];
    for (i, px) in rgb.pixels().enumerate() {
        for ch in 0..3 {
            out[ch * h * w + i] = px.0[ch] as f32 / 255.0;
        }
    }
    Ok((out, notes))
}

fn has_ext(input: &str, exts: &[&str]) -> bool {
    let e = Path::new(input)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    exts.contains(&e.to_ascii_lowercase().as_str())
}

fn classify(t: &Trained, input: &str) -> Result<Vec<Prediction>> {
    let shape = t.input_shape.clone().unwrap_or_default();
    let mut notes = Vec::new();
    let features = match &t.run {
        Some(r) => audio::predict_input(&r.data, input, &shape)?,
        None => None,
    };
    let is_image =
        shape.len() == 3 && Path::new(input).is_file() && !has_ext(input, &["csv", "txt"]);
    let mut x = match features {
        Some(f) => f,
        None if is_image => {
            let (x, n) = image(Path::new(input), &shape)?;
            notes = n;
            // Digits and clothes are light on dark: a dark-on-light photo reads as nonsense.
            let train_mean = t.norm.as_ref().map_or(0.5, |n| n.mean[0]);
            let mean = x.iter().sum::<f32>() / x.len().max(1) as f32;
            if (train_mean < 0.5) != (mean < 0.5) {
                let tone = |m: f32| if m < 0.5 { "dark" } else { "light" };
                notes.push(format!(
                    "warning: the image is mostly {} but the training images were mostly {} (mean {mean:.2} vs {train_mean:.2}); invert it if the prediction looks wrong",
                    tone(mean),
                    tone(train_mean)
                ));
            }
            x
        }
        None => numbers(input, shape.iter().product())?,
    };
    if let Some(n) = &t.norm {
        n.transform()?
            .apply(&mut x, &shape, &mut crate::Generator::new(0));
    }
    let mut s = vec![1];
    s.extend_from_slice(&shape);
    let probs = t
        .model
        .forward(&Tensor::from_vec(x, &s)?.to(t.model.device())?)?
        .softmax(-1)?
        .to_vec::<f32>()?;
    Ok(vec![Prediction::Classes { probs, notes }])
}

/// A table row (CSV cells or a JSON object by column name), or every row of a CSV file with a
/// header.
fn table(t: &Trained, input: &str) -> Result<Vec<Prediction>> {
    let schema = t.table.as_ref().expect("called for table models");
    let p = Path::new(input);
    let rows = if !input.trim_start().starts_with('{') && p.is_file() {
        super::encode_file(schema, p)?
    } else {
        vec![super::encode_input(schema, input)?]
    };
    if rows.is_empty() {
        bail!("predict", "{input}: no rows");
    }
    let w = schema.width();
    let n = rows.len();
    let x: Vec<f32> = rows.iter().flat_map(|(x, _)| x.iter().copied()).collect();
    let out = t
        .model
        .forward(&Tensor::from_vec(x, &[n, w])?.to(t.model.device())?)?;
    Ok(match &schema.target {
        data::Target::Value { mean, std } => out
            .to_vec::<f32>()?
            .into_iter()
            .zip(rows)
            .map(|(v, (_, notes))| Prediction::Value {
                column: schema.label.clone(),
                value: (v as f64 * std + mean) as f32,
                notes,
            })
            .collect(),
        data::Target::Classes { names } => out
            .softmax(-1)?
            .to_vec::<f32>()?
            .chunks(names.len().max(1))
            .zip(rows)
            .map(|(p, (_, notes))| Prediction::Classes {
                probs: p.to_vec(),
                notes,
            })
            .collect(),
    })
}

/// A `.ts` file (every sequence in it) or a CSV of one sequence (a row per step).
fn sequences(t: &Trained, input: &str) -> Result<Vec<Prediction>> {
    let ModelConfig::SeqClassifier(c) = &t.config else {
        unreachable!("called for sequence classifiers")
    };
    let mut seqs = if has_ext(input, &["ts"]) {
        data::read_ts(input)?
    } else {
        let s = data::read_series_csv(input, &[])?;
        let n = s.rows();
        data::Sequences {
            lengths: vec![n],
            series: vec![s.values],
            labels: vec![0],
            dims: s.names.len(),
            class_names: vec![],
        }
    };
    if seqs.dims != c.inputs {
        bail!(
            "predict",
            "{input}: {} values per step, the model reads {}",
            seqs.dims,
            c.inputs
        );
    }
    if let Some(n) = &t.norm {
        seqs.normalize(&n.mean, &n.std);
    }
    let rows: Vec<usize> = (0..seqs.len()).collect();
    let (x, lengths, _) = seqs.batch(&rows)?;
    let mut b = Batch::new(x, Tensor::zeros(&[rows.len()], DType::I64)?);
    b.lengths = Some(lengths);
    let b = b.to(t.model.device())?;
    let probs = t.model.forward_batch(&b)?.softmax(-1)?.to_vec::<f32>()?;
    Ok(probs
        .chunks(c.outputs)
        .map(|p| Prediction::Classes {
            probs: p.to_vec(),
            notes: vec![],
        })
        .collect())
}

fn forecast(t: &Trained, input: &str) -> Result<Vec<Prediction>> {
    let Some(s) = &t.series else {
        bail!(
            "predict",
            "the checkpoint has no series scaling (metadata field \"series\")"
        );
    };
    let names: Vec<&str> = s.columns.iter().map(String::as_str).collect();
    let series = data::read_series_csv(input, &names)?;
    if series.rows() < s.lookback {
        bail!(
            "predict",
            "{input}: {} rows, the model reads the last {}",
            series.rows(),
            s.lookback
        );
    }
    let c = names.len();
    let start = series.rows() - s.lookback;
    let x: Vec<f32> = series.values[start * c..]
        .chunks(c)
        .flat_map(|row| {
            let scaled = row.iter().zip(&s.mean).zip(&s.std);
            scaled.map(|((v, m), d)| (v - m) / d).collect::<Vec<_>>()
        })
        .collect();
    let out = t
        .model
        .forward(&Tensor::from_vec(x, &[1, s.lookback, c])?.to(t.model.device())?)?
        .to_vec::<f32>()?;
    let values = out
        .iter()
        .map(|v| v * s.std[s.target] + s.mean[s.target])
        .collect();
    Ok(vec![Prediction::Forecast {
        column: s.columns[s.target].clone(),
        values,
    }])
}

fn next_token(t: &Trained, input: &str) -> Result<Vec<Prediction>> {
    let (Some(tok), ModelConfig::Gpt(g)) = (&t.tokenizer, &t.config) else {
        bail!(
            "predict",
            "the checkpoint has no vocabulary (metadata field \"vocab\")"
        );
    };
    let text = if Path::new(input).is_file() {
        read_text(Path::new(input))?
    } else {
        input.replace("\\n", "\n")
    };
    let ids = tok
        .encode(&text)
        .map_err(|e| crate::error::op_err("predict", e.to_string()))?;
    if ids.is_empty() {
        bail!("predict", "empty text");
    }
    let ids = &ids[ids.len().saturating_sub(g.context)..];
    let x = Tensor::from_vec(ids.iter().map(|&i| i as i64).collect(), &[1, ids.len()])?;
    let logits = t.model.forward(&x.to(t.model.device())?)?;
    let last = logits.narrow(1, ids.len() - 1, 1)?.reshape(&[g.vocab])?;
    Ok(vec![Prediction::NextToken {
        probs: last.softmax(-1)?.to_vec::<f32>()?,
    }])
}
