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

/// Largest absolute difference between two equally long slices (panics on a length
/// mismatch): for comparing results that are already plain numbers.
///
/// ```
/// assert_eq!(fukai::testing::max_slice_diff(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
/// ```
pub fn max_slice_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "max_slice_diff: lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Runs `f` on a fresh pool of `n` worker threads (kernels split their work among them), for
/// tests that compare results across thread counts. Without the `threads` feature, `f` runs
/// on the calling thread.
///
/// ```
/// let one = fukai::testing::with_threads(1, || fukai::parallel::num_threads());
/// assert_eq!(one, 1);
/// ```
pub fn with_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "threads")]
    {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("a thread pool")
            .install(|| {
                assert_eq!(crate::parallel::num_threads(), n);
                f()
            })
    }
    #[cfg(not(feature = "threads"))]
    {
        let _ = n;
        f()
    }
}

/// Runs `f` with convolutions on this thread taking im2col + gemm even where they would run
/// Winograd (3x3, stride 1): for checking one path against the other.
pub fn without_winograd<R>(f: impl FnOnce() -> R) -> R {
    crate::ops::without_winograd(f)
}

/// Runs `f` with every Winograd convolution on this thread using output tiles of `m` (2 or 4)
/// instead of the size the shapes pick: for checking and timing each variant.
pub fn with_winograd_tile<R>(m: usize, f: impl FnOnce() -> R) -> R {
    crate::ops::with_winograd_tile(m, f)
}

/// False inside [`without_winograd`].
pub fn winograd_enabled() -> bool {
    crate::ops::winograd_enabled()
}

/// A seeded f64 tensor with entries normal(0, 1), for checks.
pub fn randn64(shape: &[usize], seed: u64) -> Result<Tensor> {
    Tensor::normal_with(shape, 0.0, 1.0, DType::F64, &mut Generator::new(seed))
}

/// Largest absolute elementwise difference of two same-shape tensors (any float dtype).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.shape() != b.shape() {
        return Err(Error::Autograd(format!(
            "max_abs_diff: shapes differ, {:?} vs {:?}",
            a.shape(),
            b.shape()
        )));
    }
    let (a, b) = (a.to_vec_f64()?, b.to_vec_f64()?);
    Ok(a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max))
}

