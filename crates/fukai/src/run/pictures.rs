//! The pictures a run of an autoencoder or a video model leaves: grids of images (PNG), an
//! animation (GIF) and the latent space as a scatter plot. Every file is written atomically.

use crate::error::{Error, Result};
use crate::io::write_atomic;
use std::path::Path;

fn encode_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Format {
        file: path.display().to_string(),
        msg: format!("cannot encode image: {e}"),
    }
}

/// Rows of images `[C, H, W]` (values in [0, 1], C = 1 or 3) side by side with a 2-pixel gap,
/// on a mid-grey background so black images stay visible.
pub(crate) struct Grid {
    shape: [usize; 3],
    rows: Vec<Vec<Vec<f32>>>,
}

const GAP: usize = 2;

impl Grid {
    pub fn new(shape: [usize; 3]) -> Self {
        Grid {
            shape,
            rows: Vec::new(),
        }
    }
    pub fn row(&mut self, tiles: Vec<Vec<f32>>) {
        self.rows.push(tiles);
    }

    /// The grid as RGB pixels: (width, height, bytes).
    fn render(&self) -> (u32, u32, Vec<u8>) {
        let [c, h, w] = self.shape;
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let (width, height) = (cols * (w + GAP) + GAP, self.rows.len() * (h + GAP) + GAP);
        let mut px = vec![96u8; width * height * 3];
        let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        for (r, row) in self.rows.iter().enumerate() {
            for (k, tile) in row.iter().enumerate() {
                let (y0, x0) = (GAP + r * (h + GAP), GAP + k * (w + GAP));
                for y in 0..h {
                    for x in 0..w {
                        let at = ((y0 + y) * width + x0 + x) * 3;
                        for ch in 0..3 {
                            let v = tile[(ch % c) * h * w + y * w + x];
                            px[at + ch] = byte(v);
                        }
                    }
                }
            }
        }
        (width as u32, height as u32, px)
    }

    /// Writes the grid as a PNG, scaled up `zoom` times so small digits are visible.
    pub fn save_png(&self, path: &Path, zoom: u32) -> Result<()> {
        let (w, h, px) = self.render();
        let img = image::RgbImage::from_raw(w, h, px).expect("render sizes its buffer");
        let img = image::imageops::resize(
            &img,
            w * zoom,
            h * zoom,
            image::imageops::FilterType::Nearest,
        );
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| encode_err(path, e))?;
        write_atomic(path, &bytes)
    }
}

/// Writes `frames` (grids of equal size) as a looping GIF, `delay_ms` per frame.
pub(crate) fn save_gif(path: &Path, frames: &[Grid], zoom: u32, delay_ms: u32) -> Result<()> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
        enc.set_repeat(Repeat::Infinite)
            .map_err(|e| encode_err(path, e))?;
        for g in frames {
            let (w, h, px) = g.render();
            let rgb = image::RgbImage::from_raw(w, h, px).expect("render sizes its buffer");
            let rgb = image::imageops::resize(
                &rgb,
                w * zoom,
                h * zoom,
                image::imageops::FilterType::Nearest,
            );
            let rgba = image::DynamicImage::ImageRgb8(rgb).into_rgba8();
            let frame = image::Frame::from_parts(
                rgba,
                0,
                0,
                image::Delay::from_numer_denom_ms(delay_ms, 1),
            );
            enc.encode_frame(frame).map_err(|e| encode_err(path, e))?;
        }
    }
    write_atomic(path, &bytes)
}

/// The latent space as a scatter plot of 2-D points coloured by their (unseen) labels.
#[cfg(feature = "report")]
pub(crate) fn scatter_png(
    path: &Path,
    title: &str,
    points: &[(f64, f64)],
    labels: &[i64],
    names: &[String],
) -> Result<()> {
    use plotters::prelude::*;
    crate::train::register_font();
    let plot_err = |e: String| Error::Format {
        file: path.display().to_string(),
        msg: format!("cannot draw plot: {e}"),
    };
    let range = |f: fn(&(f64, f64)) -> f64| {
        let (lo, hi) = points
            .iter()
            .map(f)
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if lo.is_finite() && hi > lo {
            let pad = (hi - lo) * 0.05;
            (lo - pad)..(hi + pad)
        } else {
            -1.0..1.0
        }
    };
    let tmp = path.with_extension("png.tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (820, 700)).into_drawing_area();
        let draw = || -> std::result::Result<(), String> {
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(45)
                .build_cartesian_2d(range(|p| p.0), range(|p| p.1))
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
            for (class, name) in names.iter().enumerate() {
                let color = Palette99::pick(class).to_rgba();
                let pts = points
                    .iter()
                    .zip(labels)
                    .filter(|(p, &l)| l == class as i64 && p.0.is_finite() && p.1.is_finite());
                chart
                    .draw_series(pts.map(|(&p, _)| Circle::new(p, 2, color.filled())))
                    .map_err(|e| e.to_string())?
                    .label(name.as_str())
                    .legend(move |(x, y)| Circle::new((x + 6, y), 4, color.filled()));
            }
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 13))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())
        };
        draw().map_err(plot_err)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
}
