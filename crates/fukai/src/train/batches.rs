//! What a trainer reads: batches addressed by (epoch, index), so an epoch can restart at any
//! batch and give exactly what an uninterrupted epoch would have (the heart of exact resume).

use crate::data::{Batch, DataLoader, Sequences, Windows};
use crate::error::Result;
use crate::rng::Generator;
use crate::tensor::Tensor;
use crate::text::TokenWindows;
use std::sync::Arc;

/// A source of batches. Batch `i` of epoch `e` must depend only on `(e, i)` and the source's
/// own seed, never on what was read before.
///
/// ```
/// use fukai::data::Batch;
/// use fukai::train::Batches;
/// use fukai::Tensor;
/// /// y = 2x on batches of 4 consecutive integers.
/// struct Doubling;
/// impl Batches for Doubling {
///     fn len(&self) -> usize { 3 }
///     fn samples(&self) -> usize { 12 }
///     fn epoch(&self, _epoch: u64, start: usize) -> Box<dyn Iterator<Item = fukai::Result<Batch>> + Send + '_> {
///         Box::new((start..3).map(|i| {
///             let x: Vec<f32> = (0..4).map(|k| (4 * i + k) as f32).collect();
///             let y = x.iter().map(|v| 2.0 * v).collect();
///             Ok(Batch::new(Tensor::from_vec(x, &[4, 1])?, Tensor::from_vec(y, &[4, 1])?))
///         }))
///     }
/// }
/// let second = Doubling.epoch(0, 1).next().unwrap()?;
/// assert_eq!(second.y.to_vec::<f32>()?, [8.0, 10.0, 12.0, 14.0]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub trait Batches: Send + Sync {
    /// Batches per epoch (`usize::MAX` for an endless sampler, whose epochs the trainer's
    /// `steps_per_epoch` defines).
    fn len(&self) -> usize;
    /// True when there is nothing to read.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Samples in the set.
    fn samples(&self) -> usize;
    /// The batches of `epoch` from batch `start` on.
    fn epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send + '_>;
    /// The batches of `epoch` at positions `which` (ascending): what one rank of a
    /// data-parallel run reads. By default it walks the epoch from the first and keeps those;
    /// sources that can make any batch directly override it.
    fn select(
        &self,
        epoch: u64,
        which: Vec<usize>,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send + '_> {
        let Some(&first) = which.first() else {
            return Box::new(std::iter::empty());
        };
        let mut walk = self.epoch(epoch, first).zip(first..);
        let mut wanted = which.into_iter();
        Box::new(std::iter::from_fn(move || {
            let next = wanted.next()?;
            walk.by_ref().find(|(_, i)| *i == next).map(|(b, _)| b)
        }))
    }
    /// Classes of a classification set (sizes the confusion matrix).
    fn classes(&self) -> usize {
        0
    }
    /// Units of regression targets: RMSE is reported times this.
    fn scale(&self) -> f64 {
        1.0
    }
}

impl Batches for DataLoader {
    fn len(&self) -> usize {
        self.num_batches()
    }
    fn samples(&self) -> usize {
        self.dataset().len()
    }
    fn epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send + '_> {
        self.epoch_from(epoch, start)
    }
    fn select(
        &self,
        epoch: u64,
        which: Vec<usize>,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send + '_> {
        self.batches_at(epoch, which)
    }
    fn classes(&self) -> usize {
        self.dataset().classes()
    }
}

