//! Per-op overhead: forward-only ops on tiny tensors (no gradient tracking), where the time is
//! all dispatch, checks and allocation. Reported in ns per op over `total` iterations.
//! Goal: a 4-element add in under 1 µs.

use crate::harness::{fixed, Line};
use fukai::{DType, Tensor};
use std::hint::black_box;

/// The tiny-op workloads, by name.
pub const OPS: &[&str] = &[
    "tiny_add",
    "tiny_mul",
    "tiny_relu",
    "tiny_sum_all",
    "tiny_matmul_4x4",
];

/// Number of samples each op's iterations are split into.
const REPS: usize = 20;

/// Runs one tiny op `total` times (in `REPS` samples) and prints its line.
pub fn run(op: &str, threads: usize, total: usize) -> fukai::Result<()> {
    let a = Tensor::randn(&[4], DType::F32)?;
    let b = Tensor::randn(&[4], DType::F32)?;
    let m = Tensor::randn(&[4, 4], DType::F32)?;
    let n = Tensor::randn(&[4, 4], DType::F32)?;
    let f: fn(&Tensor, &Tensor, &Tensor, &Tensor) -> fukai::Result<Tensor> = match op {
        "tiny_add" => |a, b, _, _| a.add(b),
        "tiny_mul" => |a, b, _, _| a.mul(b),
        "tiny_relu" => |a, _, _, _| a.relu(),
        "tiny_sum_all" => |a, _, _, _| a.sum_all(),
        "tiny_matmul_4x4" => |_, _, m, n| m.matmul(n),
        other => panic!("unknown tiny op {other}"),
    };
    f(&a, &b, &m, &n)?;
    let mut err = None;
    let iters = (total / REPS).max(1);
    let st = fixed(
        &mut || match f(black_box(&a), black_box(&b), black_box(&m), black_box(&n)) {
            Ok(t) => drop(black_box(t)),
            Err(e) => err = Some(e),
        },
        iters / 10 + 1,
        REPS,
        iters,
    );
    if let Some(e) = err {
        return Err(e);
    }
    Line::new(op, "fukai", threads)
        .stats(&st)
        .num("ns_per_op", st.median() * 1e9)
        .print();
    Ok(())
}
