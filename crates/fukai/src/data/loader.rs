//! Batching with a seeded shuffle, drop_last, transforms and background prefetch. The batch
//! order and contents depend only on (seed, epoch), never on timing.

use super::{Dataset, Transform};
use crate::bail;
use crate::error::Result;
use crate::rng::Generator;
use crate::tensor::Tensor;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// The text of a caught panic's payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// One batch: inputs `[B, ...]` and targets (class labels `[B]` as i64, or values).
///
/// ```
/// use fukai::data::{DataLoader, InMemory};
/// use std::sync::Arc;
/// let data = InMemory::new((0..10).map(|v| v as f32).collect(), vec![0, 1, 0, 1, 1], &[2], 2)?;
/// let batches: Vec<_> = DataLoader::new(Arc::new(data), 2).epoch(0).collect::<Result<_, _>>()?;
/// assert_eq!(batches.len(), 3); // the last batch keeps the leftover sample
/// assert_eq!(batches[2].x.to_vec::<f32>()?, [8.0, 9.0]);
/// assert_eq!(batches[2].y.to_vec::<i64>()?, [1]);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone)]
pub struct Batch {
    /// Inputs.
    pub x: Tensor,
    /// Targets.
    pub y: Tensor,
    /// Valid steps of each row of a padded sequence batch `[B, T, F]`.
    pub lengths: Option<Vec<usize>>,
    /// A reference prediction, shaped like the model's output, that evaluation compares the
    /// model with (forecasting: the naive "same as the last step" forecast).
    pub baseline: Option<Tensor>,
}

impl Batch {
    /// The batch with its tensors on `device` (itself, cheaply, when they are there already).
    pub fn to(&self, device: crate::Device) -> Result<Batch> {
        Ok(Batch {
            x: self.x.to(device)?,
            y: self.y.to(device)?,
            lengths: self.lengths.clone(),
            baseline: self.baseline.as_ref().map(|b| b.to(device)).transpose()?,
        })
    }
    /// Inputs and targets, no lengths, no baseline.
    pub fn new(x: Tensor, y: Tensor) -> Self {
        Batch {
            x,
            y,
            lengths: None,
            baseline: None,
        }
    }
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.x.shape().first().copied().unwrap_or(0)
    }
    /// True for a batch of no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Fisher-Yates shuffle driven by the counter-based generator.
