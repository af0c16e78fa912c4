//! `fukai generate`: samples text from a language-model checkpoint, printing each character
//! as it is drawn.

use fukai::models::{Gpt, ModelConfig, Sampling};
use fukai::nn::Module;
use fukai::{bail, Result};
use std::io::Write;
use std::path::Path;

/// Prints the prompt, then `max_tokens` sampled characters.
pub fn run(
    checkpoint: &Path,
    prompt: &str,
    max_tokens: usize,
    s: &Sampling,
    seed: u64,
) -> Result<()> {
    // The library names the fields (`top_p`); here they are flags (`--top-p`).
    s.validate().map_err(|e| match e {
        fukai::Error::Op { op, msg } => fukai::Error::Op {
            op,
            msg: format!("--{}", msg.replacen('_', "-", 1)),
        },
        e => e,
    })?;
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
