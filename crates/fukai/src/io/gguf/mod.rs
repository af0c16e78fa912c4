//! GGUF, the file format of llama.cpp and GGML: a little-endian header (magic `GGUF`, version
//! 2 or 3, tensor and metadata counts), typed metadata key–value pairs (architecture,
//! hyperparameters, the tokenizer's vocabulary, the chat template), one info per tensor (name,
//! dimensions, [`GgmlType`], offset), then the tensor data, each tensor aligned to
//! `general.alignment` (32 by default) from the start of the data section.
//!
//! [`GgufFile::open`] memory-maps the file, so opening a multi-gigabyte model reads only its
//! header; tensor data is paged in when [`GgufFile::tensor_bytes`] (raw blocks, for the
//! quantized kernels of [`crate::quant`]) or [`GgufFile::tensor_f32`] (dequantized) touches it.
//!
//! ```no_run
//! let f = fukai::io::GgufFile::open("SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let layers = f.get_u32("llama.block_count")?;
//! let embed = f.tensor_f32("token_embd.weight")?; // [vocab, dim]
//! # Ok::<(), fukai::Error>(())
//! ```

mod parse;
mod value;

pub use self::value::{GgufValue, GgufValueType};
use crate::error::{Error, Result};
use crate::quant::{self, GgmlType, QMatrix, SharedBytes};
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// One tensor's entry in the header.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name, e.g. `"blk.0.attn_q.weight"`.
    pub name: String,
    /// Row-major (PyTorch) order: GGUF's dimensions reversed, so a `[out, in]` weight matrix
    /// has `in` (GGUF's first, fastest-varying dimension) last.
    pub shape: Vec<usize>,
    /// How the values are stored.
    pub ggml_type: GgmlType,
    /// Byte offset of the data from the start of the data section.
    pub offset: u64,
    /// Bytes of data.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A parsed GGUF file: the header in memory, the tensor data mapped (or owned).
pub struct GgufFile {
    source: String,
    bytes: SharedBytes,
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    keys: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    names: HashMap<String, usize>,
    alignment: u64,
    data_start: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("source", &self.source)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Opens and parses the GGUF file at `path`, memory-mapping it (reading it whole on targets
    /// without memory maps, such as wasm32). The file must not be modified while it is open.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let source = path.display().to_string();
        let io_err = |source_err| Error::Io {
            path: source.clone(),
            source: source_err,
        };
        #[cfg(not(target_arch = "wasm32"))]
        let bytes: SharedBytes = {
            let file = std::fs::File::open(path).map_err(io_err)?;
            // SAFETY: the map is read-only; as documented, the file must not change while open
            // (the same contract every mmap-based model loader has).
            Arc::new(unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?)
        };
        #[cfg(target_arch = "wasm32")]
        let bytes: SharedBytes = Arc::new(std::fs::read(path).map_err(io_err)?);
        GgufFile::parse(source, bytes)
    }

    /// Parses a GGUF file held in memory; `source` names it in errors.
    pub fn from_bytes(source: impl Into<String>, bytes: Vec<u8>) -> Result<GgufFile> {
        GgufFile::parse(source.into(), Arc::new(bytes))
    }

