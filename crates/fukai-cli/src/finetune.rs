//! `fukai finetune`: trains a LoRA adapter for a LLaMA-family model on chat records (JSONL)
//! and saves it as safetensors; `fukai chat --lora` applies it. Parsing and printing only:
//! [`fukai::models::finetune`] does the work.

use crate::chat_model;
use fukai::models::{finetune, ChatExample, FinetuneConfig, LoraConfig, LoraTarget};
use fukai::{bail, Result};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// The base model: a GGUF file or a Hugging Face model directory (as for `fukai chat`).
    #[arg(long)]
    model: PathBuf,
    /// Chat records, one JSON object per line:
    /// {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}.
    /// The loss counts the assistant's tokens only.
    #[arg(long)]
    data: PathBuf,
    /// Where to write the adapter (safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Overwrite --out if it exists.
    #[arg(long)]
    force: bool,
    /// Rank of the adapter.
    #[arg(long, default_value_t = 8)]
    rank: usize,
    /// The update is scaled by alpha / rank.
    #[arg(long, default_value_t = 16.0)]
    alpha: f64,
    /// Projections adapted in every layer: comma-separated among q_proj, k_proj, v_proj,
    /// o_proj, gate_proj, up_proj, down_proj, or `all`.
    #[arg(long, default_value = "q_proj,v_proj")]
    targets: String,
    /// Dropout on the adapter's input while training.
    #[arg(long, default_value_t = 0.0)]
    dropout: f64,
    /// AdamW's learning rate at the first step (decaying linearly to 0 at the last).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Passes over the data.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Optimizer steps in all (overrides --epochs).
    #[arg(long)]
    steps: Option<usize>,
    /// Records per step.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Longest record in tokens (a longer one is an error naming its line).
    #[arg(long, default_value_t = 512)]
    max_len: usize,
    /// Seeds the adapter's initialization, dropout and the order of the records.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(a: FinetuneArgs) -> Result<()> {
    if a.out.exists() && !a.force {
        bail!(
            "finetune",
            "--out {}: the file exists; pass --force to overwrite it",
            a.out.display()
        );
    }
    if a.max_len < 2 {
        bail!(
            "finetune",
            "--max-len must be at least 2, found {}",
            a.max_len
        );
    }
    let lora = LoraConfig {
        dropout: a.dropout,
        ..LoraConfig::new(a.rank, a.alpha, &LoraTarget::parse_list(&a.targets)?)
    };
    let cfg = FinetuneConfig {
        lr: a.lr,
        epochs: a.epochs,
        steps: a.steps,
        batch_size: a.batch_size,
        seed: a.seed,
        ..FinetuneConfig::new(lora)
    };
    let start = Instant::now();
    let mut m = chat_model::load(&a.model)?;
    cfg.lora.validate(m.model.config())?;
    let data = ChatExample::load_jsonl(&a.data, &m.tokenizer, &m.template, a.max_len)?;
    let tokens: usize = data.iter().map(|e| e.ids.len()).sum();
    let learned: usize = data
        .iter()
        .map(|e| e.learn.iter().filter(|&&l| l).count())
        .sum();
    eprintln!(
        "{} records, {tokens} tokens ({learned} to learn); rank {}, alpha {}, targets {}",
        data.len(),
        cfg.lora.rank,
        cfg.lora.alpha,
        cfg.lora
            .targets
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    let train_start = Instant::now();
    let report = finetune(&mut m.model, &data, &cfg, |s| {
        // About 20 lines per run, and always the first and last step.
        let every = s.steps.div_ceil(20).max(1);
        if s.step == 1 || s.step == s.steps || s.step % every == 0 {
            eprintln!(
                "step {:>5}/{} epoch {:>3}  loss {:.4}  ({:.1} s)",
                s.step,
                s.steps,
                s.epoch + 1,
                s.loss,
                train_start.elapsed().as_secs_f64()
            );
        }
    })?;
    let Some(adapter) = m.model.lora() else {
        bail!("finetune", "the model lost its adapter");
    };
    adapter.save(&a.out, a.force)?;
    println!(
        "loss {:.4} (first epoch) -> {:.4} (last epoch), {} steps in {:.1} s; adapter saved to {}",
        report.first_loss,
        report.last_loss,
        report.steps,
        start.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}
