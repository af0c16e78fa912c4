//! ONNX conformance: runs ONNX's backend test data (node tests, pytorch-converted,
//! pytorch-operator, simple) through `fukai::onnx` and compares with the expected outputs at
//! ONNX's tolerances (rtol 1e-3, atol 1e-7, as onnx's backend test runner).
//!
//! The data comes from Debian's `libonnx-testdata` (ONNX 1.12) or `$FUKAI_ONNX_TESTDATA`.
//! Without it the test prints why and passes, unless `FUKAI_REQUIRE_ASSETS` is set (CI).
//! `FUKAI_WRITE_ONNX_MD=1` rewrites ONNX.md and the pass-count floors in
//! tests/onnx_passing.txt; otherwise the run must pass at least as many tests per suite as
//! that file says.

use fukai::onnx::{load_tensor, Model};
use fukai::Tensor;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const SUITES: [&str; 4] = ["node", "pytorch-converted", "pytorch-operator", "simple"];
const RTOL: f64 = 1e-3;
const ATOL: f64 = 1e-7;

enum Outcome {
    Passed,
    Failed(String),
    Unsupported(String),
}

fn data_dir() -> Option<PathBuf> {
    let p = std::env::var_os("FUKAI_ONNX_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/libonnx-testdata/data"));
    p.join("node").is_dir().then_some(p)
}

fn numbered(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let i = name
                .strip_prefix(prefix)?
                .strip_suffix(".pb")?
                .parse()
                .ok()?;
            Some((i, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

fn classify(e: fukai::Error) -> Outcome {
    let s = e.to_string();
    if s.contains("unsupported") {
        Outcome::Unsupported(s)
    } else {
        Outcome::Failed(s)
    }
}

fn close(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    let (g, w) = (
        got.to_vec_f64().map_err(|e| e.to_string())?,
        want.to_vec_f64().map_err(|e| e.to_string())?,
    );
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= ATOL + RTOL * b.abs();
        if !ok {
            return Err(format!("element {i}: {a}, expected {b}"));
        }
    }
    Ok(())
}

/// The declared element types (TensorProto.DataType codes) of the graph's inputs and outputs,
/// by name.
fn declared_types(dir: &Path) -> BTreeMap<String, i32> {
    use fukai::onnx::proto::{type_proto, ModelProto};
    use prost::Message;
    let Some(g) = std::fs::read(dir.join("model.onnx"))
        .ok()
        .and_then(|b| ModelProto::decode(b.as_slice()).ok())
        .and_then(|m| m.graph)
    else {
        return BTreeMap::new();
    };
    g.input
        .iter()
        .chain(&g.output)
        .filter_map(|v| match v.r#type.as_ref()?.value.as_ref()? {
            type_proto::Value::TensorType(t) => Some((v.name().to_string(), t.elem_type())),
            _ => None,
        })
        .collect()
}

/// ONNX 1.12's test data stores bfloat16 values as their bit patterns in UINT16 tensors (numpy
/// has no bfloat16), which load here as i64; a value the graph declares BFLOAT16 is decoded
/// from those bits.
fn bf16_from_bits(t: Tensor, declared: Option<i32>) -> Result<Tensor, String> {
    const BFLOAT16: i32 = 16;
    if declared != Some(BFLOAT16) || t.dtype() != fukai::DType::I64 {
        return Ok(t);
    }
    let bits = t.to_vec::<i64>().map_err(|e| e.to_string())?;
    let v: Vec<half::bf16> = bits
        .iter()
        .map(|&b| half::bf16::from_bits(b as u16))
        .collect();
    Tensor::from_vec(v, t.shape()).map_err(|e| e.to_string())
}

/// The bit patterns of a bfloat16 tensor, for comparing with expected outputs stored as bits:
/// ONNX's own runner compares those bit patterns at its tolerances.
fn bf16_bits(t: &Tensor) -> Result<Tensor, String> {
    let v: Vec<i64> = t
        .to_vec::<half::bf16>()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|x| x.to_bits() as i64)
        .collect();
    Tensor::from_vec(v, t.shape()).map_err(|e| e.to_string())
}

