//! Training steps in f32 against `autocast(Precision::Bf16)`, alternating in one process:
//! the fashion-cnn preset's model (batch 64 of 28×28) and the shakespeare-gpt preset's model
//! (batch 12 × 64 tokens), each forward + backward + AdamW on fixed random batches, plus square
//! matmuls. Prints the median ms per step of each round. Used for bench/bf16.md:
//! `cargo run --release -p fukai --no-default-features --features threads --example bf16_steps -- [rounds] [steps]`

use fukai::models::{Cnn, CnnConfig, Gpt, GptConfig};
use fukai::nn::loss::cross_entropy;
use fukai::nn::Module;
use fukai::train::TrainConfig;
use fukai::{autocast, DType, Precision, Result, Tensor};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Milliseconds of each of `steps` calls of `step` under `p`.
fn time(p: Precision, steps: usize, step: &mut dyn FnMut() -> Result<f64>) -> Result<(f64, f64)> {
    let _precision = autocast(p);
    let mut ms = Vec::new();
    let mut loss = 0.0;
    for _ in 0..steps {
        let t = Instant::now();
        loss = step()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(ms), loss))
}

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let (rounds, steps) = (
        args.first().copied().unwrap_or(3),
        args.get(1).copied().unwrap_or(20),
    );
    fukai::manual_seed(0);
    let mut c = CnnConfig::new(&[1, 28, 28], &[32, 64], &[256], 10);
    (c.convs_per_stage, c.batch_norm, c.dropout) = (2, true, 0.3);
    let cnn = Cnn::new(c)?;
    let gpt = Gpt::new(GptConfig {
        vocab: 84,
        layers: 4,
        heads: 4,
        width: 128,
        context: 64,
        tie_weights: false,
    })?;
    let mut cfg = TrainConfig::new(1, 64, 2e-3);
    cfg.optimizer = "adamw".into();
    let mut cnn_opt = cfg.optimizer_for(cnn.parameters())?;
    let mut gpt_opt = cfg.optimizer_for(gpt.parameters())?;
    let images = Tensor::randn(&[64, 1, 28, 28], DType::F32)?;
    let labels = Tensor::from_vec((0..64).map(|i| i % 10).collect::<Vec<i64>>(), &[64])?;
    let tokens: Vec<i64> = (0..12 * 65).map(|i| (i * 7 + i / 5) % 84).collect();
    let x = Tensor::from_vec(
        tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 65 != 64)
            .map(|(_, t)| *t)
            .collect::<Vec<_>>(),
        &[12, 64],
    )?;
    let y = Tensor::from_vec(
        tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 65 != 0)
            .map(|(_, t)| *t)
            .collect::<Vec<_>>(),
        &[768],
    )?;
    let mut cnn_step = || -> Result<f64> {
        let loss = cross_entropy(&cnn.forward(&images)?, &labels)?;
        loss.backward()?;
        cnn_opt.step()?;
        cnn_opt.zero_grad();
        loss.item()
    };
    let mut gpt_step = || -> Result<f64> {
        let loss = cross_entropy(&gpt.logits(&x, None)?.reshape(&[768, 84])?, &y)?;
        loss.backward()?;
        gpt_opt.step()?;
        gpt_opt.zero_grad();
        loss.item()
    };
    let square = |n: usize| -> Result<Box<dyn FnMut() -> Result<f64>>> {
        let (a, b) = (
            Tensor::randn(&[n, n], DType::F32)?,
            Tensor::randn(&[n, n], DType::F32)?,
        );
        Ok(Box::new(move || a.matmul(&b)?.sum_all()?.item()))
    };
    let (mut m512, mut m1024) = (square(512)?, square(1024)?);
    println!(
        "threads {}, load {}",
        fukai::parallel::num_threads(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    for r in 1..=rounds {
        for (name, f) in [
            (
                "fashion-cnn step",
                &mut cnn_step as &mut dyn FnMut() -> Result<f64>,
            ),
            ("shakespeare-gpt step", &mut gpt_step),
            ("matmul 512", &mut *m512),
            ("matmul 1024", &mut *m1024),
        ] {
            let (f32_ms, _) = time(Precision::F32, steps, f)?;
            let (bf16_ms, _) = time(Precision::Bf16, steps, f)?;
            println!(
                "round {r} {name}: f32 {f32_ms:.2} ms, bf16 {bf16_ms:.2} ms, f32/bf16 {:.2}x",
                f32_ms / bf16_ms
            );
        }
    }
    Ok(())
}
