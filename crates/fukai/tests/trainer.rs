//! The Trainer from library code: divergence stops a run naming the step and the tensor, early
//! stopping ends a run whose validation loss rises, gradient accumulation equals one big
//! batch, and a resumed run (library API) equals an uninterrupted one bit for bit.

use fukai::data::{DataLoader, InMemory};
use fukai::models::{self, Mlp, MlpConfig, Model};
use fukai::train::{Batches, Stop, TrainConfig, Trainer};
use std::sync::Arc;

/// Three noisy, separable classes in 4 features; `flip` relabels every class (c -> c + 1).
fn blobs(n: usize, seed: u64, flip: bool) -> InMemory {
    let mut g = fukai::Generator::new(seed);
    let noise = g.normal_f64(n * 4);
    let mut x = Vec::with_capacity(n * 4);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 3;
        for j in 0..4 {
            x.push((c as f64 * (j as f64 + 1.0) * 0.7 + noise[i * 4 + j] * 0.5) as f32);
        }
        y.push(if flip { ((c + 1) % 3) as i64 } else { c as i64 });
    }
    InMemory::new(x, y, &[4], 3).unwrap()
}

/// The default generator (initialization, dropout) is one per process, as in PyTorch: tests
/// that draw from it take turns, or one test's draws would land in another's run.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn mlp(seed: u64, dropout: f64) -> Mlp {
    fukai::manual_seed(seed);
    let mut c = MlpConfig::new(&[4], &[16], 3);
    c.dropout = dropout;
    Mlp::new(c).unwrap()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("fukai-trainer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_huge_learning_rate_diverges_with_the_step_named() {
    let _rng = serial();
    let data = Arc::new(blobs(192, 1, false));
    let train = DataLoader::new(data, 16).shuffle(0);
    let mut cfg = TrainConfig::new(20, 16, 1e6);
    cfg.divergence_factor = 100.0;
    let mut t = Trainer::new(mlp(0, 0.0), cfg).unwrap();
    let e = t.fit(&train, None).unwrap_err().to_string();
    assert!(e.contains("diverged at step"), "{e}");
    assert!(e.contains("train.lr"), "{e}");
    assert!(t.step() < 200, "stopped only after {} steps", t.step());
}

#[test]
fn a_non_finite_input_is_named() {
    let _rng = serial();
    let mut x = vec![0.5f32; 32 * 4];
    x[7] = f32::NAN;
    let data = Arc::new(InMemory::new(x, vec![0; 32], &[4], 3).unwrap());
    let mut t = Trainer::new(mlp(0, 0.0), TrainConfig::new(1, 32, 1e-2)).unwrap();
    let e = t
        .fit(&DataLoader::new(data, 32), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("diverged at step 1") && e.contains("the input batch"),
        "{e}"
    );
}

#[test]
fn early_stopping_ends_a_run_whose_validation_loss_rises() {
    let _rng = serial();
    let train = DataLoader::new(Arc::new(blobs(300, 2, false)), 16).shuffle(0);
    // Validation labels disagree with training: the better it fits, the worse validation gets.
    let val = DataLoader::new(Arc::new(blobs(60, 3, true)), 60);
    let mut cfg = TrainConfig::new(50, 16, 1e-2);
    cfg.patience = Some(2);
    let mut t = Trainer::new(mlp(1, 0.0), cfg).unwrap();
    let r = t.fit(&train, Some(&val)).unwrap();
    assert_eq!(r.stop, Stop::EarlyStopped);
    let best = r.best_epoch.unwrap();
    assert_eq!(r.history.len(), best + 2, "stops 2 epochs after the best");
    let losses: Vec<f64> = r.history.iter().map(|m| m.val_loss.unwrap()).collect();
    assert!(
        losses[best..].iter().all(|&l| l >= losses[best - 1]),
        "{losses:?}"
    );
}

#[test]
fn accumulating_micro_batches_equals_one_large_batch() {
    let _rng = serial();
    let data = Arc::new(blobs(96, 4, false));
    let run = |bs: usize, acc: usize| {
        let mut cfg = TrainConfig::new(2, bs, 1e-2);
        cfg.accumulate = acc;
        cfg.optimizer = "sgd".into();
        let mut t = Trainer::new(mlp(5, 0.0), cfg).unwrap();
        t.fit(&DataLoader::new(data.clone(), bs), None).unwrap();
        t.model()
            .parameters()
            .iter()
            .flat_map(|p| p.to_vec::<f32>().unwrap())
            .collect::<Vec<f32>>()
    };
    let (a, b) = (run(32, 1), run(8, 4));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "accumulated weights differ by {worst}");
    assert_ne!(a, run(8, 1), "the comparison must be able to fail");
}

