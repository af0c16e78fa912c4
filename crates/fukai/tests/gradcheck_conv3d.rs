//! 3-D convolution, transposed convolutions (1-D, 2-D, 3-D) and 3-D pooling: finite-difference
//! gradient checks (f64), the adjoint identity tying each transposed convolution to its
//! convolution, bitwise determinism across thread counts, argument errors and the layers.

use fukai::nn::{AvgPool3d, Conv3d, ConvTranspose2d, ConvTranspose3d, MaxPool3d, Module};
use fukai::testing::{gradcheck, randn64};
use fukai::{DType, Generator, Result, Tensor};

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-6;

fn check(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    gradcheck(f, inputs, EPS, TOL).unwrap();
}

/// Input, weight and (if asked) bias of `bias_len`, drawn from `seed`.
fn inputs(xs: &[usize], ws: &[usize], bias_len: Option<usize>, seed: u64) -> Vec<Tensor> {
    let mut t = vec![randn64(xs, seed).unwrap(), randn64(ws, seed + 1).unwrap()];
    if let Some(b) = bias_len {
        t.push(randn64(&[b], seed + 2).unwrap());
    }
    t
}

/// Each case: input shape, weight shape, bias, stride, padding, dilation, groups.
type Case3 = (
    [usize; 5],
    [usize; 5],
    bool,
    [usize; 3],
    [usize; 3],
    [usize; 3],
    usize,
);

#[test]
fn conv3d_gradients() {
    let cases: [Case3; 9] = [
        (
            [2, 2, 4, 4, 3],
            [3, 2, 2, 3, 2],
            true,
            [1, 1, 1],
            [1, 1, 0],
            [1, 1, 1],
            1,
        ),
        // Unit strides with output width = input width take im2col's whole-plane span.
        (
            [1, 2, 3, 4, 4],
            [2, 2, 3, 3, 3],
            false,
            [1, 1, 1],
            [1, 1, 1],
            [1, 1, 1],
            1,
        ),
        (
            [1, 2, 5, 5, 4],
            [2, 2, 2, 2, 2],
            true,
            [2, 2, 1],
            [1, 0, 1],
            [2, 1, 1],
            1,
        ),
        (
            [2, 4, 3, 4, 4],
            [4, 2, 2, 2, 3],
            true,
            [1, 2, 1],
            [0, 1, 1],
            [1, 1, 2],
            2,
        ),
        (
            [1, 3, 3, 3, 3],
            [3, 1, 3, 3, 3],
            false,
            [1, 1, 1],
            [1, 1, 1],
            [1, 1, 1],
            3,
        ),
        // 1x1x1 stride-1 kernels skip im2col.
        (
            [2, 4, 2, 3, 2],
            [6, 2, 1, 1, 1],
            true,
            [1, 1, 1],
            [0, 0, 0],
            [1, 1, 1],
            2,
        ),
        // Depth stride 2 under 3 taps: an input plane feeds taps 0 and 2 but not 1, so its
        // taps run one by one instead of stacked.
        (
            [1, 2, 7, 4, 3],
            [2, 2, 3, 2, 2],
            true,
            [2, 1, 1],
            [1, 0, 1],
            [1, 1, 1],
            1,
        ),
        // Strides that divide the plane, output as wide as a phase plane: im2col and col2im
        // go through the phase split (stride 2 by pairs, stride 3 by the general loop).
        (
            [2, 2, 3, 6, 4],
            [3, 2, 2, 4, 2],
            true,
            [1, 2, 2],
            [1, 1, 0],
            [1, 1, 1],
            1,
        ),
        (
            [1, 2, 2, 6, 6],
            [2, 2, 1, 2, 3],
            false,
            [1, 3, 3],
            [0, 1, 1],
            [1, 2, 1],
            1,
        ),
    ];
    for (i, (xs, ws, bias, s, p, d, g)) in cases.into_iter().enumerate() {
        let t = inputs(&xs, &ws, bias.then_some(ws[0]), 10 * i as u64);
        check(|t| t[0].conv3d(&t[1], t.get(2), s, p, d, g), &t);
    }
}

