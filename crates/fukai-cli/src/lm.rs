//! Step-based language-model training (`model.kind = "gpt"`): random windows of a text file,
//! AdamW with weight decay on matrices only, warmup + cosine schedule, gradient clipping, and a
//! validation loss over fixed random windows of the held-out tail.

use crate::config::Config;
use crate::gpt::{Gpt, GptConfig};
use fukai::io::{load_safetensors, save_safetensors};
use fukai::nn::loss::cross_entropy;
use fukai::nn::Module;
use fukai::optim::{clip_grad_norm, Adam, LrSchedule, Optimizer};
use fukai::text::{CharTokenizer, TokenWindows};
use fukai::{bail, Error, Generator, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Checkpoint format tag of language-model runs.
pub const FORMAT: &str = "fukai-lm-1";

/// Training settings that only step-based runs have.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LmTrainConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Learning rate at the end of the cosine decay.
    pub min_lr: f64,
    /// Adam's second moment decay.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Validation windows averaged for `val_loss`.
    #[serde(default = "default_eval_windows")]
    pub eval_windows: usize,
    /// Steps between validation passes (the last step is always evaluated).
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
}

fn default_beta2() -> f64 {
    0.999
}
fn default_eval_windows() -> usize {
    200
}
fn default_eval_every() -> usize {
    500
}

/// nanoGPT's "baby GPT" on the characters of Shakespeare's works: 4 layers, 4 heads, width 128,
/// context 64, batch 12, AdamW (0.9, 0.99, weight decay 0.1), lr 1e-3 with 100 warmup steps and
/// cosine decay to 1e-4 over 2,000 steps, gradient norm clipped at 1, no dropout.
pub fn shakespeare_preset() -> Config {
    let mut d = crate::presets::data("text", "text/shakespeare.txt");
    d.test_fraction = 0.1;
    let mut m = crate::presets::model("gpt", &[], &[]);
    m.gpt = Some(GptConfig {
        layers: 4,
        heads: 4,
        width: 128,
        context: 64,
        tie_weights: false,
    });
    let mut t = crate::presets::train(1, 12, 1e-3);
    t.optimizer = "adamw".into();
    t.weight_decay = 0.1;
    t.schedule = "cosine".into();
    t.warmup_steps = 100;
    t.clip_grad_norm = Some(1.0);
    t.lm = Some(LmTrainConfig {
        steps: 2000,
        min_lr: 1e-4,
        beta2: 0.99,
        eval_windows: 200,
        eval_every: 500,
    });
    Config {
        name: "shakespeare-gpt".into(),
        data: d,
        model: m,
        train: t,
    }
}

fn parts(cfg: &Config) -> Result<(&GptConfig, &LmTrainConfig)> {
    match (&cfg.model.gpt, &cfg.train.lm) {
        (Some(g), Some(l)) => Ok((g, l)),
        _ => bail!(
            "config",
            "model.kind = \"gpt\" needs a [model.gpt] table (layers, heads, width, context) and a [train.lm] table (steps, min_lr)"
        ),
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
}

/// Mean next-token loss over `starts` windows, in batches, without recording a graph.
pub fn eval_loss(model: &Gpt, data: &TokenWindows, starts: &[usize]) -> Result<f64> {
    let _g = fukai::no_grad();
    let mut total = 0.0;
    for chunk in starts.chunks(50) {
        let (x, y) = data.batch(chunk)?;
        let logits = model.logits(&x, None)?;
        let v = logits.shape()[2];
        let n = x.numel();
        let loss = cross_entropy(&logits.reshape(&[n, v])?, &y.reshape(&[n])?)?;
        total += loss.item()? * chunk.len() as f64;
    }
    Ok(total / starts.len() as f64)
}

/// What a finished run reports.
#[derive(Serialize)]
struct Summary<'a> {
    name: &'a str,
    val_loss: f64,
    train_loss: f64,
    steps: usize,
    tokens_per_second: f64,
    train_seconds: f64,
    parameters: usize,
    vocab_size: usize,
    threads: usize,
    data: String,
    checkpoint: String,
    config: &'a Config,
}

