//! Tensors over quantized memory: a [`QMatrix`] (GGML blocks, e.g. a GGUF file's weights)
//! behind an ordinary f32 tensor handle. `linear` and `embedding` compute on the blocks, so a
//! quantized model runs in its file's size; every other op reads the dequantized values
//! (made once, on first use), so the tensor works anywhere an f32 tensor does.

use super::{Layout, Storage, Tensor};
use crate::quant::QMatrix;
use std::sync::Arc;

impl Tensor {
    /// An f32 tensor `[rows, cols]` whose memory is the quantized matrix `q` (not copied, not
    /// dequantized until an op other than `linear` or `embedding` reads it).
    ///
    /// ```
    /// use fukai::quant::{GgmlType, QMatrix};
    /// use fukai::Tensor;
    /// let mut data = Vec::new();
    /// for _ in 0..2 {
    ///     data.extend_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
    ///     data.extend([2u8; 32]); // 32 signed bytes of value 2: weights of 1.0
    /// }
    /// let w = Tensor::from_qmatrix(QMatrix::new(GgmlType::Q8_0, 2, 32, data)?);
    /// assert_eq!(w.shape(), &[2, 32]);
    /// let y = Tensor::ones(&[1, 32], fukai::DType::F32)?.linear(&w, None)?;
    /// assert_eq!(y.to_vec::<f32>()?, [32.0, 32.0]);
    /// assert_eq!(w.sum_all()?.item()?, 64.0); // any other op sees the f32 values
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn from_qmatrix(q: QMatrix) -> Tensor {
        let layout = Layout::contiguous(&[q.rows(), q.cols()]);
        Tensor::from_parts(Arc::new(Storage::quantized(q)), layout)
    }

    /// The quantized rows this tensor views, when its memory is a [`QMatrix`] and it is a
    /// contiguous run of whole rows of it (the matrix, or a `narrow` along dim 0).
    pub fn qmatrix(&self) -> Option<QMatrix> {
        let q = self.storage().qmatrix()?;
        let l = self.layout();
        if l.shape().len() != 2 || l.shape()[1] != q.cols() || !l.is_contiguous() {
            return None;
        }
        if !l.offset().is_multiple_of(q.cols()) {
            return None;
        }
        let r0 = l.offset() / q.cols();
        if r0 == 0 && l.shape()[0] == q.rows() {
            return Some(q);
        }
        q.rows_range(r0..r0 + l.shape()[0]).ok()
    }
}
