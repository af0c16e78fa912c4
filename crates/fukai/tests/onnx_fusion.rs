//! The importer's load-time rewrites (`onnx/optimize.rs`) against the graphs as written: the
//! patterns `torch.onnx.export` emits for `nn.Linear` on 3-D input (MatMul with a transposed
//! weight, then Add), exact GELU through Erf, and LayerNormalization, run fused and unfused,
//! must agree in value and in the gradients that reach the initializers.

use fukai::onnx::export::{attr_float, attr_int, attr_ints, Graph, Input, Value};
use fukai::onnx::{export, Model};
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
/// constants a path does not differentiate through).
fn run(model: &Model, x: &Tensor, r: &Tensor) -> (Vec<f32>, Vec<Option<Vec<f32>>>) {
    let params = model.parameters();
    for (_, p) in &params {
        p.set_requires_grad(true).unwrap();
    }
    let y = model.run(&[("x", x.clone())]).unwrap().remove(0).1;
    y.mul(r).unwrap().sum_all().unwrap().backward().unwrap();
    let grads = params
        .iter()
        .map(|(_, p)| p.grad().map(|g| g.to_vec::<f32>().unwrap()))
        .collect();
    (y.to_vec::<f32>().unwrap(), grads)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn fused_linear_gelu_layer_norm_equal_the_graph_as_written() {
    let (bytes, x) = graph();
    let r = Tensor::randn(&[2, 5, 6], DType::F32).unwrap();
    let fused = Model::from_bytes(&bytes).unwrap();
    let mut plain = Model::from_bytes(&bytes).unwrap();
    plain.set_fusion(false);
    let (yf, gf) = run(&fused, &x, &r);
    let (yp, gp) = run(&plain, &x, &r);
    let d = max_diff(&yf, &yp);
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
        let d = max_diff(&grad(&gf, name), &grad(&gp, name));
        assert!(d < 1e-4, "gradient of {name} differs by {d}");
    }
    for name in ["w", "b"] {
        let g = grad(&gf, name);
        assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|&v| v != 0.0));
    }
}
