//! Cross-checks the recurrent layers against PyTorch, from `tests/fixtures/rnn.safetensors`
//! (written by `scripts/torch_fixtures.py`, family `rnn`): `nn.RNN` (tanh, relu), `nn.GRU` and
//! `nn.LSTM` over packed variable-length batches, 2 layers bidirectional and 1 layer batch-first
//! with initial states. Outputs, final states and the gradients of the input, the initial states
//! and every parameter agree within 1e-5 relative.

mod common;

use common::Fixtures;
use fukai::nn::{Module, Rnn, RnnOptions};
use fukai::ops::CellKind;
use fukai::Tensor;

/// (case suffix, layers, bidirectional, batch_first, initial state given)
const CONFIGS: &[(&str, usize, bool, bool, bool)] = &[
    ("bidir2", 2, true, false, false),
    ("state_bf", 1, false, true, true),
];

fn param_names(layers: usize, bidir: bool) -> Vec<String> {
    let mut names = Vec::new();
    for l in 0..layers {
        for sfx in if bidir {
            &["", "_reverse"][..]
        } else {
            &[""][..]
        } {
            for w in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
                names.push(format!("{w}_l{l}{sfx}"));
            }
        }
    }
    names
}

#[test]
fn rnn_gru_lstm_match_pytorch() {
    let fx = Fixtures::open("rnn.safetensors");
    for (kind, cell) in [
        ("rnn_tanh", CellKind::RnnTanh),
        ("rnn_relu", CellKind::RnnRelu),
        ("gru", CellKind::Gru),
        ("lstm", CellKind::Lstm),
    ] {
        for &(suffix, layers, bidir, batch_first, with_state) in CONFIGS {
            let lstm = cell == CellKind::Lstm;
            let params = param_names(layers, bidir);
            let mut inputs = vec!["x".to_string()];
            if with_state {
                inputs.push("h0".into());
                if lstm {
                    inputs.push("c0".into());
                }
            }
            let nstate = inputs.len() - 1;
            inputs.extend(params.iter().cloned());
            let refs: Vec<&str> = inputs.iter().map(|s| s.as_str()).collect();
            fx.check(&format!("{kind}_{suffix}"), &refs, |t, case| {
                let x = &t[0];
                let feat = x.shape()[2];
                let hidden = t[1 + nstate + 1].shape()[1];
                let opts = RnnOptions {
                    num_layers: layers,
                    bidirectional: bidir,
                    batch_first,
                    ..RnnOptions::default()
                };
                let mut m = Rnn::new(cell, feat, hidden, opts)?;
                for (name, p) in params.iter().zip(&t[1 + nstate..]) {
                    m.replace_parameter(name, p.clone())?;
                }
                assert_eq!(m.named_parameters().len(), params.len());
                let lengths: Vec<usize> = case
                    .aux("lengths")?
                    .to_vec::<i64>()?
                    .iter()
                    .map(|&v| v as usize)
                    .collect();
                let state = with_state.then(|| (&t[1], lstm.then(|| &t[2])));
                let r = m.forward_seq(x, state, Some(&lengths))?;
                let mut outs = vec![r.output, r.h_n];
                outs.extend(r.c_n);
                Ok(outs)
            });
        }
    }
    fx.finish();
}

#[test]
fn state_dict_names_follow_pytorch() {
    let opts = RnnOptions {
        num_layers: 2,
        bidirectional: true,
        ..RnnOptions::default()
    };
    let m = Rnn::lstm(3, 4, opts).unwrap();
    let names: Vec<String> = m.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, param_names(2, true));
    let sd = m.state_dict();
    let w = &sd
        .iter()
        .find(|(n, _)| n == "weight_ih_l1_reverse")
        .unwrap()
        .1;
    assert_eq!(w.shape(), &[16, 8]);
    // Round trip through safetensors into a fresh stack.
    let dir = std::env::temp_dir().join(format!("fukai_rnn_sd_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lstm.safetensors");
    fukai::io::save_safetensors(&path, &sd, None).unwrap();
    let loaded = fukai::io::load_safetensors(&path).unwrap();
    let m2 = Rnn::lstm(3, 4, m.options().clone()).unwrap();
    let state: Vec<(String, Tensor)> = loaded
        .tensors()
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    m2.load_state_dict(&state).unwrap();
    let x = Tensor::randn(&[5, 2, 3], fukai::DType::F32).unwrap();
    let (a, b) = (m.forward(&x).unwrap(), m2.forward(&x).unwrap());
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    std::fs::remove_dir_all(&dir).ok();
}
