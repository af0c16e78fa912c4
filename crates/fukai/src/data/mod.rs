//! Datasets and the batching loader: in-memory datasets, file-format readers (IDX, CSV tables,
//! image folders), per-sample transforms, and a deterministic, prefetching [`DataLoader`].

mod csv;
#[cfg(feature = "download")]
pub mod download;
mod idx;
mod images;
mod loader;
mod manifest;
mod moving_mnist;
mod tabular;
mod timeseries;
mod transforms;
mod video;

pub use csv::{read_mnist_csv, read_table, Table};
pub use idx::{read_idx, read_idx_images, read_idx_labels, IdxArray};
pub use images::read_image_folder;
pub use loader::{Batch, DataLoader};
pub use manifest::{read_manifest, Manifest, ManifestRow};
pub use moving_mnist::{MovingMnist, MovingMnistConfig};
pub use tabular::{
    mean_std, parse_csv, read_csv, Column, ColumnKind, ColumnRef, CsvOptions, Encoding, Impute,
    Layout, RawTable, Schema, TableSpec, Target, DEFAULT_MISSING, MAX_CATEGORIES, MAX_COLUMNS,
    MISSING_CATEGORY,
};
pub use timeseries::{read_series_csv, read_ts, Sequences, Series, Windows};
pub use transforms::{Normalize, RandomCrop, RandomHorizontalFlip, Transform};
pub use video::{Clips, FrameClips};

use crate::bail;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// The most bytes a `.gz` input may inflate to (1 GiB). Gzip can expand 1000-fold, so a few MB
/// file could otherwise fill the memory before its contents are checked; for larger data,
/// decompress it first. IDX files are capped by their own header instead.
pub const MAX_INFLATED_BYTES: u64 = 1 << 30;

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// A read failure: for a `.gz` file, almost always a damaged stream.
pub(crate) fn read_err(path: &Path, e: std::io::Error) -> Error {
    let gz = path.extension().is_some_and(|e| e == "gz");
    Error::Format {
        file: path.display().to_string(),
        msg: if gz {
            format!("corrupt gzip stream: {e}")
        } else {
            format!("cannot read: {e}")
        },
    }
}

/// A reader of the file's bytes, gunzipped when its name ends in `.gz`.
pub(crate) fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read>> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let file = std::io::BufReader::new(file);
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// Reads `src` to its end, refusing more than `cap` bytes. Memory grows with the bytes that
/// actually arrive, never with `cap`, so a header-derived cap cannot size an allocation.
pub(crate) fn read_capped(
    path: &Path,
    src: &mut dyn Read,
    cap: u64,
    what: &str,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    src.take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| read_err(path, e))?;
    if out.len() as u64 > cap {
        return Err(Error::Format {
            file: path.display().to_string(),
            msg: format!("more than {cap} bytes of {what}"),
        });
    }
    Ok(out)
}

/// A file's bytes, gunzipped when its name ends in `.gz` (at most [`MAX_INFLATED_BYTES`]);
/// errors name the file.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    if path.extension().is_none_or(|e| e != "gz") {
        return std::fs::read(path).map_err(|e| io_err(path, e));
    }
    let mut src = open_maybe_gz(path)?;
    read_capped(
        path,
        &mut src,
        MAX_INFLATED_BYTES,
        "decompressed data (the limit for .gz inputs; gunzip larger files first)",
    )
}

/// Class indices and names for integer labels. Labels that all lie below the number of rows keep
/// their values (`0..k` files mean what they say, with names "0".."k-1"); otherwise the distinct
/// labels seen are numbered in increasing order and named by their values. Either way the class
/// count is at most the row count, never a label's value (a label of 1e18 must not size a
/// vector).
pub(crate) fn class_indices(labels: Vec<i64>) -> (Vec<i64>, Vec<String>) {
    let rows = labels.len() as u64;
    if labels.iter().all(|&l| l >= 0 && (l as u64) < rows) {
        let n = labels.iter().max().map_or(0, |&m| m as usize + 1);
        return (labels, (0..n).map(|c| c.to_string()).collect());
    }
    let mut seen = labels.clone();
    seen.sort_unstable();
    seen.dedup();
    let y = labels
        .iter()
        .map(|l| seen.binary_search(l).expect("every label was seen") as i64)
        .collect();
    (y, seen.iter().map(i64::to_string).collect())
}

