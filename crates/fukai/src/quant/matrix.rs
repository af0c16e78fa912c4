//! [`QMatrix`]: a weight matrix kept in its GGML blocks, multiplied without dequantizing.
//! Activations are quantized to 8 bits per block (`act.rs`), each output is one row's dot
//! product computed start to end by one thread (`dot.rs`), and tasks are fixed chunks of rows,
//! so the result is the same bits at any thread count and on every [`Kernel`].

use super::act::{quantize_x256, Act32, Q8x256};
use super::dot::{self, IntDot, Portable};
use super::GgmlType;
use crate::bail;
use crate::error::Result;
use crate::parallel;
use crate::tensor::Tensor;
use std::ops::Range;
use std::sync::Arc;

/// Bytes a [`QMatrix`] reads its blocks from, shared (a GGUF file's memory map, or a buffer).
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Rows per task: outputs are independent, so this sets only the grain of the parallel work.
const ROWS_PER_TASK: usize = 16;

/// Below this many weight bytes touched (times tokens) a product stays on the calling thread.
const PAR_MIN_BYTES: usize = 1 << 16;

/// The instruction set the integer dot products run on. Every kernel gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, any CPU.
    Portable,
    /// x86-64 AVX2.
    Avx2,
    /// x86-64 AVX-512 VNNI (with AVX-512VL and AVX2).
    Avx512Vnni,
}

impl Kernel {
    /// Every kernel this CPU can run, slowest first.
    pub fn available() -> Vec<Kernel> {
        // Only x86 pushes more.
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut k = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                k.push(Kernel::Avx2);
                if std::arch::is_x86_feature_detected!("avx512vnni")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                {
                    k.push(Kernel::Avx512Vnni);
                }
            }
        }
        k
    }
    /// The fastest kernel this CPU can run.
    pub fn best() -> Kernel {
        *Kernel::available()
            .last()
            .expect("portable is always available")
    }
}

/// A `[rows, cols]` matrix of GGML blocks (each row a whole number of blocks), as stored in a
/// GGUF file: row r holds output r's weights, as in a `Linear` layer's `[out, in]` weight.
#[derive(Clone)]
pub struct QMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    bytes: SharedBytes,
    range: Range<usize>,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMatrix({} [{}, {}])", self.ty, self.rows, self.cols)
    }
}

/// Activations quantized as a type's dot product wants them, `per_row` blocks per token.
enum Xq {
    B32(Act32, usize),
    B256(Vec<Q8x256>, usize),
}

impl QMatrix {
    /// True when [`QMatrix::matmul`] can multiply weights of type `ty`.
    pub fn supports(ty: GgmlType) -> bool {
        use GgmlType::*;
        matches!(
            ty,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2_K | Q3_K | Q4_K | Q5_K | Q6_K
        )
    }

    /// A matrix over `data` (exactly `rows · cols` values of `ty`).
    pub fn new(ty: GgmlType, rows: usize, cols: usize, data: Vec<u8>) -> Result<QMatrix> {
        let len = data.len();
        QMatrix::from_shared(ty, rows, cols, Arc::new(data), 0..len)
    }

    /// A matrix over `bytes[range]`, shared with its owner (no copy).
    pub fn from_shared(
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: SharedBytes,
        range: Range<usize>,
    ) -> Result<QMatrix> {
        if !QMatrix::supports(ty) {
            bail!(
                "QMatrix",
                "no quantized matmul for {ty} (supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, \
                 Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)"
            );
        }
        if !cols.is_multiple_of(ty.block_size()) {
            bail!(
                "QMatrix",
                "{cols} columns are not a whole number of {ty} blocks of {}",
                ty.block_size()
            );
        }
        let want = (cols / ty.block_size())
            .checked_mul(ty.type_size())
            .and_then(|r| r.checked_mul(rows));
        let have = (*bytes).as_ref().get(range.clone()).map(<[u8]>::len);
        if want.is_none() || want != have {
            bail!(
                "QMatrix",
                "[{rows}, {cols}] of {ty} takes {want:?} bytes, the data has {have:?} (range \
                 {range:?})"
            );
        }
        Ok(QMatrix {
            ty,
            rows,
            cols,
            bytes,
            range,
        })
    }

