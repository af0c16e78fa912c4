//! Cross-checks fukai's modules, losses and optimizers against PyTorch, from
//! `tests/fixtures/nn.safetensors` (written by `scripts/torch_fixtures.py`, family `nn`).
//!
//! Modules and losses: outputs and the gradients of `sum(out * w)` with respect to the input and
//! every parameter, within `|fukai - torch| <= 1e-5 * max(1, |torch|)`. Batch norm in train mode
//! also compares the running statistics after one step. Optimizers: 5 steps on a small
//! quadratic-plus-quartic problem, the parameters after every step and the loss before it,
//! within the same bound (absolute for parameters below 1). The optimizers again on f64
//! parameters (`nn_f64.safetensors`, PyTorch's float64 run kept in float64), within 1e-10.
//! `nn.AvgPool2d` with and without `count_include_pad` from `nn_pool.safetensors`.

mod common;

use common::{Fixtures, TOL_F64};
use fukai::nn::loss::{
    binary_cross_entropy_with_logits, cross_entropy_composite, cross_entropy_with, l1_loss,
    mse_loss, nll_loss, CrossEntropyOpts,
};
use fukai::nn::{AvgPool2d, BatchNorm, Conv2d, LayerNorm, Linear, Module};
use fukai::optim::{Adam, Optimizer, RmsProp, Sgd};
use fukai::{Result, Tensor};

/// Tolerance of the optimizer trajectories.
const OPT_TOL: f64 = 1e-5;

const FILE: &str = "nn.safetensors";
const MODULES: &[&str] = &["linear", "conv2d"];
const NORMS: &[&str] = &["batchnorm", "layernorm"];
const LOSSES: &[&str] = &["cross_entropy", "nll", "mse", "l1", "bce"];
const OPTIMIZERS: &[&str] = &["opt_"];

#[test]
fn linear_and_conv_modules() {
    let fx = Fixtures::open_subset(FILE, MODULES);
    for case in ["linear", "linear_3d"] {
        fx.check1(case, &["x", "weight", "bias"], |t, _| {
            let m = Linear {
                weight: t[1].clone(),
                bias: Some(t[2].clone()),
            };
            m.forward(&t[0])
        });
    }
    fx.check1("linear_nobias", &["x", "weight"], |t, _| {
        Linear {
            weight: t[1].clone(),
            bias: None,
        }
        .forward(&t[0])
    });
    fx.check1("conv2d_pad1", &["x", "weight", "bias"], |t, _| {
        let mut m = Conv2d::new(3, 4, 3, 1)?;
        (m.weight, m.bias) = (t[1].clone(), Some(t[2].clone()));
        m.forward(&t[0])
    });
    fx.check1("conv2d_stride2_nobias", &["x", "weight"], |t, _| {
        let mut m = Conv2d::with_options(2, 3, [3, 3], [2, 2], [0, 0], [1, 1], 1, false)?;
        m.weight = t[1].clone();
        m.forward(&t[0])
    });
    fx.finish();
}

#[test]
fn avg_pool_module_with_and_without_padding_counted() {
    let fx = Fixtures::open("nn_pool.safetensors");
    // (case, kernel, stride, padding)
    let cases = [
        ("k3s2p1", [3, 3], [2, 2], [1, 1]),
        ("k3x2s1p1", [3, 2], [1, 1], [1, 1]),
        ("k2s2p1", [2, 2], [2, 2], [1, 1]),
    ];
    for (name, kernel, stride, padding) in cases {
        for (tag, include) in [("include", true), ("exclude", false)] {
            fx.check1(&format!("avgpool_{name}_{tag}"), &["x"], |t, _| {
                let m = AvgPool2d {
                    kernel,
                    stride,
                    padding,
                    ..AvgPool2d::new(1)
                }
                .count_include_pad(include);
                m.forward(&t[0])
            });
        }
    }
    fx.finish();
}

#[test]
fn avg_pool_module_counts_padding_by_default() {
    assert!(AvgPool2d::new(2).count_include_pad);
}

fn batch_norm(t: &[Tensor]) -> Result<BatchNorm> {
    let mut bn = BatchNorm::new(t[1].numel())?;
    (bn.weight, bn.bias) = (t[1].clone(), t[2].clone());
    Ok(bn)
}

