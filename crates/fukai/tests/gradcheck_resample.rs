//! Interpolation and ConvLSTM: finite-difference gradient checks (f64), known values, bitwise
//! determinism across thread counts, and argument errors.

use fukai::nn::{ConvLstm2d, Module, Upsample};
use fukai::testing::with_threads;
use fukai::testing::{gradcheck, max_abs_diff, output_and_grads, randn64};
use fukai::{DType, Generator, Interpolation, Result, Tensor};

const NEAREST: Interpolation = Interpolation::Nearest;
const LINEAR: Interpolation = Interpolation::Linear {
    align_corners: false,
};
const CORNERS: Interpolation = Interpolation::Linear {
    align_corners: true,
};

fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    gradcheck(f, inputs, 1e-6, 1e-6).unwrap();
}

#[test]
fn interpolate_gradients() {
    // (input shape, output size): up, down, mixed and unchanged axes in 1-D, 2-D and 3-D.
    let cases: [(&[usize], &[usize]); 8] = [
        (&[2, 3, 5], &[9]),
        (&[2, 2, 7], &[3]),
        (&[1, 2, 4, 5], &[7, 10]),
        (&[2, 1, 6, 5], &[4, 3]),
        (&[1, 3, 5, 4], &[2, 9]),
        (&[1, 2, 3, 4], &[3, 1]),
        (&[1, 2, 3, 4, 3], &[5, 3, 6]),
        (&[1, 1, 4, 3, 5], &[2, 5, 2]),
    ];
    for (i, (shape, size)) in cases.into_iter().enumerate() {
        for mode in [NEAREST, LINEAR, CORNERS] {
            let x = randn64(shape, 10 + i as u64).unwrap();
            check(|t| t[0].interpolate(size, mode), &[x]);
        }
    }
}

#[test]
fn upsample_gradients_and_layer() {
    let x = || randn64(&[2, 2, 3, 4], 30).unwrap();
    for mode in [NEAREST, LINEAR, CORNERS] {
        check(|t| t[0].upsample(&[2, 3], mode), &[x()]);
        let layer = Upsample::new(&[3, 2], mode);
        check(|t| layer.forward(&t[0]), &[x()]);
        let layer = Upsample::to_size(&[5, 5], mode);
        check(|t| layer.forward(&t[0]), &[x()]);
    }
    // A strided (transposed) input.
    check(
        |t| t[0].transpose(2, 3)?.interpolate(&[5, 2], LINEAR),
        &[x()],
    );
}

fn close(t: &Tensor, want: &[f64]) {
    let got = t.to_vec_f64().unwrap();
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

#[test]
fn interpolate_known_values() {
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 4.0], &[1, 1, 3]).unwrap();
    // floor(dst * 3 / 5) = 0 0 1 1 2.
    close(
        &x.interpolate(&[5], NEAREST).unwrap(),
        &[1., 1., 2., 2., 4.],
    );
    // floor(dst * 3 / 2) = 0 1.
    close(&x.interpolate(&[2], NEAREST).unwrap(), &[1., 2.]);
    // Half-pixel centres: src = (dst + 0.5) * 3/6 - 0.5, clamped at 0 and at the last input.
    close(
        &x.interpolate(&[6], LINEAR).unwrap(),
        &[1., 1.25, 1.75, 2.5, 3.5, 4.],
    );
    // Corners aligned: src = dst * 2/4.
    close(
        &x.interpolate(&[5], CORNERS).unwrap(),
        &[1., 1.5, 2., 3., 4.],
    );
    // One output with aligned corners reads the first input.
    close(&x.interpolate(&[1], CORNERS).unwrap(), &[1.]);
    // The same size is the identity in every mode.
    for mode in [NEAREST, LINEAR, CORNERS] {
        close(&x.interpolate(&[3], mode).unwrap(), &[1., 2., 4.]);
    }
    // Bilinear is linear along each axis: x[h, w] = 10h + w is reproduced exactly.
    let plane: Vec<f64> = (0..3)
        .flat_map(|h| (0..4).map(move |w| 10.0 * h as f64 + w as f64))
        .collect();
    let y = Tensor::from_vec(plane, &[1, 1, 3, 4])
        .unwrap()
        .interpolate(&[5, 7], CORNERS)
        .unwrap();
    let want: Vec<f64> = (0..5)
        .flat_map(|h| (0..7).map(move |w| 10.0 * h as f64 * 0.5 + w as f64 * 0.5))
        .collect();
    close(&y, &want);
}

