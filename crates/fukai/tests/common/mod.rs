//! Harness for the PyTorch cross-check tests: loads a fixture file written by
//! `scripts/torch_fixtures.py` and replays its cases in fukai, comparing outputs and the
//! gradients of `sum(out * w)` against PyTorch's (computed in f64, stored as f32, or as f64
//! for the files fukai replays in f64).
//!
//! Each test names every case of its file once; `finish` fails if a case was not replayed, so a
//! fixture added in Python cannot go unchecked.
#![allow(dead_code)]

use fukai::io::{load_safetensors, SafetensorsFile};
use fukai::{DType, Result, Tensor};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

/// Largest accepted `|fukai - torch| / max(1, |torch|)`.
pub const TOL: f64 = 1e-5;

/// [`TOL`] for cases replayed in f64 against f64 references.
pub const TOL_F64: f64 = 1e-10;

/// One fixture file being replayed.
pub struct Fixtures {
    name: String,
    file: SafetensorsFile,
    /// Case-name prefixes this test replays (all cases when empty).
    only: Vec<String>,
    /// Largest accepted error of [`Fixtures::check`].
    tol: f64,
    done: RefCell<BTreeSet<String>>,
    /// (case, worst relative error over outputs and gradients)
    worst: RefCell<Vec<(String, f64)>>,
    failures: RefCell<Vec<String>>,
}

/// A case being replayed: access to its auxiliary (non-differentiated) tensors.
pub struct Case<'a> {
    fx: &'a Fixtures,
    name: &'a str,
}

impl Case<'_> {
    /// The stored tensor `<case>.<field>` (indices, masks).
    pub fn aux(&self, field: &str) -> Result<Tensor> {
        self.fx.get(self.name, field)
    }
}

/// Worst relative error of `got` against `want` and where it is; an error for a mismatch in
/// shape or kind (float vs index).
pub fn compare(got: &Tensor, want: &Tensor) -> std::result::Result<(f64, String), String> {
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
    if !want.dtype().is_float() {
        if got.dtype().is_float() {
            return Err(format!("dtype {}, expected integers", got.dtype()));
        }
        return match g.iter().zip(&w).position(|(a, b)| a != b) {
            None => Ok((0.0, String::new())),
            Some(i) => Err(format!("element {i}: {} vs {}", g[i], w[i])),
        };
    }
    if got.dtype() != want.dtype() {
        return Err(format!("dtype {}, expected {}", got.dtype(), want.dtype()));
    }
    let mut worst = (0.0f64, String::new());
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let err = if a == b || (a.is_nan() && b.is_nan()) {
            0.0
        } else if a.is_finite() && b.is_finite() {
            (a - b).abs() / b.abs().max(1.0)
        } else {
            f64::INFINITY
        };
        if err > worst.0 || (err.is_nan() && !worst.0.is_nan()) {
            worst = (err, format!("element {i}: fukai {a:e}, torch {b:e}"));
        }
    }
    Ok(worst)
}

impl Fixtures {
    /// Loads `crates/fukai/tests/fixtures/<name>`.
    pub fn open(name: &str) -> Fixtures {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let file = load_safetensors(&path)
            .unwrap_or_else(|e| panic!("{e} (regenerate with scripts/torch_fixtures.py)"));
        Fixtures {
            name: name.to_string(),
            file,
            only: Vec::new(),
            tol: TOL,
            done: RefCell::default(),
            worst: RefCell::default(),
            failures: RefCell::default(),
        }
    }

    /// Like [`Fixtures::open`], for a test that replays only the cases whose names start with
    /// one of `prefixes` (a file shared by several tests).
    pub fn open_subset(name: &str, prefixes: &[&str]) -> Fixtures {
        let mut fx = Fixtures::open(name);
        fx.only = prefixes.iter().map(|p| p.to_string()).collect();
        fx
    }

