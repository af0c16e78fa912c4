//! Time series: the UEA/sktime `.ts` classification format (multivariate, variable length),
//! padded sequence batches with their lengths, and windowed (lookback, horizon) datasets from CSV
//! columns with normalization fitted on the training part only.

use crate::bail;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::path::Path;

/// Labelled multivariate sequences of varying length.
///
/// ```
/// let path = std::env::temp_dir().join(format!("fukai-doc-{}-toy.ts", std::process::id()));
/// std::fs::write(
///     &path,
///     "@problemName toy\n@univariate false\n@dimensions 2\n@equalLength false\n\
///      @classLabel true up down\n@data\n1,2,3:4,5,6:up\n7,8:9,10:down\n",
/// )
/// .unwrap();
/// let seqs = fukai::data::read_ts(&path)?;
/// assert_eq!((seqs.len(), seqs.dims, seqs.max_len()), (2, 2, 3));
/// let (x, lengths, y) = seqs.batch(&[0, 1])?;
/// assert_eq!(x.shape(), &[2, 3, 2]); // padded to the longest sample, time-major per sample
/// assert_eq!(lengths, [3, 2]);
/// assert_eq!(y.to_vec::<i64>()?, [0, 1]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Sequences {
    /// Per sample, `[len, dims]` time-major values.
    pub series: Vec<Vec<f32>>,
    /// Steps per sample.
    pub lengths: Vec<usize>,
    /// Class index per sample (into `class_names`).
    pub labels: Vec<i64>,
    /// Channels per step.
    pub dims: usize,
    /// Class labels as the file writes them, in header order.
    pub class_names: Vec<String>,
}

impl Sequences {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.series.len()
    }
    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
    /// Longest sequence.
    pub fn max_len(&self) -> usize {
        self.lengths.iter().copied().max().unwrap_or(0)
    }
    /// Per-channel mean and std over every valid step of every sample.
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let d = self.dims;
        let (mut s, mut q, mut n) = (vec![0f64; d], vec![0f64; d], 0f64);
        for x in &self.series {
            for step in x.chunks(d) {
                for (j, &v) in step.iter().enumerate() {
                    s[j] += v as f64;
                    q[j] += (v as f64) * (v as f64);
                }
                n += 1.0;
            }
        }
        let n = n.max(1.0);
        let mean: Vec<f32> = s.iter().map(|v| (v / n) as f32).collect();
        let std = q
            .iter()
            .zip(&s)
            .map(|(q, s)| ((q / n - (s / n).powi(2)).max(0.0).sqrt().max(1e-8)) as f32)
            .collect();
        (mean, std)
    }
    /// Standardizes every channel in place with the given statistics (fit them on train).
    pub fn normalize(&mut self, mean: &[f32], std: &[f32]) {
        let d = self.dims;
        for x in &mut self.series {
            for step in x.chunks_mut(d) {
                for ((v, m), s) in step.iter_mut().zip(mean).zip(std) {
                    *v = (*v - m) / s;
                }
            }
        }
    }
    /// The samples at `rows` as a padded batch: `x` `[B, T_max, dims]` (zeros after each
    /// sample's end), the lengths and the labels `[B]` (i64).
    pub fn batch(&self, rows: &[usize]) -> Result<(Tensor, Vec<usize>, Tensor)> {
        if let Some(&r) = rows.iter().find(|&&r| r >= self.len()) {
            bail!("Sequences::batch", "row {r} is outside 0..{}", self.len());
        }
        let t = rows.iter().map(|&r| self.lengths[r]).max().unwrap_or(0);
        let d = self.dims;
        let mut x = vec![0f32; rows.len() * t * d];
        for (i, &r) in rows.iter().enumerate() {
            x[i * t * d..i * t * d + self.series[r].len()].copy_from_slice(&self.series[r]);
        }
        let lengths = rows.iter().map(|&r| self.lengths[r]).collect();
        let y: Vec<i64> = rows.iter().map(|&r| self.labels[r]).collect();
        Ok((
            Tensor::from_vec(x, &[rows.len(), t, d])?,
            lengths,
            Tensor::from_vec(y, &[rows.len()])?,
        ))
    }
}

