//! Test helpers shared by fukai's own tests and by users writing custom ops: a finite-difference
//! gradient check against an f64 reference.

use crate::error::{Error, Result};
use crate::rng::Generator;
use crate::tensor::{DType, Tensor};

/// Compares the analytic gradient of `f` at `inputs` (f64 tensors) with central finite
/// differences. The scalar checked is `sum(f(inputs) * w)` for a fixed random `w`, so every
/// output element contributes with a distinct weight. Returns the largest mismatch seen.
pub fn gradcheck(
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    eps: f64,
    tol: f64,
) -> Result<f64> {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            if t.dtype() != DType::F64 {
                return Err(Error::Autograd(format!(
                    "gradcheck needs f64 inputs, found {}",
                    t.dtype()
                )));
            }
            let l = t.detach().contiguous()?.detach();
            l.set_requires_grad(true)?;
            Ok(l)
        })
        .collect::<Result<_>>()?;
    let out = f(&leaves)?;
    let w = Tensor::normal_with(out.shape(), 0.0, 1.0, DType::F64, &mut Generator::new(1234))?;
    out.mul(&w)?.sum_all()?.backward()?;
    let scalar = |xs: &[Tensor]| -> Result<f64> {
        let _g = crate::no_grad();
        f(xs)?.mul(&w)?.sum_all()?.item()
    };
    let mut worst = 0.0f64;
    for (i, leaf) in leaves.iter().enumerate() {
        let base = leaf.to_vec::<f64>()?;
        let analytic = match leaf.grad() {
            Some(g) => g.to_vec_f64()?,
            None => vec![0.0; base.len()],
        };
        for j in 0..base.len() {
            let at = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[j] += delta;
                let mut xs: Vec<Tensor> = leaves.iter().map(|l| l.detach()).collect();
                xs[i] = Tensor::from_vec(v, leaf.shape())?;
                scalar(&xs)
            };
            let numeric = (at(eps)? - at(-eps)?) / (2.0 * eps);
            let err = (numeric - analytic[j]).abs() / (1.0 + numeric.abs().max(analytic[j].abs()));
            worst = worst.max(err);
            if err > tol {
                return Err(Error::Autograd(format!(
                    "gradcheck: input {i} element {j}: analytic {} vs numeric {numeric} (err {err:.3e} > {tol:e})",
                    analytic[j]
                )));
            }
        }
    }
    Ok(worst)
}

/// A seeded f64 tensor with entries normal(0, 1), for checks.
pub fn randn64(shape: &[usize], seed: u64) -> Result<Tensor> {
    Tensor::normal_with(shape, 0.0, 1.0, DType::F64, &mut Generator::new(seed))
}
