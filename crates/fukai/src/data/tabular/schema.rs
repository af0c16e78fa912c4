//! What each column of a table is and how it becomes numbers. [`TableSpec`] is what the user
//! says (label, task, column kinds, missing-value tokens, imputation, encoding);
//! [`TableSpec::layout`] types every column from the data; [`Schema::fit`] learns the
//! statistics from the training rows only (imputation fills, standardization, categories) and
//! is what a checkpoint stores, so a raw row of strings can be encoded again at prediction time.

use super::read::RawTable;
use crate::bail;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A column by name or by 0-based position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnRef {
    /// The header's name (exact, else ignoring ASCII case).
    Name(String),
    /// 0-based position.
    Index(usize),
}

impl ColumnRef {
    fn find(&self, raw: &RawTable) -> Result<usize> {
        let found = match self {
            ColumnRef::Name(n) => raw.column(n),
            ColumnRef::Index(i) => (*i < raw.names.len()).then_some(*i),
        };
        found.ok_or_else(|| Error::Format {
            file: raw.file.clone(),
            msg: format!(
                "no column {} (the columns are {})",
                match self {
                    ColumnRef::Name(n) => format!("{n:?}"),
                    ColumnRef::Index(i) => format!("at index {i}"),
                },
                list(&raw.names)
            ),
        })
    }
}

fn list(names: &[String]) -> String {
    let shown: Vec<String> = names.iter().take(40).map(|n| format!("{n:?}")).collect();
    let more = names.len().saturating_sub(40);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// What a column is used as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// Numbers (missing cells imputed).
    Numeric,
    /// Strings (or codes) from a fixed set, one-hot encoded or embedded.
    Categorical,
    /// Not used.
    Ignored,
}

/// What to do with a missing feature cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Impute {
    /// Numbers get the training mean; strings a "missing" category.
    #[default]
    Mean,
    /// Numbers get the training median; strings a "missing" category.
    Median,
    /// Rows with any missing feature are dropped.
    Drop,
}

/// How categorical columns enter a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// One input per category (an unseen category is all zeros).
    #[default]
    Onehot,
    /// One input holding the category's index (0 = unknown) for a learned embedding.
    Embedding,
}

/// The cells pandas reads as missing by default.
pub const DEFAULT_MISSING: &[&str] = &[
    "", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "#N/A", "<NA>", "None",
    "?",
];

/// The category a missing string becomes.
pub const MISSING_CATEGORY: &str = "<missing>";

/// What the user says about a table. Everything left unsaid is inferred.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSpec {
    /// The target column (default: the last).
    pub label: Option<ColumnRef>,
    /// Predict a number (MSE) instead of a class.
    pub regression: bool,
    /// The only columns to use as features (default: all but the label).
    pub features: Option<Vec<ColumnRef>>,
    /// Kinds forced for some columns.
    pub kinds: Vec<(ColumnRef, ColumnKind)>,
    /// Cells that mean "missing".
    pub missing: Vec<String>,
    /// Missing-value handling.
    pub impute: Impute,
    /// Categorical encoding.
    pub encoding: Encoding,
    /// Standardize numeric features with the training mean and std.
    pub standardize: bool,
    /// A string column with more distinct values than this is ignored unless its kind is
    /// forced (free text, identifiers, dates).
    pub max_categories: usize,
}

impl Default for TableSpec {
    fn default() -> Self {
        TableSpec {
            label: None,
            regression: false,
            features: None,
            kinds: Vec::new(),
            missing: DEFAULT_MISSING.iter().map(|s| s.to_string()).collect(),
            impute: Impute::Mean,
            encoding: Encoding::Onehot,
            standardize: true,
            max_categories: 50,
        }
    }
}

/// Every column typed, the label found, and the rows that can be used.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Kind of each column of the file (the label's is `Ignored`).
    pub kinds: Vec<ColumnKind>,
    /// Position of the label column.
    pub label: usize,
    /// Rows kept (a row without a label, or with a missing feature under [`Impute::Drop`],
    /// is left out).
    pub rows: Vec<usize>,
    /// Class of each kept row (classification), indexing `class_names`.
    pub classes: Vec<i64>,
    /// Class names in index order (classification).
    pub class_names: Vec<String>,
    /// Target of each kept row (regression).
    pub values: Vec<f64>,
    /// What was inferred or dropped, for people.
    pub notes: Vec<String>,
}