#[test]
fn conv3d_unbatched_and_strided_input() {
    check(
        |t| t[0].conv3d(&t[1], Some(&t[2]), [1, 2, 1], [1, 0, 1], [1, 1, 1], 1),
        &inputs(&[2, 3, 4, 3], &[2, 2, 2, 2, 2], Some(2), 70),
    );
    // A permuted (non-contiguous) input.
    check(
        |t| {
            t[0].permute(&[0, 1, 4, 3, 2])?
                .conv3d(&t[1], None, [1, 1, 1], [0, 1, 0], [1, 1, 1], 1)
        },
        &inputs(&[1, 2, 3, 4, 3], &[2, 2, 2, 2, 2], None, 73),
    );
    let y = randn64(&[2, 3, 4, 3], 1)
        .unwrap()
        .conv3d(
            &randn64(&[5, 2, 2, 2, 2], 2).unwrap(),
            None,
            [1; 3],
            [0; 3],
            [1; 3],
            1,
        )
        .unwrap();
    assert_eq!(y.shape(), &[5, 2, 3, 2]);
}

/// Transposed cases: input shape, weight shape, bias, stride, padding, output padding,
/// dilation, groups (spatial parameters as 3-D; lower ranks use their trailing entries).
type CaseT = (
    Vec<usize>,
    Vec<usize>,
    bool,
    [usize; 3],
    [usize; 3],
    [usize; 3],
    [usize; 3],
    usize,
);

fn transposed(t: &[Tensor], case: &CaseT) -> Result<Tensor> {
    let (_, _, _, s, p, op, d, g) = *case;
    let b = t.get(2);
    match t[1].rank() {
        3 => t[0].conv_transpose1d(&t[1], b, s[2], p[2], op[2], d[2], g),
        4 => t[0].conv_transpose2d(
            &t[1],
            b,
            [s[1], s[2]],
            [p[1], p[2]],
            [op[1], op[2]],
            [d[1], d[2]],
            g,
        ),
        _ => t[0].conv_transpose3d(&t[1], b, s, p, op, d, g),
    }
}

fn transposed_cases() -> Vec<CaseT> {
    let c = |x: &[usize], w: &[usize], b, s, p, op, d, g| -> CaseT {
        (x.to_vec(), w.to_vec(), b, s, p, op, d, g)
    };
    vec![
        // 1-D: stride and output padding; groups with dilation; unbatched.
        c(
            &[2, 3, 5],
            &[3, 2, 3],
            true,
            [1, 1, 2],
            [0, 0, 1],
            [0, 0, 1],
            [1, 1, 1],
            1,
        ),
        c(
            &[1, 4, 4],
            &[4, 1, 2],
            false,
            [1, 1, 1],
            [0, 0, 1],
            [0, 0, 1],
            [1, 1, 2],
            2,
        ),
        c(
            &[2, 6],
            &[2, 3, 4],
            true,
            [1, 1, 3],
            [0, 0, 2],
            [0, 0, 2],
            [1, 1, 1],
            1,
        ),
        // 2-D.
        c(
            &[2, 3, 3, 4],
            &[3, 2, 3, 3],
            true,
            [1, 2, 2],
            [0, 1, 1],
            [0, 1, 0],
            [1, 1, 1],
            1,
        ),
        c(
            &[1, 4, 3, 3],
            &[4, 2, 2, 3],
            true,
            [1, 1, 2],
            [0, 0, 1],
            [0, 0, 1],
            [1, 2, 1],
            2,
        ),
        // Stride 1, 3x3: the Winograd-shaped geometry (taken at enough channels).
        c(
            &[1, 2, 4, 4],
            &[2, 3, 3, 3],
            false,
            [1, 1, 1],
            [0, 1, 1],
            [0, 0, 0],
            [1, 1, 1],
            1,
        ),
        c(
            &[2, 4, 3],
            &[2, 2, 2, 2],
            true,
            [1, 2, 1],
            [0, 0, 0],
            [0, 1, 0],
            [1, 1, 1],
            1,
        ),
        // 3-D, with output padding below the dilation (not the stride) on the depth axis.
        c(
            &[1, 2, 2, 3, 3],
            &[2, 2, 2, 2, 2],
            true,
            [2, 1, 2],
            [1, 0, 0],
            [1, 0, 1],
            [1, 1, 1],
            1,
        ),
        c(
            &[2, 2, 2, 2, 3],
            &[2, 3, 2, 1, 2],
            false,
            [1, 2, 1],
            [0, 1, 1],
            [1, 1, 0],
            [2, 1, 1],
            1,
        ),
        c(
            &[1, 4, 2, 2, 2],
            &[4, 1, 2, 2, 2],
            true,
            [2, 2, 2],
            [0, 0, 0],
            [0, 0, 0],
            [1, 1, 1],
            4,
        ),
        c(
            &[2, 2, 3, 2],
            &[2, 2, 2, 2, 2],
            true,
            [1, 1, 2],
            [0, 1, 0],
            [0, 0, 1],
            [1, 1, 1],
            1,
        ),
    ]
}

