//! Autograd semantics: where gradients go, when they accumulate, when recording is off, which
//! misuses are errors, and that a training loop gives its graph's memory back every step.

use fukai::rng::Generator;
use fukai::{is_grad_enabled, no_grad, DType, Error, Tensor};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;

/// The system allocator, counting the bytes currently allocated by this test binary.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Tests in this binary run one at a time, so the allocation count of the memory test only
/// sees its own work.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape).unwrap()
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

fn grad(t: &Tensor) -> Vec<f32> {
    vals(&t.grad().expect("gradient expected"))
}

#[test]
fn backward_from_scalar() {
    let _s = serial();
    // loss = sum(x * w + x²): d/dx = w + 2x, d/dw = x.
    let x = t(&[1.0, -2.0, 3.0], &[3]).with_grad().unwrap();
    let w = t(&[0.5, 4.0, -1.0], &[3]).with_grad().unwrap();
    let loss = x.mul(&w).unwrap().add(&x.square().unwrap()).unwrap();
    let loss = loss.sum_all().unwrap();
    assert_eq!(loss.shape(), &[] as &[usize]);
    assert!(loss.requires_grad() && !loss.is_leaf());
    loss.backward().unwrap();
    assert_eq!(grad(&x), vec![2.5, 0.0, 5.0]);
    assert_eq!(grad(&w), vec![1.0, -2.0, 3.0]);
    // Non-leaf results keep no gradient.
    assert!(loss.grad().is_none());
}

#[test]
fn backward_with_upstream_gradient() {
    let _s = serial();
    let x = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]).with_grad().unwrap();
    let y = x.mul_scalar(3.0).unwrap();
    let up = t(&[1.0, 0.0, -1.0, 2.0], &[2, 2]);
    y.backward_with(&up).unwrap();
    assert_eq!(grad(&x), vec![3.0, 0.0, -3.0, 6.0]);

    // The upstream gradient must match the output.
    let y = x.mul_scalar(3.0).unwrap();
    let err = y.backward_with(&t(&[1.0], &[1])).unwrap_err().to_string();
    assert!(
        err.contains("backward_with") && err.contains("[1]") && err.contains("[2, 2]"),
        "{err}"
    );
}

