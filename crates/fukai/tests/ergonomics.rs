//! The PyTorch-shaped conveniences: `train()`/`eval()`, one-call `save`/`load`, datasets from
//! tensors and named schedule constructors.

use fukai::data::{Dataset, InMemory};
use fukai::nn::{BatchNorm, Dropout, Linear, Module, Sequential};
use fukai::optim::LrSchedule;
use fukai::{DType, Tensor};
use std::path::PathBuf;

fn tmp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fukai-ergonomics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn bits(t: &Tensor) -> Vec<u64> {
    t.to_vec_f64()
        .unwrap()
        .into_iter()
        .map(f64::to_bits)
        .collect()
}

fn linear_dropout() -> Sequential {
    Sequential::new()
        .add(Linear::new(8, 16, true).unwrap())
        .add(Dropout::new(0.5))
}

#[test]
fn train_and_eval_toggle_dropout() {
    let mut model = linear_dropout();
    let x = Tensor::ones(&[4, 8], DType::F32).unwrap();
    // Layers start in training mode: two passes draw different masks.
    let a = model.forward(&x).unwrap();
    let b = model.forward(&x).unwrap();
    assert_ne!(bits(&a), bits(&b));

    model.eval();
    let c = model.forward(&x).unwrap();
    let d = model.forward(&x).unwrap();
    assert_eq!(bits(&c), bits(&d));
    let linear_only = model.layers()[0].forward(&x).unwrap();
    assert_eq!(bits(&c), bits(&linear_only), "eval dropout is the identity");

    model.train();
    let e = model.forward(&x).unwrap();
    let f = model.forward(&x).unwrap();
    assert_ne!(bits(&e), bits(&f));
}

#[test]
fn train_and_eval_work_through_dyn_module() {
    let mut boxed: Box<dyn Module> = Box::new(linear_dropout());
    let x = Tensor::ones(&[2, 8], DType::F32).unwrap();
    boxed.eval();
    let a = boxed.forward(&x).unwrap();
    assert_eq!(bits(&a), bits(&boxed.forward(&x).unwrap()));
    boxed.train();
    assert_ne!(bits(&a), bits(&boxed.forward(&x).unwrap()));
}

#[test]
fn module_zero_grad_clears_every_parameter() {
    let model = linear_dropout();
    let x = Tensor::ones(&[2, 8], DType::F32).unwrap();
    model
        .forward(&x)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(model.parameters().iter().all(|p| p.grad().is_some()));
    model.zero_grad();
    assert!(model.parameters().iter().all(|p| p.grad().is_none()));
}

fn linear_batchnorm() -> Sequential {
    Sequential::new()
        .add(Linear::new(3, 4, true).unwrap())
        .add(BatchNorm::new(4).unwrap())
}

