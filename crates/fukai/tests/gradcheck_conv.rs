//! Convolution, pooling and dropout: finite-difference gradient checks (f64), known values,
//! bitwise determinism across thread counts, and argument errors.

use fukai::nn::{AvgPool2d, Module};
use fukai::testing::{gradcheck, randn64};
use fukai::{DType, Generator, Result, Tensor};

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-6;

fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    gradcheck(f, inputs, EPS, TOL).unwrap();
}

fn close(t: &Tensor, want: &[f64]) {
    let got = t.to_vec_f64().unwrap();
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

/// Each case: input shape, weight shape, bias, stride, padding, dilation, groups.
type Case = (
    [usize; 4],
    [usize; 4],
    bool,
    [usize; 2],
    [usize; 2],
    [usize; 2],
    usize,
);

#[test]
fn conv2d_gradients() {
    let cases: [Case; 8] = [
        ([2, 3, 5, 6], [4, 3, 3, 3], true, [1, 1], [1, 1], [1, 1], 1),
        // Unit strides with output width = input width take im2col's whole-span copy.
        ([1, 2, 6, 7], [2, 2, 3, 3], false, [1, 1], [2, 2], [2, 2], 1),
        ([2, 2, 5, 4], [3, 2, 3, 3], true, [1, 1], [0, 1], [1, 1], 1),
        ([2, 3, 7, 6], [2, 3, 3, 2], false, [2, 2], [1, 0], [1, 1], 1),
        ([1, 2, 7, 7], [3, 2, 3, 3], true, [1, 2], [2, 1], [2, 2], 1),
        ([2, 4, 5, 5], [6, 2, 2, 3], true, [2, 1], [0, 1], [1, 2], 2),
        ([2, 4, 4, 3], [4, 1, 3, 3], false, [1, 1], [1, 1], [1, 1], 4),
        // 1x1 stride-1 kernels skip im2col.
        ([3, 4, 3, 4], [6, 2, 1, 1], true, [1, 1], [0, 0], [1, 1], 2),
    ];
    for (i, (xs, ws, bias, s, p, d, g)) in cases.into_iter().enumerate() {
        let seed = 10 * i as u64;
        let mut inputs = vec![randn64(&xs, seed).unwrap(), randn64(&ws, seed + 1).unwrap()];
        if bias {
            inputs.push(randn64(&[ws[0]], seed + 2).unwrap());
        }
        check(|t| t[0].conv2d(&t[1], t.get(2), s, p, d, g), &inputs);
    }
}

#[test]
fn conv2d_unbatched_and_strided_input() {
    check(
        |t| t[0].conv2d(&t[1], Some(&t[2]), [1, 1], [1, 1], [1, 1], 1),
        &[
            randn64(&[2, 4, 4], 60).unwrap(),
            randn64(&[3, 2, 2, 2], 61).unwrap(),
            randn64(&[3], 62).unwrap(),
        ],
    );
    // A transposed (non-contiguous) input and weight.
    check(
        |t| {
            t[0].transpose(2, 3)?
                .conv2d(&t[1].transpose(2, 3)?, None, [1, 2], [0, 1], [1, 1], 1)
        },
        &[
            randn64(&[2, 2, 5, 4], 63).unwrap(),
            randn64(&[3, 2, 2, 3], 64).unwrap(),
        ],
    );
}

#[test]
fn conv1d_gradients() {
    check(
        |t| t[0].conv1d(&t[1], Some(&t[2]), 2, 2, 2, 2),
        &[
            randn64(&[2, 4, 9], 70).unwrap(),
            randn64(&[6, 2, 3], 71).unwrap(),
            randn64(&[6], 72).unwrap(),
        ],
    );
    check(
        |t| t[0].conv1d(&t[1], None, 1, 0, 1, 1),
        &[
            randn64(&[3, 7], 73).unwrap(),
            randn64(&[2, 3, 4], 74).unwrap(),
        ],
    );
}

#[test]
fn pool_gradients() {
    let x = || randn64(&[2, 3, 7, 6], 80).unwrap();
    check(|t| t[0].max_pool2d([3, 2], [2, 1], [1, 1]), &[x()]);
    check(|t| t[0].max_pool2d([2, 2], [2, 2], [0, 0]), &[x()]);
    // The 2x2 path with an odd width (and, above, an odd height) left uncovered.
    check(
        |t| t[0].max_pool2d([2, 2], [2, 2], [0, 0]),
        &[randn64(&[2, 3, 6, 7], 84).unwrap()],
    );
    check(|t| t[0].avg_pool2d([3, 3], [2, 2], [1, 1], true), &[x()]);
    check(|t| t[0].avg_pool2d([3, 2], [1, 3], [1, 1], false), &[x()]);
    check(|t| t[0].adaptive_avg_pool2d([3, 4]), &[x()]);
    // The module, with padding counted (PyTorch's default) and not.
    for include in [true, false] {
        let m = AvgPool2d {
            kernel: [3, 2],
            stride: [2, 1],
            padding: [1, 1],
            ..AvgPool2d::new(1)
        }
        .count_include_pad(include);
        check(|t| m.forward(&t[0]), &[x()]);
    }
    check(|t| t[0].adaptive_avg_pool2d([9, 5]), &[x()]);
    let x1 = || randn64(&[2, 3, 10], 81).unwrap();
    check(|t| t[0].max_pool1d(3, 2, 1), &[x1()]);
    check(|t| t[0].avg_pool1d(4, 3, 2, true), &[x1()]);
    check(|t| t[0].avg_pool1d(4, 3, 2, false), &[x1()]);
    // Unbatched inputs.
    check(
        |t| t[0].max_pool2d([2, 3], [1, 2], [1, 1]),
        &[randn64(&[3, 5, 5], 82).unwrap()],
    );
    check(
        |t| t[0].avg_pool1d(2, 1, 1, false),
        &[randn64(&[3, 5], 83).unwrap()],
    );
}

#[test]
fn dropout_gradient_is_scaled_mask() {
    let p = 0.3;
    // The same seed gives the same mask every call, so finite differences see a fixed function.
    check(
        |t| t[0].dropout_with(p, &mut Generator::new(5)),
        &[randn64(&[4, 7], 90).unwrap()],
    );
    let x = randn64(&[1000], 91).unwrap().with_grad().unwrap();
    let y = x.dropout_with(p, &mut Generator::new(6)).unwrap();
    y.sum_all().unwrap().backward().unwrap();
    let (g, xv, yv) = (
        x.grad().unwrap().to_vec::<f64>().unwrap(),
        x.to_vec::<f64>().unwrap(),
        y.to_vec::<f64>().unwrap(),
    );
    let scale = 1.0 / (1.0 - p);
    let mut kept = 0;
    for i in 0..g.len() {
        assert!(g[i] == 0.0 || g[i] == scale, "grad {}", g[i]);
        assert_eq!(yv[i], xv[i] * g[i]);
        kept += usize::from(g[i] != 0.0);
    }
    assert!((600..800).contains(&kept), "kept {kept} of 1000 at p = {p}");
}

#[test]
fn dropout_identity_and_generator() {
    let x = randn64(&[3, 4], 92).unwrap();
    assert!(x.dropout(0.5, false).unwrap().shares_storage(&x));
    assert!(x.dropout(0.0, true).unwrap().shares_storage(&x));
    let mut g = Generator::new(1);
    let a = x
        .dropout_with(0.5, &mut g)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    let b = x
        .dropout_with(0.5, &mut g)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    assert_ne!(a, b, "the generator advances between calls");
    // 12 elements take 3 blocks.
    assert_eq!(g.state(), (1, 6));
    // The only use of the default generator in this test binary, so no other test races it.
    fukai::manual_seed(3);
    let c = x.dropout(0.5, true).unwrap().to_vec::<f64>().unwrap();
    let d = x
        .dropout_with(0.5, &mut Generator::new(3))
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    assert_eq!(c, d, "dropout draws from the default generator");
}

#[test]
fn conv_known_values() {
    // All-ones 3x3 image and 2x2 kernel, padding 1: each output counts the overlapping pixels.
    let x = Tensor::ones(&[1, 1, 3, 3], DType::F64).unwrap();
    let w = Tensor::ones(&[1, 1, 2, 2], DType::F64).unwrap();
    let b = Tensor::from_vec(vec![0.5f64], &[1]).unwrap();
    let y = x.conv2d(&w, Some(&b), [1, 1], [1, 1], [1, 1], 1).unwrap();
    assert_eq!(y.shape(), &[1, 1, 4, 4]);
    close(
        &y,
        &[
            1.5, 2.5, 2.5, 1.5, 2.5, 4.5, 4.5, 2.5, 2.5, 4.5, 4.5, 2.5, 1.5, 2.5, 2.5, 1.5,
        ],
    );
    // Cross-correlation (no kernel flip), stride 2, dilation 2 on a 1-D ramp.
    let x = Tensor::arange(0.0, 8.0, 1.0, DType::F64)
        .unwrap()
        .reshape(&[1, 1, 8])
        .unwrap();
    let w = Tensor::from_vec(vec![1.0f64, 10.0], &[1, 1, 2]).unwrap();
    let y = x.conv1d(&w, None, 2, 0, 2, 1).unwrap();
    // out[i] = x[2i] + 10 x[2i+2]
    close(&y, &[20.0, 42.0, 64.0]);
    // Groups: each output channel sees only its own input channel.
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[1, 2, 1, 2]).unwrap();
    let w = Tensor::from_vec(vec![1.0f64, 1.0, 2.0, -1.0], &[2, 1, 1, 2]).unwrap();
    close(
        &x.conv2d(&w, None, [1, 1], [0, 0], [1, 1], 2).unwrap(),
        &[3.0, 2.0],
    );
}

