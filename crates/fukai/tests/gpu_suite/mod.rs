//! The GPU op suite, shared by `tests/wgpu.rs` and `tests/cuda.rs`: every kernel against the
//! CPU (outputs and gradients within stated f32 tolerances), the same bits on a rerun, errors
//! (not panics) for what the device cannot do, and small models training as on the CPU. The
//! including file names the backend in a `backend` module beside this one.

use super::backend;
use fukai::nn::loss::{cross_entropy, cross_entropy_with, CrossEntropyOpts};
use fukai::optim::{Adam, Optimizer, RmsProp, Sgd};
use fukai::{DType, Device, Result, Tensor};

/// Held by every test that seeds and draws from the process-wide default generator (weight
/// init, dropout): tests run on parallel threads and would otherwise draw from it in turn.
static DEFAULT_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn gpu() -> Option<Device> {
    let found = fukai::devices().into_iter().find(|d| backend::is(d.device));
    match found {
        Some(d) => Some(d.device),
        None if std::env::var_os(backend::REQUIRE).is_some_and(|v| v != "0") => {
            panic!("{} is set but {}", backend::REQUIRE, backend::MISSING)
        }
        None => {
            eprintln!("skipped: {}", backend::MISSING);
            None
        }
    }
}

/// Deterministic test data in [-2, 2) (no RNG state shared with other tests).
fn data(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| {
            let h = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ seed.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let h = (h ^ (h >> 29)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((h >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

fn close(what: &str, gpu: &Tensor, cpu: &Tensor, tol: f32) {
    assert_eq!(gpu.shape(), cpu.shape(), "{what}: shape");
    assert!(backend::is(gpu.device()), "{what}: result left the device");
    let (g, c) = (gpu.to_vec_f64().unwrap(), cpu.to_vec_f64().unwrap());
    for (i, (a, b)) in g.iter().zip(&c).enumerate() {
        let ok =
            (a - b).abs() <= tol as f64 * (1.0 + b.abs()) || (a.is_nan() && b.is_nan()) || a == b;
        assert!(
            ok,
            "{what}: element {i}: {} {a} vs cpu {b} (tol {tol})",
            backend::NAME
        );
    }
}

/// Losses of `steps` optimizer steps on the loss `f` computes.
fn losses(opt: &mut Adam, steps: usize, f: impl Fn() -> Result<Tensor>) -> Vec<f64> {
    (0..steps)
        .map(|_| {
            opt.zero_grad();
            let loss = f().unwrap();
            loss.backward().unwrap();
            opt.step().unwrap();
            loss.item().unwrap()
        })
        .collect()
}

/// Runs `train` on the CPU and twice on `dev`: the device reruns must give the same losses bit
/// for bit, the device run must learn (its last loss below `learn` times its first), and every
/// step's loss must be within `tol` (relative) of the CPU's.
fn trains_like_the_cpu(dev: Device, learn: f64, tol: f64, train: impl Fn(Device) -> Vec<f64>) {
    let (cpu, gpu1, gpu2) = (train(Device::Cpu), train(dev), train(dev));
    assert_eq!(gpu1, gpu2, "a rerun on the device gave different losses");
    let last = *gpu1.last().expect("at least one step");
    assert!(
        last < learn * gpu1[0],
        "the device run did not learn: {gpu1:?}"
    );
    for (i, (a, b)) in gpu1.iter().zip(&cpu).enumerate() {
        assert!(
            (a - b).abs() < tol * (1.0 + b.abs()),
            "step {i}: {} loss {a} vs cpu {b}",
            backend::NAME
        );
    }
}

/// Runs `f` on CPU and on the GPU with the same inputs (gradients on), compares the output and
/// every input's gradient, and checks a second GPU run gives the same bits.
fn crosscheck(
    what: &str,
    dev: Device,
    inputs: &[Tensor],
    tol: f32,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let run = |device: Device| -> (Tensor, Vec<Option<Tensor>>) {
        let xs: Vec<Tensor> = inputs
            .iter()
            .map(|t| {
                let t = t.detach().to(device).unwrap().detach();
                if t.dtype() == DType::F32 {
                    t.with_grad().unwrap()
                } else {
                    t
                }
            })
            .collect();
        let y = f(&xs).unwrap_or_else(|e| panic!("{what} on {device}: {e}"));
        // A fixed, non-uniform upstream gradient.
        let up = data(y.shape(), 99).to(device).unwrap();
        y.mul(&up).unwrap().sum_all().unwrap().backward().unwrap();
        (y.detach(), xs.iter().map(|x| x.grad()).collect())
    };
    let (yc, gc) = run(Device::Cpu);
    let (yg, gg) = run(dev);
    close(what, &yg, &yc, tol);
    for (i, (a, b)) in gg.iter().zip(&gc).enumerate() {
        match (a, b) {
            (Some(a), Some(b)) => close(&format!("{what}: gradient of input {i}"), a, b, tol),
            (None, None) => {}
            _ => panic!("{what}: gradient of input {i} present on one device only"),
        }
    }
    let (yg2, _) = run(dev);
    assert_eq!(
        yg.to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>(),
        yg2.to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>(),
        "{what}: a rerun on the device gave different bits"
    );
}

#[test]
fn devices_lists_the_cpu_first_and_round_trips_every_dtype() {
    let all = fukai::devices();
    assert_eq!(all[0].device, Device::Cpu);
    let Some(dev) = gpu() else { return };
    let f = Tensor::from_vec(vec![1.5f32, -2.0, f32::INFINITY, 0.1], &[2, 2]).unwrap();
    assert_eq!(
        f.to(dev)
            .unwrap()
            .to(Device::Cpu)
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        f.to_vec::<f32>().unwrap()
    );
    let i = Tensor::from_vec(vec![-3i64, 0, 7, 2_000_000_000], &[4]).unwrap();
    assert_eq!(
        i.to(dev).unwrap().to_vec::<i64>().unwrap(),
        [-3, 0, 7, 2_000_000_000]
    );
    let u = Tensor::from_vec(vec![0u8, 1, 255], &[3]).unwrap();
    assert_eq!(u.to(dev).unwrap().to_vec::<u8>().unwrap(), [0, 1, 255]);
    // A strided view reads back in logical order.
    let t = data(&[3, 4], 1).to(dev).unwrap();
    assert_eq!(
        t.t().unwrap().to_vec::<f32>().unwrap(),
        data(&[3, 4], 1).t().unwrap().to_vec::<f32>().unwrap()
    );
    // What the device cannot hold is an error naming the dtype.
    let big = Tensor::from_vec(vec![1i64 << 40], &[1]).unwrap();
    assert!(big
        .to(dev)
        .unwrap_err()
        .to_string()
        .contains("does not fit"));
    let d = Tensor::from_vec(vec![1.0f64], &[1]).unwrap();
    assert!(d.to(dev).unwrap_err().to_string().contains("f64"));
    // An absent adapter is an error listing those found.
    let e = Tensor::scalar(1.0, DType::F32)
        .to(backend::device(999))
        .unwrap_err()
        .to_string();
    let absent = format!("{}:999", backend::NAME);
    assert!(e.contains(&absent) && e.contains("cpu"), "{e}");
    // Constructors on the device.
    let z = Tensor::full_on(&[2, 3], 2.5, DType::F32, dev).unwrap();
    assert_eq!(z.device(), dev);
    assert_eq!(z.to_vec::<f32>().unwrap(), [2.5; 6]);
}

#[test]
fn binary_ops_broadcast_and_read_strided_views() {
    let Some(dev) = gpu() else { return };
    let (a, b) = (data(&[4, 5], 1), data(&[5], 2));
    crosscheck("add", dev, &[a.clone(), b.clone()], 1e-6, |x| {
        x[0].add(&x[1])
    });
    crosscheck("sub", dev, &[a.clone(), b.clone()], 1e-6, |x| {
        x[0].sub(&x[1])
    });
    crosscheck("mul", dev, &[a.clone(), b.clone()], 1e-6, |x| {
        x[0].mul(&x[1])
    });
    crosscheck(
        "div",
        dev,
        &[a.clone(), b.add_scalar(3.0).unwrap()],
        1e-5,
        |x| x[0].div(&x[1]),
    );
    crosscheck("maximum", dev, &[a.clone(), b.clone()], 0.0, |x| {
        x[0].maximum(&x[1])
    });
    crosscheck("minimum", dev, &[a.clone(), b.clone()], 0.0, |x| {
        x[0].minimum(&x[1])
    });
    crosscheck(
        "pow",
        dev,
        &[a.abs().unwrap().add_scalar(0.5).unwrap(), b.clone()],
        1e-5,
        |x| x[0].pow(&x[1]),
    );
    // Transposed and column-broadcast operands.
    let (c, d) = (data(&[5, 4], 3), data(&[5, 1], 4));
    crosscheck("add of a transpose", dev, &[c, d], 1e-6, |x| {
        x[0].t()?.add(&x[1].t()?)
    });
    // A 0-dim CPU scalar meets a device tensor, as in PyTorch.
    let g = data(&[3], 5).to(dev).unwrap();
    let s = g.mul(&Tensor::scalar(2.0, DType::F32)).unwrap();
    assert_eq!(s.device(), dev);
    close(
        "mul by a cpu scalar",
        &s,
        &data(&[3], 5).mul_scalar(2.0).unwrap(),
        0.0,
    );
}

#[test]
fn unary_ops_and_their_gradients_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let x = data(&[3, 67], 7);
    let pos = x.abs().unwrap().add_scalar(0.25).unwrap();
    type F = fn(&Tensor) -> Result<Tensor>;
    let cases: [(&str, F, bool, f32); 20] = [
        ("neg", |t| t.neg(), false, 0.0),
        ("exp", |t| t.exp(), false, 1e-5),
        ("log", |t| t.log(), true, 1e-5),
        ("sqrt", |t| t.sqrt(), true, 1e-5),
        ("rsqrt", |t| t.rsqrt(), true, 1e-5),
        ("abs", |t| t.abs(), false, 0.0),
        ("tanh", |t| t.tanh(), false, 1e-5),
        ("sigmoid", |t| t.sigmoid(), false, 1e-5),
        ("relu", |t| t.relu(), false, 0.0),
        ("gelu", |t| t.gelu(), false, 1e-5),
        ("gelu_tanh", |t| t.gelu_tanh(), false, 1e-5),
        ("silu", |t| t.silu(), false, 1e-5),
        ("sin", |t| t.sin(), false, 1e-5),
        ("cos", |t| t.cos(), false, 1e-5),
        ("square", |t| t.square(), false, 1e-6),
        ("recip", |t| t.recip(), true, 1e-5),
        ("powf", |t| t.powf(1.7), true, 1e-5),
        ("affine", |t| t.affine(-1.5, 0.25), false, 1e-6),
        ("clamp", |t| t.clamp(-0.5, 0.75), false, 0.0),
        ("leaky_relu", |t| t.leaky_relu(0.1), false, 1e-6),
    ];
    for (name, f, positive, tol) in cases {
        let input = if positive { pos.clone() } else { x.clone() };
        crosscheck(name, dev, &[input], tol, |v| f(&v[0]));
    }
}

#[test]
fn comparisons_where_and_casts() {
    let Some(dev) = gpu() else { return };
    let (a, b) = (data(&[6, 7], 11), data(&[7], 12));
    let (ga, gb) = (a.to(dev).unwrap(), b.to(dev).unwrap());
    for (name, c, g) in [
        ("gt", a.gt(&b).unwrap(), ga.gt(&gb).unwrap()),
        ("lt", a.lt(&b).unwrap(), ga.lt(&gb).unwrap()),
        ("eq", a.eq(&a).unwrap(), ga.eq(&ga).unwrap()),
        ("ge", a.ge(&b).unwrap(), ga.ge(&gb).unwrap()),
        ("le", a.le(&b).unwrap(), ga.le(&gb).unwrap()),
        ("ne", a.ne(&b).unwrap(), ga.ne(&gb).unwrap()),
    ] {
        assert_eq!(g.dtype(), DType::U8, "{name}");
        assert_eq!(
            g.to_vec::<u8>().unwrap(),
            c.to_vec::<u8>().unwrap(),
            "{name}"
        );
    }
    crosscheck("where_cond", dev, &[a.clone(), b.clone()], 0.0, |x| {
        let m = x[0].detach().gt(&x[1].detach())?;
        m.where_cond(&x[0], &x[1])
    });
    crosscheck("masked_fill", dev, &[a.clone()], 0.0, |x| {
        x[0].masked_fill(&x[0].detach().gt(&Tensor::scalar(0.0, DType::F32))?, -1.0)
    });
    // Casts between the dtypes the device holds.
    let f = Tensor::from_vec(vec![2.7f32, -1.2, 0.0, 300.0], &[4]).unwrap();
    let g = f.to(dev).unwrap();
    assert_eq!(
        g.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap(),
        f.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap()
    );
    let idx = Tensor::from_vec(vec![3i64, -2, 0], &[3]).unwrap();
    assert_eq!(
        idx.to(dev)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        [3.0, -2.0, 0.0]
    );
}

#[test]
fn reductions_over_any_dims() {
    let Some(dev) = gpu() else { return };
    let x = data(&[3, 300, 5], 21);
    for dims in [&[0isize][..], &[1], &[2], &[0, 2], &[0, 1, 2], &[1, 2]] {
        crosscheck(
            &format!("sum over {dims:?}"),
            dev,
            &[x.clone()],
            1e-5,
            |v| v[0].sum(dims, false),
        );
        crosscheck(
            &format!("mean over {dims:?}"),
            dev,
            &[x.clone()],
            1e-5,
            |v| v[0].mean(dims, true),
        );
    }
    crosscheck(
        "sum of a transpose",
        dev,
        &[data(&[40, 70], 22)],
        1e-5,
        |v| v[0].t()?.sum(&[1], false),
    );
    let g = x.to(dev).unwrap();
    for dim in [0isize, 1, 2] {
        let (vc, ic) = x.max_dim(dim, false).unwrap();
        let (vg, ig) = g.max_dim(dim, false).unwrap();
        close("max_dim values", &vg, &vc, 0.0);
        assert_eq!(
            ig.to_vec::<i64>().unwrap(),
            ic.to_vec::<i64>().unwrap(),
            "max_dim indices over {dim}"
        );
        assert_eq!(
            g.argmin(dim, true).unwrap().to_vec::<i64>().unwrap(),
            x.argmin(dim, true).unwrap().to_vec::<i64>().unwrap()
        );
    }
    // Ties go to the first index, as on the CPU.
    let t = Tensor::from_vec(vec![1.0f32, 3.0, 3.0, 0.0], &[1, 4]).unwrap();
    assert_eq!(
        t.to(dev)
            .unwrap()
            .argmax(1, false)
            .unwrap()
            .to_vec::<i64>()
            .unwrap(),
        [1]
    );
}

#[test]
fn matmul_batched_transposed_and_broadcast() {
    let Some(dev) = gpu() else { return };
    crosscheck(
        "matmul 2-D",
        dev,
        &[data(&[37, 150], 31), data(&[150, 129], 32)],
        1e-5,
        |v| v[0].matmul(&v[1]),
    );
    crosscheck(
        "matmul of transposes",
        dev,
        &[data(&[20, 33], 33), data(&[17, 20], 34)],
        1e-5,
        |v| v[0].t()?.matmul(&v[1].t()?),
    );
    crosscheck(
        "batched matmul",
        dev,
        &[data(&[3, 9, 16], 35), data(&[3, 16, 11], 36)],
        1e-5,
        |v| v[0].matmul(&v[1]),
    );
    crosscheck(
        "broadcast batch",
        dev,
        &[data(&[2, 3, 9, 16], 37), data(&[16, 5], 38)],
        1e-5,
        |v| v[0].matmul(&v[1]),
    );
    crosscheck(
        "4-D batches",
        dev,
        &[data(&[2, 1, 4, 8], 39), data(&[1, 3, 8, 4], 40)],
        1e-5,
        |v| v[0].matmul(&v[1]),
    );
    crosscheck(
        "matrix-vector",
        dev,
        &[data(&[7, 5], 41), data(&[5], 42)],
        1e-5,
        |v| v[0].matmul(&v[1]),
    );
    crosscheck(
        "linear",
        dev,
        &[data(&[2, 6, 33], 43), data(&[19, 33], 44), data(&[19], 45)],
        1e-5,
        |v| v[0].linear(&v[1], Some(&v[2])),
    );
    crosscheck(
        "linear without bias",
        dev,
        &[data(&[5, 8], 46), data(&[3, 8], 47)],
        1e-5,
        |v| v[0].linear(&v[1], None),
    );
}

/// Autocast on the device: bf16 products (operands rounded to bf16, f32 sums) agree with the
/// CPU's bf16 kernel up to summation order and differ from f32; TF32 stays within TF32's
/// rounding of f32. wgpu has neither: bf16 is an error naming the device, TF32 is f32.
#[test]
fn autocast_bf16_and_tf32_products() {
    use fukai::{autocast, Precision};
    type Product = fn(&[Tensor]) -> Result<Tensor>;
    let Some(dev) = gpu() else { return };
    let at = |p: Precision, f: Product| {
        move |v: &[Tensor]| {
            let _g = autocast(p);
            f(v)
        }
    };
    let cases: [(&str, Vec<Tensor>, Product); 3] = [
        (
            "matmul",
            vec![data(&[37, 150], 61), data(&[150, 129], 62)],
            |v| v[0].matmul(&v[1]),
        ),
        (
            "batched matmul of a transpose",
            vec![data(&[3, 9, 40], 63), data(&[3, 11, 40], 64)],
            |v| v[0].matmul(&v[1].transpose(1, 2)?),
        ),
        (
            "linear",
            vec![data(&[2, 6, 33], 65), data(&[19, 33], 66), data(&[19], 67)],
            |v| v[0].linear(&v[1], Some(&v[2])),
        ),
    ];
    for (what, inputs, f) in cases {
        let on = |p: Precision| {
            let xs: Vec<Tensor> = inputs.iter().map(|t| t.to(dev).unwrap()).collect();
            at(p, f)(&xs)
        };
        if backend::NAME != "cuda" {
            let e = on(Precision::Bf16).expect_err("bf16 on wgpu must be refused");
            assert!(e.to_string().contains("bf16"), "{what}: {e}");
            let (t, f32) = (on(Precision::Tf32).unwrap(), on(Precision::F32).unwrap());
            assert_eq!(t.to_vec::<f32>().unwrap(), f32.to_vec::<f32>().unwrap());
            continue;
        }
        crosscheck(
            &format!("{what} in bf16"),
            dev,
            &inputs,
            1e-4,
            at(Precision::Bf16, f),
        );
        let plain: Vec<Tensor> = inputs.iter().map(|t| t.to(dev).unwrap()).collect();
        let (b, f32) = (on(Precision::Bf16).unwrap(), f(&plain).unwrap());
        let (b, f32) = (b.to_vec::<f32>().unwrap(), f32.to_vec::<f32>().unwrap());
        let worst = b
            .iter()
            .zip(&f32)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0.0, f32::max);
        assert!(
            worst > 1e-4,
            "{what}: the bf16 product equals the f32 one ({worst})"
        );
        // TF32 keeps 10 of f32's 23 mantissa bits: relative errors near 2^-11 per operand.
        crosscheck(
            &format!("{what} in tf32"),
            dev,
            &inputs,
            2e-2,
            at(Precision::Tf32, f),
        );
    }
}

#[test]
fn softmax_and_cross_entropy() {
    let Some(dev) = gpu() else { return };
    let x = data(&[4, 300, 3], 51);
    for dim in [1isize, 2, 0] {
        crosscheck(
            &format!("softmax over {dim}"),
            dev,
            &[x.clone()],
            1e-5,
            |v| v[0].softmax(dim),
        );
        crosscheck(
            &format!("log_softmax over {dim}"),
            dev,
            &[x.clone()],
            1e-5,
            |v| v[0].log_softmax(dim),
        );
    }
    let logits = data(&[9, 13], 52).mul_scalar(3.0).unwrap();
    let target = Tensor::from_vec(vec![0i64, 12, 5, 5, 1, 2, 3, 11, 7], &[9]).unwrap();
    let t2 = target.clone();
    crosscheck("cross_entropy", dev, &[logits.clone()], 1e-5, move |v| {
        cross_entropy(&v[0], &t2)
    });
    let opts = CrossEntropyOpts {
        label_smoothing: 0.1,
        ignore_index: Some(5),
    };
    crosscheck(
        "cross_entropy smoothed, ignoring",
        dev,
        &[logits],
        1e-5,
        move |v| cross_entropy_with(&v[0], &target, opts),
    );
}

#[test]
fn optimizers_update_in_place_on_the_device() {
    let Some(dev) = gpu() else { return };
    type Make = fn(Vec<Tensor>) -> Box<dyn Optimizer>;
    let makers: [(&str, Make); 5] = [
        ("sgd", |p| Box::new(Sgd::new(p, 0.1))),
        ("sgd momentum nesterov", |p| {
            Box::new(
                Sgd::new(p, 0.1)
                    .momentum(0.9)
                    .nesterov(true)
                    .weight_decay(0.01),
            )
        }),
        ("adam", |p| Box::new(Adam::new(p, 0.01).weight_decay(0.1))),
        ("adamw", |p| Box::new(Adam::adamw(p, 0.01))),
        ("rmsprop", |p| Box::new(RmsProp::new(p, 0.01).momentum(0.5))),
    ];
    for (name, make) in makers {
        let run = |device: Device| -> (Tensor, Vec<(String, Tensor)>) {
            let w = data(&[33, 7], 61).to(device).unwrap().with_grad().unwrap();
            let mut opt = make(vec![w.clone()]);
            for step in 0..4 {
                opt.zero_grad();
                let target = data(&[33, 7], 62 + step).to(device).unwrap();
                w.sub(&target)
                    .unwrap()
                    .square()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                opt.step().unwrap();
            }
            (w.detach(), opt.state().unwrap())
        };
        let (wc, sc) = run(Device::Cpu);
        let (wg, sg) = run(dev);
        close(name, &wg, &wc, 2e-5);
        // State saved from the device is host memory with the same names.
        assert_eq!(sc.len(), sg.len(), "{name}: state entries");
        for ((nc, tc), (ng, tg)) in sc.iter().zip(&sg) {
            assert_eq!(nc, ng);
            assert_eq!(tg.device(), Device::Cpu, "{name}: {ng} saved on the host");
            let d = fukai::testing::max_abs_diff(tc, tg).unwrap();
            assert!(d < 1e-4, "{name}: state {ng} differs by {d}");
        }
    }
}

#[test]
fn mixed_devices_and_missing_kernels_are_errors() {
    let Some(dev) = gpu() else { return };
    let g = data(&[2, 3], 71).to(dev).unwrap();
    let c = data(&[2, 3], 72);
    let e = g.add(&c).unwrap_err().to_string();
    assert!(
        e.contains("different devices") && e.contains(backend::NAME) && e.contains("cpu"),
        "{e}"
    );
    let e = g.matmul(&c.t().unwrap()).unwrap_err().to_string();
    assert!(e.contains("different devices"), "{e}");
    // An op without a device kernel (here a closure over host memory) says so instead of
    // reading device memory.
    let img = data(&[1, 1, 5, 5], 73).to(dev).unwrap();
    let e = img.update_f32(|v| v.fill(0.0)).unwrap_err().to_string();
    assert!(
        e.contains(backend::NAME) && e.contains(".to(Device::Cpu)"),
        "{e}"
    );
}

#[test]
fn an_mlp_trains_on_the_device_as_on_the_cpu() {
    let Some(dev) = gpu() else { return };
    use fukai::nn::{Activation, Linear, Module, Sequential};
    let train = |device: Device| -> Vec<f64> {
        let _rng = DEFAULT_RNG.lock().unwrap_or_else(|e| e.into_inner());
        fukai::manual_seed(5);
        let model = Sequential::new()
            .add(Linear::new(16, 32, true).unwrap())
            .add(Activation::Relu)
            .add(Linear::new(32, 4, true).unwrap());
        model.to_device(device).unwrap();
        let mut opt = Adam::new(model.parameters(), 0.01);
        let x = data(&[64, 16], 81).to(device).unwrap();
        // Labels from a fixed rule the model can learn.
        let y: Vec<i64> = data(&[64, 16], 81)
            .argmax(1, false)
            .unwrap()
            .to_vec::<i64>()
            .unwrap()
            .iter()
            .map(|v| v % 4)
            .collect();
        let y = Tensor::from_vec(y, &[64]).unwrap().to(device).unwrap();
        losses(&mut opt, 60, || cross_entropy(&model.forward(&x)?, &y))
    };
    trains_like_the_cpu(dev, 0.5, 1e-3, train);
}

#[test]
fn dropout_masks_are_the_cpus_bit_for_bit() {
    let Some(dev) = gpu() else { return };
    let bits = |t: &Tensor| {
        t.to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    };
    for (p, offset) in [(0.3, 0u64), (0.5, (1u64 << 32) - 3), (0.9, 12_345)] {
        let x = data(&[7, 1001], 91);
        let mut gc = fukai::Generator::new(42);
        gc.reserve(offset);
        let mut gg = gc.clone();
        let c = x.t().unwrap().dropout_with(p, &mut gc).unwrap();
        let g = x
            .to(dev)
            .unwrap()
            .t()
            .unwrap()
            .dropout_with(p, &mut gg)
            .unwrap();
        assert_eq!(g.device(), dev);
        assert_eq!(bits(&g), bits(&c), "p {p}, stream offset {offset}");
        assert_eq!(gc, gg, "both devices advance the generator alike");
    }
    crosscheck("dropout gradient", dev, &[data(&[9, 33], 92)], 0.0, |v| {
        v[0].dropout_with(0.25, &mut fukai::Generator::new(7))
    });
}

#[test]
fn convolutions_and_their_gradients() {
    let Some(dev) = gpu() else { return };
    crosscheck(
        "conv2d 3x3 pad 1",
        dev,
        &[
            data(&[2, 3, 9, 8], 101),
            data(&[5, 3, 3, 3], 102),
            data(&[5], 103),
        ],
        2e-5,
        |v| v[0].conv2d(&v[1], Some(&v[2]), [1, 1], [1, 1], [1, 1], 1),
    );
    crosscheck(
        "conv2d stride 2, dilation 2, groups 2",
        dev,
        &[data(&[2, 4, 11, 10], 104), data(&[6, 2, 3, 2], 105)],
        2e-5,
        |v| v[0].conv2d(&v[1], None, [2, 1], [1, 2], [2, 1], 2),
    );
    crosscheck(
        "conv1d",
        dev,
        &[
            data(&[3, 4, 20], 106),
            data(&[8, 4, 5], 107),
            data(&[8], 108),
        ],
        2e-5,
        |v| v[0].conv1d(&v[1], Some(&v[2]), 2, 2, 1, 1),
    );
    // Transposed convolutions run the same kernels the other way round.
    crosscheck(
        "conv_transpose2d stride 2, output padding 1, bias",
        dev,
        &[
            data(&[2, 6, 5, 4], 121),
            data(&[6, 3, 4, 3], 122),
            data(&[3], 123),
        ],
        2e-5,
        |v| v[0].conv_transpose2d(&v[1], Some(&v[2]), [2, 2], [1, 0], [1, 1], [1, 1], 1),
    );
    crosscheck(
        "conv_transpose2d dilation 2, groups 2",
        dev,
        &[data(&[2, 4, 6, 5], 124), data(&[4, 3, 3, 2], 125)],
        2e-5,
        |v| v[0].conv_transpose2d(&v[1], None, [1, 2], [1, 1], [0, 1], [2, 1], 2),
    );
    crosscheck(
        "conv_transpose1d",
        dev,
        &[
            data(&[3, 4, 9], 126),
            data(&[4, 5, 3], 127),
            data(&[5], 128),
        ],
        2e-5,
        |v| v[0].conv_transpose1d(&v[1], Some(&v[2]), 2, 1, 1, 1, 1),
    );
    // 3-D convolutions have no device path yet: an error naming the op, not a panic.
    let x = data(&[1, 2, 3, 4, 4], 129).to(dev).unwrap();
    let w = data(&[2, 2, 2, 2, 2], 130).to(dev).unwrap();
    let e = x
        .conv3d(&w, None, [1, 1, 1], [0, 0, 0], [1, 1, 1], 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("conv3d") && e.contains(backend::NAME), "{e}");
}

#[test]
fn pools_and_their_gradients() {
    let Some(dev) = gpu() else { return };
    let x = data(&[2, 3, 9, 10], 111);
    crosscheck("max_pool2d 2x2", dev, &[x.clone()], 0.0, |v| {
        v[0].max_pool2d([2, 2], [2, 2], [0, 0])
    });
    crosscheck(
        "max_pool2d 3x3 stride 2 pad 1",
        dev,
        &[x.clone()],
        0.0,
        |v| v[0].max_pool2d([3, 3], [2, 2], [1, 1]),
    );
    crosscheck("avg_pool2d", dev, &[x.clone()], 1e-6, |v| {
        v[0].avg_pool2d([3, 2], [2, 2], [1, 1], false)
    });
    crosscheck(
        "avg_pool2d counting padding",
        dev,
        &[x.clone()],
        1e-6,
        |v| v[0].avg_pool2d([3, 3], [1, 2], [1, 1], true),
    );
    crosscheck("adaptive_avg_pool2d", dev, &[x.clone()], 1e-6, |v| {
        v[0].adaptive_avg_pool2d([4, 3])
    });
    crosscheck("max_pool1d", dev, &[data(&[2, 3, 17], 112)], 0.0, |v| {
        v[0].max_pool1d(3, 2, 1)
    });
}

#[test]
fn batch_norm_trains_and_evaluates_on_the_device() {
    let Some(dev) = gpu() else { return };
    use fukai::nn::{BatchNorm, Module};
    let (w, b) = (data(&[4], 121).add_scalar(2.0).unwrap(), data(&[4], 122));
    crosscheck(
        "batch_norm_train",
        dev,
        &[data(&[5, 4, 3, 3], 123), w.clone(), b.clone()],
        2e-5,
        |v| Ok(v[0].batch_norm_train(&v[1], &v[2], 1e-5)?.0),
    );
    crosscheck(
        "batch_norm_relu_train",
        dev,
        &[data(&[6, 4], 124), w, b],
        2e-5,
        |v| Ok(v[0].batch_norm_relu_train(&v[1], &v[2], 1e-5)?.0),
    );
    // The layer: running statistics updated on the device, then used in eval mode.
    let run = |device: Device| -> (Tensor, Tensor) {
        let mut bn = BatchNorm::new(3).unwrap();
        bn.to_device(device).unwrap();
        for s in 0..3 {
            bn.forward(&data(&[4, 3, 5], 130 + s).to(device).unwrap())
                .unwrap();
        }
        bn.set_training(false);
        let y = bn
            .forward(&data(&[2, 3, 5], 140).to(device).unwrap())
            .unwrap();
        (y, bn.running_var.clone())
    };
    let ((yc, vc), (yg, vg)) = (run(Device::Cpu), run(dev));
    close("batch norm in eval mode", &yg, &yc, 2e-5);
    close("running variance", &vg, &vc, 2e-5);
}

#[test]
fn a_cnn_with_batch_norm_and_dropout_trains_on_the_device_as_on_the_cpu() {
    let Some(dev) = gpu() else { return };
    use fukai::nn::{
        Activation, BatchNorm, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Module, Sequential,
    };
    // 4 classes: which quadrant of an 8x8 image holds a bright blob.
    let n = 32;
    let mut img = vec![0f32; n * 64];
    let mut y = Vec::new();
    let noise = data(&[n * 64], 150).to_vec::<f32>().unwrap();
    for i in 0..n {
        let c = i % 4;
        let (oy, ox) = ((c / 2) * 4, (c % 2) * 4);
        for k in 0..64 {
            let (r, q) = (k / 8, k % 8);
            let inside = (oy..oy + 4).contains(&r) && (ox..ox + 4).contains(&q);
            img[i * 64 + k] = 0.1 * noise[i * 64 + k] + if inside { 1.0 } else { 0.0 };
        }
        y.push(c as i64);
    }
    let x = Tensor::from_vec(img, &[n, 1, 8, 8]).unwrap();
    let y = Tensor::from_vec(y, &[n]).unwrap();
    let train = |device: Device| -> Vec<f64> {
        let _rng = DEFAULT_RNG.lock().unwrap_or_else(|e| e.into_inner());
        fukai::manual_seed(9);
        let model = Sequential::new()
            .add(Conv2d::new(1, 6, 3, 1).unwrap())
            .add(BatchNorm::new(6).unwrap())
            .add(Activation::Relu)
            .add(MaxPool2d::new(2))
            .add(Flatten)
            .add(Dropout::new(0.1))
            .add(Linear::new(6 * 16, 4, true).unwrap());
        model.to_device(device).unwrap();
        let mut opt = Adam::new(model.parameters(), 0.02);
        let (x, y) = (x.to(device).unwrap(), y.to(device).unwrap());
        losses(&mut opt, 25, || cross_entropy(&model.forward(&x)?, &y))
    };
    trains_like_the_cpu(dev, 0.3, 2e-3, train);
}

#[test]
fn layer_norm_embedding_and_attention_match_the_cpu() {
    let Some(dev) = gpu() else { return };
    let (w, b) = (data(&[24], 161).add_scalar(1.5).unwrap(), data(&[24], 162));
    crosscheck(
        "layer_norm",
        dev,
        &[data(&[3, 5, 24], 163), w.clone(), b],
        2e-5,
        |v| v[0].layer_norm(Some(&v[1]), Some(&v[2]), 1e-5),
    );
    crosscheck("rms_norm", dev, &[data(&[4, 24], 164), w], 2e-5, |v| {
        v[0].rms_norm(Some(&v[1]), 1e-6)
    });
    let ids = Tensor::from_vec(vec![3i64, 0, 3, 7, 1, 3], &[2, 3]).unwrap();
    let ids2 = ids.clone();
    crosscheck(
        "embedding (repeated ids)",
        dev,
        &[data(&[8, 5], 165)],
        1e-6,
        move |v| v[0].embedding(&ids2.to(v[0].device())?),
    );
    let idx = Tensor::from_vec(vec![2i64, 0, 2], &[3]).unwrap();
    crosscheck(
        "index_select along dim 1",
        dev,
        &[data(&[4, 3, 2], 166)],
        1e-6,
        move |v| v[0].index_select(1, &idx.to(v[0].device())?),
    );
    use fukai::ops::{attention, AttnInput, AttnOptions};
    // Self-attention from one [B, T, 3·W] projection, causal, 4 heads over 2 key/value heads.
    crosscheck(
        "causal grouped-query attention",
        dev,
        &[data(&[2, 5, 16 + 8 + 8], 167)],
        2e-5,
        |v| {
            let mut o = AttnOptions::new(4, 4);
            o.kv_heads = 2;
            o.causal = true;
            let at = |col| AttnInput { src: &v[0], col };
            attention(at(0), at(16), at(24), &o)
        },
    );
    // Cross-attention with key padding (one row fully padded: zeros, as the fused kernel).
    let pad = Tensor::from_vec(vec![0u8, 0, 1, 1, 1, 1, 1, 1], &[2, 4]).unwrap();
    crosscheck(
        "attention with key padding",
        dev,
        &[data(&[2, 3, 8], 168), data(&[2, 4, 16], 169)],
        2e-5,
        move |v| {
            let mut o = AttnOptions::new(2, 4);
            o.key_padding = Some(pad.to(v[0].device())?);
            attention(
                AttnInput { src: &v[0], col: 0 },
                AttnInput { src: &v[1], col: 0 },
                AttnInput { src: &v[1], col: 8 },
                &o,
            )
        },
    );
}

#[test]
fn a_gpt_trains_on_the_device_as_on_the_cpu() {
    let Some(dev) = gpu() else { return };
    use fukai::models::{Gpt, GptConfig};
    use fukai::nn::Module;
    let cfg = GptConfig {
        vocab: 11,
        layers: 2,
        heads: 2,
        width: 16,
        context: 8,
        tie_weights: true,
    };
    let text: Vec<i64> = (0..8 * 9).map(|i| (i * 7 % 11) as i64).collect();
    let x = Tensor::from_vec(text[..64].to_vec(), &[8, 8]).unwrap();
    let y = Tensor::from_vec(text[1..65].to_vec(), &[8, 8]).unwrap();
    let train = |device: Device| -> Vec<f64> {
        let _rng = DEFAULT_RNG.lock().unwrap_or_else(|e| e.into_inner());
        fukai::manual_seed(3);
        let model = Gpt::new(cfg.clone()).unwrap();
        model.to_device(device).unwrap();
        let mut opt = Adam::adamw(model.parameters(), 0.01);
        let (x, y) = (x.to(device).unwrap(), y.to(device).unwrap());
        losses(&mut opt, 15, || {
            cross_entropy(&model.forward(&x)?.reshape(&[64, 11])?, &y.reshape(&[64])?)
        })
    };
    trains_like_the_cpu(dev, 0.5, 2e-3, train);
}

#[test]
fn recurrences_match_the_cpu_with_lengths_and_reversal() {
    let Some(dev) = gpu() else { return };
    use fukai::ops::{recurrence, CellKind};
    let (t, b, h) = (5, 3, 4);
    for (cell, gates) in [
        (CellKind::Lstm, 4),
        (CellKind::Gru, 3),
        (CellKind::RnnTanh, 1),
        (CellKind::RnnRelu, 1),
    ] {
        for reverse in [false, true] {
            let mut inputs = vec![
                data(&[t, b, gates * h], 171),
                data(&[gates * h, h], 172).mul_scalar(0.3).unwrap(),
                data(&[gates * h], 173),
                data(&[b, h], 174),
            ];
            if cell == CellKind::Lstm {
                inputs.push(data(&[b, h], 175));
            }
            crosscheck(
                &format!("{cell:?} reverse {reverse}"),
                dev,
                &inputs,
                2e-5,
                |v| {
                    recurrence(
                        cell,
                        &v[0],
                        &v[1],
                        Some(&v[2]),
                        &v[3],
                        v.get(4),
                        Some(&[5, 2, 4]),
                        reverse,
                    )
                },
            );
        }
    }
}

#[test]
fn gather_scatter_add_and_max_gradients() {
    let Some(dev) = gpu() else { return };
    let idx = Tensor::from_vec(vec![2i64, 0, 2, 1, 1, 1], &[2, 3]).unwrap();
    let i2 = idx.clone();
    crosscheck(
        "gather along dim 1",
        dev,
        &[data(&[2, 4], 181)],
        0.0,
        move |v| v[0].gather(1, &i2.to(v[0].device())?),
    );
    let i3 = idx.clone();
    crosscheck(
        "scatter_add (repeated targets)",
        dev,
        &[data(&[2, 4], 182), data(&[2, 3], 183)],
        1e-6,
        move |v| v[0].scatter_add(1, &i3.to(v[0].device())?, &v[1]),
    );
    crosscheck(
        "max_dim values and gradient",
        dev,
        &[data(&[3, 5, 4], 184)],
        0.0,
        |v| Ok(v[0].max_dim(1, false)?.0),
    );
    crosscheck("nll_loss", dev, &[data(&[4, 5], 185)], 1e-6, |v| {
        let t = Tensor::from_vec(vec![1i64, 4, 0, 2], &[4])?.to(v[0].device())?;
        fukai::nn::loss::nll_loss(&v[0].log_softmax(-1)?, &t)
    });
}

#[test]
fn whole_tensor_extremes_index_add_logsumexp_and_bce() {
    let Some(dev) = gpu() else { return };
    let ties = Tensor::from_vec(vec![1.0f32, 3.0, -2.0, 3.0, 0.5, 3.0], &[2, 3]).unwrap();
    crosscheck("max_all with ties", dev, &[ties.clone()], 0.0, |v| {
        v[0].max_all()
    });
    crosscheck("min_all", dev, &[data(&[4, 7], 191)], 0.0, |v| {
        v[0].min_all()
    });
    crosscheck("logsumexp", dev, &[data(&[3, 9], 192)], 1e-6, |v| {
        v[0].logsumexp(1, false)
    });
    let idx = Tensor::from_vec(vec![2i64, 0, 2], &[3]).unwrap();
    crosscheck(
        "index_add (repeated targets)",
        dev,
        &[data(&[4, 3, 2], 193), data(&[4, 3, 2], 194)],
        1e-6,
        move |v| v[0].index_add(1, &idx.to(v[0].device())?, &v[1]),
    );
    let t = data(&[5, 3], 195).sigmoid().unwrap();
    crosscheck(
        "binary_cross_entropy_with_logits",
        dev,
        &[data(&[5, 3], 196), t],
        1e-5,
        |v| fukai::nn::loss::binary_cross_entropy_with_logits(&v[0], &v[1]),
    );
}

#[test]
fn optimizer_state_saved_on_one_device_continues_on_another() {
    let Some(dev) = gpu() else { return };
    // Three Adam steps, state saved, then two more steps after loading it: on the CPU only,
    // and with the second half on the device.
    let run = |second: Device| -> Tensor {
        let w = data(&[6, 5], 201).with_grad().unwrap();
        let mut opt = Adam::new(vec![w.clone()], 0.05);
        let step = |w: &Tensor, opt: &mut Adam, k: u64| {
            opt.zero_grad();
            let target = data(&[6, 5], 210 + k).to(w.device()).unwrap();
            w.sub(&target)
                .unwrap()
                .square()
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            opt.step().unwrap();
        };
        for k in 0..3 {
            step(&w, &mut opt, k);
        }
        let state = opt.state().unwrap();
        let w2 = w.detach().to(second).unwrap().detach().with_grad().unwrap();
        let mut opt2 = Adam::new(vec![w2.clone()], 0.05);
        opt2.load_state(&state).unwrap();
        for k in 3..5 {
            step(&w2, &mut opt2, k);
        }
        w2.detach()
    };
    close("resumed on the device", &run(dev), &run(Device::Cpu), 2e-5);
}
