//! Multi-head attention and whole Transformer encoder / decoder blocks against PyTorch
//! (`nn.MultiheadAttention`, `nn.TransformerEncoderLayer`, `nn.TransformerDecoderLayer`):
//! outputs and the gradients of every input and parameter, within 1e-5.

mod common;

use common::Fixtures;
use fukai::nn::{
    BlockConfig, FeedForward, FfnKind, LayerNorm, Linear, Mask, MultiHeadAttention,
    TransformerDecoderLayer, TransformerEncoderLayer,
};
use fukai::{Result, Tensor};
use std::collections::HashMap;

const MHA: &[&str] = &[
    "in_proj_weight",
    "in_proj_bias",
    "out_proj__weight",
    "out_proj__bias",
];

/// Parameter names of a block as the fixture stores them (dots written `__`).
fn block_names(decoder: bool) -> Vec<String> {
    let mut v = Vec::new();
    let attns: &[&str] = if decoder {
        &["self_attn", "multihead_attn"]
    } else {
        &["self_attn"]
    };
    for a in attns {
        v.extend(MHA.iter().map(|p| format!("{a}__{p}")));
    }
    for l in ["linear1", "linear2"] {
        v.extend(["weight", "bias"].map(|p| format!("{l}__{p}")));
    }
    for n in if decoder { 1..=3 } else { 1..=2 } {
        v.extend(["weight", "bias"].map(|p| format!("norm{n}__{p}")));
    }
    v
}

fn by_name<'a>(names: &'a [String], t: &'a [Tensor]) -> HashMap<&'a str, Tensor> {
    names
        .iter()
        .map(String::as_str)
        .zip(t.iter().cloned())
        .collect()
}

fn attn_from(
    p: &HashMap<&str, Tensor>,
    prefix: &str,
    heads: usize,
    kv: usize,
) -> Result<MultiHeadAttention> {
    let g = |n: &str| p[format!("{prefix}{n}").as_str()].clone();
    let d = g("out_proj__weight").shape()[0];
    let mut m = MultiHeadAttention::new(d, heads, kv, true)?;
    m.in_proj_weight = g("in_proj_weight");
    m.in_proj_bias = Some(g("in_proj_bias"));
    m.out_proj = Linear {
        weight: g("out_proj__weight"),
        bias: Some(g("out_proj__bias")),
    };
    Ok(m)
}

fn linear(p: &HashMap<&str, Tensor>, name: &str) -> Linear {
    Linear {
        weight: p[format!("{name}__weight").as_str()].clone(),
        bias: Some(p[format!("{name}__bias").as_str()].clone()),
    }
}

fn norm(p: &HashMap<&str, Tensor>, name: &str) -> Result<Box<dyn fukai::nn::Module>> {
    let mut n = LayerNorm::new(8)?;
    n.weight = p[format!("{name}__weight").as_str()].clone();
    n.bias = p[format!("{name}__bias").as_str()].clone();
    Ok(Box::new(n))
}

