//! Text for language models: tokenizers and datasets of token windows.

mod char;
mod windows;

pub use self::char::CharTokenizer;
pub use windows::TokenWindows;