#[test]
fn gradients_accumulate_until_zero_grad() {
    let _s = serial();
    let x = t(&[1.0, 2.0], &[2]).with_grad().unwrap();
    for _ in 0..2 {
        x.square().unwrap().sum_all().unwrap().backward().unwrap();
    }
    assert_eq!(grad(&x), vec![4.0, 8.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
    x.mul_scalar(5.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(grad(&x), vec![5.0, 5.0]);
}

#[test]
fn shared_subexpressions_sum_their_paths() {
    let _s = serial();
    // y = x·x used twice: loss = sum(y + y) → d/dx = 4x.
    let x = t(&[1.0, -3.0], &[2]).with_grad().unwrap();
    let y = x.mul(&x).unwrap();
    y.add(&y).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(grad(&x), vec![4.0, -12.0]);
}

#[test]
fn detach_stops_gradients() {
    let _s = serial();
    let x = t(&[1.0, 2.0], &[2]).with_grad().unwrap();
    let w = t(&[3.0, 4.0], &[2]).with_grad().unwrap();
    let p = x.mul(&w).unwrap();
    let d = p.detach();
    assert!(!d.requires_grad() && d.is_leaf());
    assert!(d.shares_storage(&p), "detach is a view, not a copy");
    // Only the direct use of x carries a gradient; nothing reaches w.
    let loss = d.mul(&x).unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    assert_eq!(grad(&x), vec![3.0, 8.0]);
    assert!(w.grad().is_none());
    // A detached graph alone cannot be differentiated.
    let err = d.sum_all().unwrap().backward().unwrap_err();
    assert!(matches!(err, Error::Autograd(_)), "{err}");
    assert!(err.to_string().contains("does not require grad"), "{err}");
}

#[test]
fn no_grad_records_nothing_and_restores_on_drop() {
    let _s = serial();
    let x = t(&[1.0, 2.0], &[2]).with_grad().unwrap();
    assert!(is_grad_enabled());
    {
        let _g = no_grad();
        assert!(!is_grad_enabled());
        let y = x.square().unwrap().sum_all().unwrap();
        assert!(!y.requires_grad());
        assert!(y.is_leaf());
        assert!(y.backward().is_err());
        {
            // Nested guards restore the state they found, not "enabled".
            let _inner = no_grad();
            assert!(!is_grad_enabled());
        }
        assert!(!is_grad_enabled());
    }
    assert!(is_grad_enabled());
    let y = x.square().unwrap().sum_all().unwrap();
    assert!(y.requires_grad());
    y.backward().unwrap();
    assert_eq!(grad(&x), vec![2.0, 4.0]);
}

#[test]
fn no_grad_is_per_thread() {
    let _s = serial();
    let _g = no_grad();
    let x = t(&[1.0], &[1]).with_grad().unwrap();
    let other = std::thread::spawn(move || {
        assert!(is_grad_enabled());
        x.mul_scalar(2.0).unwrap().requires_grad()
    });
    assert!(other.join().unwrap());
}

#[test]
fn second_backward_on_freed_graph_is_an_error() {
    let _s = serial();
    let x = t(&[1.0, 2.0], &[2]).with_grad().unwrap();
    let loss = x.exp().unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    let first = grad(&x);
    let err = loss.backward().unwrap_err();
    assert!(matches!(err, Error::Autograd(_)));
    assert!(err.to_string().contains("already freed"), "{err}");
    // The failed call left the gradient alone.
    assert_eq!(grad(&x), first);
}

#[test]
fn set_requires_grad_only_on_float_leaves() {
    let _s = serial();
    let x = t(&[1.0], &[1]).with_grad().unwrap();
    let y = x.mul_scalar(2.0).unwrap();
    let err = y.set_requires_grad(false).unwrap_err().to_string();
    assert!(
        err.contains("set_requires_grad") && err.contains("leaf"),
        "{err}"
    );
    // After detach it is a leaf again.
    y.detach().set_requires_grad(true).unwrap();
    let ids = Tensor::from_vec(vec![1i64, 2], &[2]).unwrap();
    let err = ids.set_requires_grad(true).unwrap_err().to_string();
    assert!(
        err.contains("set_requires_grad") && err.contains("i64"),
        "{err}"
    );
    // Turning it off is always allowed on a leaf.
    ids.set_requires_grad(false).unwrap();
}

#[test]
fn backward_on_non_scalar_is_a_clear_error() {
    let _s = serial();
    let x = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]).with_grad().unwrap();
    let y = x.relu().unwrap();
    let err = y.backward().unwrap_err();
    assert!(matches!(err, Error::Autograd(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("single-element") && msg.contains("[2, 2]") && msg.contains("backward_with"),
        "{msg}"
    );
    // The graph is still intact: the explicit form works afterwards.
    y.backward_with(&Tensor::ones(&[2, 2], DType::F32).unwrap())
        .unwrap();
    assert_eq!(grad(&x), vec![1.0; 4]);
}

/// An MLP 8-32-32-4 with cross-entropy, trained by plain SGD through `update_f32`.
struct Mlp {
    params: Vec<Tensor>,
}

impl Mlp {
    fn new(gen: &mut Generator) -> Mlp {
        let mut params = Vec::new();
        for (i, o) in [(8, 32), (32, 32), (32, 4)] {
            let scale = (1.0 / i as f64).sqrt();
            params.push(
                Tensor::normal_with(&[i, o], 0.0, scale, DType::F32, gen)
                    .unwrap()
                    .with_grad()
                    .unwrap(),
            );
            params.push(
                Tensor::zeros(&[o], DType::F32)
                    .unwrap()
                    .with_grad()
                    .unwrap(),
            );
        }
        Mlp { params }
    }

    fn loss(&self, x: &Tensor, y: &Tensor) -> Tensor {
        let mut h = x.clone();
        for (k, l) in self.params.chunks(2).enumerate() {
            h = h.matmul(&l[0]).unwrap().add(&l[1]).unwrap();
            if k < 2 {
                h = h.relu().unwrap();
            }
        }
        h.log_softmax(-1)
            .unwrap()
            .gather(1, y)
            .unwrap()
            .mean_all()
            .unwrap()
            .neg()
            .unwrap()
    }

    fn sgd_step(&self, lr: f32) {
        for p in &self.params {
            let g = p.grad().expect("every parameter gets a gradient");
            let g = g.to_vec::<f32>().unwrap();
            p.update_f32(|w| {
                for (w, g) in w.iter_mut().zip(&g) {
                    *w -= lr * g;
                }
            })
            .unwrap();
            p.zero_grad();
        }
    }
}

#[test]
fn training_loop_memory_stays_flat() {
    let _s = serial();
    let mut gen = Generator::new(42);
    let x = Tensor::normal_with(&[16, 8], 0.0, 1.0, DType::F32, &mut gen).unwrap();
    let labels: Vec<i64> = (0..16).map(|_| gen.below(4) as i64).collect();
    let y = Tensor::from_vec(labels, &[16, 1]).unwrap();
    let mlp = Mlp::new(&mut gen);

    let mut live_at_10 = 0;
    let mut first_loss = 0.0;
    let mut last_loss = 0.0;
    for step in 1..=1000 {
        let loss = mlp.loss(&x, &y);
        let v = loss.item().unwrap();
        if step == 1 {
            first_loss = v;
        }
        last_loss = v;
        loss.backward().unwrap();
        drop(loss);
        mlp.sgd_step(0.1);
        if step == 10 {
            live_at_10 = LIVE.load(Ordering::Relaxed);
        }
    }
    let live_at_1000 = LIVE.load(Ordering::Relaxed);
    let growth = live_at_1000 - live_at_10;
    assert!(
        growth < 64 * 1024,
        "live heap grew by {growth} bytes between step 10 ({live_at_10}) and step 1000 ({live_at_1000})"
    );
    // It did train: a memorizable batch is (nearly) fit.
    assert!(last_loss < 0.5 * first_loss, "{first_loss} -> {last_loss}");

    // Dropping the model gives back its parameters too.
    let params_bytes: usize = mlp.params.iter().map(|p| p.numel() * 4).sum();
    drop(mlp);
    let after_drop = LIVE.load(Ordering::Relaxed);
    assert!(
        live_at_1000 - after_drop >= params_bytes as isize,
        "dropping the model freed only {} of its {params_bytes} parameter bytes",
        live_at_1000 - after_drop
    );
}

#[test]
fn graph_is_freed_by_backward_even_if_the_output_is_kept() {
    let _s = serial();
    let mut gen = Generator::new(7);
    let x = Tensor::normal_with(&[64, 64], 0.0, 1.0, DType::F32, &mut gen)
        .unwrap()
        .with_grad()
        .unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    // Saved activations: ~10 tensors of 16 KiB each.
    let mut h = x.clone();
    for _ in 0..10 {
        h = h.tanh().unwrap();
    }
    let loss = h.sum_all().unwrap();
    let during = LIVE.load(Ordering::Relaxed);
    assert!(during - before > 10 * 64 * 64 * 4, "{before} -> {during}");
    drop(h);
    loss.backward().unwrap();
    x.zero_grad();
    let after = LIVE.load(Ordering::Relaxed);
    // `loss` itself is still alive, but the activations its node held are gone.
    assert!(after - before < 16 * 1024, "{before} -> {after}");
    drop(loss);
}

#[test]
fn transposed_weight_gets_a_contiguous_gradient() -> fukai::Result<()> {
    // `x @ w.t()` is how Linear multiplies; the optimizer reads w's gradient in place only when
    // it is contiguous, and its values must match the plain product's.
    let x = Tensor::randn(&[5, 3], DType::F32)?;
    let w = Tensor::randn(&[4, 3], DType::F32)?.with_grad()?;
    x.matmul(&w.t()?)?.sum_all()?.backward()?;
    let g = w.grad().unwrap();
    assert!(g.is_contiguous());
    let expect = Tensor::ones(&[5, 4], DType::F32)?.t()?.matmul(&x)?;
    assert_eq!(g.to_vec::<f32>()?, expect.to_vec::<f32>()?);
    Ok(())
}
