//! The importer's load-time rewrites (`onnx/optimize.rs`) against the graphs as written: the
//! patterns `torch.onnx.export` emits for `nn.Linear` on 3-D input (MatMul with a transposed
//! weight, then Add), exact GELU through Erf, LayerNormalization and the attention block, run
//! fused and unfused, must agree in value and in the gradients that reach the initializers.

use fukai::onnx::export::{attr_float, attr_int, attr_ints, attr_tensor, Graph, Input, Value};
use fukai::onnx::{export, Model};
use fukai::testing::max_slice_diff;
use fukai::{manual_seed, DType, Tensor};

/// x [2, 5, 8] → Transpose(W [6, 8]) · MatMul · Add(b) → GELU (erf form, operands in the
/// order the exporter writes them) → LayerNormalization(axis -1) → output [2, 5, 6].
fn graph() -> (Vec<u8>, Tensor) {
    manual_seed(7);
    let mut g = Graph::new();
    let w = g
        .weight("w", &Tensor::randn(&[6, 8], DType::F32).unwrap())
        .unwrap();
    let b = g
        .weight("b", &Tensor::randn(&[6], DType::F32).unwrap())
        .unwrap();
    let wt = g.op("Transpose", &[&w], vec![attr_ints("perm", &[1, 0])], "wt");
    let mm = g.op("MatMul", &["x", &wt], vec![], "mm");
    // The exporter puts the bias first.
    let lin = g.op("Add", &[&b, &mm], vec![], "lin");
    let sqrt2 = g
        .scalar("sqrt2", std::f64::consts::SQRT_2, DType::F32)
        .unwrap();
    let one = g.scalar("one", 1.0, DType::F32).unwrap();
    let half = g.scalar("half", 0.5, DType::F32).unwrap();
    let d = g.op("Div", &[&lin, &sqrt2], vec![], "d");
    let e = g.op("Erf", &[&d], vec![], "e");
    let a = g.op("Add", &[&e, &one], vec![], "a");
    let m = g.op("Mul", &[&lin, &a], vec![], "m");
    let gelu = g.op("Mul", &[&m, &half], vec![], "gelu");
    let s = g
        .weight("s", &Tensor::randn(&[6], DType::F32).unwrap())
        .unwrap();
    let c = g
        .weight("c", &Tensor::randn(&[6], DType::F32).unwrap())
        .unwrap();
    let attrs = vec![attr_int("axis", -1), attr_float("epsilon", 1e-5)];
    let y = g.op("LayerNormalization", &[&gelu, &s, &c], attrs, "y");
    let out = Value {
        name: y,
        shape: vec![None, Some(5), Some(6)],
        dtype: DType::F32,
    };
    let proto = g.finish(&Input::f32("x", &[None, Some(5), Some(8)]), &out, &[]);
    let x = Tensor::randn(&[2, 5, 8], DType::F32).unwrap();
    (export::to_bytes(&proto), x)
}

/// The output and the gradients of sum(output · r) for every parameter (none for the
/// constants a path does not differentiate through), r random with a fixed seed.
fn run(model: &Model, x: &Tensor) -> (Vec<f32>, Vec<Option<Vec<f32>>>) {
    let params = model.parameters();
    for (_, p) in &params {
        p.set_requires_grad(true).unwrap();
    }
    let y = model.run(&[("x", x.clone())]).unwrap().remove(0).1;
    manual_seed(11);
    let r = Tensor::randn(y.shape(), DType::F32).unwrap();
    y.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
    let grads = params
        .iter()
        .map(|(_, p)| p.grad().map(|g| g.to_vec::<f32>().unwrap()))
        .collect();
    (y.to_vec::<f32>().unwrap(), grads)
}

#[test]
fn fused_linear_gelu_layer_norm_equal_the_graph_as_written() {
    let (bytes, x) = graph();
    let fused = Model::from_bytes(&bytes).unwrap();
    assert_eq!(fused.fused_ops(), ["linear", "gelu", "layer_norm"]);
    let mut plain = Model::from_bytes(&bytes).unwrap();
    plain.set_fusion(false);
    let (yf, gf) = run(&fused, &x);
    let (yp, gp) = run(&plain, &x);
    let d = max_slice_diff(&yf, &yp);
    assert!(d < 1e-5, "outputs differ by {d}");
    // Erf runs on the host and cuts the gradient in the graph as written, so only the
    // parameters after it (LayerNormalization's) have comparable gradients there; the fused
    // path must give them too, and give the linear layer's as well.
    let names: Vec<String> = fused.parameters().into_iter().map(|(n, _)| n).collect();
    let grad = |g: &[Option<Vec<f32>>], name: &str| {
        let i = names.iter().position(|n| n == name).unwrap();
        g[i].clone()
            .unwrap_or_else(|| panic!("no gradient for {name}"))
    };
    for name in ["s", "c"] {
        let d = max_slice_diff(&grad(&gf, name), &grad(&gp, name));
        assert!(d < 1e-4, "gradient of {name} differs by {d}");
    }
    for name in ["w", "b"] {
        let g = grad(&gf, name);
        assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|&v| v != 0.0));
    }
}

