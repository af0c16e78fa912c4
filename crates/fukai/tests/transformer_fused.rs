//! The fused kernels of the Transformer layers against their composites (forward and every
//! gradient), finite-difference checks in f64, and the key/value cache against a full pass.

use fukai::nn::{KvCache, Mask, Module, MultiHeadAttention, Rope};
use fukai::ops::{attention, AttnInput, AttnOptions};
use fukai::testing::{gradcheck, max_abs_diff, output_and_grads, randn64};
use fukai::{DType, Result, Tensor};

/// The f32 values' bit patterns, for comparisons that must be exact.
fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    max_abs_diff(a, b).unwrap()
}

fn run(f: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) -> (Tensor, Vec<Tensor>) {
    output_and_grads(f, inputs).unwrap()
}

fn assert_same(
    fused: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    composite: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    tol: f64,
) {
    let (a, ga) = run(fused, inputs);
    let (b, gb) = run(composite, inputs);
    assert!(
        max_diff(&a, &b) < tol,
        "forward differs by {}",
        max_diff(&a, &b)
    );
    for (i, (x, y)) in ga.iter().zip(&gb).enumerate() {
        assert!(
            max_diff(x, y) < tol,
            "gradient {i} differs by {}",
            max_diff(x, y)
        );
    }
}

fn layer_norm_composite(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean(&[-1], true)?;
    let c = x.sub(&mean)?;
    let var = c.square()?.mean(&[-1], true)?;
    c.mul(&var.add_scalar(eps)?.rsqrt()?)?.mul(w)?.add(b)
}

#[test]
fn fused_layer_norm_equals_composite() {
    let inputs = [
        randn64(&[3, 5, 7], 1)
            .unwrap()
            .mul_scalar(3.0)
            .unwrap()
            .add_scalar(1.0)
            .unwrap(),
        randn64(&[7], 2).unwrap(),
        randn64(&[7], 3).unwrap(),
    ];
    assert_same(
        &|t| t[0].layer_norm(Some(&t[1]), Some(&t[2]), 1e-5),
        &|t| layer_norm_composite(&t[0], &t[1], &t[2], 1e-5),
        &inputs,
        1e-12,
    );
    // f32 too, against the same composite.
    let f32s: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_dtype(DType::F32).unwrap())
        .collect();
    assert_same(
        &|t| t[0].layer_norm(Some(&t[1]), Some(&t[2]), 1e-5),
        &|t| layer_norm_composite(&t[0], &t[1], &t[2], 1e-5),
        &f32s,
        1e-4,
    );
    // Without affine parameters.
    assert_same(
        &|t| t[0].layer_norm(None, None, 1e-5),
        &|t| {
            layer_norm_composite(
                &t[0],
                &Tensor::ones(&[7], DType::F64)?,
                &Tensor::zeros(&[7], DType::F64)?,
                1e-5,
            )
        },
        &inputs[..1],
        1e-12,
    );
}