    /// Sets the largest error [`Fixtures::check`] accepts ([`TOL`] unless set).
    pub fn with_tol(mut self, tol: f64) -> Fixtures {
        self.tol = tol;
        self
    }

    fn get(&self, case: &str, field: &str) -> Result<Tensor> {
        Ok(self.file.tensor(&format!("{case}.{field}"))?.clone())
    }

    fn has(&self, case: &str, field: &str) -> bool {
        self.file.get(&format!("{case}.{field}")).is_some()
    }

    /// Case names in the file (from the tensor names `<case>.<field>`).
    pub fn cases(&self) -> BTreeSet<String> {
        self.file
            .tensors()
            .iter()
            .filter_map(|(n, _)| n.split_once('.').map(|(c, _)| c.to_string()))
            .filter(|c| self.only.is_empty() || self.only.iter().any(|p| c.starts_with(p.as_str())))
            .collect()
    }

    /// The stored tensor `<case>.<field>` as a fresh leaf with its own memory, for cases
    /// replayed by hand (optimizer trajectories) rather than through [`Fixtures::check`].
    pub fn tensor(&self, case: &str, field: &str) -> Tensor {
        let t = self
            .get(case, field)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        let copy = match t.dtype() {
            DType::F32 => Tensor::from_vec(t.to_vec::<f32>().expect("f32"), t.shape()),
            DType::F64 => Tensor::from_vec(t.to_vec::<f64>().expect("f64"), t.shape()),
            DType::I64 => Tensor::from_vec(t.to_vec::<i64>().expect("i64"), t.shape()),
            other => panic!("{case}.{field}: unexpected dtype {other}"),
        };
        copy.expect("same shape")
    }

    /// Worst `|got - want| / max(1, |want|)` and where, as the harness measures it.
    pub fn error(got: &Tensor, want: &Tensor) -> std::result::Result<(f64, String), String> {
        compare(got, want)
    }

    /// Records the outcome of a case replayed by hand: its worst error against `tol`, or a
    /// failure message.
    pub fn record(
        &self,
        case: &str,
        outcome: std::result::Result<(f64, String), String>,
        tol: f64,
    ) {
        if !self.done.borrow_mut().insert(case.to_string()) {
            self.fail(case, "replayed twice".into());
            return;
        }
        match outcome {
            Ok(worst) => {
                if worst.0.is_nan() || worst.0 > tol {
                    self.fail(
                        case,
                        format!("error {:.3e} > {tol:e} at {}", worst.0, worst.1),
                    );
                }
                self.worst.borrow_mut().push((case.to_string(), worst.0));
            }
            Err(msg) => self.fail(case, msg),
        }
    }

    /// Replays a case with one output; see [`Fixtures::check`].
    pub fn check1(
        &self,
        case: &str,
        inputs: &[&str],
        f: impl FnOnce(&[Tensor], &Case) -> Result<Tensor>,
    ) {
        self.check(case, inputs, |t, c| f(t, c).map(|o| vec![o]))
    }

    /// Replays `case`: the stored tensors named in `inputs` become leaves requiring grad, in
    /// their stored dtype (f32 or f64), and are passed to `f` in that order; its outputs are
    /// compared with `<case>.out` (or `out0`, `out1`, ...) and the gradients of
    /// `sum(out_k * w_k)` with `<case>.grad_<input>`.
    pub fn check(
        &self,
        case: &str,
        inputs: &[&str],
        f: impl FnOnce(&[Tensor], &Case) -> Result<Vec<Tensor>>,
    ) {
        if !self.done.borrow_mut().insert(case.to_string()) {
            self.fail(case, "replayed twice".into());
            return;
        }
        match self.replay(case, inputs, f) {
            Ok(worst) => {
                if worst.0.is_nan() || worst.0 > self.tol {
                    self.fail(
                        case,
                        format!("error {:.3e} > {:e} at {}", worst.0, self.tol, worst.1),
                    );
                }
                self.worst.borrow_mut().push((case.to_string(), worst.0));
            }
            Err(msg) => self.fail(case, msg),
        }
    }

