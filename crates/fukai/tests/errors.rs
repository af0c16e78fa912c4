//! Every op family fed wrong shapes, wrong dtypes and bad dims: each call must return an `Err`
//! (never panic) whose message starts with the op's name and names what was wrong with the
//! arguments (the shapes, dtypes, dims or indices involved).

use fukai::{DType, Result, Tensor};
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, which must return `Err` without panicking; the message must start with `op:` and
/// contain every one of `needles`.
#[track_caller]
fn fails<T: Debug>(op: &str, needles: &[&str], f: impl FnOnce() -> Result<T>) {
    let r = catch_unwind(AssertUnwindSafe(f));
    let msg = match r {
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{op}: panicked instead of returning Err: {what}");
        }
        Ok(Ok(v)) => panic!("{op}: expected an error, got Ok({v:?})"),
        Ok(Err(e)) => e.to_string(),
    };
    assert!(
        msg.starts_with(&format!("{op}:")),
        "message should start with {op:?}: {msg}"
    );
    for n in needles {
        assert!(msg.contains(n), "message should mention {n:?}: {msg}");
    }
}

fn f32s(shape: &[usize]) -> Tensor {
    let n = shape.iter().product::<usize>();
    Tensor::from_vec((0..n).map(|i| i as f32).collect::<Vec<_>>(), shape).unwrap()
}
fn f64s(shape: &[usize]) -> Tensor {
    f32s(shape).to_dtype(DType::F64).unwrap()
}
fn i64s(shape: &[usize]) -> Tensor {
    f32s(shape).to_dtype(DType::I64).unwrap()
}
fn scalar() -> Tensor {
    Tensor::scalar(1.5, DType::F32)
}

#[test]
fn creation_and_readout() {
    fails("from_vec", &["5 elements", "[2, 3]"], || {
        Tensor::from_vec(vec![0f32; 5], &[2, 3])
    });
    fails("from_vec", &["overflow"], || {
        Tensor::from_vec(vec![0f32; 4], &[usize::MAX, 2, 2])
    });
    fails("zeros", &["overflow"], || {
        Tensor::zeros(&[usize::MAX / 2, 3], DType::F32)
    });
    fails("full", &["bytes"], || {
        Tensor::full(&[usize::MAX / 4], 1.0, DType::F64)
    });
    fails("arange", &["step 0"], || {
        Tensor::arange(0.0, 5.0, 0.0, DType::F32)
    });
    fails("arange", &["NaN"], || {
        Tensor::arange(0.0, f64::NAN, 1.0, DType::F32)
    });
    fails("arange", &["elements"], || {
        Tensor::arange(0.0, 1e30, 1.0, DType::F32)
    });
    fails("uniform", &["i64"], || {
        Tensor::uniform(&[2], 0.0, 1.0, DType::I64)
    });
    fails("uniform", &["[1, 0)"], || {
        Tensor::uniform(&[2], 1.0, 0.0, DType::F32)
    });
    fails("uniform", &["NaN"], || {
        Tensor::uniform(&[2], f64::NAN, 0.0, DType::F32)
    });
    fails("normal", &["std -1"], || {
        Tensor::normal_with(&[2], 0.0, -1.0, DType::F32, &mut fukai::Generator::new(0))
    });
    fails("normal", &["overflow"], || {
        Tensor::normal_with(
            &[usize::MAX, 3],
            0.0,
            1.0,
            DType::F32,
            &mut fukai::Generator::new(0),
        )
    });
    fails("to_vec", &["f32", "f64"], || f32s(&[2]).to_vec::<f64>());
    fails("item", &["[2, 2]"], || f32s(&[2, 2]).item());
    fails("with_f32", &["i64"], || i64s(&[2]).with_f32(|_| ()));
    fails("copy_from", &["[2, 3]", "[3, 2]"], || {
        f32s(&[2, 3]).copy_from(&f32s(&[3, 2]))
    });
    fails("copy_from", &["f32", "f64"], || {
        f32s(&[2, 3]).copy_from(&f64s(&[2, 3]))
    });
    fails("update_f32", &["[3, 2]", "strided"], || {
        f32s(&[2, 3]).t()?.update_f32(|_| ())
    });
    fails("update_f32", &["f64"], || f64s(&[2]).update_f32(|_| ()));
    fails("dim", &["dim 2", "rank 2"], || f32s(&[2, 3]).dim(2));
}

