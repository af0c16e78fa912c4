//! ONNX export round trips of the sequence models: recurrent stacks (LSTM, GRU, RNN; stacked,
//! bidirectional, batch- or time-major) and the GPT (tied and untied head, any batch and
//! sequence length up to its context), exported, imported back through `onnx::Model` and
//! compared with their eval-mode forward.

use fukai::models::{Gpt, Model, SeqClassifier, SeqConfig, SeqForecaster};
use fukai::nn::{BlockConfig, Module, Rnn, RnnOptions, TransformerEncoderLayer};
use fukai::onnx::{export, Summary};
use fukai::ops::CellKind;
use fukai::{DType, Tensor};

mod onnx_common;
mod rng_lock;
use onnx_common::{max_rel, round_trip, run_onnx, tiny_gpt};
use rng_lock::seeded;

/// Errors stay near f32 rounding: the importer runs the same math in another order.
const TOL: f32 = 1e-5;

fn seq_model(cell: &str, layers: usize, bidirectional: bool, classify: bool) -> Box<dyn Model> {
    let mut cfg = SeqConfig::new(cell, 3, 5, 4);
    cfg.layers = layers;
    cfg.bidirectional = bidirectional;
    cfg.dropout = if layers > 1 { 0.3 } else { 0.0 };
    let mut m: Box<dyn Model> = if classify {
        Box::new(SeqClassifier::new(cfg).unwrap())
    } else {
        Box::new(SeqForecaster::new(cfg).unwrap())
    };
    m.eval();
    m
}

#[test]
fn recurrent_models_round_trip() {
    for (i, (cell, layers, bidi, classify)) in [
        ("lstm", 1, false, false),
        ("lstm", 2, true, true),
        ("gru", 1, true, true),
        ("gru", 3, false, false),
        ("rnn", 2, true, false),
    ]
    .into_iter()
    .enumerate()
    {
        let _rng = seeded(20 + i as u64);
        let m = seq_model(cell, layers, bidi, classify);
        // Two batch sizes and lengths through the same file: both dims are free.
        for shape in [[2, 7, 3], [1, 3, 3]] {
            let x = Tensor::randn(&shape, DType::F32).unwrap();
            let err = round_trip(m.as_ref(), &x);
            eprintln!(
                "{cell} layers {layers} bidirectional {bidi} {shape:?}: max rel error {err:e}"
            );
            assert!(err < TOL, "{cell}: {err}");
        }
    }
}

#[test]
fn recurrent_export_uses_fused_nodes() {
    let _rng = seeded(30);
    let m = seq_model("gru", 2, true, true);
    let s = Summary::of(&export::export_model(m.as_ref(), &[]).unwrap());
    assert_eq!(s.ops.get("GRU"), Some(&2), "{:?}", s.ops);
    // Repacked W, R and B per layer and the head, plus a few int64 shapes and axes.
    let extra = s.parameters as usize - m.num_parameters();
    assert!(extra < 16, "{extra} numbers beside the parameters");
}

/// The layer itself (not a model): every output step, time-major or batch-first.
#[test]
fn rnn_layer_exports_all_steps() {
    for (i, (cell, batch_first)) in [(CellKind::RnnRelu, false), (CellKind::Lstm, true)]
        .into_iter()
        .enumerate()
    {
        let _rng = seeded(40 + i as u64);
        let opts = RnnOptions {
            num_layers: 2,
            bidirectional: true,
            batch_first,
            ..RnnOptions::default()
        };
        let rnn = Rnn::new(cell, 3, 4, opts).unwrap();
        let input = export::Input::f32("x", &[None, None, Some(3)]);
        let bytes = export::to_bytes(&export::export(&rnn, &input, &[]).unwrap());
        let x = Tensor::randn(&[5, 2, 3], DType::F32).unwrap();
        let got = run_onnx(&bytes, &x);
        let err = max_rel(&got, &rnn.forward(&x).unwrap());
        eprintln!("{cell:?} layer, batch first {batch_first}: max rel error {err:e}");
        assert!(err < TOL, "{err}");
    }
}

/// Token ids `[b, t]` below `vocab`, from a fixed sequence.
fn ids(b: usize, t: usize, vocab: usize) -> Tensor {
    let v: Vec<i64> = (0..b * t).map(|i| ((i * 7 + 3) % vocab) as i64).collect();
    Tensor::from_vec(v, &[b, t]).unwrap()
}

#[test]
fn gpt_round_trips() {
    for (seed, tied) in [(50, true), (51, false)] {
        let _rng = seeded(seed);
        let cfg = tiny_gpt(tied);
        let mut m = Gpt::new(cfg.clone()).unwrap();
        m.eval();
        let proto = export::export_model(&m, &[]).unwrap();
        let names: Vec<&str> = proto
            .graph
            .as_ref()
            .unwrap()
            .initializer
            .iter()
            .map(|t| t.name())
            .collect();
        // Tied: the head reads the embedding's initializer, stored once.
        assert!(names.contains(&"wte.weight"));
        assert_eq!(names.contains(&"lm_head.weight"), !tied, "{names:?}");
        let extra = Summary::of(&proto).parameters as usize - m.num_parameters();
        assert!(extra < 64, "{extra} numbers beside the parameters");
        let bytes = export::to_bytes(&proto);
        // Any batch and any length up to the context, through the same file.
        for (b, t) in [(2, 5), (1, cfg.context), (3, 1)] {
            let x = ids(b, t, cfg.vocab);
            let err = max_rel(&run_onnx(&bytes, &x), &m.forward(&x).unwrap());
            eprintln!("gpt tied {tied} [{b}, {t}]: max rel error {err:e}");
            assert!(err < TOL, "{err}");
        }
    }
}

/// A post-norm ReLU block (PyTorch's default layer) exports unmasked.
#[test]
fn post_norm_block_round_trips() {
    let _rng = seeded(60);
    let mut blk = TransformerEncoderLayer::new(&BlockConfig::new(8, 2)).unwrap();
    blk.eval();
    let input = export::Input::f32("x", &[None, None, Some(8)]);
    let bytes = export::to_bytes(&export::export(&blk, &input, &[]).unwrap());
    let x = Tensor::randn(&[2, 4, 8], DType::F32).unwrap();
    let err = max_rel(&run_onnx(&bytes, &x), &blk.forward(&x).unwrap());
    eprintln!("post-norm block: max rel error {err:e}");
    assert!(err < TOL, "{err}");
}