/// Mean and population standard deviation (0 and 0 for no values).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

fn parse_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

impl TableSpec {
    fn is_missing(&self, cell: &str) -> bool {
        self.missing.iter().any(|m| m == cell)
    }

    /// Types every column of `raw` and finds the usable rows.
    pub fn layout(&self, raw: &RawTable) -> Result<Layout> {
        let ncol = raw.names.len();
        if ncol < 2 {
            return Err(Error::Format {
                file: raw.file.clone(),
                msg: format!("{ncol} column(s); a table needs at least one feature and a label"),
            });
        }
        let label = match &self.label {
            Some(r) => r.find(raw)?,
            None => ncol - 1,
        };
        let mut forced: Vec<Option<ColumnKind>> = vec![None; ncol];
        if let Some(sel) = &self.features {
            forced
                .iter_mut()
                .for_each(|k| *k = Some(ColumnKind::Ignored));
            for r in sel {
                forced[r.find(raw)?] = None;
            }
        }
        for (r, k) in &self.kinds {
            forced[r.find(raw)?] = Some(*k);
        }
        let mut notes = Vec::new();
        let mut kinds = vec![ColumnKind::Ignored; ncol];
        for c in (0..ncol).filter(|&c| c != label) {
            let declared = match forced[c] {
                Some(k) => Some(k),
                // A scikit-learn header declares numeric features.
                None if raw.class_names.is_some() => Some(ColumnKind::Numeric),
                None => None,
            };
            kinds[c] = declared.unwrap_or_else(|| self.infer(raw, c, &mut notes));
            // An inferred numeric column holds numbers by construction; a declared one is checked.
            if declared == Some(ColumnKind::Numeric) {
                for r in 0..raw.len() {
                    let cell = raw.cell(r, c);
                    if !self.is_missing(cell) && parse_number(cell).is_none() {
                        return Err(raw.err_at(
                            r,
                            c,
                            format!("{cell:?} is not a finite number (the column is numeric; list {cell:?} in data.missing if it means missing)"),
                        ));
                    }
                }
            }
        }
        if kinds.iter().all(|&k| k == ColumnKind::Ignored) {
            return Err(Error::Format {
                file: raw.file.clone(),
                msg: format!(
                    "no feature columns are left besides the label {:?}",
                    raw.names[label]
                ),
            });
        }
        let mut rows = Vec::new();
        let (mut no_label, mut incomplete) = (0, 0);
        for r in 0..raw.len() {
            if self.is_missing(raw.cell(r, label)) {
                no_label += 1;
                continue;
            }
            let used = (0..ncol).filter(|&c| kinds[c] != ColumnKind::Ignored);
            if self.impute == Impute::Drop && used.clone().any(|c| self.is_missing(raw.cell(r, c)))
            {
                incomplete += 1;
                continue;
            }
            rows.push(r);
        }
        if no_label > 0 {
            notes.push(format!(
                "{no_label} rows without a {:?} dropped",
                raw.names[label]
            ));
        }
        if incomplete > 0 {
            notes.push(format!(
                "{incomplete} rows with missing features dropped (data.impute = \"drop\")"
            ));
        }
        let mut out = Layout {
            kinds,
            label,
            rows,
            classes: Vec::new(),
            class_names: Vec::new(),
            values: Vec::new(),
            notes,
        };
        if self.regression {
            for &r in &out.rows {
                let cell = raw.cell(r, label);
                match parse_number(cell) {
                    Some(v) => out.values.push(v),
                    None => {
                        return Err(raw.err_at(
                            r,
                            label,
                            format!("{cell:?} is not a number, and a regression label must be"),
                        ))
                    }
                }
            }
        } else {
            let cells: Vec<&str> = out.rows.iter().map(|&r| raw.cell(r, label)).collect();
            if raw.class_names.is_some() {
                let not_index = |c: &&str| c.parse::<u64>().is_err();
                if let Some(i) = cells.iter().position(not_index) {
                    return Err(raw.err_at(
                        out.rows[i],
                        label,
                        format!(
                            "label {:?} is not a class index (a scikit-learn header names the classes 0..k-1)",
                            cells[i]
                        ),
                    ));
                }
            }
            (out.classes, out.class_names) = crate::data::label_classes(&cells);
            if let Some(names) = &raw.class_names {
                let plain = out.class_names.iter().enumerate();
                if names.len() >= out.class_names.len()
                    && plain.clone().all(|(i, n)| *n == i.to_string())
                {
                    out.class_names = names[..out.class_names.len()].to_vec();
                }
            }
        }
        Ok(out)
    }