/// A seeded Fisher-Yates permutation of `0..n` for `epoch`.
fn permutation(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut gen = Generator::new(seed).fork(0x5e9, epoch);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = gen.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// Which items make each batch, shared by the batch sources below: `items` cut into batches of
/// `batch_size`, reshuffled every epoch when `shuffle` is set, optionally without a last batch
/// of one item (batch norm has no statistics for it).
#[derive(Clone)]
struct Order {
    items: Vec<usize>,
    batch_size: usize,
    shuffle: Option<u64>,
    drop_single: bool,
}

impl Order {
    fn new(items: Vec<usize>, batch_size: usize) -> Self {
        Order {
            items,
            batch_size: batch_size.max(1),
            shuffle: None,
            drop_single: false,
        }
    }
    fn lone(&self) -> bool {
        self.drop_single && self.items.len() % self.batch_size == 1
    }
    fn len(&self) -> usize {
        self.items.len().div_ceil(self.batch_size) - usize::from(self.lone())
    }
    /// The batches of `epoch` from batch `start` on.
    fn batches(&self, epoch: u64, start: usize) -> Vec<Vec<usize>> {
        let order: Vec<usize> = match self.shuffle {
            Some(s) => permutation(self.items.len(), s, epoch)
                .into_iter()
                .map(|i| self.items[i])
                .collect(),
            None => self.items.clone(),
        };
        order
            .chunks(self.batch_size)
            .take(self.len())
            .skip(start)
            .map(<[usize]>::to_vec)
            .collect()
    }
}

/// Padded batches of variable-length labelled sequences (e.g. a `.ts` file), with lengths.
///
/// ```
/// use fukai::data::Sequences;
/// use fukai::train::{Batches, SequenceBatches};
/// use std::sync::Arc;
/// let s = Sequences { series: vec![vec![1.0, 2.0], vec![3.0]], lengths: vec![2, 1], labels: vec![0, 1], dims: 1, class_names: vec!["a".into(), "b".into()] };
/// let b = SequenceBatches::new(Arc::new(s), vec![0, 1], 2);
/// let batch = b.epoch(0, 0).next().unwrap()?;
/// assert_eq!(batch.x.shape(), &[2, 2, 1]);
/// assert_eq!(batch.lengths, Some(vec![2, 1]));
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone)]
pub struct SequenceBatches {
    data: Arc<Sequences>,
    order: Order,
}

impl SequenceBatches {
    /// Batches of `rows` of `data` in order.
    pub fn new(data: Arc<Sequences>, rows: Vec<usize>, batch_size: usize) -> Self {
        SequenceBatches {
            data,
            order: Order::new(rows, batch_size),
        }
    }
    /// Reshuffles the rows every epoch from `seed`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.order.shuffle = Some(seed);
        self
    }
}

impl Batches for SequenceBatches {
    fn len(&self) -> usize {
        self.order.len()
    }
    fn samples(&self) -> usize {
        self.order.items.len()
    }
    fn epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send + '_> {
        let parts = self.order.batches(epoch, start);
        Box::new(parts.into_iter().map(move |rows| {
            let (x, lengths, y) = self.data.batch(&rows)?;
            let mut b = Batch::new(x, y);
            b.lengths = Some(lengths);
            Ok(b)
        }))
    }
    fn classes(&self) -> usize {
        self.data.class_names.len()
    }
}

/// Forecasting windows; each batch carries the naive forecast (the last input value of the
/// target column, repeated) as its baseline.
///
/// ```
/// use fukai::data::{Series, Windows};
/// use fukai::train::{Batches, WindowBatches};
/// use std::sync::Arc;
/// let series = Series { names: vec!["v".into()], values: (0..30).map(|v| v as f32).collect() };
/// let w = Windows::new(&series, 0, 5, 1, 24)?; // 5 steps in, 1 out; rows from 24 on are test
/// let train = WindowBatches::new(Arc::new(w.clone()), w.train.clone(), 8).shuffle(0);
/// let b = train.epoch(0, 0).next().unwrap()?;
/// assert_eq!((b.x.shape(), b.y.shape()), (&[8, 5, 1][..], &[8, 1][..]));
/// assert_eq!(b.baseline.unwrap().shape(), &[8, 1]);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone)]
pub struct WindowBatches {
    data: Arc<Windows>,
    order: Order,
}

impl WindowBatches {
    /// Batches of the windows starting at `starts`, in order.
    pub fn new(data: Arc<Windows>, starts: Vec<usize>, batch_size: usize) -> Self {
        WindowBatches {
            data,
            order: Order::new(starts, batch_size),
        }
    }
    /// Reshuffles the windows every epoch from `seed`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.order.shuffle = Some(seed);
        self
    }
}

