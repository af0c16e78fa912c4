//! The README's example: fit a linear model with autograd and plain SGD.
//!
//! `cargo run --release -p fukai --example readme`

use fukai::{manual_seed, no_grad, DType, Tensor};

fn main() -> fukai::Result<()> {
    manual_seed(0);
    // Data: 64 samples of y = x·[2, -1, 0.5] + 0.3.
    let x = Tensor::randn(&[64, 3], DType::F32)?;
    let true_w = Tensor::from_vec(vec![2.0f32, -1.0, 0.5], &[3, 1])?;
    let y = x.matmul(&true_w)?.add_scalar(0.3)?;

    // Parameters are leaves that require grad.
    let w = Tensor::zeros(&[3, 1], DType::F32)?.with_grad()?;
    let b = Tensor::zeros(&[1], DType::F32)?.with_grad()?;

    for step in 0..200 {
        // Forward: ops record the graph because w and b require grad; b broadcasts.
        let loss = x.matmul(&w)?.add(&b)?.sub(&y)?.square()?.mean_all()?;
        // Backward from the scalar loss; the graph is freed as it is walked.
        loss.backward()?;
        // A plain SGD step, in place, then clear the accumulated gradients.
        for p in [&w, &b] {
            let g = p.grad().expect("backward reached p").to_vec::<f32>()?;
            p.update_f32(|v| v.iter_mut().zip(&g).for_each(|(v, g)| *v -= 0.1 * g))?;
            p.zero_grad();
        }
        if step % 50 == 0 {
            println!("step {step}: loss {:.3e}", loss.item()?);
        }
    }

    // Inference records nothing.
    let _guard = no_grad();
    let pred = Tensor::from_vec(vec![1.0f32, 1.0, 1.0], &[1, 3])?
        .matmul(&w)?
        .add(&b)?;
    assert!(!pred.requires_grad());
    println!(
        "w = {:?}, b = {:?}, f(1,1,1) = {:.3}",
        w.to_vec::<f32>()?,
        b.to_vec::<f32>()?,
        pred.item()?
    );
    Ok(())
}
