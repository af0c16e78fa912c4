//! `fukai viz`: what a CNN learned. The first conv layer's filters (edge and blob detectors) and
//! every conv layer's feature maps for one input (edges, then textures, then parts), as PNG grids.

use fukai::data::Dataset;
use fukai::models::{Cnn, ModelConfig};
use fukai::nn::Module;
use fukai::run::{load_trained, Trained};
use fukai::{bail, Error, Result, Tensor};
use image::{GrayImage, Luma};
use std::path::{Path, PathBuf};

/// Tiles `maps` (each `h x w`, rescaled to 0..255 on its own range) into a grid, each cell
/// magnified `scale` times with a 1-pixel gap.
fn grid(maps: &[Vec<f32>], h: usize, w: usize, scale: usize) -> GrayImage {
    let n = maps.len().max(1);
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let (cw, ch) = (w * scale + 1, h * scale + 1);
    let mut img = GrayImage::from_pixel((cols * cw + 1) as u32, (rows * ch + 1) as u32, Luma([40]));
    for (k, m) in maps.iter().enumerate() {
        let (lo, hi) = m
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let span = (hi - lo).max(1e-12);
        let (ox, oy) = ((k % cols) * cw + 1, (k / cols) * ch + 1);
        for y in 0..h * scale {
            for x in 0..w * scale {
                let v = (m[(y / scale) * w + x / scale] - lo) / span;
                img.put_pixel((ox + x) as u32, (oy + y) as u32, Luma([(v * 255.0) as u8]));
            }
        }
    }
    img
}

fn save(img: &GrayImage, path: &Path) -> Result<()> {
    img.save(path).map_err(|e| Error::Format {
        file: path.display().to_string(),
        msg: format!("cannot write PNG: {e}"),
    })
}

/// One input as a normalized batch of one: an image (or, for audio models, a WAV file), or by
/// default the first test sample.
fn input_batch(t: &Trained, shape: &[usize], input: Option<&Path>) -> Result<Tensor> {
    let run = t.run.as_ref();
    let mut x = match input {
        Some(p) => {
            let audio = run
                .map(|r| fukai::run::audio_features(&r.data, &p.display().to_string(), shape))
                .transpose()?
                .flatten();
            match audio {
                Some(f) => f,
                None => fukai::run::image_input(p, shape)?.0,
            }
        }
        None => {
            let Some(r) = run else {
                bail!("viz", "the checkpoint holds no run config: pass --input");
            };
            let path = match &t.data {
                Some(d) => d.clone(),
                None => fukai::run::resolve(&r.data, None, None)?,
            };
            let splits = fukai::run::load(&r.data, &path, r.train.seed)?;
            let mut x = vec![0.0; shape.iter().product()];
            splits.test.get(0, &mut x)?;
            x
        }
    };
    if let Some(n) = &t.norm {
        fukai::data::Transform::apply(
            &n.transform()?,
            &mut x,
            shape,
            &mut fukai::Generator::new(0),
        );
    }
    let mut s = vec![1];
    s.extend_from_slice(shape);
    Tensor::from_vec(x, &s)
}

/// Writes filters.png and features_<layer>.png into `out` (default: the checkpoint's folder).
pub fn run(checkpoint: &Path, input: Option<&Path>, out: Option<&Path>) -> Result<()> {
    let t = load_trained(checkpoint)?;
    let ModelConfig::Cnn(cfg) = &t.config else {
        bail!(
            "viz",
            "{}: a {} checkpoint; viz draws CNN filters and feature maps",
            checkpoint.display(),
            t.config.kind()
        )
    };
    // The generic loader gives a `dyn Model`; the layers come from the CNN itself.
    let cnn = Cnn::new(cfg.clone())?;
    cnn.load_state_dict(&t.model.state_dict())?;
    let model = cnn.layers();
    let out: PathBuf = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| checkpoint.parent().unwrap_or(Path::new(".")).to_path_buf());
    std::fs::create_dir_all(&out).map_err(|e| Error::Io {
        path: out.display().to_string(),
        source: e,
    })?;
    let convs = cnn.conv_layers();
    let Some(&first) = convs.first() else {
        bail!(
            "viz",
            "{}: the model has no conv layer (viz is for CNNs)",
            checkpoint.display()
        )
    };

    let w = model
        .state_dict()
        .into_iter()
        .find(|(n, _)| *n == format!("{first}.weight"))
        .map(|(_, w)| w);
    let Some(w) = w else {
        bail!("viz", "first conv layer has no weight")
    };
    let (o, c, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
    let wv = w.to_vec::<f32>()?;
    // One tile per (output, input channel) pair; grey inputs give one tile per filter.
    let filters: Vec<Vec<f32>> = (0..o * c)
        .map(|k| wv[k * kh * kw..(k + 1) * kh * kw].to_vec())
        .collect();
    let fpath = out.join("filters.png");
    save(&grid(&filters, kh, kw, 12), &fpath)?;
    println!("wrote {} ({o} filters of {c}x{kh}x{kw})", fpath.display());

    let x = input_batch(&t, &cfg.input_shape, input)?;
    let _g = fukai::no_grad();
    for (stage, f) in cnn.conv_maps(&x)?.iter().enumerate() {
        let (ch, h, w) = (f.shape()[1], f.shape()[2], f.shape()[3]);
        let v = f.to_vec::<f32>()?;
        let maps: Vec<Vec<f32>> = (0..ch)
            .map(|k| v[k * h * w..(k + 1) * h * w].to_vec())
            .collect();
        let p = out.join(format!("features_conv{}.png", stage + 1));
        save(&grid(&maps, h, w, (112 / h.max(1)).max(1)), &p)?;
        println!("wrote {} ({ch} maps of {h}x{w})", p.display());
    }
    Ok(())
}
