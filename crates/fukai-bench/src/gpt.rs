//! 200 training steps of the char-GPT (the shakespeare-gpt preset's model: 4 pre-norm blocks,
//! width 128, 4 heads, context 64, vocabulary 84, batch 12) with AdamW and gradient clipping, on
//! seeded random token windows of a synthetic stream (no assets needed). The goal is tokens/s
//! ≥ 1.25× PyTorch's (bench/torch_bench.py builds the same model).

use crate::harness::{fixed, Line};
use fukai::nn::loss::cross_entropy;
use fukai::nn::{
    BlockConfig, Embedding, FfnKind, LayerNorm, LearnedPositions, Linear, Mask, Module,
    TransformerEncoderLayer,
};
use fukai::optim::{clip_grad_norm, Adam, Optimizer};
use fukai::{Generator, Result, Tensor};

const VOCAB: usize = 84;
const WIDTH: usize = 128;
const LAYERS: usize = 4;
const HEADS: usize = 4;
const CONTEXT: usize = 64;
const BATCH: usize = 12;
/// Steps per measured sample.
pub const STEPS: usize = 200;

struct Gpt {
    wte: Embedding,
    wpe: LearnedPositions,
    blocks: Vec<TransformerEncoderLayer>,
    ln_f: LayerNorm,
    head: Linear,
}

impl Gpt {
    fn new() -> Result<Gpt> {
        let mut c = BlockConfig::new(WIDTH, HEADS);
        c.ffn = FfnKind::Gelu;
        c.norm_first = true;
        Ok(Gpt {
            wte: Embedding::new(VOCAB, WIDTH)?,
            wpe: LearnedPositions::new(CONTEXT, WIDTH)?,
            blocks: (0..LAYERS)
                .map(|_| TransformerEncoderLayer::new(&c))
                .collect::<Result<_>>()?,
            ln_f: LayerNorm::new(WIDTH)?,
            head: Linear::new(WIDTH, VOCAB, false)?,
        })
    }
    fn params(&self) -> Vec<Tensor> {
        let mut p = self.wte.parameters();
        p.extend(self.wpe.parameters());
        for b in &self.blocks {
            p.extend(b.parameters());
        }
        p.extend(self.ln_f.parameters());
        p.extend(self.head.parameters());
        p
    }
    fn loss(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let mut h = self.wpe.forward(&self.wte.forward(x)?)?;
        for b in &self.blocks {
            h = b.forward_masked(&h, &Mask::causal(), None)?;
        }
        let logits = self.head.forward(&self.ln_f.forward(&h)?)?;
        let n = BATCH * CONTEXT;
        cross_entropy(&logits.reshape(&[n, VOCAB])?, &y.reshape(&[n])?)
    }
}

/// Times `STEPS` steps per sample and prints ms per step and tokens/s.
pub fn run(threads: usize, reps: usize) -> Result<()> {
    fukai::manual_seed(0);
    let model = Gpt::new()?;
    let params = model.params();
    let (decay, no_decay): (Vec<Tensor>, Vec<Tensor>) =
        params.iter().cloned().partition(|p| p.rank() >= 2);
    let mut opts = [
        Adam::adamw(decay, 1e-3).betas(0.9, 0.99).weight_decay(0.1),
        Adam::adamw(no_decay, 1e-3)
            .betas(0.9, 0.99)
            .weight_decay(0.0),
    ];
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
        let loss = model.loss(
            &Tensor::from_vec(x, &[BATCH, CONTEXT])?,
            &Tensor::from_vec(y, &[BATCH, CONTEXT])?,
        )?;
        loss.backward()?;
        clip_grad_norm(&params, 1.0)?;
        for o in opts.iter_mut() {
            o.step()?;
            o.zero_grad();
        }
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
