//! Times fukai on a device beside the CPU: matmul throughput, launch and readback costs, an
//! MLP training step and a GPT-2-small-shaped training step with its model FLOPs utilization.
//!
//! ```text
//! cargo run --release -p fukai --features wgpu --example device_bench [-- DEVICE]
//! ```
//!
//! DEVICE defaults to `auto` (the first GPU, else the CPU). Prints one line per measurement,
//! with the ratio to the CPU where both ran. Matmul and GPT lines run in every precision the
//! device has (`fukai::autocast`): f32, bf16 (CPU, CUDA) and TF32 (CUDA).
//!
//! Environment: `FUKAI_BENCH_MAX` caps the matrix size; `FUKAI_BENCH_GPT` = `LAYERS,WIDTH,
//! HEADS,CONTEXT,BATCH` replaces GPT-2 small's `12,768,12,1024,8` (a CPU rehearsal uses a tiny
//! one; `none` skips the GPT rows); `FUKAI_BENCH_PEAK_BF16` (TFLOP/s, default 989.5: an H200's dense bf16 tensor-core
//! peak) is the denominator of the MFU.

use fukai::models::{Gpt, GptConfig};
use fukai::nn::loss::cross_entropy;
use fukai::nn::{Activation, Linear, Module, Sequential};
use fukai::optim::{Adam, Optimizer};
use fukai::{DType, Device, Precision, Result, Tensor};
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

/// The precisions `dev` runs products in: f32 everywhere, bf16 on the CPU and CUDA, TF32 on
/// CUDA (elsewhere it is f32 again).
fn precisions(dev: Device) -> Vec<Precision> {
    match dev {
        Device::Cuda(_) => vec![Precision::F32, Precision::Tf32, Precision::Bf16],
        Device::Cpu => vec![Precision::F32, Precision::Bf16],
        _ => vec![Precision::F32],
    }
}

/// `f` run under autocast at precision `p`.
fn at<T>(p: Precision, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let _guard = fukai::autocast(p);
    f()
}

/// GPT-2 small's shape (or `FUKAI_BENCH_GPT`'s) and batch; `None` for `FUKAI_BENCH_GPT=none`.
fn gpt_shape() -> Result<Option<(GptConfig, usize)>> {
    let v: Vec<usize> = match std::env::var("FUKAI_BENCH_GPT") {
        Ok(s) if s == "none" => return Ok(None),
        Ok(s) => s
            .split(',')
            .map(|x| x.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| fukai::error::op_err("device_bench", format!("FUKAI_BENCH_GPT: {e}")))?,
        Err(_) => vec![12, 768, 12, 1024, 8],
    };
    let [layers, width, heads, context, batch] = v[..] else {
        return Err(fukai::error::op_err(
            "device_bench",
            "FUKAI_BENCH_GPT: expected LAYERS,WIDTH,HEADS,CONTEXT,BATCH",
        ));
    };
    let cfg = GptConfig {
        vocab: 50257,
        layers,
        heads,
        width,
        context,
        tie_weights: true,
    };
    Ok(Some((cfg, batch)))
}

/// One AdamW training step of a GPT on `batch` random sequences of the full context: seconds
/// per step and model FLOPs per step (nanoGPT's estimate: 6 per parameter per token plus the
/// attention's 12·layers·width·context per token).
fn gpt_step(dev: Device, cfg: &GptConfig, batch: usize, reps: usize) -> Result<(f64, f64)> {
    fukai::manual_seed(0);
    let model = Gpt::new(cfg.clone())?;
    model.to_device(dev)?;
    let params = model.parameters();
    let n_params: usize = params.iter().map(|p| p.numel()).sum();
    let mut opt = Adam::adamw(params, 3e-4);
    let t = cfg.context;
    let ids: Vec<i64> = (0..batch * (t + 1))
        .map(|i| ((i as u64 * 2_654_435_761) % cfg.vocab as u64) as i64)
        .collect();
    let ids = Tensor::from_vec(ids, &[batch, t + 1])?;
    let x = ids.narrow(1, 0, t)?.contiguous()?.to(dev)?;
    let y = ids
        .narrow(1, 1, t)?
        .contiguous()?
        .reshape(&[batch * t])?
        .to(dev)?;
    let s = time(dev, reps, || {
        opt.zero_grad();
        let logits = model.forward(&x)?.reshape(&[batch * t, cfg.vocab])?;
        cross_entropy(&logits, &y)?.backward()?;
        opt.step()
    })?;
    let per_token = 6.0 * n_params as f64 + 12.0 * (cfg.layers * cfg.width * t) as f64;
    Ok((s, per_token * (batch * t) as f64))
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
    for p in precisions(dev).into_iter().skip(1) {
        for n in [4096, 8192].into_iter().filter(|&n| n <= max) {
            let g = at(p, || matmul(dev, n, 5))?;
            println!("matmul {n}x{n}x{n} {p}: {dev} {g:.2} TFLOP/s");
        }
    }
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
    let peak: f64 = std::env::var("FUKAI_BENCH_PEAK_BF16")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(989.5);
    for (p, (cfg, batch)) in precisions(dev)
        .into_iter()
        .zip(gpt_shape()?.into_iter().cycle())
    {
        let (s, flops) = at(p, || gpt_step(dev, &cfg, batch, 5))?;
        println!(
            "gpt {}x{} heads {} context {} batch {batch} adamw step, {}: {dev} {:.1} ms, {:.0} tokens/s, {:.1} TFLOP/s, MFU {:.1}% of {peak} TFLOP/s",
            cfg.layers,
            cfg.width,
            cfg.heads,
            cfg.context,
            p,
            s * 1e3,
            (batch * cfg.context) as f64 / s,
            flops / s / 1e12,
            100.0 * flops / s / 1e12 / peak
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
