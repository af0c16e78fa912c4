//! Datasets and the batching loader: in-memory datasets, file-format readers (IDX, CSV tables,
//! image folders), per-sample transforms, and a deterministic, prefetching [`DataLoader`].

mod csv;
mod idx;
mod images;
mod loader;
mod manifest;
mod timeseries;
mod transforms;

pub use csv::{read_mnist_csv, read_table, Table};
pub use idx::{read_idx, read_idx_images, read_idx_labels, IdxArray};
pub use images::read_image_folder;
pub use loader::{Batch, DataLoader};
pub use manifest::{read_manifest, Manifest, ManifestRow};
pub use timeseries::{read_series_csv, read_ts, Sequences, Series, Windows};
pub use transforms::{Normalize, RandomCrop, RandomHorizontalFlip, Transform};

use crate::bail;
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// A file's bytes, gunzipped when its name ends in `.gz`; errors name the file.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    if path.extension().is_none_or(|e| e != "gz") {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| Error::Format {
            file: path.display().to_string(),
            msg: format!("corrupt gzip stream: {e}"),
        })?;
    Ok(out)
}

/// A labelled collection of fixed-shape f32 samples.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Shape of one sample's features (e.g. `[1, 28, 28]`).
    fn sample_shape(&self) -> &[usize];
    /// Copies sample `i`'s features into `out` (length = product of `sample_shape`) and
    /// returns its class label.
    fn get(&self, i: usize, out: &mut [f32]) -> Result<i64>;
    /// Number of classes (labels are `0..classes`).
    fn classes(&self) -> usize;
}

/// Samples held in memory: features `[N, ...shape]` and class labels, optionally viewed through
/// an index list (a split) without copying.
#[derive(Clone)]
pub struct InMemory {
    x: Arc<Vec<f32>>,
    y: Arc<Vec<i64>>,
    shape: Vec<usize>,
    classes: usize,
    rows: Option<Arc<Vec<usize>>>,
}

impl InMemory {
    /// Wraps features and labels; validates sizes and label range.
    pub fn new(x: Vec<f32>, y: Vec<i64>, shape: &[usize], classes: usize) -> Result<Self> {
        let per: usize = shape.iter().product();
        if per == 0 || x.len() != y.len() * per {
            bail!(
                "dataset",
                "{} feature values do not make {} samples of shape {shape:?}",
                x.len(),
                y.len()
            );
        }
        if let Some((i, &l)) = y
            .iter()
            .enumerate()
            .find(|(_, &l)| l < 0 || l as usize >= classes)
        {
            bail!("dataset", "label {l} of sample {i} is outside 0..{classes}");
        }
        Ok(InMemory {
            x: Arc::new(x),
            y: Arc::new(y),
            shape: shape.to_vec(),
            classes,
            rows: None,
        })
    }
    /// The samples at `rows` (indices into this dataset), sharing memory.
    pub fn subset(&self, rows: Vec<usize>) -> Result<Self> {
        let n = self.len();
        if let Some(&r) = rows.iter().find(|&&r| r >= n) {
            bail!("dataset", "subset row {r} is outside 0..{n}");
        }
        let rows = match &self.rows {
            Some(base) => rows.into_iter().map(|r| base[r]).collect(),
            None => rows,
        };
        Ok(InMemory {
            rows: Some(Arc::new(rows)),
            ..self.clone()
        })
    }
    /// Label of sample `i`.
    pub fn label(&self, i: usize) -> i64 {
        self.y[self.row(i)]
    }
    fn row(&self, i: usize) -> usize {
        self.rows.as_ref().map_or(i, |r| r[i])
    }
    /// Per-feature mean and std over these samples (for standardization fitted on train).
    pub fn feature_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let per: usize = self.shape.iter().product();
        let n = self.len().max(1) as f64;
        let mut mean = vec![0f64; per];
        let mut sq = vec![0f64; per];
        for i in 0..self.len() {
            let r = self.row(i);
            for (j, &v) in self.x[r * per..(r + 1) * per].iter().enumerate() {
                mean[j] += v as f64;
                sq[j] += (v as f64) * (v as f64);
            }
        }
        let m: Vec<f32> = mean.iter().map(|s| (s / n) as f32).collect();
        let sd = sq
            .iter()
            .zip(&mean)
            .map(|(q, s)| ((q / n - (s / n).powi(2)).max(0.0).sqrt().max(1e-8)) as f32)
            .collect();
        (m, sd)
    }
}

impl Dataset for InMemory {
    fn len(&self) -> usize {
        self.rows.as_ref().map_or(self.y.len(), |r| r.len())
    }
    fn sample_shape(&self) -> &[usize] {
        &self.shape
    }
    fn get(&self, i: usize, out: &mut [f32]) -> Result<i64> {
        if i >= self.len() {
            bail!("dataset", "sample {i} is outside 0..{}", self.len());
        }
        let per = out.len();
        let r = self.row(i);
        out.copy_from_slice(&self.x[r * per..(r + 1) * per]);
        Ok(self.y[r])
    }
    fn classes(&self) -> usize {
        self.classes
    }
}

/// A stratified split: the first `test_fraction` of each class (after a seeded shuffle) goes to
/// test, so both sides keep the class balance. Returns (train rows, test rows).
pub fn stratified_split(labels: &[i64], test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    loader::shuffle(&mut order, seed);
    let classes = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut per_class = vec![Vec::new(); classes];
    for &i in &order {
        per_class[labels[i] as usize].push(i);
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for rows in per_class {
        let k = (rows.len() as f64 * test_fraction).round() as usize;
        test.extend_from_slice(&rows[..k]);
        train.extend_from_slice(&rows[k..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}
