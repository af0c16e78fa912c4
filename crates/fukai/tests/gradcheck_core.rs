//! Finite-difference gradient checks (f64) for the core ops.

use fukai::testing::{gradcheck, randn64};
use fukai::{DType, Result, Tensor};

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-6;

fn check1(f: impl Fn(&Tensor) -> Result<Tensor>, x: Tensor) {
    gradcheck(|xs| f(&xs[0]), &[x], EPS, TOL).unwrap();
}

fn check2(f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>, a: Tensor, b: Tensor) {
    gradcheck(|xs| f(&xs[0], &xs[1]), &[a, b], EPS, TOL).unwrap();
}

fn positive(shape: &[usize], seed: u64) -> Tensor {
    randn64(shape, seed)
        .unwrap()
        .abs()
        .unwrap()
        .add_scalar(0.5)
        .unwrap()
}

#[test]
fn unary_ops() {
    let x = || randn64(&[3, 4], 1).unwrap();
    check1(|x| x.neg(), x());
    check1(|x| x.exp(), x());
    check1(|x| x.log(), positive(&[3, 4], 2));
    check1(|x| x.sqrt(), positive(&[3, 4], 3));
    check1(|x| x.rsqrt(), positive(&[3, 4], 4));
    check1(|x| x.abs(), x());
    check1(|x| x.tanh(), x());
    check1(|x| x.sigmoid(), x());
    check1(|x| x.relu(), x());
    check1(|x| x.gelu(), x());
    check1(|x| x.gelu_tanh(), x());
    check1(|x| x.silu(), x());
    check1(|x| x.powf(2.5), positive(&[3, 4], 5));
    check1(|x| x.powf(-1.5), positive(&[3, 4], 6));
    check1(|x| x.sin(), x());
    check1(|x| x.cos(), x());
    check1(|x| x.square(), x());
    check1(|x| x.recip(), positive(&[3, 4], 7));
    check1(|x| x.affine(-2.0, 0.5), x());
    check1(|x| x.clamp(-0.5, 0.7), x());
    check1(|x| x.leaky_relu(0.1), x());
}

#[test]
fn binary_ops_broadcast() {
    let shapes: [(&[usize], &[usize]); 4] = [
        (&[3, 4], &[3, 4]),
        (&[2, 3, 4], &[4]),
        (&[3, 1], &[1, 4]),
        (&[2, 1, 4], &[3, 1]),
    ];
    for (i, (sa, sb)) in shapes.iter().enumerate() {
        let a = || randn64(sa, 10 + i as u64).unwrap();
        let b = || randn64(sb, 20 + i as u64).unwrap();
        check2(|a, b| a.add(b), a(), b());
        check2(|a, b| a.sub(b), a(), b());
        check2(|a, b| a.mul(b), a(), b());
        check2(|a, b| a.div(b), a(), positive(sb, 30 + i as u64));
        check2(|a, b| a.maximum(b), a(), b());
        check2(|a, b| a.minimum(b), a(), b());
        check2(|a, b| a.pow(b), positive(sa, 40 + i as u64), b());
    }
}

#[test]
fn reductions() {
    let x = || randn64(&[2, 3, 4], 50).unwrap();
    check1(|x| x.sum(&[1], false), x());
    check1(|x| x.sum(&[0, 2], true), x());
    check1(|x| x.sum_all(), x());
    check1(|x| x.mean(&[-1], false), x());
    check1(|x| x.var(&[1], 1, true), x());
    check1(|x| x.var(&[0, 2], 0, false), x());
    check1(|x| x.max(1, false), x());
    check1(|x| x.min(-1, true), x());
    check1(|x| x.max_all(), x());
    check1(|x| x.logsumexp(1, false), x());
    check1(|x| x.logsumexp(-1, true), x());
}

#[test]
fn softmax_family() {
    let x = || randn64(&[2, 3, 5], 60).unwrap();
    for d in [-1, 1, 0] {
        check1(|x| x.softmax(d), x());
        check1(|x| x.log_softmax(d), x());
    }
}

