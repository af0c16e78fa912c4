//! `fukai predict`: inputs through a trained model of any kind. Classifiers take image, WAV,
//! `.ts` or CSV files (or a CSV row) and print the top classes; forecasters take a CSV of the
//! series and print the next values; language models take text and print the likeliest next
//! characters. Inputs may be files, folders, or `-` for paths on standard input.

use fukai::models::ModelConfig;
use fukai::nn::Module;
use fukai::run::{self, Trained};
use fukai::{bail, data, Error, Result, Tensor};
use serde_json::json;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Expands folders (their files, sorted) and `-` (one path per line of standard input).
fn expand(inputs: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for i in inputs {
        if i == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.map_err(|e| Error::Io {
                    path: "<stdin>".into(),
                    source: e,
                })?;
                if !line.trim().is_empty() {
                    out.push(line.trim().to_string());
                }
            }
        } else if Path::new(i).is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(i)
                .map_err(|e| Error::Io {
                    path: i.clone(),
                    source: e,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            out.extend(files.into_iter().map(|p| p.display().to_string()));
        } else {
            out.push(i.clone());
        }
    }
    Ok(out)
}

/// A row of comma-separated numbers: the argument itself, or the first line of a text file.
fn numbers(input: &str, n: usize) -> Result<Vec<f32>> {
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

/// An image file as a `[c, h, w]` sample in [0, 1].
pub fn image_input(p: &Path, shape: &[usize]) -> Result<Vec<f32>> {
    Ok(image(p, shape)?.0)
}

/// An image file as a `[c, h, w]` sample in [0, 1], and what was done to it.
fn image(p: &Path, shape: &[usize]) -> Result<(Vec<f32>, Vec<String>)> {
    let (c, h, w) = (shape[0], shape[1], shape[2]);
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
    let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
    let colour = img.color().has_color();
    Ok(if c == 1 {
        if colour {
            notes.push("converted colour to grey".into());
        }
        (
            img.to_luma8()
                .pixels()
                .map(|px| px.0[0] as f32 / 255.0)
                .collect(),
            notes,
        )
    } else {
        let rgb = img.to_rgb8();
        let mut out = vec![0.0; 3 * h * w];
        for (i, px) in rgb.pixels().enumerate() {
            for ch in 0..3 {
                out[ch * h * w + i] = px.0[ch] as f32 / 255.0;
            }
        }
        (out, notes)
    })
}

fn is_ext(input: &str, exts: &[&str]) -> bool {
    let e = Path::new(input)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    exts.contains(&e.as_str())
}

/// Output rows for one input: `(label, values)` where values are class probabilities.
fn classify(t: &Trained, input: &str) -> Result<(Vec<Vec<f32>>, Vec<String>)> {
    let shape = t.input_shape.clone().unwrap_or_default();
    let norm = t.norm.as_ref().map(|n| n.transform()).transpose()?;
    let mut notes = Vec::new();
    if let ModelConfig::SeqClassifier(c) = &t.config {
        // A .ts file (every sequence in it) or a CSV of one sequence (a row per step).
        let mut seqs = if is_ext(input, &["ts"]) {
            data::read_ts(input)?
        } else {
            let s = data::read_series_csv(input, &[])?;
            if s.names.len() != c.inputs {
                bail!(
                    "predict",
                    "{input}: {} columns, the model reads {} values per step",
                    s.names.len(),
                    c.inputs
                );
            }
            data::Sequences {
                lengths: vec![s.rows()],
                series: vec![s.values],
                labels: vec![0],
                dims: c.inputs,
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
        let m = t.model.as_ref();
        let mut b = data::Batch::new(x, Tensor::zeros(&[rows.len()], fukai::DType::I64)?);
        b.lengths = Some(lengths);
        let probs = m.forward_batch(&b)?.softmax(-1)?;
        let k = c.outputs;
        let v = probs.to_vec::<f32>()?;
        return Ok((v.chunks(k).map(<[f32]>::to_vec).collect(), notes));
    }
    let audio = t
        .run
        .as_ref()
        .map(|r| run::audio_features(&r.data, input, &shape))
        .transpose()?
        .flatten();
    let mut x = match audio {
        Some(f) => f,
        None if shape.len() == 3
            && Path::new(input).is_file()
            && !is_ext(input, &["csv", "txt"]) =>
        {
            let (x, n) = image(Path::new(input), &shape)?;
            notes = n;
            // Digits and clothes are light on dark: a dark-on-light photo reads as nonsense.
            let train_mean = t.norm.as_ref().map_or(0.5, |n| n.mean[0]);
            let mean = x.iter().sum::<f32>() / x.len().max(1) as f32;
            if (train_mean < 0.5) != (mean < 0.5) {
                notes.push(format!(
                    "warning: the image is mostly {} but the training images were mostly {} (mean {mean:.2} vs {train_mean:.2}); invert it if the prediction looks wrong",
                    if mean < 0.5 { "dark" } else { "light" },
                    if train_mean < 0.5 { "dark" } else { "light" }
                ));
            }
            x
        }
        None => numbers(input, shape.iter().product())?,
    };
    if let Some(n) = &norm {
        fukai::data::Transform::apply(n, &mut x, &shape, &mut fukai::Generator::new(0));
    }
    let mut s = vec![1];
    s.extend_from_slice(&shape);
    let probs = t
        .model
        .forward(&Tensor::from_vec(x, &s)?)?
        .softmax(-1)?
        .to_vec::<f32>()?;
    Ok((vec![probs], notes))
}

/// Runs `fukai predict`.
pub fn run(ckpt: &Path, inputs: &[String], top_k: usize, as_json: bool) -> Result<()> {
    let t = run::load_trained(ckpt)?;
    let inputs = expand(inputs)?;
    if inputs.is_empty() {
        bail!(
            "predict",
            "no inputs (give files, a folder, a CSV row, or - for paths on stdin)"
        );
    }
    let _g = fukai::no_grad();
    for input in &inputs {
        match &t.config {
            ModelConfig::SeqForecaster(_) => forecast(&t, input, as_json)?,
            ModelConfig::Gpt(_) => next_chars(&t, input, top_k, as_json)?,
            _ => {
                let (rows, notes) = classify(&t, input)?;
                for (r, probs) in rows.iter().enumerate() {
                    if probs.iter().any(|p| !p.is_finite()) {
                        bail!("predict", "{input}: the model's output is not finite (is the input far outside the training data?)");
                    }
                    let mut order: Vec<usize> = (0..probs.len()).collect();
                    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
                    order.truncate(top_k.max(1));
                    let name =
                        |i: usize| t.classes.get(i).cloned().unwrap_or_else(|| i.to_string());
                    let what = if rows.len() > 1 {
                        format!("{input} #{}", r + 1)
                    } else {
                        input.clone()
                    };
                    if as_json {
                        let top: Vec<_> = order
                            .iter()
                            .map(|&i| json!({"class": name(i), "probability": probs[i]}))
                            .collect();
                        println!(
                            "{}",
                            json!({"input": what, "prediction": name(order[0]), "top": top, "preprocessing": notes})
                        );
                    } else {
                        for n in &notes {
                            eprintln!("{what}: {n}");
                        }
                        let top: Vec<String> = order
                            .iter()
                            .map(|&i| format!("{} {:.2}%", name(i), 100.0 * probs[i]))
                            .collect();
                        println!("{what}: {}  [{}]", name(order[0]), top.join(", "));
                    }
                }
            }
        }
    }
    Ok(())
}

fn forecast(t: &Trained, input: &str, as_json: bool) -> Result<()> {
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
            row.iter()
                .zip(&s.mean)
                .zip(&s.std)
                .map(|((v, m), d)| (v - m) / d)
                .collect::<Vec<_>>()
        })
        .collect();
    let out = t
        .model
        .forward(&Tensor::from_vec(x, &[1, s.lookback, c])?)?
        .to_vec::<f32>()?;
    let vals: Vec<f32> = out
        .iter()
        .map(|v| v * s.std[s.target] + s.mean[s.target])
        .collect();
    if as_json {
        println!(
            "{}",
            json!({"input": input, "column": s.columns[s.target], "forecast": vals})
        );
    } else {
        let shown: Vec<String> = vals.iter().map(|v| format!("{v:.3}")).collect();
        println!(
            "{input}: next {} of {}: {}",
            vals.len(),
            s.columns[s.target],
            shown.join(", ")
        );
    }
    Ok(())
}

fn next_chars(t: &Trained, input: &str, top_k: usize, as_json: bool) -> Result<()> {
    let (Some(tok), ModelConfig::Gpt(g)) = (&t.tokenizer, &t.config) else {
        bail!(
            "predict",
            "the checkpoint has no vocabulary (metadata field \"vocab\")"
        );
    };
    let text = if Path::new(input).is_file() {
        run::read_text(Path::new(input))?
    } else {
        input.replace("\\n", "\n")
    };
    let ids = tok
        .encode(&text)
        .map_err(|e| fukai::error::op_err("predict", e.to_string()))?;
    if ids.is_empty() {
        bail!("predict", "empty text");
    }
    let ids = &ids[ids.len().saturating_sub(g.context)..];
    let x = Tensor::from_vec(ids.iter().map(|&i| i as i64).collect(), &[1, ids.len()])?;
    let logits = t.model.forward(&x)?;
    let v = g.vocab;
    let probs = logits
        .narrow(1, ids.len() - 1, 1)?
        .reshape(&[v])?
        .softmax(-1)?
        .to_vec::<f32>()?;
    let mut order: Vec<usize> = (0..v).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order.truncate(top_k.max(1));
    let ch = |i: usize| tok.decode(&[i as u32]).unwrap_or_default();
    if as_json {
        let top: Vec<_> = order
            .iter()
            .map(|&i| json!({"text": ch(i), "probability": probs[i]}))
            .collect();
        println!("{}", json!({"input": input, "next": top}));
    } else {
        let top: Vec<String> = order
            .iter()
            .map(|&i| format!("{:?} {:.2}%", ch(i), 100.0 * probs[i]))
            .collect();
        println!("{input:?} -> next: {}", top.join(", "));
    }
    Ok(())
}
