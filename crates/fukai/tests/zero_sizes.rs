//! Layers and losses on random sizes, zero included: every call returns a result or an error,
//! and backward through whatever succeeded never panics (zero-sized dims are valid all the way
//! through, as in PyTorch: `Linear(4, 0)` then `Linear(0, 3)` is a constant-plus-bias network).

use fukai::nn::loss::{
    binary_cross_entropy_with_logits, cross_entropy, cross_entropy_composite, l1_loss, mse_loss,
    nll_loss,
};
use fukai::nn::{BatchNorm, Conv2d, Embedding, LayerNorm, Linear, Module, RmsNorm};
use fukai::{DType, Result, Tensor};
use proptest::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn input(shape: &[usize], dtype: DType) -> Tensor {
    Tensor::randn(shape, dtype).unwrap().with_grad().unwrap()
}

fn labels(n: usize, classes: usize) -> Tensor {
    let v: Vec<i64> = (0..n as i64).map(|i| i % classes.max(1) as i64).collect();
    Tensor::from_vec(v, &[n]).unwrap()
}

/// A layer, then a loss, then backward.
fn run(layer: u8, loss: u8, n: usize, a: usize, b: usize, c: usize) -> Result<()> {
    let x = input(&[n, a], DType::F32);
    let h = match layer {
        0 => Linear::new(a, b, true)?.forward(&x)?,
        1 => {
            let l1 = Linear::new(a, b, true)?;
            let l2 = Linear::new(b, c, true)?;
            l2.forward(&l1.forward(&x)?.relu()?)?
        }
        2 => LayerNorm::new(a)?.forward(&x)?,
        3 => RmsNorm::new(a, 1e-6)?.forward(&x)?,
        4 => BatchNorm::new(a)?.forward(&x)?,
        5 => {
            let img = input(&[n, a, b, c], DType::F32);
            Conv2d::new(a, b, 3, 1)?.forward(&img)?.flatten(1, -1)?
        }
        _ => Embedding::new(a, b)?.forward(&labels(n * c, a))?,
    };
    let classes = h.shape().last().copied().unwrap_or(0);
    let target = labels(h.shape()[0], classes);
    let l = match loss {
        0 => cross_entropy(&h, &target)?,
        1 => cross_entropy_composite(&h, &target, Default::default())?,
        2 => nll_loss(&h.log_softmax(-1)?, &target)?,
        3 => mse_loss(&h, &h.detach().zeros_like()?)?,
        4 => l1_loss(&h, &h.detach().ones_like()?)?,
        _ => binary_cross_entropy_with_logits(&h, &h.detach().zeros_like()?)?,
    };
    l.backward()?;
    l.to_vec_f64()?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 768, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn layers_and_losses_never_panic(
        layer in 0u8..7, loss in 0u8..6, n in 0usize..=3, a in 0usize..=4, b in 0usize..=3, c in 0usize..=3,
    ) {
        let r = catch_unwind(AssertUnwindSafe(|| run(layer, loss, n, a, b, c)));
        prop_assert!(r.is_ok(), "layer {} loss {} panicked with n={} a={} b={} c={}", layer, loss, n, a, b, c);
    }
}

/// The case: `Linear(4 -> 0)` then `Linear(0 -> 3)` then cross-entropy trains (the
/// output is the second layer's bias, so only the bias gets a gradient).
#[test]
fn zero_width_hidden_layer_is_valid() {
    let l1 = Linear::new(4, 0, true).unwrap();
    let l2 = Linear::new(0, 3, true).unwrap();
    let x = input(&[5, 4], DType::F32);
    let h = l1.forward(&x).unwrap();
    assert_eq!(h.shape(), &[5, 0]);
    let y = l2.forward(&h).unwrap();
    assert_eq!(y.shape(), &[5, 3]);
    let loss = cross_entropy(&y, &labels(5, 3)).unwrap();
    loss.backward().unwrap();
    assert!(loss.item().unwrap().is_finite());
    let grads: Vec<Vec<f64>> = l2
        .parameters()
        .iter()
        .map(|p| p.grad().expect("grad").to_vec_f64().unwrap())
        .collect();
    assert!(grads.iter().flatten().all(|g| g.is_finite()));
    assert!(
        grads.iter().flatten().any(|&g| g != 0.0),
        "the bias must learn"
    );
}
