//! Supervised fine-tuning of a [`Llama`] with a LoRA adapter on chat records: each record is
//! rendered with the model's chat template, and the loss counts the assistant's tokens only
//! (its answer and the end-of-turn marker), so the model learns to answer, not to write
//! prompts.
//!
//! From files, the whole of what `fukai finetune` does:
//!
//! ```no_run
//! use fukai::io::GgufFile;
//! use fukai::models::{finetune, ChatExample, FinetuneConfig, Llama, LoraConfig, LoraTarget};
//! use fukai::text::{ChatTemplate, GgufTokenizer};
//! let file = GgufFile::open("smollm2-135m-instruct-q4_1.gguf")?;
//! let mut model = Llama::from_gguf(&file)?;
//! let tok = GgufTokenizer::from_gguf(&file)?;
//! let template = ChatTemplate::from_gguf(&file)?;
//! let data = ChatExample::load_jsonl("facts.jsonl", &tok, &template, 256)?;
//! let lora = LoraConfig::new(8, 16.0, &[LoraTarget::QProj, LoraTarget::VProj]);
//! let cfg = FinetuneConfig { epochs: 10, ..FinetuneConfig::new(lora) };
//! let report = finetune(&mut model, &data, &cfg, |s| println!("step {} loss {:.3}", s.step, s.loss))?;
//! println!("final loss {:.3}", report.last_loss);
//! model.lora().unwrap().save("facts.safetensors", false)?;
//! # Ok::<(), fukai::Error>(())
//! ```

use super::llama::Llama;
use super::lora::{LoraAdapter, LoraConfig};
use crate::bail;
use crate::error::{Error, Result};
use crate::nn::loss::cross_entropy;
use crate::optim::{clip_grad_norm, Adam, Optimizer};
use crate::rng::Generator;
use crate::tensor::Tensor;
use crate::text::{ChatMessage, ChatTemplate, GgufTokenizer};
use std::path::Path;

/// One tokenized conversation: `ids`, and for each id whether the loss counts it (an
/// assistant token, predicted from the ids before it).
#[derive(Clone, Debug, PartialEq)]
pub struct ChatExample {
    /// Token ids of the rendered conversation.
    pub ids: Vec<u32>,
    /// `learn[i]`: id `i` is the assistant's, and the loss counts its prediction.
    pub learn: Vec<bool>,
}

const ROLES: [&str; 3] = ["system", "user", "assistant"];

impl ChatExample {
    /// An example from ids and their loss mask; they must be as long as each other, and
    /// something after the first id must count.
    pub fn new(ids: Vec<u32>, learn: Vec<bool>) -> Result<Self> {
        if ids.len() != learn.len() {
            bail!(
                "finetune",
                "{} ids but {} mask entries",
                ids.len(),
                learn.len()
            );
        }
        if !learn.iter().skip(1).any(|&l| l) {
            bail!(
                "finetune",
                "the example has no token to learn after the first"
            );
        }
        Ok(ChatExample { ids, learn })
    }

