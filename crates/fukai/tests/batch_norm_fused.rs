//! The fused training-mode batch norm against its composite (mean / var / rsqrt / mul / add),
//! forward and every gradient, a finite-difference check in f64, and its thread-count
//! independence. The layer itself is cross-checked against PyTorch in nn_crosscheck.rs.

use fukai::testing::{gradcheck, max_abs_diff, output_and_grads, randn64};
use fukai::{Result, Tensor};

fn composite(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let c = w.numel();
    let mut bshape = vec![1; x.rank()];
    bshape[1] = c;
    let dims: Vec<isize> = (0..x.rank() as isize).filter(|&d| d != 1).collect();
    let mean = x.mean(&dims, true)?;
    let var = x.var(&dims, 0, true)?;
    let inv = var.add_scalar(eps)?.rsqrt()?;
    x.sub(&mean)?
        .mul(&inv.mul(&w.reshape(&bshape)?)?)?
        .add(&b.reshape(&bshape)?)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    max_abs_diff(a, b).unwrap()
}

fn run(f: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) -> (Tensor, Vec<Tensor>) {
    output_and_grads(f, inputs).unwrap()
}

fn inputs(shape: &[usize], seed: u64) -> Vec<Tensor> {
    let c = shape[1];
    // An offset and scale so the centering matters.
    let x = randn64(shape, seed)
        .unwrap()
        .mul_scalar(3.0)
        .unwrap()
        .add_scalar(1.5)
        .unwrap();
    vec![
        x,
        randn64(&[c], seed + 1).unwrap(),
        randn64(&[c], seed + 2).unwrap(),
    ]
}

#[test]
fn fused_equals_composite_for_every_rank() {
    for shape in [&[7, 3][..], &[4, 5, 6], &[3, 4, 5, 7], &[2, 3, 40, 50]] {
        let inputs = inputs(shape, 3);
        let fused = |t: &[Tensor]| Ok(t[0].batch_norm_train(&t[1], &t[2], 1e-5)?.0);
        let comp = |t: &[Tensor]| composite(&t[0], &t[1], &t[2], 1e-5);
        let (a, ga) = run(&fused, &inputs);
        let (b, gb) = run(&comp, &inputs);
        assert!(
            max_diff(&a, &b) < 1e-12,
            "{shape:?}: forward {}",
            max_diff(&a, &b)
        );
        for (i, (x, y)) in ga.iter().zip(&gb).enumerate() {
            assert!(
                max_diff(x, y) < 1e-10,
                "{shape:?}: grad {i} {}",
                max_diff(x, y)
            );
        }
        // The statistics it returns are the batch mean and biased variance.
        let (_, st) = inputs[0]
            .batch_norm_train(&inputs[1], &inputs[2], 1e-5)
            .unwrap();
        let dims: Vec<isize> = (0..shape.len() as isize).filter(|&d| d != 1).collect();
        let m = inputs[0].mean(&dims, false).unwrap();
        let v = inputs[0].var(&dims, 0, false).unwrap();
        assert!(max_diff(&st.mean, &m) < 1e-12 && max_diff(&st.var, &v) < 1e-12);
    }
}

#[test]
fn fused_f32_close_to_f64() {
    let inputs = inputs(&[8, 4, 12, 12], 11);
    let f32s: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_dtype(fukai::DType::F32).unwrap())
        .collect();
    let fused = |t: &[Tensor]| Ok(t[0].batch_norm_train(&t[1], &t[2], 1e-5)?.0);
    let (a, ga) = run(&fused, &inputs);
    let (b, gb) = run(&fused, &f32s);
    assert!(max_diff(&a, &b) < 1e-4);
    for (x, y) in ga.iter().zip(&gb) {
        assert!(max_diff(x, y) < 1e-3, "{}", max_diff(x, y));
    }
}

#[test]
fn fused_gradcheck() {
    let inputs = inputs(&[3, 2, 2, 3], 21);
    gradcheck(
        |t| Ok(t[0].batch_norm_train(&t[1], &t[2], 1e-5)?.0),
        &inputs,
        1e-6,
        1e-6,
    )
    .unwrap();
    gradcheck(
        |t| Ok(t[0].batch_norm_relu_train(&t[1], &t[2], 1e-5)?.0),
        &inputs,
        1e-6,
        1e-6,
    )
    .unwrap();
}

#[test]
fn bad_shapes_are_named() {
    let x = randn64(&[4, 3, 5], 1).unwrap();
    let w = randn64(&[2], 2).unwrap();
    let err = x.batch_norm_train(&w, &w, 1e-5).unwrap_err().to_string();
    assert!(
        err.contains("batch_norm") && err.contains("weight") && err.contains("[3]"),
        "{err}"
    );
    let one = randn64(&[1, 3], 1).unwrap();
    let w3 = randn64(&[3], 2).unwrap();
    let err = one
        .batch_norm_train(&w3, &w3, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than one value"), "{err}");
}

#[cfg(feature = "threads")]
#[test]
fn same_bits_at_any_thread_count() {
    let inputs: Vec<Tensor> = inputs(&[16, 8, 20, 20], 5)
        .iter()
        .map(|t| t.to_dtype(fukai::DType::F32).unwrap())
        .collect();
    let fused = |t: &[Tensor]| Ok(t[0].batch_norm_train(&t[1], &t[2], 1e-5)?.0);
    let bits = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (y, g) = run(&fused, &inputs);
            let mut v = y.to_vec::<f32>().unwrap();
            for g in g {
                v.extend(g.to_vec::<f32>().unwrap());
            }
            v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
        })
    };
    assert_eq!(bits(1), bits(3));
}

