//! Same seed ⇒ the same bits, whatever the thread count. Work is split by fixed chunk sizes,
//! never by the number of threads, so 1 and 2 (and 3) threads must agree exactly, not merely
//! closely.

use fukai::rng::Generator;
use fukai::testing::with_threads;
use fukai::{manual_seed, DType, Tensor};

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// Final weights (as bits) and the loss of every step.
struct Run {
    weights: Vec<Vec<u32>>,
    losses: Vec<u32>,
}

/// Trains a 64-256-256-10 MLP on a fixed random batch of 256 for 50 SGD steps. The matmuls
/// (256×64×256 and up) are well above the sizes where kernels split across threads.
fn train_mlp() -> Run {
    manual_seed(2024);
    let sizes = [64, 256, 256, 10];
    let mut params = Vec::new();
    for w in sizes.windows(2) {
        let scale = (2.0 / w[0] as f64).sqrt();
        let weight = Tensor::randn(&[w[0], w[1]], DType::F32)
            .unwrap()
            .mul_scalar(scale)
            .unwrap();
        params.push(weight.with_grad().unwrap());
        params.push(
            Tensor::zeros(&[w[1]], DType::F32)
                .unwrap()
                .with_grad()
                .unwrap(),
        );
    }
    let x = Tensor::randn(&[256, 64], DType::F32).unwrap();
    let mut gen = Generator::new(99);
    let labels: Vec<i64> = (0..256).map(|_| gen.below(10) as i64).collect();
    let y = Tensor::from_vec(labels, &[256, 1]).unwrap();

    let mut losses = Vec::new();
    for _ in 0..50 {
        let mut h = x.clone();
        for (k, l) in params.chunks(2).enumerate() {
            h = h.matmul(&l[0]).unwrap().add(&l[1]).unwrap();
            if k + 1 < params.len() / 2 {
                h = h.relu().unwrap();
            }
        }
        let loss = h
            .log_softmax(-1)
            .unwrap()
            .gather(1, &y)
            .unwrap()
            .mean_all()
            .unwrap()
            .neg()
            .unwrap();
        losses.push((loss.item().unwrap() as f32).to_bits());
        loss.backward().unwrap();
        for p in &params {
            let g = p.grad().unwrap().to_vec::<f32>().unwrap();
            p.update_f32(|w| {
                for (w, g) in w.iter_mut().zip(&g) {
                    *w -= 0.05 * g;
                }
            })
            .unwrap();
            p.zero_grad();
        }
    }
    Run {
        weights: params.iter().map(bits).collect(),
        losses,
    }
}

#[test]
fn mlp_training_is_bitwise_identical_at_1_and_2_threads() {
    let one = with_threads(1, train_mlp);
    let two = with_threads(2, train_mlp);
    // It trained (so the comparison is not between two untouched initializations).
    let (first, last) = (
        f32::from_bits(one.losses[0]),
        f32::from_bits(*one.losses.last().unwrap()),
    );
    assert!(last < first, "loss {first} -> {last}");
    assert_eq!(one.losses, two.losses, "loss trajectories differ");
    for (i, (a, b)) in one.weights.iter().zip(&two.weights).enumerate() {
        let diff = a.iter().zip(b).filter(|(x, y)| x != y).count();
        assert_eq!(
            diff,
            0,
            "parameter {i}: {diff} of {} elements differ",
            a.len()
        );
    }
    // Same seed, same thread count: also identical (nothing depends on scheduling).
    let again = with_threads(2, train_mlp);
    assert_eq!(two.weights, again.weights);
}

#[test]
fn large_reductions_are_identical_across_thread_counts() {
    let n = 10_000_000;
    let x = Tensor::uniform_with(&[n], -1.0, 1.0, DType::F32, &mut Generator::new(5)).unwrap();
    let m = x.reshape(&[2_000, 5_000]).unwrap();
    let reduce = || {
        let mut out = vec![bits(&x.sum_all().unwrap())];
        out.push(bits(&x.mean_all().unwrap()));
        out.push(bits(&m.sum(&[0], false).unwrap()));
        out.push(bits(&m.sum(&[1], false).unwrap()));
        out.push(bits(&m.t().unwrap().sum(&[1], true).unwrap()));
        out.push(bits(&m.softmax(-1).unwrap().sum(&[0], false).unwrap()));
        out.push(bits(&m.exp().unwrap().mul(&m).unwrap().sum_all().unwrap()));
        out
    };
    let r1 = with_threads(1, reduce);
    let r2 = with_threads(2, reduce);
    let r3 = with_threads(3, reduce);
    assert_eq!(r1, r2, "1 vs 2 threads");
    assert_eq!(r1, r3, "1 vs 3 threads");

    // And the f32 total is a faithful sum, not just a reproducible one.
    let exact: f64 = x.to_vec::<f32>().unwrap().iter().map(|&v| v as f64).sum();
    let got = f32::from_bits(r1[0][0]) as f64;
    assert!(
        (got - exact).abs() < 1e-3 * (1.0 + exact.abs()),
        "{got} vs {exact}"
    );
}

