//! Autoencoders and VAEs: shapes and errors, the KL term against its formula, the
//! reconstruction task's loss, and a run on the shipped digits that writes its pictures and
//! probes its features.

use fukai::data::Batch;
use fukai::models::{Autoencoder, AutoencoderConfig, Model, Task};
use fukai::nn::loss::binary_cross_entropy_with_logits;
use fukai::nn::Module;
use fukai::run::{Existing, Run, RunConfig};
use fukai::{DType, Tensor};
use std::path::PathBuf;

mod rng_lock;
use rng_lock::seeded;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fukai-ae-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cfg(variational: bool) -> AutoencoderConfig {
    AutoencoderConfig {
        input_shape: vec![1, 28, 28],
        channels: vec![4, 8],
        latent: 3,
        variational,
        beta: 0.5,
        noise: 0.0,
        pool: false,
    }
}

#[test]
fn shapes_and_bad_configs() {
    let _rng = seeded(0);
    let ae = Autoencoder::new(cfg(false)).unwrap();
    let x = Tensor::rand(&[5, 1, 28, 28], DType::F32).unwrap();
    assert_eq!(ae.encode(&x).unwrap().shape(), &[5, 3]);
    assert_eq!(ae.features(&x).unwrap().shape(), &[5, 8 * 7 * 7]);
    assert_eq!(ae.forward(&x).unwrap().shape(), &[5, 1, 28, 28]);
    assert_eq!(ae.task(), Task::Reconstruction);
    let e = ae
        .forward(&Tensor::rand(&[5, 1, 32, 32], DType::F32).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("[batch, 1, 28, 28]") && e.contains("32"), "{e}");
    let e = ae
        .decode(&Tensor::zeros(&[2, 4], DType::F32).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("[batch, 3]"), "{e}");
    let bad = |f: &dyn Fn(&mut AutoencoderConfig), what: &str| {
        let mut c = cfg(true);
        f(&mut c);
        let e = Autoencoder::new(c).err().expect(what).to_string();
        assert!(e.contains("Autoencoder"), "{what}: {e}");
    };
    bad(
        &|c| c.input_shape = vec![1, 30, 28],
        "30 is not divisible by 4",
    );
    bad(&|c| c.input_shape = vec![784], "flat input");
    bad(&|c| c.channels = vec![], "no stages");
    bad(&|c| c.latent = 0, "empty code");
    bad(&|c| c.beta = f64::NAN, "nan beta");
    bad(&|c| c.channels = vec![4, 0], "zero channels");
    bad(&|c| c.noise = 1.0, "all pixels masked");
}

/// With `pool`, each encoder stage is a stride-1 convolution, its ReLU and 2×2 max pooling: the
/// features are the max over each window of the full-resolution maps, the shapes as before.
#[test]
fn pooling_encoders_take_the_window_maxima() {
    let _rng = seeded(3);
    let ae = Autoencoder::new(AutoencoderConfig {
        pool: true,
        ..cfg(false)
    })
    .unwrap();
    let d = ae.describe();
    assert_eq!(d.matches("MaxPool2d(2x2)").count(), 2, "{d}");
    let x = Tensor::rand(&[3, 1, 28, 28], DType::F32).unwrap();
    let feats = ae.features(&x).unwrap();
    assert_eq!(feats.shape(), &[3, 8 * 7 * 7]);
    assert_eq!(ae.forward(&x).unwrap().shape(), &[3, 1, 28, 28]);
    // Stage by stage: conv (stride 1), ReLU, then the window maxima.
    let stages = ae.encoder().forward_all(&x).unwrap();
    let relu2 = &stages[4];
    assert_eq!(relu2.shape(), &[3, 8, 14, 14]);
    let want = relu2
        .max_pool2d([2, 2], [2, 2], [0, 0])
        .unwrap()
        .reshape(&[3, 8 * 7 * 7])
        .unwrap();
    assert_eq!(
        feats.to_vec::<f32>().unwrap(),
        want.to_vec::<f32>().unwrap()
    );
    // Stride-1 stages keep the input's size until the pooling.
    assert_eq!(stages[0].shape(), &[3, 4, 28, 28]);
    // Gradients reach the first convolution's weights through both poolings.
    let loss = ae.forward(&x).unwrap().square().unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    let mut grads = 0;
    ae.visit("", &mut |name, t, _| {
        if name.starts_with("encoder.0.") {
            let g = t.grad().expect("a gradient for the first conv");
            assert!(
                g.to_vec::<f32>().unwrap().iter().any(|v| *v != 0.0),
                "{name}"
            );
            grads += 1;
        }
    });
    assert_eq!(grads, 2, "weight and bias of the first convolution");
}

