//! Winograd convolution (3x3, stride 1) against im2col + gemm: forward and gradients in f64 and
//! f32, a finite-difference gradient check, and the same bits at any thread count.

use fukai::testing::{
    gradcheck, max_abs_diff, output_and_grads, randn64, with_threads, with_winograd_tile,
    without_winograd,
};
use fukai::{DType, Result, Tensor};

/// (batch, in channels, out channels, height, width, padding) of shapes Winograd takes.
const SHAPES: [(usize, usize, usize, usize, usize, [usize; 2]); 10] = [
    (2, 16, 16, 8, 8, [1, 1]),
    // Odd sizes and sizes that are not multiples of the tile.
    (3, 16, 20, 7, 9, [1, 1]),
    (1, 24, 16, 5, 11, [0, 0]),
    (2, 16, 17, 6, 5, [2, 2]),
    (2, 17, 16, 9, 6, [0, 2]),
    (1, 32, 64, 14, 14, [1, 1]),
    // The plane where the shapes pick F(4x4).
    (1, 16, 16, 28, 28, [1, 1]),
    // Tiny planes: one tile, and an output of 1x1.
    (4, 16, 16, 2, 3, [1, 1]),
    (2, 16, 16, 3, 3, [0, 0]),
    // Small planes: blocks of several samples, the last one short, and weight-gradient
    // partials of several samples.
    BLOCKS,
];
/// F(4x4) on 16x16 planes, 20 tiles a sample: blocks of 4 samples (4, 4, 2) and three
/// weight-gradient partials.
const BLOCKS: (usize, usize, usize, usize, usize, [usize; 2]) = (10, 24, 40, 16, 16, [1, 1]);

/// Output, input gradient, weight gradient and bias gradient, by Winograd (or by im2col).
fn run(
    (n, c, o, h, w, pad): (usize, usize, usize, usize, usize, [usize; 2]),
    dtype: DType,
    seed: u64,
    im2col: bool,
) -> Result<(Tensor, Vec<Tensor>)> {
    let inputs = [
        randn64(&[n, c, h, w], seed)?.to_dtype(dtype)?,
        randn64(&[o, c, 3, 3], seed + 1)?.to_dtype(dtype)?,
        randn64(&[o], seed + 2)?.to_dtype(dtype)?,
    ];
    let f = |t: &[Tensor]| t[0].conv2d(&t[1], Some(&t[2]), [1, 1], pad, [1, 1], 1);
    if im2col {
        without_winograd(|| output_and_grads(&f, &inputs))
    } else {
        output_and_grads(&f, &inputs)
    }
}

/// Largest difference relative to the largest magnitude of the reference.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let scale = b
        .to_vec_f64()
        .unwrap()
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    max_abs_diff(a, b).unwrap() / scale.max(1e-30)
}

fn compare(dtype: DType, tol: f64) {
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let (y, gs) = run(shape, dtype, 10 * i as u64, false).unwrap();
        let (y0, gs0) = run(shape, dtype, 10 * i as u64, true).unwrap();
        let names = ["output", "input grad", "weight grad", "bias grad"];
        for (name, (a, b)) in names
            .iter()
            .zip(std::iter::once((&y, &y0)).chain(gs.iter().zip(&gs0)))
        {
            let d = rel_diff(a, b);
            assert!(
                d <= tol,
                "{shape:?} {dtype}: {name} differs by {d:e} (> {tol:e})"
            );
        }
    }
}

/// Each tile size on every shape, whatever the shapes would pick. F(4x4)'s points 0, ±1, ±2
/// round about ten times worse than F(2x2)'s.
#[test]
fn winograd_equals_im2col_f64() {
    with_winograd_tile(2, || compare(DType::F64, 1e-12));
    with_winograd_tile(4, || compare(DType::F64, 1e-12));
}

#[test]
fn winograd_equals_im2col_f32() {
    with_winograd_tile(2, || compare(DType::F32, 2e-6));
    with_winograd_tile(4, || compare(DType::F32, 2e-5));
}

/// The shapes' own pick (F(4x4) at 28x28, F(2x2) at 14x14) at the tolerance its tile allows.
#[test]
fn default_tile_equals_im2col_f32() {
    compare(DType::F32, 2e-5);
}

/// The im2col switch really changes the path, forward and backward: Winograd (either tile)
/// rounds differently from a direct sum.
#[test]
fn paths_differ_in_f32_rounding() {
    for shape in [(2, 32, 32, 14, 14, [1, 1]), (2, 32, 32, 28, 28, [1, 1])] {
        let (y, gs) = run(shape, DType::F32, 7, false).unwrap();
        let (y0, gs0) = run(shape, DType::F32, 7, true).unwrap();
        let pairs = [
            ("output", &y, &y0),
            ("input grad", &gs[0], &gs0[0]),
            ("weight grad", &gs[1], &gs0[1]),
        ];
        for (name, a, b) in pairs {
            assert!(
                max_abs_diff(a, b).unwrap() > 0.0,
                "{shape:?}: {name} is the same"
            );
        }
    }
}

#[test]
fn winograd_gradcheck_f64() {
    let inputs = [
        randn64(&[2, 16, 5, 6], 1).unwrap(),
        randn64(&[16, 16, 3, 3], 2).unwrap(),
        randn64(&[16], 3).unwrap(),
    ];
    for (pad, tile) in [([1, 1], 2), ([0, 2], 2), ([1, 1], 4), ([0, 2], 4)] {
        with_winograd_tile(tile, || {
            gradcheck(
                |t| t[0].conv2d(&t[1], Some(&t[2]), [1, 1], pad, [1, 1], 1),
                &inputs,
                1e-6,
                1e-6,
            )
        })
        .unwrap();
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// Same bits at 1, 2 and 3 threads, for a batch of many chunks, a single sample and blocks of
/// several samples (whose gemms thread instead).
#[test]
fn winograd_same_bits_at_any_thread_count() {
    for shape in [
        (64, 32, 32, 28, 28, [1, 1]),
        (1, 64, 64, 14, 14, [1, 1]),
        BLOCKS,
        // The ConvLSTM's convolution (16 + 64 -> 4 x 64 channels): its gemms thread.
        (8, 80, 256, 16, 16, [1, 1]),
    ] {
        let all = |threads| {
            with_threads(threads, || {
                let (y, gs) = run(shape, DType::F32, 5, false).unwrap();
                std::iter::once(y)
                    .chain(gs)
                    .map(|t| bits(&t))
                    .collect::<Vec<_>>()
            })
        };
        let one = all(1);
        assert_eq!(one, all(2), "{shape:?}");
        assert_eq!(one, all(3), "{shape:?}");
    }
}
