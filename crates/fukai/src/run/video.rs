//! Video prediction runs: clips from Moving MNIST (made on demand from any MNIST digits) or
//! from folders of frames, and what the run shows afterwards — per-frame errors beside the
//! "copy the last frame" baseline, `predictions.png` and `predictions.gif`.

use super::data::{describe, Showcase};
use super::pictures::{save_gif, Grid};
use super::{Prepared, RunConfig};
use crate::bail;
use crate::data::{self, Clips, FrameClips, MovingMnist, MovingMnistConfig};
use crate::error::{Error, Result};
use crate::models::{ModelConfig, VideoConfig, VideoPredictor};
use crate::nn::Module;
use crate::rng::Generator;
use crate::train::{Batches, ClipBatches};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::Arc;

/// Train, validation and test clip sources.
type Sources = (Arc<dyn Clips>, Option<Arc<dyn Clips>>, Arc<dyn Clips>);

/// MNIST digits `[N, 28, 28]` from an MNIST CSV or an IDX folder (`prefix` = train or t10k).
fn digits(path: &Path, prefix: &str) -> Result<(Vec<f32>, Vec<i64>)> {
    if path.is_dir() {
        let find = |name: &str| {
            [path.join(name), path.join(format!("{name}.gz"))]
                .into_iter()
                .find(|p| p.exists())
                .ok_or_else(|| Error::Io {
                    path: path.join(name).display().to_string(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "data not found"),
                })
        };
        let (x, [_, h, w]) = data::read_idx_images(&find(&format!("{prefix}-images-idx3-ubyte"))?)?;
        if [h, w] != [28, 28] {
            bail!(
                "moving-mnist",
                "digits must be 28x28, found {h}x{w} in {}",
                path.display()
            );
        }
        let y = data::read_idx_labels(&find(&format!("{prefix}-labels-idx1-ubyte"))?)?;
        Ok((x, y))
    } else {
        data::read_mnist_csv(path)
    }
}

fn moving_mnist(cfg: &RunConfig, path: &Path) -> Result<Sources> {
    let (d, t) = (&cfg.data, &cfg.train);
    // Test clips move digits the training clips never show.
    let (train_digits, test_digits) = if path.is_dir() {
        (digits(path, "train")?.0, digits(path, "t10k")?.0)
    } else {
        let (x, y) = digits(path, "")?;
        let (tr, te) = data::stratified_split(&y, d.test_fraction, t.seed)?;
        let pick = |rows: &[usize]| -> Vec<f32> {
            rows.iter()
                .flat_map(|&r| x[r * 784..(r + 1) * 784].iter().copied())
                .collect()
        };
        (pick(&tr), pick(&te))
    };
    let clips = d.clips.unwrap_or(2000);
    let held = (clips / 10).max(1);
    let base = MovingMnistConfig {
        clips,
        frames: d.frames.unwrap_or(20),
        size: d.frame_size.unwrap_or(64),
        seed: t.seed,
        ..Default::default()
    };
    let train = MovingMnist::new(train_digits, base.clone())?;
    let val = (d.val_fraction > 0.0)
        .then(|| {
            train.with_config(MovingMnistConfig {
                clips: held,
                seed: t.seed ^ 0x7a1,
                ..base.clone()
            })
        })
        .transpose()?;
    let test = MovingMnist::new(
        test_digits,
        MovingMnistConfig {
            clips: held,
            seed: t.seed ^ 0x7e57,
            ..base
        },
    )?;
    Ok((
        Arc::new(train),
        val.map(|v| Arc::new(v) as Arc<dyn Clips>),
        Arc::new(test),
    ))
}