#[test]
fn matmul_shapes() {
    check2(
        |a, b| a.matmul(b),
        randn64(&[3, 4], 70).unwrap(),
        randn64(&[4, 5], 71).unwrap(),
    );
    check2(
        |a, b| a.matmul(b),
        randn64(&[2, 3, 4], 72).unwrap(),
        randn64(&[4, 5], 73).unwrap(),
    );
    check2(
        |a, b| a.matmul(b),
        randn64(&[2, 1, 3, 4], 74).unwrap(),
        randn64(&[3, 4, 2], 75).unwrap(),
    );
    check2(
        |a, b| a.matmul(b),
        randn64(&[4], 76).unwrap(),
        randn64(&[4, 2], 77).unwrap(),
    );
    check2(
        |a, b| a.matmul(b),
        randn64(&[3, 4], 78).unwrap(),
        randn64(&[4], 79).unwrap(),
    );
    check2(
        |a, b| a.matmul(b),
        randn64(&[4], 82).unwrap(),
        randn64(&[4], 83).unwrap(),
    );
    // Transposed views go to gemm by strides.
    check2(
        |a, b| a.t()?.matmul(&b.t()?),
        randn64(&[4, 3], 80).unwrap(),
        randn64(&[5, 4], 81).unwrap(),
    );
}

#[test]
fn views() {
    let x = || randn64(&[2, 3, 4], 90).unwrap();
    check1(|x| x.reshape(&[6, 4])?.mul_scalar(2.0), x());
    check1(|x| x.permute(&[2, 0, 1])?.contiguous(), x());
    check1(|x| x.transpose(0, 2)?.square(), x());
    check1(|x| x.narrow(1, 1, 2)?.square(), x());
    check1(|x| x.narrow(2, 0, 1)?.exp(), x());
    check1(|x| x.unsqueeze(1)?.expand(&[2, 5, 3, 4])?.square(), x());
    check1(|x| x.flatten(0, 1)?.t()?.square(), x());
    check1(|x| x.narrow(1, 0, 1)?.squeeze(1)?.square(), x());
}

#[test]
fn joins_and_indexing() {
    let a = || randn64(&[2, 3], 100).unwrap();
    let b = || randn64(&[2, 2], 101).unwrap();
    check2(
        |a, b| Tensor::cat(&[a.clone(), b.clone(), a.square()?], 1),
        a(),
        b(),
    );
    check2(
        |a, b| Tensor::stack(&[a.clone(), b.mul_scalar(3.0)?], 0),
        a(),
        randn64(&[2, 3], 102).unwrap(),
    );
    check1(
        |x| x.split(2, 1)?[1].square(),
        randn64(&[2, 5], 103).unwrap(),
    );
    check1(|x| x.chunk(3, 0)?[2].exp(), randn64(&[7, 2], 104).unwrap());
    let idx = Tensor::from_vec(vec![2i64, 0, 2, 1], &[4]).unwrap();
    check1(|x| x.index_select(0, &idx), randn64(&[3, 2], 105).unwrap());
    check1(|x| x.index_select(1, &idx), randn64(&[2, 3], 106).unwrap());
    check1(
        |x| x.embedding(&idx.reshape(&[2, 2])?),
        randn64(&[3, 4], 107).unwrap(),
    );
    let gidx = Tensor::from_vec(vec![0i64, 2, 1, 1, 0, 0], &[2, 3]).unwrap();
    check1(|x| x.gather(1, &gidx), randn64(&[2, 4], 108).unwrap());
    check1(
        |x| x.gather(0, &Tensor::from_vec(vec![1i64, 0, 1], &[1, 3])?),
        randn64(&[2, 3], 109).unwrap(),
    );
    check2(
        |s, src| s.scatter_add(1, &gidx, src),
        randn64(&[2, 4], 110).unwrap(),
        randn64(&[2, 3], 111).unwrap(),
    );
    check2(
        |s, src| s.index_add(0, &idx, src),
        randn64(&[3, 2], 112).unwrap(),
        randn64(&[4, 2], 113).unwrap(),
    );
}

#[test]
fn where_and_masked_fill() {
    let c = Tensor::from_vec(vec![1u8, 0, 0, 1, 1, 0], &[2, 3]).unwrap();
    check2(
        |a, b| c.where_cond(a, b),
        randn64(&[2, 3], 120).unwrap(),
        randn64(&[3], 121).unwrap(),
    );
    check1(
        |x| x.masked_fill(&c, -1e9)?.softmax(-1),
        randn64(&[2, 3], 122).unwrap(),
    );
}

#[test]
fn dtype_conversion_is_differentiable() {
    check1(
        |x| {
            x.to_dtype(DType::F32)?
                .to_dtype(DType::F64)?
                .mul_scalar(1.0)
        },
        randn64(&[3], 130).unwrap().mul_scalar(0.0).unwrap(),
    );
}
