//! Square f32 matmul: fukai's `Tensor::matmul` against the `gemm` crate called directly, the
//! way someone using gemm by hand would (one preallocated output, row-major strides, the
//! thread count passed straight through). fukai's goal is ≥ 90% of gemm's GFLOP/s. The
//! `fukai_bf16` line is the same product under autocast bf16 (issue 20's CPU mixed precision).

use crate::direct_gemm::gemm_f32;
use crate::harness::{interleaved, Case, Line};
use fukai::testing::max_slice_diff;
use fukai::{DType, Tensor};
use std::hint::black_box;
use std::time::Duration;

/// The sizes measured unless `--sizes` says otherwise.
pub const SIZES: &[usize] = &[64, 128, 256, 512, 1024, 2048];

/// `dst = lhs · rhs` for row-major n×n matrices, straight through gemm.
fn gemm_square(n: usize, dst: &mut [f32], lhs: &[f32], rhs: &[f32], threads: usize) {
    gemm_f32((n, n, n), dst, (lhs, (n, 1)), (rhs, (n, 1)), threads)
}

fn target_sample(n: usize) -> Duration {
    // Big products are one call per sample; small ones batch enough calls to beat timer noise.
    Duration::from_millis(if n >= 1024 { 1 } else { 25 })
}

fn reps_for(n: usize) -> usize {
    if n >= 2048 {
        5
    } else {
        9
    }
}

/// Measures every size in `sizes` and prints one line per (size, implementation).
pub fn run(threads: usize, sizes: &[usize], reps: Option<usize>) -> fukai::Result<()> {
    for &n in sizes {
        let a = Tensor::randn(&[n, n], DType::F32)?;
        let b = Tensor::randn(&[n, n], DType::F32)?;
        let av = a.to_vec::<f32>()?;
        let bv = b.to_vec::<f32>()?;
        let mut dst = vec![0f32; n * n];

        // Both must compute the same product (also warms caches and the thread pool).
        let fukai_out = a.matmul(&b)?.to_vec::<f32>()?;
        gemm_square(n, &mut dst, &av, &bv, threads);
        let max_err = max_slice_diff(&fukai_out, &dst);
        assert!(
            max_err <= 1e-3 * (n as f32).sqrt(),
            "matmul {n}: fukai and gemm differ by {max_err}"
        );
        drop(fukai_out);

        let mut err: Option<fukai::Error> = None;
        let mut err_bf16: Option<fukai::Error> = None;
        let mut cases = vec![
            Case {
                name: "fukai",
                run: Box::new(|| match a.matmul(&b) {
                    Ok(c) => drop(black_box(c)),
                    Err(e) => err = Some(e),
                }),
            },
            // The same product under `--precision bf16` (operands rounded to bf16, f32 sums).
            Case {
                name: "fukai_bf16",
                run: Box::new(|| {
                    let _bf16 = fukai::autocast(fukai::Precision::Bf16);
                    match a.matmul(&b) {
                        Ok(c) => drop(black_box(c)),
                        Err(e) => err_bf16 = Some(e),
                    }
                }),
            },
            Case {
                name: "gemm",
                run: Box::new(|| {
                    gemm_square(n, black_box(&mut dst), &av, &bv, threads);
                }),
            },
        ];
        let stats = interleaved(&mut cases, reps.unwrap_or(reps_for(n)), target_sample(n));
        let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
        drop(cases);
        if let Some(e) = err.or(err_bf16) {
            return Err(e);
        }
        let flop = 2.0 * (n as f64).powi(3);
        for (name, st) in names.iter().zip(&stats) {
            Line::new("matmul", name, threads)
                .int("size", n)
                .stats(st)
                .num("gflops", flop / st.median() / 1e9)
                .print();
        }
    }
    Ok(())
}
