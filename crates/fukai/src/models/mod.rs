//! Pretrained models read from Hugging Face model directories.

pub mod bert;
pub mod kernels;
#[cfg(feature = "hf")]
pub mod sentence;

pub use bert::{mean_pool_normalized, BertConfig, BertModel};
#[cfg(feature = "hf")]
pub use sentence::SentenceEmbedder;
