//! The fused recurrence op (`fukai::ops::recurrence`): finite-difference gradient checks in f64
//! for every cell, equality with the same recurrence composed from elementary ops (forward and
//! every gradient), and padding that never leaks into outputs, final states or gradients.

use fukai::ops::{recurrence, CellKind};
use fukai::testing::{gradcheck, randn64};
use fukai::{DType, Result, Tensor};

const CELLS: [CellKind; 4] = [
    CellKind::RnnTanh,
    CellKind::RnnRelu,
    CellKind::Gru,
    CellKind::Lstm,
];
const T: usize = 4;
const B: usize = 3;
const H: usize = 3;
const LENGTHS: [usize; B] = [4, 1, 3];

/// Inputs `[xg, w_hh, b_hh, h0, (c0)]` in f64, scaled so no unit saturates.
fn inputs(cell: CellKind, seed: u64) -> Vec<Tensor> {
    let g = cell.gates() * H;
    let mut v = vec![
        randn64(&[T, B, g], seed).unwrap(),
        randn64(&[g, H], seed + 1).unwrap().mul_scalar(0.5).unwrap(),
        randn64(&[g], seed + 2).unwrap().mul_scalar(0.3).unwrap(),
        randn64(&[B, H], seed + 3).unwrap().mul_scalar(0.5).unwrap(),
    ];
    if cell == CellKind::Lstm {
        v.push(randn64(&[B, H], seed + 4).unwrap().mul_scalar(0.5).unwrap());
    }
    v
}

fn fused(cell: CellKind, t: &[Tensor], reverse: bool) -> Result<Tensor> {
    recurrence(
        cell,
        &t[0],
        &t[1],
        Some(&t[2]),
        &t[3],
        t.get(4),
        Some(&LENGTHS),
        reverse,
    )
}

/// The same recurrence from matmul / sigmoid / tanh / mul / add, with padding handled by
/// blending with a 0/1 row mask; returns `[T + S, B, H]` like the fused op.
fn composite(cell: CellKind, t: &[Tensor], reverse: bool) -> Result<Tensor> {
    let (xg, w, b) = (&t[0], &t[1], &t[2]);
    let (mut h, mut c) = (t[3].clone(), t.get(4).cloned());
    let mut outs = vec![None; T];
    let gate = |a: &Tensor, k: usize| a.narrow(1, k * H, H);
    for k in 0..T {
        let step = if reverse { T - 1 - k } else { k };
        let m: Vec<f64> = LENGTHS
            .iter()
            .map(|&l| if step < l { 1.0 } else { 0.0 })
            .collect();
        let m = Tensor::from_vec(m, &[B, 1])?;
        let keep = m.affine(-1.0, 1.0)?;
        let x = xg.narrow(0, step, 1)?.squeeze(0)?;
        let hg = h.matmul(&w.t()?)?.add(b)?;
        let (h_new, c_new) = match cell {
            CellKind::RnnTanh => (x.add(&hg)?.tanh()?, None),
            CellKind::RnnRelu => (x.add(&hg)?.relu()?, None),
            CellKind::Gru => {
                let r = gate(&x, 0)?.add(&gate(&hg, 0)?)?.sigmoid()?;
                let z = gate(&x, 1)?.add(&gate(&hg, 1)?)?.sigmoid()?;
                let n = gate(&x, 2)?.add(&r.mul(&gate(&hg, 2)?)?)?.tanh()?;
                let one_minus_z = z.affine(-1.0, 1.0)?;
                (one_minus_z.mul(&n)?.add(&z.mul(&h)?)?, None)
            }
            CellKind::Lstm => {
                let pre = x.add(&hg)?;
                let i = gate(&pre, 0)?.sigmoid()?;
                let f = gate(&pre, 1)?.sigmoid()?;
                let g = gate(&pre, 2)?.tanh()?;
                let o = gate(&pre, 3)?.sigmoid()?;
                let c_new = f.mul(c.as_ref().unwrap())?.add(&i.mul(&g)?)?;
                (o.mul(&c_new.tanh()?)?, Some(c_new))
            }
        };
        outs[step] = Some(h_new.mul(&m)?);
        h = h_new.mul(&m)?.add(&h.mul(&keep)?)?;
        if let Some(cn) = c_new {
            c = Some(cn.mul(&m)?.add(&c.unwrap().mul(&keep)?)?);
        }
    }
    let mut parts: Vec<Tensor> = outs.into_iter().map(|o| o.unwrap()).collect();
    parts.push(h);
    parts.extend(c);
    Tensor::stack(&parts, 0)
}

