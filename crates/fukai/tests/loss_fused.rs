//! The fused cross-entropy kernel against its composite reference (log_softmax, gather, mean),
//! and finite-difference gradient checks (f64) of every loss.

use fukai::nn::loss::{
    binary_cross_entropy_with_logits, cross_entropy, cross_entropy_composite, cross_entropy_with,
    l1_loss, mse_loss, nll_loss, CrossEntropyOpts,
};
use fukai::testing::{gradcheck, randn64};
use fukai::{DType, Generator, Result, Tensor};

fn opts(label_smoothing: f64, ignore_index: Option<i64>) -> CrossEntropyOpts {
    CrossEntropyOpts {
        label_smoothing,
        ignore_index,
    }
}

/// Class indices in `0..c`, with every `ignore_every`-th row set to -100 when asked.
fn targets(n: usize, c: usize, seed: u64, ignore_every: Option<usize>) -> Tensor {
    let mut g = Generator::new(seed);
    let v: Vec<i64> = (0..n)
        .map(|i| match ignore_every {
            Some(k) if i % k == 1 => -100,
            _ => g.below(c as u64) as i64,
        })
        .collect();
    Tensor::from_vec(v, &[n]).unwrap()
}

fn logits(n: usize, c: usize, scale: f64, seed: u64, dtype: DType) -> Tensor {
    Tensor::normal_with(&[n, c], 0.0, scale, dtype, &mut Generator::new(seed)).unwrap()
}

/// Loss and gradient of `f` at `x`.
fn loss_and_grad(f: impl Fn(&Tensor) -> Result<Tensor>, x: &Tensor) -> (f64, Vec<f64>) {
    let leaf = x.detach().with_grad().unwrap();
    let loss = f(&leaf).unwrap();
    loss.backward().unwrap();
    (
        loss.item().unwrap(),
        leaf.grad().unwrap().to_vec_f64().unwrap(),
    )
}

const OPTS: [(f64, Option<i64>); 6] = [
    (0.0, None),
    (0.1, None),
    (0.3, None),
    (0.0, Some(-100)),
    (0.1, Some(-100)),
    (1.0, Some(-100)),
];

