//! `fukai`: train, evaluate and inspect models from the command line.

mod audio_data;
mod config;
mod data_get;
mod dataset;
mod embed;
mod generate;
mod gpt;
mod limits;
mod lm;
mod model;
mod plot;
mod predict;
mod presets;
mod report;
mod seq;
mod train;
mod viz;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

// mimalloc keeps freed pages for reuse; glibc hands large tensor buffers back to the OS and
// page-faults them in again every step (10-25% of a conv step, measured with perf).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (index 15 in both its v2 and v3 option enums).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc still returns freed pages to the OS 10 ms after the last use by default; a training
/// step frees and reallocates the same large buffers, which then fault in zeroed pages again
/// (100k page faults in 25 s of a CNN epoch, 700 with purging off).
fn keep_freed_pages() {
    // SAFETY: sets a plain integer option; called first thing in main, before any thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[derive(Parser)]
#[command(
    name = "fukai",
    version,
    about = "Deep learning in Rust: train, evaluate, predict, visualize."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a model from a preset or a TOML config.
    Train {
        /// Preset name (mnist-cnn, fashion-mlp, fashion-cnn, iris-mlp, wine-mlp, breast-cancer-mlp, vowels-lstm, sunspots-lstm, spoken-digits, shakespeare-gpt).
        #[arg(long, conflicts_with = "config")]
        preset: Option<String>,
        /// TOML config file (see README).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data file or folder (overrides the config).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Run directory (default runs/<name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the number of epochs.
        #[arg(long)]
        epochs: Option<usize>,
        /// Override the seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Continue from a checkpoint written by an earlier run.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Override the number of optimizer steps (language models); image and table models stop after this many steps (smoke runs).
        #[arg(long)]
        steps: Option<usize>,
    },
    /// Sample text from a language-model checkpoint (e.g. the shakespeare-gpt preset's).
    Generate {
        /// checkpoint.safetensors of a gpt run.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Text to continue (every character must be in the model's vocabulary).
        #[arg(long, default_value = "\n")]
        prompt: String,
        /// Characters to sample.
        #[arg(long, default_value_t = 500)]
        max_tokens: usize,
        /// Softmax temperature (0 = always the most likely character).
        #[arg(long, default_value_t = 0.8)]
        temperature: f64,
        /// Sample only among the k most likely characters.
        #[arg(long)]
        top_k: Option<usize>,
        /// Sample only within the smallest set of characters whose probability reaches p.
        #[arg(long)]
        top_p: Option<f64>,
        /// Sampling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Evaluate a checkpoint on its test set.
    Eval {
        /// checkpoint.safetensors from a run directory.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Data file or folder (default: where the run trained).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Classify one input: an image file, or a CSV row of features.
    Predict {
        /// checkpoint.safetensors from a run directory.
        #[arg(long)]
        checkpoint: PathBuf,
        /// An image path, or comma-separated feature values.
        input: String,
    },
    /// Draw the first conv layer's filters and every conv layer's feature maps for one input.
    Viz {
        /// checkpoint.safetensors of a CNN run.
        #[arg(long)]
        checkpoint: PathBuf,
        /// An image file (default: the first test image).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Output folder (default: the checkpoint's folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sentence embeddings (mean pooling, L2-normalized) from a Hugging Face BERT model directory.
    Embed {
        /// Folder with config.json, model.safetensors and tokenizer.json.
        #[arg(long)]
        model: PathBuf,
        /// Print one JSON array of floats per text, one per line.
        #[arg(long)]
        json: bool,
        /// Texts to embed (default: one per line from standard input).
        texts: Vec<String>,
    },
    /// Download public data sets (fashion-mnist, mnist, ...) into a cache folder.
    Data {
        #[command(subcommand)]
        cmd: data_get::DataCmd,
    },
}

#[allow(clippy::too_many_arguments)]
fn train_cmd(
    preset: Option<String>,
    config: Option<PathBuf>,
    data: Option<PathBuf>,
    out: Option<PathBuf>,
    epochs: Option<usize>,
    seed: Option<u64>,
    resume: Option<PathBuf>,
    steps: Option<usize>,
) -> fukai::Result<()> {
    let mut cfg = match (preset, config) {
        (_, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| fukai::Error::Io {
                path: path.display().to_string(),
                source: e,
            })?;
            let in_file = |msg: String| fukai::Error::Format {
                file: path.display().to_string(),
                msg,
            };
            let cfg = config::parse(&text).map_err(in_file)?;
            limits::check(&cfg).map_err(|e| in_file(e.to_string()))?;
            cfg
        }
        (p, None) => {
            let name = p.unwrap_or_else(|| "mnist-cnn".into());
            presets::preset(&name).ok_or_else(|| fukai::Error::Format {
                file: "--preset".into(),
                msg: format!(
                    "unknown preset {name:?}; available: {}",
                    presets::NAMES.join(", ")
                ),
            })?
        }
    };
    if let Some(e) = epochs {
        cfg.train.epochs = e;
    }
    if let Some(s) = seed {
        cfg.train.seed = s;
    }
    limits::check(&cfg)?;
    if cfg.model.kind == "gpt" {
        return lm::train_cmd(&cfg, data.as_deref(), out, steps);
    }
    train::validate(&cfg)?;
    let data_path = dataset::resolve(&cfg.data, data.as_deref())?;
    if seq::is_sequence_model(&cfg.model) {
        if let Some(r) = &resume {
            return Err(fukai::Error::Format {
                file: r.display().to_string(),
                msg: "--resume is not supported for sequence models yet".into(),
            });
        }
        let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
        return seq::run(&cfg, &data_path, &out);
    }
    let splits = dataset::load(&cfg.data, &data_path, cfg.train.seed)?;
    let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
    let summary = train::run(
        &cfg,
        splits,
        &train::RunOptions {
            out: out.clone(),
            resume,
            data_path,
            max_steps: steps,
        },
    )?;
    println!("\nrun directory: {}", out.display());
    println!("  summary.json, metrics.jsonl, curves.png, checkpoint.safetensors");
    println!("next:");
    println!("  fukai eval --checkpoint {}", summary.checkpoint);
    println!(
        "  fukai viz --checkpoint {}        # filters and feature maps",
        summary.checkpoint
    );
    println!(
        "  fukai train --preset fashion-cnn --data <fashion-mnist folder>   # presets: {}",
        presets::NAMES.join(", ")
    );
    Ok(())
}

fn eval_cmd(checkpoint: PathBuf, data: Option<PathBuf>) -> fukai::Result<()> {
    let mut t = train::load_trained(&checkpoint)?;
    let path = dataset::resolve(&t.cfg.data, data.as_deref())?;
    let splits = dataset::load(&t.cfg.data, &path, t.cfg.train.seed)?;
    let found = fukai::data::Dataset::sample_shape(&splits.test);
    if found != t.input_shape.as_slice() {
        let what = |s: &[usize]| match s {
            [n] => format!("{n} features"),
            s => format!("samples of shape {s:?}"),
        };
        return Err(fukai::Error::Format {
            file: path.display().to_string(),
            msg: format!(
                "the data has {}, the model in {} expects {}",
                what(found),
                checkpoint.display(),
                what(&t.input_shape)
            ),
        });
    }
    if splits.class_names.len() > t.classes.len() {
        return Err(fukai::Error::Format {
            file: path.display().to_string(),
            msg: format!(
                "the data has {} classes, the model in {} knows {}",
                splits.class_names.len(),
                checkpoint.display(),
                t.classes.len()
            ),
        });
    }
    let ev = train::evaluate(&mut t.model, std::sync::Arc::new(splits.test), &t.norm)?;
    println!("{}", report::confusion_table(&ev.confusion, &t.classes));
    println!(
        "test accuracy {:.2}% | test loss {:.4}",
        100.0 * ev.accuracy(),
        ev.loss()
    );
    Ok(())
}

fn main() -> ExitCode {
    keep_freed_pages();
    let cli = Cli::parse();
    let result = match cli.cmd {
        None => {
            fukai::parallel::on_pool(|| train_cmd(None, None, None, None, None, None, None, None))
        }
        Some(Cmd::Train {
            preset,
            config,
            data,
            out,
            epochs,
            seed,
            resume,
            steps,
        }) => fukai::parallel::on_pool(move || {
            train_cmd(preset, config, data, out, epochs, seed, resume, steps)
        }),
        Some(Cmd::Generate {
            checkpoint,
            prompt,
            max_tokens,
            temperature,
            top_k,
            top_p,
            seed,
        }) => generate::run(
            &checkpoint,
            &prompt.replace("\\n", "\n"),
            max_tokens,
            &generate::Sampling {
                temperature,
                top_k,
                top_p,
            },
            seed,
        ),
        Some(Cmd::Eval { checkpoint, data }) => eval_cmd(checkpoint, data),
        Some(Cmd::Predict { checkpoint, input }) => predict::run(&checkpoint, &input),
        Some(Cmd::Viz {
            checkpoint,
            input,
            out,
        }) => viz::run(&checkpoint, input.as_deref(), out.as_deref()),
        Some(Cmd::Embed { model, json, texts }) => embed::run(&model, json, texts),
        Some(Cmd::Data { cmd }) => data_get::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