#[test]
fn pool_known_values() {
    let x = Tensor::arange(1.0, 17.0, 1.0, DType::F64)
        .unwrap()
        .reshape(&[1, 1, 4, 4])
        .unwrap();
    close(
        &x.max_pool2d([2, 2], [2, 2], [0, 0]).unwrap(),
        &[6.0, 8.0, 14.0, 16.0],
    );
    // Padding is -inf for max: the corner window sees only x[0, 0].
    let m = x.max_pool2d([2, 2], [2, 2], [1, 1]).unwrap();
    close(&m, &[1.0, 3.0, 4.0, 9.0, 11.0, 12.0, 13.0, 15.0, 16.0]);
    // Padding counts as zeros in the divisor only with count_include_pad.
    let a = x.avg_pool2d([2, 2], [2, 2], [1, 1], true).unwrap();
    close(&a.narrow(2, 0, 1).unwrap(), &[0.25, 1.25, 1.0]);
    let a = x.avg_pool2d([2, 2], [2, 2], [1, 1], false).unwrap();
    close(&a.narrow(2, 0, 1).unwrap(), &[1.0, 2.5, 4.0]);
    // Adaptive 4 -> 3: windows 0..2, 1..3, 2..4 along each axis.
    let ad = x.adaptive_avg_pool2d([3, 1]).unwrap();
    close(&ad, &[4.5, 8.5, 12.5]);
    let x1 = Tensor::from_vec(vec![3.0f64, -1.0, 4.0, 1.0, -5.0], &[1, 5]).unwrap();
    close(&x1.max_pool1d(2, 2, 1).unwrap(), &[3.0, 4.0, 1.0]);
    close(
        &x1.avg_pool1d(3, 1, 0, true).unwrap(),
        &[2.0, 4.0 / 3.0, 0.0],
    );
}