fn run_case(dir: &Path) -> Outcome {
    let model = match Model::load(dir.join("model.onnx")) {
        Ok(m) => m,
        Err(e) => return classify(e),
    };
    let declared = declared_types(dir);
    let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    sets.sort();
    if sets.is_empty() {
        return Outcome::Unsupported("unsupported: no test_data_set with .pb files".into());
    }
    for set in sets {
        let mut inputs = Vec::new();
        for (i, p) in numbered(&set, "input_").iter().enumerate() {
            let (name, t) = match load_tensor(p) {
                Ok(v) => v,
                Err(e) => return classify(e),
            };
            let name = if model.inputs().contains(&name) {
                name
            } else if let Some(n) = model.inputs().get(i) {
                n.clone()
            } else {
                return Outcome::Failed(format!("input {i} ({name:?}) has no graph input"));
            };
            let t = match bf16_from_bits(t, declared.get(&name).copied()) {
                Ok(t) => t,
                Err(e) => return Outcome::Failed(e),
            };
            inputs.push((name, t));
        }
        let want = numbered(&set, "output_");
        let named: Vec<(&str, Tensor)> = inputs
            .iter()
            .map(|(n, t)| (n.as_str(), t.clone()))
            .collect();
        let got = {
            let _g = fukai::no_grad();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.run(&named))) {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return classify(e),
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    return Outcome::Failed(format!("panic: {msg}"));
                }
            }
        };
        if got.len() < want.len() {
            return Outcome::Failed(format!("{} outputs, expected {}", got.len(), want.len()));
        }
        for (i, p) in want.iter().enumerate() {
            let w = match load_tensor(p) {
                Ok((_, w)) => w,
                Err(e) => return classify(e),
            };
            let g = if got[i].1.dtype() == fukai::DType::BF16 && w.dtype() == fukai::DType::I64 {
                match bf16_bits(&got[i].1) {
                    Ok(g) => g,
                    Err(e) => return Outcome::Failed(e),
                }
            } else {
                got[i].1.clone()
            };
            if let Err(e) = close(&g, &w) {
                return Outcome::Failed(format!("output {i} ({}): {e}", got[i].0));
            }
        }
    }
    Outcome::Passed
}

/// The op a node test exercises: its single node's type, or one row for multi-node graphs.
fn op_key(dir: &Path) -> String {
    use fukai::onnx::proto::ModelProto;
    use prost::Message;
    let Ok(bytes) = std::fs::read(dir.join("model.onnx")) else {
        return "(unreadable)".into();
    };
    match ModelProto::decode(bytes.as_slice())
        .ok()
        .and_then(|m| m.graph)
    {
        Some(g) if g.node.len() == 1 => g.node[0].op_type().to_string(),
        Some(_) => "(multi-node graphs)".into(),
        None => "(no graph)".into(),
    }
}

#[derive(Default, Clone, Copy)]
struct Count {
    passed: usize,
    failed: usize,
    unsupported: usize,
}

fn short(s: &str) -> String {
    let s = s.replace('\n', " ").replace('|', "\\|");
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}