#[test]
fn conv_transpose_gradients() {
    for (i, case) in transposed_cases().iter().enumerate() {
        let (xs, ws) = (&case.0, &case.1);
        let out_c = ws[1] * case.7;
        let t = inputs(xs, ws, case.2.then_some(out_c), 100 + 10 * i as u64);
        check(|t| transposed(t, case), &t);
    }
}

/// `<conv(y, w), x> == <y, conv_transpose(x, w)>` for every `x`, `y`: the transposed
/// convolution is the convolution's adjoint, which pins its forward values independently of its
/// gradients. Each case also checks the output size formula against the convolution's input.
#[test]
fn conv_transpose_is_the_adjoint_of_conv() {
    for (i, case) in transposed_cases().iter().enumerate() {
        let (_, _, _, s, p, op, d, g) = case.clone();
        let seed = 300 + 10 * i as u64;
        let x = randn64(&case.0, seed).unwrap();
        let w = randn64(&case.1, seed + 1).unwrap();
        let z = transposed(&[x.clone(), w.clone()], case).unwrap();
        let y = randn64(z.shape(), seed + 2).unwrap();
        let cy = match w.rank() {
            3 => y.conv1d(&w, None, s[2], p[2], d[2], g),
            4 => y.conv2d(&w, None, [s[1], s[2]], [p[1], p[2]], [d[1], d[2]], g),
            _ => y.conv3d(&w, None, s, p, d, g),
        }
        .unwrap();
        // The convolution's output may exceed x by output padding beyond the stride; those
        // positions have no counterpart in x.
        let cy = (2..cy.rank())
            .try_fold(cy, |t, a| t.narrow(a as isize, 0, x.shape()[a]))
            .unwrap();
        assert_eq!(cy.shape(), x.shape(), "case {i} (output padding {op:?})");
        let lhs = cy.mul(&x).unwrap().sum_all().unwrap().item().unwrap();
        let rhs = y.mul(&z).unwrap().sum_all().unwrap().item().unwrap();
        assert!(
            (lhs - rhs).abs() < 1e-10 * (1.0 + lhs.abs()),
            "case {i}: {lhs} vs {rhs}"
        );
    }
}