fn ts_err(path: &Path, line: usize, msg: String) -> Error {
    Error::Format {
        file: path.display().to_string(),
        msg: format!("line {line}: {msg}"),
    }
}

fn parse_bool(path: &Path, line: usize, tag: &str, v: Option<&str>) -> Result<bool> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        other => Err(ts_err(
            path,
            line,
            format!("@{tag} must be true or false, found {other:?}"),
        )),
    }
}

/// Reads a UEA/sktime `.ts` classification file: `@` header lines, then after `@data` one sample
/// per line, its dimensions separated by `:` (each a comma list of values) and the class label
/// last. Series may differ in length between samples but not between one sample's dimensions.
/// Errors name the file and line.
///
/// ```
/// let path = std::env::temp_dir().join(format!("fukai-doc-{}-read.ts", std::process::id()));
/// std::fs::write(
///     &path,
///     "@problemName toy\n@univariate false\n@dimensions 2\n@equalLength false\n\
///      @classLabel true up down\n@data\n1,2,3:4,5,6:up\n7,8:9,10:down\n",
/// )
/// .unwrap();
/// let seqs = fukai::data::read_ts(&path)?;
/// assert_eq!(seqs.class_names, ["up", "down"]);
/// assert_eq!(seqs.series[1], [7.0, 9.0, 8.0, 10.0]); // [len, dims], time-major
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn read_ts(path: impl AsRef<Path>) -> Result<Sequences> {
    let path = path.as_ref();
    let bytes = super::read_maybe_gz(path)?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Format {
        file: path.display().to_string(),
        msg: format!("not UTF-8 text: {e}"),
    })?;
    let mut dims: Option<usize> = None;
    let mut class_names: Option<Vec<String>> = None;
    let mut equal_length = false;
    let mut series_length: Option<usize> = None;
    let mut missing = false;
    let mut in_data = false;
    let mut out = Sequences {
        series: Vec::new(),
        lengths: Vec::new(),
        labels: Vec::new(),
        dims: 0,
        class_names: Vec::new(),
    };
    for (i, raw) in text.lines().enumerate() {
        let ln = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !in_data {
            let Some(rest) = line.strip_prefix('@') else {
                return Err(ts_err(
                    path,
                    ln,
                    format!("expected an @ header line before @data, found {line:?}"),
                ));
            };
            let mut words = rest.split_whitespace();
            let tag = words.next().unwrap_or("").to_ascii_lowercase();
            let v = words.next();
            match tag.as_str() {
                "problemname" => {}
                "timestamps" => {
                    if parse_bool(path, ln, "timeStamps", v)? {
                        return Err(ts_err(
                            path,
                            ln,
                            "@timeStamps true is not supported (only plain value lists)".into(),
                        ));
                    }
                }
                "missing" => missing = parse_bool(path, ln, "missing", v)?,
                "univariate" => {
                    if parse_bool(path, ln, "univariate", v)? {
                        dims.get_or_insert(1);
                    }
                }
                "equallength" => equal_length = parse_bool(path, ln, "equalLength", v)?,
                "serieslength" | "dimensions" => {
                    let n: usize = v
                        .and_then(|s| s.parse().ok())
                        .filter(|&n| n > 0)
                        .ok_or_else(|| {
                            ts_err(
                                path,
                                ln,
                                format!("@{tag} needs a positive integer, found {v:?}"),
                            )
                        })?;
                    if tag == "dimensions" {
                        dims = Some(n);
                    } else {
                        series_length = Some(n);
                    }
                }
                "classlabel" => {
                    if !parse_bool(path, ln, "classLabel", v)? {
                        return Err(ts_err(
                            path,
                            ln,
                            "@classLabel false: only classification files are supported".into(),
                        ));
                    }
                    let names: Vec<String> = words.map(str::to_string).collect();
                    if names.is_empty() {
                        return Err(ts_err(path, ln, "@classLabel true lists no labels".into()));
                    }
                    class_names = Some(names);
                }
                "data" => {
                    if class_names.is_none() {
                        return Err(ts_err(
                            path,
                            ln,
                            "@data before any @classLabel header".into(),
                        ));
                    }
                    in_data = true;
                }
                _ => {
                    return Err(ts_err(
                        path,
                        ln,
                        format!(
                            "unknown header {:?}",
                            line.split_whitespace().next().unwrap_or(line)
                        ),
                    ))
                }
            }
            continue;
        }
        let names = class_names.as_ref().expect("checked at @data");
        let fields: Vec<&str> = line.split(':').collect();
        let (label, dim_fields) = fields.split_last().expect("split yields one field");
        let d = dim_fields.len();
        if d == 0 {
            return Err(ts_err(
                path,
                ln,
                "no dimension values before the label".into(),
            ));
        }
        let want = *dims.get_or_insert(d);
        if d != want {
            return Err(ts_err(path, ln, format!("{d} dimensions, expected {want}")));
        }
        let label = label.trim();
        let Some(class) = names.iter().position(|n| n == label) else {
            return Err(ts_err(
                path,
                ln,
                format!("class label {label:?} is not one of @classLabel {names:?}"),
            ));
        };
        let mut columns: Vec<Vec<f32>> = Vec::with_capacity(d);
        for (k, f) in dim_fields.iter().enumerate() {
            let mut col = Vec::new();
            for (j, cell) in f.split(',').enumerate() {
                let cell = cell.trim();
                let v = if cell == "?" || cell.eq_ignore_ascii_case("nan") {
                    if !missing {
                        return Err(ts_err(
                            path,
                            ln,
                            format!("dimension {}: value {} is missing ({cell:?}) but the header says @missing false", k + 1, j + 1),
                        ));
                    }
                    f32::NAN
                } else {
                    cell.parse::<f32>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| {
                            ts_err(
                                path,
                                ln,
                                format!(
                                    "dimension {}: value {} ({cell:?}) is not a finite number",
                                    k + 1,
                                    j + 1
                                ),
                            )
                        })?
                };
                col.push(v);
            }
            if let Some(first) = columns.first() {
                if col.len() != first.len() {
                    return Err(ts_err(
                        path,
                        ln,
                        format!(
                            "ragged row: dimension {} has {} values, dimension 1 has {}",
                            k + 1,
                            col.len(),
                            first.len()
                        ),
                    ));
                }
            }
            columns.push(col);
        }
        let len = columns[0].len();
        if let Some(sl) = series_length.filter(|_| equal_length) {
            if len != sl {
                return Err(ts_err(
                    path,
                    ln,
                    format!("series of {len} values, but @seriesLength is {sl}"),
                ));
            }
        }
        if equal_length {
            if let Some(&first) = out.lengths.first() {
                if len != first {
                    return Err(ts_err(
                        path,
                        ln,
                        format!("series of {len} values, earlier ones have {first} and the header says @equalLength true"),
                    ));
                }
            }
        }
        let mut series = Vec::with_capacity(len * d);
        for t in 0..len {
            series.extend(columns.iter().map(|c| c[t]));
        }
        out.series.push(series);
        out.lengths.push(len);
        out.labels.push(class as i64);
    }
    if !in_data {
        return Err(Error::Format {
            file: path.display().to_string(),
            msg: "no @data section".into(),
        });
    }
    if out.is_empty() {
        return Err(Error::Format {
            file: path.display().to_string(),
            msg: "no samples after @data".into(),
        });
    }
    out.dims = dims.expect("set by the first row");
    out.class_names = class_names.expect("checked at @data");
    Ok(out)
}

