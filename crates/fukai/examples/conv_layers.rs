//! Times the Fashion-MNIST CNN's 3x3 convolutions (batch 64, padding 1) one pass at a time:
//! forward, input gradient and weight gradient, min and median over the repetitions.
//!
//! `RAYON_NUM_THREADS=2 cargo run -p fukai --release --example conv_layers`; the PyTorch twin
//! is `bench/conv_layers.py`. The gradients are timed as forward+backward minus the forward.

use fukai::{DType, Result, Tensor};
use std::time::Instant;

const REPS: usize = 15;

/// (min, median) in ms of `f` after two warm-up calls.
fn time(mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    for _ in 0..2 {
        f()?;
    }
    let mut ts = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t = Instant::now();
        f()?;
        ts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ts.sort_by(f64::total_cmp);
    Ok((ts[0], ts[REPS / 2]))
}

fn main() -> Result<()> {
    println!("layer   path     forward (min/med)  input grad        weight grad   [ms]");
    // `conv_layers C O HW` times that one layer, default path only (for profiling).
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if let [c, o, hw] = args[..] {
        return layer(c, o, hw, Path::Default);
    }
    for (c, o, hw) in [(1, 32, 28), (32, 32, 28), (32, 64, 14), (64, 64, 14)] {
        // Every path in turn, so all see the same machine load.
        for path in [Path::Im2col, Path::Tile(2), Path::Tile(4), Path::Default] {
            layer(c, o, hw, path)?;
        }
    }
    Ok(())
}

/// How a layer's convolutions run.
#[derive(Clone, Copy)]
enum Path {
    Im2col,
    /// Winograd with this output tile size (where the layer takes Winograd at all).
    Tile(usize),
    /// Whatever the shapes pick.
    Default,
}

/// Times one layer along `path`.
fn layer(c: usize, o: usize, hw: usize, path: Path) -> Result<()> {
    let label = match path {
        Path::Im2col => "im2col ",
        Path::Tile(2) => "F(2x2) ",
        Path::Tile(_) => "F(4x4) ",
        Path::Default => "default",
    };
    match path {
        Path::Im2col => fukai::testing::without_winograd(|| timed(c, o, hw, label)),
        Path::Tile(m) => fukai::testing::with_winograd_tile(m, || timed(c, o, hw, label)),
        Path::Default => timed(c, o, hw, label),
    }
}

/// Times forward, input gradient and weight gradient of one layer and prints them.
fn timed(c: usize, o: usize, hw: usize, label: &str) -> Result<()> {
    {
        let x = Tensor::randn(&[64, c, hw, hw], DType::F32)?;
        let w = Tensor::randn(&[o, c, 3, 3], DType::F32)?;
        let gy = Tensor::randn(&[64, o, hw, hw], DType::F32)?;
        let fwd = time(|| {
            let _g = fukai::no_grad();
            x.conv2d(&w, None, [1, 1], [1, 1], [1, 1], 1).map(drop)
        })?;
        // Only the leaf that needs a gradient gets one, so each backward runs one kernel.
        let backward = |needs_x: bool| {
            let (xg, wg) = if needs_x {
                (x.detach().with_grad()?, w.detach())
            } else {
                (x.detach(), w.detach().with_grad()?)
            };
            time(|| {
                xg.zero_grad();
                wg.zero_grad();
                xg.conv2d(&wg, None, [1, 1], [1, 1], [1, 1], 1)?
                    .backward_with(&gy)
            })
        };
        let dx = backward(true)?;
        let dw = backward(false)?;
        println!(
            "{c:>2}->{o:<2} @{hw:<2} {label}  {:6.2} / {:6.2}    {:6.2} / {:6.2}   {:6.2} / {:6.2}",
            fwd.0,
            fwd.1,
            dx.0 - fwd.0,
            dx.1 - fwd.1,
            dw.0 - fwd.0,
            dw.1 - fwd.1
        );
    }
    Ok(())
}