#[test]
fn bce_with_logits_is_identical_across_thread_counts() {
    // f64, so a different grouping of the loss's sum would show in the last bits.
    let n = 1 << 20;
    let mut g = Generator::new(9);
    let x = Tensor::uniform_with(&[n], -8.0, 8.0, DType::F64, &mut g).unwrap();
    let t = Tensor::uniform_with(&[n], 0.0, 1.0, DType::F64, &mut g).unwrap();
    let run = || {
        let x = x.detach().with_grad().unwrap();
        let loss = fukai::nn::loss::binary_cross_entropy_with_logits(&x, &t).unwrap();
        loss.backward().unwrap();
        let bits = |t: &Tensor| -> Vec<u64> {
            let v = t.to_vec::<f64>().unwrap();
            v.into_iter().map(f64::to_bits).collect()
        };
        (bits(&loss), bits(&x.grad().unwrap()))
    };
    let one = with_threads(1, run);
    for threads in [2, 3] {
        let other = with_threads(threads, run);
        assert_eq!(one.0, other.0, "loss, 1 vs {threads} threads");
        assert!(one.1 == other.1, "gradient, 1 vs {threads} threads");
    }
}

#[test]
fn large_matmul_is_identical_across_thread_counts() {
    let mut g = Generator::new(11);
    let a = Tensor::normal_with(&[300, 257], 0.0, 1.0, DType::F32, &mut g).unwrap();
    let b = Tensor::normal_with(&[257, 190], 0.0, 1.0, DType::F32, &mut g).unwrap();
    let prod = || {
        vec![
            bits(&a.matmul(&b).unwrap()),
            bits(&b.t().unwrap().matmul(&a.t().unwrap()).unwrap()),
        ]
    };
    assert_eq!(with_threads(1, prod), with_threads(2, prod));
}

/// Mid-sized products are split into one block per thread. The bits must not move with the
/// blocks: shapes split by rows and by columns, blocks that do and do not align with gemm's
/// tiles, transposed operands, f64, and a linear layer (which accumulates onto its bias).
#[test]
fn split_matmuls_are_identical_across_thread_counts() {
    let mut g = Generator::new(12);
    let shapes = [
        (144, 800, 32),
        (32, 144, 800),
        (768, 128, 512),
        (128, 768, 512),
        (768, 512, 128),
        (100, 300, 1000),
        (96, 2000, 40),
    ];
    let mut ops: Vec<(Tensor, Tensor)> = Vec::new();
    for &(m, k, n) in &shapes {
        for dt in [DType::F32, DType::F64] {
            let a = Tensor::normal_with(&[m, k], 0.0, 1.0, dt, &mut g).unwrap();
            let b = Tensor::normal_with(&[k, n], 0.0, 1.0, dt, &mut g).unwrap();
            ops.push((a, b));
        }
    }
    let bias = Tensor::normal_with(&[128], 0.0, 1.0, DType::F32, &mut g).unwrap();
    let prod = || {
        let mut out: Vec<Vec<u64>> = Vec::new();
        for (a, b) in &ops {
            let f64_bits = |t: &Tensor| -> Vec<u64> {
                match t.dtype() {
                    DType::F64 => t
                        .to_vec::<f64>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect(),
                    _ => bits(t).into_iter().map(u64::from).collect(),
                }
            };
            out.push(f64_bits(&a.matmul(b).unwrap()));
            // The same product with both operands read transposed.
            let (at, bt) = (
                a.t().unwrap().contiguous().unwrap(),
                b.t().unwrap().contiguous().unwrap(),
            );
            out.push(f64_bits(&at.t().unwrap().matmul(&bt.t().unwrap()).unwrap()));
        }
        let (x, w) = (&ops[8].0, &ops[8].1);
        let wt = w.t().unwrap().contiguous().unwrap();
        out.push(
            bits(&x.linear(&wt, Some(&bias)).unwrap())
                .into_iter()
                .map(u64::from)
                .collect(),
        );
        out
    };
    let one = with_threads(1, prod);
    for t in [2, 3, 4] {
        let other = with_threads(t, prod);
        for (i, (a, b)) in one.iter().zip(&other).enumerate() {
            let d = a.iter().zip(b).filter(|(x, y)| x != y).count();
            assert!(
                d == 0,
                "product {i}: {d} of {} elements differ at {t} threads",
                a.len()
            );
        }
    }
}

#[test]
fn same_seed_same_draws() {
    let draw = |seed| {
        let mut g = Generator::new(seed);
        let u = Tensor::uniform_with(&[1000], 0.0, 1.0, DType::F32, &mut g).unwrap();
        let z = Tensor::normal_with(&[1001], 0.0, 1.0, DType::F64, &mut g).unwrap();
        (bits(&u), z.to_vec::<f64>().unwrap())
    };
    let (a, b) = (draw(3), draw(3));
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    assert_ne!(a.0, draw(4).0);
}

/// Linear layers on a few rows (one sentence, one decoded token) run on their own kernel,
/// split into fixed groups of outputs: the bits must not move with the thread count, at row
/// counts on both sides of its range and a weight long enough to be split.
#[test]
fn few_row_linears_are_identical_across_thread_counts() {
    let mut g = Generator::new(13);
    let w = Tensor::normal_with(&[1500, 385], 0.0, 1.0, DType::F32, &mut g).unwrap();
    let b = Tensor::normal_with(&[1500], 0.0, 1.0, DType::F32, &mut g).unwrap();
    let xs: Vec<Tensor> = [1, 2, 11, 16, 17]
        .iter()
        .map(|&m| Tensor::normal_with(&[m, 385], 0.0, 1.0, DType::F32, &mut g).unwrap())
        .collect();
    let prod = || {
        xs.iter()
            .map(|x| bits(&x.linear(&w, Some(&b)).unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(with_threads(1, prod), with_threads(2, prod));
    assert_eq!(with_threads(1, prod), with_threads(3, prod));
}