impl Batches for WindowBatches {
    fn len(&self) -> usize {
        self.order.len()
    }
    fn samples(&self) -> usize {
        self.order.items.len()
    }
    fn epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send + '_> {
        let parts = self.order.batches(epoch, start);
        let w = &self.data;
        Box::new(parts.into_iter().map(move |starts| {
            let (x, y) = w.batch(&starts)?;
            let last: Vec<f32> = starts
                .iter()
                .flat_map(|&s| {
                    let v = w.values[(s + w.lookback - 1) * w.cols + w.target];
                    std::iter::repeat_n(v, w.horizon)
                })
                .collect();
            let mut b = Batch::new(x, y);
            b.baseline = Some(Tensor::from_vec(last, &[starts.len(), w.horizon])?);
            Ok(b)
        }))
    }
    fn scale(&self) -> f64 {
        self.data.std[self.data.target] as f64
    }
}

/// Targets of an encoded table: class indices, or standardized values (regression).
#[derive(Clone, Debug, PartialEq)]
pub enum TableTargets {
    /// One class index per row, below `classes`.
    Classes {
        /// The indices.
        y: Vec<i64>,
        /// Class count.
        classes: usize,
    },
    /// One value per row, in units of `scale`; the baseline is 0 (the training mean).
    Values {
        /// The standardized values.
        y: Vec<f32>,
        /// The target's standard deviation (RMSE is reported in the target's units).
        scale: f64,
    },
}

/// Rows of an encoded table (`[rows, width]` values, e.g. from
/// [`Schema::encode_rows`](crate::data::Schema::encode_rows)). Regression batches carry the
/// predict-the-training-mean baseline.
///
/// ```
/// use fukai::train::{Batches, TableBatches, TableTargets};
/// use std::sync::Arc;
/// let x = Arc::new(vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]);
/// let y = Arc::new(TableTargets::Values { y: vec![-1.0, 0.0, 1.0], scale: 10.0 });
/// let b = TableBatches::new(x, 2, y, vec![2, 0], 8).epoch(0, 0).next().unwrap()?;
/// assert_eq!(b.x.to_vec::<f32>()?, [4.0, 5.0, 0.0, 1.0]);
/// assert_eq!((b.y.shape(), b.baseline.unwrap().to_vec::<f32>()?), (&[2, 1][..], vec![0.0, 0.0]));
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone)]
pub struct TableBatches {
    x: Arc<Vec<f32>>,
    width: usize,
    y: Arc<TableTargets>,
    order: Order,
}

impl TableBatches {
    /// Batches of `rows` (indices into `x` and `y`) in order.
    pub fn new(
        x: Arc<Vec<f32>>,
        width: usize,
        y: Arc<TableTargets>,
        rows: Vec<usize>,
        batch_size: usize,
    ) -> Self {
        TableBatches {
            x,
            width,
            y,
            order: Order::new(rows, batch_size),
        }
    }
    /// Reshuffles the rows every epoch from `seed`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.order.shuffle = Some(seed);
        self
    }
    /// Drops a last batch of one row (batch norm has no statistics for it).
    pub fn drop_single_last(mut self, on: bool) -> Self {
        self.order.drop_single = on;
        self
    }
}

impl Batches for TableBatches {
    fn len(&self) -> usize {
        self.order.len()
    }
    fn samples(&self) -> usize {
        self.order.items.len()
    }
    fn epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send + '_> {
        let parts = self.order.batches(epoch, start);
        let w = self.width;
        Box::new(parts.into_iter().map(move |rows| {
            let n = rows.len();
            let x: Vec<f32> = rows
                .iter()
                .flat_map(|&r| self.x[r * w..(r + 1) * w].iter().copied())
                .collect();
            let x = Tensor::from_vec(x, &[n, w])?;
            Ok(match &*self.y {
                TableTargets::Classes { y, .. } => Batch::new(
                    x,
                    Tensor::from_vec(rows.iter().map(|&r| y[r]).collect(), &[n])?,
                ),
                TableTargets::Values { y, .. } => {
                    let t = Tensor::from_vec(rows.iter().map(|&r| y[r]).collect(), &[n, 1])?;
                    let mut b = Batch::new(x, t);
                    b.baseline = Some(Tensor::from_vec(vec![0f32; n], &[n, 1])?);
                    b
                }
            })
        }))
    }
    fn classes(&self) -> usize {
        match &*self.y {
            TableTargets::Classes { classes, .. } => *classes,
            TableTargets::Values { .. } => 0,
        }
    }
    fn scale(&self) -> f64 {
        match &*self.y {
            TableTargets::Values { scale, .. } => *scale,
            TableTargets::Classes { .. } => 1.0,
        }
    }
}