#[test]
fn nearest_gradient_counts_copies() {
    // Upsampling by 3 copies each input 3 times per axis: its gradient sums 9 ones.
    let x = randn64(&[1, 2, 2, 3], 40).unwrap().with_grad().unwrap();
    x.upsample(&[3, 3], NEAREST)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(x.grad().unwrap().to_vec::<f64>().unwrap() == vec![9.0; 12]);
}

/// Both states of an LSTM update as one tensor, so one check covers both.
fn both(r: Result<(Tensor, Tensor)>) -> Result<Tensor> {
    let (h, c) = r?;
    Tensor::cat(&[h, c], 1)
}

#[test]
fn lstm_cell_gradients() {
    // Spatial gates (ConvLSTM), plain [B, 4H] gates (LSTM), and a transposed gate tensor.
    check(
        |t| both(t[0].lstm_cell(&t[1])),
        &[
            randn64(&[2, 12, 3, 4], 70).unwrap(),
            randn64(&[2, 3, 3, 4], 71).unwrap(),
        ],
    );
    check(
        |t| both(t[0].lstm_cell(&t[1])),
        &[randn64(&[3, 8], 72).unwrap(), randn64(&[3, 2], 73).unwrap()],
    );
    check(
        |t| both(t[0].transpose(2, 3)?.lstm_cell(&t[1])),
        &[
            randn64(&[1, 8, 5, 3], 74).unwrap(),
            randn64(&[1, 2, 3, 5], 75).unwrap(),
        ],
    );
}

#[test]
fn fused_lstm_cell_equals_the_composite() {
    // Sizes below and above the parallel threshold and the task size, with the pre-activations
    // spread wide enough to saturate the sigmoids.
    for (k, shape) in [[2, 4, 3, 5], [8, 64, 16, 16], [3, 20, 70, 50]]
        .into_iter()
        .enumerate()
    {
        let hid = [shape[0], shape[1] / 4, shape[2], shape[3]];
        let inputs = [
            randn64(&shape, 80 + k as u64)
                .unwrap()
                .mul_scalar(4.0)
                .unwrap(),
            randn64(&hid, 90 + k as u64)
                .unwrap()
                .mul_scalar(2.0)
                .unwrap(),
        ];
        let fused = |t: &[Tensor]| both(t[0].lstm_cell(&t[1]));
        let composite = |t: &[Tensor]| both(t[0].lstm_cell_composite(&t[1]));
        // f64: the fused kernel's exp and tanh are libm's, so only the operation order differs.
        // f32: its vectorized exp and tanh are within a few ulps of libm's.
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-6)] {
            let inputs: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(dtype).unwrap()).collect();
            let (y1, g1) = output_and_grads(&fused, &inputs).unwrap();
            let (y2, g2) = output_and_grads(&composite, &inputs).unwrap();
            assert!(max_abs_diff(&y1, &y2).unwrap() < tol, "{shape:?} {dtype}");
            for (a, b) in g1.iter().zip(&g2) {
                let err = max_abs_diff(a, b).unwrap();
                assert!(err < 4.0 * tol, "{shape:?} {dtype}: gradient off by {err}");
            }
        }
    }
}

/// A layer whose convolution weight and bias are the given tensors (f64 for gradchecks).
fn layer_with(inputs: usize, hidden: usize, k: usize, w: &Tensor, b: &Tensor) -> ConvLstm2d {
    let mut layer = ConvLstm2d::new(inputs, hidden, k).unwrap();
    layer.conv.weight = w.clone();
    layer.conv.bias = Some(b.clone());
    layer
}

#[test]
fn conv_lstm_step_gradients() {
    let (c_in, hid, k) = (2, 3, 3);
    let inputs = [
        randn64(&[2, c_in, 4, 5], 50).unwrap(),
        randn64(&[2, hid, 4, 5], 51).unwrap(),
        randn64(&[2, hid, 4, 5], 52).unwrap(),
        randn64(&[4 * hid, c_in + hid, k, k], 53)
            .unwrap()
            .mul_scalar(0.3)
            .unwrap(),
        randn64(&[4 * hid], 54).unwrap(),
    ];
    // h' and c' both carry gradients: check a weighted sum of the two.
    check(
        |t| {
            let layer = layer_with(c_in, hid, k, &t[3], &t[4]);
            let (h, c) = layer.cell(&t[0], Some((&t[1], &t[2])))?;
            Tensor::cat(&[h, c], 1)
        },
        &inputs,
    );
}