/// Runs `f` on a rayon pool of `n` threads.
fn on_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
        .install(f)
}

/// Output and every input gradient of `f`, as f32 bit patterns.
fn run_bits(f: &(dyn Fn(&[Tensor]) -> Result<Tensor> + Sync), inputs: &[Tensor]) -> Vec<Vec<u32>> {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.detach().with_grad().unwrap())
        .collect();
    let y = f(&leaves).unwrap();
    let gy = Tensor::normal_with(y.shape(), 0.0, 1.0, DType::F32, &mut Generator::new(77)).unwrap();
    y.backward_with(&gy).unwrap();
    let bits = |t: &Tensor| -> Vec<u32> {
        t.to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f32::to_bits)
            .collect()
    };
    let mut out = vec![bits(&y)];
    out.extend(leaves.iter().map(|l| bits(&l.grad().unwrap())));
    out
}

#[test]
fn results_are_bitwise_identical_at_any_thread_count() {
    let r = |shape: &[usize], seed: u64| {
        Tensor::normal_with(shape, 0.0, 1.0, DType::F32, &mut Generator::new(seed)).unwrap()
    };
    type Op = Box<dyn Fn(&[Tensor]) -> Result<Tensor> + Sync>;
    let cases: Vec<(Op, Vec<Tensor>)> = vec![
        (
            Box::new(|t| t[0].conv2d(&t[1], Some(&t[2]), [1, 1], [1, 1], [1, 1], 1)),
            vec![r(&[20, 16, 12, 12], 1), r(&[32, 16, 3, 3], 2), r(&[32], 3)],
        ),
        // One sample: the threads go into gemm instead of across the batch.
        (
            Box::new(|t| t[0].conv2d(&t[1], None, [2, 1], [1, 2], [1, 2], 2)),
            vec![r(&[1, 32, 40, 40], 4), r(&[64, 16, 3, 3], 5)],
        ),
        (
            Box::new(|t| t[0].conv2d(&t[1], Some(&t[2]), [1, 1], [0, 0], [1, 1], 1)),
            vec![r(&[9, 24, 10, 10], 6), r(&[48, 24, 1, 1], 7), r(&[48], 8)],
        ),
        (
            Box::new(|t| t[0].max_pool2d([3, 3], [2, 2], [1, 1])),
            vec![r(&[8, 16, 30, 30], 9)],
        ),
        // The 2x2 path, with odd sides and rows long enough to be padded to whole vectors.
        (
            Box::new(|t| t[0].max_pool2d([2, 2], [2, 2], [0, 0])),
            vec![r(&[8, 16, 29, 35], 12)],
        ),
        (
            Box::new(|t| t[0].avg_pool2d([3, 3], [1, 1], [1, 1], false)),
            vec![r(&[8, 16, 30, 30], 10)],
        ),
        (
            Box::new(|t| t[0].adaptive_avg_pool2d([7, 7])),
            vec![r(&[8, 16, 30, 30], 11)],
        ),
        (
            Box::new(|t| t[0].dropout_with(0.4, &mut Generator::new(12))),
            vec![r(&[100_003], 13)],
        ),
    ];
    for (i, (f, inputs)) in cases.iter().enumerate() {
        let one = on_threads(1, || run_bits(f.as_ref(), inputs));
        let two = on_threads(2, || run_bits(f.as_ref(), inputs));
        let four = on_threads(4, || run_bits(f.as_ref(), inputs));
        assert!(
            one == two && one == four,
            "case {i} differs across thread counts"
        );
    }
}

