//! Learning from images without their labels: an autoencoder or VAE run's data, and what the
//! run shows afterwards — reconstructions, samples from the prior, the latent space coloured
//! by the labels the model never saw, and a linear probe that measures how useful the learned
//! features are when only a few labels exist.

use super::data::{carve_validation, describe, load, Showcase};
use super::pictures::Grid;
use super::{Prepared, RunConfig};
use crate::bail;
use crate::data::{
    self, DataLoader, Dataset, InMemory, RandomCrop, RandomHorizontalFlip, Transform,
};
use crate::error::Result;
use crate::models::{Autoencoder, AutoencoderConfig, ModelConfig};
use crate::nn::loss::cross_entropy;
use crate::nn::Module;
use crate::optim::{Adam, Optimizer};
use crate::rng::Generator;
use crate::tensor::{DType, Tensor};
use crate::train::Autoencoding;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::Arc;

/// Images, split; the model reads them in [0, 1], unnormalized, as its targets are the same.
pub(super) fn prepare(cfg: &RunConfig, path: &Path) -> Result<Prepared> {
    let (d, m, t) = (&cfg.data, &cfg.model, &cfg.train);
    let splits = load(d, path, t.seed)?;
    let shape = splits.train.sample_shape().to_vec();
    let (train, val) = carve_validation(&splits.train, d.val_fraction, t.seed)?;
    if train.is_empty() {
        bail!(
            "config",
            "no training images are left after holding out data.val_fraction = {}",
            d.val_fraction
        );
    }
    let mut tfm: Vec<Box<dyn Transform>> = Vec::new();
    if d.crop_padding > 0 {
        tfm.push(Box::new(RandomCrop {
            padding: d.crop_padding,
        }));
    }
    if d.hflip {
        tfm.push(Box::new(RandomHorizontalFlip { p: 0.5 }));
    }
    let model = ModelConfig::Autoencoder(AutoencoderConfig {
        input_shape: shape.clone(),
        channels: if m.channels.is_empty() {
            vec![32, 64]
        } else {
            m.channels.clone()
        },
        latent: m.latent.unwrap_or(16),
        variational: m.kind == "vae",
        beta: m.beta.unwrap_or(1.0),
        noise: m.noise.unwrap_or(0.0),
        pool: m.pool,
    });
    let eval = |set: &InMemory| -> Box<dyn crate::train::Batches> {
        Box::new(Autoencoding(Box::new(DataLoader::new(
            Arc::new(set.clone()),
            500,
        ))))
    };
    let train_loader = DataLoader::new(Arc::new(train.clone()), t.batch_size)
        .shuffle(t.seed)
        .transforms(tfm);
    let probe_labels = d.probe_labels.unwrap_or(1000).min(train.len());
    Ok(Prepared {
        model,
        train: Box::new(Autoencoding(Box::new(train_loader))),
        val: val.as_ref().map(eval),
        test: eval(&splits.test),
        metadata: vec![
            ("classes".into(), super::data::json(&splits.class_names)),
            ("input_shape".into(), super::data::json(&shape)),
        ],
        class_names: splits.class_names.clone(),
        describe: describe(
            train.len(),
            val.as_ref().map(|v| v.len()),
            splits.test.len(),
            "images (labels unused)",
        ),
        notes: Vec::new(),
        baseline: None,
        showcase: Some(Showcase::Images {
            train,
            test: splits.test,
            class_names: splits.class_names,
            probe_labels,
        }),
    })
}

/// Images `rows` of `set` as one tensor `[n, C, H, W]`.
fn images(set: &InMemory, rows: &[usize]) -> Result<Tensor> {
    let shape = set.sample_shape().to_vec();
    let per: usize = shape.iter().product();
    let mut x = vec![0f32; rows.len() * per];
    for (&r, out) in rows.iter().zip(x.chunks_mut(per.max(1))) {
        set.get(r, out)?;
    }
    let mut full = vec![rows.len()];
    full.extend(shape);
    Tensor::from_vec(x, &full)
}

/// A map from images `[n, C, H, W]` to features `[n, ...]`.
type Features<'a> = dyn Fn(&Tensor) -> Result<Tensor> + 'a;