/// Trains `cfg` (a `gpt` config), writing `metrics.jsonl`, `summary.json` and
/// `checkpoint.safetensors` (model, vocabulary and config) under `out`.
pub fn run(
    cfg: &Config,
    data_path: &Path,
    out: &Path,
    steps_override: Option<usize>,
) -> Result<()> {
    let (gc, lc) = parts(cfg)?;
    let steps = steps_override.unwrap_or(lc.steps);
    let t = &cfg.train;
    if steps == 0 || t.batch_size == 0 || t.lr.is_nan() || t.lr <= 0.0 {
        bail!(
            "config",
            "train.lm.steps, train.batch_size and train.lr must be positive"
        );
    }
    let text = read_text(data_path)?;
    let tok = CharTokenizer::from_text(&text);
    let tokens = tok.encode(&text)?;
    let (train, val) = TokenWindows::split_tail(&tokens, gc.context, 1.0 - cfg.data.test_fraction)?;
    fukai::manual_seed(t.seed);
    let model = Gpt::new(tok.vocab_size(), gc)?;
    // Weight decay on matrices and embeddings only, as nanoGPT does.
    let (decay, no_decay): (Vec<Tensor>, Vec<Tensor>) =
        model.parameters().into_iter().partition(|p| p.rank() >= 2);
    let mut opts = [
        Adam::adamw(decay, t.lr)
            .betas(0.9, lc.beta2)
            .weight_decay(t.weight_decay),
        Adam::adamw(no_decay, t.lr)
            .betas(0.9, lc.beta2)
            .weight_decay(0.0),
    ];
    let schedule = LrSchedule::WarmupCosine {
        warmup: t.warmup_steps,
        total: steps,
        min_lr: lc.min_lr,
    };
    let params = model.parameters();
    let mut batches = Generator::new(t.seed.wrapping_add(1));
    let val_starts = val.sample_starts(
        lc.eval_windows.max(1),
        &mut Generator::new(t.seed ^ 0x05ee_d5a1),
    );
    std::fs::create_dir_all(out).map_err(|e| Error::Io {
        path: out.display().to_string(),
        source: e,
    })?;
    println!(
        "{}: {} parameters, vocabulary {} characters, {} train / {} validation tokens, {} steps of {}x{} tokens",
        cfg.name,
        model.num_parameters(),
        tok.vocab_size(),
        train.tokens().len(),
        val.tokens().len(),
        steps,
        t.batch_size,
        gc.context
    );
    let mut metrics = String::new();
    let (mut train_secs, mut recent, mut recent_n) = (0.0f64, 0.0f64, 0usize);
    let mut last_train = f64::NAN;
    let mut val_loss = f64::NAN;
    for step in 0..steps {
        let start = Instant::now();
        let lr = schedule.lr(t.lr, step);
        for o in opts.iter_mut() {
            o.set_lr(lr);
        }
        let (x, y) = train.sample(t.batch_size, &mut batches)?;
        let logits = model.logits(&x, None)?;
        let n = x.numel();
        let loss = cross_entropy(&logits.reshape(&[n, tok.vocab_size()])?, &y.reshape(&[n])?)?;
        loss.backward()?;
        if let Some(c) = t.clip_grad_norm {
            clip_grad_norm(&params, c)?;
        }
        for o in opts.iter_mut() {
            o.step()?;
            o.zero_grad();
        }
        let l = loss.item()?;
        train_secs += start.elapsed().as_secs_f64();
        recent += l;
        recent_n += 1;
        let last = step + 1 == steps;
        let eval_now = (step + 1) % lc.eval_every.max(1) == 0 || last;
        if (step + 1) % 100 == 0 || eval_now {
            last_train = recent / recent_n as f64;
            let tps = ((step + 1) * n) as f64 / train_secs;
            let mut line = format!(
                "{{\"step\":{},\"train_loss\":{last_train:.5},\"lr\":{lr:.3e},\"tokens_per_second\":{tps:.0}",
                step + 1
            );
            let mut shown = format!(
                "step {:>5}/{steps} | loss {last_train:.4} | lr {lr:.2e} | {tps:.0} tok/s",
                step + 1
            );
            if eval_now {
                val_loss = eval_loss(&model, &val, &val_starts)?;
                line += &format!(",\"val_loss\":{val_loss:.5}");
                shown += &format!(" | val {val_loss:.4}");
            }
            metrics += &line;
            metrics += "}\n";
            println!("{shown}");
            (recent, recent_n) = (0.0, 0);
        }
    }
    let tps = (steps * t.batch_size * gc.context) as f64 / train_secs;
    let ckpt = out.join("checkpoint.safetensors");
    save_checkpoint(&ckpt, &model, &tok, cfg, steps)?;
    let summary = Summary {
        name: &cfg.name,
        val_loss,
        train_loss: last_train,
        steps,
        tokens_per_second: tps,
        train_seconds: train_secs,
        parameters: model.num_parameters(),
        vocab_size: tok.vocab_size(),
        threads: fukai::parallel::num_threads(),
        data: data_path.display().to_string(),
        checkpoint: ckpt.display().to_string(),
        config: cfg,
    };
    let write = |name: &str, body: &str| fukai::io::write_atomic(out.join(name), body.as_bytes());
    write("metrics.jsonl", &metrics)?;
    write(
        "summary.json",
        &serde_json::to_string_pretty(&summary).expect("summary serializes"),
    )?;
    println!(
        "\nvalidation loss {val_loss:.4} ({} windows) | {tps:.0} tokens/s over {train_secs:.1} s",
        val_starts.len()
    );
    println!("run directory: {}", out.display());
    println!(
        "next:\n  fukai generate --checkpoint {} --prompt \"ROMEO:\" --max-tokens 300",
        ckpt.display()
    );
    Ok(())
}

