//! Sampling text from a [`Gpt`]: one token at a time through the key/value cache, with
//! temperature, top-k and nucleus (top-p) filtering, reproducible from a seed.

use super::gpt::Gpt;
use crate::bail;
use crate::error::Result;
use crate::nn::KvCache;
use crate::rng::Generator;
use crate::tensor::Tensor;

/// How the next token is drawn from the logits.
///
/// ```
/// use fukai::models::Sampling;
/// let greedy = Sampling { temperature: 0.0, top_k: None, top_p: None };
/// assert_eq!(greedy.pick(&[0.1, 2.0, 1.0], 0.5), 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    /// Divides the logits; 0 picks the most likely token.
    pub temperature: f64,
    /// Keep only the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches `p` (nucleus sampling).
    pub top_p: Option<f64>,
}

impl Sampling {
    /// Checks the settings: temperature ≥ 0 and finite, top-k ≥ 1, top-p in (0, 1].
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            bail!(
                "generate",
                "temperature must be >= 0, found {}",
                self.temperature
            );
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                bail!("generate", "top_p must be in (0, 1], found {p}");
            }
        }
        if self.top_k == Some(0) {
            bail!("generate", "top_k must be at least 1");
        }
        Ok(())
    }

    /// Draws one id from `logits` with `u` uniform in [0, 1).
    pub fn pick(&self, logits: &[f32], u: f64) -> usize {
        // Most likely first; ties by id so the draw is reproducible.
        let first = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
        if self.temperature <= 0.0 {
            return (0..logits.len()).min_by(first).unwrap_or(0);
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        let keep = self
            .top_k
            .unwrap_or(order.len())
            .clamp(1, order.len().max(1));
        if keep < order.len() {
            // Only the kept ids need sorting: a 50k vocabulary per token otherwise.
            order.select_nth_unstable_by(keep - 1, first);
            order.truncate(keep);
        }
        order.sort_by(first);
        let top = logits[order[0]] as f64;
        let mut probs: Vec<f64> = order
            .iter()
            .map(|&i| ((logits[i] as f64 - top) / self.temperature).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if let Some(p) = self.top_p {
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
}

/// The repetition penalty of llama.cpp and `transformers`: each distinct id among `recent`
/// has its logit divided by `penalty` when positive and multiplied by it otherwise, so with
/// `penalty > 1` repeats become less likely either way. `penalty` must be positive and finite
/// (checked by the callers' options); 1 changes nothing.
///
/// ```
/// let mut logits = [2.0f32, -1.0, 0.5];
/// fukai::models::penalize_repeats(&mut logits, &[0, 1, 0], 2.0);
/// assert_eq!(logits, [1.0, -2.0, 0.5]);
/// ```
pub fn penalize_repeats(logits: &mut [f32], recent: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(recent.len());
    for &id in recent {
        let Some(l) = logits.get_mut(id as usize) else {
            continue;
        };
        if seen.insert(id) {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

/// Feeds `ids` after the cached prefix and returns the logits of the last position.
fn step(model: &Gpt, ids: &[u32], caches: &mut [KvCache]) -> Result<Vec<f32>> {
    let x = Tensor::from_vec(ids.iter().map(|&i| i as i64).collect(), &[1, ids.len()])?;
    let x = x.to(crate::nn::Module::device(model))?;
    let logits = model.logits(&x, Some(caches))?;
    let v = logits.shape()[2];
    logits
        .narrow(1, ids.len() - 1, 1)?
        .reshape(&[v])?
        .to_vec::<f32>()
}

impl Gpt {
    /// Continues `prompt` by `max_tokens` sampled tokens, calling `on_token` with each as it is
    /// drawn, and returns them. Past the context, the cache restarts from the last half of it,
    /// so positions stay within the learned table.
    ///
    /// ```
    /// use fukai::models::{Gpt, GptConfig, Sampling};
    /// let gpt = Gpt::new(GptConfig { vocab: 10, layers: 1, heads: 1, width: 8, context: 4, tie_weights: false })?;
    /// let s = Sampling { temperature: 1.0, top_k: Some(3), top_p: None };
    /// let a = gpt.generate(&[1, 2], 6, &s, 7, |_| {})?;
    /// assert_eq!(a.len(), 6);
    /// assert_eq!(a, gpt.generate(&[1, 2], 6, &s, 7, |_| {})?); // same seed, same text
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn generate(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        sampling: &Sampling,
        seed: u64,
        mut on_token: impl FnMut(u32),
    ) -> Result<Vec<u32>> {
        sampling.validate()?;
        if prompt.is_empty() {
            bail!("generate", "the prompt must hold at least one token");
        }
        let ctx = self.context();
        let _g = crate::no_grad();
        let mut gen = Generator::new(seed);
        let mut caches = self.new_caches();
        let mut ids = prompt.to_vec();
        let start = ids.len().saturating_sub(ctx);
        let mut logits = step(self, &ids[start..], &mut caches)?;
        for _ in 0..max_tokens {
            let u = gen.uniform_f64(1)[0];
            let id = sampling.pick(&logits, u) as u32;
            ids.push(id);
            on_token(id);
            if caches[0].len() >= ctx {
                caches.iter_mut().for_each(KvCache::clear);
                let keep = (ctx / 2).max(1);
                logits = step(self, &ids[ids.len() - keep..], &mut caches)?;
            } else {
                logits = step(self, &ids[ids.len() - 1..], &mut caches)?;
            }
        }
        Ok(ids.split_off(prompt.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(temperature: f64, top_k: Option<usize>, top_p: Option<f64>) -> Sampling {
        Sampling {
            temperature,
            top_k,
            top_p,
        }
    }

    #[test]
    fn sampling_rules() {
        let logits = [0.0f32, 3.0, 1.0, 2.9];
        assert_eq!(s(0.0, None, None).pick(&logits, 0.7), 1);
        assert_eq!(s(1.0, Some(1), None).pick(&logits, 0.99), 1);
        assert!([1, 3].contains(&s(1.0, Some(2), None).pick(&logits, 0.99)));
        // Nucleus of 0.5: only the top token (p ≈ 0.47 + ...) and the next survive.
        for u in [0.0, 0.5, 0.999] {
            assert!([1, 3].contains(&s(1.0, None, Some(0.5)).pick(&logits, u)));
        }
        assert_eq!(s(1.0, None, None).pick(&logits, 0.999), 0);
        assert!(s(-1.0, None, None).validate().is_err());
        assert!(s(1.0, Some(0), None).validate().is_err());
        assert!(s(1.0, None, Some(1.5)).validate().is_err());
    }
}
