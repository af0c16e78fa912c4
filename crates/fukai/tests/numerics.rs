//! Numerical edge cases (issue 16, item 8): each test pins a value or gradient that was wrong
//! before, at the inputs that exposed it (large logits, a logit of exactly 0, GELU's negative
//! tail, ties, clamp bounds, all-ignored targets, constant rows), plus f64 gradchecks of the
//! changed ops at those inputs.

use fukai::nn::loss::{
    binary_cross_entropy_with_logits, cross_entropy_composite, cross_entropy_with, CrossEntropyOpts,
};
use fukai::testing::gradcheck;
use fukai::{DType, Result, Tensor};

fn f32s(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

fn f64s(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

/// Output and gradient of `sum(f(x))` (or of the scalar itself).
fn value_and_grad(f: impl Fn(&Tensor) -> Result<Tensor>, x: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let leaf = x.detach().with_grad().unwrap();
    let out = f(&leaf).unwrap();
    out.sum_all().unwrap().backward().unwrap();
    (
        out.to_vec_f64().unwrap(),
        leaf.grad().unwrap().to_vec_f64().unwrap(),
    )
}

fn assert_close(got: &[f64], want: &[f64], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * w.abs(),
            "{what}[{i}]: {g:e}, want {w:e} (relative error {:.2e} > {rel:e})",
            (g - w).abs() / w.abs()
        );
    }
}

fn ce_opts(ignore_index: Option<i64>) -> CrossEntropyOpts {
    CrossEntropyOpts {
        label_smoothing: 0.0,
        ignore_index,
    }
}

/// log_softmax of the rows, in f64 from the exact f32 inputs.
fn log_softmax_rows_f64() -> Vec<f64> {
    let rows = [[1e4f64, 1e4, 1e4], [1e4, 1e4 - 1.0, -1e4]];
    let mut out = Vec::new();
    for r in rows {
        let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ls = r.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        out.extend(r.iter().map(|v| v - m - ls));
    }
    out
}

#[test]
fn log_softmax_keeps_precision_for_large_logits() {
    // Before: -1.0986328 (not -1.0986123) and -1.3134766 (not -1.3132617).
    let x = f32s(&[1e4, 1e4, 1e4, 1e4, 1e4 - 1.0, -1e4], &[2, 3]);
    let got = x.log_softmax(-1).unwrap().to_vec_f64().unwrap();
    assert_close(&got, &log_softmax_rows_f64(), 1e-6, "log_softmax");
    let p = x.softmax(-1).unwrap().to_vec_f64().unwrap();
    let want: Vec<f64> = log_softmax_rows_f64().iter().map(|v| v.exp()).collect();
    for (g, w) in p.iter().zip(&want) {
        assert!(
            (g - w).abs() <= 1e-6 * w.max(1e-30) || (g - w).abs() < 1e-30,
            "{g} vs {w}"
        );
    }
}

#[test]
fn cross_entropy_keeps_precision_for_large_logits() {
    let x = f32s(&[1e4, 1e4, 1e4, 1e4, 1e4 - 1.0, -1e4], &[2, 3]);
    let lsm = log_softmax_rows_f64();
    for (t, want) in [(0i64, -lsm[0]), (1, -lsm[4])] {
        let row = x.narrow(0, if t == 0 { 0 } else { 1 }, 1).unwrap();
        let target = Tensor::from_vec(vec![t], &[1]).unwrap();
        for (name, f) in [
            (
                "fused",
                cross_entropy_with as fn(&Tensor, &Tensor, CrossEntropyOpts) -> Result<Tensor>,
            ),
            ("composite", cross_entropy_composite),
        ] {
            let l = f(&row, &target, ce_opts(None)).unwrap().item().unwrap();
            assert_close(&[l], &[want], 1e-6, name);
        }
    }
    // Label smoothing averages the shifted logits too.
    let o = CrossEntropyOpts {
        label_smoothing: 0.2,
        ignore_index: None,
    };
    let target = Tensor::from_vec(vec![1i64], &[1]).unwrap();
    let row = x.narrow(0, 1, 1).unwrap();
    let want = -(0.8 * lsm[4] + 0.2 * (lsm[3] + lsm[4] + lsm[5]) / 3.0);
    for f in [cross_entropy_with, cross_entropy_composite] {
        let l = f(&row, &target, o).unwrap().item().unwrap();
        assert_close(&[l], &[want], 1e-6, "smoothed");
    }
}