    fn fail(&self, case: &str, msg: String) {
        self.failures.borrow_mut().push(format!("{case}: {msg}"));
    }

    fn replay(
        &self,
        case: &str,
        inputs: &[&str],
        f: impl FnOnce(&[Tensor], &Case) -> Result<Vec<Tensor>>,
    ) -> std::result::Result<(f64, String), String> {
        let s = |e: fukai::Error| e.to_string();
        let mut leaves = Vec::with_capacity(inputs.len());
        for name in inputs {
            let t = self.get(case, name).map_err(s)?;
            if !t.dtype().is_compute_float() {
                return Err(format!(
                    "input {name} is {}, expected f32 or f64",
                    t.dtype()
                ));
            }
            leaves.push(t.with_grad().map_err(s)?);
        }
        let outs = f(
            &leaves,
            &Case {
                fx: self,
                name: case,
            },
        )
        .map_err(s)?;
        let names: Vec<String> = if self.has(case, "out") {
            vec!["out".into()]
        } else {
            (0..)
                .map(|k| format!("out{k}"))
                .take_while(|n| self.has(case, n))
                .collect()
        };
        if names.len() != outs.len() {
            return Err(format!(
                "{} outputs, the fixture has {}",
                outs.len(),
                names.len()
            ));
        }
        let mut worst = (0.0f64, String::new());
        let mut keep = |what: &str, r: (f64, String)| {
            if r.0 > worst.0 || (r.0.is_nan() && !worst.0.is_nan()) {
                worst = (r.0, format!("{what} {}", r.1));
            }
        };
        let mut loss: Option<Tensor> = None;
        for (out, name) in outs.iter().zip(&names) {
            let want = self.get(case, name).map_err(s)?;
            keep(
                name,
                compare(out, &want).map_err(|e| format!("{name}: {e}"))?,
            );
            if want.dtype().is_float() {
                let w = self.get(case, &name.replacen("out", "w", 1)).map_err(s)?;
                let term = out.mul(&w).and_then(|t| t.sum_all()).map_err(s)?;
                loss = Some(match loss {
                    None => term,
                    Some(l) => l.add(&term).map_err(s)?,
                });
            }
        }
        if let Some(loss) = loss {
            loss.backward().map_err(|e| format!("backward: {e}"))?;
        }
        for (leaf, name) in leaves.iter().zip(inputs) {
            let want = self.get(case, &format!("grad_{name}")).map_err(s)?;
            let got = match leaf.grad() {
                Some(g) => g,
                None => leaf.zeros_like().map_err(s)?,
            };
            let what = format!("grad_{name}");
            keep(
                &what,
                compare(&got, &want).map_err(|e| format!("{what}: {e}"))?,
            );
        }
        Ok(worst)
    }

    /// Reports the worst errors and fails on any mismatch or on a case never replayed.
    /// Returns the worst relative error of the family.
    pub fn finish(self) -> f64 {
        let missing: Vec<String> = self
            .cases()
            .difference(&self.done.borrow())
            .cloned()
            .collect();
        let mut worst = self.worst.into_inner();
        worst.sort_by(|a, b| b.1.total_cmp(&a.1));
        let family = worst.first().map_or(0.0, |w| w.1);
        println!(
            "{}: {} cases, worst relative error {family:.2e}",
            self.name,
            worst.len()
        );
        for (case, err) in worst.iter().take(5) {
            println!("  {case:<28} {err:.2e}");
        }
        let mut failures = self.failures.into_inner();
        if !missing.is_empty() {
            failures.push(format!("cases in the file but never replayed: {missing:?}"));
        }
        assert!(
            failures.is_empty(),
            "{}: {} problem(s):\n  {}",
            self.name,
            failures.len(),
            failures.join("\n  ")
        );
        family
    }
}
