//! Text for language models: tokenizers (characters; Hugging Face `tokenizer.json`) and datasets
//! of token windows.

mod char;
#[cfg(feature = "hf")]
pub mod hf;
mod windows;

pub use self::char::CharTokenizer;
pub use windows::TokenWindows;
