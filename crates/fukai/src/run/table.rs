//! Tables (`data.format = "table"`): a CSV read as people have it, split (stratified for
//! classes; a k-fold split for cross-validation), the schema fitted on the training rows only,
//! rows encoded, an MLP sized to them — and the same pipeline without hidden layers (logistic or
//! linear regression) as the baseline every table run reports beside the network.

use super::data::{describe, json, Prepared, VAL_SEED};
use super::RunConfig;
use crate::bail;
use crate::data::{self, CsvOptions, RawTable, Schema, TableSpec};
use crate::error::{Error, Result};
use crate::models::{MlpConfig, ModelConfig};
use crate::train::{Batches, TableBatches, TableTargets};
use std::path::Path;
use std::sync::Arc;

/// Which rows are held out for testing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holdout {
    /// `data.test_fraction` of the rows (stratified by class for classification).
    Fraction,
    /// Fold `i` of a stratified `k`-fold split (cross-validation).
    Fold {
        /// Folds.
        k: usize,
        /// The test fold, `0..k`.
        i: usize,
    },
}

/// The reading options of a run config.
pub fn csv_options(cfg: &RunConfig) -> Result<CsvOptions> {
    let delimiter = match cfg.data.delimiter.as_deref() {
        None => None,
        Some("\\t") | Some("tab") => Some(b'\t'),
        Some(d) if d.len() == 1 && d != "\"" && d != "\n" && d != "\r" => Some(d.as_bytes()[0]),
        Some(d) => bail!(
            "config",
            "data.delimiter must be one ASCII character other than a quote or line break (or \"tab\"), found {d:?}"
        ),
    };
    Ok(CsvOptions {
        delimiter,
        header: cfg.data.header,
    })
}

/// The table spec of a run config.
pub fn table_spec(cfg: &RunConfig) -> Result<TableSpec> {
    let d = &cfg.data;
    let regression = match d.task.as_deref() {
        None | Some("classification") => false,
        Some("regression") => true,
        Some(t) => bail!(
            "config",
            "data.task must be \"classification\" or \"regression\", found {t:?}"
        ),
    };
    let mut kinds = Vec::new();
    for (list, kind) in [
        (&d.categorical, data::ColumnKind::Categorical),
        (&d.numeric, data::ColumnKind::Numeric),
        (&d.ignore, data::ColumnKind::Ignored),
    ] {
        kinds.extend(list.iter().map(|c| (c.clone(), kind)));
    }
    let mut spec = TableSpec {
        label: d.label.clone(),
        regression,
        features: d.features.clone(),
        kinds,
        impute: d.impute,
        encoding: cfg.model.categorical,
        standardize: d.standardize,
        max_categories: d.max_categories,
        ..TableSpec::default()
    };
    if let Some(m) = &d.missing {
        spec.missing = m.clone();
    }
    Ok(spec)
}

/// The embedding width for a table of `n` rows: fast.ai's rule of thumb, capped.
fn embedding_width(n: usize, fixed: Option<usize>) -> usize {
    fixed.unwrap_or_else(|| ((1.6 * (n as f64).powf(0.56)).round() as usize).clamp(1, 64))
}

/// The model a schema and run config call for; `hidden = []` gives the linear baseline.
pub fn table_model(cfg: &RunConfig, schema: &Schema, hidden: &[usize]) -> ModelConfig {
    let m = &cfg.model;
    let regression = matches!(schema.target, data::Target::Value { .. });
    ModelConfig::Mlp(MlpConfig {
        input_shape: vec![schema.width()],
        hidden: hidden.to_vec(),
        classes: if regression {
            1
        } else {
            schema.class_names().len()
        },
        batch_norm: m.batch_norm && !hidden.is_empty(),
        dropout: if hidden.is_empty() { 0.0 } else { m.dropout },
        regression,
        embeddings: schema
            .embedding_sizes()
            .into_iter()
            .map(|n| [n, embedding_width(n, m.embedding_dim)])
            .collect(),
    })
}