#[test]
fn fused_matches_composite() {
    for (dtype, tol) in [(DType::F32, 2e-6), (DType::F64, 1e-12)] {
        for (seed, (n, c, scale)) in [
            (4, 3, 1.0),
            (33, 10, 3.0),
            (64, 7, 20.0),
            (1, 2, 0.5),
            (17, 100, 5.0),
        ]
        .into_iter()
        .enumerate()
        {
            for &(ls, ignore) in &OPTS {
                let o = opts(ls, ignore);
                let x = logits(n, c, scale, seed as u64, dtype);
                // Keep at least one row: row 1 of every 3 is ignored.
                let t = targets(n, c, 100 + seed as u64, ignore.map(|_| 3));
                let (lf, gf) = loss_and_grad(|x| cross_entropy_with(x, &t, o), &x);
                let (lc, gc) = loss_and_grad(|x| cross_entropy_composite(x, &t, o), &x);
                let ctx = format!("{dtype} n={n} c={c} scale={scale} ls={ls} ignore={ignore:?}");
                assert!(
                    (lf - lc).abs() <= tol * lc.abs().max(1.0),
                    "{ctx}: loss fused {lf} vs composite {lc}"
                );
                for (i, (a, b)) in gf.iter().zip(&gc).enumerate() {
                    assert!(
                        (a - b).abs() <= tol,
                        "{ctx}: grad[{i}] fused {a} vs composite {b}"
                    );
                }
                if let Some(ix) = ignore {
                    for (row, &y) in t.to_vec::<i64>().unwrap().iter().enumerate() {
                        if y == ix {
                            assert!(
                                gf[row * c..(row + 1) * c].iter().all(|&g| g == 0.0),
                                "{ctx}: ignored row {row} has a gradient"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn fused_loss_and_gradient_scale_with_upstream_gradient() {
    // backward of 3 * loss: the fused kernel reads the upstream scalar.
    let x = logits(5, 4, 1.0, 9, DType::F64);
    let t = targets(5, 4, 10, None);
    let (l1, g1) = loss_and_grad(|x| cross_entropy(x, &t), &x);
    let (l3, g3) = loss_and_grad(|x| cross_entropy(x, &t)?.mul_scalar(3.0), &x);
    assert!((l3 - 3.0 * l1).abs() < 1e-12);
    for (a, b) in g1.iter().zip(&g3) {
        assert!((3.0 * a - b).abs() < 1e-12);
    }
}

#[test]
fn u32_targets_equal_i64_targets() {
    let x = logits(6, 5, 2.0, 3, DType::F32);
    let t = targets(6, 5, 4, None);
    let t32 = Tensor::from_vec(
        t.to_vec::<i64>()
            .unwrap()
            .iter()
            .map(|&v| v as u32)
            .collect::<Vec<_>>(),
        &[6],
    )
    .unwrap();
    let a = cross_entropy_with(&x, &t, opts(0.1, None))
        .unwrap()
        .item()
        .unwrap();
    let b = cross_entropy_with(&x, &t32, opts(0.1, None))
        .unwrap()
        .item()
        .unwrap();
    assert_eq!(a.to_bits(), b.to_bits());
}

#[test]
fn all_rows_ignored_gives_nan_like_pytorch() {
    let x = logits(3, 4, 1.0, 5, DType::F32);
    let t = Tensor::from_vec(vec![-100i64; 3], &[3]).unwrap();
    let o = opts(0.0, Some(-100));
    assert!(cross_entropy_with(&x, &t, o)
        .unwrap()
        .item()
        .unwrap()
        .is_nan());
    assert!(cross_entropy_composite(&x, &t, o)
        .unwrap()
        .item()
        .unwrap()
        .is_nan());
}

#[test]
fn bad_targets_and_options_are_errors() {
    let x = logits(3, 4, 1.0, 5, DType::F32);
    let out_of_range = Tensor::from_vec(vec![0i64, 4, 1], &[3]).unwrap();
    let err = cross_entropy(&x, &out_of_range).unwrap_err().to_string();
    assert!(err.contains("target 4 at row 1"), "{err}");
    let wrong_len = Tensor::from_vec(vec![0i64, 1], &[2]).unwrap();
    assert!(cross_entropy(&x, &wrong_len).is_err());
    let ok = targets(3, 4, 1, None);
    assert!(cross_entropy_with(&x, &ok, opts(1.5, None)).is_err());
    assert!(cross_entropy_with(&x, &ok, opts(-0.1, None)).is_err());
    let float_targets = Tensor::from_vec(vec![0f32, 1., 2.], &[3]).unwrap();
    assert!(cross_entropy(&x, &float_targets).is_err());
}

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-7;

#[test]
fn gradcheck_cross_entropy() {
    for &(ls, ignore) in &OPTS {
        let o = opts(ls, ignore);
        let t = targets(6, 5, 21, ignore.map(|_| 3));
        for (name, f) in [
            (
                "fused",
                cross_entropy_with as fn(&Tensor, &Tensor, CrossEntropyOpts) -> Result<Tensor>,
            ),
            ("composite", cross_entropy_composite),
        ] {
            let worst = gradcheck(
                |x| f(&x[0], &t, o),
                &[randn64(&[6, 5], 22).unwrap().mul_scalar(3.0).unwrap()],
                EPS,
                TOL,
            )
            .unwrap_or_else(|e| panic!("{name} ls={ls} ignore={ignore:?}: {e}"));
            assert!(worst < TOL);
        }
    }
}

#[test]
fn gradcheck_other_losses() {
    let t = targets(6, 5, 31, None);
    gradcheck(
        |x| nll_loss(&x[0], &t),
        &[randn64(&[6, 5], 32).unwrap()],
        EPS,
        TOL,
    )
    .unwrap();
    gradcheck(
        |x| mse_loss(&x[0], &x[1]),
        &[randn64(&[3, 4], 33).unwrap(), randn64(&[3, 4], 34).unwrap()],
        EPS,
        TOL,
    )
    .unwrap();
    // L1: |a - b| is smooth away from a == b; random normals are far apart at eps 1e-6.
    gradcheck(
        |x| l1_loss(&x[0], &x[1]),
        &[randn64(&[3, 4], 35).unwrap(), randn64(&[3, 4], 36).unwrap()],
        EPS,
        TOL,
    )
    .unwrap();
    let probs = Tensor::uniform(&[3, 4], 0.0, 1.0, DType::F64).unwrap();
    for scale in [1.0, 8.0] {
        let x = randn64(&[3, 4], 37).unwrap().mul_scalar(scale).unwrap();
        gradcheck(
            |x| binary_cross_entropy_with_logits(&x[0], &x[1]),
            &[x, probs.clone()],
            EPS,
            TOL,
        )
        .unwrap();
    }
}

#[test]
fn bce_with_logits_is_stable_for_large_logits() {
    let x = Tensor::from_vec(vec![200.0f32, -200.0, 0.0], &[3]).unwrap();
    let y = Tensor::from_vec(vec![1.0f32, 0.0, 1.0], &[3]).unwrap();
    let l = binary_cross_entropy_with_logits(&x, &y)
        .unwrap()
        .item()
        .unwrap();
    assert!((l - std::f64::consts::LN_2 / 3.0).abs() < 1e-6, "{l}");
}