/// The output of `f` at `inputs` and the gradient of every input, backpropagating
/// `sum(f(inputs) * w)` for a fixed random `w`: for checking a fused op against its composite.
pub fn output_and_grads(
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
) -> Result<(Tensor, Vec<Tensor>)> {
    let leaves = inputs
        .iter()
        .map(|t| t.detach().with_grad())
        .collect::<Result<Vec<_>>>()?;
    let out = f(&leaves)?;
    let w = randn64(out.shape(), 99)?.to_dtype(out.dtype())?;
    out.mul(&w)?.sum_all()?.backward()?;
    let grads = leaves
        .iter()
        .map(|l| {
            l.grad()
                .ok_or_else(|| Error::Autograd("output_and_grads: an input got no gradient".into()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((out, grads))
}

/// The shared assets folder for a test that needs `what` (a path under it), from
/// `$FUKAI_ASSETS`. Without that variable the test should skip: this prints why and returns
/// `None`, so the README's test command passes on a machine without the assets — unless
/// `FUKAI_REQUIRE_ASSETS=1` (set by CI, which has them), where a missing folder is a failure.
/// A set `$FUKAI_ASSETS` that lacks `what` always fails: the assets are incomplete.
pub fn assets(what: &str) -> Option<std::path::PathBuf> {
    let Some(root) = std::env::var_os("FUKAI_ASSETS").map(std::path::PathBuf::from) else {
        assert!(
            std::env::var_os("FUKAI_REQUIRE_ASSETS").is_none(),
            "FUKAI_REQUIRE_ASSETS is set but FUKAI_ASSETS is not (this test needs {what})"
        );
        eprintln!("skipped: needs {what} under $FUKAI_ASSETS, which is not set");
        return None;
    };
    let path = root.join(what);
    assert!(
        path.exists(),
        "FUKAI_ASSETS={} has no {what}",
        root.display()
    );
    Some(root)
}

/// A file a test needs from environment variable `var` (a model fetched by a script, as
/// `FUKAI_GGUF_SMOLLM2` from `scripts/fetch_smollm2.sh`), skipping like [`assets`] when the
/// variable is unset: a printed reason and `None`, or a failure under `FUKAI_REQUIRE_ASSETS`.
pub fn asset_file(var: &str, how: &str) -> Option<std::path::PathBuf> {
    let Some(path) = std::env::var_os(var).map(std::path::PathBuf::from) else {
        assert!(
            std::env::var_os("FUKAI_REQUIRE_ASSETS").is_none(),
            "FUKAI_REQUIRE_ASSETS is set but {var} is not ({how})"
        );
        eprintln!("skipped: needs {var} ({how})");
        return None;
    };
    assert!(path.is_file(), "{var}={} is not a file", path.display());
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{CpuStorage, Layout, Storage};
    use std::sync::Arc;

    /// x ↦ x³ elementwise, with a backward of `factor`·x²·g: correct only for factor 3.
    fn cube(x: &Tensor, factor: f64) -> Result<Tensor> {
        let v: Vec<f64> = x.to_vec::<f64>()?.iter().map(|a| a * a * a).collect();
        let saved = x.detach();
        Ok(Tensor::op_result(
            "cube",
            Arc::new(Storage::new(CpuStorage::F64(v))),
            Layout::contiguous(x.shape()),
            &[x],
            move || {
                Box::new(move |g, _| Ok(vec![Some(saved.square()?.mul_scalar(factor)?.mul(g)?)]))
            },
        ))
    }

    #[test]
    fn accepts_a_correct_gradient() {
        let x = randn64(&[3, 4], 1).unwrap();
        let worst = gradcheck(|xs| cube(&xs[0], 3.0), &[x], 1e-6, 1e-6).unwrap();
        assert!(worst < 1e-6, "{worst}");
    }

    #[test]
    fn catches_a_wrong_gradient() {
        let x = randn64(&[3, 4], 1).unwrap();
        let err = gradcheck(|xs| cube(&xs[0], 2.0), &[x], 1e-6, 1e-6).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("gradcheck") && msg.contains("input 0") && msg.contains("analytic"),
            "{msg}"
        );
    }

    #[test]
    fn catches_a_gradient_sent_to_the_wrong_input() {
        // d(a·b)/da reported as a instead of b (and the other way round).
        let swapped = |xs: &[Tensor]| -> Result<Tensor> {
            let (a, b) = (&xs[0], &xs[1]);
            let v: Vec<f64> = a
                .to_vec::<f64>()?
                .iter()
                .zip(b.to_vec::<f64>()?)
                .map(|(x, y)| x * y)
                .collect();
            let (sa, sb) = (a.detach(), b.detach());
            Ok(Tensor::op_result(
                "mul_swapped",
                Arc::new(Storage::new(CpuStorage::F64(v))),
                Layout::contiguous(a.shape()),
                &[a, b],
                move || Box::new(move |g, _| Ok(vec![Some(g.mul(&sa)?), Some(g.mul(&sb)?)])),
            ))
        };
        let inputs = [randn64(&[5], 2).unwrap(), randn64(&[5], 3).unwrap()];
        assert!(gradcheck(swapped, &inputs, 1e-6, 1e-6).is_err());
    }

    #[test]
    fn catches_a_missing_gradient() {
        // Forward uses the input, backward claims no gradient: the analytic side reads 0.
        let dropped = |xs: &[Tensor]| -> Result<Tensor> {
            let x = &xs[0];
            Ok(Tensor::op_result(
                "dropped",
                Arc::new(Storage::new(CpuStorage::F64(x.to_vec::<f64>()?))),
                Layout::contiguous(x.shape()),
                &[x],
                || Box::new(|_, _| Ok(vec![None])),
            ))
        };
        let err = gradcheck(dropped, &[randn64(&[4], 4).unwrap()], 1e-6, 1e-6).unwrap_err();
        assert!(err.to_string().contains("analytic 0"), "{err}");
    }

    #[test]
    fn rejects_non_f64_inputs() {
        let x = randn64(&[2], 5).unwrap().to_dtype(DType::F32).unwrap();
        let err = gradcheck(|xs| xs[0].exp(), &[x], 1e-6, 1e-6).unwrap_err();
        assert!(err.to_string().contains("f64"), "{err}");
    }
}
