//! Differential test against PyTorch: replays the ~2,000 random cases of
//! `tests/fixtures/differential.safetensors` (written by `scripts/diff_fixtures.py`; this test
//! never runs Python) through fukai's public API and compares the outputs and the gradients of
//! `sum(out * w)` with PyTorch's, which were computed in f64 from the same input values.
//!
//! Tolerances, per element, on `|fukai - torch| / max(1, |torch|)` (absolute below 1, relative
//! above; NaN and ±inf must match exactly):
//! - f32 cases: 5e-6 (a few f32 ulps of accumulated rounding on these small shapes);
//! - f64 cases: 1e-10.
//!
//! Every failing case is listed (index, op, dtype, input shapes, views, worst error) before the
//! test fails, so one broken op shows its whole footprint rather than its first case.
//! Regenerate the fixture with `python scripts/diff_fixtures.py`.

mod common;

use fukai::io::load_safetensors;
use fukai::nn::loss::{
    binary_cross_entropy_with_logits, cross_entropy_composite, cross_entropy_with, l1_loss,
    mse_loss, CrossEntropyOpts,
};
use fukai::{Result, Tensor};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const TOL_F32: f64 = 5e-6;
const TOL_F64: f64 = 1e-10;

fn dims(v: &Value) -> Vec<isize> {
    v.as_array()
        .expect("dims")
        .iter()
        .map(|d| d.as_i64().expect("dim") as isize)
        .collect()
}

fn int(v: &Value, key: &str) -> isize {
    v[key].as_i64().unwrap_or_else(|| panic!("{key}: {v}")) as isize
}

fn float(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key}: {v}"))
}

/// The view the case takes of an input before the op (null: none).
fn view(t: &Tensor, spec: &Value) -> Result<Tensor> {
    match spec["kind"].as_str() {
        None => Ok(t.clone()),
        Some("transpose") => t.transpose(int(spec, "d0"), int(spec, "d1")),
        Some("permute") => t.permute(&dims(&spec["perm"])),
        Some("narrow") => t.narrow(
            int(spec, "dim"),
            int(spec, "start") as usize,
            int(spec, "len") as usize,
        ),
        Some(other) => panic!("unknown view {other}"),
    }
}

/// The case's op through fukai's public API.
fn run(op: &str, p: &Value, x: &[Tensor], aux: &[Tensor]) -> Result<Tensor> {
    let keep = || p["keepdim"].as_bool().expect("keepdim");
    let a = &x[0];
    Ok(match op {
        "neg" => a.neg()?,
        "abs" => a.abs()?,
        "relu" => a.relu()?,
        "tanh" => a.tanh()?,
        "sigmoid" => a.sigmoid()?,
        "gelu" => a.gelu()?,
        "gelu_tanh" => a.gelu_tanh()?,
        "silu" => a.silu()?,
        "square" => a.square()?,
        "exp" => a.exp()?,
        "sin" => a.sin()?,
        "cos" => a.cos()?,
        "log" => a.log()?,
        "sqrt" => a.sqrt()?,
        "rsqrt" => a.rsqrt()?,
        "recip" => a.recip()?,
        "leaky_relu" => a.leaky_relu(float(p, "slope"))?,
        "powf" => a.powf(float(p, "p"))?,
        "affine" => a.affine(float(p, "a"), float(p, "b"))?,
        "clamp" => a.clamp(float(p, "lo"), float(p, "hi"))?,
        "add" => a.add(&x[1])?,
        "sub" => a.sub(&x[1])?,
        "mul" => a.mul(&x[1])?,
        "div" => a.div(&x[1])?,
        "maximum" => a.maximum(&x[1])?,
        "minimum" => a.minimum(&x[1])?,
        "pow" => a.pow(&x[1])?,
        "sum" => a.sum(&dims(&p["dims"]), keep())?,
        "mean" => a.mean(&dims(&p["dims"]), keep())?,
        "var" => a.var(&dims(&p["dims"]), int(p, "correction") as usize, keep())?,
        "sum_all" => a.sum_all()?,
        "mean_all" => a.mean_all()?,
        "max_all" => a.max_all()?,
        "min_all" => a.min_all()?,
        "max" => a.max(int(p, "dim"), keep())?,
        "min" => a.min(int(p, "dim"), keep())?,
        "logsumexp" => a.logsumexp(int(p, "dim"), keep())?,
        "softmax" => a.softmax(int(p, "dim"))?,
        "log_softmax" => a.log_softmax(int(p, "dim"))?,
        "cross_entropy" | "cross_entropy_composite" => {
            let opts = CrossEntropyOpts {
                label_smoothing: float(p, "label_smoothing"),
                ignore_index: p["ignore_index"].as_i64(),
            };
            if op == "cross_entropy" {
                cross_entropy_with(a, &aux[0], opts)?
            } else {
                cross_entropy_composite(a, &aux[0], opts)?
            }
        }
        "bce_with_logits" => binary_cross_entropy_with_logits(a, &x[1])?,
        "mse" => mse_loss(a, &x[1])?,
        "l1" => l1_loss(a, &x[1])?,
        "layer_norm" => a.layer_norm(x.get(1), x.get(2), float(p, "eps"))?,
        "matmul" => a.matmul(&x[1])?,
        other => panic!("unknown op {other}: add it to run()"),
    })
}

