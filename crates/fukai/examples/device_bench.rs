//! Times fukai on a device beside the CPU: matmul throughput and an MLP training step.
//!
//! ```text
//! cargo run --release -p fukai --features wgpu --example device_bench [-- DEVICE]
//! ```
//!
//! DEVICE defaults to `auto` (the first GPU, else the CPU). Prints one line per measurement,
//! with the ratio to the CPU where both ran.

use fukai::nn::loss::cross_entropy;
use fukai::nn::{Activation, Linear, Module, Sequential};
use fukai::optim::{Adam, Optimizer};
use fukai::{DType, Device, Result, Tensor};
use std::time::Instant;

/// Seconds per call of `f` on `dev`: warm-up, then the median of `reps` timed calls, each
/// ended by a device synchronization.
fn time(dev: Device, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    dev.synchronize()?;
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        f()?;
        dev.synchronize()?;
        ts.push(t0.elapsed().as_secs_f64());
    }
    ts.sort_by(f64::total_cmp);
    Ok(ts[reps / 2])
}

fn matmul(dev: Device, n: usize, reps: usize) -> Result<f64> {
    let a = Tensor::randn(&[n, n], DType::F32)?.to(dev)?;
    let b = Tensor::randn(&[n, n], DType::F32)?.to(dev)?;
    let s = time(dev, reps, || a.matmul(&b).map(|_| ()))?;
    Ok(2.0 * (n as f64).powi(3) / s / 1e12)
}

/// Microseconds per tiny op (an add of two 64-element vectors, chained so nothing is skipped):
/// the fixed cost of a launch, which bounds small-batch training on a GPU.
fn launch_cost(dev: Device, ops: usize) -> Result<f64> {
    let a = Tensor::randn(&[64], DType::F32)?.to(dev)?;
    let s = time(dev, 5, || {
        let mut x = a.clone();
        for _ in 0..ops {
            x = x.add(&a)?;
        }
        Ok(())
    })?;
    Ok(s / ops as f64 * 1e6)
}

/// Microseconds for one op whose result is read back to the host: the round trip a training
/// step pays for every value it needs on the host (the loss, class targets).
fn readback_cost(dev: Device) -> Result<f64> {
    let a = Tensor::randn(&[64], DType::F32)?.to(dev)?;
    let s = time(dev, 50, || a.add(&a)?.sum_all()?.item().map(|_| ()))?;
    Ok(s * 1e6)
}

fn mlp_step(dev: Device, batch: usize, reps: usize) -> Result<f64> {
    fukai::manual_seed(0);
    let model = Sequential::new()
        .add(Linear::new(784, 256, true)?)
        .add(Activation::Relu)
        .add(Linear::new(256, 128, true)?)
        .add(Activation::Relu)
        .add(Linear::new(128, 10, true)?);
    model.to_device(dev)?;
    let mut opt = Adam::new(model.parameters(), 1e-3);
    let x = Tensor::randn(&[batch, 784], DType::F32)?.to(dev)?;
    let y: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    let y = Tensor::from_vec(y, &[batch])?.to(dev)?;
    time(dev, reps, || {
        opt.zero_grad();
        let loss = cross_entropy(&model.forward(&x)?, &y)?;
        loss.backward()?;
        opt.step()
    })
}

fn main() -> Result<()> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "auto".into());
    let dev: Device = arg.parse()?;
    for d in fukai::devices() {
        println!("device {:<8} {}", d.device.to_string(), d.name);
    }
    println!("benchmarking on {dev}");
    // FUKAI_BENCH_MAX caps the matrix size (software adapters take minutes at 4096).
    let max: usize = std::env::var("FUKAI_BENCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8192);
    for n in [1024, 2048, 4096, 8192].into_iter().filter(|&n| n <= max) {
        let reps = if n >= 4096 { 5 } else { 10 };
        let g = matmul(dev, n, reps)?;
        let c = if n <= 2048 {
            Some(matmul(Device::Cpu, n, 3)?)
        } else {
            None
        };
        match c {
            Some(c) => println!(
                "matmul {n}x{n}x{n} f32: {dev} {g:.2} TFLOP/s | cpu {c:.3} TFLOP/s | {:.1}x",
                g / c
            ),
            None => println!("matmul {n}x{n}x{n} f32: {dev} {g:.2} TFLOP/s"),
        }
    }
    let (g, c) = (launch_cost(dev, 1000)?, launch_cost(Device::Cpu, 1000)?);
    println!("tiny op (add of 64 floats), chained x1000: {dev} {g:.1} us/op | cpu {c:.2} us/op");
    let (g, c) = (readback_cost(dev)?, readback_cost(Device::Cpu)?);
    println!("two tiny ops and a readback of the result: {dev} {g:.1} us | cpu {c:.2} us");
    for batch in [128, 1024] {
        let g = mlp_step(dev, batch, 20)?;
        let c = mlp_step(Device::Cpu, batch, 10)?;
        println!(
            "mlp 784-256-128-10 adam step, batch {batch}: {dev} {:.2} ms | cpu {:.2} ms | {:.1}x",
            g * 1e3,
            c * 1e3,
            c / g
        );
    }
    let m = dev.memory_stats()?;
    println!(
        "memory on {dev}: live {} MiB, cached {} MiB, peak {} MiB",
        m.live >> 20,
        m.cached >> 20,
        m.peak >> 20
    );
    Ok(())
}