    /// Renders `messages` with `template` and tokenizes it the way `fukai chat` does
    /// (special tokens added as the tokenizer asks); the assistant turns, from after their
    /// header to the end of the turn, are the tokens to learn.
    pub fn from_messages(
        messages: &[ChatMessage],
        tok: &GgufTokenizer,
        template: &ChatTemplate,
    ) -> Result<Self> {
        let (mut ids, mut learn) = (Vec::new(), Vec::new());
        let mut done = String::new();
        let mut push = |text: &str, learned: bool, first: bool| -> Result<()> {
            let piece = tok.encode(text, first)?;
            learn.extend(std::iter::repeat_n(learned, piece.len()));
            ids.extend(piece);
            Ok(())
        };
        let mut first = true;
        for (j, m) in messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let prompt = template.render(&messages[..j], true)?;
            let full = template.render(&messages[..=j], false)?;
            let (Some(before), Some(answer)) = (
                prompt.strip_prefix(done.as_str()),
                full.strip_prefix(prompt.as_str()),
            ) else {
                bail!(
                    "finetune",
                    "the chat template does not render turn {j} as a continuation of the turns before it, so its tokens cannot be told apart"
                );
            };
            push(before, false, first)?;
            push(answer, true, false)?;
            first = false;
            done = full;
        }
        if first {
            bail!("finetune", "no assistant message: nothing to learn");
        }
        ChatExample::new(ids, learn)
    }

    /// Reads JSONL chat records (`{"messages": [{"role": "system" | "user" | "assistant",
    /// "content": "..."}, ...]}`, one per line; blank lines skipped) and tokenizes each with
    /// [`ChatExample::from_messages`]. Bad JSON, a missing or bad field, a record without an
    /// assistant message or longer than `max_len` tokens, or a file without records is an
    /// error naming the file, the line and the field.
    pub fn load_jsonl(
        path: impl AsRef<Path>,
        tok: &GgufTokenizer,
        template: &ChatTemplate,
        max_len: usize,
    ) -> Result<Vec<ChatExample>> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        ChatExample::parse_jsonl(&text, &path.display().to_string(), tok, template, max_len)
    }

    /// [`ChatExample::load_jsonl`] on text already read; `source` names it in errors.
    pub fn parse_jsonl(
        text: &str,
        source: &str,
        tok: &GgufTokenizer,
        template: &ChatTemplate,
        max_len: usize,
    ) -> Result<Vec<ChatExample>> {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let err = |msg: String| Error::Format {
                file: format!("{source}:{}", n + 1),
                msg,
            };
            let messages = parse_record(line).map_err(err)?;
            let ex = ChatExample::from_messages(&messages, tok, template).map_err(|e| {
                err(match e {
                    Error::Op { msg, .. } => msg,
                    e => e.to_string(),
                })
            })?;
            if ex.ids.len() > max_len {
                return Err(err(format!(
                    "the record is {} tokens long, more than the maximum length {max_len} (--max-len)",
                    ex.ids.len()
                )));
            }
            out.push(ex);
        }
        if out.is_empty() {
            return Err(Error::Format {
                file: source.to_string(),
                msg: "no records: expected one JSON object per line, {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}".into(),
            });
        }
        Ok(out)
    }
}

/// The messages of one JSONL line; the error names the field.
fn parse_record(line: &str) -> std::result::Result<Vec<ChatMessage>, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Some(list) = v.get("messages") else {
        return Err(
            "field \"messages\": missing (expected an array of {\"role\", \"content\"} objects)"
                .into(),
        );
    };
    let Some(list) = list.as_array() else {
        return Err(format!(
            "field \"messages\": expected an array, found {list}"
        ));
    };
    if list.is_empty() {
        return Err("field \"messages\": expected at least one message, found []".into());
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let role = match m.get("role") {
            None => {
                return Err(format!(
                    "field \"messages[{i}].role\": missing (expected one of {ROLES:?})"
                ))
            }
            Some(r) => match r.as_str() {
                Some(r) if ROLES.contains(&r) => r,
                _ => {
                    return Err(format!(
                        "field \"messages[{i}].role\": expected one of {ROLES:?}, found {r}"
                    ))
                }
            },
        };
        let content = match m.get("content") {
            None => {
                return Err(format!(
                    "field \"messages[{i}].content\": missing (expected a string)"
                ))
            }
            Some(c) => c.as_str().ok_or_else(|| {
                format!("field \"messages[{i}].content\": expected a string, found {c}")
            })?,
        };
        out.push(ChatMessage::new(role, content));
    }
    if !out.iter().any(|m| m.role == "assistant") {
        return Err(
            "field \"messages\": no message with role \"assistant\", so nothing to learn".into(),
        );
    }
    Ok(out)
}

/// Settings of [`finetune`].
#[derive(Clone, Debug, PartialEq)]
pub struct FinetuneConfig {
    /// The adapter to train.
    pub lora: LoraConfig,
    /// AdamW's learning rate at the first step; it decays linearly to 0 at the last (the
    /// schedule of Hugging Face's Trainer), so the last steps settle instead of jumping.
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Passes over the data (when `steps` is `None`).
    pub epochs: usize,
    /// Optimizer steps in all, overriding `epochs` (the data is cycled, reshuffled each pass).
    pub steps: Option<usize>,
    /// Examples per step (padded to the longest).
    pub batch_size: usize,
    /// Gradients are scaled down to this global norm, if set.
    pub clip_norm: Option<f64>,
    /// Seeds the adapter's `A`, the dropout and the order of the examples.
    pub seed: u64,
}