/// Input shape, kernel, stride, padding.
type PoolCase = (&'static [usize], [usize; 3], [usize; 3], [usize; 3]);

#[test]
fn pool3d_gradients() {
    let cases: [PoolCase; 4] = [
        (&[2, 2, 4, 4, 4], [2, 2, 2], [2, 2, 2], [0, 0, 0]),
        (&[1, 2, 5, 4, 5], [3, 2, 3], [2, 1, 2], [1, 1, 1]),
        (&[1, 3, 4, 5], [2, 3, 2], [1, 2, 2], [1, 0, 1]),
        (&[1, 1, 3, 6, 5], [3, 3, 1], [1, 2, 1], [0, 1, 0]),
    ];
    for (i, (xs, k, s, p)) in cases.into_iter().enumerate() {
        let x = [randn64(xs, 500 + i as u64).unwrap()];
        check(|t| t[0].max_pool3d(k, s, p), &x);
        for incl in [true, false] {
            check(|t| t[0].avg_pool3d(k, s, p, incl), &x);
        }
    }
}

#[test]
fn pool3d_known_values() {
    // One 2x2x2 window of 0..8: max 7 (the last), mean 3.5; with padding 1 and
    // count_include_pad the corner windows hold one element of 27.
    let x = Tensor::from_vec((0..8).map(|v| v as f64).collect(), &[1, 1, 2, 2, 2]).unwrap();
    let m = x.max_pool3d([2; 3], [2; 3], [0; 3]).unwrap();
    assert_eq!(m.to_vec::<f64>().unwrap(), [7.0]);
    let a = x.avg_pool3d([2; 3], [2; 3], [0; 3], true).unwrap();
    assert_eq!(a.to_vec::<f64>().unwrap(), [3.5]);
    let incl = x.avg_pool3d([3; 3], [2; 3], [1; 3], true).unwrap();
    let excl = x.avg_pool3d([3; 3], [2; 3], [1; 3], false).unwrap();
    assert_eq!(incl.shape(), &[1, 1, 1, 1, 1]);
    assert_eq!(incl.to_vec::<f64>().unwrap(), [28.0 / 27.0]);
    assert_eq!(excl.to_vec::<f64>().unwrap(), [3.5]);
    // Ties go to the first maximum in scan order.
    let t = Tensor::ones(&[1, 1, 2, 2, 2], DType::F64)
        .unwrap()
        .with_grad()
        .unwrap();
    t.max_pool3d([2; 3], [2; 3], [0; 3])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = t.grad().unwrap().to_vec::<f64>().unwrap();
    assert_eq!(g, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
}

fn on_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
        .install(f)
}

/// The output and every input gradient (for a fixed upstream gradient) as bits.
fn run_bits(f: &(dyn Fn(&[Tensor]) -> Result<Tensor> + Sync), inputs: &[Tensor]) -> Vec<Vec<u32>> {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.detach().with_grad().unwrap())
        .collect();
    let y = f(&leaves).unwrap();
    let gy = Tensor::normal_with(y.shape(), 0.0, 1.0, DType::F32, &mut Generator::new(77)).unwrap();
    y.backward_with(&gy).unwrap();
    let bits = |t: &Tensor| -> Vec<u32> {
        t.to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f32::to_bits)
            .collect()
    };
    let mut out = vec![bits(&y)];
    out.extend(leaves.iter().map(|l| bits(&l.grad().unwrap())));
    out
}

#[test]
fn results_are_bitwise_identical_at_1_and_2_threads() {
    let r = |shape: &[usize], seed: u64| {
        Tensor::normal_with(shape, 0.0, 1.0, DType::F32, &mut Generator::new(seed)).unwrap()
    };
    type Op = Box<dyn Fn(&[Tensor]) -> Result<Tensor> + Sync>;
    let cases: Vec<(Op, Vec<Tensor>)> = vec![
        (
            Box::new(|t| t[0].conv3d(&t[1], Some(&t[2]), [1, 2, 2], [1, 1, 1], [1, 1, 1], 1)),
            vec![
                r(&[6, 8, 6, 12, 12], 1),
                r(&[16, 8, 3, 4, 4], 2),
                r(&[16], 3),
            ],
        ),
        // One sample: the threads go into gemm instead of across the batch.
        (
            Box::new(|t| t[0].conv3d(&t[1], None, [1, 1, 1], [1, 1, 1], [1, 1, 1], 2)),
            vec![r(&[1, 16, 6, 16, 16], 4), r(&[32, 8, 3, 3, 3], 5)],
        ),
        (
            Box::new(|t| {
                t[0].conv_transpose3d(&t[1], Some(&t[2]), [2; 3], [1; 3], [1; 3], [1; 3], 1)
            }),
            vec![r(&[5, 16, 4, 6, 6], 6), r(&[16, 8, 3, 3, 3], 7), r(&[8], 8)],
        ),
        (
            Box::new(|t| {
                t[0].conv_transpose2d(&t[1], Some(&t[2]), [2, 2], [0, 0], [0, 0], [1, 1], 1)
            }),
            vec![r(&[9, 32, 14, 14], 9), r(&[32, 16, 2, 2], 10), r(&[16], 11)],
        ),
        (
            Box::new(|t| t[0].max_pool3d([3, 3, 3], [2, 2, 2], [1, 1, 1])),
            vec![r(&[4, 8, 10, 16, 16], 12)],
        ),
        (
            Box::new(|t| t[0].avg_pool3d([2, 3, 3], [1, 2, 2], [1, 1, 1], false)),
            vec![r(&[4, 8, 10, 16, 16], 13)],
        ),
    ];
    for (i, (f, inputs)) in cases.iter().enumerate() {
        let one = on_threads(1, || run_bits(f.as_ref(), inputs));
        let two = on_threads(2, || run_bits(f.as_ref(), inputs));
        assert!(one == two, "case {i} differs between 1 and 2 threads");
    }
}