#[test]
fn normalization_layers() {
    let fx = Fixtures::open_subset(FILE, NORMS);
    for name in ["batchnorm1d", "batchnorm1d_3d", "batchnorm2d"] {
        fx.check(
            &format!("{name}_train"),
            &["x", "weight", "bias"],
            |t, _| {
                let bn = batch_norm(t)?;
                let out = bn.forward(&t[0])?;
                assert_eq!(
                    bn.num_batches_tracked.item()?,
                    1.0,
                    "{name}: num_batches_tracked"
                );
                Ok(vec![out, bn.running_mean.clone(), bn.running_var.clone()])
            },
        );
        fx.check1(&format!("{name}_eval"), &["x", "weight", "bias"], |t, c| {
            let mut bn = batch_norm(t)?;
            bn.running_mean.copy_from(&c.aux("running_mean")?)?;
            bn.running_var.copy_from(&c.aux("running_var")?)?;
            bn.set_training(false);
            let out = bn.forward(&t[0])?;
            assert_eq!(
                bn.num_batches_tracked.item()?,
                0.0,
                "{name}: eval must not count batches"
            );
            Ok(out)
        });
    }
    fx.check1("layernorm", &["x", "weight", "bias"], |t, _| {
        let mut ln = LayerNorm::new(6)?;
        (ln.weight, ln.bias) = (t[1].clone(), t[2].clone());
        ln.forward(&t[0])
    });
    fx.finish();
}

#[test]
fn losses() {
    let fx = Fixtures::open_subset(FILE, LOSSES);
    let ce = |ls: f64, ignore: Option<i64>| CrossEntropyOpts {
        label_smoothing: ls,
        ignore_index: ignore,
    };
    for (case, opts) in [
        ("cross_entropy", ce(0.0, None)),
        ("cross_entropy_wide", ce(0.0, None)),
        ("cross_entropy_ls", ce(0.1, None)),
        ("cross_entropy_ignore", ce(0.0, Some(-100))),
        ("cross_entropy_ls_ignore", ce(0.1, Some(-100))),
    ] {
        fx.check1(case, &["logits"], |t, c| {
            let target = c.aux("target")?;
            // The composite form must agree with the fused kernel (checked against torch).
            let fused = cross_entropy_with(&t[0], &target, opts)?;
            let composite = cross_entropy_composite(&t[0].detach(), &target, opts)?;
            let (a, b) = (fused.item()?, composite.item()?);
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{case}: fused {a} vs composite {b}"
            );
            Ok(fused)
        });
    }
    fx.check1("nll", &["input"], |t, c| nll_loss(&t[0], &c.aux("target")?));
    fx.check1("mse", &["input", "target"], |t, _| mse_loss(&t[0], &t[1]));
    fx.check1("l1", &["input", "target"], |t, _| l1_loss(&t[0], &t[1]));
    for case in ["bce_with_logits", "bce_with_logits_wide"] {
        fx.check1(case, &["input", "target"], |t, _| {
            binary_cross_entropy_with_logits(&t[0], &t[1])
        });
    }
    fx.finish();
}

/// The fixtures' problem: `mean((x @ w + b - y)^2) + 0.05 * sum(w^4)`.
fn problem(x: &Tensor, y: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let fit = x.matmul(w)?.add(b)?.sub(y)?.square()?.mean_all()?;
    fit.add(&w.powf(4.0)?.sum_all()?.mul_scalar(0.05)?)
}

/// Runs the trajectory `case` with `make(params)`; the worst error over all steps.
fn trajectory(
    fx: &Fixtures,
    case: &str,
    make: impl FnOnce(Vec<Tensor>) -> Box<dyn Optimizer>,
) -> std::result::Result<(f64, String), String> {
    let s = |e: fukai::Error| e.to_string();
    let (x, y) = (fx.tensor(case, "x"), fx.tensor(case, "y"));
    let w = fx.tensor(case, "w").with_grad().map_err(s)?;
    let b = fx.tensor(case, "b").with_grad().map_err(s)?;
    let mut opt = make(vec![w.clone(), b.clone()]);
    let losses = fx.tensor(case, "loss").to_vec_f64().map_err(s)?;
    let mut worst = (0.0f64, String::new());
    for (k, &want_loss) in losses.iter().enumerate() {
        let k = k + 1;
        opt.zero_grad();
        let loss = problem(&x, &y, &w, &b).map_err(s)?;
        loss.backward().map_err(s)?;
        let got_loss = loss.item().map_err(s)?;
        let err = (got_loss - want_loss).abs() / want_loss.abs().max(1.0);
        if err > worst.0 {
            worst = (
                err,
                format!("loss before step {k}: fukai {got_loss:e}, torch {want_loss:e}"),
            );
        }
        opt.step().map_err(s)?;
        for (name, p) in [("w", &w), ("b", &b)] {
            let want = fx.tensor(case, &format!("{name}_step{k}"));
            let (e, at) = Fixtures::error(p, &want)?;
            if e > worst.0 || e.is_nan() {
                worst = (e, format!("{name} after step {k}: {at}"));
            }
        }
    }
    Ok(worst)
}