#[test]
fn conv_lstm_sequence_gradients() {
    let (c_in, hid, k) = (2, 2, 3);
    let inputs = [
        randn64(&[2, 3, c_in, 3, 4], 60).unwrap(),
        randn64(&[2, hid, 3, 4], 61).unwrap(),
        randn64(&[2, hid, 3, 4], 62).unwrap(),
        randn64(&[4 * hid, c_in + hid, k, k], 63)
            .unwrap()
            .mul_scalar(0.3)
            .unwrap(),
        randn64(&[4 * hid], 64).unwrap(),
    ];
    check(
        |t| {
            let layer = layer_with(c_in, hid, k, &t[3], &t[4]);
            let (out, (h, c)) = layer.forward_seq(&t[0], Some((&t[1], &t[2])))?;
            Tensor::cat(&[out.flatten_all()?, h.flatten_all()?, c.flatten_all()?], 0)
        },
        &inputs,
    );
    // From a zero state, through Module::forward, with a 1x1 kernel.
    check(
        |t| layer_with(c_in, hid, 1, &t[1], &t[2]).forward(&t[0]),
        &[
            randn64(&[1, 3, c_in, 2, 3], 65).unwrap(),
            randn64(&[4 * hid, c_in + hid, 1, 1], 66).unwrap(),
            randn64(&[4 * hid], 67).unwrap(),
        ],
    );
}

#[test]
fn conv_lstm_matches_its_equations() {
    // A 1x1 kernel with one input and one hidden channel makes each pixel a scalar LSTM.
    let layer = ConvLstm2d::new(1, 1, 1).unwrap();
    let w = [0.5, -0.3, 0.8, 0.1, -0.7, 0.4, 0.2, 0.9];
    let b = [0.1, 0.2, -0.1, 0.3];
    layer
        .conv
        .weight
        .copy_from(&Tensor::from_vec(w.map(|v| v as f32).to_vec(), &[4, 2, 1, 1]).unwrap())
        .unwrap();
    let bias = layer.conv.bias.as_ref().unwrap();
    bias.copy_from(&Tensor::from_vec(b.map(|v| v as f32).to_vec(), &[4]).unwrap())
        .unwrap();
    let (x, h, c) = (0.7f64, -0.4f64, 0.25f64);
    let t = |v: f64| Tensor::from_vec(vec![v as f32], &[1, 1, 1, 1]).unwrap();
    let (h1, c1) = layer.cell(&t(x), Some((&t(h), &t(c)))).unwrap();
    let pre = |g: usize| w[2 * g] * x + w[2 * g + 1] * h + b[g];
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let want_c = sig(pre(1)) * c + sig(pre(0)) * pre(2).tanh();
    let want_h = sig(pre(3)) * want_c.tanh();
    assert!((c1.item().unwrap() - want_c).abs() < 1e-6);
    assert!((h1.item().unwrap() - want_h).abs() < 1e-6);
    let names: Vec<String> = layer
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["conv.weight", "conv.bias"]);
}

