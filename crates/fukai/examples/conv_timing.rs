//! Times conv2d forward and forward+backward on a 64x32x28x28 input with a 64x32x3x3 weight.
//!
//! `cargo run -p fukai --release --example conv_timing [pytorch_ms]`; the PyTorch number to
//! compare with comes from the same shapes at two threads:
//!
//! ```text
//! python -c "import torch,time;torch.set_num_threads(2);F=torch.nn.functional;x=torch.randn(64,32,28,28,requires_grad=True);w=torch.randn(64,32,3,3,requires_grad=True);b=torch.randn(64,requires_grad=True)
//! def s():
//!  x.grad=w.grad=b.grad=None;y=F.conv2d(x,w,b,padding=1);y.backward(torch.ones_like(y))
//! [s() for _ in range(3)];t=[]
//! for _ in range(20):t0=time.perf_counter();s();t.append(time.perf_counter()-t0)
//! print(sorted(t)[10]*1e3)"
//! ```

use fukai::{DType, Result, Tensor};
use std::time::Instant;

fn median_ms(mut f: impl FnMut() -> Result<()>, reps: usize) -> Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        ts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ts.sort_by(f64::total_cmp);
    Ok(ts[reps / 2])
}

fn main() -> Result<()> {
    let x = Tensor::randn(&[64, 32, 28, 28], DType::F32)?.with_grad()?;
    let w = Tensor::randn(&[64, 32, 3, 3], DType::F32)?.with_grad()?;
    let b = Tensor::randn(&[64], DType::F32)?.with_grad()?;
    let conv = || x.conv2d(&w, Some(&b), [1, 1], [1, 1], [1, 1], 1);
    let ones = Tensor::ones(&[64, 64, 28, 28], DType::F32)?;
    let fwd = median_ms(
        || {
            let _g = fukai::no_grad();
            conv().map(drop)
        },
        20,
    )?;
    // Gradients are cleared each step so no accumulation is timed (PyTorch: grad = None).
    let both = median_ms(
        || {
            for t in [&x, &w, &b] {
                t.zero_grad();
            }
            conv()?.backward_with(&ones)
        },
        20,
    )?;
    println!(
        "fukai conv2d 64x32x28x28 * 64x32x3x3 ({} threads): forward {fwd:.2} ms, forward+backward {both:.2} ms",
        rayon_threads()
    );
    if let Some(pt) = std::env::args().nth(1).and_then(|a| a.parse::<f64>().ok()) {
        println!(
            "pytorch forward+backward {pt:.2} ms: fukai/pytorch = {:.2}",
            both / pt
        );
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
