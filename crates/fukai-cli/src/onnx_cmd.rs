//! `fukai onnx info`, `fukai export --onnx` and `fukai predict --model FILE.onnx`: printing
//! only; the library reads, writes and runs the files (`fukai::onnx`).

use clap::Subcommand;
use fukai::run::{self, Prediction};
use fukai::{bail, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum OnnxCmd {
    /// Inputs, outputs, opsets, producer, operators and parameter count of an ONNX file.
    Info {
        /// A .onnx file.
        model: PathBuf,
    },
}

pub fn run(cmd: OnnxCmd) -> Result<()> {
    match cmd {
        OnnxCmd::Info { model } => {
            print!("{}", fukai::onnx::Summary::load(&model)?);
            Ok(())
        }
    }
}

/// `fukai export --checkpoint CKPT --onnx FILE`.
pub fn export(checkpoint: &Path, onnx: &Path) -> Result<()> {
    let proto = fukai::onnx::export::export_checkpoint(checkpoint, onnx)?;
    let s = fukai::onnx::Summary::of(&proto);
    let nodes: usize = s.ops.values().sum();
    println!(
        "wrote {} (opset {}, {} nodes, {} parameters)",
        onnx.display(),
        fukai::onnx::export::OPSET,
        nodes,
        s.parameters
    );
    Ok(())
}

/// `fukai predict --model FILE.onnx INPUT...`.
pub fn predict(model: &Path, inputs: &[String], top_k: usize, as_json: bool) -> Result<()> {
    let summary = fukai::onnx::Summary::load(model)?;
    let m = fukai::onnx::Model::load(model)?;
    let classes = run::onnx_classes(&summary);
    let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| i.to_string());
    for input in inputs {
        for p in run::predict_onnx(&m, &summary, input)? {
            match p {
                Prediction::Classes { probs, notes } => {
                    if probs.iter().any(|p| !p.is_finite()) {
                        bail!("predict", "{input}: the model's output is not finite");
                    }
                    let mut order: Vec<usize> = (0..probs.len()).collect();
                    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
                    order.truncate(top_k.max(1));
                    if as_json {
                        let top: Vec<_> = order
                            .iter()
                            .map(|&i| json!({"class": name(i), "probability": probs[i]}))
                            .collect();
                        println!(
                            "{}",
                            json!({"input": input, "prediction": name(order[0]), "top": top, "preprocessing": notes})
                        );
                    } else {
                        for n in &notes {
                            eprintln!("{input}: {n}");
                        }
                        let shown: Vec<String> = order
                            .iter()
                            .map(|&i| format!("{} {:.2}%", name(i), 100.0 * probs[i]))
                            .collect();
                        println!("{input}: {}  [{}]", name(order[0]), shown.join(", "));
                    }
                }
                Prediction::Value {
                    column,
                    value,
                    notes,
                } => {
                    if as_json {
                        println!(
                            "{}",
                            json!({"input": input, "output": column, "prediction": value, "notes": notes})
                        );
                    } else {
                        for n in &notes {
                            eprintln!("{input}: {n}");
                        }
                        println!("{input}: {column} = {value:.3}");
                    }
                }
                _ => bail!("predict", "unexpected prediction kind from an ONNX model"),
            }
        }
    }
    Ok(())
}
