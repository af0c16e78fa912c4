//! Text generation with a [`Llama`]: the prompt is prefilled in one pass, then tokens are
//! sampled one at a time through the key/value cache. A [`Session`] keeps the cache between
//! calls, so a chat only feeds what each turn added to the conversation.

use super::generate::{penalize_repeats, Sampling};
use super::llama::Llama;
use crate::bail;
use crate::error::Result;
use crate::nn::KvCache;
use crate::rng::Generator;

/// How tokens are chosen and when generation stops.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoding {
    /// Temperature, top-k and top-p.
    pub sampling: Sampling,
    /// Repetition penalty (1 = none), over the last `repeat_last_n` generated ids. The prompt
    /// is not penalized, as in llama.cpp's samplers: a chat prompt repeats its template's ids,
    /// and penalizing them pushed SmolLM2 off the answer ("What is 2+2?").
    pub repeat_penalty: f32,
    /// Window of the repetition penalty.
    pub repeat_last_n: usize,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Ids that end generation (end of turn, end of text); returned but not fed.
    pub stop: Vec<u32>,
}

impl Decoding {
    /// Greedy decoding of up to `max_tokens`, no penalty, no stop ids.
    pub fn greedy(max_tokens: usize) -> Self {
        Decoding {
            sampling: Sampling {
                temperature: 0.0,
                top_k: None,
                top_p: None,
            },
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            max_tokens,
            stop: Vec::new(),
        }
    }

    /// Checks the sampling settings and the penalty (finite, > 0).
    pub fn validate(&self) -> Result<()> {
        self.sampling.validate()?;
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            bail!(
                "generate",
                "repeat_penalty must be a finite number > 0, found {}",
                self.repeat_penalty
            );
        }
        Ok(())
    }
}

/// The key/value caches of one conversation and the ids they hold.
pub struct Session {
    caches: Vec<KvCache>,
    fed: Vec<u32>,
    rng: Generator,
}

impl Session {
    /// An empty session for `model`, drawing samples from a generator seeded with `seed`.
    pub fn new(model: &Llama, seed: u64) -> Self {
        Session {
            caches: model.new_caches(),
            fed: Vec::new(),
            rng: Generator::new(seed),
        }
    }
    /// Ids the caches hold.
    pub fn fed(&self) -> &[u32] {
        &self.fed
    }
    fn truncate(&mut self, len: usize) -> Result<()> {
        for c in &mut self.caches {
            c.truncate(len)?;
        }
        self.fed.truncate(len);
        Ok(())
    }
}

impl Llama {
    /// Generates a continuation of `prompt` (the whole sequence so far, e.g. a rendered chat),
    /// calling `on_token` with each id as it is drawn; returns the ids, a stop id included.
    ///
    /// Only the part of `prompt` after the longest prefix the session already holds is
    /// prefilled (in one pass); the session's later ids are dropped.
    /// Generation also ends when the context is full. Same seed, same ids.
    pub fn generate(
        &self,
        session: &mut Session,
        prompt: &[u32],
        opts: &Decoding,
        mut on_token: impl FnMut(u32),
    ) -> Result<Vec<u32>> {
        opts.validate()?;
        if prompt.is_empty() {
            bail!("generate", "the prompt must hold at least one token");
        }
        let ctx = self.config().max_context;
        if prompt.len() > ctx {
            bail!(
                "generate",
                "the prompt of {} tokens exceeds the context of {ctx}",
                prompt.len()
            );
        }
        let _g = crate::no_grad();
        let common = session
            .fed
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count();
        // The caches keep the common prefix; at least the last prompt id is fed again, for
        // its logits.
        session.truncate(common.min(prompt.len() - 1))?;
        let start = session.fed.len();
        let mut logits = self.step(&prompt[start..], &mut session.caches)?;
        session.fed.extend_from_slice(&prompt[start..]);
        let mut out = Vec::new();
        while out.len() < opts.max_tokens {
            let recent = &out[out.len().saturating_sub(opts.repeat_last_n)..];
            penalize_repeats(&mut logits, recent, opts.repeat_penalty);
            let u = session.rng.uniform_f64(1)[0];
            let id = opts.sampling.pick(&logits, u) as u32;
            out.push(id);
            on_token(id);
            if opts.stop.contains(&id) || out.len() == opts.max_tokens || session.fed.len() >= ctx {
                break;
            }
            logits = self.step(&[id], &mut session.caches)?;
            session.fed.push(id);
        }
        Ok(out)
    }
}