/// Next-token windows of a token stream: random windows (an endless sampler) for training,
/// or a fixed list for evaluation.
///
/// ```
/// use fukai::text::TokenWindows;
/// use fukai::train::{Batches, TokenBatches};
/// let w = TokenWindows::new((0..100).collect(), 8)?;
/// let train = TokenBatches::random(w.clone(), 4, 0, 50);
/// let a = train.epoch(1, 3).next().unwrap()?;
/// let b = train.epoch(1, 3).next().unwrap()?; // addressed, not streamed: same batch again
/// assert_eq!(a.x.to_vec::<i64>()?, b.x.to_vec::<i64>()?);
/// assert_eq!(a.x.shape(), &[4, 8]);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone)]
pub struct TokenBatches {
    data: Arc<TokenWindows>,
    batch_size: usize,
    source: Source,
}

#[derive(Clone)]
enum Source {
    /// Batch `g` (counted over the whole run) draws its windows from the counter-based stream
    /// of `seed` at offset `g * batch_size`.
    Random {
        seed: u64,
        per_epoch: usize,
    },
    Fixed(Order),
}

impl TokenBatches {
    /// An endless sampler of `batch_size` windows drawn uniformly with replacement; epochs are
    /// `per_epoch` batches long.
    pub fn random(data: TokenWindows, batch_size: usize, seed: u64, per_epoch: usize) -> Self {
        TokenBatches {
            data: Arc::new(data),
            batch_size,
            source: Source::Random {
                seed,
                per_epoch: per_epoch.max(1),
            },
        }
    }
    /// The windows starting at `starts`, in order.
    pub fn fixed(data: TokenWindows, starts: Vec<usize>, batch_size: usize) -> Self {
        TokenBatches {
            data: Arc::new(data),
            batch_size,
            source: Source::Fixed(Order::new(starts, batch_size)),
        }
    }
    /// The token windows.
    pub fn windows(&self) -> &TokenWindows {
        &self.data
    }
}

impl Batches for TokenBatches {
    fn len(&self) -> usize {
        match &self.source {
            Source::Random { .. } => usize::MAX,
            Source::Fixed(o) => o.len(),
        }
    }
    fn samples(&self) -> usize {
        match &self.source {
            Source::Random { .. } => self.data.len(),
            Source::Fixed(o) => o.items.len(),
        }
    }
    fn epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send + '_> {
        let bs = self.batch_size;
        match &self.source {
            Source::Random { seed, per_epoch } => {
                let (seed, per_epoch) = (*seed, *per_epoch as u64);
                Box::new((start as u64..).map(move |i| {
                    let g = epoch * per_epoch + i;
                    let mut gen = Generator::from_state(seed, g * bs as u64);
                    let (x, y) = self.data.sample(bs, &mut gen)?;
                    Ok(Batch::new(x, y))
                }))
            }
            Source::Fixed(order) => {
                Box::new(order.batches(epoch, start).into_iter().map(move |s| {
                    let (x, y) = self.data.batch(&s)?;
                    Ok(Batch::new(x, y))
                }))
            }
        }
    }
}

