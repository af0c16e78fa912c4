//! Reading and writing tensors to files: the safetensors format (what PyTorch / Hugging Face
//! checkpoints use), written atomically so a crash never leaves a half-written file behind, and
//! reading GGUF (llama.cpp's format for quantized models, [`gguf`]).
//!
//! ```no_run
//! use fukai::{io, DType, Tensor};
//! let w = Tensor::randn(&[3, 2], DType::F32)?;
//! io::save_safetensors("model.safetensors", &[("w".to_string(), w)], None)?;
//! let file = io::load_safetensors("model.safetensors")?;
//! assert_eq!(file.tensor("w")?.shape(), &[3, 2]);
//! # Ok::<(), fukai::Error>(())
//! ```

mod atomic;
pub mod checkpoint;
pub mod gguf;
mod safetensors;

pub(crate) use self::atomic::remove_stale_temps;
pub use self::atomic::{link_atomic, write_atomic};
pub use self::gguf::GgufFile;
pub use self::safetensors::{
    load_safetensors, parse_safetensors, save_safetensors, serialize_safetensors, SafetensorsFile,
};