#[test]
fn all_ignored_cross_entropy_is_nan_with_zero_gradient() {
    // PyTorch (reduction mean): loss 0/0 = NaN, gradient 0. The composite's gradient was NaN.
    let x = f32s(&[0.5, -1.0, 2.0, 0.1, 0.2, 0.3], &[2, 3]);
    let t = Tensor::from_vec(vec![-100i64, -100], &[2]).unwrap();
    for f in [cross_entropy_with, cross_entropy_composite] {
        for ls in [0.0, 0.1] {
            let o = CrossEntropyOpts {
                label_smoothing: ls,
                ignore_index: Some(-100),
            };
            let (v, g) = value_and_grad(|x| f(x, &t, o), &x);
            assert!(v[0].is_nan(), "loss {v:?}");
            assert!(g.iter().all(|&g| g == 0.0), "gradient {g:?}");
        }
    }
}

#[test]
fn bce_with_logits_gradient_at_zero_and_tiny_values() {
    // d/dx at x = 0 is sigmoid(0) - t = 0.5 - t (was -t); mean over 2 elements halves it.
    let x = f32s(&[0.0, 0.0], &[2]);
    let t = f32s(&[0.3, 1.0], &[2]);
    let (v, g) = value_and_grad(|x| binary_cross_entropy_with_logits(x, &t), &x);
    assert_close(&v, &[std::f64::consts::LN_2], 1e-6, "loss at 0");
    assert_close(&g, &[0.1, -0.25], 1e-6, "gradient at 0");
    // log1p(e^-20.4) = 1.4e-9 (was 0: 1 + 1.4e-9 rounds to 1 in f32).
    let x = f32s(&[20.4], &[1]);
    let t = f32s(&[1.0], &[1]);
    let l = binary_cross_entropy_with_logits(&x, &t)
        .unwrap()
        .item()
        .unwrap();
    let xf = 20.4f32 as f64;
    assert_close(&[l], &[(-xf).exp().ln_1p()], 1e-5, "loss at 20.4");
    // The target's gradient is -x / n.
    let (x, t) = (f32s(&[1.5, -2.0], &[2]), f32s(&[0.25, 0.5], &[2]));
    let tl = t.detach().with_grad().unwrap();
    binary_cross_entropy_with_logits(&x, &tl)
        .unwrap()
        .backward()
        .unwrap();
    assert_close(
        &tl.grad().unwrap().to_vec_f64().unwrap(),
        &[-0.75, 1.0],
        1e-6,
        "target gradient",
    );
}

fn gelu_f64(x: f64) -> f64 {
    0.5 * x * libm::erfc(-x / std::f64::consts::SQRT_2)
}