/// Video prediction batches: the first `input` frames of each clip are the input
/// `[B, input, C, H, W]`, the rest the target `[B, T - input, C, H, W]`, and the baseline is the
/// last input frame held still ("copy the last frame").
///
/// ```
/// use fukai::data::{MovingMnist, MovingMnistConfig};
/// use fukai::train::{Batches, ClipBatches};
/// use std::sync::Arc;
/// let cfg = MovingMnistConfig { clips: 6, frames: 4, size: 32, ..Default::default() };
/// let clips = Arc::new(MovingMnist::new(vec![1.0; 28 * 28], cfg)?);
/// let b = ClipBatches::new(clips, (0..6).collect(), 4, 3)?.epoch(0, 0).next().unwrap()?;
/// assert_eq!((b.x.shape(), b.y.shape()), (&[4, 3, 1, 32, 32][..], &[4, 1, 1, 32, 32][..]));
/// assert_eq!(b.baseline.unwrap().shape(), &[4, 1, 1, 32, 32]);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone)]
pub struct ClipBatches {
    clips: Arc<dyn crate::data::Clips>,
    input: usize,
    order: Order,
}

impl ClipBatches {
    /// Batches of the clips at `rows`, in order; `input` frames in, the rest predicted.
    pub fn new(
        clips: Arc<dyn crate::data::Clips>,
        rows: Vec<usize>,
        batch_size: usize,
        input: usize,
    ) -> Result<Self> {
        if input == 0 || input >= clips.frames() {
            crate::bail!(
                "ClipBatches",
                "input frames must be at least 1 and fewer than the clip's {} frames, found {input}",
                clips.frames()
            );
        }
        if let Some(&r) = rows.iter().find(|&&r| r >= clips.len()) {
            crate::bail!("ClipBatches", "clip {r} of {}", clips.len());
        }
        Ok(ClipBatches {
            clips,
            input,
            order: Order::new(rows, batch_size),
        })
    }
    /// Reshuffles the clips every epoch from `seed`.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.order.shuffle = Some(seed);
        self
    }
    /// The clips read.
    pub fn clips(&self) -> &Arc<dyn crate::data::Clips> {
        &self.clips
    }

    fn batch(&self, rows: &[usize]) -> Result<Batch> {
        let c = &self.clips;
        let [ch, h, w] = c.frame_shape();
        let (frame, t) = (ch * h * w, c.frames());
        let (tin, tout) = (self.input, t - self.input);
        let mut clip = vec![0f32; t * frame];
        let mut x = Vec::with_capacity(rows.len() * tin * frame);
        let mut y = Vec::with_capacity(rows.len() * tout * frame);
        let mut base = Vec::with_capacity(rows.len() * tout * frame);
        for &r in rows {
            c.clip(r, &mut clip)?;
            x.extend_from_slice(&clip[..tin * frame]);
            y.extend_from_slice(&clip[tin * frame..]);
            for _ in 0..tout {
                base.extend_from_slice(&clip[(tin - 1) * frame..tin * frame]);
            }
        }
        let b = rows.len();
        let mut batch = Batch::new(
            Tensor::from_vec(x, &[b, tin, ch, h, w])?,
            Tensor::from_vec(y, &[b, tout, ch, h, w])?,
        );
        batch.baseline = Some(Tensor::from_vec(base, &[b, tout, ch, h, w])?);
        Ok(batch)
    }
}

impl Batches for ClipBatches {
    fn len(&self) -> usize {
        self.order.len()
    }
    fn samples(&self) -> usize {
        self.order.items.len()
    }
    fn epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send + '_> {
        let parts = self.order.batches(epoch, start);
        Box::new(parts.into_iter().map(move |rows| self.batch(&rows)))
    }
}

/// Autoencoder batches: another source's inputs as both input and target (labels dropped).
pub struct Autoencoding(pub Box<dyn Batches>);

impl Autoencoding {
    fn map(b: Result<Batch>) -> Result<Batch> {
        let b = b?;
        Ok(Batch::new(b.x.clone(), b.x))
    }
}

impl Batches for Autoencoding {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn samples(&self) -> usize {
        self.0.samples()
    }
    fn epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send + '_> {
        Box::new(self.0.epoch(epoch, start).map(Autoencoding::map))
    }
    fn select(
        &self,
        epoch: u64,
        which: Vec<usize>,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + Send + '_> {
        Box::new(self.0.select(epoch, which).map(Autoencoding::map))
    }
}