#[test]
fn optimizer_trajectories() {
    replay_trajectories(Fixtures::open_subset(FILE, OPTIMIZERS), OPT_TOL);
}

/// The same trajectories with f64 parameters: every optimizer keeps its state in the
/// parameters' dtype and matches PyTorch's float64 run.
#[test]
fn optimizer_trajectories_in_f64() {
    let fx = Fixtures::open_subset("nn_f64.safetensors", OPTIMIZERS);
    replay_trajectories(fx, TOL_F64);
}

/// Replays every optimizer case of `fx` in the dtype its tensors are stored in.
fn replay_trajectories(fx: Fixtures, tol: f64) {
    type Make = fn(Vec<Tensor>) -> Box<dyn Optimizer>;
    let cases: &[(&str, Make)] = &[
        ("opt_sgd", |p| Box::new(Sgd::new(p, 0.1))),
        ("opt_sgd_momentum", |p| {
            Box::new(Sgd::new(p, 0.05).momentum(0.9))
        }),
        ("opt_sgd_nesterov_wd", |p| {
            Box::new(
                Sgd::new(p, 0.05)
                    .momentum(0.9)
                    .nesterov(true)
                    .weight_decay(0.01),
            )
        }),
        ("opt_sgd_wd", |p| {
            Box::new(Sgd::new(p, 0.1).weight_decay(0.1))
        }),
        ("opt_adam", |p| Box::new(Adam::new(p, 0.1))),
        ("opt_adam_wd", |p| {
            Box::new(
                Adam::new(p, 0.05)
                    .betas(0.8, 0.99)
                    .eps(1e-6)
                    .weight_decay(0.1),
            )
        }),
        ("opt_adamw", |p| {
            Box::new(Adam::adamw(p, 0.1).weight_decay(0.1))
        }),
        ("opt_rmsprop", |p| Box::new(RmsProp::new(p, 0.01))),
        ("opt_rmsprop_momentum_wd", |p| {
            Box::new(
                RmsProp::new(p, 0.01)
                    .alpha(0.9)
                    .momentum(0.9)
                    .weight_decay(0.1),
            )
        }),
    ];
    for &(case, make) in cases {
        fx.record(case, trajectory(&fx, case, make), tol);
    }
    fx.finish();
}

/// Every case of the file is claimed by exactly one of the tests above.
#[test]
fn every_case_has_a_test() {
    let prefixes: Vec<&str> = [MODULES, NORMS, LOSSES, OPTIMIZERS].concat();
    let orphans: Vec<String> = Fixtures::open(FILE)
        .cases()
        .into_iter()
        .filter(|c| !prefixes.iter().any(|p| c.starts_with(p)))
        .collect();
    assert!(orphans.is_empty(), "cases no test replays: {orphans:?}");
}

/// Clipping reads and scales f64 gradients as it does f32 ones.
#[test]
fn clip_grad_norm_in_f64() {
    let p = Tensor::from_vec(vec![1.0f64, 2.0], &[2])
        .unwrap()
        .with_grad()
        .unwrap();
    p.set_grad(Some(Tensor::from_vec(vec![3.0f64, 4.0], &[2]).unwrap()));
    let norm = fukai::optim::clip_grad_norm(std::slice::from_ref(&p), 1.0).unwrap();
    assert_eq!(norm, 5.0);
    let g = p.grad().unwrap().to_vec::<f64>().unwrap();
    let scale = 1.0 / (5.0 + 1e-6);
    assert!((g[0] - 3.0 * scale).abs() < 1e-15 && (g[1] - 4.0 * scale).abs() < 1e-15);
}