impl FinetuneConfig {
    /// PEFT-like defaults around `lora`: lr 2e-3, no weight decay, 3 epochs, batches of 8,
    /// gradients clipped to norm 1, seed 0.
    pub fn new(lora: LoraConfig) -> Self {
        FinetuneConfig {
            lora,
            lr: 2e-3,
            weight_decay: 0.0,
            epochs: 3,
            steps: None,
            batch_size: 8,
            clip_norm: Some(1.0),
            seed: 0,
        }
    }
}

/// What one optimizer step did.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// 1-based step.
    pub step: usize,
    /// Steps in all.
    pub steps: usize,
    /// 0-based pass over the data.
    pub epoch: usize,
    /// Mean cross-entropy over the batch's learned tokens.
    pub loss: f64,
    /// Learned tokens in the batch.
    pub tokens: usize,
}

/// What [`finetune`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct FinetuneReport {
    /// Optimizer steps taken.
    pub steps: usize,
    /// Mean loss of the first pass over the data (or of every step, if fewer).
    pub first_loss: f64,
    /// Mean loss of the last pass over the data.
    pub last_loss: f64,
    /// Learned tokens seen, all steps together.
    pub tokens: usize,
}

/// Trains a fresh LoRA adapter (`cfg.lora`, seeded with `cfg.seed`) on `data` with AdamW,
/// the model's own weights frozen; the adapter stays applied to `model` afterwards (dropout
/// off), ready to generate with or to [`LoraAdapter::save`] (through [`Llama::lora`]).
/// `on_step` sees every step. The same data, config and seed give the same adapter, bit for
/// bit, at any thread count.
///
/// ```
/// use fukai::models::{finetune, ChatExample, FinetuneConfig, Llama, LlamaConfig, LoraConfig, LoraTarget, RopeScaling};
/// let cfg = LlamaConfig {
///     vocab: 32, hidden: 16, intermediate: 24, layers: 2, heads: 4, kv_heads: 2, head_dim: 4,
///     rope_theta: 10000.0, rope_scaling: RopeScaling::None, rms_eps: 1e-5,
///     tie_embeddings: true, max_context: 64,
/// };
/// let mut model = Llama::random(cfg, 0)?;
/// // "Question" ids 1..4, then the answer 7 8 9 that the model is to learn.
/// let data = vec![ChatExample::new(vec![1, 2, 3, 4, 7, 8, 9], vec![false, false, false, false, true, true, true])?];
/// let lora = LoraConfig::new(4, 16.0, &LoraTarget::ALL);
/// let train = FinetuneConfig { lr: 2e-2, steps: Some(80), ..FinetuneConfig::new(lora) };
/// let report = finetune(&mut model, &data, &train, |_| {})?;
/// assert!(report.last_loss < report.first_loss, "{report:?}");
/// // Greedy decoding after the question now gives the answer.
/// let mut session = fukai::models::Session::new(&model, 0);
/// let out = model.generate(&mut session, &[1, 2, 3, 4], &fukai::models::Decoding::greedy(3), |_| {})?;
/// assert_eq!(out, [7, 8, 9]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn finetune(
    model: &mut Llama,
    data: &[ChatExample],
    cfg: &FinetuneConfig,
    mut on_step: impl FnMut(&StepReport),
) -> Result<FinetuneReport> {
    if data.is_empty() {
        bail!("finetune", "no examples to train on");
    }
    if cfg.batch_size == 0 {
        bail!("finetune", "field `batch_size` must be at least 1, found 0");
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        bail!(
            "finetune",
            "field `lr`: expected a finite number > 0, found {}",
            cfg.lr
        );
    }
    if !(cfg.weight_decay.is_finite() && cfg.weight_decay >= 0.0) {
        bail!(
            "finetune",
            "field `weight_decay`: expected a finite number >= 0, found {}",
            cfg.weight_decay
        );
    }
    let per_epoch = data.len().div_ceil(cfg.batch_size);
    let steps = match cfg.steps {
        Some(s) => s,
        None => cfg.epochs.saturating_mul(per_epoch),
    };
    if steps == 0 {
        bail!(
            "finetune",
            "fields `epochs` / `steps`: at least one step is needed, found 0"
        );
    }
    let vocab = model.config().vocab;
    let ctx = model.config().max_context;
    for (i, ex) in data.iter().enumerate() {
        if let Some(&bad) = ex.ids.iter().find(|&&id| id as usize >= vocab) {
            bail!(
                "finetune",
                "example {i}: token id {bad} is outside the vocabulary of {vocab}"
            );
        }
        if ex.ids.len() > ctx + 1 {
            bail!(
                "finetune",
                "example {i}: {} tokens exceed the model's context of {ctx}",
                ex.ids.len()
            );
        }
    }
    let mut adapter = LoraAdapter::new(model.config(), cfg.lora.clone(), cfg.seed)?;
    adapter.set_training(true);
    let params = adapter.params();
    model.set_lora(adapter)?;
    let mut opt = Adam::adamw(params.clone(), cfg.lr).weight_decay(cfg.weight_decay);
    let mut order_rng = Generator::new(cfg.seed ^ 0x5368_7566);
    let mut order: Vec<usize> = Vec::new();
    let (mut first, mut last) = ((0.0, 0usize), (0.0, 0usize));
    let mut tokens = 0;
    let result = (|| -> Result<()> {
        for step in 0..steps {
            let epoch = step / per_epoch;
            let k = step % per_epoch;
            if k == 0 {
                order = shuffled(data.len(), &mut order_rng);
                last = (0.0, 0);
            }
            let batch: Vec<&ChatExample> = order[k * cfg.batch_size..]
                .iter()
                .take(cfg.batch_size)
                .map(|&i| &data[i])
                .collect();
            opt.set_lr(cfg.lr * (1.0 - step as f64 / steps as f64));
            opt.zero_grad();
            let (loss, n) = batch_loss(model, &batch)?;
            loss.backward()?;
            if let Some(max) = cfg.clip_norm {
                clip_grad_norm(&params, max)?;
            }
            opt.step()?;
            let loss = loss.item()?;
            if !loss.is_finite() {
                bail!(
                    "finetune",
                    "step {}: the loss is {loss}; try a smaller --lr",
                    step + 1
                );
            }
            tokens += n;
            if epoch == 0 {
                first = (first.0 + loss, first.1 + 1);
            }
            last = (last.0 + loss, last.1 + 1);
            on_step(&StepReport {
                step: step + 1,
                steps,
                epoch,
                loss,
                tokens: n,
            });
        }
        Ok(())
    })();
    if let Some(a) = model.lora_mut() {
        a.set_training(false);
    }
    result?;
    Ok(FinetuneReport {
        steps,
        first_loss: first.0 / first.1.max(1) as f64,
        last_loss: last.0 / last.1.max(1) as f64,
        tokens,
    })
}

