//! 200 training steps of the char-GPT (the shakespeare-gpt preset's model: 4 pre-norm blocks,
//! width 128, 4 heads, context 64, vocabulary 84, batch 12) with AdamW and gradient clipping, on
//! seeded random token windows of a synthetic stream (no assets needed). The goal is tokens/s
//! ≥ 1.25× PyTorch's (bench/torch_bench.py builds the same model).

use crate::harness::{fixed, Line};
use fukai::models::{Gpt, GptConfig};
use fukai::nn::loss::cross_entropy;
use fukai::nn::Module;
use fukai::optim::clip_grad_norm;
use fukai::train::TrainConfig;
use fukai::{Generator, Result, Tensor};

const VOCAB: usize = 84;
const CONTEXT: usize = 64;
const BATCH: usize = 12;
/// Steps per measured sample.
pub const STEPS: usize = 200;

/// Times `STEPS` steps per sample and prints ms per step and tokens/s.
pub fn run(threads: usize, reps: usize) -> Result<()> {
    fukai::manual_seed(0);
    // The library's model and the preset's optimizer (AdamW, decay on matrices only).
    let model = Gpt::new(GptConfig {
        vocab: VOCAB,
        layers: 4,
        heads: 4,
        width: 128,
        context: CONTEXT,
        tie_weights: false,
    })?;
    let params = model.parameters();
    let mut cfg = TrainConfig::new(1, BATCH, 1e-3);
    cfg.optimizer = "adamw".into();
    cfg.beta2 = 0.99;
    cfg.weight_decay = 0.1;
    cfg.decay_matrices_only = true;
    let mut opt = cfg.optimizer_for(params.clone())?;
    // A stream with structure to learn: each token mostly follows from the previous one.
    let mut g = Generator::new(7);
    let noise = g.uniform_f64(100_000);
    let mut stream = vec![0i64; noise.len()];
    for i in 1..stream.len() {
        stream[i] = if noise[i] < 0.8 {
            (stream[i - 1] * 5 + 3) % VOCAB as i64
        } else {
            (noise[i] * 1e6) as i64 % VOCAB as i64
        };
    }
    let mut losses = Vec::new();
    let mut err = None;
    let mut step = || -> Result<()> {
        let mut x = Vec::with_capacity(BATCH * CONTEXT);
        let mut y = Vec::with_capacity(BATCH * CONTEXT);
        for _ in 0..BATCH {
            let s = g.below((stream.len() - CONTEXT - 1) as u64) as usize;
            x.extend_from_slice(&stream[s..s + CONTEXT]);
            y.extend_from_slice(&stream[s + 1..s + CONTEXT + 1]);
        }
        let logits = model.logits(&Tensor::from_vec(x, &[BATCH, CONTEXT])?, None)?;
        let n = BATCH * CONTEXT;
        let loss = cross_entropy(&logits.reshape(&[n, VOCAB])?, &Tensor::from_vec(y, &[n])?)?;
        loss.backward()?;
        clip_grad_norm(&params, 1.0)?;
        opt.step()?;
        opt.zero_grad();
        losses.push(loss.item()?);
        Ok(())
    };
    let st = fixed(
        &mut || {
            if let Err(e) = step() {
                err = Some(e);
            }
        },
        10,
        reps,
        STEPS,
    );
    if let Some(e) = err {
        return Err(e);
    }
    let (first, last) = (losses[0], *losses.last().expect("steps ran"));
    assert!(
        last < first,
        "gpt_step: loss did not fall ({first} -> {last})"
    );
    Line::new("gpt_step", "fukai", threads)
        .stats(&st)
        .num("ms_per_step", st.median() * 1e3)
        .num("tokens_per_second", (BATCH * CONTEXT) as f64 / st.median())
        .num("first_loss", first)
        .num("last_loss", last)
        .print();
    Ok(())
}
