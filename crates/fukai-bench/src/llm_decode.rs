//! One decode step of SmolLM2-135M-Instruct (Q4_1 GGUF) after a 256-token context, timed in
//! process: `bench/llm.sh` times whole `fukai generate` runs beside llama.cpp, whose wall time
//! includes loading and a noisy prefill; this isolates the per-token cost that decode speed is
//! made of. The model comes from `--model FILE` or `$FUKAI_GGUF_SMOLLM2`; without either the
//! workload reports itself skipped.

use crate::harness::{fixed, Line};
use fukai::models::{Decoding, Llama};

/// Context before the timed steps, about bench/llm_prompt.txt's length.
const CONTEXT: usize = 256;
/// Steps per sample: the context grows by this much during one sample.
const STEPS: usize = 32;

pub fn run(threads: usize, reps: usize, model: Option<&str>) -> fukai::Result<()> {
    let path = model
        .map(String::from)
        .or_else(|| std::env::var("FUKAI_GGUF_SMOLLM2").ok());
    let Some(path) = path else {
        Line::new("llm_decode", "fukai", threads)
            .str(
                "skipped",
                "no model: pass --model FILE.gguf or set FUKAI_GGUF_SMOLLM2",
            )
            .print();
        return Ok(());
    };
    let llm = Llama::from_gguf(&fukai::io::GgufFile::open(&path)?)?;
    let vocab = llm.config().vocab as u32;
    // Fixed ids spread over the vocabulary: the cost does not depend on which tokens they are.
    let prompt: Vec<u32> = (0..CONTEXT as u32)
        .map(|i| 100 + i * 7919 % (vocab - 200))
        .collect();
    let mut prefilled = llm.new_caches();
    llm.step(&prompt, &mut prefilled)?;
    let greedy = Decoding::greedy(STEPS).sampling;
    let mut err = None;
    let mut sample = || {
        let mut caches = prefilled.clone();
        let mut next = 1000u32;
        for _ in 0..STEPS {
            match llm.step(&[next], &mut caches) {
                Ok(logits) => next = greedy.pick(&logits, 0.0) as u32,
                Err(e) => err = Some(e),
            }
        }
    };
    let st = fixed(&mut sample, 1, reps, 1);
    if let Some(e) = err {
        return Err(e);
    }
    Line::new("llm_decode", "fukai", threads)
        .int("context", CONTEXT)
        .num("ms_per_token", st.median() * 1e3 / STEPS as f64)
        .num("min_ms_per_token", st.min() * 1e3 / STEPS as f64)
        .num("tokens_per_s", STEPS as f64 / st.median())
        .print();
    Ok(())
}
