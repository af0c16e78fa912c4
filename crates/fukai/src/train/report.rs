//! The terminal and picture side of a run (feature `report`): a progress bar with one line per
//! epoch, and `curves.png` with the panels that fit the task (loss and accuracy for
//! classifiers, loss and RMSE relative to the naive forecast for forecasters, loss over steps
//! for language models). Text uses an embedded font (no system font libraries).

use super::hooks::{FitInfo, FitReport, Hook, StepInfo};
use super::metrics::{EpochMetrics, Evaluation};
use crate::error::{Error, Result};
use crate::models::Task;
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// A progress bar per epoch, then one summary line per epoch.
#[derive(Default)]
pub struct Progress {
    bar: Option<ProgressBar>,
    info: Option<FitInfo>,
}

impl Progress {
    /// A progress printer.
    pub fn new() -> Self {
        Progress::default()
    }
}

impl Hook for Progress {
    fn on_fit_start(&mut self, info: &FitInfo) -> Result<()> {
        let (e, b, s) = info.start;
        println!(
            "{} | {} parameters | {} epochs x {} batches ({} steps each)",
            info.model, info.parameters, info.epochs, info.batches_per_epoch, info.steps_per_epoch
        );
        if s > 0 {
            println!("resuming at epoch {}, batch {b}, step {s}", e + 1);
        }
        self.info = Some(info.clone());
        Ok(())
    }
    fn on_step(&mut self, s: &StepInfo) -> Result<()> {
        let Some(info) = &self.info else {
            return Ok(());
        };
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(s.batches as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("epoch {}/{}", s.epoch + 1, info.epochs));
            bar
        });
        bar.set_position(s.batch as u64);
        let acc = s
            .epoch_accuracy
            .map_or(String::new(), |a| format!(" acc {:.2}%", 100.0 * a));
        bar.set_message(format!(
            "loss {:.4}{acc} {:.0} samples/s",
            s.epoch_loss, s.samples_per_second
        ));
        Ok(())
    }
    fn on_epoch_end(&mut self, history: &[EpochMetrics], val: Option<&Evaluation>) -> Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let (Some(m), Some(info)) = (history.last(), &self.info) else {
            return Ok(());
        };
        let acc = m
            .train_accuracy
            .map_or(String::new(), |a| format!(" acc {:.2}%", 100.0 * a));
        let val = val.map_or(String::new(), |v| format!(" | val {}", v.describe()));
        println!(
            "epoch {:>3}/{}: train loss {:.4}{acc}{val} | {:.1}s, {:.0} samples/s",
            m.epoch, info.epochs, m.train_loss, m.seconds, m.samples_per_second
        );
        Ok(())
    }
    fn on_fit_end(&mut self, _: &FitReport) -> Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        Ok(())
    }
}

/// Redraws `curves.png` after every epoch.
pub struct Curves {
    path: PathBuf,
    task: Task,
}

impl Curves {
    /// Curves for `task` written to `path`.
    pub fn new(path: impl Into<PathBuf>, task: Task) -> Self {
        Curves {
            path: path.into(),
            task,
        }
    }
}

impl Hook for Curves {
    fn on_epoch_end(&mut self, history: &[EpochMetrics], _: Option<&Evaluation>) -> Result<()> {
        curves(&self.path, history, self.task)
    }
}

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");

/// Makes the embedded font plotters' "sans-serif".
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TTF compiled into the binary; failure would be a build defect.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Format {
        file: path.display().to_string(),
        msg: format!("cannot draw plot: {e}"),
    }
}

type Series<'a> = (&'a str, Vec<(f64, f64)>);

/// One panel: a line per series over `x_desc`.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    series: &[Series],
) -> std::result::Result<(), String> {
    let pts = series.iter().flat_map(|s| s.1.iter());
    let (x0, x1, lo, hi) = pts.fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), &(x, y)| {
            if y.is_finite() {
                (a.min(x), b.max(x), c.min(y), d.max(y))
            } else {
                (a, b, c, d)
            }
        },
    );
    let (x0, x1) = if x0.is_finite() { (x0, x1) } else { (0.0, 1.0) };
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let xpad = ((x1 - x0) * 0.05).max(0.5);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d((x0 - xpad)..(x1 + xpad), (lo - pad)..(hi + pad))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for ((name, pts), color) in series.iter().zip([BLUE, RED, GREEN]) {
        let pts: Vec<(f64, f64)> = pts.iter().copied().filter(|p| p.1.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// Writes the curves of `history` for `task` to `path` (PNG, atomically).
pub fn curves(path: &Path, history: &[EpochMetrics], task: Task) -> Result<()> {
    register_font();
    let by_epoch = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|m| f(m).map(|v| (m.epoch as f64, v)))
            .collect()
    };
    let by_step = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|m| f(m).map(|v| (m.step as f64, v)))
            .collect()
    };
    let tmp = path.with_extension("png.tmp.png");
    {
        let wide = task != Task::LanguageModel;
        let root =
            BitMapBackend::new(&tmp, (if wide { 1000 } else { 600 }, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let loss = [
            ("train", by_epoch(&|m| Some(m.train_loss))),
            ("validation", by_epoch(&|m| m.val_loss)),
        ];
        let drawn = match task {
            Task::Classification => {
                let (l, r) = root.split_horizontally(500);
                panel(&l, "cross-entropy loss", "epoch", &loss).and_then(|()| {
                    panel(
                        &r,
                        "accuracy",
                        "epoch",
                        &[
                            ("train", by_epoch(&|m| m.train_accuracy)),
                            ("validation", by_epoch(&|m| m.val_metric)),
                        ],
                    )
                })
            }
            Task::Regression => {
                let (l, r) = root.split_horizontally(500);
                panel(&l, "MSE loss (standardized)", "epoch", &loss).and_then(|()| {
                    panel(
                        &r,
                        "validation RMSE / naive RMSE",
                        "epoch",
                        &[("validation", by_epoch(&|m| m.val_metric))],
                    )
                })
            }
            Task::Reconstruction => {
                let (l, r) = root.split_horizontally(500);
                panel(&l, "loss (BCE per value + penalty)", "epoch", &loss).and_then(|()| {
                    panel(
                        &r,
                        "validation MSE per value",
                        "epoch",
                        &[("validation", by_epoch(&|m| m.val_metric))],
                    )
                })
            }
            Task::LanguageModel => panel(
                &root,
                "next-token loss (nats)",
                "step",
                &[
                    ("train", by_step(&|m| Some(m.train_loss))),
                    ("validation", by_step(&|m| m.val_loss)),
                ],
            ),
        };
        drawn.map_err(|e| plot_err(path, e))?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
}