/// The residual sum and layer norm in one pass (inference) give the bits of `add` then
/// `layer_norm`: in f32 and f64, with and without the affine parameters, over row counts that
/// fill and break the 64-row chunks and widths that fill and break the 16 lanes; where a
/// gradient is recorded it is the composite, gradients and all.
#[test]
fn add_layer_norm_is_the_sum_then_the_layer_norm_bit_for_bit() {
    for (rows, d) in [(1, 7), (3, 16), (130, 384), (65, 33)] {
        for dt in [DType::F32, DType::F64] {
            let x = randn64(&[rows, d], 21).unwrap().to_dtype(dt).unwrap();
            let r = randn64(&[rows, d], 22)
                .unwrap()
                .mul_scalar(4.0)
                .unwrap()
                .to_dtype(dt)
                .unwrap();
            let w = randn64(&[d], 23).unwrap().to_dtype(dt).unwrap();
            let b = randn64(&[d], 24).unwrap().to_dtype(dt).unwrap();
            for (w, b) in [(Some(&w), Some(&b)), (None, None), (Some(&w), None)] {
                let fused = x.add_layer_norm(&r, w, b, 1e-5).unwrap();
                let plain = x.add(&r).unwrap().layer_norm(w, b, 1e-5).unwrap();
                assert_eq!(fused.shape(), plain.shape());
                let (f, p) = (fused.to_vec_f64().unwrap(), plain.to_vec_f64().unwrap());
                let same = f.iter().zip(&p).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{rows}x{d} {dt:?}: the fused pass differs from the composite"
                );
            }
        }
    }
    // A broadcast residual takes the composite; a transposed input is read through a
    // contiguous copy. Both give the composite's values.
    let x = randn64(&[4, 6], 25).unwrap();
    let r = randn64(&[6], 26).unwrap();
    let y = x.add_layer_norm(&r, None, None, 1e-5).unwrap();
    let want = x.add(&r).unwrap().layer_norm(None, None, 1e-5).unwrap();
    assert_eq!(y.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    let xt = randn64(&[6, 4], 27).unwrap().transpose(0, 1).unwrap();
    let y = xt.add_layer_norm(&x, None, None, 1e-5).unwrap();
    let want = xt.add(&x).unwrap().layer_norm(None, None, 1e-5).unwrap();
    assert_eq!(y.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    // A weight of the wrong size on the fused path is an error naming the op (the composite's
    // errors name `add` or `layer_norm`, where they arise).
    let w5 = randn64(&[5], 31).unwrap();
    let e = x.add_layer_norm(&x, Some(&w5), None, 1e-5).unwrap_err();
    assert!(e.to_string().contains("add_layer_norm"), "{e}");
    // Gradients reach both operands and the parameters.
    let x = randn64(&[3, 4], 28).unwrap();
    let (w, b) = (randn64(&[4], 29).unwrap(), randn64(&[4], 30).unwrap());
    gradcheck(
        |t| t[0].add_layer_norm(&t[1], Some(&t[2]), Some(&t[3]), 1e-5),
        &[x.clone(), x.mul_scalar(-0.5).unwrap(), w, b],
        1e-6,
        1e-6,
    )
    .unwrap();
}

#[test]
fn fused_rms_norm_equals_composite() {
    let inputs = [randn64(&[4, 6], 4).unwrap(), randn64(&[6], 5).unwrap()];
    let composite = |t: &[Tensor]| {
        t[0].mul(
            &t[0]
                .square()?
                .mean(&[-1], true)?
                .add_scalar(1e-6)?
                .rsqrt()?,
        )?
        .mul(&t[1])
    };
    assert_same(
        &|t| t[0].rms_norm(Some(&t[1]), 1e-6),
        &composite,
        &inputs,
        1e-12,
    );
}

#[test]
fn norms_gradcheck() {
    let x = randn64(&[3, 4], 6).unwrap();
    let (w, b) = (randn64(&[4], 7).unwrap(), randn64(&[4], 8).unwrap());
    gradcheck(
        |t| t[0].layer_norm(Some(&t[1]), Some(&t[2]), 1e-5),
        &[x.clone(), w.clone(), b],
        1e-6,
        1e-6,
    )
    .unwrap();
    gradcheck(|t| t[0].rms_norm(Some(&t[1]), 1e-5), &[x, w], 1e-6, 1e-6).unwrap();
}

/// Plain attention from matmul / masked_fill / softmax; q `[B, Tq, H·hd]`, k and v
/// `[B, S, Hkv·hd]`, `pad` `[B, S]` (1 = padding), `add` broadcastable to `[B, H, Tq, S]`.
#[allow(clippy::too_many_arguments)]
fn attention_composite(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    h: usize,
    hkv: usize,
    causal: bool,
    pad: Option<&Tensor>,
    add: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, tq, s) = (q.shape()[0], q.shape()[1], k.shape()[1]);
    let hd = q.shape()[2] / h;
    let heads = |t: &Tensor, n: usize, len: usize| -> Result<Tensor> {
        let t = t.reshape(&[b, len, n, hd])?.permute(&[0, 2, 1, 3])?;
        // Repeat each kv head for its group of query heads.
        let g = h / n;
        t.unsqueeze(2)?
            .expand(&[b, n, g, len, hd])?
            .contiguous()?
            .reshape(&[b, h, len, hd])
    };
    let (qh, kh, vh) = (heads(q, h, tq)?, heads(k, hkv, s)?, heads(v, hkv, s)?);
    let mut scores = qh
        .matmul(&kh.transpose(-1, -2)?)?
        .mul_scalar(1.0 / (hd as f64).sqrt())?;
    if let Some(a) = add {
        scores = scores.add(&a.to_dtype(scores.dtype())?)?;
    }
    let mut blocked = vec![0u8; b * h * tq * s];
    for bi in 0..b {
        for hi in 0..h {
            for i in 0..tq {
                for j in 0..s {
                    let hide = (causal && j > i + s - tq)
                        || pad.is_some_and(|p| p.to_vec_f64().unwrap()[bi * s + j] != 0.0);
                    blocked[((bi * h + hi) * tq + i) * s + j] = hide as u8;
                }
            }
        }
    }
    let blocked = Tensor::from_vec(blocked, &[b, h, tq, s])?;
    let p = scores
        .masked_fill(&blocked, f64::NEG_INFINITY)?
        .softmax(-1)?;
    p.matmul(&vh)?
        .permute(&[0, 2, 1, 3])?
        .reshape(&[b, tq, h * hd])
}

