//! `Precision::Bf16` (autocast): the bf16 kernel against an f64 reference of the rounded
//! operands, AVX512-BF16 against the portable path bit for bit, the same bits at 1 and 2
//! threads, autocast against explicit rounding, gradients under autocast, and a model that
//! learns in bf16.

use fukai::ops::bf16::{self, avx512_bf16_available, Kernel};
use fukai::rng::Generator;
use fukai::testing::with_threads;
use fukai::{autocast, manual_seed, DType, Precision, Tensor};

fn randn(gen: &mut Generator, len: usize, scale: f32) -> Vec<f32> {
    gen.normal_f64(len)
        .into_iter()
        .map(|v| v as f32 * scale)
        .collect()
}

/// Held by every test that seeds or draws from the process-wide default generator (weight
/// init, `Tensor::randn`): tests run on parallel threads, and one test's seed would otherwise
/// change the draws of another (two runs of one test then multiply different matrices).
static DEFAULT_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn default_rng() -> std::sync::MutexGuard<'static, ()> {
    DEFAULT_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

/// `Σ_k round(a)·round(b)` in f64 and `Σ_k |round(a)·round(b)|`, per output element.
fn reference(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> (Vec<f64>, Vec<f64>) {
    let mut sum = vec![0f64; m * n];
    let mut abs = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let v = bf16::round(a[i * k + p]) as f64 * bf16::round(b[p * n + j]) as f64;
                sum[i * n + j] += v;
                abs[i * n + j] += v.abs();
            }
        }
    }
    (sum, abs)
}

#[test]
fn rounding_is_round_to_nearest_even() {
    let mut gen = Generator::new(1);
    let mut xs = randn(&mut gen, 10_000, 3.0);
    // Exact ties (the low 16 bits 0x8000) on both sides of even, and the extremes.
    xs.extend([1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, -2.0 - 2.0 / 256.0]);
    xs.extend([f32::MAX, f32::MIN_POSITIVE, 1e-40, 0.0, -0.0, f32::INFINITY]);
    for &x in &xs {
        let want = half::bf16::from_f32(x).to_f32();
        assert_eq!(bf16::round(x).to_bits(), want.to_bits(), "round({x:e})");
    }
    assert!(bf16::round(f32::NAN).is_nan());
}

#[test]
fn kernel_matches_the_f64_sum_of_rounded_products() {
    let mut gen = Generator::new(2);
    // Edges of every blocking: rows around 12 and 96, columns around 32 and 256, odd k.
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 5, 7),
        (13, 33, 31),
        (12, 64, 32),
        (97, 129, 257),
        (40, 300, 70),
    ] {
        let a = randn(&mut gen, m * k, 1.0);
        let b = randn(&mut gen, k * n, 1.0);
        let (want, abs) = reference(&a, &b, (m, k, n));
        for kernel in [Kernel::Auto, Kernel::Portable] {
            let got = bf16::matmul(&a, &b, (m, k, n), kernel);
            for i in 0..m * n {
                // k rounded f32 additions, each off by at most half an ulp of the running
                // sum, which is at most Σ|products|.
                let tol = k as f64 * abs[i] * f32::EPSILON as f64 / 2.0 + 1e-30;
                let err = (got[i] as f64 - want[i]).abs();
                assert!(
                    err <= tol,
                    "{kernel:?} {m}x{k}x{n} [{i}]: {} vs {}, tol {tol:e}",
                    got[i],
                    want[i]
                );
            }
        }
        // The operands really are rounded: plain f32 products differ by far more.
        if k >= 33 {
            let plain: f64 = (0..k).map(|p| a[p] as f64 * b[p * n] as f64).sum();
            assert!(
                (plain - want[0]).abs() > 1e-4,
                "{m}x{k}x{n}: rounding changed nothing"
            );
        }
    }
}