#[test]
#[ignore = "runs ONNX's backend test data (apt-get install libonnx-testdata); release build"]
fn onnx_backend_conformance() {
    let Some(root) = data_dir() else {
        assert!(
            std::env::var_os("FUKAI_REQUIRE_ASSETS").is_none(),
            "FUKAI_REQUIRE_ASSETS is set but the ONNX test data is missing (apt-get install libonnx-testdata or set FUKAI_ONNX_TESTDATA)"
        );
        eprintln!("skipped: needs ONNX's backend test data (apt-get install libonnx-testdata, or FUKAI_ONNX_TESTDATA)");
        return;
    };
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut totals: BTreeMap<&str, Count> = BTreeMap::new();
    let mut by_op: BTreeMap<String, Count> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut unsupported: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // FUKAI_ONNX_ONLY=substring runs just the matching tests and reports each one (no table,
    // no floors): for working on one operator.
    let only = std::env::var("FUKAI_ONNX_ONLY").ok();
    for suite in SUITES {
        let mut cases: Vec<PathBuf> = std::fs::read_dir(root.join(suite))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("model.onnx").is_file())
            .collect();
        cases.sort();
        for case in cases {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(o) = &only {
                if !name.contains(o.as_str()) {
                    continue;
                }
                let r = match run_case(&case) {
                    Outcome::Passed => "passed".to_string(),
                    Outcome::Failed(r) => format!("FAILED: {}", short(&r)),
                    Outcome::Unsupported(r) => format!("unsupported: {}", short(&r)),
                };
                eprintln!("{suite}/{name}: {r}");
                continue;
            }
            let key = if suite == "node" {
                op_key(&case)
            } else {
                suite.to_string()
            };
            let c = by_op.entry(key).or_default();
            let t = totals.entry(suite).or_default();
            match run_case(&case) {
                Outcome::Passed => {
                    c.passed += 1;
                    t.passed += 1;
                }
                Outcome::Failed(r) => {
                    c.failed += 1;
                    t.failed += 1;
                    failures.push(format!("{suite}/{name}: {}", short(&r)));
                }
                Outcome::Unsupported(r) => {
                    c.unsupported += 1;
                    t.unsupported += 1;
                    // Group by the reason without the node's name.
                    let reason = r.split_once("): ").map(|(head, tail)| {
                        let op = head.rsplit_once('(').map(|x| x.1).unwrap_or(head);
                        format!("{tail} ({op})")
                    });
                    unsupported
                        .entry(short(&reason.unwrap_or(r)))
                        .or_default()
                        .push(name);
                }
            }
        }
    }
    std::panic::set_hook(quiet);
    if only.is_some() {
        return;
    }

    let mut md = String::new();
    md.push_str("# ONNX conformance\n\n");
    md.push_str(
        "ONNX 1.12 backend test data (Debian `libonnx-testdata`) run through `fukai::onnx` by\n\
         `crates/fukai/tests/onnx_conformance.rs`, outputs compared at rtol 1e-3, atol 1e-7.\n\
         Regenerate with `FUKAI_WRITE_ONNX_MD=1 cargo test --release -p fukai --test onnx_conformance -- --include-ignored`.\n\n",
    );
    md.push_str("## Totals\n\n| suite | passed | failed | unsupported | total |\n|---|---:|---:|---:|---:|\n");
    for (s, c) in &totals {
        let _ = writeln!(
            md,
            "| {s} | {} | {} | {} | {} |",
            c.passed,
            c.failed,
            c.unsupported,
            c.passed + c.failed + c.unsupported
        );
    }
    md.push_str("\n## By operator (node tests; other suites as one row each)\n\n| op | passed | failed | unsupported |\n|---|---:|---:|---:|\n");
    for (op, c) in &by_op {
        let _ = writeln!(
            md,
            "| {op} | {} | {} | {} |",
            c.passed, c.failed, c.unsupported
        );
    }
    md.push_str("\n## Failures\n\n");
    for f in &failures {
        let _ = writeln!(md, "- {f}");
    }
    md.push_str("\n## Unsupported, by reason\n\n");
    for (r, tests) in &unsupported {
        let _ = writeln!(md, "- {r} ({}: {})", tests.len(), short(&tests.join(", ")));
    }
    let floors_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_passing.txt");
    let md_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ONNX.md");
    let summary: String = totals
        .iter()
        .map(|(s, c)| format!("{s} {}/{}\n", c.passed, c.passed + c.failed + c.unsupported))
        .collect();
    eprintln!("{summary}");
    if std::env::var_os("FUKAI_WRITE_ONNX_MD").is_some() {
        std::fs::write(&md_path, &md).expect("write ONNX.md");
        let floors: String = totals
            .iter()
            .map(|(s, c)| format!("{s} {}\n", c.passed))
            .collect();
        std::fs::write(&floors_path, floors).expect("write onnx_passing.txt");
        return;
    }
    if std::fs::read_to_string(&md_path).ok().as_deref() != Some(md.as_str()) {
        eprintln!("note: ONNX.md differs from this run; regenerate it with FUKAI_WRITE_ONNX_MD=1");
    }
    let floors = std::fs::read_to_string(&floors_path).expect("tests/onnx_passing.txt");
    for line in floors.lines().filter(|l| !l.trim().is_empty()) {
        let (suite, n) = line.split_once(' ').expect("`suite count` lines");
        let n: usize = n.trim().parse().expect("a count");
        let got = totals.get(suite).map_or(0, |c| c.passed);
        assert!(got >= n, "{suite}: {got} tests pass, fewer than the {n} in tests/onnx_passing.txt\nfailures:\n{}", failures.join("\n"));
    }
}