    fn infer(&self, raw: &RawTable, c: usize, notes: &mut Vec<String>) -> ColumnKind {
        let present = (0..raw.len())
            .map(|r| raw.cell(r, c))
            .filter(|s| !self.is_missing(s));
        let mut distinct = std::collections::BTreeSet::new();
        let (mut any, mut numeric) = (false, true);
        for cell in present {
            any = true;
            numeric &= parse_number(cell).is_some();
            if distinct.len() <= self.max_categories {
                distinct.insert(cell);
            }
        }
        let name = &raw.names[c];
        if !any {
            notes.push(format!("column {name:?} is empty: ignored"));
            ColumnKind::Ignored
        } else if numeric {
            ColumnKind::Numeric
        } else if distinct.len() > self.max_categories {
            notes.push(format!(
                "column {name:?} has more than {} distinct strings (free text, identifiers, dates?): ignored; name it in data.categorical to use it",
                self.max_categories
            ));
            ColumnKind::Ignored
        } else {
            ColumnKind::Categorical
        }
    }
}

/// A feature column with the statistics fitted on the training rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Column {
    /// A number: missing cells become `fill`, then `(v - mean) / std`.
    Numeric {
        /// Header name.
        name: String,
        /// Imputed value (training mean or median).
        fill: f64,
        /// Standardization mean (0 when not standardizing).
        mean: f64,
        /// Standardization std (1 when not standardizing).
        std: f64,
    },
    /// A category among those seen in training (plus [`MISSING_CATEGORY`] when training had
    /// missing cells); anything else is unknown.
    Categorical {
        /// Header name.
        name: String,
        /// Categories in encoding order.
        categories: Vec<String>,
    },
    /// Not used (kept so raw rows line up with the file's columns).
    Ignored {
        /// Header name.
        name: String,
    },
}

impl Column {
    /// The header name.
    pub fn name(&self) -> &str {
        match self {
            Column::Numeric { name, .. }
            | Column::Categorical { name, .. }
            | Column::Ignored { name } => name,
        }
    }
}

/// What the model predicts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Target {
    /// A class.
    Classes {
        /// Class names in output order.
        names: Vec<String>,
    },
    /// A number, learned standardized: the model's output times `std` plus `mean`.
    Value {
        /// Training mean.
        mean: f64,
        /// Training std.
        std: f64,
    },
}

/// A fitted table schema: every column of the file but the label, in file order, with what was
/// learned from the training rows. Stored in checkpoints as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// The feature columns (and ignored ones), in file order without the label.
    pub columns: Vec<Column>,
    /// The label column's name.
    pub label: String,
    /// The label's position among the file's columns.
    pub label_index: usize,
    /// What is predicted.
    pub target: Target,
    /// Categorical encoding.
    pub encoding: Encoding,
    /// Cells meaning "missing".
    pub missing: Vec<String>,
}

/// The most values an encoded table may hold (1 GiB of f32).
pub const MAX_ENCODED_VALUES: usize = 1 << 28;

/// The most categories one column may bring (its one-hot block sizes the input layer).
pub const MAX_CATEGORIES: usize = 1 << 16;

