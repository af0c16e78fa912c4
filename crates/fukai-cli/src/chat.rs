//! `fukai chat`: talks to a LLaMA-family instruct model. Each turn renders the whole
//! conversation with the model's chat template; the session's key/value cache already holds
//! the earlier turns, so only the new text is prefilled. Answers stream to stdout as they are
//! decoded; prefill and decode speeds go to stderr at the end.

use crate::chat_model::{self, ChatModel};
use fukai::models::{Decoding, Sampling, Session};
use fukai::nn::Module;
use fukai::text::{ChatMessage, StreamDecoder};
use fukai::{bail, Result};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct ChatArgs {
    /// A LLaMA-family instruct model: a GGUF file (llama.cpp's format, e.g. SmolLM2 from
    /// scripts/fetch_smollm2.sh) or a Hugging Face model directory (config.json,
    /// model.safetensors, tokenizer.json, tokenizer_config.json).
    #[arg(long)]
    model: PathBuf,
    /// A LoRA adapter (safetensors, from `fukai finetune`) applied on top of the model.
    #[arg(long)]
    lora: Option<PathBuf>,
    /// System message (default: the template's own, if it has one).
    #[arg(long)]
    system: Option<String>,
    /// One-shot: answer this and exit, printing only the answer.
    #[arg(long)]
    prompt: Option<String>,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Softmax temperature (0 = always the most likely token).
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample only within the smallest set of tokens whose probability reaches p.
    #[arg(long)]
    top_p: Option<f64>,
    /// Repetition penalty over the last 64 tokens (1 = none).
    #[arg(long, default_value_t = 1.1)]
    repeat_penalty: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Token counts and times of the whole chat.
#[derive(Default)]
pub(crate) struct Speed {
    prefill_tokens: usize,
    prefill: Duration,
    decode_tokens: usize,
    decode: Duration,
}

impl Speed {
    pub(crate) fn report(&self) {
        let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
        eprintln!(
            "prefill: {} tokens in {:.2} s ({:.1} tokens/s); decode: {} tokens in {:.2} s ({:.1} tokens/s)",
            self.prefill_tokens,
            self.prefill.as_secs_f64(),
            rate(self.prefill_tokens, self.prefill),
            self.decode_tokens,
            self.decode.as_secs_f64(),
            rate(self.decode_tokens, self.decode),
        );
    }
}

/// Answers the last user message, streaming the text to `out`; returns the answer.
fn turn(
    m: &ChatModel,
    session: &mut Session,
    messages: &[ChatMessage],
    opts: &Decoding,
    speed: &mut Speed,
    out: &mut impl Write,
) -> Result<String> {
    let text = m.template.render(messages, true)?;
    let ids = m.tokenizer.encode(&text, true)?;
    complete(m, session, &ids, opts, speed, out)
}

/// Continues `ids` (which the session's cache may partly hold), streaming the text to `out`
/// and adding the token counts and times to `speed`; returns the text.
pub(crate) fn complete(
    m: &ChatModel,
    session: &mut Session,
    ids: &[u32],
    opts: &Decoding,
    speed: &mut Speed,
    out: &mut impl Write,
) -> Result<String> {
    let cached = session
        .fed()
        .iter()
        .zip(ids)
        .take_while(|(a, b)| a == b)
        .count()
        .min(ids.len().saturating_sub(1));
    let mut stream = StreamDecoder::new();
    let mut answer = String::new();
    let start = Instant::now();
    let mut first: Option<Instant> = None;
    let mut error = None;
    let generated = m.model.generate(session, ids, opts, |id| {
        first.get_or_insert_with(Instant::now);
        if m.stop.contains(&id) || error.is_some() {
            return;
        }
        match stream.push(&m.tokenizer, id) {
            Ok(piece) => {
                write!(out, "{piece}").ok();
                out.flush().ok();
                answer.push_str(&piece);
            }
            Err(e) => error = Some(e),
        }
    })?;
    if let Some(e) = error {
        return Err(e);
    }
    let end = Instant::now();
    let first = first.unwrap_or(end);
    let tail = stream.finish();
    write!(out, "{tail}").ok();
    answer.push_str(&tail);
    speed.prefill_tokens += ids.len() - cached;
    speed.prefill += first - start;
    // The first id comes from the prefill; each later one took a decode step.
    speed.decode_tokens += generated.len().saturating_sub(1);
    speed.decode += end - first;
    Ok(answer)
}

/// The library names the fields (`top_p`); the CLI's errors name the flags (`--top-p`).
pub(crate) fn flag_names(e: fukai::Error) -> fukai::Error {
    match e {
        fukai::Error::Op { op, msg } => fukai::Error::Op {
            op,
            msg: format!("--{}", msg.replacen('_', "-", 1)),
        },
        e => e,
    }
}

pub fn run(a: ChatArgs) -> Result<()> {
    let opts = Decoding {
        sampling: Sampling {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
        },
        repeat_penalty: a.repeat_penalty,
        repeat_last_n: 64,
        max_tokens: a.max_tokens,
        stop: Vec::new(),
    };
    opts.validate().map_err(flag_names)?;
    if a.max_tokens == 0 {
        bail!("chat", "--max-tokens must be at least 1");
    }
    let mut m = chat_model::load(&a.model)?;
    if let Some(path) = &a.lora {
        let adapter = fukai::models::LoraAdapter::load(path, m.model.config())?;
        m.model.set_lora(adapter)?;
    }
    let opts = Decoding {
        stop: m.stop.clone(),
        ..opts
    };
    let mut messages: Vec<ChatMessage> = a
        .system
        .iter()
        .map(|s| ChatMessage::new("system", s))
        .collect();
    let mut session = Session::new(&m.model, a.seed);
    let mut speed = Speed::default();
    let mut out = std::io::stdout().lock();
    if let Some(p) = a.prompt {
        messages.push(ChatMessage::new("user", &p));
        turn(&m, &mut session, &messages, &opts, &mut speed, &mut out)?;
        writeln!(out).ok();
        speed.report();
        return Ok(());
    }
    eprintln!(
        "{} — an empty line or end of input ends the chat.",
        m.model.describe()
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("> ");
        let Some(line) = lines.next() else { break };
        let line = line.map_err(|source| fukai::Error::Io {
            path: "stdin".into(),
            source,
        })?;
        if line.trim().is_empty() {
            break;
        }
        messages.push(ChatMessage::new("user", &line));
        let answer = turn(&m, &mut session, &messages, &opts, &mut speed, &mut out)?;
        writeln!(out).ok();
        messages.push(ChatMessage::new("assistant", &answer));
    }
    speed.report();
    Ok(())
}
