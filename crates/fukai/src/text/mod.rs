//! Text: tokenizers that turn strings into token ids.

#[cfg(feature = "hf")]
pub mod hf;
