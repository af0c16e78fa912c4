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

/// One metric over the folds.
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    /// `accuracy`, `rmse` or `r2`.
    pub metric: &'static str,
    /// Its value in each fold.
    pub folds: Vec<f64>,
    /// Mean over the folds.
    pub mean: f64,
    /// Population standard deviation over the folds.
    pub std: f64,
}

/// The headline metrics of `evals` (one per fold), each as mean and standard deviation.
pub fn summarize(evals: &[&Evaluation]) -> Vec<Spread> {
    let per_fold: Vec<Vec<(&'static str, f64)>> = evals.iter().map(|e| headline(e)).collect();
    let Some(first) = per_fold.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|i| {
            let folds: Vec<f64> = per_fold.iter().map(|h| h[i].1).collect();
            let (mean, std) = crate::data::mean_std(&folds);
            Spread {
                metric: first[i].0,
                folds,
                mean,
                std,
            }
        })
        .collect()
}

fn to_json(spreads: &[Spread]) -> serde_json::Value {
    let m: serde_json::Map<String, serde_json::Value> = spreads
        .iter()
        .map(|s| {
            let v = json!({"mean": s.mean, "std": s.std, "folds": s.folds});
            (s.metric.to_string(), v)
        })
        .collect();
    m.into()
}

/// A finished cross-validation.
pub struct CrossValidation {
    /// Each fold's test results.
    pub folds: Vec<Fold>,
    /// The network's metrics over the folds.
    pub model: Vec<Spread>,
    /// The baseline's name and metrics over the folds.
    pub baseline: Option<(String, Vec<Spread>)>,
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
) -> Result<CrossValidation> {
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
    // Every fold directory is checked before any training; each fold's data is prepared when
    // its turn comes, so only one encoded copy of the table is held at a time.
    if k < 2 {
        bail!(
            "config",
            "cross-validation needs at least 2 folds, found {k}"
        );
    }
    let dirs: Vec<_> = (1..=k).map(|i| out.join(format!("fold-{i}"))).collect();
    for d in &dirs {
        super::prepare_dir(d, existing)?;
    }
    let mut folds = Vec::new();
    for (index, dir) in dirs.iter().enumerate() {
        let run =
            Run::prepare_holdout(cfg, data_path, dir, existing, Holdout::Fold { k, i: index })?;
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
    let model = summarize(&nets);
    let baseline = folds
        .first()
        .and_then(|f| f.baseline.as_ref())
        .map(|(name, _)| {
            let bases: Vec<&Evaluation> = folds
                .iter()
                .filter_map(|f| f.baseline.as_ref().map(|b| &b.1))
                .collect();
            (name.clone(), summarize(&bases))
        });
    let mut doc = json!({
        "name": cfg.name,
        "data": data_path.display().to_string(),
        "folds": k,
        "model": to_json(&model),
    });
    if let Some((name, spreads)) = &baseline {
        doc["baseline"] = to_json(spreads);
        doc["baseline"]["model"] = name.clone().into();
    }
    crate::io::write_atomic(
        &summary,
        serde_json::to_string_pretty(&doc).expect("json").as_bytes(),
    )?;
    Ok(CrossValidation {
        folds,
        model,
        baseline,
    })
}
