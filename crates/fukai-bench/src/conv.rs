//! conv2d forward + backward: input 64×32×28×28, weight 64×32×3×3, stride 1, padding 1, no bias;
//! gradients for both input and weight (a layer in the middle of a network). Goal: ≤ 1.0× PyTorch.

use crate::harness::Line;

/// (N, C_in, H, W) of the input.
pub const INPUT: [usize; 4] = [64, 32, 28, 28];
/// (C_out, C_in, kH, kW) of the weight.
pub const WEIGHT: [usize; 4] = [64, 32, 3, 3];

/// Multiply-adds ×2 of the forward pass; backward (input and weight gradients) is twice that.
pub fn fwd_bwd_flop() -> f64 {
    let [n, _, h, w] = INPUT;
    let [co, ci, kh, kw] = WEIGHT;
    3.0 * 2.0 * (n * co * h * w * ci * kh * kw) as f64
}

pub fn run(threads: usize, reps: usize) -> fukai::Result<()> {
    use crate::harness::fixed;
    use fukai::{DType, Tensor};

    let x = Tensor::randn(&INPUT, DType::F32)?.with_grad()?;
    let fan_in = (WEIGHT[1] * WEIGHT[2] * WEIGHT[3]) as f64;
    let w = Tensor::randn(&WEIGHT, DType::F32)?
        .mul_scalar(1.0 / fan_in.sqrt())?
        .with_grad()?;
    let mut err = None;
    let step = || -> fukai::Result<()> {
        let y = x.conv2d(&w, None, [1, 1], [1, 1], [1, 1], 1)?;
        y.sum_all()?.backward()?;
        x.zero_grad();
        w.zero_grad();
        Ok(())
    };
    let st = fixed(
        &mut || {
            if let Err(e) = step() {
                err = Some(e);
            }
        },
        2,
        reps,
        1,
    );
    if let Some(e) = err {
        return Err(e);
    }
    Line::new("conv2d", "fukai", threads)
        .stats(&st)
        .num("gflops", fwd_bwd_flop() / st.median() / 1e9)
        .print();
    Ok(())
}
