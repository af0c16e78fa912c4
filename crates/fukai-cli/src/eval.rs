//! `fukai eval` (a checkpoint on its test set, or on other data) and `fukai info` (what a
//! checkpoint holds).

use fukai::models::ModelConfig;
use fukai::run::{self, Trained};
use fukai::text::TokenWindows;
use fukai::train::{evaluate, Batches, Evaluation, TokenBatches};
use fukai::{Error, Generator, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

/// The confusion matrix as aligned text.
pub fn confusion_table(confusion: &[Vec<usize>], names: &[String]) -> String {
    let short: Vec<String> = (0..confusion.len())
        .map(|i| {
            let n = names.get(i).cloned().unwrap_or_else(|| i.to_string());
            n.chars().take(10).collect()
        })
        .collect();
    let w = short
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(1)
        .max(5);
    let mut out = format!("{:>w$} | predicted\n{:>w$} |", "true", "");
    for s in &short {
        out.push_str(&format!(" {s:>w$}"));
    }
    out.push('\n');
    for (i, row) in confusion.iter().enumerate() {
        out.push_str(&format!("{:>w$} |", short[i]));
        for v in row {
            out.push_str(&format!(" {v:>w$}"));
        }
        out.push('\n');
    }
    out
}

fn needs_run(path: &Path) -> Error {
    Error::Format {
        file: path.display().to_string(),
        msg: "the checkpoint holds no run config, so its data is unknown (a model saved from \
              library code: evaluate it with fukai::train::evaluate)"
            .into(),
    }
}

/// The sets to evaluate: (name, batches).
fn sets(
    t: &Trained,
    ckpt: &Path,
    data: Option<PathBuf>,
) -> Result<Vec<(&'static str, Box<dyn Batches>)>> {
    let cfg = t.run.clone().ok_or_else(|| needs_run(ckpt))?;
    let stored = t.data.clone();
    let path = match (data, stored.clone()) {
        (Some(d), _) => d,
        (None, Some(d)) => d,
        (None, None) => run::resolve(&cfg.data, None, None)?,
    };
    if let (ModelConfig::Gpt(g), Some(tok)) = (&t.config, &t.tokenizer) {
        if Some(&path) != stored.as_ref() {
            // Other text: encode it with the model's own vocabulary and score random windows.
            let text = run::read_text(&path)?;
            let ids = tok.encode(&text).map_err(|e| Error::Format {
                file: path.display().to_string(),
                msg: format!("{e} (the model's vocabulary is fixed at training time)"),
            })?;
            let w = TokenWindows::new(ids, g.context)?;
            let starts = w.sample_starts(cfg.data.eval_windows, &mut Generator::new(0));
            return Ok(vec![("text", Box::new(TokenBatches::fixed(w, starts, 50)))]);
        }
    }
    let prep = run::prepare(&cfg, &path)?;
    let (a, b) = (
        serde_json::to_value(&prep.model).expect("configs serialize"),
        serde_json::to_value(&t.config).expect("configs serialize"),
    );
    // The data may lack some classes; everything else must match the model.
    let strip = |mut v: serde_json::Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("classes");
            o.remove("outputs");
        }
        v
    };
    if strip(a.clone()) != strip(b.clone())
        || prep.class_names.len() > t.classes.len().max(1) && !t.classes.is_empty()
    {
        return Err(Error::Format {
            file: path.display().to_string(),
            msg: format!(
                "this data fits the model {a}, but {} holds {b}",
                ckpt.display()
            ),
        });
    }
    let mut out: Vec<(&str, Box<dyn Batches>)> = Vec::new();
    if let (Some(v), ModelConfig::Gpt(_)) = (prep.val, &t.config) {
        out.push(("validation", v));
    }
    out.push(("test", prep.test));
    Ok(out)
}

/// `fukai eval`.
pub fn eval(ckpt: &Path, data: Option<PathBuf>, as_json: bool) -> Result<()> {
    let mut t = run::load_trained(ckpt)?;
    t.model.to_device(crate::device())?;
    let mut results: Vec<(&str, Evaluation)> = Vec::new();
    for (name, set) in sets(&t, ckpt, data)? {
        results.push((name, evaluate(&mut *t.model, &*set)?));
    }
    if as_json {
        let mut m = serde_json::Map::new();
        m.insert("checkpoint".into(), json!(ckpt.display().to_string()));
        for (name, ev) in &results {
            m.insert(name.to_string(), ev.to_json().into());
        }
        println!("{}", serde_json::to_string_pretty(&m).expect("json"));
        return Ok(());
    }
    for (name, ev) in &results {
        if ev.accuracy().is_some() {
            println!("{}", confusion_table(&ev.confusion, &t.classes));
        }
        println!("{name} {}", ev.describe());
    }
    Ok(())
}

/// `fukai info`.
pub fn info(ckpt: &Path) -> Result<()> {
    let t = run::load_trained(ckpt)?;
    println!("checkpoint: {}", ckpt.display());
    println!("kind:       {}", t.config.kind());
    println!("model:      {}", t.model.describe());
    println!("parameters: {}", t.model.num_parameters());
    if let Some(r) = &t.run {
        println!(
            "run:        {} ({} data from {})",
            r.name,
            r.data.format,
            t.data
                .as_ref()
                .map_or("?".into(), |d| d.display().to_string())
        );
    }
    if let Some(s) = t.step() {
        let epoch = t.metadata.get("epoch").map_or("?", String::as_str);
        println!("progress:   step {s}, {epoch} epochs complete");
    }
    if !t.classes.is_empty() {
        println!("classes:    {}", t.classes.join(", "));
    }
    if let Some(tok) = &t.tokenizer {
        println!("vocabulary: {} characters", tok.vocab_size());
    }
    let state: Option<serde_json::Value> = t
        .metadata
        .get("trainer_state")
        .and_then(|s| serde_json::from_str(s).ok());
    if let Some(last) = state
        .as_ref()
        .and_then(|s| s["history"].as_array()?.last().cloned())
    {
        println!("last epoch: {last}");
    }
    println!(
        "config:     {}",
        serde_json::to_string(&t.config).expect("json")
    );
    Ok(())
}