/// Class indices and names for labels as text (tables, manifests): labels that are all integers
/// keep their numeric order as in [`class_indices`]; any other labels are named by their text,
/// in sorted order.
pub(crate) fn label_classes(cells: &[&str]) -> (Vec<i64>, Vec<String>) {
    let ints: Option<Vec<i64>> = cells
        .iter()
        .map(|c| {
            c.parse::<f64>()
                .ok()
                .filter(|v| v.fract() == 0.0 && v.abs() < (1u64 << 53) as f64)
                .map(|v| v as i64)
        })
        .collect();
    if let Some(ints) = ints {
        return class_indices(ints);
    }
    let mut names: Vec<&str> = cells.to_vec();
    names.sort_unstable();
    names.dedup();
    let y = cells
        .iter()
        .map(|c| names.binary_search(c).expect("every label was seen") as i64)
        .collect();
    (y, names.into_iter().map(str::to_string).collect())
}

/// A labelled collection of fixed-shape f32 samples.
///
/// Any indexable source of fixed-shape samples can feed a [`DataLoader`]:
///
/// ```
/// use fukai::data::{DataLoader, Dataset};
/// use std::sync::Arc;
///
/// /// Sample i is the pair (i, -i), labelled by parity.
/// struct Pairs;
/// impl Dataset for Pairs {
///     fn len(&self) -> usize { 10 }
///     fn sample_shape(&self) -> &[usize] { &[2] }
///     fn get(&self, i: usize, out: &mut [f32]) -> fukai::Result<i64> {
///         out.copy_from_slice(&[i as f32, -(i as f32)]);
///         Ok(i as i64 % 2)
///     }
///     fn classes(&self) -> usize { 2 }
/// }
///
/// let loader = DataLoader::new(Arc::new(Pairs), 4);
/// let first = loader.epoch(0).next().unwrap()?;
/// assert_eq!(first.x.shape(), &[4, 2]);
/// assert_eq!(first.y.to_vec::<i64>()?, [0, 1, 0, 1]);
/// # Ok::<(), fukai::Error>(())
/// ```
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
///
/// ```
/// use fukai::data::{Dataset, InMemory};
/// // Four samples of shape [2], three classes.
/// let data = InMemory::new(vec![0., 1., 2., 3., 4., 5., 6., 7.], vec![0, 2, 1, 2], &[2], 3)?;
/// let mut out = [0f32; 2];
/// assert_eq!(data.get(2, &mut out)?, 1);
/// assert_eq!(out, [4.0, 5.0]);
/// // A split views rows of the same memory.
/// let test = data.subset(vec![3, 0])?;
/// assert_eq!((test.len(), test.label(0)), (2, 2));
/// let (mean, _std) = data.feature_stats();
/// assert_eq!(mean, [3.0, 4.0]);
/// # Ok::<(), fukai::Error>(())
/// ```
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
    /// The largest class count [`InMemory::from_tensors`] infers: labels are data, and the
    /// class count sizes per-class tables (output layers, confusion matrices) downstream.
    pub const MAX_INFERRED_CLASSES: usize = 1 << 24;

    /// A dataset from a feature tensor `x: [N, ...]` (any float dtype, converted to f32) and a
    /// label tensor `y: [N]` (i64, u32 or u8 class indices), PyTorch's
    /// `TensorDataset(x, y)`. The class count is the largest label + 1, at most
    /// [`InMemory::MAX_INFERRED_CLASSES`]; use [`InMemory::new`] to set it yourself.
    ///
    /// ```
    /// use fukai::data::{DataLoader, Dataset, InMemory};
    /// use fukai::{DType, Tensor};
    /// use std::sync::Arc;
    /// let x = Tensor::randn(&[6, 3], DType::F64)?;
    /// let y = Tensor::from_vec(vec![0i64, 1, 2, 0, 1, 2], &[6])?;
    /// let data = InMemory::from_tensors(&x, &y)?;
    /// assert_eq!((data.len(), data.classes(), data.sample_shape()), (6, 3, &[3][..]));
    /// let batch = DataLoader::new(Arc::new(data), 4).epoch(0).next().unwrap()?;
    /// assert_eq!(batch.x.dtype(), DType::F32);
    /// assert_eq!(batch.x.shape(), &[4, 3]);
    ///
    /// // Labels must match the sample count.
    /// let err = InMemory::from_tensors(&x, &Tensor::zeros(&[5], DType::I64)?).err().unwrap();
    /// assert!(err.to_string().contains("labels must be [6]"), "{err}");
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn from_tensors(x: &Tensor, y: &Tensor) -> Result<Self> {
        const OP: &str = "InMemory::from_tensors";
        if x.rank() == 0 {
            bail!(OP, "features must be [N, ...], found a scalar");
        }
        if !x.dtype().is_float() {
            bail!(
                OP,
                "features must be a float tensor, found {} (convert with to_dtype, scaling as needed)",
                x.dtype()
            );
        }
        let n = x.shape()[0];
        if x.shape()[1..].contains(&0) {
            bail!(
                OP,
                "features {:?} hold no values per sample; expected [N, ...] with non-zero sample dims",
                x.shape()
            );
        }
        if y.shape() != [n] {
            bail!(
                OP,
                "labels must be [{n}] to match features {:?}, found {:?}",
                x.shape(),
                y.shape()
            );
        }
        if !matches!(y.dtype(), DType::I64 | DType::U32 | DType::U8) {
            bail!(
                OP,
                "labels must be integer class indices (i64, u32 or u8), found {}",
                y.dtype()
            );
        }
        let labels = y.to_dtype(DType::I64)?.to_vec::<i64>()?;
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l < 0) {
            bail!(
                OP,
                "label {l} of sample {i} is negative; expected a class index"
            );
        }
        let classes = labels.iter().max().map_or(0, |&m| m as u64 + 1);
        if classes > Self::MAX_INFERRED_CLASSES as u64 {
            bail!(
                OP,
                "largest label {} implies more than {} classes; renumber the labels densely \
                 or pass the class count to InMemory::new",
                classes - 1,
                Self::MAX_INFERRED_CLASSES
            );
        }
        let features = x.to_dtype(DType::F32)?.to_vec::<f32>()?;
        InMemory::new(features, labels, &x.shape()[1..], classes as usize)
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
    /// Number of samples (also [`Dataset::len`], without importing the trait).
    pub fn len(&self) -> usize {
        Dataset::len(self)
    }
    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