fn err(r: Result<Tensor>) -> String {
    match r {
        Ok(t) => panic!("expected an error, got {t:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn conv_argument_errors() {
    let x = Tensor::zeros(&[2, 4, 5, 5], DType::F32).unwrap();
    let w = Tensor::zeros(&[6, 4, 3, 3], DType::F32).unwrap();
    let c =
        |x: &Tensor, w: &Tensor, b: Option<&Tensor>, s, p, d, g| err(x.conv2d(w, b, s, p, d, g));
    let one = [1, 1];
    let zero = [0, 0];
    let e = c(&x.flatten(0, 2).unwrap(), &w, None, one, zero, one, 1);
    assert!(e.starts_with("conv2d") && e.contains("[40, 5]"), "{e}");
    let e = c(&x, &w, None, [0, 1], zero, one, 1);
    assert!(e.contains("stride"), "{e}");
    let e = c(&x, &w, None, one, zero, [1, 0], 1);
    assert!(e.contains("dilation"), "{e}");
    let e = c(&x, &w, None, one, zero, one, 0);
    assert!(e.contains("groups"), "{e}");
    let e = c(&x, &w, None, one, zero, one, 3);
    assert!(e.contains("divisible by groups (3)"), "{e}");
    let e = c(
        &x,
        &Tensor::zeros(&[6, 3, 3, 3], DType::F32).unwrap(),
        None,
        one,
        zero,
        one,
        1,
    );
    assert!(
        e.contains("3 input channels per group") && e.contains("4 channels"),
        "{e}"
    );
    let e = c(
        &x,
        &Tensor::zeros(&[6, 4, 6, 3], DType::F32).unwrap(),
        None,
        one,
        zero,
        one,
        1,
    );
    assert!(e.contains("height") && e.contains("padded input"), "{e}");
    let e = c(&x, &w, None, one, [0, 0], [3, 1], 1);
    assert!(e.contains("dilation 3 spans 7"), "{e}");
    let e = c(
        &x,
        &Tensor::zeros(&[6, 4, 0, 3], DType::F32).unwrap(),
        None,
        one,
        zero,
        one,
        1,
    );
    assert!(e.contains("non-zero"), "{e}");
    let e = c(
        &x,
        &w,
        Some(&Tensor::zeros(&[5], DType::F32).unwrap()),
        one,
        zero,
        one,
        1,
    );
    assert!(
        e.contains("bias must have shape [6]") && e.contains("[5]"),
        "{e}"
    );
    let e = c(
        &x,
        &w.to_dtype(DType::F64).unwrap(),
        None,
        one,
        zero,
        one,
        1,
    );
    assert!(e.contains("dtype"), "{e}");
    let e = c(
        &x.to_dtype(DType::I64).unwrap(),
        &w,
        None,
        one,
        zero,
        one,
        1,
    );
    assert!(e.contains("f32 or f64"), "{e}");
    let e = c(&x, &w, None, one, [usize::MAX / 2 + 1, 0], one, 1);
    assert!(e.contains("padded input"), "{e}");
    let x1 = Tensor::zeros(&[2, 4, 5], DType::F32).unwrap();
    let w1 = Tensor::zeros(&[6, 4, 7], DType::F32).unwrap();
    let e = err(x1.conv1d(&w1, None, 1, 0, 1, 1));
    assert!(e.starts_with("conv1d") && e.contains("length"), "{e}");
    let e = err(x1.conv1d(&w, None, 1, 0, 1, 1));
    assert!(e.contains("[O, C/groups, k]"), "{e}");
    // An empty batch is fine.
    let y = Tensor::zeros(&[0, 4, 5, 5], DType::F32)
        .unwrap()
        .conv2d(&w, None, one, zero, one, 1)
        .unwrap();
    assert_eq!(y.shape(), &[0, 6, 3, 3]);
}

#[test]
fn pool_and_dropout_argument_errors() {
    let x = Tensor::zeros(&[2, 3, 5, 5], DType::F32).unwrap();
    let e = err(x.max_pool2d([0, 2], [1, 1], [0, 0]));
    assert!(e.starts_with("max_pool2d") && e.contains("kernel"), "{e}");
    let e = err(x.avg_pool2d([2, 2], [1, 0], [0, 0], true));
    assert!(e.contains("stride"), "{e}");
    let e = err(x.max_pool2d([3, 3], [1, 1], [2, 0]));
    assert!(e.contains("half the kernel"), "{e}");
    let e = err(x.max_pool2d([6, 2], [1, 1], [0, 0]));
    assert!(e.contains("larger than the padded input"), "{e}");
    let e = err(x.max_pool1d(2, 2, 0));
    assert!(
        e.starts_with("max_pool1d") && e.contains("[N, C, L]"),
        "{e}"
    );
    let e = err(x
        .flatten(0, 2)
        .unwrap()
        .avg_pool2d([1, 1], [1, 1], [0, 0], true));
    assert!(e.contains("[N, C, H, W]"), "{e}");
    let e = err(x.adaptive_avg_pool2d([0, 2]));
    assert!(e.starts_with("adaptive_avg_pool2d"), "{e}");
    let e = err(Tensor::zeros(&[2, 3, 0, 5], DType::F32)
        .unwrap()
        .adaptive_avg_pool2d([1, 1]));
    assert!(e.contains("non-zero"), "{e}");
    let e = err(x
        .to_dtype(DType::U8)
        .unwrap()
        .max_pool2d([2, 2], [2, 2], [0, 0]));
    assert!(e.contains("f32 or f64"), "{e}");
    for p in [1.0, -0.1, f64::NAN] {
        let e = err(x.dropout(p, true));
        assert!(e.starts_with("dropout") && e.contains("[0, 1)"), "{e}");
        assert!(x.dropout(p, false).is_err());
    }
}

/// The 2x2/stride-2 pool has its own loop; it must pick the same element as the general one
/// (the first maximum in scan order, a NaN over any number) for values and gradient routing.
#[test]
fn max_pool_2x2_fast_path_matches_scan_order() {
    let (h, w) = (6usize, 7usize);
    // Small integers: many ties. A few NaNs.
    let mut v: Vec<f32> = (0..2 * 3 * h * w)
        .map(|i| ((i * 7919) % 5) as f32)
        .collect();
    v[9] = f32::NAN;
    v[50] = f32::NAN;
    let x = Tensor::from_vec(v.clone(), &[2, 3, h, w])
        .unwrap()
        .with_grad()
        .unwrap();
    let y = x.max_pool2d([2, 2], [2, 2], [0, 0]).unwrap();
    let (oh, ow) = (h / 2, w / 2);
    let gy: Vec<f32> = (0..y.numel()).map(|i| i as f32 + 1.0).collect();
    y.backward_with(&Tensor::from_vec(gy.clone(), y.shape()).unwrap())
        .unwrap();
    let (yv, gx) = (
        y.to_vec::<f32>().unwrap(),
        x.grad().unwrap().to_vec::<f32>().unwrap(),
    );
    let mut want_g = vec![0.0f32; v.len()];
    for p in 0..6 {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best: Option<usize> = None;
                'scan: for dy in 0..2 {
                    for dx in 0..2 {
                        let i = p * h * w + (2 * oy + dy) * w + 2 * ox + dx;
                        match best {
                            None => best = Some(i),
                            Some(b) if v[i] > v[b] || v[i].is_nan() => best = Some(i),
                            _ => {}
                        }
                        if v[best.unwrap()].is_nan() {
                            break 'scan;
                        }
                    }
                }
                let (b, j) = (best.unwrap(), (p * oh + oy) * ow + ox);
                assert!(yv[j].to_bits() == v[b].to_bits(), "value at {j}");
                want_g[b] += gy[j];
            }
        }
    }
    assert_eq!(gx, want_g);
}