/// Seeded f32 normals from their own generator: tests run in parallel, so the default
/// generator's draws would depend on which test took them first.
fn randn32(shape: &[usize], seed: u64) -> Tensor {
    Tensor::normal_with(shape, 0.0, 1.0, DType::F32, &mut Generator::new(seed)).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// Output and input gradient of resizing `shape` to `size`, as bits.
fn resize_bits(shape: &[usize], size: &[usize], mode: Interpolation) -> (Vec<u32>, Vec<u32>) {
    let x = randn32(shape, 1).with_grad().unwrap();
    let y = x.interpolate(size, mode).unwrap();
    let w = randn32(y.shape(), 2);
    y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
    (bits(&y), bits(&x.grad().unwrap()))
}

#[test]
fn interpolation_is_identical_across_thread_counts() {
    // Large enough that every pass splits its planes over several tasks.
    let cases: [(&[usize], &[usize]); 3] = [
        (&[4, 8, 32, 32], &[64, 64]),
        (&[2, 4, 8, 16, 16], &[16, 32, 24]),
        (&[8, 16, 1000], &[1500]),
    ];
    for (shape, size) in cases {
        for mode in [NEAREST, LINEAR, CORNERS] {
            let run = |n| with_threads(n, || resize_bits(shape, size, mode));
            assert!(run(1) == run(2), "{shape:?} -> {size:?} {mode:?}");
        }
    }
}

#[test]
fn conv_lstm_is_identical_across_thread_counts() {
    let run = |n| {
        with_threads(n, || {
            let layer = ConvLstm2d::new(4, 16, 3).unwrap();
            let w = randn32(layer.conv.weight.shape(), 3)
                .mul_scalar(0.1)
                .unwrap();
            layer.conv.weight.copy_from(&w).unwrap();
            let bias = layer.conv.bias.as_ref().unwrap();
            bias.copy_from(&randn32(bias.shape(), 5)).unwrap();
            // 4·16·48·48 state elements: above the size where the gate kernel splits across threads.
            let x = randn32(&[4, 3, 4, 48, 48], 4);
            let (out, (_, c)) = layer.forward_seq(&x, None).unwrap();
            out.sum_all()
                .unwrap()
                .add(&c.sum_all().unwrap())
                .unwrap()
                .backward()
                .unwrap();
            (bits(&out), bits(&layer.conv.weight.grad().unwrap()))
        })
    };
    assert!(run(1) == run(2));
}

fn err_text<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn interpolation_errors() {
    let x = Tensor::zeros(&[1, 2, 3, 4], DType::F32).unwrap();
    let bad_rank = err_text(x.interpolate(&[5], NEAREST));
    assert!(
        bad_rank.contains("interpolate") && bad_rank.contains("rank 3"),
        "{bad_rank}"
    );
    assert!(err_text(x.interpolate(&[], NEAREST)).contains("1, 2 or 3"));
    assert!(err_text(x.interpolate(&[1, 2, 3, 4], LINEAR)).contains("1, 2 or 3"));
    assert!(err_text(x.interpolate(&[0, 4], LINEAR)).contains("non-zero"));
    let empty = Tensor::zeros(&[1, 2, 0, 4], DType::F32).unwrap();
    assert!(err_text(empty.interpolate(&[3, 4], LINEAR)).contains("non-zero"));
    assert!(err_text(x.interpolate(&[usize::MAX, 2], NEAREST)).contains("overflows"));
    let up = err_text(x.upsample(&[2], NEAREST));
    assert!(
        up.contains("upsample") && up.contains("[1, 2, 3, 4]"),
        "{up}"
    );
    assert!(err_text(x.upsample(&[2, 0], NEAREST)).contains("positive"));
    assert!(err_text(x.upsample(&[usize::MAX, 2], NEAREST)).contains("overflows"));
    let ints = Tensor::from_vec(vec![1i64, 2], &[1, 1, 2]).unwrap();
    assert!(err_text(ints.interpolate(&[4], NEAREST)).contains("f32 or f64"));
    // Zero planes are fine: an empty batch resizes to an empty batch.
    let none = Tensor::zeros(&[0, 2, 3], DType::F32).unwrap();
    assert_eq!(none.interpolate(&[5], LINEAR).unwrap().shape(), &[0, 2, 5]);
}

#[test]
fn conv_lstm_errors() {
    assert!(err_text(ConvLstm2d::new(3, 4, 2)).contains("odd kernel"));
    assert!(err_text(ConvLstm2d::new(0, 4, 3)).contains("positive"));
    assert!(err_text(ConvLstm2d::new(3, usize::MAX / 2, 3)).contains("overflow"));
    let layer = ConvLstm2d::new(3, 4, 3).unwrap();
    let x = Tensor::zeros(&[2, 5, 6, 6], DType::F32).unwrap();
    let wrong = err_text(layer.cell(&x, None));
    assert!(
        wrong.contains("[B, 3, H, W]") && wrong.contains("[2, 5, 6, 6]"),
        "{wrong}"
    );
    let x = Tensor::zeros(&[2, 3, 6, 6], DType::F32).unwrap();
    let h = Tensor::zeros(&[2, 4, 6, 5], DType::F32).unwrap();
    let state = err_text(layer.cell(&x, Some((&h, &h))));
    assert!(
        state.contains("[2, 4, 6, 6]") && state.contains("[2, 4, 6, 5]"),
        "{state}"
    );
    assert!(err_text(layer.forward_seq(&x, None)).contains("[B, T, 3, H, W]"));
    let empty = Tensor::zeros(&[2, 0, 3, 6, 6], DType::F32).unwrap();
    assert!(err_text(layer.forward(&empty)).contains("T > 0"));
    let gates = Tensor::zeros(&[2, 7, 3], DType::F32).unwrap();
    let c = Tensor::zeros(&[2, 2, 3], DType::F32).unwrap();
    let bad = err_text(gates.lstm_cell(&c));
    assert!(
        bad.contains("lstm_cell") && bad.contains("[2, 7, 3]"),
        "{bad}"
    );
}
