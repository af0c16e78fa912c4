//! The README's Trainer example: an MLP trained with validation, checkpoints and a metrics file.
//!
//! `cargo run --release -p fukai --example trainer`

use fukai::data::{DataLoader, InMemory};
use fukai::models::{Mlp, MlpConfig};
use fukai::train::{MetricsJsonl, Progress, TrainConfig, Trainer};
use std::sync::Arc;

fn main() -> fukai::Result<()> {
    // 600 samples of 4 features in 3 classes; from_tensors takes [N, ...] and [N] tensors too.
    let x: Vec<f32> = (0..2400)
        .map(|i| ((i * 7919) % 100) as f32 / 100.0 + (i / 4 % 3) as f32)
        .collect();
    let y: Vec<i64> = (0..600).map(|i| (i % 3) as i64).collect();
    let data = InMemory::new(x, y, &[4], 3)?;
    let (train_rows, val_rows) = fukai::data::stratified_split(
        &(0..600).map(|i| (i % 3) as i64).collect::<Vec<_>>(),
        0.2,
        0,
    )?;
    let train = DataLoader::new(Arc::new(data.subset(train_rows)?), 32).shuffle(0);
    let val = DataLoader::new(Arc::new(data.subset(val_rows)?), 256);

    fukai::manual_seed(0);
    let model = Mlp::new(MlpConfig::new(&[4], &[64, 64], 3))?;
    let mut cfg = TrainConfig::new(20, 32, 1e-2);
    cfg.schedule = "cosine".into();
    let mut trainer = Trainer::new(model, cfg)?
        .checkpoint_dir("runs/my-mlp") // checkpoint.safetensors, best.safetensors
        .hook(Progress::new())
        .hook(MetricsJsonl("runs/my-mlp/metrics.jsonl".into()));
    let report = trainer.fit(&train, Some(&val))?;
    println!(
        "validation accuracy {:?}",
        report.val.and_then(|v| v.accuracy())
    );
    let model = fukai::models::load("runs/my-mlp/checkpoint.safetensors")?; // config + weights
    println!("{} parameters", model.num_parameters());
    Ok(())
}
