//! Training: one loop for every model. A [`Trainer`] takes a [`Model`](crate::models::Model)
//! and a [`TrainConfig`], reads [`Batches`] (a [`DataLoader`](crate::data::DataLoader),
//! [`SequenceBatches`], [`WindowBatches`], [`TokenBatches`] or your own), validates after every
//! epoch, keeps the best model, stops early or on divergence, and writes checkpoints a run
//! resumes from bit for bit. [`Hook`]s observe it: [`Progress`], [`Curves`], [`MetricsJsonl`]
//! and [`SummaryJson`] are what `fukai train` uses to fill a run directory.

mod batches;
mod config;
mod exchange;
mod hooks;
mod metrics;
#[cfg(feature = "report")]
mod report;
mod trainer;

pub use batches::{
    Autoencoding, Batches, ClipBatches, SequenceBatches, TableBatches, TableTargets, TokenBatches,
    WindowBatches,
};
pub use config::TrainConfig;
pub use hooks::{
    summary, DataParallel, FitInfo, FitReport, Hook, MetricsJsonl, StepInfo, Stop, SummaryJson,
};
pub use metrics::{EpochMetrics, Evaluation};
#[cfg(feature = "report")]
pub use report::{curves, register_font, Curves, Progress};
pub(crate) use trainer::differences;
pub use trainer::{evaluate, loss, Trainer};