/// x [2, 5, 8] → Transpose(W [8, 8]) · MatMul · Add(b) → with `residual`, Add(·, x) (the
/// residual connection) → LayerNormalization(axis -1) → output [2, 5, 8].
fn residual_graph(residual: bool) -> (Vec<u8>, Tensor) {
    manual_seed(17);
    let mut g = Graph::new();
    let mut weight = |name: &str, shape: &[usize]| {
        g.weight(name, &Tensor::randn(shape, DType::F32).unwrap())
            .unwrap()
    };
    let (w, b, s, c) = (
        weight("w", &[8, 8]),
        weight("b", &[8]),
        weight("s", &[8]),
        weight("c", &[8]),
    );
    let wt = g.op("Transpose", &[&w], vec![attr_ints("perm", &[1, 0])], "wt");
    let mm = g.op("MatMul", &["x", &wt], vec![], "mm");
    let lin = g.op("Add", &[&b, &mm], vec![], "lin");
    let sum = if residual {
        g.op("Add", &[&lin, "x"], vec![], "sum")
    } else {
        lin
    };
    let attrs = vec![attr_int("axis", -1), attr_float("epsilon", 1e-5)];
    let y = g.op("LayerNormalization", &[&sum, &s, &c], attrs, "y");
    let out = Value {
        name: y,
        shape: vec![None, Some(5), Some(8)],
        dtype: DType::F32,
    };
    let proto = g.finish(&Input::f32("x", &[None, Some(5), Some(8)]), &out, &[]);
    let x = Tensor::randn(&[2, 5, 8], DType::F32).unwrap();
    (export::to_bytes(&proto), x)
}

/// A residual `Add` before `LayerNormalization` fuses with it (`add_layer_norm`; its bits
/// against the composite are `tests/transformer_fused.rs`'): the graph's values, and its
/// gradients when they are recorded (the fused op then runs the composite). The `Add` of a
/// linear layer stays the linear layer's, and a layer norm right after it fuses alone.
#[test]
fn residual_add_and_layer_norm_fuse_and_equal_the_graph_as_written() {
    let (bytes, x) = residual_graph(true);
    let fused = Model::from_bytes(&bytes).unwrap();
    assert_eq!(fused.fused_ops(), ["linear", "add_layer_norm"]);
    let mut plain = Model::from_bytes(&bytes).unwrap();
    plain.set_fusion(false);
    let infer = |m: &Model| {
        let y = m.run(&[("x", x.clone())]).unwrap().remove(0).1;
        y.to_vec::<f32>().unwrap()
    };
    let d = max_slice_diff(&infer(&fused), &infer(&plain));
    assert!(d < 1e-5, "inference outputs differ by {d}");
    let (yf, gf) = run(&fused, &x);
    let (yp, gp) = run(&plain, &x);
    let d = max_slice_diff(&yf, &yp);
    assert!(d < 1e-5, "outputs differ by {d}");
    let names: Vec<String> = fused.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 4);
    for (name, (f, p)) in names.iter().zip(gf.iter().zip(&gp)) {
        let (f, p) = (f.as_ref().unwrap(), p.as_ref().unwrap());
        let d = max_slice_diff(f, p);
        assert!(d < 1e-4, "gradient of {name} differs by {d}");
        assert!(f.iter().any(|&v| v != 0.0), "gradient of {name} is zero");
    }

    let (bytes, _) = residual_graph(false);
    let fused = Model::from_bytes(&bytes).unwrap();
    assert_eq!(fused.fused_ops(), ["linear", "layer_norm"]);
}