impl Schema {
    /// Fits the statistics of `layout`'s columns on `train`: indices into `layout.rows` (the
    /// usable rows), not into the file.
    pub fn fit(
        spec: &TableSpec,
        raw: &RawTable,
        layout: &Layout,
        train: &[usize],
    ) -> Result<Schema> {
        if let Some(&i) = train.iter().find(|&&i| i >= layout.rows.len()) {
            bail!(
                "Schema::fit",
                "training row {i} is outside the {} usable rows",
                layout.rows.len()
            );
        }
        let mut columns = Vec::new();
        for (c, &kind) in layout.kinds.iter().enumerate() {
            if c == layout.label {
                continue;
            }
            let name = raw.names[c].clone();
            let cells = train.iter().map(|&i| raw.cell(layout.rows[i], c));
            columns.push(match kind {
                ColumnKind::Ignored => Column::Ignored { name },
                ColumnKind::Numeric => {
                    let mut v: Vec<f64> = cells
                        .filter(|s| !spec.is_missing(s))
                        .filter_map(parse_number)
                        .collect();
                    if v.is_empty() {
                        return Err(Error::Format {
                            file: raw.file.clone(),
                            msg: format!("column {name:?} has no values in the training rows"),
                        });
                    }
                    let (mean, std) = mean_std(&v);
                    let fill = match spec.impute {
                        Impute::Median => {
                            v.sort_by(f64::total_cmp);
                            let m = v.len() / 2;
                            if v.len() % 2 == 1 {
                                v[m]
                            } else {
                                (v[m - 1] + v[m]) / 2.0
                            }
                        }
                        _ => mean,
                    };
                    let (mean, std) = if spec.standardize {
                        (mean, std.max(1e-12))
                    } else {
                        (0.0, 1.0)
                    };
                    Column::Numeric {
                        name,
                        fill,
                        mean,
                        std,
                    }
                }
                ColumnKind::Categorical => {
                    let mut categories: Vec<String> = cells
                        .map(|s| {
                            if spec.is_missing(s) {
                                MISSING_CATEGORY
                            } else {
                                s
                            }
                        })
                        .map(str::to_string)
                        .collect();
                    categories.sort_unstable();
                    categories.dedup();
                    if categories.len() > MAX_CATEGORIES {
                        return Err(Error::Format {
                            file: raw.file.clone(),
                            msg: format!(
                                "column {name:?} has {} categories in the training rows, more than {MAX_CATEGORIES}",
                                categories.len()
                            ),
                        });
                    }
                    Column::Categorical { name, categories }
                }
            });
        }
        let target = if spec.regression {
            let v: Vec<f64> = train.iter().map(|&i| layout.values[i]).collect();
            let (mean, std) = mean_std(&v);
            Target::Value {
                mean,
                std: std.max(1e-12),
            }
        } else {
            Target::Classes {
                names: layout.class_names.clone(),
            }
        };
        Ok(Schema {
            columns,
            label: raw.names[layout.label].clone(),
            label_index: layout.label,
            target,
            encoding: spec.encoding,
            missing: spec.missing.clone(),
        })
    }

    /// Checks a schema read from a file before it sizes anything.
    pub fn validate(&self) -> Result<()> {
        for c in &self.columns {
            match c {
                Column::Numeric {
                    name,
                    fill,
                    mean,
                    std,
                } => {
                    if !(fill.is_finite() && mean.is_finite() && std.is_finite() && *std > 0.0) {
                        bail!("table schema", "column {name:?}: fill {fill}, mean {mean} and std {std} must be finite, std positive");
                    }
                }
                Column::Categorical { name, categories } => {
                    if categories.is_empty() || categories.len() > MAX_CATEGORIES {
                        bail!(
                            "table schema",
                            "column {name:?}: {} categories, expected 1..={MAX_CATEGORIES}",
                            categories.len()
                        );
                    }
                }
                Column::Ignored { .. } => {}
            }
        }
        if self.label_index > self.columns.len() {
            bail!(
                "table schema",
                "label_index {} is past the {} columns",
                self.label_index,
                self.columns.len() + 1
            );
        }
        match &self.target {
            Target::Classes { names } if names.is_empty() => {
                bail!("table schema", "no class names")
            }
            Target::Value { mean, std } if !(mean.is_finite() && std.is_finite() && *std > 0.0) => {
                bail!(
                    "table schema",
                    "target mean {mean} and std {std} must be finite, std positive"
                )
            }
            _ => Ok(()),
        }
    }

    /// Inputs per row.
    pub fn width(&self) -> usize {
        self.columns
            .iter()
            .map(|c| match (c, self.encoding) {
                (Column::Numeric { .. }, _) => 1,
                (Column::Categorical { categories, .. }, Encoding::Onehot) => categories.len(),
                (Column::Categorical { .. }, Encoding::Embedding) => 1,
                (Column::Ignored { .. }, _) => 0,
            })
            .sum()
    }

