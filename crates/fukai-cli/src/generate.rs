//! `fukai generate`: continues a prompt, printing the text as it is drawn — from a character
//! GPT checkpoint of `fukai train`, or from a LLaMA-family model (`--model`, a GGUF file or a
//! Hugging Face directory, as `fukai chat` loads), without any chat template.

use crate::chat::{complete, flag_names, Speed};
use fukai::models::{Decoding, Gpt, ModelConfig, Sampling, Session};
use fukai::nn::Module;
use fukai::{bail, Result};
use std::io::Write;
use std::path::Path;

/// Continues `prompt` with a LLaMA-family model: the prompt is encoded as the model's
/// tokenizer does plain text (with its start token, if it adds one), generation ends at the
/// model's end-of-text or end-of-turn token or after `max_tokens`; speeds go to stderr.
pub fn run_model(
    model: &Path,
    prompt: &str,
    max_tokens: usize,
    sampling: &Sampling,
    repeat_penalty: f32,
    seed: u64,
) -> Result<()> {
    let mut opts = Decoding {
        sampling: sampling.clone(),
        repeat_penalty,
        ..Decoding::greedy(max_tokens)
    };
    opts.validate().map_err(flag_names)?;
    if max_tokens == 0 {
        bail!("generate", "--max-tokens must be at least 1");
    }
    if prompt.is_empty() {
        bail!("generate", "--prompt must not be empty");
    }
    let m = crate::chat_model::load(model)?;
    opts.stop = m.stop.clone();
    let ids = m.tokenizer.encode(prompt, true)?;
    if ids.is_empty() {
        bail!("generate", "--prompt {prompt:?} encodes to no tokens");
    }
    let mut session = Session::new(&m.model, seed);
    let mut speed = Speed::default();
    let mut out = std::io::stdout().lock();
    write!(out, "{prompt}").ok();
    complete(&m, &mut session, &ids, &opts, &mut speed, &mut out)?;
    writeln!(out).ok();
    speed.report();
    Ok(())
}

/// Prints the prompt, then `max_tokens` sampled characters.
pub fn run(
    checkpoint: &Path,
    prompt: &str,
    max_tokens: usize,
    s: &Sampling,
    seed: u64,
) -> Result<()> {
    s.validate().map_err(flag_names)?;
    let t = fukai::run::load_trained(checkpoint)?;
    let (ModelConfig::Gpt(cfg), Some(tok)) = (&t.config, &t.tokenizer) else {
        bail!(
            "generate",
            "{}: a {} checkpoint, not a language model",
            checkpoint.display(),
            t.config.kind()
        );
    };
    if prompt.is_empty() {
        bail!("generate", "--prompt must not be empty");
    }
    let ids = tok
        .encode(prompt)
        .map_err(|e| fukai::error::op_err("generate", format!("--prompt: {e}")))?;
    // The generic loader gives a `dyn Model`; generation needs the GPT itself.
    let gpt = Gpt::new(cfg.clone())?;
    gpt.load_state_dict(&t.model.state_dict())?;
    gpt.to_device(crate::device())?;
    let mut out = std::io::stdout().lock();
    write!(out, "{prompt}").ok();
    gpt.generate(&ids, max_tokens, s, seed, |id| {
        write!(out, "{}", tok.decode(&[id]).unwrap_or_default()).ok();
        out.flush().ok();
    })?;
    writeln!(out).ok();
    Ok(())
}