#[test]
fn unary_ops_need_float() {
    type Op = fn(&Tensor) -> Result<Tensor>;
    let ops: [(&str, Op); 12] = [
        ("neg", |t| t.neg()),
        ("exp", |t| t.exp()),
        ("log", |t| t.log()),
        ("sqrt", |t| t.sqrt()),
        ("tanh", |t| t.tanh()),
        ("sigmoid", |t| t.sigmoid()),
        ("relu", |t| t.relu()),
        ("gelu", |t| t.gelu()),
        ("silu", |t| t.silu()),
        ("powf", |t| t.powf(2.0)),
        ("affine", |t| t.mul_scalar(2.0)),
        ("clamp", |t| t.clamp(0.0, 1.0)),
    ];
    for (name, op) in ops {
        for (bad, dt) in [
            (i64s(&[2]), "i64"),
            (f32s(&[2]).to_dtype(DType::U8).unwrap(), "u8"),
            (f32s(&[2]).to_dtype(DType::BF16).unwrap(), "bf16"),
        ] {
            fails(name, &[dt, "to_dtype"], || op(&bad));
        }
    }
}

#[test]
fn binary_ops_shapes_and_dtypes() {
    type Op = fn(&Tensor, &Tensor) -> Result<Tensor>;
    let ops: [(&str, Op); 7] = [
        ("add", |a, b| a.add(b)),
        ("sub", |a, b| a.sub(b)),
        ("mul", |a, b| a.mul(b)),
        ("div", |a, b| a.div(b)),
        ("maximum", |a, b| a.maximum(b)),
        ("minimum", |a, b| a.minimum(b)),
        ("pow", |a, b| a.pow(b)),
    ];
    for (name, op) in ops {
        fails(name, &["[2, 3]", "[2, 4]"], || {
            op(&f32s(&[2, 3]), &f32s(&[2, 4]))
        });
        fails(name, &["[3]", "[4, 2]"], || op(&f32s(&[3]), &f32s(&[4, 2])));
        fails(name, &["f32", "f64"], || op(&f32s(&[2]), &f64s(&[2])));
        fails(name, &["i64"], || op(&i64s(&[2]), &i64s(&[2])));
    }
    fails("sum_to_shape", &["[2, 3]", "[4]"], || {
        f32s(&[2, 3]).sum_to_shape(&[4])
    });
    fails("sum_to_shape", &["[3]", "[2, 3]"], || {
        f32s(&[3]).sum_to_shape(&[2, 3])
    });
}

#[test]
fn comparisons_and_where() {
    fails("gt", &["[2]", "[3]"], || f32s(&[2]).gt(&f32s(&[3])));
    fails("eq", &["f32", "i64"], || f32s(&[2]).eq(&i64s(&[2])));
    fails("cmp_scalar", &["\"bigger\""], || {
        f32s(&[2]).cmp_scalar("bigger", 0.0)
    });
    let mask = f32s(&[2]).gt(&Tensor::scalar(0.5, DType::F32)).unwrap();
    fails("where_cond", &["f32"], || {
        f32s(&[2]).where_cond(&f32s(&[2]), &f32s(&[2]))
    });
    fails("where_cond", &["[2]", "[3]"], || {
        mask.where_cond(&f32s(&[3]), &f32s(&[3]))
    });
    fails("where_cond", &["f32", "f64"], || {
        mask.where_cond(&f32s(&[2]), &f64s(&[2]))
    });
    fails("where_cond", &["i64"], || {
        mask.where_cond(&i64s(&[2]), &i64s(&[2]))
    });
    fails("masked_fill", &["[4]", "[2]"], || {
        f32s(&[4]).masked_fill(&mask, 0.0)
    });
    fails("masked_fill", &["u8", "f32"], || {
        f32s(&[2]).masked_fill(&f32s(&[2]), 0.0)
    });
}

