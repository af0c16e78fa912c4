//! k-fold cross-validation of a table run: each fold in turn is the test set, the others train
//! (with the run's validation carve), each fold a full run directory `OUT/fold-I`; `OUT/cv.json`
//! holds every fold's test metrics and their mean and standard deviation.

use super::{Existing, Holdout, Run, RunConfig};
use crate::bail;
use crate::error::{Error, Result};
use crate::train::Evaluation;
use serde_json::json;
use std::path::Path;

/// One fold's test results.
pub struct Fold {
    /// 0-based fold.
    pub index: usize,
    /// The network's test evaluation.
    pub test: Evaluation,
    /// The baseline's name and test evaluation.
    pub baseline: Option<(String, Evaluation)>,
}

/// Mean and (population) standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

/// The metrics cross-validation summarizes: accuracy, or RMSE and R².
pub fn headline(ev: &Evaluation) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    if let Some(a) = ev.accuracy() {
        out.push(("accuracy", a));
    }
    if let Some(r) = ev.rmse() {
        out.push(("rmse", r));
    }
    if let Some(r) = ev.r2() {
        out.push(("r2", r));
    }
    out
}

fn summarize(evals: &[&Evaluation]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if let Some(first) = evals.first() {
        for (i, (name, _)) in headline(first).iter().enumerate() {
            let v: Vec<f64> = evals.iter().map(|e| headline(e)[i].1).collect();
            let (mean, std) = mean_std(&v);
            m.insert(
                name.to_string(),
                json!({"mean": mean, "std": std, "folds": v}),
            );
        }
    }
    m.into()
}

/// Runs `k`-fold cross-validation of a table config into `out`, calling `on_fold` after each
/// fold, and writes `out/cv.json`.
pub fn cross_validate(
    cfg: &RunConfig,
    data_path: &Path,
    out: &Path,
    k: usize,
    existing: Existing,
    progress: bool,
    mut on_fold: impl FnMut(&Fold),
) -> Result<Vec<Fold>> {
    if cfg.data.format != "table" {
        bail!(
            "config",
            "cross-validation splits tables; data.format is {:?}",
            cfg.data.format
        );
    }
    if existing == Existing::Resume {
        bail!(
            "config",
            "a cross-validation is not resumed; run it again with --force"
        );
    }
    let summary = out.join("cv.json");
    if summary.exists() && existing == Existing::Refuse {
        return Err(Error::Format {
            file: out.display().to_string(),
            msg: "the directory already holds a cross-validation (cv.json); pass --force to overwrite it or --out for a new one".into(),
        });
    }
    // Every fold's data is checked (and every directory proven writable) before any training.
    let mut runs = Vec::new();
    for i in 0..k {
        let dir = out.join(format!("fold-{}", i + 1));
        runs.push(Run::prepare_holdout(
            cfg,
            data_path,
            &dir,
            existing,
            Holdout::Fold { k, i },
        )?);
    }
    let mut folds = Vec::new();
    for (index, run) in runs.into_iter().enumerate() {
        let o = run.train(None, progress)?;
        let test = o
            .test
            .expect("a run without a step limit ends with a test evaluation");
        let f = Fold {
            index,
            test,
            baseline: o.baseline,
        };
        on_fold(&f);
        folds.push(f);
    }
    let nets: Vec<&Evaluation> = folds.iter().map(|f| &f.test).collect();
    let bases: Vec<&Evaluation> = folds
        .iter()
        .filter_map(|f| f.baseline.as_ref().map(|b| &b.1))
        .collect();
    let mut doc = json!({
        "name": cfg.name,
        "data": data_path.display().to_string(),
        "folds": k,
        "model": summarize(&nets),
    });
    if let Some((name, _)) = folds.first().and_then(|f| f.baseline.as_ref()) {
        doc["baseline"] = summarize(&bases);
        doc["baseline"]["model"] = name.clone().into();
    }
    crate::io::write_atomic(
        &summary,
        serde_json::to_string_pretty(&doc).expect("json").as_bytes(),
    )?;
    Ok(folds)
}