    /// Table sizes (categories + 1 for unknown) of the embedded columns, in input order; empty
    /// for one-hot encoding.
    pub fn embedding_sizes(&self) -> Vec<usize> {
        if self.encoding != Encoding::Embedding {
            return Vec::new();
        }
        self.columns
            .iter()
            .filter_map(|c| match c {
                Column::Categorical { categories, .. } => Some(categories.len() + 1),
                _ => None,
            })
            .collect()
    }

    /// The feature columns (neither ignored nor the label).
    pub fn used(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .filter(|c| !matches!(c, Column::Ignored { .. }))
    }

    /// Class names (classification) or none.
    pub fn class_names(&self) -> Vec<String> {
        match &self.target {
            Target::Classes { names } => names.clone(),
            Target::Value { .. } => Vec::new(),
        }
    }

    /// Encodes one row given as a cell per schema column (`cells(i)` for `columns[i]`, `None`
    /// when the input lacks the column): numbers first (imputed, standardized), then categories
    /// (one-hot blocks, or indices with 0 for unknown). Imputed cells and unseen categories add
    /// a note to `notes` when given; a numeric cell that is not a number is an error (`at(i,
    /// msg)` builds it).
    pub fn encode<'a>(
        &self,
        cells: &dyn Fn(usize) -> Option<&'a str>,
        at: &dyn Fn(usize, String) -> Error,
        out: &mut Vec<f32>,
        mut notes: Option<&mut Vec<String>>,
    ) -> Result<()> {
        let missing = |s: &str| self.missing.iter().any(|m| m == s);
        for (i, c) in self.columns.iter().enumerate() {
            if let Column::Numeric {
                name,
                fill,
                mean,
                std,
            } = c
            {
                let cell = cells(i).map(str::trim);
                let v = match cell {
                    Some(s) if !missing(s) => match parse_number(s) {
                        Some(v) => v,
                        None => return Err(at(i, format!("{s:?} is not a finite number"))),
                    },
                    _ => {
                        if let Some(n) = notes.as_deref_mut() {
                            let how = if cell.is_none() { "absent" } else { "missing" };
                            n.push(format!("{name:?} is {how}: imputed {fill:.4}"));
                        }
                        *fill
                    }
                };
                out.push(((v - mean) / std) as f32);
            }
        }
        for (i, c) in self.columns.iter().enumerate() {
            if let Column::Categorical { name, categories } = c {
                let key = match cells(i).map(str::trim) {
                    Some(s) if !missing(s) => s,
                    _ => MISSING_CATEGORY,
                };
                let idx = categories.iter().position(|k| k == key);
                if let (None, Some(n)) = (idx, notes.as_deref_mut()) {
                    n.push(format!(
                        "warning: {name:?} = {key:?} was not seen in training: encoded as unknown"
                    ));
                }
                match self.encoding {
                    Encoding::Onehot => {
                        let start = out.len();
                        out.resize(start + categories.len(), 0.0);
                        if let Some(k) = idx {
                            out[start + k] = 1.0;
                        }
                    }
                    Encoding::Embedding => out.push(idx.map_or(0.0, |k| k as f32 + 1.0)),
                }
            }
        }
        Ok(())
    }

    /// Encodes rows of `raw` (its columns must be the schema's, label included) into
    /// `[rows, width]` values.
    pub fn encode_rows(&self, raw: &RawTable, rows: &[usize]) -> Result<Vec<f32>> {
        let values = rows.len().checked_mul(self.width());
        if values.is_none_or(|v| v > MAX_ENCODED_VALUES) {
            return Err(Error::Format {
                file: raw.file.clone(),
                msg: format!(
                    "{} rows of {} inputs exceed the {MAX_ENCODED_VALUES} values a table may encode to (many categories? try model.categorical = \"embedding\")",
                    rows.len(),
                    self.width()
                ),
            });
        }
        let mut out = Vec::with_capacity(rows.len() * self.width());
        let col = |i: usize| i + usize::from(i >= self.label_index);
        for &r in rows {
            self.encode(
                &|i| Some(raw.cell(r, col(i))),
                &|i, msg| raw.err_at(r, col(i), msg),
                &mut out,
                None,
            )?;
        }
        Ok(out)
    }
}