/// test, so both sides keep the class balance. Returns (train rows, test rows); `test_fraction`
/// must lie in `[0, 1]`.
///
/// ```
/// let labels = [0, 0, 0, 0, 1, 1, 1, 1];
/// let (train, test) = fukai::data::stratified_split(&labels, 0.25, 7)?;
/// assert_eq!((train.len(), test.len()), (6, 2));
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn stratified_split(
    labels: &[i64],
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..=1.0).contains(&test_fraction) {
        bail!(
            "stratified_split",
            "test_fraction must lie in [0, 1], got {test_fraction}"
        );
    }
    let mut order: Vec<usize> = (0..labels.len()).collect();
    loader::shuffle(&mut order, seed);
    // Grouped by label value, not indexed by it: labels are user data.
    let mut per_class = std::collections::BTreeMap::<i64, Vec<usize>>::new();
    for &i in &order {
        per_class.entry(labels[i]).or_default().push(i);
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for rows in per_class.into_values() {
        let k = (rows.len() as f64 * test_fraction).round() as usize;
        test.extend_from_slice(&rows[..k]);
        train.extend_from_slice(&rows[k..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    Ok((train, test))
}

/// Stratified k-fold assignment: the fold (`0..k`) of each row. Rows are shuffled from `seed`,
/// then dealt to the folds class by class, so every fold keeps the class balance and fold
/// sizes differ by at most one.
///
/// ```
/// let labels = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
/// let folds = fukai::data::stratified_folds(&labels, 2, 3)?;
/// let in_first: Vec<i64> = (0..10).filter(|&i| folds[i] == 0).map(|i| labels[i]).collect();
/// assert_eq!(in_first.iter().filter(|&&l| l == 1).count(), 3);
/// assert_eq!(in_first.len(), 5);
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn stratified_folds(labels: &[i64], k: usize, seed: u64) -> Result<Vec<usize>> {
    if k < 2 || k > labels.len() {
        bail!(
            "stratified_folds",
            "k must lie in 2..={} (one row per fold at least), got {k}",
            labels.len()
        );
    }
    let mut order: Vec<usize> = (0..labels.len()).collect();
    loader::shuffle(&mut order, seed);
    let mut per_class = std::collections::BTreeMap::<i64, Vec<usize>>::new();
    for &i in &order {
        per_class.entry(labels[i]).or_default().push(i);
    }
    let mut fold = vec![0; labels.len()];
    for (n, i) in per_class.into_values().flatten().enumerate() {
        fold[i] = n % k;
    }
    Ok(fold)
}