/// Numeric columns of a CSV file with a header row, chosen by name.
///
/// ```
/// let path = std::env::temp_dir().join(format!("fukai-doc-{}-series.csv", std::process::id()));
/// let csv: String = (0..20).map(|t| format!("{t},{}\n", t * 2)).collect();
/// std::fs::write(&path, format!("time,\"load\"\n{csv}")).unwrap();
/// let series = fukai::data::read_series_csv(&path, &["load"])?;
/// assert_eq!((series.rows(), series.names.clone()), (20, vec!["load".to_string()]));
/// assert_eq!(&series.values[..3], &[0.0, 2.0, 4.0]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Series {
    /// Column names, in the order asked for.
    pub names: Vec<String>,
    /// Row-major `[rows, names.len()]`.
    pub values: Vec<f32>,
}

impl Series {
    /// Number of rows (time steps).
    pub fn rows(&self) -> usize {
        self.values.len() / self.names.len().max(1)
    }
}

/// Reads the named columns (every column when `columns` is empty) of a CSV file whose first
/// row is a header (names may be quoted). Errors name the file, line and column.
///
/// ```
/// let path = std::env::temp_dir().join(format!("fukai-doc-{}-two.csv", std::process::id()));
/// let csv: String = (0..20).map(|t| format!("{t},{}\n", t * 2)).collect();
/// std::fs::write(&path, format!("time,\"load\"\n{csv}")).unwrap();
/// let series = fukai::data::read_series_csv(&path, &["load", "time"])?;
/// assert_eq!(&series.values[2..4], &[2.0, 1.0]); // row 1: load, then time
/// let err = fukai::data::read_series_csv(&path, &["price"]).unwrap_err().to_string();
/// assert!(err.contains("\"price\""), "{err}");
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn read_series_csv(path: impl AsRef<Path>, columns: &[&str]) -> Result<Series> {
    let path = path.as_ref();
    let bytes = super::read_maybe_gz(path)?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Format {
        file: path.display().to_string(),
        msg: format!("not UTF-8 text: {e}"),
    })?;
    let err = |line: usize, msg: String| ts_err(path, line, msg);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let Some((hl, header)) = lines.next() else {
        return Err(err(1, "empty file, expected a header row".into()));
    };
    let unq = |s: &str| s.trim().trim_matches('"').to_string();
    let head: Vec<String> = header.split(',').map(unq).collect();
    let all: Vec<&str> = head.iter().map(String::as_str).collect();
    let columns = if columns.is_empty() {
        &all[..]
    } else {
        columns
    };
    let mut idx = Vec::with_capacity(columns.len());
    for c in columns {
        match head.iter().position(|h| h.eq_ignore_ascii_case(c)) {
            Some(i) => idx.push(i),
            None => return Err(err(hl, format!("no column {c:?} in the header {head:?}"))),
        }
    }
    let mut values = Vec::new();
    for (ln, line) in lines {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != head.len() {
            return Err(err(
                ln,
                format!("{} columns, the header has {}", cells.len(), head.len()),
            ));
        }
        for (&i, name) in idx.iter().zip(columns) {
            let cell = unq(cells[i]);
            let v: f32 = cell
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .ok_or_else(|| {
                    err(
                        ln,
                        format!("column {name:?}: {cell:?} is not a finite number"),
                    )
                })?;
            values.push(v);
        }
    }
    if values.is_empty() {
        return Err(err(hl, "no data rows after the header".into()));
    }
    Ok(Series {
        names: columns.iter().map(|s| s.to_string()).collect(),
        values,
    })
}