/// Prepares a table run with the given holdout.
pub fn prepare_table(cfg: &RunConfig, path: &Path, holdout: Holdout) -> Result<Prepared> {
    let (d, t) = (&cfg.data, &cfg.train);
    if cfg.model.kind != "mlp" {
        bail!(
            "config",
            "data.format \"table\" trains model.kind \"mlp\", found {:?}",
            cfg.model.kind
        );
    }
    let raw = data::read_csv(path, &csv_options(cfg)?)?;
    let spec = table_spec(cfg)?;
    let layout = spec.layout(&raw)?;
    let n = layout.rows.len();
    let empty = |what: &str| {
        Error::Format {
        file: raw.file.clone(),
        msg: format!("the {what} split is empty ({n} usable rows, data.test_fraction = {}, data.val_fraction = {})", d.test_fraction, d.val_fraction),
    }
    };
    // Stratify on classes; a regression split is a plain seeded shuffle (one stratum).
    let strata: Vec<i64> = if spec.regression {
        vec![0; n]
    } else {
        layout.classes.clone()
    };
    let (rest, test) = match holdout {
        Holdout::Fraction => data::stratified_split(&strata, d.test_fraction, t.seed)?,
        Holdout::Fold { k, i } => {
            let folds = data::stratified_folds(&strata, k, t.seed)?;
            (0..n).partition(|&r| folds[r] != i)
        }
    };
    let (train, val) = if d.val_fraction > 0.0 {
        let s: Vec<i64> = rest.iter().map(|&r| strata[r]).collect();
        let (a, b) = data::stratified_split(&s, d.val_fraction, t.seed ^ VAL_SEED)?;
        (
            a.into_iter().map(|i| rest[i]).collect::<Vec<_>>(),
            b.into_iter().map(|i| rest[i]).collect::<Vec<_>>(),
        )
    } else {
        (rest, Vec::new())
    };
    if train.is_empty() {
        return Err(empty("training"));
    }
    if test.is_empty() {
        return Err(empty("test"));
    }
    // Statistics from the training rows only.
    let schema = Schema::fit(&spec, &raw, &layout, &train)?;
    let x = Arc::new(schema.encode_rows(&raw, &layout.rows)?);
    let targets = match &schema.target {
        data::Target::Value { mean, std } => TableTargets::Values {
            y: layout
                .values
                .iter()
                .map(|v| ((v - mean) / std) as f32)
                .collect(),
            scale: *std,
        },
        data::Target::Classes { names } => TableTargets::Classes {
            y: layout.classes.clone(),
            classes: names.len(),
        },
    };
    let y = Arc::new(targets);
    let w = schema.width();
    let batches =
        |rows: Vec<usize>, bs: usize| TableBatches::new(x.clone(), w, y.clone(), rows, bs);
    let lone = cfg.model.batch_norm && train.len() % t.batch_size == 1;
    let model = table_model(cfg, &schema, &cfg.model.hidden);
    let baseline = table_model(cfg, &schema, &[]);
    let mut describe = describe(
        train.len(),
        (!val.is_empty()).then_some(val.len()),
        test.len(),
        "rows",
    );
    describe.push_str(&format!(
        ", {} inputs from {} columns",
        w,
        schema.used().count()
    ));
    if let Holdout::Fold { k, i } = holdout {
        describe.push_str(&format!(", fold {} of {k}", i + 1));
    }
    let class_names = schema.class_names();
    Ok(Prepared {
        model,
        train: Box::new(
            batches(train, t.batch_size)
                .shuffle(t.seed)
                .drop_single_last(lone),
        ),
        val: (!val.is_empty()).then(|| Box::new(batches(val, 500)) as Box<dyn Batches>),
        test: Box::new(batches(test, 500)),
        metadata: vec![
            ("classes".into(), json(&class_names)),
            ("input_shape".into(), json(&[w])),
            ("table".into(), json(&schema)),
        ],
        class_names,
        describe,
        notes: layout.notes,
        baseline: Some(baseline),
        showcase: None,
    })
}