fn frames(cfg: &RunConfig, path: &Path) -> Result<Sources> {
    let (d, t) = (&cfg.data, &cfg.train);
    let read = |p: &Path| FrameClips::read_folder(p, d.image_size, d.channels);
    let (train, test) = if path.join("train").is_dir() && path.join("test").is_dir() {
        (read(&path.join("train"))?, read(&path.join("test"))?)
    } else {
        let all = read(path)?;
        let order = shuffled(all.len(), t.seed);
        let n_test = ((all.len() as f64 * d.test_fraction).round() as usize).max(1);
        if n_test >= all.len() {
            bail!(
                "frames",
                "{} clips in {} leave none for training after data.test_fraction = {}",
                all.len(),
                path.display(),
                d.test_fraction
            );
        }
        (all.subset(&order[n_test..])?, all.subset(&order[..n_test])?)
    };
    if train.frames() != test.frames() || train.frame_shape() != test.frame_shape() {
        bail!(
            "frames",
            "train clips have {} frames of {:?}, test clips {} of {:?}",
            train.frames(),
            train.frame_shape(),
            test.frames(),
            test.frame_shape()
        );
    }
    let n_val = (train.len() as f64 * d.val_fraction).round() as usize;
    let (train, val) = if n_val > 0 && n_val < train.len() {
        let order = shuffled(train.len(), t.seed ^ super::data::VAL_SEED);
        (
            train.subset(&order[n_val..])?,
            Some(Arc::new(train.subset(&order[..n_val])?) as Arc<dyn Clips>),
        )
    } else {
        (train, None)
    };
    Ok((Arc::new(train), val, Arc::new(test)))
}

/// `0..n` in a seeded random order.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut g = Generator::new(seed);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        v.swap(i, g.below(i as u64 + 1) as usize);
    }
    v
}

pub(super) fn prepare(cfg: &RunConfig, path: &Path) -> Result<Prepared> {
    let (d, m, t) = (&cfg.data, &cfg.model, &cfg.train);
    if !path.exists() {
        return Err(Error::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "data not found"),
        });
    }
    let (train, val, test) = match d.format.as_str() {
        "moving-mnist" => moving_mnist(cfg, path)?,
        _ => frames(cfg, path)?,
    };
    let total = train.frames();
    let input = d.input_frames.unwrap_or(total / 2);
    if input == 0 || input >= total {
        bail!(
            "config",
            "data.input_frames = {input} must leave at least one of the clip's {total} frames to predict"
        );
    }
    let [c, h, w] = train.frame_shape();
    let model = ModelConfig::Video(VideoConfig {
        arch: m.kind.clone(),
        frame_shape: vec![c, h, w],
        input_frames: input,
        output_frames: total - input,
        patch: m.patch.unwrap_or(4),
        hidden: if m.hidden.is_empty() {
            vec![64]
        } else {
            m.hidden.clone()
        },
        kernel: 3,
    });
    let eval = |clips: &Arc<dyn Clips>| -> Result<ClipBatches> {
        ClipBatches::new(clips.clone(), (0..clips.len()).collect(), 16, input)
    };
    let test_batches = eval(&test)?;
    Ok(Prepared {
        model,
        train: Box::new(
            ClipBatches::new(
                train.clone(),
                (0..train.len()).collect(),
                t.batch_size,
                input,
            )?
            .shuffle(t.seed),
        ),
        val: val
            .as_ref()
            .map(|v| eval(v).map(|b| Box::new(b) as Box<dyn Batches>))
            .transpose()?,
        test: Box::new(test_batches.clone()),
        metadata: vec![("input_shape".into(), super::data::json(&[input, c, h, w]))],
        class_names: Vec::new(),
        describe: describe(
            train.len(),
            val.as_ref().map(|v| v.len()),
            test.len(),
            &format!(
                "clips of {total} frames {h}x{w} ({input} in, {} predicted)",
                total - input
            ),
        ),
        notes: Vec::new(),
        baseline: None,
        showcase: Some(Showcase::Clips(test_batches)),
    })
}

/// Per-horizon sums of squared error and binary cross-entropy.
#[derive(Default, Clone)]
struct FrameErrors {
    se: f64,
    bce: f64,
}

fn bce(p: f32, y: f32) -> f64 {
    let p = (p as f64).clamp(1e-7, 1.0 - 1e-7);
    let y = y as f64;
    -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
}

