//! Quantized tensors in GGML's block formats (what GGUF files store): the [`GgmlType`]s,
//! [`dequantize`] to f32 (bit-exact with GGML's reference), and [`QMatrix`], whose
//! matrix–vector and matrix–matrix products run on the blocks directly with 8-bit activations
//! and integer dot products (AVX-512 VNNI or AVX2 when the CPU has them, chosen at run time).
//!
//! ```
//! use fukai::quant::{GgmlType, QMatrix};
//! // One Q8_0 block (an f16 scale of 0.5, then 32 signed bytes) per row, two rows.
//! let mut data = Vec::new();
//! for r in 0..2i8 {
//!     data.extend_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
//!     data.extend((0..32).map(|i| (i as i8 - 16 + r) as u8));
//! }
//! let w = QMatrix::new(GgmlType::Q8_0, 2, 32, data)?;
//! let y = w.matmul(&vec![1.0; 32], 1)?;
//! assert!((y[0] - 0.5 * -16.0).abs() < 0.1 && (y[1] - 0.5 * 16.0).abs() < 0.1);
//! # Ok::<(), fukai::Error>(())
//! ```

mod act;
mod blocks;
mod dequant;
mod dot;
mod matrix;
mod types;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use self::dequant::dequantize;
pub use self::matrix::{Kernel, QMatrix, SharedBytes};
pub use self::types::GgmlType;
