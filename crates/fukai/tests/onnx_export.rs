//! ONNX export round trips: each exportable model kind, exported and run back through
//! `onnx::Model`, gives its native eval-mode forward.

use fukai::models::{
    Cnn, CnnConfig, Gpt, Mlp, MlpConfig, Model, SeqClassifier, SeqConfig, SeqForecaster,
};
use fukai::nn::{Activation, AvgPool2d, BatchNorm, Conv2d, Flatten, Linear, Module, Sequential};
use fukai::onnx::{export, Model as OnnxModel, Summary};
use fukai::{manual_seed, DType, Tensor};

mod onnx_common;
mod rng_lock;
use onnx_common::{max_rel, round_trip, run_onnx, tiny_gpt};
use rng_lock::seeded;

#[test]
fn mlp_round_trips() {
    let _rng = seeded(1);
    let mut cfg = MlpConfig::new(&[2, 3], &[16, 8], 4);
    cfg.batch_norm = true;
    cfg.dropout = 0.2;
    let mut m = Mlp::new(cfg).unwrap();
    m.eval();
    let x = Tensor::randn(&[5, 2, 3], DType::F32).unwrap();
    let err = round_trip(&m, &x);
    eprintln!("mlp max rel error {err:e}");
    assert!(err < 1e-5, "{err}");
}

#[test]
fn cnn_round_trips() {
    let _rng = seeded(2);
    let mut cfg = CnnConfig::new(&[1, 12, 10], &[4, 6], &[16], 3);
    cfg.batch_norm = true;
    cfg.convs_per_stage = 2;
    let mut m = Cnn::new(cfg).unwrap();
    m.eval();
    let x = Tensor::randn(&[3, 1, 12, 10], DType::F32).unwrap();
    let err = round_trip(&m, &x);
    eprintln!("cnn max rel error {err:e}");
    assert!(err < 1e-5, "{err}");
}

#[test]
fn custom_sequential_exports() {
    let _rng = seeded(3);
    let mut net = Sequential::new()
        .add(Conv2d::with_options(2, 4, [3, 3], [2, 2], [1, 1], [1, 1], 1, true).unwrap())
        .add(BatchNorm::new(4).unwrap())
        .add(Activation::Gelu)
        .add(AvgPool2d::new(2))
        .add(Flatten)
        .add(Linear::new(4 * 2 * 2, 5, false).unwrap())
        .add(Activation::Silu)
        .add(Linear::new(5, 3, true).unwrap())
        .add(Activation::GeluTanh);
    net.eval();
    let input = export::Input::f32("x", &[None, Some(2), Some(8), Some(8)]);
    let proto = export::export(&net, &input, &[]).unwrap();
    let s = Summary::of(&proto);
    assert_eq!(s.opsets, vec![(String::new(), 17)]);
    assert_eq!(s.ir_version, 8);
    let names: Vec<String> = proto
        .graph
        .as_ref()
        .unwrap()
        .initializer
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    for (n, _) in net.state_dict() {
        assert!(
            n.ends_with("num_batches_tracked") || names.contains(&n),
            "{n} not among {names:?}"
        );
    }
    // Running statistics (8) and the GELU formulas' scalar constants (7) are initializers too.
    assert_eq!(s.parameters as usize, net.num_parameters() + 8 + 7);
    let back = OnnxModel::from_bytes(&export::to_bytes(&proto)).unwrap();
    let x = Tensor::randn(&[2, 2, 8, 8], DType::F32).unwrap();
    let got = back.run(&[("x", x.clone())]).unwrap().remove(0).1;
    let err = max_rel(&got, &net.forward(&x).unwrap());
    eprintln!("custom sequential max rel error {err:e}");
    assert!(err < 1e-5, "{err}");
}

#[test]
fn unsupported_layer_is_named() {
    let net = Sequential::new().add(fukai::nn::RmsNorm::new(4, 1e-6).unwrap());
    let e = export::export(&net, &export::Input::f32("x", &[None, Some(4)]), &[])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("RmsNorm") && e.contains("no ONNX export"), "{e}");
}

/// Small seeded models whose exports are committed with ONNX Runtime's outputs
/// (`scripts/onnx_fixtures.py`): one of each exportable kind.
fn fixture_models() -> Vec<(&'static str, Box<dyn Model>)> {
    // Every model's weights come from the default generator: no other test may draw between.
    let _rng = seeded(10);
    let mut mlp_cfg = MlpConfig::new(&[4], &[16], 3);
    mlp_cfg.batch_norm = true;
    mlp_cfg.dropout = 0.1;
    let mlp: Box<dyn Model> = Box::new(Mlp::new(mlp_cfg).unwrap());
    manual_seed(11);
    let mut cnn_cfg = CnnConfig::new(&[1, 8, 8], &[4, 8], &[16], 3);
    cnn_cfg.batch_norm = true;
    let cnn: Box<dyn Model> = Box::new(Cnn::new(cnn_cfg).unwrap());
    manual_seed(12);
    let mut lstm_cfg = SeqConfig::new("lstm", 3, 6, 4);
    lstm_cfg.layers = 2;
    lstm_cfg.bidirectional = true;
    let lstm: Box<dyn Model> = Box::new(SeqClassifier::new(lstm_cfg).unwrap());
    manual_seed(13);
    let mut gru_cfg = SeqConfig::new("gru", 2, 5, 3);
    gru_cfg.layers = 2;
    let gru: Box<dyn Model> = Box::new(SeqForecaster::new(gru_cfg).unwrap());
    manual_seed(14);
    let gpt: Box<dyn Model> = Box::new(Gpt::new(tiny_gpt(true)).unwrap());
    let mut models = vec![
        ("mlp", mlp),
        ("cnn", cnn),
        ("lstm", lstm),
        ("gru", gru),
        ("gpt", gpt),
    ];
    for (_, m) in &mut models {
        m.eval();
    }
    models
}

/// The exports are byte-for-byte the committed files, and ONNX Runtime's outputs for them
/// match fukai's native forward and fukai's import. `FUKAI_WRITE_ONNX_FIXTURES=1` rewrites
/// the .onnx files (then rerun the script for the outputs).
#[test]
fn exports_match_onnx_runtime() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx_export");
    let write = std::env::var_os("FUKAI_WRITE_ONNX_FIXTURES").is_some();
    for (name, model) in fixture_models() {
        let bytes = export::to_bytes(&export::export_model(&model, &[]).unwrap());
        let path = dir.join(format!("{name}.onnx"));
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            continue;
        }
        let committed = std::fs::read(&path).unwrap();
        assert!(
            committed == bytes,
            "{name}: the export differs from {}",
            path.display()
        );
        let ort = fukai::io::load_safetensors(path.with_extension("safetensors")).unwrap();
        let x = ort.tensor("input").unwrap().clone();
        let want = ort.tensor("output").unwrap();
        let native = model.forward(&x).unwrap();
        let imported = run_onnx(&bytes, &x);
        let (e_native, e_import) = (max_rel(&native, want), max_rel(&imported, want));
        eprintln!("{name}: vs ONNX Runtime, native {e_native:e}, imported {e_import:e}");
        assert!(
            e_native < 1e-5 && e_import < 1e-5,
            "{name}: {e_native} {e_import}"
        );
    }
}