    /// The block type.
    pub fn ggml_type(&self) -> GgmlType {
        self.ty
    }
    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// The raw blocks, row after row.
    pub fn bytes(&self) -> &[u8] {
        &(*self.bytes).as_ref()[self.range.clone()]
    }
    fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_size() * self.ty.type_size()
    }

    /// Rows `r` of the matrix, sharing its bytes (no copy).
    pub fn rows_range(&self, r: Range<usize>) -> Result<QMatrix> {
        if r.start > r.end || r.end > self.rows {
            bail!(
                "QMatrix::rows_range",
                "rows {r:?} are outside the matrix's {} rows",
                self.rows
            );
        }
        let rb = self.row_bytes();
        let start = self.range.start + r.start * rb;
        QMatrix::from_shared(
            self.ty,
            r.end - r.start,
            self.cols,
            self.bytes.clone(),
            start..start + (r.end - r.start) * rb,
        )
    }

    /// A new matrix of the given rows, in that order (the blocks copied, never requantized).
    pub fn select_rows(&self, rows: &[usize]) -> Result<QMatrix> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.rows) {
            bail!(
                "QMatrix::select_rows",
                "row {bad} is outside the matrix's {} rows",
                self.rows
            );
        }
        let (rb, w) = (self.row_bytes(), self.bytes());
        let mut data = Vec::with_capacity(rows.len() * rb);
        for &r in rows {
            data.extend_from_slice(&w[r * rb..(r + 1) * rb]);
        }
        QMatrix::new(self.ty, rows.len(), self.cols, data)
    }

    /// The matrices' rows one after another (one block type and width for all).
    pub fn cat_rows(parts: &[QMatrix]) -> Result<QMatrix> {
        let Some(first) = parts.first() else {
            bail!("QMatrix::cat_rows", "no matrices to stack");
        };
        if let Some(p) = parts
            .iter()
            .find(|p| p.ty != first.ty || p.cols != first.cols)
        {
            bail!(
                "QMatrix::cat_rows",
                "every matrix must be {} with {} columns, found {} with {}",
                first.ty,
                first.cols,
                p.ty,
                p.cols
            );
        }
        let data: Vec<u8> = parts
            .iter()
            .flat_map(|p| p.bytes().iter().copied())
            .collect();
        QMatrix::new(
            first.ty,
            parts.iter().map(|p| p.rows).sum(),
            first.cols,
            data,
        )
    }

    /// Rows `ids` dequantized, `[ids.len(), cols]` row-major: an embedding lookup that reads
    /// only the rows it needs.
    pub fn dequantize_rows(&self, ids: &[usize]) -> Result<Vec<f32>> {
        let rb = self.row_bytes();
        let mut out = Vec::with_capacity(ids.len() * self.cols);
        for &r in ids {
            if r >= self.rows {
                bail!(
                    "QMatrix::dequantize_rows",
                    "row {r} is outside the matrix's {} rows",
                    self.rows
                );
            }
            let row = &self.bytes()[r * rb..(r + 1) * rb];
            out.extend(super::dequantize(self.ty, row, self.cols)?);
        }
        Ok(out)
    }

    /// Every value dequantized, `[rows, cols]` row-major (in parallel, fixed chunks of rows).
    pub fn to_f32(&self) -> Vec<f32> {
        let rb = self.row_bytes();
        let w = self.bytes();
        let chunk = ROWS_PER_TASK * 16;
        let parts = parallel::map_range_if(
            self.rows * rb >= PAR_MIN_BYTES,
            self.rows.div_ceil(chunk),
            |t| {
                let (r0, r1) = (t * chunk, ((t + 1) * chunk).min(self.rows));
                // from_shared checked the type and the byte count, so this cannot fail.
                super::dequantize(self.ty, &w[r0 * rb..r1 * rb], (r1 - r0) * self.cols)
                    .expect("a QMatrix's blocks dequantize")
            },
        );
        parts.concat()
    }

    /// The matrix dequantized to an f32 tensor `[rows, cols]`.
    pub fn dequantize(&self) -> Result<Tensor> {
        let v = super::dequantize(self.ty, self.bytes(), self.rows * self.cols)?;
        Tensor::from_vec(v, &[self.rows, self.cols])
    }

    /// `y = x Wᵀ` for `n` tokens: `x` is `[n, cols]` row-major, the result `[n, rows]`.
    pub fn matmul(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        self.matmul_with(Kernel::best(), x, n)
    }

    /// [`QMatrix::matmul`] of a tensor `[..., cols]`, giving `[..., rows]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let shape = x.shape();
        if shape.last() != Some(&self.cols) {
            bail!(
                "QMatrix::forward",
                "input shape {shape:?} must end in the matrix's {} columns",
                self.cols
            );
        }
        let n = shape[..shape.len() - 1].iter().product();
        let y = self.matmul(&x.to_vec::<f32>()?, n)?;
        let mut out = shape.to_vec();
        *out.last_mut().expect("shape ends in cols") = self.rows;
        Tensor::from_vec(y, &out)
    }

    /// [`QMatrix::matmul`] on a chosen kernel (which this CPU must have:
    /// [`Kernel::available`]); for tests and benchmarks comparing them.
    pub fn matmul_with(&self, kernel: Kernel, x: &[f32], n: usize) -> Result<Vec<f32>> {
        if x.len() != n.saturating_mul(self.cols) {
            bail!(
                "QMatrix::matmul",
                "input has {} values, expected {n} tokens × {} columns",
                x.len(),
                self.cols
            );
        }
        if !Kernel::available().contains(&kernel) {
            bail!(
                "QMatrix::matmul",
                "this CPU cannot run the {kernel:?} kernel"
            );
        }
        // Compiled with AVX2 where there is one, the rounding is an instruction, not a libm
        // call per value.
        let xq = crate::simd::run(
            #[inline(always)]
            || {
                if self.ty.block_size() == 256 {
                    Xq::B256(quantize_x256(x), self.cols / 256)
                } else {
                    Xq::B32(Act32::new(x), self.cols / 32)
                }
            },
        );
        let rb = self.row_bytes();
        let w = self.bytes();
        let parallel = rb * self.rows * n >= PAR_MIN_BYTES;
        // Each task writes its rows for every token into its own piece of `[rows, n]`, which
        // is already the `[n, rows]` output for one token (a decode step).
        let mut by_row = vec![0f32; self.rows * n];
        parallel::for_each_chunk_mut_if(parallel, &mut by_row, ROWS_PER_TASK * n, |t, out| {
            let r0 = t * ROWS_PER_TASK;
            let r1 = (r0 + ROWS_PER_TASK).min(self.rows);
            rows(kernel, self.ty, &w[r0 * rb..r1 * rb], rb, &xq, n, out);
        });
        if n <= 1 {
            return Ok(by_row);
        }
        let mut y = vec![0f32; n * self.rows];
        for (r, row) in by_row.chunks_exact(n).enumerate() {
            for (tok, &v) in row.iter().enumerate() {
                y[tok * self.rows + r] = v;
            }
        }
        Ok(y)
    }
}