fn save_checkpoint(
    path: &Path,
    model: &Gpt,
    tok: &CharTokenizer,
    cfg: &Config,
    steps: usize,
) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = model
        .state_dict()
        .into_iter()
        .map(|(n, t)| (format!("model.{n}"), t))
        .collect();
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("vocab".to_string(), tok.vocab_string());
    meta.insert("step".to_string(), steps.to_string());
    meta.insert(
        "config".to_string(),
        serde_json::to_string(cfg).expect("config serializes"),
    );
    save_safetensors(path, &tensors, Some(&meta))
}

/// A trained model and its vocabulary, read back from a checkpoint alone.
pub struct Loaded {
    /// The model.
    pub model: Gpt,
    /// Its character vocabulary.
    pub tokenizer: CharTokenizer,
}

/// Loads a checkpoint written by [`run`].
pub fn load(path: &Path) -> Result<Loaded> {
    let file = load_safetensors(path)?;
    file.check_finite()?;
    let err = |msg: String| Error::Format {
        file: path.display().to_string(),
        msg,
    };
    let meta = file.metadata();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(err(format!(
            "not a language-model checkpoint (metadata format {:?}, expected {FORMAT:?})",
            meta.get("format")
        )));
    }
    let field = |k: &str| {
        meta.get(k)
            .ok_or_else(|| err(format!("metadata field {k:?} is missing")))
    };
    let cfg: Config = serde_json::from_str(field("config")?)
        .map_err(|e| err(format!("metadata field \"config\": {e}")))?;
    crate::limits::check(&cfg).map_err(|e| err(format!("metadata field \"config\": {e}")))?;
    let tokenizer = CharTokenizer::from_vocab(field("vocab")?).map_err(|e| err(e.to_string()))?;
    let (gc, _) = parts(&cfg)?;
    let model = fukai::tensor::with_alloc_limit(file.build_limit(), || {
        Gpt::new(tokenizer.vocab_size(), gc)
    })
    .map_err(|e| crate::train::mismatch(path, e))?;
    let state: Vec<(String, Tensor)> = file
        .tensors()
        .iter()
        .filter_map(|(n, t)| n.strip_prefix("model.").map(|s| (s.to_string(), t.clone())))
        .collect();
    model
        .load_state_dict(&state)
        .map_err(|e| err(e.to_string()))?;
    Ok(Loaded { model, tokenizer })
}

/// `fukai train` for a gpt config: resolves the data and the run directory, then [`run`].
pub fn train_cmd(
    cfg: &Config,
    data: Option<&Path>,
    out: Option<PathBuf>,
    steps: Option<usize>,
) -> Result<()> {
    let path = crate::dataset::resolve(&cfg.data, data)?;
    let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
    run(cfg, &path, &out, steps)?;
    std::io::stdout().flush().ok();
    Ok(())
}