fn opts(
    h: usize,
    hkv: usize,
    hd: usize,
    causal: bool,
    pad: Option<&Tensor>,
    add: Option<&Tensor>,
) -> AttnOptions {
    AttnOptions {
        kv_heads: hkv,
        causal,
        key_padding: pad.cloned(),
        attn_mask: add.cloned(),
        ..AttnOptions::new(h, hd)
    }
}

#[test]
fn fused_attention_equals_composite() {
    // Head widths and key counts below and above the kernels' 4-term steps; 19 queries over
    // 21 keys fill a 16-lane block and start another.
    for (tq, s, hd) in [(5, 7, 3), (6, 11, 9), (19, 21, 16)] {
        attention_case(tq, s, hd);
    }
}

fn attention_case(tq: usize, s: usize, hd: usize) {
    let b = 2;
    let pad: Vec<u8> = (0..b * s).map(|i| u8::from(i % 5 == 3)).collect();
    let pad = Tensor::from_vec(pad, &[b, s]).unwrap();
    let add = randn64(&[tq, s], 11).unwrap();
    type Case<'a> = (usize, usize, bool, Option<&'a Tensor>, Option<&'a Tensor>);
    let cases: Vec<Case> = vec![
        (2, 2, false, None, None),
        (2, 2, true, None, None),
        (4, 2, true, Some(&pad), None),
        (3, 1, false, Some(&pad), Some(&add)),
        (2, 2, true, None, Some(&add)),
    ];
    for (h, hkv, causal, p, a) in cases {
        let inputs = [
            randn64(&[b, tq, h * hd], 20).unwrap(),
            randn64(&[b, s, hkv * hd], 21).unwrap(),
            randn64(&[b, s, hkv * hd], 22).unwrap(),
        ];
        let o = opts(h, hkv, hd, causal, p, a);
        let fused = |t: &[Tensor]| {
            attention(
                AttnInput { src: &t[0], col: 0 },
                AttnInput { src: &t[1], col: 0 },
                AttnInput { src: &t[2], col: 0 },
                &o,
            )
        };
        let composite =
            |t: &[Tensor]| attention_composite(&t[0], &t[1], &t[2], h, hkv, causal, p, a);
        assert_same(&fused, &composite, &inputs, 1e-12);
        gradcheck(fused, &inputs, 1e-6, 1e-6).unwrap();
        same_bits_without_a_graph(&fused, &inputs);
    }
}

/// Without a graph to record, the kernel keeps one head's probabilities at a time instead of
/// every head's (for the backward): the output must not change by a bit, in f64 and in f32.
fn same_bits_without_a_graph(fused: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    for dt in [DType::F64, DType::F32] {
        let x: Vec<Tensor> = inputs
            .iter()
            .map(|t| t.detach().to_dtype(dt).unwrap())
            .collect();
        let tracked: Vec<Tensor> = x.iter().map(|t| t.clone().with_grad().unwrap()).collect();
        let kept = fused(&tracked).unwrap().to_vec_f64().unwrap();
        let _g = fukai::no_grad();
        let scratch = fused(&x).unwrap().to_vec_f64().unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&kept), bits(&scratch), "{dt:?}");
    }
}