    fn parse(source: String, bytes: SharedBytes) -> Result<GgufFile> {
        let h = parse::header((*bytes).as_ref()).map_err(|msg| Error::Format {
            file: source.clone(),
            msg,
        })?;
        let keys = h
            .metadata
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        let names = h
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            source,
            bytes,
            version: h.version,
            metadata: h.metadata,
            keys,
            tensors: h.tensors,
            names,
            alignment: h.alignment,
            data_start: h.data_start,
        })
    }

    /// The file (or buffer name) this was read from.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// Every metadata pair, in file order.
    pub fn metadata(&self) -> &[(String, GgufValue)] {
        &self.metadata
    }
    /// The tensor data alignment (`general.alignment`, 32 when absent).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// Byte offset of the data section in the file.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }
    /// Every tensor's info, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    /// The metadata value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.keys.get(key).map(|&i| &self.metadata[i].1)
    }
    /// The info of tensor `name`, if present.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.names.get(name).map(|&i| &self.tensors[i])
    }

    fn err(&self, msg: String) -> Error {
        Error::Format {
            file: self.source.clone(),
            msg,
        }
    }
    fn require(&self, key: &str) -> Result<&GgufValue> {
        self.get(key)
            .ok_or_else(|| self.err(format!("no metadata key {key:?}")))
    }
    fn wrong(&self, key: &str, expected: &str, v: &GgufValue) -> Error {
        self.err(format!(
            "metadata {key:?}: expected {expected}, found {} {v}",
            v.type_name()
        ))
    }
    fn integer<T: TryFrom<i128>>(&self, key: &str, expected: &str) -> Result<T> {
        let v = self.require(key)?;
        v.as_integer()
            .and_then(|i| T::try_from(i).ok())
            .ok_or_else(|| self.wrong(key, expected, v))
    }
    /// Metadata `key` as a u32: any integer type whose value fits.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.integer(key, "an integer in u32 range")
    }
    /// Metadata `key` as a u64: any integer type whose value fits.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.integer(key, "an integer in u64 range")
    }
    /// Metadata `key` as an i64: any integer type whose value fits.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.integer(key, "an integer in i64 range")
    }
    /// Metadata `key` as an f32: an f32, or an f64 (rounded).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        v.as_float()
            .map(|f| f as f32)
            .ok_or_else(|| self.wrong(key, "f32", v))
    }
    /// Metadata `key` as a bool.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            GgufValue::Bool(b) => Ok(*b),
            v => Err(self.wrong(key, "bool", v)),
        }
    }
    /// Metadata `key` as a string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| self.wrong(key, "string", v))
    }
    fn array(&self, key: &str, elem: GgufValueType) -> Result<&[GgufValue]> {
        match self.require(key)? {
            GgufValue::Array(t, items) if *t == elem => Ok(items),
            v => Err(self.wrong(key, &format!("array of {elem}"), v)),
        }
    }
    fn array_of<'a, T>(
        &'a self,
        key: &str,
        elem: GgufValueType,
        item: impl Fn(&'a GgufValue) -> Option<T>,
    ) -> Result<Vec<T>> {
        Ok(self.array(key, elem)?.iter().filter_map(item).collect())
    }
    /// Metadata `key` as an array of strings (a vocabulary, merges).
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.array_of(key, GgufValueType::String, GgufValue::as_str)
    }
    /// Metadata `key` as an array of i32 (token types).
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.array_of(key, GgufValueType::I32, |v| match v {
            GgufValue::I32(i) => Some(*i),
            _ => None,
        })
    }
    /// Metadata `key` as an array of f32 (SentencePiece token scores).
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.array_of(key, GgufValueType::F32, |v| match v {
            GgufValue::F32(f) => Some(*f),
            _ => None,
        })
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor_info(name).ok_or_else(|| {
            self.err(format!(
                "no tensor named {name:?} ({} tensors in file)",
                self.tensors.len()
            ))
        })
    }
    fn range(&self, t: &TensorInfo) -> std::ops::Range<usize> {
        // The header check proved data_start + offset + n_bytes <= file length (a usize).
        let start = (self.data_start + t.offset) as usize;
        start..start + t.n_bytes as usize
    }
    /// The raw stored bytes of tensor `name` (blocks of its [`GgmlType`]).
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let t = self.info(name)?;
        Ok(&(*self.bytes).as_ref()[self.range(t)])
    }
    /// Tensor `name` converted to f32, in row-major shape [`TensorInfo::shape`]. Errors for
    /// types fukai cannot dequantize ([`GgmlType::can_dequantize`]).
    pub fn tensor_f32(&self, name: &str) -> Result<Tensor> {
        let t = self.info(name)?;
        let bytes = &(*self.bytes).as_ref()[self.range(t)];
        let values = quant::dequantize(t.ggml_type, bytes, t.numel())
            .map_err(|e| self.err(format!("tensor {name:?}: {e}")))?;
        Tensor::from_vec(values, &t.shape)
    }
    /// Tensor `name` as a quantized matrix `[rows, cols]` for [`QMatrix::matmul`], sharing
    /// this file's bytes (no copy). A tensor of more than two dimensions is viewed with every
    /// leading dimension folded into the rows.
    pub fn qmatrix(&self, name: &str) -> Result<QMatrix> {
        let t = self.info(name)?;
        let cols = t.shape.last().copied().unwrap_or(1);
        let rows = t.shape.iter().rev().skip(1).product();
        QMatrix::from_shared(t.ggml_type, rows, cols, self.bytes.clone(), self.range(t))
            .map_err(|e| self.err(format!("tensor {name:?}: {e}")))
    }
}