#[test]
fn reductions() {
    let x = f32s(&[2, 3]);
    fails("sum", &["dim 2", "rank 2"], || x.sum(&[2], false));
    fails("sum", &["dim -3", "rank 2"], || x.sum(&[-3], false));
    fails("sum", &["twice"], || x.sum(&[1, -1], false));
    fails("sum", &["i64"], || i64s(&[2]).sum_all());
    fails("mean", &["dim 5"], || x.mean(&[5], true));
    fails("var", &["[2, 3]", "correction 3"], || x.var(&[1], 3, false));
    fails("max", &["dim 2"], || x.max(2, false));
    fails("max", &["empty", "[2, 0]"], || f32s(&[2, 0]).max(1, false));
    fails("max", &["empty", "[0]"], || f32s(&[0]).max_all());
    fails("min", &["i64"], || i64s(&[2]).min(0, false));
    fails("max", &["u8"], || x.gt(&x).unwrap().argmax(0, false));
    fails("logsumexp", &["dim 4"], || x.logsumexp(4, false));
    // Reducing an empty dim together with a non-adjacent one keeps the other dims' size.
    let e = f32s(&[0, 2, 2]).sum(&[0, 2], false).unwrap();
    assert_eq!(e.to_vec::<f32>().unwrap(), vec![0.0, 0.0]);
    // 0-dim tensors take dim 0 / -1 (PyTorch's rule) and nothing else.
    let s = scalar();
    assert_eq!(s.mean(&[0], false).unwrap().item().unwrap(), 1.5);
    assert_eq!(s.sum(&[-1], true).unwrap().item().unwrap(), 1.5);
    fails("var", &["1 element", "correction 1"], || {
        s.var(&[0], 1, false)
    });
    fails("mean", &["dim 1", "rank 0"], || s.mean(&[1], false));
}

#[test]
fn softmax_family() {
    let x = f32s(&[2, 3]);
    fails("softmax", &["dim 2", "rank 2"], || x.softmax(2));
    fails("log_softmax", &["dim -3"], || x.log_softmax(-3));
    fails("softmax", &["i64"], || i64s(&[3]).softmax(0));
}

#[test]
fn matmul() {
    fails("matmul", &["[2, 3]", "[4, 5]", "3 vs 4"], || {
        f32s(&[2, 3]).matmul(&f32s(&[4, 5]))
    });
    fails("matmul", &["[2, 3, 4]", "[5, 4, 2]"], || {
        f32s(&[2, 3, 4]).matmul(&f32s(&[5, 4, 2]))
    });
    fails("matmul", &["[]", "[2]"], || scalar().matmul(&f32s(&[2])));
    fails("matmul", &["[3]", "[4]"], || f32s(&[3]).matmul(&f32s(&[4])));
    fails("matmul", &["[3]", "[2, 3]"], || {
        f32s(&[3]).matmul(&f32s(&[2, 3]))
    });
    fails("matmul", &["f32", "f64"], || {
        f32s(&[2, 2]).matmul(&f64s(&[2, 2]))
    });
    fails("matmul", &["i64"], || i64s(&[2, 2]).matmul(&i64s(&[2, 2])));
    // The valid 1-D cases work, with PyTorch's shapes.
    let dot = f32s(&[3]).matmul(&f32s(&[3])).unwrap();
    assert_eq!(dot.shape(), &[] as &[usize]);
    assert_eq!(dot.item().unwrap(), 5.0);
    assert_eq!(f32s(&[3]).matmul(&f32s(&[3, 2])).unwrap().shape(), &[2]);
    assert_eq!(f32s(&[2, 3]).matmul(&f32s(&[3])).unwrap().shape(), &[2]);
    assert_eq!(
        f32s(&[4, 2, 3]).matmul(&f32s(&[3])).unwrap().shape(),
        &[4, 2]
    );
}