/// Forecasting windows over a standardized series: input `lookback` steps of every column,
/// target the next `horizon` values of one column.
///
/// ```
/// let path = std::env::temp_dir().join(format!("fukai-doc-{}-windows.csv", std::process::id()));
/// let csv: String = (0..20).map(|t| format!("{t},{}\n", t * 2)).collect();
/// std::fs::write(&path, format!("time,\"load\"\n{csv}")).unwrap();
/// let series = fukai::data::read_series_csv(&path, &["time", "load"])?;
/// // Predict the next 2 loads from 4 steps of both columns; rows 0..15 are training data.
/// let w = fukai::data::Windows::new(&series, 1, 4, 2, 15)?;
/// assert_eq!(w.train, (0..=9).collect::<Vec<_>>());
/// let (x, y) = w.batch(&w.train[..3])?;
/// assert_eq!((x.shape(), y.shape()), (&[3, 4, 2][..], &[3, 2][..]));
/// // Targets are standardized with the training statistics; unscale undoes that.
/// let first = y.to_vec::<f32>()?[0];
/// assert!((w.unscale(first) - 8.0).abs() < 1e-4); // load at row 4
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Windows {
    /// Standardized values, `[rows, cols]`.
    pub values: Vec<f32>,
    /// Columns per step.
    pub cols: usize,
    /// Index of the predicted column.
    pub target: usize,
    /// Input steps per window.
    pub lookback: usize,
    /// Predicted steps per window.
    pub horizon: usize,
    /// Per-column mean used for standardizing (fitted on the training rows).
    pub mean: Vec<f32>,
    /// Per-column std likewise.
    pub std: Vec<f32>,
    /// Window start rows of the training windows (targets before the split row).
    pub train: Vec<usize>,
    /// Window start rows of the test windows (every target at or after the split row).
    pub test: Vec<usize>,
}