/// The bits of an output and its gradients, for exact comparisons.
fn bits(y: &Tensor, g: &[Tensor]) -> Vec<u64> {
    let f64s = |t: &Tensor| {
        t.to_dtype(fukai::DType::F64)
            .unwrap()
            .to_vec::<f64>()
            .unwrap()
    };
    let mut v = f64s(y);
    for g in g {
        v.extend(f64s(g));
    }
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn relu_fused_equals_batch_norm_then_relu_bit_for_bit() {
    for dtype in [fukai::DType::F64, fukai::DType::F32] {
        for shape in [&[7, 3][..], &[4, 5, 6], &[3, 4, 5, 7], &[2, 3, 40, 50]] {
            let inputs: Vec<Tensor> = inputs(shape, 9)
                .iter()
                .map(|t| t.to_dtype(dtype).unwrap())
                .collect();
            let fused = |t: &[Tensor]| Ok(t[0].batch_norm_relu_train(&t[1], &t[2], 1e-5)?.0);
            let seq = |t: &[Tensor]| t[0].batch_norm_train(&t[1], &t[2], 1e-5)?.0.relu();
            let (a, ga) = run(&fused, &inputs);
            let (b, gb) = run(&seq, &inputs);
            // Both signs occur, so the mask matters.
            let y = a
                .to_dtype(fukai::DType::F64)
                .unwrap()
                .to_vec::<f64>()
                .unwrap();
            assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0));
            assert_eq!(bits(&a, &ga), bits(&b, &gb), "{dtype:?} {shape:?}");
        }
    }
}

#[test]
fn sequential_fuses_batch_norm_and_relu_with_the_same_result() {
    use fukai::nn::{Activation, BatchNorm, Module, Sequential};
    let x = inputs(&[4, 3, 5, 5], 13)[0]
        .to_dtype(fukai::DType::F32)
        .unwrap();
    let fused_net = Sequential::new()
        .add(BatchNorm::new(3).unwrap())
        .add(Activation::Relu);
    let bn = BatchNorm::new(3).unwrap();
    for net_params in [fused_net.parameters(), bn.parameters()] {
        for p in net_params {
            p.copy_from(
                &randn64(p.shape(), 4)
                    .unwrap()
                    .to_dtype(fukai::DType::F32)
                    .unwrap(),
            )
            .unwrap();
        }
    }
    let grads = |y: &Tensor, params: Vec<Tensor>| {
        y.mul(y).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<Tensor> = params.iter().map(|p| p.grad().unwrap()).collect();
        bits(y, &g)
    };
    let a = grads(&fused_net.forward(&x).unwrap(), fused_net.parameters());
    let b = grads(&bn.forward(&x).unwrap().relu().unwrap(), bn.parameters());
    assert_eq!(a, b);
    // The running statistics were updated the same way.
    let (sa, sb) = (fused_net.state_dict(), bn.state_dict());
    assert_eq!(sa.len(), sb.len());
    assert!(sa.iter().any(|(n, _)| n.ends_with("running_var")));
    for ((na, ta), (_, tb)) in sa.iter().zip(&sb) {
        assert_eq!(bits(ta, &[]), bits(tb, &[]), "{na}");
    }
}

/// A module that counts how often a container asks it for its fused forward + ReLU.
struct Probe(
    fukai::nn::BatchNorm,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
);

impl fukai::nn::Module for Probe {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward(x)
    }
    fn forward_relu(&self, x: &Tensor) -> Option<Result<Tensor>> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.forward_relu(x)
    }
    fn set_training(&mut self, on: bool) {
        self.0.set_training(on);
    }
}

/// `Sequential` offers the fused op to a layer followed by a ReLU and to no other layer. In
/// eval mode batch norm declines it, and the two run separately.
#[test]
fn sequential_asks_only_a_layer_before_a_relu_to_fuse() {
    use fukai::nn::{Activation, BatchNorm, Module, Sequential};
    use std::sync::{atomic::AtomicUsize, atomic::Ordering, Arc};
    let x = inputs(&[4, 3, 5, 5], 17)[0]
        .to_dtype(fukai::DType::F32)
        .unwrap();
    let (before, alone) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let net = Sequential::new()
        .add(Probe(BatchNorm::new(3).unwrap(), before.clone()))
        .add(Activation::Relu)
        .add(Probe(BatchNorm::new(3).unwrap(), alone.clone()));
    net.forward(&x).unwrap();
    assert_eq!(before.load(Ordering::Relaxed), 1);
    assert_eq!(alone.load(Ordering::Relaxed), 0);

    let mut pair = Sequential::new()
        .add(Probe(BatchNorm::new(3).unwrap(), before.clone()))
        .add(Activation::Relu);
    pair.set_training(false);
    let mut bn = BatchNorm::new(3).unwrap();
    bn.set_training(false);
    let separate = bn.forward(&x).unwrap().relu().unwrap();
    assert_eq!(
        max_abs_diff(&pair.forward(&x).unwrap(), &separate).unwrap(),
        0.0
    );
    assert_eq!(before.load(Ordering::Relaxed), 2);
}