#[test]
fn avx512_bf16_and_portable_give_the_same_bits() {
    if !avx512_bf16_available() {
        println!("skipped: this CPU has no AVX512-BF16");
        return;
    }
    let mut gen = Generator::new(3);
    // Products in f32's normal range only: with denormal products (operands near 1e-19) this
    // CPU (AMD Zen) keeps values the pseudocode's flush to zero drops, and the paths differ.
    for &(m, k, n, scale) in &[
        (5, 7, 9, 1.0f32),
        (24, 100, 64, 1.0),
        (50, 513, 40, 30.0),
        (13, 64, 33, 1e-3),
    ] {
        let a = randn(&mut gen, m * k, scale);
        let b = randn(&mut gen, k * n, scale);
        let fast = bf16::matmul(&a, &b, (m, k, n), Kernel::Avx512Bf16);
        let portable = bf16::matmul(&a, &b, (m, k, n), Kernel::Portable);
        assert_eq!(
            bits(&fast),
            bits(&portable),
            "{m}x{k}x{n} at scale {scale:e}"
        );
    }
}

#[test]
fn bf16_products_give_the_same_bits_at_1_and_2_threads() {
    let _rng = default_rng();
    let run = || {
        let _bf16 = autocast(Precision::Bf16);
        manual_seed(4);
        let a = Tensor::randn(&[300, 200], DType::F32).unwrap();
        let b = Tensor::randn(&[200, 500], DType::F32)
            .unwrap()
            .with_grad()
            .unwrap();
        let y = a.matmul(&b).unwrap();
        // A strided 5x5 convolution: the im2col path, over a batch of 8 samples.
        let x = Tensor::randn(&[8, 16, 20, 20], DType::F32)
            .unwrap()
            .with_grad()
            .unwrap();
        let w = Tensor::randn(&[24, 16, 5, 5], DType::F32)
            .unwrap()
            .with_grad()
            .unwrap();
        let z = x.conv2d(&w, None, [2, 2], [1, 1], [1, 1], 1).unwrap();
        let (yv, zv) = (values(&y), values(&z));
        y.sum_all()
            .unwrap()
            .add(&z.square().unwrap().sum_all().unwrap())
            .unwrap()
            .backward()
            .unwrap();
        [
            yv,
            zv,
            values(&b.grad().unwrap()),
            values(&x.grad().unwrap()),
            values(&w.grad().unwrap()),
        ]
        .map(|v| bits(&v))
    };
    let one = with_threads(1, run);
    let two = with_threads(2, run);
    for (i, name) in ["y", "z", "db", "dx", "dw"].iter().enumerate() {
        let diff = one[i].iter().zip(&two[i]).filter(|(a, b)| a != b).count();
        assert_eq!(
            diff,
            0,
            "{name}: {diff} of {} elements differ between 1 and 2 threads",
            one[i].len()
        );
    }
}

/// A tensor with every element rounded to bf16.
fn rounded(t: &Tensor) -> Tensor {
    let v: Vec<f32> = values(t).into_iter().map(bf16::round).collect();
    Tensor::from_vec(v, t.shape()).unwrap()
}

/// Largest |a - b| over the largest |b|.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    d / b.iter().map(|y| y.abs()).fold(0f32, f32::max)
}

#[test]
fn autocast_equals_rounding_the_operands_then_multiplying() {
    let _rng = default_rng();
    manual_seed(5);
    let a = Tensor::randn(&[37, 70], DType::F32).unwrap();
    let b = Tensor::randn(&[70, 45], DType::F32).unwrap();
    let w = Tensor::randn(&[45, 70], DType::F32).unwrap();
    let bias = Tensor::randn(&[45], DType::F32).unwrap();
    let x = Tensor::randn(&[2, 3, 11, 11], DType::F32).unwrap();
    let k = Tensor::randn(&[4, 3, 5, 5], DType::F32).unwrap();
    let ops = |a: &Tensor, b: &Tensor, w: &Tensor, x: &Tensor, k: &Tensor| {
        [
            values(&a.matmul(b).unwrap()),
            // Batched, broadcast over the batch of b.
            values(
                &a.reshape(&[1, 37, 70])
                    .unwrap()
                    .expand(&[3, 37, 70])
                    .unwrap()
                    .matmul(b)
                    .unwrap(),
            ),
            values(&a.linear(w, Some(&bias)).unwrap()),
            values(&x.conv2d(k, None, [1, 1], [1, 1], [1, 1], 1).unwrap()),
        ]
    };
    let mixed = {
        let _bf16 = autocast(Precision::Bf16);
        ops(&a, &b, &w, &x, &k)
    };
    let explicit = ops(
        &rounded(&a),
        &rounded(&b),
        &rounded(&w),
        &rounded(&x),
        &rounded(&k),
    );
    let plain = ops(&a, &b, &w, &x, &k);
    // The matmul is the kernel itself, bit for bit.
    assert_eq!(
        bits(&mixed[0]),
        bits(&bf16::matmul(
            &values(&a),
            &values(&b),
            (37, 70, 45),
            Kernel::Auto
        ))
    );
    for (i, ((m, e), p)) in mixed.iter().zip(&explicit).zip(&plain).enumerate() {
        // Only the order of the f32 sums differs from the explicit composite ...
        assert!(
            rel_diff(m, e) < 1e-6,
            "op {i}: {} from the rounded composite",
            rel_diff(m, e)
        );
        // ... while the rounding of the operands shows against plain f32.
        assert!(
            rel_diff(m, p) > 1e-4,
            "op {i}: {} from f32: not rounded",
            rel_diff(m, p)
        );
    }
}