/// `f` over `rows` of `set` in batches of 500, rows concatenated: `[n, features]`.
fn map_batches(set: &InMemory, rows: &[usize], f: &Features) -> Result<Tensor> {
    let _g = crate::no_grad();
    let parts = rows
        .chunks(500)
        .map(|c| {
            let x = images(set, c)?;
            let y = f(&x)?;
            let n = y.shape()[0];
            y.reshape(&[n, y.numel() / n.max(1)])
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&parts, 0)
}

/// What the run shows of a trained autoencoder; returns the probe's numbers for the summary.
pub(super) fn show(
    model: &Autoencoder,
    data: &Showcase,
    out: &Path,
    seed: u64,
) -> Result<Map<String, Value>> {
    let Showcase::Images {
        train,
        test,
        class_names,
        probe_labels,
    } = data
    else {
        bail!("showcase", "an autoencoder shows images, not clips");
    };
    // Graphs are recorded only while the probes fit.
    let g = crate::no_grad();
    let cfg = model.cfg();
    let [c, h, w] = [cfg.input_shape[0], cfg.input_shape[1], cfg.input_shape[2]];
    let mut summary = Map::new();

    // Reconstructions: 16 test images above their reconstructions.
    let picks: Vec<usize> = (0..test.len())
        .step_by((test.len() / 16).max(1))
        .take(16)
        .collect();
    let x = images(test, &picks)?;
    let recon = model.forward(&x)?.sigmoid()?;
    let tiles = |t: &Tensor| -> Result<Vec<Vec<f32>>> {
        let v = t.to_vec::<f32>()?;
        Ok(v.chunks(c * h * w).map(<[f32]>::to_vec).collect())
    };
    let mut grid = Grid::new([c, h, w]);
    grid.row(tiles(&x)?);
    grid.row(tiles(&recon)?);
    grid.save_png(&out.join("reconstructions.png"), 3)?;
    let mut files = vec!["reconstructions.png"];

    // Samples: codes drawn from the prior N(0, I), decoded.
    if cfg.variational {
        let z = Tensor::from_vec(
            Generator::new(seed ^ 0x05a3_b1e5)
                .normal_f64(64 * cfg.latent)
                .into_iter()
                .map(|v| v as f32)
                .collect(),
            &[64, cfg.latent],
        )?;
        let s = tiles(&model.decode(&z)?.sigmoid()?)?;
        let mut grid = Grid::new([c, h, w]);
        for row in s.chunks(8) {
            grid.row(row.to_vec());
        }
        grid.save_png(&out.join("samples.png"), 3)?;
        files.push("samples.png");
    }

    // The latent space of up to 5,000 test images, coloured by their labels.
    let shown: Vec<usize> = (0..test.len().min(5000)).collect();
    let codes = map_batches(test, &shown, &|x| model.encode(x))?;
    let labels: Vec<i64> = shown.iter().map(|&i| test.label(i)).collect();
    let (points, how) = project_2d(&codes)?;
    #[cfg(feature = "report")]
    {
        let title = format!("{} test codes, {how} (colour: unseen label)", shown.len());
        super::pictures::scatter_png(
            &out.join("latent.png"),
            &title,
            &points,
            &labels,
            class_names,
        )?;
        files.push("latent.png");
    }
    let _ = (&points, &labels, how);
    summary.insert("pictures".into(), json!(files));

    // Linear probes: logistic regression on `probe_labels` labeled training images.
    drop(g);
    let rows = probe_rows(train, *probe_labels, seed)?;
    let test_rows: Vec<usize> = (0..test.len()).collect();
    let classes = class_names.len().max(train.classes());
    let mut probes = Map::new();
    let feats: [(&str, &Features); 3] = [
        ("pixels", &|x: &Tensor| Ok(x.clone())),
        ("latent", &|x: &Tensor| model.encode(x)),
        ("encoder", &|x: &Tensor| model.features(x)),
    ];
    for (name, f) in feats {
        let tr = map_batches(train, &rows, f)?;
        let te = map_batches(test, &test_rows, f)?;
        let ytr: Vec<i64> = rows.iter().map(|&i| train.label(i)).collect();
        let yte: Vec<i64> = test_rows.iter().map(|&i| test.label(i)).collect();
        let p = linear_probe(&tr, &ytr, &te, &yte, classes)?;
        probes.insert(
            name.into(),
            json!({"test_accuracy": p.accuracy, "l2": p.l2, "features": tr.shape()[1]}),
        );
    }
    summary.insert("probe_labels".into(), json!(rows.len()));
    summary.insert("probe".into(), Value::Object(probes));
    Ok(summary)
}

/// `n` training rows, the same share of every class (a stratified draw).
fn probe_rows(train: &InMemory, n: usize, seed: u64) -> Result<Vec<usize>> {
    let labels: Vec<i64> = (0..train.len()).map(|i| train.label(i)).collect();
    if n >= labels.len() {
        return Ok((0..labels.len()).collect());
    }
    let keep = n as f64 / labels.len() as f64;
    let (_, mut rows) = data::stratified_split(&labels, keep, seed ^ 0x009e_0be5)?;
    rows.sort_unstable();
    Ok(rows)
}

/// The first two principal components of `codes` `[n, k]` (the codes themselves when k ≤ 2),
/// and how the points were made.
fn project_2d(codes: &Tensor) -> Result<(Vec<(f64, f64)>, &'static str)> {
    let (n, k) = (codes.shape()[0], codes.shape()[1]);
    let v = codes.to_vec_f64()?;
    if k <= 2 {
        let pts = (0..n)
            .map(|i| (v[i * k], if k == 2 { v[i * k + 1] } else { 0.0 }))
            .collect();
        return Ok((pts, "the 2-D code"));
    }
    let mean: Vec<f64> = (0..k)
        .map(|j| (0..n).map(|i| v[i * k + j]).sum::<f64>() / n.max(1) as f64)
        .collect();
    let mut cov = vec![0.0; k * k];
    for i in 0..n {
        for a in 0..k {
            let da = v[i * k + a] - mean[a];
            for b in 0..k {
                cov[a * k + b] += da * (v[i * k + b] - mean[b]);
            }
        }
    }
    // Power iteration with deflation: two leading eigenvectors, from a fixed start.
    let mut axes: Vec<Vec<f64>> = Vec::new();
    for _ in 0..2 {
        let mut u: Vec<f64> = (0..k).map(|j| 1.0 + j as f64 / k as f64).collect();
        for _ in 0..500 {
            let mut next: Vec<f64> = (0..k)
                .map(|a| (0..k).map(|b| cov[a * k + b] * u[b]).sum())
                .collect();
            for ax in &axes {
                let d: f64 = next.iter().zip(ax).map(|(x, y)| x * y).sum();
                next.iter_mut().zip(ax).for_each(|(x, y)| *x -= d * y);
            }
            let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            u = next.into_iter().map(|x| x / norm).collect();
        }
        axes.push(u);
    }
    let pts = (0..n)
        .map(|i| {
            let p = |ax: &[f64]| (0..k).map(|j| (v[i * k + j] - mean[j]) * ax[j]).sum();
            (p(&axes[0]), p(&axes[1]))
        })
        .collect();
    Ok((pts, "first two principal components"))
}

/// A probe's result.
struct Probe {
    accuracy: f64,
    l2: f64,
}

/// The L2 weights the probe chooses among.
const L2_GRID: [f64; 7] = [1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0];
/// Cross-validation folds that choose the L2 weight.
const FOLDS: usize = 5;

/// Multinomial logistic regression on standardized features, its L2 weight chosen by 5-fold
/// cross-validation on the training rows from a fixed grid, then refitted on all of them; test
/// accuracy.
fn linear_probe(
    train: &Tensor,
    ytr: &[i64],
    test: &Tensor,
    yte: &[i64],
    classes: usize,
) -> Result<Probe> {
    let (n, k) = (train.shape()[0], train.shape()[1]);
    let v = train.to_vec_f64()?;
    let mean: Vec<f64> = (0..k)
        .map(|j| (0..n).map(|i| v[i * k + j]).sum::<f64>() / n as f64)
        .collect();
    let mut std: Vec<f64> = (0..k)
        .map(|j| {
            let var = (0..n)
                .map(|i| (v[i * k + j] - mean[j]).powi(2))
                .sum::<f64>()
                / n as f64;
            var.sqrt()
        })
        .collect();
    // Feature maps after a ReLU are sparse: a unit that fires on a handful of images has a
    // tiny spread, and dividing by it turns those few values into outliers the regression
    // fits (the probe then swung by points between draws). Spreads are floored at half the
    // median one.
    let mut sorted = std.clone();
    sorted.sort_by(f64::total_cmp);
    let floor = (0.5 * sorted.get(k / 2).copied().unwrap_or(0.0)).max(1e-6);
    for s in &mut std {
        *s = s.max(floor);
    }
    let standardize = |t: &Tensor| -> Result<Tensor> {
        let m = Tensor::from_vec(mean.iter().map(|&x| x as f32).collect(), &[1, k])?;
        let s = Tensor::from_vec(std.iter().map(|&x| x as f32).collect(), &[1, k])?;
        t.sub(&m)?.div(&s)
    };
    let (xtr, xte) = (standardize(train)?, standardize(test)?);
    let pick = |rows: &[usize]| -> Result<(Tensor, Vec<i64>)> {
        let idx: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let x = xtr.index_select(0, &Tensor::from_vec(idx, &[rows.len()])?)?;
        Ok((x, rows.iter().map(|&r| ytr[r]).collect()))
    };
    // Folds of consecutive rows: the rows are a stratified draw in index order, not sorted
    // by class. Too few rows to hold any out: the grid's middle weight.
    let mut best = (f64::NEG_INFINITY, L2_GRID[L2_GRID.len() / 2]);
    if n >= 2 * FOLDS {
        for l2 in L2_GRID {
            let mut right = 0.0;
            for f in 0..FOLDS {
                let held = f * n / FOLDS..(f + 1) * n / FOLDS;
                let fit_rows: Vec<usize> = (0..n).filter(|r| !held.contains(r)).collect();
                let held_rows: Vec<usize> = held.collect();
                let (xf, yf) = pick(&fit_rows)?;
                let (xh, yh) = pick(&held_rows)?;
                let (w, b) = fit_logistic(&xf, &yf, classes, l2)?;
                right += accuracy(&xh, &yh, &w, &b)? * held_rows.len() as f64;
            }
            let acc = right / n as f64;
            if acc > best.0 {
                best = (acc, l2);
            }
        }
    }
    let (w, b) = fit_logistic(&xtr, ytr, classes, best.1)?;
    Ok(Probe {
        accuracy: accuracy(&xte, yte, &w, &b)?,
        l2: best.1,
    })
}

/// Full-batch Adam on cross-entropy plus `l2`·|W|², 1000 steps from zero weights (300 left
/// the larger feature sets short of their optimum).
fn fit_logistic(x: &Tensor, y: &[i64], classes: usize, l2: f64) -> Result<(Tensor, Tensor)> {
    let k = x.shape()[1];
    let w = Tensor::zeros(&[k, classes], DType::F32)?.with_grad()?;
    let b = Tensor::zeros(&[classes], DType::F32)?.with_grad()?;
    let y = Tensor::from_vec(y.to_vec(), &[y.len()])?;
    let mut opt = Adam::new(vec![w.clone(), b.clone()], 0.01);
    for _ in 0..1000 {
        let loss = cross_entropy(&x.matmul(&w)?.add(&b)?, &y)?
            .add(&w.square()?.sum_all()?.mul_scalar(l2)?)?;
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
    }
    Ok((w.detach(), b.detach()))
}

fn accuracy(x: &Tensor, y: &[i64], w: &Tensor, b: &Tensor) -> Result<f64> {
    let pred = x.matmul(w)?.add(b)?.argmax(-1, false)?.to_vec::<i64>()?;
    let right = pred.iter().zip(y).filter(|(p, t)| p == t).count();
    Ok(right as f64 / y.len().max(1) as f64)
}