#[test]
fn views() {
    let x = f32s(&[2, 3, 4]);
    fails("reshape", &["[2, 3, 4]", "[5, 5]"], || x.reshape(&[5, 5]));
    // The element count would wrap to 0 (an empty tensor's) without the overflow check.
    fails(
        "reshape",
        &["[0]", "[4611686018427387904, 4, 2]", "overflow"],
        || f32s(&[0]).reshape(&[1 << 62, 4, 2]),
    );
    fails("reshape", &["[2, 3, 4]", "overflow"], || {
        x.reshape_infer(&[isize::MAX, 4, -1])
    });
    fails("reshape", &["[2, 3, 4]", "[-1, -1]"], || {
        x.reshape_infer(&[-1, -1])
    });
    fails("reshape", &["[2, 3, 4]", "[5, -1]"], || {
        x.reshape_infer(&[5, -1])
    });
    fails("reshape", &["[-2, 12]"], || x.reshape_infer(&[-2, 12]));
    fails("permute", &["[0, 0, 1]", "[2, 3, 4]"], || {
        x.permute(&[0, 0, 1])
    });
    fails("permute", &["[0, 1]", "[2, 3, 4]"], || x.permute(&[0, 1]));
    fails("permute", &["dim 3", "rank 3"], || x.permute(&[0, 1, 3]));
    fails("transpose", &["dim 3", "rank 3"], || x.transpose(0, 3));
    fails("t", &["[4]"], || f32s(&[4]).t());
    fails("narrow", &["0..4", "size 3", "[2, 3, 4]"], || {
        x.narrow(1, 0, 4)
    });
    fails("narrow", &["size 3", "[2, 3, 4]"], || {
        x.narrow(1, usize::MAX, 2)
    });
    fails("narrow", &["dim 3"], || x.narrow(3, 0, 1));
    fails("expand", &["[2, 3, 4]", "[2, 5, 4]"], || {
        x.expand(&[2, 5, 4])
    });
    fails("expand", &["[2, 3, 4]", "[3, 4]"], || x.expand(&[3, 4]));
    fails("expand", &["overflow"], || {
        f32s(&[1, 1]).expand(&[usize::MAX, usize::MAX])
    });
    fails("squeeze", &["size 3", "[2, 3, 4]"], || x.squeeze(1));
    fails("squeeze", &["dim 3"], || x.squeeze(3));
    fails("unsqueeze", &["dim 4", "[2, 3, 4]"], || x.unsqueeze(4));
    fails("unsqueeze", &["dim -5", "[2, 3, 4]"], || x.unsqueeze(-5));
    fails("flatten", &["2", "1", "[2, 3, 4]"], || x.flatten(2, 1));
    fails("flatten", &["dim 3"], || x.flatten(0, 3));
    // 0-dim tensors: what PyTorch allows works, the rest errors.
    let s = scalar();
    assert_eq!(s.transpose(0, -1).unwrap().shape(), &[] as &[usize]);
    assert_eq!(s.unsqueeze(0).unwrap().shape(), &[1]);
    assert_eq!(s.squeeze(0).unwrap().shape(), &[] as &[usize]);
    fails("narrow", &["0-dim"], || s.narrow(0, 0, 1));
    fails("transpose", &["dim 1", "rank 0"], || s.transpose(0, 1));
}