fn causal_float(t: usize) -> Result<Tensor> {
    let v: Vec<f32> = (0..t * t)
        .map(|k| {
            if k % t > k / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(v, &[t, t])
}

/// `nn.MultiheadAttention` with PyTorch's boolean `attn_mask` (u8 here, nonzero = may not
/// attend), 2-D `[L, S]` and 3-D `[N·heads, L, S]`, and a 3-D float mask
/// (`attn_mask.safetensors`, family `attn_mask`).
#[test]
fn attention_takes_pytorch_attn_masks() {
    let fx = Fixtures::open("attn_mask.safetensors");
    let mut names: Vec<String> = MHA.iter().map(|s| s.to_string()).collect();
    names.push("x".into());
    for (case, cross) in [
        ("mha_bool_2d_self", false),
        ("mha_bool_2d_cross", true),
        ("mha_bool_3d_cross", true),
        ("mha_float_3d_cross", true),
    ] {
        let mut ins = names.clone();
        if cross {
            ins.push("memory".into());
        }
        let ins_ref: Vec<&str> = ins.iter().map(String::as_str).collect();
        fx.check1(case, &ins_ref, |t, c| {
            let p = by_name(&ins, t);
            let m = attn_from(&p, "", 2, 2)?;
            let mask = c.aux("mask")?;
            if case.contains("bool") {
                assert_eq!(mask.dtype(), fukai::DType::U8);
            }
            let mask = Mask {
                attn_mask: Some(mask),
                ..Mask::default()
            };
            m.attend(&p["x"], cross.then(|| &p["memory"]), &mask, None)
        });
    }
    fx.finish();
}

#[test]
fn attention_and_blocks_match_pytorch() {
    let fx = Fixtures::open("transformer.safetensors");
    let mha_names: Vec<String> = MHA.iter().map(|s| s.to_string()).collect();
    let mut with_x = mha_names.clone();
    with_x.push("x".into());
    let ins = with_x.clone();
    let ins_ref: Vec<&str> = ins.iter().map(String::as_str).collect();
    fx.check1("mha_self_causal", &ins_ref, |t, _| {
        let p = by_name(&ins, t);
        // An additive float mask here; the causal flag is checked against it below.
        let m = attn_from(&p, "", 2, 2)?;
        let out = m.attend(
            &p["x"],
            None,
            &Mask {
                attn_mask: Some(causal_float(4)?),
                ..Mask::default()
            },
            None,
        )?;
        let flag = m.attend(&p["x"], None, &Mask::causal(), None)?;
        let diff = out.sub(&flag)?.abs()?.max_all()?.item()?;
        assert!(diff < 1e-6, "causal flag vs float mask: {diff}");
        Ok(out)
    });
    let mut cross: Vec<String> = with_x.clone();
    cross.push("memory".into());
    let cross_ref: Vec<&str> = cross.iter().map(String::as_str).collect();
    fx.check1("mha_cross_padding", &cross_ref, |t, c| {
        let p = by_name(&cross, t);
        let m = attn_from(&p, "", 2, 2)?;
        let mask = Mask {
            key_padding: Some(c.aux("pad")?),
            ..Mask::default()
        };
        m.attend(&p["x"], Some(&p["memory"]), &mask, None)
    });
    fx.check1("mha_gqa_causal", &ins_ref, |t, _| {
        let p = by_name(&ins, t);
        attn_from(&p, "", 4, 2)?.attend(&p["x"], None, &Mask::causal(), None)
    });

    for (tag, norm_first) in [("post", false), ("pre", true)] {
        let mut names = block_names(false);
        names.push("x".into());
        let r: Vec<&str> = names.iter().map(String::as_str).collect();
        fx.check1(&format!("encoder_{tag}"), &r, |t, c| {
            let p = by_name(&names, t);
            let mut cfg = BlockConfig::new(8, 2);
            cfg.ffn_hidden = 16;
            cfg.ffn = FfnKind::Gelu;
            cfg.norm_first = norm_first;
            let mut layer = TransformerEncoderLayer::new(&cfg)?;
            layer.self_attn = attn_from(&p, "self_attn__", 2, 2)?;
            layer.ffn = FeedForward::Mlp {
                linear1: linear(&p, "linear1"),
                linear2: linear(&p, "linear2"),
                gelu: true,
            };
            layer.norm1 = norm(&p, "norm1")?;
            layer.norm2 = norm(&p, "norm2")?;
            let mask = Mask {
                causal: true,
                key_padding: Some(c.aux("pad")?),
                attn_mask: None,
            };
            layer.forward_masked(&p["x"], &mask, None)
        });
        let mut names = block_names(true);
        names.push("x".into());
        names.push("memory".into());
        let r: Vec<&str> = names.iter().map(String::as_str).collect();
        fx.check1(&format!("decoder_{tag}"), &r, |t, c| {
            let p = by_name(&names, t);
            let mut cfg = BlockConfig::new(8, 2);
            cfg.ffn_hidden = 16;
            cfg.norm_first = norm_first;
            let mut layer = TransformerDecoderLayer::new(&cfg)?;
            layer.self_attn = attn_from(&p, "self_attn__", 2, 2)?;
            layer.multihead_attn = attn_from(&p, "multihead_attn__", 2, 2)?;
            layer.ffn = FeedForward::Mlp {
                linear1: linear(&p, "linear1"),
                linear2: linear(&p, "linear2"),
                gelu: false,
            };
            layer.norm1 = norm(&p, "norm1")?;
            layer.norm2 = norm(&p, "norm2")?;
            layer.norm3 = norm(&p, "norm3")?;
            let mem_mask = Mask {
                key_padding: Some(c.aux("pad")?),
                ..Mask::default()
            };
            layer.forward_with(&p["x"], &p["memory"], &Mask::causal(), &mem_mask)
        });
    }
    fx.finish();
}
