//! Manifests: a CSV with a header naming at least a `file` column (paths relative to the
//! manifest's folder, or absolute) and a `label` column, and optionally a `split` column
//! (`train` / `test` / anything else). Other columns are ignored. Every problem is reported with
//! the manifest's name and the 1-based line: a row with the wrong number of cells, an empty
//! field, a file that does not exist, a file that cannot be decoded.

use super::InMemory;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One manifest row.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("fukai-doc-{}-manifest", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// for (name, text) in [("a.txt", "1 2"), ("b.txt", "3 4"), ("c.txt", "5 6")] {
///     std::fs::write(dir.join(name), text).unwrap();
/// }
/// let path = dir.join("manifest.csv");
/// std::fs::write(&path, "file,label,split\na.txt,cat,train\nb.txt,dog,train\nc.txt,cat,test\n").unwrap();
/// let manifest = fukai::data::read_manifest(&path)?;
/// let row = &manifest.rows[1];
/// assert_eq!((row.line, row.label, row.split.as_str()), (3, 1, "train"));
/// assert_eq!(row.file, dir.join("b.txt"));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestRow {
    /// 1-based line in the manifest.
    pub line: usize,
    /// The file, resolved against the manifest's folder.
    pub file: PathBuf,
    /// Class index into [`Manifest::class_names`].
    pub label: i64,
    /// The `split` cell (empty when the manifest has no such column).
    pub split: String,
}

/// A parsed manifest.
///
/// ```
/// use fukai::data::Dataset;
/// let dir = std::env::temp_dir().join(format!("fukai-doc-{}-manifest", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// for (name, text) in [("a.txt", "1 2"), ("b.txt", "3 4"), ("c.txt", "5 6")] {
///     std::fs::write(dir.join(name), text).unwrap();
/// }
/// let path = dir.join("manifest.csv");
/// std::fs::write(&path, "file,label,split\na.txt,cat,train\nb.txt,dog,train\nc.txt,cat,test\n").unwrap();
/// let manifest = fukai::data::read_manifest(&path)?;
/// assert_eq!(manifest.class_names, ["cat", "dog"]);
/// // Each file becomes a sample through a feature function of your choice.
/// let parse = |p: &std::path::Path| -> fukai::Result<Vec<f32>> {
///     let text = std::fs::read_to_string(p).unwrap();
///     Ok(text.split(' ').map(|v| v.parse().unwrap()).collect())
/// };
/// let train = manifest.load(&manifest.rows_in(Some("train")), &[2], &parse)?;
/// assert_eq!((train.len(), train.label(1)), (2, 1));
/// let mut x = [0f32; 2];
/// train.get(1, &mut x)?;
/// assert_eq!(x, [3.0, 4.0]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// Rows in file order.
    pub rows: Vec<ManifestRow>,
    /// Label names: `0..=max` when every label is an integer in `0..rows`, else the distinct
    /// labels sorted (numerically when all are integers).
    pub class_names: Vec<String>,
    /// Whether the manifest has a `split` column.
    pub has_split: bool,
}

/// Reads a manifest and checks that every file it names exists.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("fukai-doc-{}-missing", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("manifest.csv");
/// std::fs::write(&path, "file,label\nclip.wav,0\n").unwrap();
/// // Every named file must exist; the error names the manifest line and the file.
/// let err = fukai::data::read_manifest(&path).err().unwrap().to_string();
/// assert!(err.contains("line 2") && err.contains("clip.wav"), "{err}");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let csv = super::read_csv(
        path,
        &super::CsvOptions {
            delimiter: None,
            header: Some(true),
        },
    )?;
    let at = |line: u64, msg: String| Error::Format {
        file: csv.file.clone(),
        msg: format!("line {line}: {msg}"),
    };
    let head = &csv.names;
    if head.is_empty() {
        return Err(Error::Format {
            file: csv.file.clone(),
            msg: "empty manifest: expected a header with `file` and `label` columns".into(),
        });
    }
    let col = |want: &[&str]| head.iter().position(|h| want.contains(&h.as_str()));
    let (Some(fc), Some(lc)) = (col(&["file", "path"]), col(&["label"])) else {
        return Err(at(
            1,
            format!("header {head:?} needs a `file` (or `path`) column and a `label` column"),
        ));
    };
    let sc = col(&["split"]);
    let base = path.parent().unwrap_or(Path::new("."));
    let mut raw = Vec::new();
    for r in 0..csv.len() {
        let ln = csv.lines[r];
        let (f, label) = (csv.cell(r, fc), csv.cell(r, lc));
        if f.is_empty() || label.is_empty() {
            return Err(at(ln, "empty file or label".into()));
        }
        let file = base.join(f);
        if !file.is_file() {
            return Err(at(
                ln,
                format!("file {f:?} not found (looked for {})", file.display()),
            ));
        }
        let split = sc.map(|s| csv.cell(r, s).to_string()).unwrap_or_default();
        raw.push((ln as usize, file, split));
    }
    let labels: Vec<&str> = (0..csv.len()).map(|r| csv.cell(r, lc)).collect();
    let (labels, class_names) = super::label_classes(&labels);
    let rows = raw
        .into_iter()
        .zip(labels)
        .map(|((line, file, split), label)| ManifestRow {
            line,
            file,
            label,
            split,
        })
        .collect();
    Ok(Manifest {
        path: path.to_path_buf(),
        rows,
        class_names,
        has_split: sc.is_some(),
    })
}

impl Manifest {
    /// The rows whose split is `split` (all rows for `None`).
    pub fn rows_in(&self, split: Option<&str>) -> Vec<&ManifestRow> {
        self.rows
            .iter()
            .filter(|r| split.is_none_or(|s| r.split == s))
            .collect()
    }

    /// Loads `rows` into memory through `features` (file -> values of `shape`); a failure names
    /// the manifest line and the file.
    pub fn load(
        &self,
        rows: &[&ManifestRow],
        shape: &[usize],
        features: &(dyn Fn(&Path) -> Result<Vec<f32>> + Sync),
    ) -> Result<InMemory> {
        let per: usize = shape.iter().product();
        let name = self.path.display().to_string();
        // Files decode independently, so the parallel map gives the same values at any
        // thread count; errors are reported for the first failing row in file order.
        let feats = crate::parallel::map_range(rows.len(), |i| features(&rows[i].file));
        let mut x = Vec::with_capacity(rows.len() * per);
        let mut y = Vec::with_capacity(rows.len());
        for (r, f) in rows.iter().zip(feats) {
            let f = f.map_err(|e| Error::Format {
                file: name.clone(),
                msg: format!("line {}: {e}", r.line),
            })?;
            if f.len() != per {
                return Err(Error::Format {
                    file: name.clone(),
                    msg: format!(
                        "line {}: {} gave {} feature values, expected {per} ({shape:?})",
                        r.line,
                        r.file.display(),
                        f.len()
                    ),
                });
            }
            x.extend_from_slice(&f);
            y.push(r.label);
        }
        InMemory::new(x, y, shape, self.class_names.len().max(1))
    }
}
