//! One training epoch of an LSTM classifier on JapaneseVowels (270 sequences of 7-29 steps,
//! 12 channels, 9 classes): one LSTM layer of 64 read at each sequence's last valid step, a
//! linear head, cross-entropy, Adam 3e-3, batch 32 (9 steps). Data from
//! `$FUKAI_ASSETS/timeseries/uea/JapaneseVowels_TRAIN.ts`, standardized per channel. The goal
//! is ≤ 0.67× PyTorch's epoch (nn.LSTM over packed sequences, bench/twins/vowels_lstm.py).

use crate::harness::{budgeted, Line};
use fukai::data::read_ts;
use fukai::nn::loss::cross_entropy;
use fukai::nn::{Linear, Module, Rnn, RnnOptions};
use fukai::optim::{Adam, Optimizer};
use fukai::Generator;
use std::time::Duration;

const HIDDEN: usize = 64;
const BATCH: usize = 32;
const BUDGET: Duration = Duration::from_secs(10);

/// Times training epochs and prints ms per epoch.
pub fn run(threads: usize, reps: usize) -> fukai::Result<()> {
    let Ok(assets) = std::env::var("FUKAI_ASSETS") else {
        Line::new("lstm_vowels", "fukai", threads)
            .str(
                "skipped",
                "needs FUKAI_ASSETS (the folder with timeseries/uea)",
            )
            .print();
        return Ok(());
    };
    let mut data = read_ts(format!("{assets}/timeseries/uea/JapaneseVowels_TRAIN.ts"))?;
    let (mean, std) = data.channel_stats();
    data.normalize(&mean, &std);
    fukai::manual_seed(0);
    let opts = RnnOptions {
        batch_first: true,
        ..RnnOptions::default()
    };
    let rnn = Rnn::lstm(data.dims, HIDDEN, opts)?;
    let head = Linear::new(HIDDEN, data.class_names.len(), true)?;
    let mut params = rnn.parameters();
    params.extend(head.parameters());
    let mut opt = Adam::new(params, 3e-3);
    let mut epoch = 0u64;
    let (mut first, mut last) = (None, 0.0);
    let mut err = None;
    let mut one_epoch = || -> fukai::Result<()> {
        let mut gen = Generator::new(7).fork(1, epoch);
        let mut order: Vec<usize> = (0..data.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, gen.below(i as u64 + 1) as usize);
        }
        let mut total = 0.0;
        for rows in order.chunks(BATCH) {
            let (x, lengths, y) = data.batch(rows)?;
            let h = rnn.forward_seq(&x, None, Some(&lengths))?.h_n.squeeze(0)?;
            let loss = cross_entropy(&head.forward(&h)?, &y)?;
            loss.backward()?;
            opt.step()?;
            opt.zero_grad();
            total += loss.item()? * rows.len() as f64;
        }
        let l = total / data.len() as f64;
        first.get_or_insert(l);
        last = l;
        epoch += 1;
        Ok(())
    };
    let st = budgeted(
        &mut || {
            if let Err(e) = one_epoch() {
                err = Some(e);
            }
        },
        2,
        reps,
        1,
        BUDGET,
    );
    if let Some(e) = err {
        return Err(e);
    }
    let first = first.unwrap_or(f64::NAN);
    assert!(
        last < first,
        "lstm_vowels: loss did not fall ({first} -> {last})"
    );
    Line::new("lstm_vowels", "fukai", threads)
        .stats(&st)
        .num("ms_per_epoch", st.median() * 1e3)
        .num("first_loss", first)
        .num("last_loss", last)
        .print();
    Ok(())
}