/// What the run shows of a trained video model; returns the per-frame errors for the summary.
pub(super) fn show(
    model: &VideoPredictor,
    data: &Showcase,
    out: &Path,
) -> Result<Map<String, Value>> {
    let Showcase::Clips(test) = data else {
        bail!("showcase", "a video model shows clips, not images");
    };
    let _g = crate::no_grad();
    let cfg = model.cfg();
    let (tin, tout) = (cfg.input_frames, cfg.output_frames);
    let [c, h, w] = [cfg.frame_shape[0], cfg.frame_shape[1], cfg.frame_shape[2]];
    let frame = c * h * w;
    let (mut mine, mut base) = (
        vec![FrameErrors::default(); tout],
        vec![FrameErrors::default(); tout],
    );
    let mut values = 0usize;
    let mut shown: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = Vec::new();
    for b in test.epoch(0, 0) {
        let b = b?;
        let p = model.forward(&b.x)?.sigmoid()?.to_vec::<f32>()?;
        let y = b.y.to_vec::<f32>()?;
        let last = b
            .baseline
            .as_ref()
            .expect("clip batches carry a baseline")
            .to_vec::<f32>()?;
        // Only the first clips are drawn: read their inputs back, not every batch's.
        let x = if shown.len() < 4 {
            b.x.to_vec::<f32>()?
        } else {
            Vec::new()
        };
        let n = b.len();
        for i in 0..n {
            for k in 0..tout {
                let at = (i * tout + k) * frame..(i * tout + k + 1) * frame;
                for ((&p, &l), &y) in p[at.clone()].iter().zip(&last[at.clone()]).zip(&y[at]) {
                    mine[k].se += (p as f64 - y as f64).powi(2);
                    mine[k].bce += bce(p, y);
                    base[k].se += (l as f64 - y as f64).powi(2);
                    base[k].bce += bce(l, y);
                }
            }
            if shown.len() < 4 {
                let clip = |v: &[f32], t: usize| v[i * t * frame..(i + 1) * t * frame].to_vec();
                shown.push((clip(&x, tin), clip(&y, tout), clip(&p, tout)));
            }
        }
        values += n * frame;
    }
    if values == 0 {
        bail!("showcase", "the test set has no clips");
    }
    let per = |e: &FrameErrors| (e.se / values as f64, e.bce / values as f64);
    let rows: Vec<Value> = (0..tout)
        .map(|k| {
            let ((m, mb), (b, bb)) = (per(&mine[k]), per(&base[k]));
            json!({"frame": tin + k + 1, "mse": m, "bce": mb, "copy_last_mse": b, "copy_last_bce": bb})
        })
        .collect();
    let mean = |v: &[FrameErrors]| {
        let (s, b) = v
            .iter()
            .map(per)
            .fold((0.0, 0.0), |a, x| (a.0 + x.0, a.1 + x.1));
        (s / tout as f64, b / tout as f64)
    };
    let ((mm, mb), (bm, bb)) = (mean(&mine), mean(&base));
    let beats_everywhere = (0..tout).all(|k| per(&mine[k]).0 < per(&base[k]).0);

    let tiles = |v: &[f32]| -> Vec<Vec<f32>> { v.chunks(frame).map(<[f32]>::to_vec).collect() };
    let mut grid = Grid::new([c, h, w]);
    for (x, y, p) in shown.iter().take(3) {
        grid.row(tiles(x));
        grid.row(tiles(y));
        grid.row(tiles(p));
    }
    grid.save_png(&out.join("predictions.png"), 2)?;
    // The animation: per clip, the real frames beside the model's (its input, then its
    // predictions).
    let anim: Vec<Grid> = (0..tin + tout)
        .map(|t| {
            let mut g = Grid::new([c, h, w]);
            for (x, y, p) in shown.iter().take(3) {
                let (real, model) = if t < tin {
                    let f = x[t * frame..(t + 1) * frame].to_vec();
                    (f.clone(), f)
                } else {
                    let k = t - tin;
                    (
                        y[k * frame..(k + 1) * frame].to_vec(),
                        p[k * frame..(k + 1) * frame].to_vec(),
                    )
                };
                g.row(vec![real, model]);
            }
            g
        })
        .collect();
    save_gif(&out.join("predictions.gif"), &anim, 3, 200)?;

    let mut m = Map::new();
    m.insert("per_frame".into(), Value::Array(rows));
    m.insert("mse".into(), json!(mm));
    m.insert("bce".into(), json!(mb));
    m.insert("copy_last_mse".into(), json!(bm));
    m.insert("copy_last_bce".into(), json!(bb));
    m.insert(
        "below_copy_last_at_every_frame".into(),
        json!(beats_everywhere),
    );
    m.insert(
        "pictures".into(),
        json!(["predictions.png", "predictions.gif"]),
    );
    Ok(m)
}
