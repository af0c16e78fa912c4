//! `fukai generate`: samples text from a language-model checkpoint, one token at a time through
//! the key/value cache, printing each character as it is drawn.

use crate::lm;
use fukai::nn::KvCache;
use fukai::{bail, Generator, Result, Tensor};
use std::io::Write;
use std::path::Path;

/// How the next token is drawn from the logits.
#[derive(Clone, Debug)]
pub struct Sampling {
    /// Divides the logits; 0 picks the most likely token.
    pub temperature: f64,
    /// Keep only the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches `p` (nucleus sampling).
    pub top_p: Option<f64>,
}

/// Draws one id from `logits` with `u` uniform in [0, 1).
pub fn sample(logits: &[f32], s: &Sampling, u: f64) -> usize {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Most likely first; ties by id so the draw is reproducible.
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if s.temperature <= 0.0 {
        return order[0];
    }
    let keep = s.top_k.unwrap_or(order.len()).clamp(1, order.len());
    order.truncate(keep);
    let top = logits[order[0]] as f64;
    let mut probs: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - top) / s.temperature).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(p) = s.top_p {
        let mut acc = 0.0;
        let cut = probs
            .iter()
            .position(|&q| {
                acc += q;
                acc >= p
            })
            .map_or(probs.len(), |i| i + 1);
        probs.truncate(cut);
        order.truncate(cut);
    }
    let total: f64 = probs.iter().sum();
    let mut target = u * total;
    for (&id, &p) in order.iter().zip(&probs) {
        if target < p {
            return id;
        }
        target -= p;
    }
    *order.last().expect("at least one token kept")
}

/// Feeds `ids` after the cached prefix and returns the logits of the last position.
fn step(model: &crate::gpt::Gpt, ids: &[u32], caches: &mut [KvCache]) -> Result<Vec<f32>> {
    let x = Tensor::from_vec(ids.iter().map(|&i| i as i64).collect(), &[1, ids.len()])?;
    let logits = model.logits(&x, Some(caches))?;
    let v = logits.shape()[2];
    logits
        .narrow(1, ids.len() - 1, 1)?
        .reshape(&[v])?
        .to_vec::<f32>()
}

/// Prints the prompt, then `max_tokens` sampled characters as they are drawn.
pub fn run(
    checkpoint: &Path,
    prompt: &str,
    max_tokens: usize,
    s: &Sampling,
    seed: u64,
) -> Result<()> {
    if !(s.temperature >= 0.0 && s.temperature.is_finite()) {
        bail!(
            "generate",
            "--temperature must be >= 0, found {}",
            s.temperature
        );
    }
    if let Some(p) = s.top_p {
        if !(p > 0.0 && p <= 1.0) {
            bail!("generate", "--top-p must be in (0, 1], found {p}");
        }
    }
    if s.top_k == Some(0) {
        bail!("generate", "--top-k must be at least 1");
    }
    let lm::Loaded { model, tokenizer } = lm::load(checkpoint)?;
    if prompt.is_empty() {
        bail!("generate", "--prompt must not be empty");
    }
    let mut ids = tokenizer
        .encode(prompt)
        .map_err(|e| fukai::error::op_err("generate", format!("--prompt: {e}")))?;
    let ctx = model.context();
    let _g = fukai::no_grad();
    let mut gen = Generator::new(seed);
    let mut caches = model.new_caches();
    let start = ids.len().saturating_sub(ctx);
    let mut logits = step(&model, &ids[start..], &mut caches)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{prompt}").ok();
    for _ in 0..max_tokens {
        let u = gen.uniform_f64(1)[0];
        let id = sample(&logits, s, u) as u32;
        ids.push(id);
        write!(out, "{}", tokenizer.decode(&[id])?).ok();
        out.flush().ok();
        if caches[0].len() >= ctx {
            // The context is full: restart the cache from the last half of it, so positions
            // stay within the learned table and each restart is amortized over ctx/2 tokens.
            caches.iter_mut().for_each(KvCache::clear);
            let keep = (ctx / 2).max(1);
            logits = step(&model, &ids[ids.len() - keep..], &mut caches)?;
        } else {
            logits = step(&model, &ids[ids.len() - 1..], &mut caches)?;
        }
    }
    writeln!(out).ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_rules() {
        let logits = [0.0f32, 3.0, 1.0, 2.9];
        let greedy = Sampling {
            temperature: 0.0,
            top_k: None,
            top_p: None,
        };
        assert_eq!(sample(&logits, &greedy, 0.7), 1);
        let k1 = Sampling {
            temperature: 1.0,
            top_k: Some(1),
            top_p: None,
        };
        assert_eq!(sample(&logits, &k1, 0.99), 1);
        let k2 = Sampling {
            temperature: 1.0,
            top_k: Some(2),
            top_p: None,
        };
        assert!([1, 3].contains(&sample(&logits, &k2, 0.99)));
        // Nucleus of 0.5: only the top token (p ≈ 0.47 + ...) and the next survive.
        let p = Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.5),
        };
        for u in [0.0, 0.5, 0.999] {
            assert!([1, 3].contains(&sample(&logits, &p, u)));
        }
        let all = Sampling {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        };
        assert_eq!(sample(&logits, &all, 0.999), 0);
    }
}