/// In eval mode a VAE decodes the mean, and its penalty is beta times the KL divergence of
/// N(mu, exp(logvar)) from N(0, 1) per sample, per pixel — computed here from the code.
#[test]
fn the_vae_penalty_is_the_weighted_kl_divergence() {
    let _rng = seeded(1);
    let mut vae = Autoencoder::new(cfg(true)).unwrap();
    vae.set_training(false);
    let x = Tensor::rand(&[4, 1, 28, 28], DType::F32).unwrap();
    let batch = Batch::new(x.clone(), x.clone());
    let (out, penalty) = vae.forward_with_penalty(&batch).unwrap();
    let mu = vae.encode(&x).unwrap();
    assert_eq!(
        out.to_vec::<f32>().unwrap(),
        vae.decode(&mu).unwrap().to_vec::<f32>().unwrap()
    );
    // The log-variances are the code's second half.
    let code = vae.features(&x).unwrap();
    let lin_w = vae.named_parameters();
    let (w, b) = (
        &lin_w
            .iter()
            .find(|(n, _)| n == "to_latent.weight")
            .unwrap()
            .1,
        &lin_w.iter().find(|(n, _)| n == "to_latent.bias").unwrap().1,
    );
    let full = code
        .matmul(&w.transpose(0, 1).unwrap())
        .unwrap()
        .add(b)
        .unwrap();
    let (m, lv) = (
        full.to_vec_f64().unwrap(),
        full.narrow(1, 3, 3).unwrap().to_vec_f64().unwrap(),
    );
    let mut kl = 0.0;
    for i in 0..4 {
        for j in 0..3 {
            let (mu, lv) = (m[i * 6 + j], lv[i * 3 + j]);
            kl += -0.5 * (1.0 + lv - mu * mu - lv.exp());
        }
    }
    let want = 0.5 * kl / 4.0 / 784.0;
    let got = penalty.expect("a VAE has a penalty").item().unwrap();
    assert!(
        (got - want).abs() < 1e-6 * want.abs().max(1e-3),
        "{got} vs {want}"
    );
    // A plain autoencoder has none.
    let ae = Autoencoder::new(cfg(false)).unwrap();
    assert!(ae.forward_with_penalty(&batch).unwrap().1.is_none());
    // In training the code is sampled: two passes differ.
    vae.set_training(true);
    let a = vae.forward(&x).unwrap().to_vec::<f32>().unwrap();
    let b = vae.forward(&x).unwrap().to_vec::<f32>().unwrap();
    assert_ne!(a, b);
}

#[test]
fn the_reconstruction_loss_is_binary_cross_entropy() {
    let logits = Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 0.0], &[1, 4]).unwrap();
    let target = Tensor::from_vec(vec![1.0f32, 0.0, 0.5, 1.0], &[1, 4]).unwrap();
    let b = Batch::new(logits.clone(), target.clone());
    let l = fukai::train::loss(Task::Reconstruction, &logits, &b, 0.0)
        .unwrap()
        .item()
        .unwrap();
    let want = binary_cross_entropy_with_logits(&logits, &target)
        .unwrap()
        .item()
        .unwrap();
    assert_eq!(l, want);
}

/// An autoencoder on the 5,000 shipped digits (their labels unused) for a few epochs: the
/// loss falls, the pictures are written, and the probes report accuracies for pixels, the code
/// and the encoder's feature maps.
#[test]
#[ignore = "trains for about a minute in release builds; run with --include-ignored"]
fn an_autoencoder_run_writes_its_pictures_and_probes() {
    // A run seeds and draws from the default generator too.
    let _rng = rng_lock::hold();
    for kind in ["vae", "autoencoder"] {
        let out = scratch(kind);
        let cfg: RunConfig = serde_json::from_str(&format!(
            r#"{{"name": "{kind}-digits",
            "data": {{"format": "mnist-csv", "probe_labels": 500}},
            "model": {{"kind": "{kind}", "channels": [16, 32], "latent": 8}},
            "train": {{"epochs": 3, "batch_size": 64, "lr": 0.003}}}}"#
        ))
        .unwrap();
        let run = Run::prepare(&cfg, &fukai::run::shipped_mnist(), &out, Existing::Refuse).unwrap();
        let outcome = run.train(None, false).unwrap();
        let h = &outcome.report.history;
        assert!(
            h.last().unwrap().train_loss < 0.8 * h[0].train_loss,
            "{kind}: {:?}",
            h.iter().map(|m| m.train_loss).collect::<Vec<_>>()
        );
        let mut pictures = vec!["reconstructions.png", "latent.png"];
        if kind == "vae" {
            pictures.push("samples.png");
        }
        for f in pictures {
            let img = image::open(out.join(f)).unwrap_or_else(|e| panic!("{kind}: {f}: {e}"));
            assert!(img.width() > 100, "{kind}: {f}");
        }
        let shown = outcome
            .showcase
            .expect("an autoencoder run shows its probe");
        assert_eq!(shown["probe_labels"], 500);
        for feats in ["pixels", "latent", "encoder"] {
            let acc = shown["probe"][feats]["test_accuracy"].as_f64().unwrap();
            // Digits are easy: every probe is far above the 10% of guessing.
            assert!(acc > 0.6, "{kind}: {feats} probe {acc}");
        }
        let test = outcome.test.unwrap();
        assert!(test.mse().unwrap() < 0.05, "{kind}: {}", test.describe());
    }
}

/// A VAE's training steps (sampling included) are the same bits at 1 and 2 threads.
#[test]
fn vae_training_is_deterministic_across_thread_counts() {
    use fukai::optim::{Adam, Optimizer};
    let run = |threads: usize| -> Vec<u32> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let _rng = seeded(5);
                let vae = Autoencoder::new(cfg(true)).unwrap();
                let x = Tensor::rand(&[8, 1, 28, 28], DType::F32).unwrap();
                let b = Batch::new(x.clone(), x);
                let mut opt = Adam::new(vae.parameters(), 0.01);
                for _ in 0..3 {
                    let (out, pen) = vae.forward_with_penalty(&b).unwrap();
                    let loss = fukai::train::loss(Task::Reconstruction, &out, &b, 0.0)
                        .unwrap()
                        .add(&pen.unwrap())
                        .unwrap();
                    loss.backward().unwrap();
                    opt.step().unwrap();
                    opt.zero_grad();
                }
                vae.parameters()
                    .iter()
                    .flat_map(|p| p.to_vec::<f32>().unwrap())
                    .map(f32::to_bits)
                    .collect()
            })
    };
    assert!(run(1) == run(2), "bits differ between 1 and 2 threads");
}