impl Windows {
    /// Splits `series` chronologically: rows before `split_row` are training data, and only they
    /// fit the standardization. Training windows have all targets before `split_row`; test
    /// windows have their first target at or after it (their inputs may reach back into train).
    pub fn new(
        series: &Series,
        target: usize,
        lookback: usize,
        horizon: usize,
        split_row: usize,
    ) -> Result<Self> {
        let (rows, cols) = (series.rows(), series.names.len());
        if target >= cols || lookback == 0 || horizon == 0 {
            bail!(
                "Windows",
                "need target < {cols} columns and positive lookback and horizon, found target {target}, lookback {lookback}, horizon {horizon}"
            );
        }
        if split_row < lookback + horizon || split_row + horizon > rows {
            bail!(
                "Windows",
                "split row {split_row} leaves no training or no test window ({rows} rows, lookback {lookback}, horizon {horizon})"
            );
        }
        let mut mean = vec![0f64; cols];
        let mut sq = vec![0f64; cols];
        for r in 0..split_row {
            for c in 0..cols {
                let v = series.values[r * cols + c] as f64;
                mean[c] += v;
                sq[c] += v * v;
            }
        }
        let n = split_row as f64;
        let std: Vec<f32> = sq
            .iter()
            .zip(&mean)
            .map(|(q, s)| ((q / n - (s / n).powi(2)).max(0.0).sqrt().max(1e-8)) as f32)
            .collect();
        let mean: Vec<f32> = mean.iter().map(|s| (s / n) as f32).collect();
        let values = series
            .values
            .chunks(cols)
            .flat_map(|row| {
                row.iter()
                    .zip(&mean)
                    .zip(&std)
                    .map(|((v, m), s)| (v - m) / s)
                    .collect::<Vec<_>>()
            })
            .collect();
        let last_start = rows - lookback - horizon;
        let train = (0..=last_start)
            .filter(|&s| s + lookback + horizon <= split_row)
            .collect();
        let test = (0..=last_start)
            .filter(|&s| s + lookback >= split_row)
            .collect();
        Ok(Windows {
            values,
            cols,
            target,
            lookback,
            horizon,
            mean,
            std,
            train,
            test,
        })
    }
    /// Windows starting at `starts`: inputs `[B, lookback, cols]` and targets `[B, horizon]`,
    /// both standardized.
    pub fn batch(&self, starts: &[usize]) -> Result<(Tensor, Tensor)> {
        let (l, h, c) = (self.lookback, self.horizon, self.cols);
        let rows = self.values.len() / c;
        if let Some(&s) = starts.iter().find(|&&s| s + l + h > rows) {
            bail!(
                "Windows::batch",
                "window start {s} runs past the {rows} rows"
            );
        }
        let mut x = Vec::with_capacity(starts.len() * l * c);
        let mut y = Vec::with_capacity(starts.len() * h);
        for &s in starts {
            x.extend_from_slice(&self.values[s * c..(s + l) * c]);
            y.extend((s + l..s + l + h).map(|r| self.values[r * c + self.target]));
        }
        Ok((
            Tensor::from_vec(x, &[starts.len(), l, c])?,
            Tensor::from_vec(y, &[starts.len(), h])?,
        ))
    }
    /// A standardized target value back in the original units.
    pub fn unscale(&self, v: f32) -> f32 {
        v * self.std[self.target] + self.mean[self.target]
    }
}