#[test]
fn winograd_convolutions_stay_f32_under_autocast() {
    let _rng = default_rng();
    // 3x3, stride 1: the Winograd path, which stays f32 (see ops/bf16.rs).
    manual_seed(6);
    let x = Tensor::randn(&[2, 32, 14, 14], DType::F32).unwrap();
    let k = Tensor::randn(&[32, 32, 3, 3], DType::F32).unwrap();
    let f32_out = values(&x.conv2d(&k, None, [1, 1], [1, 1], [1, 1], 1).unwrap());
    let _bf16 = autocast(Precision::Bf16);
    let bf16_out = values(&x.conv2d(&k, None, [1, 1], [1, 1], [1, 1], 1).unwrap());
    assert_eq!(bits(&f32_out), bits(&bf16_out));
}

#[test]
fn gradients_under_autocast_are_the_f32_gradients_of_rounded_operands() {
    let _rng = default_rng();
    manual_seed(7);
    let a = Tensor::randn(&[20, 30], DType::F32).unwrap();
    let w = Tensor::randn(&[25, 30], DType::F32).unwrap();
    let bias = Tensor::randn(&[25], DType::F32).unwrap();
    let x = Tensor::randn(&[2, 3, 9, 9], DType::F32).unwrap();
    let k = Tensor::randn(&[5, 3, 3, 3], DType::F32).unwrap();
    // The upstream gradients, bf16 values already, so rounding them changes nothing.
    let ry = rounded(&Tensor::randn(&[20, 25], DType::F32).unwrap());
    let rz = rounded(&Tensor::randn(&[2, 5, 4, 4], DType::F32).unwrap());
    // loss = Σ linear(a)·ry + Σ conv(x)·rz; returns every input's gradient.
    let grads = |a: &Tensor, w: &Tensor, x: &Tensor, k: &Tensor, inside: bool| {
        let leaves = [a, w, &bias, x, k].map(|t| t.detach().with_grad().unwrap());
        let [a, w, b, x, k] = &leaves;
        let loss = {
            let _bf16 = inside.then(|| autocast(Precision::Bf16));
            let y = a
                .linear(w, Some(b))
                .unwrap()
                .mul(&ry)
                .unwrap()
                .sum_all()
                .unwrap();
            // Stride 2: the im2col path.
            let z = x
                .conv2d(k, None, [2, 2], [0, 0], [1, 1], 1)
                .unwrap()
                .mul(&rz)
                .unwrap();
            y.add(&z.sum_all().unwrap()).unwrap()
        };
        // Backward outside the guard still runs at the forward's precision.
        loss.backward().unwrap();
        leaves.map(|t| values(&t.grad().unwrap()))
    };
    let mixed = grads(&a, &w, &x, &k, true);
    let explicit = grads(
        &rounded(&a),
        &rounded(&w),
        &rounded(&x),
        &rounded(&k),
        false,
    );
    let plain = grads(&a, &w, &x, &k, false);
    for (i, name) in ["a", "w", "bias", "x", "k"].iter().enumerate() {
        let d = rel_diff(&mixed[i], &explicit[i]);
        assert!(
            d < 1e-6,
            "d{name}: {d} from the f32 gradient of rounded operands"
        );
    }
    // The bias gradient is a plain sum (f32 either way); the others are bf16 products.
    for (i, name) in [(0, "a"), (1, "w"), (3, "x"), (4, "k")] {
        let d = rel_diff(&mixed[i], &plain[i]);
        assert!(
            d > 1e-4,
            "d{name}: {d} from f32: the backward was not in bf16"
        );
    }
}

