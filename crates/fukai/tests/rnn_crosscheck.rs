//! Cross-checks the recurrent layers against PyTorch, from `tests/fixtures/rnn.safetensors`
//! (written by `scripts/torch_fixtures.py`, family `rnn`): `nn.RNN` (tanh, relu), `nn.GRU` and
//! `nn.LSTM` over packed variable-length batches, 2 layers bidirectional and 1 layer batch-first
//! with initial states. Outputs, final states and the gradients of the input, the initial states
//! and every parameter agree within 1e-5 relative; in f64 (`tests/fixtures/nn_f64.safetensors`,
//! family `nn_f64`, the same cases kept in float64), within 1e-10, with the parameters loaded
//! as a PyTorch state dict. A finite-difference check covers every cell as a whole layer stack.

mod common;

use common::{Fixtures, TOL_F64};
use fukai::nn::{Module, Rnn, RnnOptions};
use fukai::ops::CellKind;
use fukai::testing::{gradcheck, randn64};
use fukai::{DType, Result, Tensor};

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

const CELLS: [(&str, CellKind); 4] = [
    ("rnn_tanh", CellKind::RnnTanh),
    ("rnn_relu", CellKind::RnnRelu),
    ("gru", CellKind::Gru),
    ("lstm", CellKind::Lstm),
];

#[test]
fn rnn_gru_lstm_match_pytorch() {
    replay(Fixtures::open("rnn.safetensors"));
}

#[test]
fn rnn_gru_lstm_match_pytorch_in_f64() {
    let prefixes = CELLS.map(|(kind, _)| kind);
    replay(Fixtures::open_subset("nn_f64.safetensors", &prefixes).with_tol(TOL_F64));
}

/// Replays every cell and configuration of `fx` in the dtype its tensors are stored in.
fn replay(fx: Fixtures) {
    for (kind, cell) in CELLS {
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
                let mut m = Rnn::new(cell, feat, hidden, opts)?.to_dtype(x.dtype())?;
                // PyTorch's state dict loads into the stack as it is, in either dtype ...
                let sd: Vec<(String, Tensor)> = params
                    .iter()
                    .cloned()
                    .zip(t[1 + nstate..].iter().map(Tensor::detach))
                    .collect();
                m.load_state_dict(&sd)?;
                // ... and the leaves themselves go in so that their gradients can be compared.
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

/// Every cell as a whole stack (2 layers, bidirectional, variable lengths, initial states) in
/// f64 against finite differences: input, states and every parameter.
#[test]
fn recurrent_layers_pass_gradcheck_in_f64() {
    let (steps, batch, feat, hidden, layers) = (4, 3, 3, 2, 2);
    let lengths = [4, 1, 3];
    for (kind, cell) in CELLS {
        fukai::manual_seed(3);
        let opts = RnnOptions {
            num_layers: layers,
            bidirectional: true,
            ..RnnOptions::default()
        };
        let proto = Rnn::new(cell, feat, hidden, opts.clone())
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let params = proto.named_parameters();
        assert!(params.iter().all(|(_, p)| p.dtype() == DType::F64));
        let lstm = cell == CellKind::Lstm;
        let state = [layers * 2, batch, hidden];
        let mut inputs = vec![
            randn64(&[steps, batch, feat], 1).unwrap(),
            randn64(&state, 2).unwrap().mul_scalar(0.5).unwrap(),
            randn64(&state, 3).unwrap().mul_scalar(0.5).unwrap(),
        ];
        inputs.extend(params.iter().map(|(_, p)| p.detach()));
        let run = |t: &[Tensor]| -> Result<Tensor> {
            let mut m = Rnn::new(cell, feat, hidden, opts.clone())?.to_dtype(DType::F64)?;
            for ((name, _), p) in params.iter().zip(&t[3..]) {
                m.replace_parameter(name, p.clone())?;
            }
            let r = m.forward_seq(&t[0], Some((&t[1], lstm.then(|| &t[2]))), Some(&lengths))?;
            let mut outs = vec![r.output, r.h_n];
            outs.extend(r.c_n);
            let flat: Vec<Tensor> = outs
                .iter()
                .map(|o| o.reshape(&[o.numel()]))
                .collect::<Result<_>>()?;
            Tensor::cat(&flat, 0)
        };
        let worst = gradcheck(run, &inputs, 1e-6, 1e-6).unwrap_or_else(|e| panic!("{kind}: {e}"));
        println!("{kind}: worst gradient mismatch {worst:.2e}");
    }
}