#[test]
fn joining_and_indexing() {
    let a = f32s(&[2, 3]);
    fails("cat", &["at least one"], || Tensor::cat(&[], 0));
    fails("cat", &["tensor 1", "[2, 4]", "[2, 3]", "dim 0"], || {
        Tensor::cat(&[a.clone(), f32s(&[2, 4])], 0)
    });
    fails("cat", &["tensor 1", "[6]", "[2, 3]"], || {
        Tensor::cat(&[a.clone(), f32s(&[6])], 1)
    });
    fails("cat", &["f32", "f64"], || {
        Tensor::cat(&[a.clone(), f64s(&[2, 3])], 0)
    });
    fails("cat", &["dim 2", "rank 2"], || {
        Tensor::cat(std::slice::from_ref(&a), 2)
    });
    fails("cat", &["0-dim"], || Tensor::cat(&[scalar(), scalar()], 0));
    fails("stack", &["tensor 1", "[3, 2]", "[2, 3]"], || {
        Tensor::stack(&[a.clone(), f32s(&[3, 2])], 0)
    });
    fails("stack", &["at least one"], || Tensor::stack(&[], 0));
    fails("unsqueeze", &["dim 3"], || {
        Tensor::stack(std::slice::from_ref(&a), 3)
    });
    assert_eq!(
        Tensor::stack(&[scalar(), scalar()], 0).unwrap().shape(),
        &[2]
    );
    fails("split", &["positive"], || a.split(0, 1));
    fails("split", &["dim 2"], || a.split(1, 2));
    fails("split", &["0-dim"], || scalar().split(1, 0));
    fails("chunk", &["positive"], || a.chunk(0, 0));
    fails("chunk", &["0-dim"], || scalar().chunk(2, 0));

    let idx = Tensor::from_vec(vec![0i64, 2], &[2]).unwrap();
    let bad = Tensor::from_vec(vec![0i64, 3], &[2]).unwrap();
    let neg = Tensor::from_vec(vec![-1i64], &[1]).unwrap();
    fails("index_select", &["index 3", "size 3"], || {
        a.index_select(1, &bad)
    });
    fails("index_select", &["index -1"], || a.index_select(0, &neg));
    fails("index_select", &["1-D", "[2, 1]"], || {
        a.index_select(1, &idx.reshape(&[2, 1])?)
    });
    fails("index_select", &["i64 or u32", "f32"], || {
        a.index_select(1, &f32s(&[2]))
    });
    fails("index_select", &["dim 2"], || a.index_select(2, &idx));
    fails("index_select", &["0-dim"], || {
        scalar().index_select(0, &idx)
    });
    fails("index_add", &["[2, 3]", "[2, 2]"], || {
        a.index_add(1, &idx, &f32s(&[2, 3]))
    });
    fails("index_add", &["index 3"], || {
        a.index_add(1, &bad, &f32s(&[2, 2]))
    });
    fails("index_add", &["i64"], || {
        i64s(&[2, 3]).index_add(1, &idx, &i64s(&[2, 2]))
    });
    fails("index_add", &["f32", "f64"], || {
        a.index_add(1, &idx, &f64s(&[2, 2]))
    });
    fails("index_add", &["0-dim"], || {
        scalar().index_add(0, &idx, &f32s(&[2]))
    });

    let gi = Tensor::from_vec(vec![0i64, 2, 1, 0], &[2, 2]).unwrap();
    fails("gather", &["[2]", "[2, 3]"], || a.gather(1, &idx));
    fails("gather", &["[3, 2]", "[2, 3]"], || {
        a.gather(1, &Tensor::from_vec(vec![0i64; 6], &[3, 2])?)
    });
    fails("gather", &["index 3", "size 3"], || {
        a.gather(1, &Tensor::from_vec(vec![3i64], &[1, 1])?)
    });
    fails("gather", &["i64 or u32", "f32"], || {
        a.gather(1, &f32s(&[2, 2]))
    });
    fails("gather", &["i64"], || i64s(&[2, 3]).gather(1, &gi));
    fails("gather", &["0-dim"], || {
        scalar().gather(0, &Tensor::from_vec(vec![0i64], &[])?)
    });
    fails("scatter_add", &["[2, 3]", "[2, 2]"], || {
        a.scatter_add(1, &gi, &f32s(&[2, 3]))
    });
    fails("scatter_add", &["f32", "f64"], || {
        a.scatter_add(1, &gi, &f64s(&[2, 2]))
    });
    fails("scatter_add", &["index 3"], || {
        a.scatter_add(1, &Tensor::from_vec(vec![3i64], &[1, 1])?, &f32s(&[1, 1]))
    });

    let table = f32s(&[4, 3]);
    fails("embedding", &["[4, 3, 1]"], || {
        table.reshape(&[4, 3, 1])?.embedding(&idx)
    });
    fails("index_select", &["index 4", "size 4"], || {
        table.embedding(&Tensor::from_vec(vec![1i64, 4], &[1, 2])?)
    });
    fails("index_select", &["i64 or u32", "f32"], || {
        table.embedding(&f32s(&[2]))
    });
}

#[test]
fn autograd_misuse() {
    let x = f32s(&[2]).with_grad().unwrap();
    fails("autograd", &["[2]", "backward_with"], || {
        x.mul_scalar(2.0)?.backward()
    });
    fails("autograd", &["does not require grad"], || {
        f32s(&[2]).sum_all()?.backward()
    });
    fails("autograd", &["[3]", "[2]"], || {
        x.mul_scalar(2.0)?.backward_with(&f32s(&[3]))
    });
    fails("set_requires_grad", &["leaf"], || {
        x.mul_scalar(2.0)?.set_requires_grad(true).map(|_| ())
    });
    fails("set_requires_grad", &["u8"], || {
        x.gt(&x)?.set_requires_grad(true).map(|_| ())
    });
}

