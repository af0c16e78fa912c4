//! `fukai predict`: inputs through a trained model of any kind (see `fukai::run::predict`),
//! printed as lines or JSON. Inputs may be files, folders, or `-` for paths on stdin.

use fukai::run::{self, Prediction, Trained};
use fukai::{bail, Error, Result};
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
            let entries = std::fs::read_dir(i).map_err(|e| Error::Io {
                path: i.clone(),
                source: e,
            })?;
            let mut files: Vec<PathBuf> = entries
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

/// The `k` largest entries of `probs`, most likely first.
fn top(probs: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order.truncate(k.max(1));
    order
}

fn print(t: &Trained, what: &str, p: &Prediction, k: usize, as_json: bool) -> Result<()> {
    match p {
        Prediction::Classes { probs, notes } => {
            if probs.iter().any(|p| !p.is_finite()) {
                bail!("predict", "{what}: the model's output is not finite (is the input far outside the training data?)");
            }
            let name = |i: usize| t.classes.get(i).cloned().unwrap_or_else(|| i.to_string());
            let best = top(probs, k);
            if as_json {
                let top: Vec<_> = best
                    .iter()
                    .map(|&i| json!({"class": name(i), "probability": probs[i]}))
                    .collect();
                let line = json!({"input": what, "prediction": name(best[0]), "top": top, "preprocessing": notes});
                println!("{line}");
            } else {
                for n in notes {
                    eprintln!("{what}: {n}");
                }
                let shown: Vec<String> = best
                    .iter()
                    .map(|&i| format!("{} {:.2}%", name(i), 100.0 * probs[i]))
                    .collect();
                println!("{what}: {}  [{}]", name(best[0]), shown.join(", "));
            }
        }
        Prediction::Forecast { column, values } => {
            if as_json {
                println!(
                    "{}",
                    json!({"input": what, "column": column, "forecast": values})
                );
            } else {
                let shown: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
                println!(
                    "{what}: next {} of {column}: {}",
                    values.len(),
                    shown.join(", ")
                );
            }
        }
        Prediction::Value {
            column,
            value,
            notes,
        } => {
            if !value.is_finite() {
                bail!("predict", "{what}: the model's output is not finite");
            }
            if as_json {
                println!(
                    "{}",
                    json!({"input": what, "column": column, "prediction": value, "notes": notes})
                );
            } else {
                for n in notes {
                    eprintln!("{what}: {n}");
                }
                println!("{what}: {column} = {value:.3}");
            }
        }
        Prediction::NextToken { probs } => {
            let tok = t
                .tokenizer
                .as_ref()
                .expect("language models carry a vocabulary");
            let text = |i: usize| tok.decode(&[i as u32]).unwrap_or_default();
            let best = top(probs, k);
            if as_json {
                let next: Vec<_> = best
                    .iter()
                    .map(|&i| json!({"text": text(i), "probability": probs[i]}))
                    .collect();
                println!("{}", json!({"input": what, "next": next}));
            } else {
                let shown: Vec<String> = best
                    .iter()
                    .map(|&i| format!("{:?} {:.2}%", text(i), 100.0 * probs[i]))
                    .collect();
                println!("{what:?} -> next: {}", shown.join(", "));
            }
        }
    }
    Ok(())
}

/// Runs `fukai predict`.
pub fn run(ckpt: &Path, inputs: &[String], top_k: usize, as_json: bool) -> Result<()> {
    let t = run::load_trained(ckpt)?;
    t.model.to_device(crate::device())?;
    let inputs = expand(inputs)?;
    if inputs.is_empty() {
        bail!(
            "predict",
            "no inputs (give files, a folder, a CSV row, or - for paths on stdin)"
        );
    }
    for input in &inputs {
        let preds = run::predict(&t, input)?;
        for (i, p) in preds.iter().enumerate() {
            let what = if preds.len() > 1 {
                format!("{input} #{}", i + 1)
            } else {
                input.clone()
            };
            print(&t, &what, p, top_k, as_json)?;
        }
    }
    Ok(())
}