/// A permutation of `0..n` (Fisher-Yates on the generator's draws).
fn shuffled(n: usize, rng: &mut Generator) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let u = rng.uniform_f64(n);
    for i in (1..n).rev() {
        let j = ((u[i] * (i + 1) as f64) as usize).min(i);
        v.swap(i, j);
    }
    v
}

/// Mean cross-entropy of the learned tokens of a batch (right-padded, so the causal mask
/// already hides the padding from every real position), and how many there are. Only the
/// learned positions go through the output head, the widest product.
fn batch_loss(model: &Llama, batch: &[&ChatExample]) -> Result<(Tensor, usize)> {
    let t = batch
        .iter()
        .map(|e| e.ids.len() - 1)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut inputs = vec![0i64; batch.len() * t];
    let (mut rows, mut targets) = (Vec::new(), Vec::new());
    for (b, e) in batch.iter().enumerate() {
        for (i, &id) in e.ids[..e.ids.len() - 1].iter().enumerate() {
            inputs[b * t + i] = id as i64;
            if e.learn[i + 1] {
                rows.push((b * t + i) as i64);
                targets.push(e.ids[i + 1] as i64);
            }
        }
    }
    let n = rows.len();
    if n == 0 {
        bail!("finetune", "a batch has no tokens to learn");
    }
    let ids = Tensor::from_vec(inputs, &[batch.len(), t])?;
    let h = model.hidden(&ids, None)?;
    let d = h.shape()[2];
    let picked = h
        .reshape(&[batch.len() * t, d])?
        .index_select(0, &Tensor::from_vec(rows, &[n])?)?;
    let logits = model.head(&picked)?;
    Ok((
        cross_entropy(&logits, &Tensor::from_vec(targets, &[n])?)?,
        n,
    ))
}