/// One raw table row for prediction: the cells of every column but the label, in the file's
/// order (or only the used columns), or a JSON object by column name. Returns the encoded
/// inputs and notes (imputed or unknown values).
pub fn encode_input(schema: &Schema, input: &str) -> Result<(Vec<f32>, Vec<String>)> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name()).collect();
    let at =
        |i: usize, msg: String| crate::error::op_err("predict", format!("{:?}: {msg}", names[i]));
    let text = input.trim();
    if text.starts_with('{') {
        let obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| {
                crate::error::op_err("predict", format!("the input is not a JSON object: {e}"))
            })?;
        for k in obj.keys() {
            if !names.contains(&k.as_str()) && *k != schema.label {
                bail!(
                    "predict",
                    "the input names a column {k:?} the model does not have (its columns: {})",
                    names.join(", ")
                );
            }
        }
        let vals: Vec<Option<String>> = names
            .iter()
            .map(|n| match obj.get(*n)? {
                serde_json::Value::Null => Some(String::new()),
                serde_json::Value::String(s) => Some(s.clone()),
                v => Some(v.to_string()),
            })
            .collect();
        schema.encode(&|i| vals[i].as_deref(), &at, &mut out, Some(&mut notes))?;
        return Ok((out, notes));
    }
    let raw = data::parse_csv(
        text.as_bytes(),
        "input",
        &CsvOptions {
            delimiter: None,
            header: Some(false),
        },
    )?;
    if raw.len() != 1 {
        bail!(
            "predict",
            "a table row is one CSV line, found {} records",
            raw.len()
        );
    }
    let cells: Vec<String> = raw.rows[0].iter().map(str::to_string).collect();
    encode_cells(schema, &cells)
}

/// A row given as cells by position: every column but the label, or the used columns only.
fn encode_cells(schema: &Schema, cells: &[String]) -> Result<(Vec<f32>, Vec<String>)> {
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name()).collect();
    let at =
        |i: usize, msg: String| crate::error::op_err("predict", format!("{:?}: {msg}", names[i]));
    let used: Vec<usize> = (0..names.len())
        .filter(|&i| !matches!(schema.columns[i], data::Column::Ignored { .. }))
        .collect();
    let index: Vec<usize> = if cells.len() == names.len() {
        (0..names.len()).collect()
    } else if cells.len() == used.len() {
        used.clone()
    } else {
        let used_names: Vec<&str> = used.iter().map(|&i| names[i]).collect();
        bail!(
            "predict",
            "the row has {} values; the model reads {} ({}){}",
            cells.len(),
            used.len(),
            used_names.join(", "),
            if used.len() != names.len() {
                format!(
                    ", or all {} columns of its file but the label ({})",
                    names.len(),
                    names.join(", ")
                )
            } else {
                String::new()
            }
        );
    };
    let cell = |i: usize| {
        index
            .iter()
            .position(|&j| j == i)
            .map(|p| cells[p].as_str())
    };
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    schema.encode(&cell, &at, &mut out, Some(&mut notes))?;
    Ok((out, notes))
}

/// Every row of a CSV file: with a header naming the model's columns, matched by name (the
/// label column may be there and is ignored); without one, cells by position as for one row.
pub fn encode_file(schema: &Schema, path: &Path) -> Result<Vec<(Vec<f32>, Vec<String>)>> {
    let raw: RawTable = data::read_csv(path, &CsvOptions::default())?;
    let pos: Vec<Option<usize>> = schema
        .columns
        .iter()
        .map(|c| raw.names.iter().position(|n| n == c.name()))
        .collect();
    if pos.iter().all(Option::is_none) {
        // No header of the model's columns: the first line is data too.
        let raw = data::read_csv(
            path,
            &CsvOptions {
                delimiter: None,
                header: Some(false),
            },
        )?;
        return (0..raw.len())
            .map(|r| {
                let cells: Vec<String> = raw.rows[r].iter().map(str::to_string).collect();
                encode_cells(schema, &cells).map_err(|e| Error::Format {
                    file: raw.file.clone(),
                    msg: format!("line {}: {e}", raw.lines[r]),
                })
            })
            .collect();
    }
    let mut rows = Vec::new();
    for r in 0..raw.len() {
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let cell = |i: usize| pos[i].map(|c| raw.cell(r, c));
        let at = |i: usize, msg: String| match pos[i] {
            Some(c) => raw.err_at(r, c, msg),
            None => crate::error::op_err("predict", msg),
        };
        schema.encode(&cell, &at, &mut out, Some(&mut notes))?;
        rows.push((out, notes));
    }
    Ok(rows)
}
