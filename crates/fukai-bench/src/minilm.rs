//! all-MiniLM-L6-v2 sentence embeddings: a batch of 8 texts × 128 tokens through the 6-layer
//! BERT encoder, mean pooling and L2 normalization (inference, no gradients). The model comes
//! from `--model DIR` or `$FUKAI_ASSETS/models/all-MiniLM-L6-v2`; without either the workload
//! reports itself skipped. Goal: ≤ 1.0× PyTorch (transformers).

use crate::harness::{fixed, Line};
use fukai::models::{mean_pool_normalized, BertModel};
use fukai::Tensor;
use std::path::PathBuf;

pub const BATCH: usize = 8;
pub const TOKENS: usize = 128;

/// Token ids every implementation uses: [CLS], 126 ids spread over the vocabulary, [SEP].
pub fn ids() -> Vec<i64> {
    let mut out = Vec::with_capacity(BATCH * TOKENS);
    for b in 0..BATCH {
        for t in 0..TOKENS {
            out.push(match t {
                0 => 101,
                t if t == TOKENS - 1 => 102,
                t => 1000 + ((b * 7919 + t * 104_729) % 29_000) as i64,
            });
        }
    }
    out
}

fn model_dir(arg: Option<&str>) -> Option<PathBuf> {
    if let Some(d) = arg {
        return Some(PathBuf::from(d));
    }
    let assets = std::env::var_os("FUKAI_ASSETS")?;
    Some(PathBuf::from(assets).join("models/all-MiniLM-L6-v2"))
}

pub fn run(threads: usize, reps: usize, model: Option<&str>) -> fukai::Result<()> {
    let Some(dir) = model_dir(model) else {
        Line::new("minilm", "fukai", threads)
            .str("skipped", "no model: pass --model DIR or set FUKAI_ASSETS")
            .print();
        return Ok(());
    };
    let model = BertModel::from_dir(&dir)?;
    let ids = Tensor::from_vec(ids(), &[BATCH, TOKENS])?;
    let mask = Tensor::ones(&[BATCH, TOKENS], fukai::DType::F32)?;
    let mut err = None;
    let mut step = || {
        let r = model
            .forward(&ids, &mask)
            .and_then(|h| mean_pool_normalized(&h, &mask));
        if let Err(e) = r {
            err = Some(e);
        }
    };
    let st = fixed(&mut step, 2, reps, 1);
    if let Some(e) = err {
        return Err(e);
    }
    Line::new("minilm", "fukai", threads)
        .stats(&st)
        .num("texts_per_s", BATCH as f64 / st.median())
        .print();
    Ok(())
}