fn err(r: Result<Tensor>) -> String {
    match r {
        Ok(t) => panic!("expected an error, got {t:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn conv3d_argument_errors() {
    let z = |s: &[usize]| Tensor::zeros(s, DType::F32).unwrap();
    let (x, w) = (z(&[2, 4, 3, 5, 5]), z(&[6, 4, 2, 3, 3]));
    let one = [1; 3];
    let e = err(x.conv3d(&z(&[6, 4, 3, 3]), None, one, [0; 3], one, 1));
    assert!(
        e.starts_with("conv3d") && e.contains("[O, C/groups, kd, kh, kw]"),
        "{e}"
    );
    let e = err(x.conv3d(&w, None, [0, 1, 1], [0; 3], one, 1));
    assert!(e.contains("stride") && e.contains("depth"), "{e}");
    let e = err(x.conv3d(&z(&[6, 4, 4, 3, 3]), None, one, [0; 3], one, 1));
    assert!(
        e.contains("along the depth") && e.contains("padded input"),
        "{e}"
    );
    let e = err(x.conv3d(&w, None, one, [0; 3], one, 3));
    assert!(e.contains("divisible by groups (3)"), "{e}");
    let e = err(x.conv3d(&w, Some(&z(&[4])), one, [0; 3], one, 1));
    assert!(e.contains("bias must have shape [6]"), "{e}");
    let e = err(z(&[2, 4, 0, 5, 5]).conv3d(&w, None, one, [0; 3], one, 1));
    assert!(e.contains("non-zero") && e.contains("0x5x5"), "{e}");
    let e = err(x.conv3d(&w, None, one, [usize::MAX / 2 + 1, 0, 0], one, 1));
    assert!(e.contains("padded input"), "{e}");
    let huge = x.expand(&[usize::MAX / 8, 4, 3, 5, 5]);
    if let Ok(h) = huge {
        let e = err(h.conv3d(&w, None, one, [0; 3], one, 1));
        assert!(e.contains("overflow"), "{e}");
    }
}

#[test]
fn conv_transpose_argument_errors() {
    let z = |s: &[usize]| Tensor::zeros(s, DType::F32).unwrap();
    let (x, w) = (z(&[2, 4, 5, 5]), z(&[4, 3, 3, 3]));
    let t = |w: &Tensor, b: Option<&Tensor>, s, p, op, d, g| {
        err(x.conv_transpose2d(w, b, s, p, op, d, g))
    };
    let e = t(&w, None, [2, 2], [0, 0], [2, 0], [1, 1], 1);
    assert!(
        e.starts_with("conv_transpose2d") && e.contains("output_padding 2 along the height"),
        "{e}"
    );
    // Output padding below the dilation is allowed even at stride 1.
    let y = x
        .conv_transpose2d(&w, None, [1, 1], [0, 0], [1, 0], [2, 1], 1)
        .unwrap();
    assert_eq!(y.shape(), &[2, 3, 10, 7]);
    let e = t(&z(&[3, 3, 3, 3]), None, [1, 1], [0, 0], [0, 0], [1, 1], 1);
    assert!(
        e.contains("takes 3 input channels") && e.contains("has 4"),
        "{e}"
    );
    let e = t(&w, None, [1, 1], [0, 0], [0, 0], [1, 1], 3);
    assert!(e.contains("divisible by groups (3)"), "{e}");
    let e = t(&w, Some(&z(&[3])), [1, 1], [0, 0], [0, 0], [1, 1], 2);
    assert!(e.contains("bias must have shape [6]"), "{e}");
    let e = t(&w, None, [1, 1], [4, 0], [0, 0], [1, 1], 1);
    assert!(e.contains("leaves no output"), "{e}");
    let e = t(&w, None, [1, 0], [0, 0], [0, 0], [1, 1], 1);
    assert!(e.contains("stride"), "{e}");
    let e = err(z(&[4, 5, 5]).conv_transpose3d(
        &z(&[4, 3, 3, 3, 3]),
        None,
        [1; 3],
        [0; 3],
        [0; 3],
        [1; 3],
        1,
    ));
    assert!(
        e.starts_with("conv_transpose3d") && e.contains("[N, C_in, D, H, W]"),
        "{e}"
    );
    let e = err(z(&[2, 4, 5]).conv_transpose1d(&z(&[4, 2, 3]), None, 2, 0, 0, 1, 0));
    assert!(
        e.starts_with("conv_transpose1d") && e.contains("groups"),
        "{e}"
    );
}

#[test]
fn pool3d_argument_errors() {
    let x = Tensor::zeros(&[2, 3, 4, 5, 5], DType::F32).unwrap();
    let e = err(x.max_pool3d([0, 2, 2], [1; 3], [0; 3]));
    assert!(e.starts_with("max_pool3d") && e.contains("depth"), "{e}");
    let e = err(x.avg_pool3d([2; 3], [1, 1, 0], [0; 3], true));
    assert!(e.starts_with("avg_pool3d") && e.contains("stride"), "{e}");
    let e = err(x.max_pool3d([3; 3], [1; 3], [0, 2, 0]));
    assert!(e.contains("half the kernel"), "{e}");
    let e = err(x.max_pool3d([5, 2, 2], [1; 3], [0; 3]));
    assert!(e.contains("larger than the padded input"), "{e}");
    let e = err(x.flatten(0, 2).unwrap().max_pool3d([1; 3], [1; 3], [0; 3]));
    assert!(e.contains("[N, C, D, H, W]"), "{e}");
}

#[test]
fn layers_shape_names_and_init() {
    let conv =
        Conv3d::with_options(4, 6, [3, 2, 2], [1, 2, 2], [1, 0, 0], [1, 1, 1], 2, true).unwrap();
    assert_eq!(conv.weight.shape(), &[6, 2, 3, 2, 2]);
    let y = conv
        .forward(&Tensor::zeros(&[1, 4, 5, 6, 6], DType::F32).unwrap())
        .unwrap();
    assert_eq!(y.shape(), &[1, 6, 5, 3, 3]);
    let mut names = Vec::new();
    conv.visit("enc", &mut |n, _, _| names.push(n.to_string()));
    assert_eq!(names, ["enc.weight", "enc.bias"]);
    // PyTorch's fan_in of a transposed convolution: weight.size(1) * kernel taps.
    let up = ConvTranspose2d::new(64, 4, 2, 2, 0).unwrap();
    assert_eq!(up.weight.shape(), &[64, 4, 2, 2]);
    let bound = 1.0 / 16f32.sqrt();
    let w = up.weight.to_vec::<f32>().unwrap();
    assert!(w.iter().all(|v| v.abs() <= bound));
    assert!(
        w.iter().any(|v| v.abs() > bound / 2.0),
        "drawn from ±1/√(64·4) instead"
    );
    let up3 = ConvTranspose3d::with_options(4, 6, [2; 3], [2; 3], [0; 3], [1; 3], [1; 3], 2, false)
        .unwrap();
    assert_eq!(up3.weight.shape(), &[4, 3, 2, 2, 2]);
    assert!(up3.bias.is_none());
    let y = up3
        .forward(&Tensor::zeros(&[2, 4, 2, 3, 3], DType::F32).unwrap())
        .unwrap();
    assert_eq!(y.shape(), &[2, 6, 5, 7, 7]);
    let x = Tensor::zeros(&[1, 2, 4, 4, 4], DType::F32).unwrap();
    assert_eq!(
        MaxPool3d::new(2).forward(&x).unwrap().shape(),
        &[1, 2, 2, 2, 2]
    );
    let avg = AvgPool3d::new(3).count_include_pad(false);
    assert_eq!(avg.forward(&x).unwrap().shape(), &[1, 2, 1, 1, 1]);
}
