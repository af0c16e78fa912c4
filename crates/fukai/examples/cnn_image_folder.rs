//! A CNN on a folder of images: `DIR/train/<class>/*.png` and `DIR/test/<class>/*.png`.
//!
//! `cargo run --release -p fukai --example cnn_image_folder -- DIR [EPOCHS]`
//! (`--example make_image_folder` writes such a folder from the MNIST digits the repo ships).

use fukai::data::{read_image_folder, DataLoader, RandomCrop};
use fukai::models::{Cnn, CnnConfig};
use fukai::train::{MetricsJsonl, Progress, TrainConfig, Trainer};
use std::path::PathBuf;
use std::sync::Arc;

fn main() -> fukai::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: cnn_image_folder DIR [EPOCHS]"));
    let epochs = args
        .next()
        .map_or(5, |e| e.parse().expect("EPOCHS is a number"));
    // Grey 28x28 images, pixel values in [0, 1].
    let (train, classes) = read_image_folder(&dir.join("train"), [28, 28], 1)?;
    let (test, _) = read_image_folder(&dir.join("test"), [28, 28], 1)?;
    println!(
        "{} training and {} test images of {classes:?}",
        train.len(),
        test.len()
    );

    fukai::manual_seed(0);
    let mut cfg = CnnConfig::new(&[1, 28, 28], &[16, 32], &[64], classes.len());
    cfg.dropout = 0.2;
    let model = Cnn::new(cfg)?;

    let mut train_cfg = TrainConfig::new(epochs, 32, 2e-3);
    train_cfg.schedule = "cosine".into();
    let loader = DataLoader::new(Arc::new(train), 32)
        .shuffle(0)
        .transforms(vec![Box::new(RandomCrop { padding: 2 })]);
    let test = DataLoader::new(Arc::new(test), 256);
    let out = PathBuf::from("runs/example-cnn");
    let mut trainer = Trainer::new(model, train_cfg)?
        .checkpoint_dir(&out)
        .metadata("classes", serde_json::to_string(&classes).unwrap())
        .hook(Progress::new())
        .hook(MetricsJsonl(out.join("metrics.jsonl")));
    // The test set doubles as validation here only to keep the example short.
    let report = trainer.fit(&loader, Some(&test))?;
    let ev = trainer.test(&test, &report)?;
    println!(
        "test {} | checkpoint {}",
        ev.describe(),
        out.join("checkpoint.safetensors").display()
    );
    Ok(())
}
