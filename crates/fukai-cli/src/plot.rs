//! curves.png: loss and accuracy per epoch, train and test, drawn with plotters. Text uses an
//! embedded font (no system font libraries).

use crate::report::EpochMetrics;
use fukai::{Error, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

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

/// One panel with two series (train, test) over epochs.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    train: &[(f64, f64)],
    test: &[(f64, f64)],
) -> std::result::Result<(), String> {
    let xs = train.len().max(1) as f64;
    let all = train.iter().chain(test).map(|p| p.1);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0.5..xs + 0.5, (lo - pad)..(hi + pad))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for (series, color, name) in [(train, BLUE, "train"), (test, RED, "test")] {
        chart
            .draw_series(LineSeries::new(
                series.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(series.iter().map(|&p| Circle::new(p, 3, color.filled())))
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

/// Writes the loss and accuracy curves to `path` (PNG).
pub fn curves(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    register_font();
    let pts = |f: &dyn Fn(&EpochMetrics) -> f64| {
        history
            .iter()
            .map(|m| (m.epoch as f64, f(m)))
            .collect::<Vec<_>>()
    };
    let tmp = path.with_extension("png.tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (1000, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let (l, r) = root.split_horizontally(500);
        panel(&l, "loss", &pts(&|m| m.train_loss), &pts(&|m| m.test_loss))
            .map_err(|e| plot_err(path, e))?;
        panel(
            &r,
            "accuracy",
            &pts(&|m| m.train_accuracy),
            &pts(&|m| m.test_accuracy),
        )
        .map_err(|e| plot_err(path, e))?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
}