pub(crate) fn shuffle(v: &mut [usize], seed: u64) {
    let mut g = Generator::new(seed);
    for i in (1..v.len()).rev() {
        let j = g.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// Iterates a dataset in batches.
///
/// ```
/// use fukai::data::{DataLoader, InMemory};
/// use std::sync::Arc;
/// let data = InMemory::new((0..100).map(|v| v as f32).collect(), vec![0; 100], &[1], 1)?;
/// let loader = DataLoader::new(Arc::new(data), 32).shuffle(7).drop_last(true);
/// assert_eq!(loader.num_batches(), 3);
/// let firsts = |epoch| -> fukai::Result<Vec<f32>> {
///     let batch = loader.epoch(epoch).next().unwrap()?;
///     batch.x.to_vec::<f32>()
/// };
/// // The order depends only on the seed and the epoch.
/// assert_eq!(firsts(0)?, firsts(0)?);
/// assert_ne!(firsts(0)?, firsts(1)?);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone)]
pub struct DataLoader {
    data: Arc<dyn Dataset>,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    seed: u64,
    prefetch: usize,
    transforms: Arc<Vec<Box<dyn Transform>>>,
}

impl DataLoader {
    /// A loader with batch size `batch_size`, no shuffle, keeping the last partial batch.
    pub fn new(data: Arc<dyn Dataset>, batch_size: usize) -> Self {
        DataLoader {
            data,
            batch_size: batch_size.max(1),
            shuffle: false,
            drop_last: false,
            seed: 0,
            prefetch: 2,
            transforms: Arc::new(Vec::new()),
        }
    }
    /// Reshuffles every epoch from `seed` (epoch e uses a stream derived from seed and e).
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.shuffle = true;
        self.seed = seed;
        self
    }
    /// Drops the last batch when it is smaller than `batch_size`.
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = on;
        self
    }
    /// Batches prepared ahead on a background thread (0 = build batches on the caller).
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n;
        self
    }
    /// Per-sample transforms, applied in order.
    pub fn transforms(mut self, t: Vec<Box<dyn Transform>>) -> Self {
        self.transforms = Arc::new(t);
        self
    }
    /// The dataset.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.data
    }
    /// Samples per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let n = self.data.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.data.len()).collect();
        if self.shuffle {
            shuffle(
                &mut idx,
                self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
        }
        idx
    }

    fn make_batch(&self, rows: &[usize], epoch: u64) -> Result<Batch> {
        let shape = self.data.sample_shape().to_vec();
        let per: usize = shape.iter().product();
        let mut x = vec![0f32; rows.len() * per];
        let mut y = Vec::with_capacity(rows.len());
        for (k, &r) in rows.iter().enumerate() {
            let out = &mut x[k * per..(k + 1) * per];
            // A panic in user code (a Dataset or Transform) becomes this batch's error: on the
            // prefetch thread it would otherwise end the epoch early and silently.
            let sample = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<i64> {
                let label = self.data.get(r, out)?;
                if !self.transforms.is_empty() {
                    let mut g = Generator::new(self.seed ^ 0x5EED).fork(epoch, r as u64);
                    for t in self.transforms.iter() {
                        t.apply(out, &shape, &mut g);
                    }
                }
                Ok(label)
            }));
            match sample {
                Ok(label) => y.push(label?),
                Err(panic) => bail!(
                    "DataLoader",
                    "sample {r}: the dataset or a transform panicked: {}",
                    panic_message(&*panic)
                ),
            }
        }
        let mut bshape = vec![rows.len()];
        bshape.extend_from_slice(&shape);
        Ok(Batch::new(
            Tensor::from_vec(x, &bshape)?,
            Tensor::from_vec(y, &[rows.len()])?,
        ))
    }

    /// The batches of epoch `epoch` (0-based).
    pub fn epoch(&self, epoch: u64) -> Box<dyn Iterator<Item = Result<Batch>> + Send> {
        self.epoch_from(epoch, 0)
    }

    /// The batches of epoch `epoch` from batch `start` on: what a run resumed mid-epoch reads,
    /// the same batches an uninterrupted epoch would have given from there.
    pub fn epoch_from(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send> {
        self.batches_at(epoch, (start..self.num_batches()).collect())
    }

    /// The batches of epoch `epoch` at positions `which` (in that order; positions past the
    /// epoch's end are skipped): one rank's share of a data-parallel epoch.
    pub fn batches_at(
        &self,
        epoch: u64,
        which: Vec<usize>,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send> {
        let order = self.order(epoch);
        let bs = self.batch_size;
        let total = self.num_batches();
        let chunks: Vec<Vec<usize>> = which
            .into_iter()
            .filter(|&b| b < total)
            .map(|b| order[b * bs..((b + 1) * bs).min(order.len())].to_vec())
            .collect();
        #[cfg(feature = "threads")]
        if self.prefetch > 0 {
            let nb = chunks.len();
            let (tx, rx) = std::sync::mpsc::sync_channel(self.prefetch);
            let me = self.clone();
            std::thread::spawn(move || {
                for rows in chunks {
                    // The receiver hung up (loop ended early): stop quietly.
                    if tx.send(me.make_batch(&rows, epoch)).is_err() {
                        return;
                    }
                }
            });
            // Should the worker die anyway, the epoch reports it instead of ending short.
            let mut left = nb;
            return Box::new(std::iter::from_fn(move || match rx.recv() {
                Ok(b) => {
                    left -= 1;
                    Some(b)
                }
                Err(_) if left > 0 => {
                    let missing = std::mem::take(&mut left);
                    Some(Err(crate::error::op_err(
                        "DataLoader",
                        format!(
                            "the prefetch thread stopped with {missing} batches of the epoch left"
                        ),
                    )))
                }
                Err(_) => None,
            }));
        }
        let me = self.clone();
        Box::new(
            chunks
                .into_iter()
                .map(move |rows| me.make_batch(&rows, epoch)),
        )
    }
}
