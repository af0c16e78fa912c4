//! `fukai`: train, evaluate and inspect models from the command line. Argument parsing,
//! presets and printing only: the work happens in the library (`fukai::run`, `fukai::train`).

mod chat;
mod chat_model;
mod config;
mod data_get;
mod embed;
mod eval;
mod finetune;
mod generate;
mod onnx_cmd;
mod predict;
mod presets;
mod showcase;
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
    /// Worker threads (default: every core; RAYON_NUM_THREADS works too).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Where models train and run: cpu, wgpu (wgpu:N for the N-th adapter), cuda or auto (the
    /// first GPU found, else the CPU). `fukai devices` lists them. Checkpoints load on any.
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a model from a preset or a TOML config, or resume a run.
    Train(train::TrainArgs),
    /// List the presets, or print one as a TOML config to copy.
    Presets {
        #[command(subcommand)]
        cmd: Option<PresetsCmd>,
    },
    /// Evaluate a checkpoint on its test set (language models: validation and test loss).
    Eval {
        /// A checkpoint.safetensors.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Data file or folder (default: where the run trained).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run inputs through a model: images, WAV, .ts or CSV files, folders, a CSV row, text, or - (paths on stdin).
    Predict {
        /// A checkpoint.safetensors.
        #[arg(long, required_unless_present = "model", conflicts_with = "model")]
        checkpoint: Option<PathBuf>,
        /// An ONNX model instead of a checkpoint: images for [batch, c, h, w] inputs, rows of
        /// numbers for [batch, features]; exported files carry their classes and normalization.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Classes (or next characters) shown per input.
        #[arg(long, default_value_t = 3)]
        top_k: usize,
        /// One JSON object per input.
        #[arg(long)]
        json: bool,
        /// The inputs.
        #[arg(required = true)]
        inputs: Vec<String>,
    },
    /// Chat with a LLaMA-family instruct model (interactive, or one answer with --prompt).
    Chat(chat::ChatArgs),
    /// Fine-tune a LLaMA-family model on chat records with a LoRA adapter (saved as safetensors).
    Finetune(finetune::FinetuneArgs),
    /// Continue a prompt: a character GPT checkpoint, or a LLaMA-family model (--model).
    Generate {
        /// A checkpoint.safetensors of a gpt run.
        #[arg(long, required_unless_present = "model", conflicts_with = "model")]
        checkpoint: Option<PathBuf>,
        /// A LLaMA-family model instead: a GGUF file or a Hugging Face model directory (as
        /// `fukai chat --model`); the prompt is continued as plain text, no chat template.
        #[arg(long)]
        model: Option<PathBuf>,
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
        /// Repetition penalty over the last 64 generated tokens (1 = none; --model only).
        #[arg(long)]
        repeat_penalty: Option<f32>,
        /// Sampling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Draw a CNN's first-layer filters and every conv layer's feature maps for one input.
    Viz {
        /// A checkpoint.safetensors of a CNN run.
        #[arg(long)]
        checkpoint: PathBuf,
        /// An image, or a WAV file for audio models (default: the first test sample).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Output folder (default: the checkpoint's folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the devices this build and machine can run on (for --device).
    Devices,
    /// Show what a checkpoint holds: kind, config, parameters, progress, last metrics.
    Info {
        /// A checkpoint.safetensors.
        checkpoint: PathBuf,
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
    /// Inspect ONNX files.
    Onnx {
        #[command(subcommand)]
        cmd: onnx_cmd::OnnxCmd,
    },
    /// Export a checkpoint as an ONNX model (opset 17).
    Export {
        /// A checkpoint.safetensors.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Where to write the .onnx file.
        #[arg(long)]
        onnx: PathBuf,
    },
    /// Download public data sets (fashion-mnist, mnist, ...) into a cache folder.
    Data {
        #[command(subcommand)]
        cmd: data_get::DataCmd,
    },
}

#[derive(Subcommand)]
enum PresetsCmd {
    /// Print a preset as a TOML config.
    Show {
        /// Preset name.
        name: String,
    },
}

fn presets_cmd(cmd: Option<PresetsCmd>) -> fukai::Result<()> {
    match cmd {
        None => {
            let width = presets::PRESETS
                .iter()
                .map(|p| p.0.len())
                .max()
                .unwrap_or(0);
            for (name, about, _) in presets::PRESETS {
                println!("{name:<width$}  {about}");
            }
            println!("\nfukai presets show NAME   # the preset as a config to copy");
        }
        Some(PresetsCmd::Show { name }) => {
            let text = presets::PRESETS.iter().find(|p| p.0 == name).map(|p| p.2);
            match text {
                Some(t) => print!("{t}"),
                None => fukai::bail!(
                    "presets",
                    "unknown preset {name:?}; available: {}",
                    presets::names()
                ),
            }
        }
    }
    Ok(())
}

static DEVICE: std::sync::OnceLock<fukai::Device> = std::sync::OnceLock::new();

/// The device `--device` chose.
fn device() -> fukai::Device {
    DEVICE.get().copied().unwrap_or_default()
}

fn main() -> ExitCode {
    keep_freed_pages();
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        // Read once when the thread pool starts, which has not happened yet.
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    }
    #[cfg(not(feature = "mpi"))]
    if let Some(n) = fukai::distributed::launched_size().filter(|&n| n > 1) {
        eprintln!(
            "error: started by an MPI launcher as one of {n} processes, but this fukai was built \
             without MPI: each would train the whole run alone. Build it with \
             `cargo build --release -p fukai-cli --features mpi`"
        );
        return ExitCode::FAILURE;
    }
    // Under mpirun every rank joins the MPI world before any thread pool starts.
    #[cfg(feature = "mpi")]
    let _mpi = match fukai::distributed::init() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli
        .device
        .parse::<fukai::Device>()
        .and_then(|d| d.check().map(|_| d))
    {
        Ok(d) => {
            let _ = DEVICE.set(d);
        }
        Err(e) => {
            eprintln!("error: --device: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.cmd {
        None => fukai::parallel::on_pool(|| train::run(train::TrainArgs::default())),
        Some(Cmd::Train(a)) => fukai::parallel::on_pool(move || train::run(a)),
        Some(Cmd::Presets { cmd }) => presets_cmd(cmd),
        Some(Cmd::Generate {
            checkpoint,
            model,
            prompt,
            max_tokens,
            temperature,
            top_k,
            top_p,
            repeat_penalty,
            seed,
        }) => {
            let prompt = prompt.replace("\\n", "\n");
            let sampling = fukai::models::Sampling {
                temperature,
                top_k,
                top_p,
            };
            match (checkpoint, model) {
                (Some(_), _) if repeat_penalty.is_some() => Err(fukai::error::op_err(
                    "generate",
                    "--repeat-penalty needs --model (a character GPT samples without one)",
                )),
                (Some(c), _) => generate::run(&c, &prompt, max_tokens, &sampling, seed),
                (None, Some(m)) => generate::run_model(
                    &m,
                    &prompt,
                    max_tokens,
                    &sampling,
                    repeat_penalty.unwrap_or(1.0),
                    seed,
                ),
                (None, None) => unreachable!("clap requires --checkpoint or --model"),
            }
        }
        Some(Cmd::Eval {
            checkpoint,
            data,
            json,
        }) => fukai::parallel::on_pool(move || eval::eval(&checkpoint, data, json)),
        Some(Cmd::Predict {
            checkpoint,
            model,
            top_k,
            json,
            inputs,
        }) => match (checkpoint, model) {
            (Some(c), _) => predict::run(&c, &inputs, top_k, json),
            (None, Some(m)) => onnx_cmd::predict(&m, &inputs, top_k, json),
            (None, None) => unreachable!("clap requires --checkpoint or --model"),
        },
        Some(Cmd::Onnx { cmd }) => onnx_cmd::run(cmd),
        Some(Cmd::Export { checkpoint, onnx }) => onnx_cmd::export(&checkpoint, &onnx),
        Some(Cmd::Viz {
            checkpoint,
            input,
            out,
        }) => viz::run(&checkpoint, input.as_deref(), out.as_deref()),
        Some(Cmd::Info { checkpoint }) => eval::info(&checkpoint),
        Some(Cmd::Devices) => {
            for d in fukai::devices() {
                let soft = if d.software {
                    " (software: correct, not fast)"
                } else {
                    ""
                };
                println!("{:<8} {}{soft}", d.device.to_string(), d.name);
            }
            Ok(())
        }
        Some(Cmd::Embed { model, json, texts }) => embed::run(&model, json, texts),
        Some(Cmd::Data { cmd }) => data_get::run(cmd),
        Some(Cmd::Chat(a)) => fukai::parallel::on_pool(move || chat::run(a)),
        Some(Cmd::Finetune(a)) => fukai::parallel::on_pool(move || finetune::run(a)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let world = fukai::distributed::world();
            if world.size() > 1 {
                // The other ranks may be waiting in a collective this one will never join:
                // end them all now rather than hang.
                eprintln!("error (rank {} of {}): {e}", world.rank(), world.size());
                world.abort(1);
            }
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