#[test]
fn fused_attention_reads_one_qkv_source() {
    // q, k and v as column ranges of one [B, T, 3·d] tensor (the fused projection).
    let (b, t, h, hd) = (2, 4, 2, 3);
    let d = h * hd;
    let qkv = randn64(&[b, t, 3 * d], 30).unwrap();
    let o = opts(h, h, hd, true, None, None);
    let fused = |x: &[Tensor]| {
        attention(
            AttnInput { src: &x[0], col: 0 },
            AttnInput { src: &x[0], col: d },
            AttnInput {
                src: &x[0],
                col: 2 * d,
            },
            &o,
        )
    };
    let composite = |x: &[Tensor]| {
        attention_composite(
            &x[0].narrow(-1, 0, d)?,
            &x[0].narrow(-1, d, d)?,
            &x[0].narrow(-1, 2 * d, d)?,
            h,
            h,
            true,
            None,
            None,
        )
    };
    assert_same(&fused, &composite, std::slice::from_ref(&qkv), 1e-12);
    gradcheck(fused, &[qkv], 1e-6, 1e-6).unwrap();
}

#[test]
fn attention_rejects_bad_shapes() {
    let q = Tensor::zeros(&[2, 3, 4], DType::F32).unwrap();
    let k = Tensor::zeros(&[2, 5, 4], DType::F32).unwrap();
    let o = AttnOptions::new(3, 2);
    let e = attention(
        AttnInput { src: &q, col: 0 },
        AttnInput { src: &k, col: 0 },
        AttnInput { src: &k, col: 0 },
        &o,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("attention") && e.contains("[2, 3, >= 6]"), "{e}");
    let o = AttnOptions {
        kv_heads: 3,
        ..AttnOptions::new(2, 2)
    };
    assert!(attention(
        AttnInput { src: &q, col: 0 },
        AttnInput { src: &k, col: 0 },
        AttnInput { src: &k, col: 0 },
        &o
    )
    .is_err());
}

