//! Numeric CSV tables: scikit-learn's dataset files (a first row "n_samples, n_features, class
//! names...") or a plain header row, features then an integer label last; and MNIST as CSV.

use crate::error::{Error, Result};
use std::path::Path;

/// A table of numeric features with integer class labels.
///
/// ```
/// let path = std::env::temp_dir().join(format!("fukai-doc-{}-table.csv", std::process::id()));
/// std::fs::write(&path, "height,weight,label\n1.5,50,0\n1.8,80,1\n1.7,65,1\n").unwrap();
/// let table = fukai::data::read_table(&path)?;
/// assert_eq!((table.features, table.y.len()), (2, 3));
/// assert_eq!(&table.x[..2], &[1.5, 50.0]);
/// assert_eq!(table.y, [0, 1, 1]);
/// assert_eq!(table.class_names, ["0", "1"]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Table {
    /// Row-major `[rows, features]`.
    pub x: Vec<f32>,
    /// One label per row.
    pub y: Vec<i64>,
    /// Columns of features.
    pub features: usize,
    /// Class names when the file gives them; else the labels' values ("0", "1", ...). Labels
    /// outside `0..rows` are renumbered densely in increasing order (see `y`).
    pub class_names: Vec<String>,
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = super::read_maybe_gz(path)?;
    String::from_utf8(bytes).map_err(|e| Error::Format {
        file: path.display().to_string(),
        msg: format!("not UTF-8 text: {e}"),
    })
}

fn parse_rows(
    path: &Path,
    lines: &[(usize, &str)],
    cols: Option<usize>,
) -> Result<(Vec<f32>, Vec<i64>, usize)> {
    let err = |line: usize, msg: String| Error::Format {
        file: path.display().to_string(),
        msg: format!("line {line}: {msg}"),
    };
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut width = cols;
    for &(ln, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let w = *width.get_or_insert(cells.len());
        if cells.len() != w || w < 2 {
            return Err(err(
                ln,
                format!(
                    "{} columns, expected {w} (features then label)",
                    cells.len()
                ),
            ));
        }
        for (c, cell) in cells[..w - 1].iter().enumerate() {
            let v: f32 = cell
                .parse()
                .map_err(|_| err(ln, format!("column {}: {cell:?} is not a number", c + 1)))?;
            if !v.is_finite() {
                return Err(err(ln, format!("column {}: {cell:?} is not finite", c + 1)));
            }
            x.push(v);
        }
        let label = cells[w - 1];
        let l: f64 = label
            .parse()
            .map_err(|_| err(ln, format!("label {label:?} is not an integer")))?;
        // Beyond 2^53 an f64 no longer holds every integer: two labels could collide.
        if l.fract() != 0.0 || l.abs() > MAX_EXACT_LABEL {
            return Err(err(
                ln,
                format!("label {label:?} is not an integer of at most 2^53 in magnitude"),
            ));
        }
        y.push(l as i64);
    }
    let w = width.unwrap_or(1);
    Ok((x, y, w - 1))
}

const MAX_EXACT_LABEL: f64 = (1u64 << 53) as f64;

/// Non-blank lines with their 1-based line numbers (for error messages).
pub(crate) fn numbered_lines(text: &str) -> Vec<(usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect()
}

/// Reads a numeric table whose last column is the class label (through the same reader and
/// schema as every table, with every feature column required to hold numbers and no cell
/// read as missing).
///
/// A header row is optional; labels that are not `0..rows` are renumbered densely:
///
/// ```
/// let path = std::env::temp_dir().join(format!("fukai-doc-{}-labels.csv", std::process::id()));
/// std::fs::write(&path, "0.5,10\n0.25,30\n0.75,10\n").unwrap();
/// let table = fukai::data::read_table(&path)?;
/// assert_eq!(table.y, [0, 1, 0]);
/// assert_eq!(table.class_names, ["10", "30"]);
/// // Errors name the file and the line.
/// std::fs::write(&path, "0.5,1\nabc,0\n").unwrap();
/// let err = fukai::data::read_table(&path).err().unwrap().to_string();
/// assert!(err.contains("labels.csv") && err.contains("line 2"), "{err}");
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn read_table(path: &Path) -> Result<Table> {
    use super::{ColumnKind, ColumnRef, TableSpec};
    let raw = super::read_csv(path, &Default::default())?;
    if raw.is_empty() {
        return Err(Error::Format {
            file: path.display().to_string(),
            msg: "empty file: no data rows".into(),
        });
    }
    let w = raw.names.len();
    let spec = TableSpec {
        kinds: (0..w.saturating_sub(1))
            .map(|c| (ColumnRef::Index(c), ColumnKind::Numeric))
            .collect(),
        missing: Vec::new(),
        standardize: false,
        ..TableSpec::default()
    };
    let layout = spec.layout(&raw)?;
    let mut x = Vec::with_capacity(layout.rows.len() * (w - 1));
    for &r in &layout.rows {
        // Checked numeric by the layout.
        x.extend((0..w - 1).map(|c| raw.cell(r, c).parse::<f64>().unwrap_or(f64::NAN) as f32));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        let (r, c) = (i / (w - 1), i % (w - 1));
        return Err(raw.err_at(layout.rows[r], c, "the value does not fit in an f32"));
    }
    Ok(Table {
        x,
        y: layout.classes,
        features: w - 1,
        class_names: layout.class_names,
    })
}

/// MNIST as CSV (784 pixel values 0-255, then the label, no header), scaled to [0, 1].
///
/// ```
/// let path = std::env::temp_dir().join(format!("fukai-doc-{}-mnist.csv", std::process::id()));
/// let row = |label: u8| format!("{}{label}\n", "255,".repeat(784));
/// std::fs::write(&path, row(7) + &row(3)).unwrap();
/// let (x, y) = fukai::data::read_mnist_csv(&path)?;
/// assert_eq!((x.len(), y), (2 * 784, vec![7, 3]));
/// assert_eq!(x[0], 1.0);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn read_mnist_csv(path: &Path) -> Result<(Vec<f32>, Vec<i64>)> {
    let text = read_text(path)?;
    let lines = numbered_lines(&text);
    let (mut x, y, features) = parse_rows(path, &lines, Some(785))?;
    debug_assert_eq!(features, 784);
    if let Some(i) = x.iter().position(|&v| !(0.0..=255.0).contains(&v)) {
        return Err(Error::Format {
            file: path.display().to_string(),
            msg: format!("line {}: pixel value {} outside 0..255", i / 784 + 1, x[i]),
        });
    }
    x.iter_mut().for_each(|v| *v /= 255.0);
    Ok((x, y))
}