/// Output `out[r·n + t]` = row r of `w` · token t, on `kernel`.
fn rows(kernel: Kernel, ty: GgmlType, w: &[u8], rb: usize, x: &Xq, n: usize, out: &mut [f32]) {
    match kernel {
        Kernel::Portable => rows_on::<Portable>(ty, w, rb, x, n, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: matmul_with admits only kernels Kernel::available found on this CPU.
        Kernel::Avx2 => unsafe { rows_avx2(ty, w, rb, x, n, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Kernel::Avx512Vnni => unsafe { rows_vnni(ty, w, rb, x, n, out) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable kernel is available off x86-64"),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx,f16c,sse4.2,ssse3")]
unsafe fn rows_avx2(ty: GgmlType, w: &[u8], rb: usize, x: &Xq, n: usize, out: &mut [f32]) {
    rows_on::<super::x86::Avx2>(ty, w, rb, x, n, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512vnni,avx512vl,avx512bw,avx512f,avx2,avx,f16c,sse4.2,ssse3")]
unsafe fn rows_vnni(ty: GgmlType, w: &[u8], rb: usize, x: &Xq, n: usize, out: &mut [f32]) {
    rows_on::<super::x86::Vnni>(ty, w, rb, x, n, out)
}

#[inline(always)]
fn rows_on<D: IntDot>(ty: GgmlType, w: &[u8], rb: usize, x: &Xq, n: usize, out: &mut [f32]) {
    use GgmlType::*;
    // Each arm passes the dot product as its own fn item (not a shared fn pointer), so it is
    // inlined into the caller's `#[target_feature]` body together with the intrinsics.
    match (x, ty) {
        (Xq::B32(x, per), Q4_0) => each32(w, rb, x, *per, n, out, dot::q4_0::<D>),
        (Xq::B32(x, per), Q4_1) => each32(w, rb, x, *per, n, out, dot::q4_1::<D>),
        (Xq::B32(x, per), Q5_0) => each32(w, rb, x, *per, n, out, dot::q5_0::<D>),
        (Xq::B32(x, per), Q5_1) => each32(w, rb, x, *per, n, out, dot::q5_1::<D>),
        (Xq::B32(x, per), Q8_0) => each32(w, rb, x, *per, n, out, dot::q8_0::<D>),
        (Xq::B256(x, per), Q2_K) => each(w, rb, x, *per, n, out, dot::q2_k),
        (Xq::B256(x, per), Q3_K) => each(w, rb, x, *per, n, out, dot::q3_k),
        (Xq::B256(x, per), Q4_K) => each(w, rb, x, *per, n, out, dot::q4_k),
        (Xq::B256(x, per), Q5_K) => each(w, rb, x, *per, n, out, dot::q5_k),
        (Xq::B256(x, per), Q6_K) => each(w, rb, x, *per, n, out, dot::q6_k),
        _ => unreachable!("QMatrix::from_shared admits only supported types"),
    }
}

#[inline(always)]
fn each32(
    w: &[u8],
    rb: usize,
    x: &Act32,
    per: usize,
    n: usize,
    out: &mut [f32],
    f: impl Fn(&[u8], dot::X32) -> f32,
) {
    for (wr, o) in w.chunks_exact(rb).zip(out.chunks_exact_mut(n.max(1))) {
        for (t, o) in o.iter_mut().enumerate().take(n) {
            *o = f(wr, x.token(t, per));
        }
    }
}

#[inline(always)]
fn each<X>(
    w: &[u8],
    rb: usize,
    x: &[X],
    per: usize,
    n: usize,
    out: &mut [f32],
    f: impl Fn(&[u8], &[X]) -> f32,
) {
    for (wr, o) in w.chunks_exact(rb).zip(out.chunks_exact_mut(n.max(1))) {
        for (t, o) in o.iter_mut().enumerate().take(n) {
            *o = f(wr, &x[t * per..(t + 1) * per]);
        }
    }
}
