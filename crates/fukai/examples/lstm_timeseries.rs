//! A bidirectional LSTM classifying variable-length multivariate sequences from a UEA `.ts` set.
//!
//! `cargo run --release -p fukai --example lstm_timeseries -- PATH/JapaneseVowels`
//! (the stem of `_TRAIN.ts` / `_TEST.ts`; default `$FUKAI_ASSETS/timeseries/uea/JapaneseVowels`)

use fukai::data::read_ts;
use fukai::models::{SeqClassifier, SeqConfig};
use fukai::train::{Progress, SequenceBatches, TrainConfig, Trainer};
use std::sync::Arc;

fn main() -> fukai::Result<()> {
    let stem = std::env::args().nth(1).unwrap_or_else(|| {
        let assets = std::env::var("FUKAI_ASSETS").expect("pass a .ts stem or set FUKAI_ASSETS");
        format!("{assets}/timeseries/uea/JapaneseVowels")
    });
    let mut train = read_ts(format!("{stem}_TRAIN.ts"))?;
    let mut test = read_ts(format!("{stem}_TEST.ts"))?;
    // Standardize every channel with the training set's statistics.
    let (mean, std) = train.channel_stats();
    train.normalize(&mean, &std);
    test.normalize(&mean, &std);
    let classes = train.class_names.len();

    // A seeded validation split carved from the training sequences.
    let (rows, val_rows) = fukai::data::stratified_split(&train.labels, 0.1, 7)?;
    let train = Arc::new(train);
    let batches = SequenceBatches::new(train.clone(), rows, 32).shuffle(0);
    let val = SequenceBatches::new(train.clone(), val_rows, 256);
    let test = SequenceBatches::new(Arc::new(test.clone()), (0..test.len()).collect(), 256);

    fukai::manual_seed(0);
    let mut cfg = SeqConfig::new("lstm", train.dims, 64, classes);
    cfg.bidirectional = true;
    let mut train_cfg = TrainConfig::new(60, 32, 3e-3);
    train_cfg.schedule = "cosine".into();
    let mut trainer = Trainer::new(SeqClassifier::new(cfg)?, train_cfg)?.hook(Progress::new());
    let report = trainer.fit(&batches, Some(&val))?;
    let ev = trainer.test(&test, &report)?;
    println!(
        "test {} (best validation epoch {:?})",
        ev.describe(),
        report.best_epoch
    );
    Ok(())
}