#[test]
fn resume_from_a_library_checkpoint_is_bit_exact() {
    let _rng = serial();
    let data = Arc::new(blobs(200, 6, false));
    let val = DataLoader::new(Arc::new(blobs(30, 7, false)), 30);
    let train = DataLoader::new(data, 8).shuffle(9);
    let mut cfg = TrainConfig::new(3, 8, 5e-3);
    cfg.schedule = "cosine".into();
    cfg.accumulate = 3;
    let bits = |m: &dyn Model| -> Vec<u32> {
        m.state_dict()
            .iter()
            .flat_map(|(_, t)| t.to_vec::<f32>().unwrap())
            .map(f32::to_bits)
            .collect()
    };
    let dir = scratch("resume");
    let mut full = Trainer::new(mlp(3, 0.3), cfg.clone())
        .unwrap()
        .checkpoint_dir(dir.join("a"));
    let ra = full.fit(&train, Some(&val)).unwrap();
    let mut part = Trainer::new(mlp(3, 0.3), cfg.clone())
        .unwrap()
        .checkpoint_dir(dir.join("b"))
        .max_steps(Some(11));
    assert_eq!(part.fit(&train, Some(&val)).unwrap().stop, Stop::StepLimit);
    // A new process would build the model afresh (other weights, other RNG state) and resume.
    let mut rest = Trainer::new(mlp(99, 0.3), cfg.clone())
        .unwrap()
        .checkpoint_dir(dir.join("b"));
    rest.resume(dir.join("b/checkpoint.safetensors")).unwrap();
    let rb = rest.fit(&train, Some(&val)).unwrap();
    assert_eq!(bits(full.model()), bits(rest.model()));
    assert_eq!(ra.history.len(), rb.history.len());
    for (x, y) in ra.history.iter().zip(&rb.history) {
        assert_eq!(
            (x.train_loss, x.val_loss, x.step),
            (y.train_loss, y.val_loss, y.step)
        );
    }
    // The checkpoint alone rebuilds the model.
    let back = models::load(dir.join("a/checkpoint.safetensors")).unwrap();
    assert_eq!(bits(back.as_ref()), bits(full.model()));
    // Another config is refused, naming the field.
    let mut other = cfg.clone();
    other.lr = 1e-3;
    let mut t = Trainer::new(mlp(3, 0.3), other).unwrap();
    let e = t
        .resume(dir.join("b/checkpoint.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("train.lr: checkpoint 0.005, now 0.001"), "{e}");
}

/// A data-parallel rank reads only its batches of an epoch: `Batches::select` gives exactly
/// the batches the whole epoch has at those positions, both the DataLoader's own (which makes
/// only those) and the trait's default (which walks the epoch).
#[test]
fn a_rank_selects_the_batches_the_epoch_has_there() {
    struct Walk<'a>(&'a DataLoader);
    impl Batches for Walk<'_> {
        fn len(&self) -> usize {
            Batches::len(self.0)
        }
        fn samples(&self) -> usize {
            self.0.samples()
        }
        fn epoch(
            &self,
            epoch: u64,
            start: usize,
        ) -> Box<dyn Iterator<Item = fukai::Result<fukai::data::Batch>> + Send + '_> {
            Batches::epoch(self.0, epoch, start)
        }
    }
    let loader = DataLoader::new(Arc::new(blobs(42, 1, false)), 4).shuffle(3);
    let rows = |b: fukai::Result<fukai::data::Batch>| b.unwrap().x.to_vec::<f32>().unwrap();
    let all: Vec<Vec<f32>> = Batches::epoch(&loader, 2, 0).map(rows).collect();
    assert_eq!(all.len(), 11);
    for which in [vec![1, 3, 4, 10], vec![0], vec![5, 6, 7], vec![]] {
        let want: Vec<Vec<f32>> = which.iter().map(|&i| all[i].clone()).collect();
        let own: Vec<Vec<f32>> = loader.select(2, which.clone()).map(rows).collect();
        let walked: Vec<Vec<f32>> = Walk(&loader).select(2, which.clone()).map(rows).collect();
        assert_eq!(own, want, "{which:?}");
        assert_eq!(walked, want, "{which:?}");
    }
}
