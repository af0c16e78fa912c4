//! `x Wᵀ` at the shapes of one sentence through MiniLM (11 rows), a batch of 8 × 128 tokens
//! (1,024 rows) and one decoded token through SmolLM2 (1 row): fukai's `Tensor::linear` beside
//! the `gemm` crate called directly on the same `[out, in]` weight. fukai's side twice: a frozen
//! weight (inference), read from the panels laid out on the first call (`linear_panels`), and a
//! weight being trained, read in place (`linear_rows` for a few rows, gemm for more).

use crate::direct_gemm::gemm_f32;
use crate::harness::{interleaved, Case, Line};
use fukai::testing::max_slice_diff;
use fukai::{DType, Tensor};
use std::hint::black_box;
use std::time::Duration;

/// (rows, in, out): MiniLM's attention and MLP projections on one sentence and on 8 × 128
/// tokens (where a frozen weight still reads its panels, a trained one goes to gemm), SmolLM2's
/// MLP and output head.
const SHAPES: &[(usize, usize, usize)] = &[
    (11, 384, 384),
    (11, 384, 1536),
    (32, 384, 1536),
    (64, 384, 1536),
    (208, 384, 1536),
    (512, 384, 1536),
    (1024, 384, 1536),
    (1024, 1536, 384),
    (1, 576, 1536),
    (1, 1536, 576),
    (1, 576, 49152),
];

/// `dst = x · wᵀ` through gemm, `w` read in place through transposed strides.
fn gemm_rows(
    (m, k, n): (usize, usize, usize),
    dst: &mut [f32],
    x: &[f32],
    w: &[f32],
    threads: usize,
) {
    gemm_f32((m, k, n), dst, (x, (k, 1)), (w, (1, k)), threads)
}

/// `FUKAI_LINEAR_SHAPES=208x384x1536,...` (rows x in x out) times those shapes instead.
fn shapes() -> fukai::Result<Vec<(usize, usize, usize)>> {
    let Ok(list) = std::env::var("FUKAI_LINEAR_SHAPES") else {
        return Ok(SHAPES.to_vec());
    };
    let shape = |s: &str| -> Option<(usize, usize, usize)> {
        let d: Vec<usize> = s
            .split('x')
            .map(|d| d.trim().parse().ok())
            .collect::<Option<_>>()?;
        match d[..] {
            [m, k, n] => Some((m, k, n)),
            _ => None,
        }
    };
    list.split(',')
        .map(|s| {
            shape(s).ok_or_else(|| fukai::Error::Op {
                op: "FUKAI_LINEAR_SHAPES",
                msg: format!("{s:?} is not ROWSxINxOUT"),
            })
        })
        .collect()
}

pub fn run(threads: usize, reps: usize) -> fukai::Result<()> {
    for (m, k, n) in shapes()? {
        let x = Tensor::randn(&[m, k], DType::F32)?;
        let w = Tensor::randn(&[n, k], DType::F32)?;
        // The same values as a weight being trained: rewritten every step, so never laid out.
        let trained = Tensor::from_vec(w.to_vec::<f32>()?, &[n, k])?;
        trained.set_requires_grad(true)?;
        let (xv, wv) = (x.to_vec::<f32>()?, w.to_vec::<f32>()?);
        let mut dst = vec![0f32; m * n];
        // Both must compute the same product.
        gemm_rows((m, k, n), &mut dst, &xv, &wv, threads);
        for weight in [&w, &trained] {
            let ours = x.linear(weight, None)?.to_vec::<f32>()?;
            let max_err = max_slice_diff(&ours, &dst);
            assert!(
                max_err <= 1e-4 * (k as f32).sqrt(),
                "linear {m}x{k}x{n}: differ by {max_err}"
            );
        }
        let err = std::cell::Cell::new(None);
        let mut cases = vec![
            Case {
                name: "fukai",
                run: Box::new(|| match x.linear(&w, None) {
                    Ok(y) => drop(black_box(y)),
                    Err(e) => err.set(Some(e)),
                }),
            },
            Case {
                name: "fukai-trained",
                run: Box::new(|| match x.linear(&trained, None) {
                    Ok(y) => drop(black_box(y)),
                    Err(e) => err.set(Some(e)),
                }),
            },
            Case {
                name: "gemm",
                run: Box::new(|| gemm_rows((m, k, n), black_box(&mut dst), &xv, &wv, threads)),
            },
        ];
        let stats = interleaved(&mut cases, reps, Duration::from_millis(20));
        let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
        drop(cases);
        if let Some(e) = err.into_inner() {
            return Err(e);
        }
        let flop = 2.0 * (m * k * n) as f64;
        for (name, st) in names.iter().zip(&stats) {
            Line::new("linear_rows", name, threads)
                .str("shape", &format!("{m}x{k}x{n}"))
                .stats(st)
                .num("gflops", flop / st.median() / 1e9)
                .print();
        }
    }
    Ok(())
}