#[test]
fn rope_gradcheck_and_relative_property() {
    let rope = Rope::new(4, 16, 10000.0).unwrap();
    gradcheck(
        |t| rope.apply(&t[0], 3),
        &[randn64(&[2, 3, 8], 40).unwrap()],
        1e-6,
        1e-6,
    )
    .unwrap();
    // Rotations preserve dot products' dependence on relative position only.
    let q = randn64(&[1, 1, 4], 41).unwrap();
    let k = randn64(&[1, 1, 4], 42).unwrap();
    let dot = |a: usize, b: usize| {
        rope.apply(&q, a)
            .unwrap()
            .mul(&rope.apply(&k, b).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .item()
            .unwrap()
    };
    assert!((dot(5, 2) - dot(9, 6)).abs() < 1e-12);
    assert!((dot(5, 2) - dot(5, 3)).abs() > 1e-6);
}

#[test]
fn kv_cache_matches_a_full_causal_pass() {
    fukai::manual_seed(3);
    for (rope, kv_heads) in [(false, 4), (true, 2)] {
        let mut mha = MultiHeadAttention::new(16, 4, kv_heads, true).unwrap();
        if rope {
            mha = mha.with_rope(32, 10000.0).unwrap();
        }
        let x = Tensor::randn(&[2, 6, 16], DType::F32).unwrap();
        let _g = fukai::no_grad();
        let full = mha.attend(&x, None, &Mask::causal(), None).unwrap();
        let mut cache = KvCache::new();
        let mut parts = vec![mha
            .attend(
                &x.narrow(1, 0, 3).unwrap(),
                None,
                &Mask::causal(),
                Some(&mut cache),
            )
            .unwrap()];
        for t in 3..6 {
            parts.push(
                mha.attend(
                    &x.narrow(1, t, 1).unwrap(),
                    None,
                    &Mask::causal(),
                    Some(&mut cache),
                )
                .unwrap(),
            );
        }
        assert_eq!(cache.len(), 6);
        let inc = Tensor::cat(&parts, 1).unwrap();
        assert!(
            max_diff(&full, &inc) < 1e-5,
            "rope {rope}: {}",
            max_diff(&full, &inc)
        );
    }
}

#[test]
fn multi_head_attention_module_gradcheck() {
    fukai::manual_seed(5);
    let mha = MultiHeadAttention::new(6, 2, 1, true).unwrap();
    let params: Vec<Tensor> = mha
        .parameters()
        .iter()
        .map(|p| p.to_dtype(DType::F64).unwrap())
        .collect();
    let x = randn64(&[2, 3, 6], 50).unwrap();
    let mem = randn64(&[2, 4, 6], 51).unwrap();
    let mut inputs = vec![x, mem];
    inputs.extend(params);
    gradcheck(
        |t| {
            let mut m = MultiHeadAttention::new(6, 2, 1, true)?;
            m.in_proj_weight = t[2].clone();
            m.in_proj_bias = Some(t[3].clone());
            m.out_proj.weight = t[4].clone();
            m.out_proj.bias = Some(t[5].clone());
            let cross = m.attend(&t[0], Some(&t[1]), &Mask::default(), None)?;
            let own = m.attend(&t[0], None, &Mask::causal(), None)?;
            cross.add(&own)
        },
        &inputs,
        1e-6,
        1e-6,
    )
    .unwrap();
}

#[test]
fn fused_linear_equals_composite() {
    let inputs = [
        randn64(&[2, 3, 5], 60).unwrap(),
        randn64(&[4, 5], 61).unwrap(),
        randn64(&[4], 62).unwrap(),
    ];
    assert_same(
        &|t| t[0].linear(&t[1], Some(&t[2])),
        &|t| t[0].matmul(&t[1].t()?)?.add(&t[2]),
        &inputs,
        1e-12,
    );
    assert_same(
        &|t| t[0].linear(&t[1], None),
        &|t| t[0].matmul(&t[1].t()?),
        &inputs[..2],
        1e-12,
    );
    gradcheck(|t| t[0].linear(&t[1], Some(&t[2])), &inputs, 1e-6, 1e-6).unwrap();
    // A strided (narrowed) weight, as the cross-attention projections use.
    let w = randn64(&[8, 5], 63).unwrap();
    assert_same(
        &|t| t[0].linear(&t[1].narrow(0, 2, 4)?, None),
        &|t| t[0].matmul(&t[1].narrow(0, 2, 4)?.t()?),
        &[inputs[0].clone(), w],
        1e-12,
    );
    assert!(inputs[0]
        .linear(&randn64(&[4, 6], 1).unwrap(), None)
        .is_err());
}

#[test]
fn a_decode_step_scores_the_bits_of_a_full_pass() {
    // One query row (a decode step: its keys are read in place, not transposed) against the
    // same keys and values as the last row of a full causal pass, f32, grouped heads, head
    // widths with and without a ragged tail and key counts with and without one: the same bits.
    for (s, hd) in [(77, 64), (37, 64), (16, 20), (5, 8)] {
        let (h, hkv) = (6, 2);
        fukai::manual_seed(40 + s as u64);
        let q = Tensor::randn(&[1, s, h * hd], DType::F32).unwrap();
        let k = Tensor::randn(&[1, s, hkv * hd], DType::F32).unwrap();
        let v = Tensor::randn(&[1, s, hkv * hd], DType::F32).unwrap();
        let mut o = AttnOptions::new(h, hd);
        o.kv_heads = hkv;
        o.causal = true;
        let run = |q: &Tensor| {
            attention(
                AttnInput { src: q, col: 0 },
                AttnInput { src: &k, col: 0 },
                AttnInput { src: &v, col: 0 },
                &o,
            )
            .unwrap()
        };
        let full = run(&q).narrow(1, s - 1, 1).unwrap();
        let step = run(&q.narrow(1, s - 1, 1).unwrap().contiguous().unwrap());
        assert_eq!(bits(&full), bits(&step), "s {s}, head width {hd}");
    }
}

#[test]
fn f16_keys_and_values_give_the_bits_of_their_f32_values() {
    // Keys and values from an f16 cache beside f32 queries: the products are computed in f32 on
    // the widened values, so a full pass and a decode step give the bits of the same attention
    // over f32 copies of those values. Key counts cover the kernels' 32- and 8-key blocks and
    // ragged tails; head widths their 64-, 8- and single-column pieces.
    for (s, hd) in [(77, 64), (37, 72), (16, 20), (5, 8)] {
        let (h, hkv) = (6, 2);
        fukai::manual_seed(60 + s as u64);
        let q = Tensor::randn(&[2, s, h * hd], DType::F32).unwrap();
        let k16 = Tensor::randn(&[2, s, hkv * hd], DType::F32)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        let v16 = Tensor::randn(&[2, s, hkv * hd], DType::F32)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        let (k32, v32) = (
            k16.to_dtype(DType::F32).unwrap(),
            v16.to_dtype(DType::F32).unwrap(),
        );
        let mut o = AttnOptions::new(h, hd);
        o.kv_heads = hkv;
        o.causal = true;
        let run = |q: &Tensor, k: &Tensor, v: &Tensor| {
            attention(
                AttnInput { src: q, col: 0 },
                AttnInput { src: k, col: 0 },
                AttnInput { src: v, col: 0 },
                &o,
            )
            .unwrap()
        };
        let step = q.narrow(1, s - 1, 1).unwrap().contiguous().unwrap();
        for (what, q) in [("full pass", &q), ("decode step", &step)] {
            let (a, b) = (run(q, &k32, &v32), run(q, &k16, &v16));
            assert_eq!(b.dtype(), DType::F32);
            assert_eq!(bits(&a), bits(&b), "{what}: s {s}, head width {hd}");
        }
    }
    // Inference only: a query that wants a gradient is refused, naming why.
    let q = Tensor::randn(&[1, 2, 8], DType::F32).unwrap();
    q.set_requires_grad(true).unwrap();
    let kv = Tensor::randn(&[1, 2, 8], DType::F32)
        .unwrap()
        .to_dtype(DType::F16)
        .unwrap();
    let err = attention(
        AttnInput { src: &q, col: 0 },
        AttnInput { src: &kv, col: 0 },
        AttnInput { src: &kv, col: 0 },
        &AttnOptions::new(2, 4),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("f16 keys and values are for inference"),
        "{err}"
    );
}

#[test]
fn an_f16_cache_decodes_as_a_full_pass_through_it() {
    fukai::manual_seed(4);
    let mha = MultiHeadAttention::new(16, 4, 2, true)
        .unwrap()
        .with_rope(32, 10000.0)
        .unwrap();
    let x = Tensor::randn(&[2, 6, 16], DType::F32).unwrap();
    let _g = fukai::no_grad();
    let mut whole = KvCache::with_dtype(DType::F16);
    let full = mha
        .attend(&x, None, &Mask::causal(), Some(&mut whole))
        .unwrap();
    let mut cache = KvCache::with_dtype(DType::F16);
    let parts: Vec<Tensor> = [(0, 3), (3, 1), (4, 1), (5, 1)]
        .iter()
        .map(|&(t, n)| {
            mha.attend(
                &x.narrow(1, t, n).unwrap(),
                None,
                &Mask::causal(),
                Some(&mut cache),
            )
            .unwrap()
        })
        .collect();
    let inc = Tensor::cat(&parts, 1).unwrap();
    // The projections of 6, 3 and 1 rows may round differently (as with an f32 cache); the
    // attention over the cache gives the same bits either way (the test above).
    assert!(max_diff(&full, &inc) < 1e-5, "{}", max_diff(&full, &inc));
    // Near the f32 cache's answer: f16 keeps 11 significant bits.
    let f32_full = mha.attend(&x, None, &Mask::causal(), None).unwrap();
    assert!(
        max_diff(&full, &f32_full) < 1e-2,
        "{}",
        max_diff(&full, &f32_full)
    );
    cache.clear();
    assert!(cache.is_empty());
}
