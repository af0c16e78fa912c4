//! Optimizer state (moments, momentum buffers) in the parameters' dtype: saved as f32 or f64
//! tensors, and a run resumed from saved state continues with the same bits as one never
//! interrupted.

use fukai::optim::{Adam, Optimizer, RmsProp, Sgd};
use fukai::testing::randn64;
use fukai::{DType, Result, Tensor};

type Make = fn(Vec<Tensor>) -> Box<dyn Optimizer>;

const OPTIMIZERS: [(&str, Make); 4] = [
    ("sgd_nesterov", |p| {
        Box::new(Sgd::new(p, 0.05).momentum(0.9).nesterov(true))
    }),
    ("adam", |p| Box::new(Adam::new(p, 0.01).weight_decay(0.1))),
    ("adamw", |p| Box::new(Adam::adamw(p, 0.01))),
    ("rmsprop", |p| Box::new(RmsProp::new(p, 0.01).momentum(0.9))),
];

fn params(dtype: DType) -> Vec<Tensor> {
    [(&[3, 4][..], 1), (&[4][..], 2)]
        .iter()
        .map(|&(shape, seed)| {
            let t = randn64(shape, seed).unwrap().to_dtype(dtype).unwrap();
            t.detach().with_grad().unwrap()
        })
        .collect()
}

/// One step on `loss = sum(p^3)` for every parameter.
fn step(opt: &mut dyn Optimizer) -> Result<()> {
    opt.zero_grad();
    let mut loss: Option<Tensor> = None;
    for p in opt.params() {
        let l = p.mul(p)?.mul(p)?.sum_all()?;
        loss = Some(match loss {
            None => l,
            Some(s) => s.add(&l)?,
        });
    }
    loss.expect("parameters").backward()?;
    opt.step()
}

fn values(ps: &[Tensor]) -> Vec<Vec<f64>> {
    ps.iter().map(|p| p.to_vec_f64().unwrap()).collect()
}

#[test]
fn resumed_runs_match_uninterrupted_ones_in_each_dtype() {
    for dtype in [DType::F32, DType::F64] {
        for (name, make) in OPTIMIZERS {
            let ps = params(dtype);
            let mut opt = make(ps.clone());
            for _ in 0..2 {
                step(opt.as_mut()).unwrap();
            }
            let state = opt.state().unwrap();
            assert!(
                state
                    .iter()
                    .filter(|(_, t)| t.rank() > 0)
                    .all(|(_, t)| t.dtype() == dtype),
                "{name} {dtype}: state not kept in the parameters' dtype"
            );
            // Same values in fresh memory (× 1 is exact).
            let copies: Vec<Tensor> = ps
                .iter()
                .map(|p| p.detach().mul_scalar(1.0)?.detach().with_grad())
                .collect::<Result<_>>()
                .unwrap();
            let mut resumed = make(copies.clone());
            resumed.load_state(&state).unwrap();
            for _ in 0..2 {
                step(opt.as_mut()).unwrap();
                step(resumed.as_mut()).unwrap();
            }
            assert_eq!(values(&ps), values(&copies), "{name} {dtype}");
        }
    }
}