#[test]
fn fused_recurrence_passes_gradcheck() {
    for cell in CELLS {
        for reverse in [false, true] {
            let x = inputs(cell, 10);
            let worst = gradcheck(|t| fused(cell, t, reverse), &x, 1e-6, 1e-6)
                .unwrap_or_else(|e| panic!("{cell:?} reverse={reverse}: {e}"));
            assert!(worst < 1e-6, "{cell:?}: {worst}");
        }
    }
}

#[test]
fn fused_equals_composite_forward_and_gradients() {
    for cell in CELLS {
        for reverse in [false, true] {
            let base = inputs(cell, 20);
            let run = |f: &dyn Fn(&[Tensor]) -> Result<Tensor>| {
                let leaves: Vec<Tensor> = base
                    .iter()
                    .map(|t| t.detach().with_grad().unwrap())
                    .collect();
                let out = f(&leaves).unwrap();
                let w = randn64(out.shape(), 99).unwrap();
                out.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
                let mut all = vec![out.to_vec::<f64>().unwrap()];
                all.extend(
                    leaves
                        .iter()
                        .map(|l| l.grad().unwrap().to_vec::<f64>().unwrap()),
                );
                all
            };
            let a = run(&|t| fused(cell, t, reverse));
            let b = run(&|t| composite(cell, t, reverse));
            for (k, (x, y)) in a.iter().zip(&b).enumerate() {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    assert!(
                        (p - q).abs() <= 1e-12 * (1.0 + q.abs()),
                        "{cell:?} reverse={reverse} tensor {k} element {i}: fused {p} vs composite {q}"
                    );
                }
            }
        }
    }
}

#[test]
fn padding_never_leaks() {
    for cell in CELLS {
        let clean = inputs(cell, 30);
        // Garbage in every padded step of xg.
        let mut dirty = clean.clone();
        let g = cell.gates() * H;
        let mut v = clean[0].to_vec::<f64>().unwrap();
        for t in 0..T {
            for (b, &len) in LENGTHS.iter().enumerate() {
                if t >= len {
                    for j in 0..g {
                        v[(t * B + b) * g + j] = 1e3 * (j as f64 + 1.0);
                    }
                }
            }
        }
        dirty[0] = Tensor::from_vec(v, &[T, B, g]).unwrap();
        for reverse in [false, true] {
            let run = |t: &[Tensor]| {
                let leaves: Vec<Tensor> =
                    t.iter().map(|t| t.detach().with_grad().unwrap()).collect();
                let out = fused(cell, &leaves, reverse).unwrap();
                out.sum_all().unwrap().backward().unwrap();
                let gx = leaves[0].grad().unwrap().to_vec::<f64>().unwrap();
                let gw = leaves[1].grad().unwrap().to_vec::<f64>().unwrap();
                (out.to_vec::<f64>().unwrap(), gx, gw)
            };
            let (o1, gx1, gw1) = run(&clean);
            let (o2, gx2, gw2) = run(&dirty);
            assert_eq!(o1, o2, "{cell:?}: padded inputs changed the outputs");
            assert_eq!(gx1, gx2, "{cell:?}: padded inputs changed the gradients");
            assert_eq!(gw1, gw2);
            for t in 0..T {
                for (b, &len) in LENGTHS.iter().enumerate() {
                    if t >= len {
                        let row = &o1[(t * B + b) * H..(t * B + b + 1) * H];
                        assert!(
                            row.iter().all(|&x| x == 0.0),
                            "{cell:?}: padded output not zero"
                        );
                        let grow = &gx1[(t * B + b) * g..(t * B + b + 1) * g];
                        assert!(
                            grow.iter().all(|&x| x == 0.0),
                            "{cell:?}: gradient at padding"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn bad_arguments_are_errors() {
    let x = inputs(CellKind::Lstm, 40);
    let err = recurrence(CellKind::Lstm, &x[0], &x[1], None, &x[3], None, None, false).unwrap_err();
    assert!(err.to_string().contains("c0"), "{err}");
    let err = recurrence(
        CellKind::Lstm,
        &x[0],
        &x[1],
        None,
        &x[3],
        Some(&x[4]),
        Some(&[1, 2, 9]),
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("lengths[2] = 9"), "{err}");
    let err = recurrence(CellKind::Gru, &x[0], &x[1], None, &x[3], None, None, false).unwrap_err();
    assert!(err.to_string().contains("xg must have shape"), "{err}");
    let f32x = Tensor::zeros(&[T, B, 4 * H], DType::F32).unwrap();
    assert!(recurrence(
        CellKind::Lstm,
        &f32x,
        &x[1],
        None,
        &x[3],
        Some(&x[4]),
        None,
        false
    )
    .is_err());
}