#[test]
fn save_load_round_trip_is_bit_exact() {
    fukai::manual_seed(1);
    let trained = linear_batchnorm();
    // A training pass moves the batch-norm buffers (f32 stats, i64 counter) off their init.
    trained
        .forward(&Tensor::randn(&[5, 3], DType::F32).unwrap())
        .unwrap();
    let path = tmp_file("round_trip.safetensors");
    trained.save(&path).unwrap();

    fukai::manual_seed(2);
    let mut fresh = linear_batchnorm();
    assert_ne!(
        bits(&fresh.state_dict()[0].1),
        bits(&trained.state_dict()[0].1)
    );
    fresh.load(&path).unwrap();
    let (want, got) = (trained.state_dict(), fresh.state_dict());
    assert_eq!(want.len(), got.len());
    for ((wn, wt), (gn, gt)) in want.iter().zip(&got) {
        assert_eq!(wn, gn);
        assert_eq!(wt.dtype(), gt.dtype(), "{wn}");
        assert_eq!(bits(wt), bits(gt), "{wn}");
    }

    let mut trained = trained;
    trained.eval();
    fresh.eval();
    let x = Tensor::randn(&[2, 3], DType::F32).unwrap();
    assert_eq!(
        bits(&trained.forward(&x).unwrap()),
        bits(&fresh.forward(&x).unwrap())
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn load_errors_name_the_file_and_leave_the_model_untouched() {
    let path = tmp_file("wrong_shape.safetensors");
    Linear::new(3, 5, true).unwrap().save(&path).unwrap();
    let model = Linear::new(3, 4, true).unwrap();
    let before = bits(&model.weight);
    let err = model.load(&path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("[4, 3]") && err.contains("[5, 3]"), "{err}");
    assert_eq!(bits(&model.weight), before);
    std::fs::remove_file(&path).unwrap();

    let missing = tmp_file("does_not_exist.safetensors");
    let err = model.load(&missing).unwrap_err().to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

#[test]
fn in_memory_from_tensors() {
    let x = Tensor::arange(0.0, 12.0, 1.0, DType::F64)
        .unwrap()
        .reshape(&[3, 2, 2])
        .unwrap();
    let y = Tensor::from_vec(vec![0u8, 2, 1], &[3]).unwrap();
    let ds = InMemory::from_tensors(&x, &y).unwrap();
    assert_eq!((ds.len(), ds.classes()), (3, 3));
    assert_eq!(ds.sample_shape(), &[2, 2]);
    let mut out = [0f32; 4];
    assert_eq!(ds.get(1, &mut out).unwrap(), 2);
    assert_eq!(out, [4.0, 5.0, 6.0, 7.0]);

    // A strided view is read in its logical order.
    let xt = Tensor::from_vec(vec![1f32, 2., 3., 4.], &[2, 2])
        .unwrap()
        .t()
        .unwrap();
    let ds = InMemory::from_tensors(&xt, &Tensor::from_vec(vec![0i64, 0], &[2]).unwrap()).unwrap();
    let mut row = [0f32; 2];
    ds.get(0, &mut row).unwrap();
    assert_eq!(row, [1.0, 3.0]);
    assert_eq!(ds.classes(), 1);
}

#[test]
fn in_memory_from_tensors_errors() {
    let x = Tensor::zeros(&[3, 2], DType::F32).unwrap();
    let err = |x: &Tensor, y: &Tensor| match InMemory::from_tensors(x, y) {
        Ok(_) => panic!("accepted x {:?} y {:?}", x.shape(), y.shape()),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("InMemory::from_tensors: "), "{msg}");
            msg
        }
    };
    let labels = |v: Vec<i64>| Tensor::from_vec(v.clone(), &[v.len()]).unwrap();

    let msg = err(&x, &labels(vec![0, 1]));
    assert!(
        msg.contains("[3]") && msg.contains("[3, 2]") && msg.contains("[2]"),
        "{msg}"
    );
    let msg = err(&x, &Tensor::zeros(&[3, 1], DType::I64).unwrap());
    assert!(msg.contains("[3, 1]"), "{msg}");
    let msg = err(&x, &Tensor::zeros(&[3], DType::F32).unwrap());
    assert!(msg.contains("integer") && msg.contains("f32"), "{msg}");
    let msg = err(&x, &labels(vec![0, -1, 1]));
    assert!(msg.contains("-1") && msg.contains("sample 1"), "{msg}");
    let msg = err(&x, &labels(vec![0, 1 << 40, 1]));
    assert!(msg.contains(&(1i64 << 40).to_string()), "{msg}");
    let msg = err(
        &Tensor::zeros(&[3, 0], DType::F32).unwrap(),
        &labels(vec![0, 1, 2]),
    );
    assert!(msg.contains("[3, 0]") && msg.contains("no values"), "{msg}");
    let msg = err(&Tensor::scalar(1.0, DType::F32), &labels(vec![0]));
    assert!(msg.contains("scalar"), "{msg}");
    let msg = err(
        &Tensor::zeros(&[3, 2], DType::U8).unwrap(),
        &labels(vec![0, 1, 2]),
    );
    assert!(msg.contains("float") && msg.contains("u8"), "{msg}");
}

#[test]
fn schedule_constructors_build_the_variants() {
    assert_eq!(LrSchedule::constant(), LrSchedule::Constant);
    assert_eq!(
        LrSchedule::cosine(100, 10, 1e-5),
        LrSchedule::WarmupCosine {
            warmup: 10,
            total: 100,
            min_lr: 1e-5
        }
    );
    assert_eq!(
        LrSchedule::one_cycle(50, 0.3),
        LrSchedule::OneCycle {
            total: 50,
            pct_start: 0.3
        }
    );
    assert_eq!(
        LrSchedule::step(7, 0.5),
        LrSchedule::Step {
            step_size: 7,
            gamma: 0.5
        }
    );
    assert_eq!(LrSchedule::step(7, 0.5).lr(1.0, 14), 0.25);
}