struct Outcome {
    worst: f64,
    at: String,
}

fn replay(
    file: &fukai::io::SafetensorsFile,
    key: &str,
    case: &Value,
) -> std::result::Result<Outcome, String> {
    let s = |e: fukai::Error| e.to_string();
    let get = |field: &str| file.tensor(&format!("{key}.{field}")).map_err(s).cloned();
    let n_in = case["inputs"].as_u64().expect("inputs") as usize;
    let n_aux = case["aux"].as_u64().expect("aux") as usize;
    let leaves = (0..n_in)
        .map(|i| get(&format!("in{i}"))?.detach().with_grad().map_err(s))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let aux = (0..n_aux)
        .map(|i| get(&format!("aux{i}")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let viewed = leaves
        .iter()
        .zip(case["views"].as_array().expect("views"))
        .map(|(t, v)| view(t, v))
        .collect::<Result<Vec<_>>>()
        .map_err(s)?;
    let op = case["op"].as_str().expect("op");
    let out = run(op, &case["params"], &viewed, &aux).map_err(s)?;
    let mut worst = Outcome {
        worst: 0.0,
        at: String::new(),
    };
    let mut keep = |what: &str, r: (f64, String)| {
        if r.0 > worst.worst || (r.0.is_nan() && !worst.worst.is_nan()) {
            worst = Outcome {
                worst: r.0,
                at: format!("{what} {}", r.1),
            };
        }
    };
    keep(
        "out",
        common::compare(&out, &get("out")?).map_err(|e| format!("out: {e}"))?,
    );
    out.mul(&get("w")?)
        .and_then(|t| t.sum_all())
        .and_then(|l| l.backward())
        .map_err(|e| format!("backward: {e}"))?;
    for (i, leaf) in leaves.iter().enumerate() {
        let got = match leaf.grad() {
            Some(g) => g,
            None => leaf.zeros_like().map_err(s)?,
        };
        let what = format!("grad{i}");
        keep(
            &what,
            common::compare(&got, &get(&what)?).map_err(|e| format!("{what}: {e}"))?,
        );
    }
    Ok(worst)
}

#[test]
fn fukai_matches_pytorch_on_random_cases() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/differential.safetensors");
    let file = load_safetensors(&path)
        .unwrap_or_else(|e| panic!("{e} (regenerate with scripts/diff_fixtures.py)"));
    let cases: Vec<Value> =
        serde_json::from_str(file.metadata().get("cases").expect("cases metadata"))
            .expect("cases JSON");
    assert!(cases.len() >= 2000, "only {} cases", cases.len());
    let mut failures = Vec::new();
    // op -> (cases, worst error)
    let mut per_op: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        let key = format!("c{i}");
        let dtype = case["dtype"].as_str().expect("dtype");
        let tol = if dtype == "f32" { TOL_F32 } else { TOL_F64 };
        let op = case["op"].as_str().expect("op");
        let shapes: Vec<Vec<usize>> = (0..case["inputs"].as_u64().unwrap())
            .map(|k| {
                file.tensor(&format!("{key}.in{k}"))
                    .map(|t| t.shape().to_vec())
                    .unwrap_or_default()
            })
            .collect();
        let describe = || {
            format!(
                "{key} {op} {dtype} inputs {shapes:?} views {} params {}",
                case["views"], case["params"]
            )
        };
        let entry = per_op.entry(format!("{op} {dtype}")).or_insert((0, 0.0));
        entry.0 += 1;
        match replay(&file, &key, case) {
            Ok(o) => {
                entry.1 = entry.1.max(o.worst);
                if o.worst.is_nan() || o.worst > tol {
                    failures.push(format!(
                        "{}: max error {:.3e} > {tol:e} at {}",
                        describe(),
                        o.worst,
                        o.at
                    ));
                }
            }
            Err(msg) => failures.push(format!("{}: {msg}", describe())),
        }
    }
    println!("{} cases against PyTorch:", cases.len());
    for (op, (n, worst)) in &per_op {
        println!("  {op:<28} {n:>4} cases, worst error {worst:.2e}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from PyTorch:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}
