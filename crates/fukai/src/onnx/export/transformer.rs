//! Transformer pieces in standard opset-17 nodes: attention as `MatMul` / `Softmax` with the
//! heads split by `Reshape` / `Transpose`, a causal mask built from the sequence length at run
//! time (batch and sequence stay free), and blocks whose norms and projections are the layers'
//! own exports.

use super::layers::{activation, add, project, transpose};
use super::{attr_int, attr_tensor, unsupported, Graph, Value};
use crate::error::Result;
use crate::nn::{
    join, Activation, FeedForward, Module, MultiHeadAttention, TransformerEncoderLayer,
};
use crate::tensor::Tensor;

/// The additive causal mask for `x`'s sequence (dim 1): `[T, T]`, 0 on and below the
/// diagonal, -inf above. `T` is known only at run time, hence `ConstantOfShape` then `Trilu`
/// rather than a constant; one mask serves every block.
pub fn causal_mask(g: &mut Graph, x: &Value) -> Result<String> {
    let t = g.dim(x, 1);
    let tt = g.op(
        "Concat",
        &[&t, &t],
        vec![attr_int("axis", 0)],
        "causal_shape",
    );
    let fill = Tensor::from_vec(vec![f32::NEG_INFINITY], &[1])?.to_dtype(x.dtype)?;
    let full = g.op(
        "ConstantOfShape",
        &[&tt],
        vec![attr_tensor("value", &fill)?],
        "causal_fill",
    );
    let k = g.weight("causal_k", &Tensor::from_vec(vec![1i64], &[])?)?;
    Ok(g.op(
        "Trilu",
        &[&full, &k],
        vec![attr_int("upper", 1)],
        "causal_mask",
    ))
}

/// Self-attention of `x: [B, T, d]`, with the additive `mask` (`[T, T]`) if given.
pub fn attention(
    g: &mut Graph,
    prefix: &str,
    a: &MultiHeadAttention,
    x: &Value,
    mask: Option<&str>,
) -> Result<Value> {
    if a.rope.is_some() {
        return Err(unsupported("MultiHeadAttention with rotary positions"));
    }
    if a.kv_heads() != a.heads() {
        return Err(unsupported("grouped-query MultiHeadAttention"));
    }
    let (d, heads) = (a.in_proj_weight.shape()[1], a.heads());
    let hd = d / heads;
    let wn = g.weight(&join(prefix, "in_proj_weight"), &a.in_proj_weight)?;
    let bn = a
        .in_proj_bias
        .as_ref()
        .map(|b| g.weight(&join(prefix, "in_proj_bias"), b))
        .transpose()?;
    let qkv = project(g, x, &wn, bn.as_deref(), 3 * d, &join(prefix, "qkv"));
    let sizes = g.ints("split", &[d as i64; 3])?;
    let hints = ["q", "k", "v"].map(|n| join(prefix, n));
    let parts = g.op_n(
        "Split",
        &[&qkv.name, &sizes],
        vec![attr_int("axis", -1)],
        &hints.each_ref().map(|s| s.as_str()),
    );
    let split_spec = g.ints("heads_shape", &[0, 0, heads as i64, hd as i64])?;
    let (b, t) = (x.shape[0], x.shape[1]);
    // q and v as [B, heads, T, hd], k as [B, heads, hd, T]: ready for the two products.
    let mut split = |i: usize, perm: &[usize]| {
        let name = g.op("Reshape", &[&parts[i], &split_spec], vec![], &hints[i]);
        let v = Value {
            name,
            shape: vec![b, t, Some(heads), Some(hd)],
            dtype: x.dtype,
        };
        transpose(g, &v, perm, &hints[i]).name
    };
    let (q, k, v) = (
        split(0, &[0, 2, 1, 3]),
        split(1, &[0, 2, 3, 1]),
        split(2, &[0, 2, 1, 3]),
    );
    let hint = join(prefix, "scores");
    let s = g.op("MatMul", &[&q, &k], vec![], &hint);
    let scale = g.scalar("scale", 1.0 / (hd as f64).sqrt(), x.dtype)?;
    let mut s = g.op("Mul", &[&s, &scale], vec![], &hint);
    if let Some(m) = mask {
        s = g.op("Add", &[&s, m], vec![], &hint);
    }
    let p = g.op(
        "Softmax",
        &[&s],
        vec![attr_int("axis", -1)],
        &join(prefix, "probs"),
    );
    let hint = join(prefix, "context");
    let o = Value {
        name: g.op("MatMul", &[&p, &v], vec![], &hint),
        shape: vec![b, Some(heads), t, Some(hd)],
        dtype: x.dtype,
    };
    let o = transpose(g, &o, &[0, 2, 1, 3], &hint);
    let merge = g.ints("shape", &[0, 0, d as i64])?;
    let o = x.renamed(g.op("Reshape", &[&o.name, &merge], vec![], &hint));
    a.out_proj.to_onnx(g, &join(prefix, "out_proj"), &o)
}

/// A block's feed-forward half.
pub fn feed_forward(g: &mut Graph, prefix: &str, f: &FeedForward, x: &Value) -> Result<Value> {
    match f {
        FeedForward::Mlp {
            linear1,
            linear2,
            gelu,
        } => {
            let h = linear1.to_onnx(g, &join(prefix, "linear1"), x)?;
            let act = if *gelu {
                Activation::Gelu
            } else {
                Activation::Relu
            };
            let h = activation(g, &join(prefix, "act"), &h, act)?;
            linear2.to_onnx(g, &join(prefix, "linear2"), &h)
        }
        FeedForward::SwiGlu { w1, w2, w3 } => {
            let gate = w1.to_onnx(g, &join(prefix, "w1"), x)?;
            let gate = activation(g, &join(prefix, "act"), &gate, Activation::Silu)?;
            let up = w3.to_onnx(g, &join(prefix, "w3"), x)?;
            let h =
                gate.renamed(g.op("Mul", &[&gate.name, &up.name], vec![], &join(prefix, "glu")));
            w2.to_onnx(g, &join(prefix, "w2"), &h)
        }
    }
}

/// A self-attention block (pre- or post-norm), with the additive `mask` if given.
pub fn encoder_layer(
    g: &mut Graph,
    prefix: &str,
    blk: &TransformerEncoderLayer,
    x: &Value,
    mask: Option<&str>,
) -> Result<Value> {
    let p = |n: &str| join(prefix, n);
    if blk.norm_first {
        let h = blk.norm1.to_onnx(g, &p("norm1"), x)?;
        let h = attention(g, &p("self_attn"), &blk.self_attn, &h, mask)?;
        let x = add(g, x, &h.name, &p("res1"));
        let h = blk.norm2.to_onnx(g, &p("norm2"), &x)?;
        let h = feed_forward(g, prefix, &blk.ffn, &h)?;
        Ok(add(g, &x, &h.name, &p("res2")))
    } else {
        let h = attention(g, &p("self_attn"), &blk.self_attn, x, mask)?;
        let x = add(g, x, &h.name, &p("res1"));
        let x = blk.norm1.to_onnx(g, &p("norm1"), &x)?;
        let h = feed_forward(g, prefix, &blk.ffn, &x)?;
        let x = add(g, &x, &h.name, &p("res2"));
        blk.norm2.to_onnx(g, &p("norm2"), &x)
    }
}