/// How the attention test graph spells its scale and mask.
#[derive(Clone, Copy)]
enum Mask {
    /// None; the scores multiplied by 1/√hd (fukai's own export).
    NoneMulScale,
    /// The padding mask as `torch.onnx.export` writes BERT's: `(1 - Cast(keep)) · f32::MIN`,
    /// shape `[B, 1, 1, T]`, from an int64 initializer (not a parameter); scores divided by √hd.
    Keys,
    /// As `Keys` but `[2, 1, 1, T]` on a batch of one: it widens the scores to a batch of 2,
    /// which ONNX broadcasting allows and the kernel does not take.
    WideKeys,
    /// A float initializer `[B, 1, 1, T]`: a parameter, so it requires grad in [`run`] and the
    /// fused kernel, which does not differentiate the mask, must decline it.
    Param,
}

/// Self-attention as `torch.onnx.export` writes it: q, k and v projections of x (MatMul with a
/// transposed weight, Add), each reshaped by its `specs` entry and transposed into heads (k
/// straight to `[B, H, hd, T]`), the scaled scores plus the mask, Softmax, times v, transposed
/// back and merged by Reshape `[0, 0, 8]`. Width 8 in 2 heads of 4.
fn attention_graph(x_shape: &[usize], specs: [&[i64]; 3], mask: Mask) -> (Vec<u8>, Tensor) {
    manual_seed(5);
    let mut g = Graph::new();
    let heads = |g: &mut Graph, name: &str, spec: &[i64], perm: &[i64]| {
        let w = g
            .weight(
                &format!("{name}.w"),
                &Tensor::randn(&[8, 8], DType::F32).unwrap(),
            )
            .unwrap();
        let b = g
            .weight(
                &format!("{name}.b"),
                &Tensor::randn(&[8], DType::F32).unwrap(),
            )
            .unwrap();
        let wt = g.op("Transpose", &[&w], vec![attr_ints("perm", &[1, 0])], "wt");
        let mm = g.op("MatMul", &["x", &wt], vec![], "mm");
        let lin = g.op("Add", &[&b, &mm], vec![], name);
        let spec = g.ints("spec", spec).unwrap();
        let r = g.op("Reshape", &[&lin, &spec], vec![], "r");
        g.op("Transpose", &[&r], vec![attr_ints("perm", perm)], "t")
    };
    let q = heads(&mut g, "q", specs[0], &[0, 2, 1, 3]);
    let k = heads(&mut g, "k", specs[1], &[0, 2, 3, 1]);
    let v = heads(&mut g, "v", specs[2], &[0, 2, 1, 3]);
    let qk = g.op("MatMul", &[&q, &k], vec![], "qk");
    let constant = |g: &mut Graph, v: f32| {
        let t = Tensor::from_vec(vec![v], &[]).unwrap();
        g.op(
            "Constant",
            &[],
            vec![attr_tensor("value", &t).unwrap()],
            "c",
        )
    };
    // [B, 1, 1, T] for the batch and length the heads end up with.
    let (b, t) = if x_shape.len() == 3 {
        (x_shape[0], x_shape[1])
    } else {
        (specs[0][0] as usize, specs[0][1] as usize)
    };
    let scores = match mask {
        Mask::NoneMulScale => {
            let c = constant(&mut g, 0.5);
            g.op("Mul", &[&c, &qk], vec![], "s")
        }
        Mask::Keys | Mask::WideKeys | Mask::Param => {
            let c = constant(&mut g, 2.0);
            let s = g.op("Div", &[&qk, &c], vec![], "s");
            let m = if let Mask::Keys | Mask::WideKeys = mask {
                let b = if let Mask::WideKeys = mask { 2 } else { b };
                // The last two keys of the last sequence are padding.
                let keep: Vec<i64> = (0..b * t).map(|i| i64::from(i < b * t - 2)).collect();
                let keep = g
                    .weight("keep", &Tensor::from_vec(keep, &[b, 1, 1, t]).unwrap())
                    .unwrap();
                let keep = g.op("Cast", &[&keep], vec![attr_int("to", 1)], "keepf");
                let one = constant(&mut g, 1.0);
                let pad = g.op("Sub", &[&one, &keep], vec![], "pad");
                let min = constant(&mut g, f32::MIN);
                g.op("Mul", &[&pad, &min], vec![], "mask")
            } else {
                let m = Tensor::randn(&[b, 1, 1, t], DType::F32).unwrap();
                g.weight("mask", &m).unwrap()
            };
            g.op("Add", &[&s, &m], vec![], "s")
        }
    };
    let p = g.op("Softmax", &[&scores], vec![attr_int("axis", -1)], "p");
    let o = g.op("MatMul", &[&p, &v], vec![], "o");
    let o = g.op(
        "Transpose",
        &[&o],
        vec![attr_ints("perm", &[0, 2, 1, 3])],
        "o",
    );
    let merge = g.ints("merge", &[0, 0, 8]).unwrap();
    let y = g.op("Reshape", &[&o, &merge], vec![], "y");
    let out = Value {
        name: y,
        shape: vec![None, None, Some(8)],
        dtype: DType::F32,
    };
    let dims: Vec<Option<usize>> = x_shape.iter().map(|&d| Some(d)).collect();
    let proto = g.finish(&Input::f32("x", &dims), &out, &[]);
    let x = Tensor::randn(x_shape, DType::F32).unwrap();
    (export::to_bytes(&proto), x)
}