#[test]
fn precision_parses_and_names_what_it_expected() {
    assert_eq!("bf16".parse::<Precision>().unwrap(), Precision::Bf16);
    assert_eq!("f32".parse::<Precision>().unwrap(), Precision::F32);
    assert_eq!("tf32".parse::<Precision>().unwrap(), Precision::Tf32);
    let e = "fp16".parse::<Precision>().unwrap_err().to_string();
    assert!(
        e.contains("precision") && e.contains("\"bf16\" or \"tf32\"") && e.contains("fp16"),
        "{e}"
    );
    assert_eq!(fukai::precision(), Precision::F32);
    {
        let _outer = autocast(Precision::Bf16);
        {
            let _inner = autocast(Precision::F32);
            assert_eq!(fukai::precision(), Precision::F32);
        }
        assert_eq!(fukai::precision(), Precision::Bf16);
    }
    assert_eq!(fukai::precision(), Precision::F32);
}

/// Trains a 16-64-64-4 MLP for 15 epochs on 800 noisy samples of 4 classes through the
/// trainer at `precision`; returns the epochs' training losses and the validation accuracy.
fn train_small(precision: Precision) -> (Vec<f64>, f64) {
    use fukai::data::{DataLoader, InMemory};
    use fukai::models::{Mlp, MlpConfig};
    use fukai::train::{TrainConfig, Trainer};
    use std::sync::Arc;
    let mut gen = Generator::new(8);
    let (n, d) = (800, 16);
    let noise = gen.normal_f64(n * d);
    let y: Vec<i64> = (0..n).map(|i| (i % 4) as i64).collect();
    // Class c raises features c, c+4, c+8, c+12 by 1.5 over unit noise.
    let x: Vec<f32> = (0..n * d)
        .map(|i| noise[i] as f32 + if (i % d) % 4 == (i / d) % 4 { 1.5 } else { 0.0 })
        .collect();
    let data = InMemory::new(x, y.clone(), &[d], 4).unwrap();
    let (tr, va) = fukai::data::stratified_split(&y, 0.25, 0).unwrap();
    let train = DataLoader::new(Arc::new(data.subset(tr).unwrap()), 32).shuffle(0);
    let val = DataLoader::new(Arc::new(data.subset(va).unwrap()), 200);
    manual_seed(0);
    let model = Mlp::new(MlpConfig::new(&[d], &[64, 64], 4)).unwrap();
    let mut cfg = TrainConfig::new(15, 32, 3e-3);
    cfg.precision = precision;
    let report = Trainer::new(model, cfg)
        .unwrap()
        .fit(&train, Some(&val))
        .unwrap();
    let losses = report.history.iter().map(|e| e.train_loss).collect();
    (losses, report.val.and_then(|v| v.accuracy()).unwrap())
}

#[test]
fn a_small_model_learns_in_bf16() {
    let _rng = default_rng();
    let (losses, accuracy) = train_small(Precision::Bf16);
    let (f32_losses, f32_accuracy) = train_small(Precision::F32);
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < 0.5 * first, "bf16 training loss {first} -> {last}");
    // Chance is 0.25; the classes overlap a little, f32 reaches about the same.
    assert!(accuracy > 0.8, "bf16 validation accuracy {accuracy}");
    assert!(
        (accuracy - f32_accuracy).abs() < 0.05,
        "bf16 {accuracy} vs f32 {f32_accuracy}"
    );
    // It did train in bf16: the losses are not f32's.
    assert_ne!(losses, f32_losses);
}