fn gelu_grad_f64(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
        + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

#[test]
fn gelu_is_accurate_in_relative_terms_in_the_negative_tail() {
    // Before: gelu(-6) = -0 (true -5.9e-9), gelu(-5) 4% off.
    let xs: Vec<f32> = (-1200..=800).map(|i| i as f32 * 0.01).collect();
    let x = f32s(&xs, &[xs.len()]);
    let (v, g) = value_and_grad(|x| x.gelu(), &x);
    for (i, &xi) in xs.iter().enumerate() {
        let xd = xi as f64;
        // The f32 rounding of x/√2 and of the exponent costs about 1e-7·x² relative.
        let tol = 1e-6 * (1.0 + xd * xd / 4.0);
        let (want, want_g) = (gelu_f64(xd), gelu_grad_f64(xd));
        assert!(
            (v[i] - want).abs() <= tol * want.abs(),
            "gelu({xi}) = {:e}, want {want:e}",
            v[i]
        );
        // The gradient Φ(x) + x·φ(x) crosses 0 near -0.75: relative to its terms' size.
        let pdf = (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let scale = 0.5 * libm::erfc(-xd / std::f64::consts::SQRT_2) + xd.abs() * pdf;
        assert!(
            (g[i] - want_g).abs() <= tol * scale,
            "gelu'({xi}) = {:e}, want {want_g:e}",
            g[i]
        );
    }
    let x64 = f64s(&[-30.0, -6.0, 0.0, 3.0], &[4]);
    let v = x64.gelu().unwrap().to_vec_f64().unwrap();
    assert_close(
        &v[..2],
        &[gelu_f64(-30.0), gelu_f64(-6.0)],
        1e-11,
        "gelu f64 tail",
    );
    assert!(v[0] < 0.0);
}

#[test]
fn full_max_and_min_split_the_gradient_among_ties() {
    // PyTorch's x.max(): the tied maxima share the gradient evenly.
    let x = f32s(&[1.0, 3.0, 3.0, 2.0, 3.0, -1.0], &[2, 3]);
    let (v, g) = value_and_grad(|x| x.max_all(), &x);
    assert_eq!(v, [3.0]);
    let third = 1.0f32 as f64 / 3.0;
    assert_close(
        &g.iter().map(|&g| g + 1.0).collect::<Vec<_>>(),
        &[1.0, 1.0 + third, 1.0 + third, 1.0, 1.0 + third, 1.0],
        1e-6,
        "max_all gradient",
    );
    let x = f64s(&[0.5, -2.0, 4.0, -2.0], &[4]);
    let (v, g) = value_and_grad(|x| x.min_all(), &x);
    assert_eq!((v, g), (vec![-2.0], vec![0.0, 0.5, 0.0, 0.5]));
    let x = f64s(&[0.5, f64::NAN, 4.0, f64::NAN], &[4]);
    let (v, g) = value_and_grad(|x| x.max_all(), &x);
    assert!(v[0].is_nan());
    assert_eq!(g, [0.0, 0.5, 0.0, 0.5]);
    assert!(Tensor::zeros(&[0], DType::F32).unwrap().max_all().is_err());
}

#[test]
fn clamp_gradient_is_zero_at_the_bounds() {
    // torch.clamp(x, -0.5, 0.75) backward: [0, 0, 1, 0, 0] for x = [-1, -0.5, 0, 0.75, 1].
    for dtype in [DType::F32, DType::F64] {
        let x = f64s(&[-1.0, -0.5, 0.0, 0.75, 1.0], &[5])
            .to_dtype(dtype)
            .unwrap();
        let (v, g) = value_and_grad(|x| x.clamp(-0.5, 0.75), &x);
        assert_eq!(v, [-0.5, -0.5, 0.0, 0.75, 0.75]);
        assert_eq!(g, [0.0, 0.0, 1.0, 0.0, 0.0]);
    }
}

#[test]
fn layer_norm_of_a_constant_row_is_exactly_zero() {
    // sum · (1/d) was an ulp off for 12345.678, and (x - mean) · rstd magnified that to ~1e-1
    // in the output and ~2e-3 in the gradient.
    for &c in &[1000.0f32, 12345.678, -3.3e5, 0.1] {
        for d in [3usize, 7, 64, 100, 1000] {
            let x = f32s(&vec![c; 2 * d], &[2, d]);
            let (v, g) = value_and_grad(|x| x.layer_norm(None, None, 1e-5), &x);
            assert!(v.iter().all(|&v| v == 0.0), "c={c} d={d}: output {v:?}");
            assert!(g.iter().all(|&g| g == 0.0), "c={c} d={d}: gradient {g:?}");
            let b = Tensor::from_vec(vec![0.25f32; d], &[d]).unwrap();
            let out = x.layer_norm(Some(&b), Some(&b), 1e-5).unwrap();
            assert!(out.to_vec::<f32>().unwrap().iter().all(|&v| v == 0.25));
            let x64 = x.to_dtype(DType::F64).unwrap();
            let (v, g) = value_and_grad(|x| x.layer_norm(None, None, 1e-5), &x64);
            assert!(v.iter().chain(&g).all(|&v| v == 0.0), "f64 c={c} d={d}");
        }
    }
}

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-6;

#[test]
fn gradcheck_changed_ops_at_their_edge_cases() {
    let x = f64s(&[1e4, 1e4 - 0.5, 1e4 + 0.25, -3.0, 0.0, 2.0], &[2, 3]);
    gradcheck(|t| t[0].log_softmax(-1), std::slice::from_ref(&x), EPS, TOL).unwrap();
    gradcheck(|t| t[0].softmax(0), std::slice::from_ref(&x), EPS, TOL).unwrap();
    let targets = Tensor::from_vec(vec![2i64, 0], &[2]).unwrap();
    for f in [cross_entropy_with, cross_entropy_composite] {
        let o = CrossEntropyOpts {
            label_smoothing: 0.1,
            ignore_index: None,
        };
        gradcheck(
            |t| f(&t[0], &targets, o),
            std::slice::from_ref(&x),
            EPS,
            TOL,
        )
        .unwrap();
    }
    // BCE with logits around 0 and far out, gradients for logits and targets.
    let logits = f64s(&[0.3, -0.2, 20.4, -25.0, 3.0, -1.5], &[2, 3]);
    let t = f64s(&[0.3, 1.0, 0.0, 0.7, 0.5, 0.0], &[2, 3]);
    gradcheck(
        |t| binary_cross_entropy_with_logits(&t[0], &t[1]),
        &[logits, t],
        EPS,
        TOL,
    )
    .unwrap();
    // GELU across the tail and the centre.
    let xs: Vec<f64> = (-16..=8).map(|i| i as f64 * 0.5 + 0.1).collect();
    gradcheck(|t| t[0].gelu(), &[f64s(&xs, &[xs.len()])], EPS, TOL).unwrap();
    let x = f64s(&[0.5, -2.0, 4.0, -1.0, 3.5, 0.0], &[2, 3]);
    gradcheck(|t| t[0].min_all(), std::slice::from_ref(&x), EPS, TOL).unwrap();
    gradcheck(|t| t[0].max_all(), std::slice::from_ref(&x), EPS, TOL).unwrap();
    gradcheck(
        |t| t[0].clamp(-1.5, 3.0),
        std::slice::from_ref(&x),
        EPS,
        TOL,
    )
    .unwrap();
    // Layer norm on rows with a large common offset.
    let x = f64s(&[1000.0, 1000.5, 999.0, 12345.0, 12346.0, 12344.5], &[2, 3]);
    let w = f64s(&[0.5, -1.0, 2.0], &[3]);
    gradcheck(
        |t| t[0].layer_norm(Some(&t[1]), Some(&t[1]), 1e-5),
        &[x, w],
        EPS,
        1e-5,
    )
    .unwrap();
}

/// ReLU passes NaN through (as PyTorch does) instead of hiding it as 0, plain and fused with
/// batch norm, so a NaN input surfaces as a non-finite loss.
#[test]
fn relu_keeps_nan() {
    let x = fukai::Tensor::from_vec(vec![f32::NAN, -1.0, 2.0, 0.5], &[2, 2, 1, 1]).unwrap();
    let v = x.relu().unwrap().to_vec::<f32>().unwrap();
    assert!(v[0].is_nan() && v[1] == 0.0 && v[2] == 2.0, "{v:?}");
    // The fused op exists in training mode only; a NaN in a channel makes its batch statistics
    // NaN, and the fused ReLU must keep them.
    let bn = fukai::nn::BatchNorm::new(2).unwrap();
    let fused =
        fukai::nn::Module::forward_relu(&bn, &x).expect("batch norm fuses its ReLU in training");
    let y = fused.unwrap().to_vec::<f32>().unwrap();
    assert!(y[0].is_nan() && y[2].is_nan(), "{y:?}");
    assert!(y[1].is_finite() && y[3].is_finite(), "{y:?}");
}