mod no_panics {
    //! Random ops on random (often mismatched, empty or 0-dim) shapes with random dims: any
    //! result is fine, a panic is not.
    use super::*;
    use proptest::prelude::*;

    fn shape() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(0usize..=3, 0..=3)
    }

    fn index_tensor(shape: &[usize], hi: i64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<i64> = (0..n as i64).map(|i| (i * 7) % (hi + 2) - 1).collect();
        Tensor::from_vec(v, shape).unwrap()
    }

    fn run(
        op: u8,
        a: &Tensor,
        b: &Tensor,
        d0: isize,
        d1: isize,
        s: &[usize],
    ) -> Result<Vec<usize>> {
        let idx = index_tensor(b.shape(), d1.unsigned_abs() as i64);
        let u = d0.unsigned_abs();
        let out = match op {
            0 => a.add(b)?,
            1 => a.matmul(b)?,
            2 => a.sum(&[d0, d1], false)?,
            3 => a.mean(&[d0], true)?,
            4 => a.var(&[d0], u % 2, false)?,
            5 => a.max(d0, d1 > 0)?,
            6 => a.softmax(d0)?,
            7 => a.logsumexp(d0, false)?,
            8 => a.reshape(s)?,
            9 => a.permute(&[d0, d1])?,
            10 => a.transpose(d0, d1)?,
            11 => a.narrow(d0, d1.unsigned_abs(), u)?,
            12 => a.expand(s)?,
            13 => a.squeeze(d0)?,
            14 => a.unsqueeze(d0)?,
            15 => a.flatten(d0, d1)?,
            16 => Tensor::cat(&[a.clone(), b.clone()], d0)?,
            17 => Tensor::stack(&[a.clone(), b.clone()], d0)?,
            18 => a.split(u, d1)?.pop().unwrap_or(a.clone()),
            19 => a.chunk(u, d1)?.pop().unwrap_or(a.clone()),
            20 => a.index_select(d0, &idx)?,
            21 => a.gather(d0, &idx)?,
            22 => a.scatter_add(d0, &idx, b)?,
            23 => a.index_add(d0, &idx, b)?,
            24 => a.embedding(&idx)?,
            25 => a.gt(b)?.where_cond(a, b)?,
            26 => a.masked_fill(&b.gt(b)?, 1.0)?,
            27 => a.sum_to_shape(s)?,
            28 => a.reshape_infer(&[d0, d1])?,
            29 => a.argmax(d0, true)?,
            _ => a.t()?.matmul(b)?,
        };
        // Whatever came back must be readable and differentiable-shaped.
        out.to_vec_f64()?;
        Ok(out.shape().to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn random_calls_never_panic(
            op in 0u8..31,
            sa in shape(),
            sb in shape(),
            s in shape(),
            d0 in -4isize..4,
            d1 in -4isize..4,
            grad in any::<bool>(),
        ) {
            let a = f64s(&sa);
            let b = f64s(&sb);
            if grad {
                a.set_requires_grad(true).unwrap();
                b.set_requires_grad(true).unwrap();
            }
            let r = catch_unwind(AssertUnwindSafe(|| {
                let out = run(op, &a, &b, d0, d1, &s);
                // Backward through whatever succeeded must not panic either.
                if grad && out.is_ok() {
                    let _ = (|| -> Result<()> {
                        let y = match op {
                            1 => a.matmul(&b)?,
                            2 => a.sum(&[d0, d1], false)?,
                            6 => a.softmax(d0)?,
                            11 => a.narrow(d0, d1.unsigned_abs(), d0.unsigned_abs())?,
                            16 => Tensor::cat(&[a.clone(), b.clone()], d0)?,
                            _ => a.add(&b)?,
                        };
                        y.sum_all()?.backward()
                    })();
                }
                out
            }));
            prop_assert!(r.is_ok(), "op {} panicked on {:?} / {:?} (dims {}, {}; shape {:?})", op, sa, sb, d0, d1, s);
        }
    }
}