/// The attention graph fused (the attention kernel where its checks pass, the chain as written
/// where they do not) against the graph as written: outputs, and every parameter's gradient.
fn attention_agrees(x_shape: &[usize], specs: [&[i64]; 3], mask: Mask) {
    let (bytes, x) = attention_graph(x_shape, specs, mask);
    let fused = Model::from_bytes(&bytes).unwrap();
    assert_eq!(
        fused.fused_ops(),
        ["linear", "linear", "linear", "attention"],
        "the block was not recognized"
    );
    let mut plain = Model::from_bytes(&bytes).unwrap();
    plain.set_fusion(false);
    let (yf, gf) = run(&fused, &x);
    let (yp, gp) = run(&plain, &x);
    let d = max_slice_diff(&yf, &yp);
    assert!(d < 1e-5, "outputs differ by {d}");
    assert_eq!(gf.len(), gp.len());
    for ((name, _), (f, p)) in fused.parameters().iter().zip(gf.iter().zip(&gp)) {
        let (f, p) = (f.as_ref(), p.as_ref());
        let (f, p) = (
            f.expect("fused: no gradient"),
            p.expect("plain: no gradient"),
        );
        let d = max_slice_diff(f, p);
        assert!(d < 1e-4, "gradient of {name} differs by {d}");
        assert!(p.iter().any(|&v| v != 0.0), "gradient of {name} is zero");
    }
}

#[test]
fn fused_attention_with_torch_padding_mask_equals_the_graph_as_written() {
    // Each spelling of the head split the exporters use: 0 (copy), -1 (infer) and literals.
    attention_agrees(
        &[2, 5, 8],
        [&[0, 0, 2, 4], &[0, -1, 2, 4], &[2, 5, -1, 4]],
        Mask::Keys,
    );
}

#[test]
fn fused_attention_scaled_by_mul_without_mask_equals_the_graph_as_written() {
    attention_agrees(&[2, 5, 8], [&[0, 0, 2, 4]; 3], Mask::NoneMulScale);
}

#[test]
fn attention_the_kernel_declines_runs_as_written() {
    // A mask that requires grad: the kernel would not differentiate it.
    attention_agrees(&[2, 5, 8], [&[0, 0, 2, 4]; 3], Mask::Param);
    // 2-D projections reshaped into a batch of one: not [B, T, W] split into heads.
    attention_agrees(&[6, 8], [&[1, 6, 2, 4]; 3], Mask::Keys);
    // A mask that broadcasts the batch.
    attention_agrees(&[1, 5, 8], [&[0, 0, 2, 4]; 3], Mask::WideKeys);
}

/// `Model::run` may run the graph on a pool worker (see `parallel::on_pool`); it must still
/// record a graph or not, and compute in f32 or bf16, as the calling thread says.
#[test]
fn run_keeps_the_callers_grad_mode_and_precision() {
    let (bytes, x) = graph();
    let model = Model::from_bytes(&bytes).unwrap();
    for (_, p) in model.parameters() {
        p.set_requires_grad(true).unwrap();
    }
    let y = || model.run(&[("x", x.clone())]).unwrap().remove(0).1;
    assert!(
        y().requires_grad(),
        "parameters that want gradients: recorded"
    );
    {
        let _g = fukai::no_grad();
        assert!(!y().requires_grad(), "under no_grad: nothing recorded");
    }
    let f32_out = y().to_vec::<f32>().unwrap();
    let bf16_out = {
        let _a = fukai::autocast(fukai::Precision::Bf16);
        y().to_vec::<f32>().unwrap()
    };
    let d = max_slice_diff(&f32_out, &bf16_out);
    assert!(
        d > 1e-4 && d < 0.2,
        "bf16 autocast must reach the products: differ by {d}"
    );
}
