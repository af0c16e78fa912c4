//! Text for language models: tokenizers (characters; Hugging Face `tokenizer.json`; GGUF
//! vocabularies) and datasets of token windows.

mod char;
pub mod chat_template;
pub mod gguf_vocab;
#[cfg(feature = "hf")]
pub mod hf;
mod windows;

pub use self::char::CharTokenizer;
pub use chat_template::{ChatMessage, ChatTemplate};
pub use gguf_vocab::{byte_chars, GgufTokenizer, GgufVocab, StreamDecoder};
pub use windows::TokenWindows;
