//! Position information for sequence models: learned absolute positions (GPT-2), fixed
//! sinusoidal ones ("Attention Is All You Need") and rotary embeddings (RoPE, applied to queries
//! and keys inside attention).

use super::{join, Module, TensorKind};
use crate::bail;
use crate::error::Result;
use crate::onnx::export::{layers, Graph, Value};
use crate::tensor::{DType, Tensor};

/// Checks `x` is `[B, T, d]` with `offset + T <= max_len`; returns T.
fn check_seq(
    op: &'static str,
    x: &Tensor,
    d: usize,
    max_len: usize,
    offset: usize,
) -> Result<usize> {
    if x.rank() != 3 || x.shape()[2] != d {
        bail!(op, "input must be [B, T, {d}], found {:?}", x.shape());
    }
    let t = x.shape()[1];
    if offset + t > max_len {
        bail!(
            op,
            "positions {offset}..{} exceed the maximum length {max_len}",
            offset + t
        );
    }
    Ok(t)
}

/// A learned `[max_len, d]` table added to `[B, T, d]` inputs (position `offset + t`).
///
/// ```
/// use fukai::nn::{LearnedPositions, Module};
/// use fukai::{DType, Tensor};
/// let pos = LearnedPositions::new(16, 4)?;
/// let y = pos.forward(&Tensor::zeros(&[1, 3, 4], DType::F32)?)?;
/// assert_eq!(y.to_vec::<f32>()?, pos.weight.narrow(0, 0, 3)?.to_vec::<f32>()?);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct LearnedPositions {
    /// `[max_len, d]`, N(0, 1) like `nn.Embedding`.
    pub weight: Tensor,
}

impl LearnedPositions {
    /// A table for up to `max_len` positions of width `d`.
    pub fn new(max_len: usize, d: usize) -> Result<Self> {
        Ok(LearnedPositions {
            weight: Tensor::randn(&[max_len, d], DType::F32)?.with_grad()?,
        })
    }
    /// `x + weight[offset .. offset + T]`.
    pub fn forward_at(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let (max_len, d) = (self.weight.shape()[0], self.weight.shape()[1]);
        let t = check_seq("LearnedPositions", x, d, max_len, offset)?;
        x.add(&self.weight.narrow(0, offset, t)?)
    }
}

impl Module for LearnedPositions {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_at(x, 0)
    }
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        layers::learned_positions(g, prefix, x, &self.weight)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        f(&join(prefix, "weight"), &self.weight, TensorKind::Parameter);
    }
    fn describe(&self) -> String {
        format!(
            "LearnedPositions({}, {})",
            self.weight.shape()[0],
            self.weight.shape()[1]
        )
    }
}

/// The fixed sinusoidal table `[max_len, d]`: `sin(p / 10000^(2i/d))` in even columns and the
/// matching cosine in odd ones (`d` must be even).
///
/// ```
/// let table = fukai::nn::sinusoidal_table(10, 4)?;
/// assert_eq!(table.shape(), &[10, 4]);
/// let v = table.to_vec::<f32>()?;
/// assert!((v[4] - 1f32.sin()).abs() < 1e-6); // position 1, column 0
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn sinusoidal_table(max_len: usize, d: usize) -> Result<Tensor> {
    if !d.is_multiple_of(2) {
        bail!("sinusoidal_table", "width must be even, found {d}");
    }
    let mut v = vec![0.0f32; max_len * d];
    for p in 0..max_len {
        for i in 0..d / 2 {
            let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
            v[p * d + 2 * i] = angle.sin() as f32;
            v[p * d + 2 * i + 1] = angle.cos() as f32;
        }
    }
    Tensor::from_vec(v, &[max_len, d])
}

/// Adds the fixed sinusoidal table to `[B, T, d]` inputs; no parameters.
///
/// ```
/// use fukai::nn::{Module, SinusoidalPositions};
/// use fukai::{DType, Tensor};
/// let pos = SinusoidalPositions::new(8, 4)?;
/// let y = pos.forward(&Tensor::zeros(&[1, 2, 4], DType::F32)?)?;
/// // Position 0: sin(0) in even columns, cos(0) in odd ones.
/// assert_eq!(&y.to_vec::<f32>()?[..4], &[0.0, 1.0, 0.0, 1.0]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct SinusoidalPositions {
    table: Tensor,
}

impl SinusoidalPositions {
    /// A table for up to `max_len` positions of (even) width `d`.
    pub fn new(max_len: usize, d: usize) -> Result<Self> {
        Ok(SinusoidalPositions {
            table: sinusoidal_table(max_len, d)?,
        })
    }
    /// `x + table[offset .. offset + T]`.
    pub fn forward_at(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let (max_len, d) = (self.table.shape()[0], self.table.shape()[1]);
        let t = check_seq("SinusoidalPositions", x, d, max_len, offset)?;
        x.add(&self.table.narrow(0, offset, t)?.to_dtype(x.dtype())?)
    }
}

impl Module for SinusoidalPositions {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_at(x, 0)
    }
    fn describe(&self) -> String {
        format!("SinusoidalPositions({})", self.table.shape()[1])
    }
}

/// Rotary position embedding in the "rotate half" convention (GPT-NeoX, LLaMA in Hugging Face):
/// each head's first and second halves are rotated as pairs `(x_i, x_{i+hd/2})` by the angle
/// `p · base^(-2i/hd)`.
///
/// ```
/// use fukai::nn::Rope;
/// use fukai::{DType, Tensor};
/// let rope = Rope::new(4, 16, 10000.0)?;
/// let x = Tensor::randn(&[1, 3, 8], DType::F32)?; // two heads of width 4
/// let y = rope.apply(&x, 0)?;
/// // Position 0 is rotated by angle 0; rotations keep each pair's length.
/// assert_eq!(y.narrow(1, 0, 1)?.to_vec::<f32>()?, x.narrow(1, 0, 1)?.to_vec::<f32>()?);
/// let norm = |t: &Tensor| -> fukai::Result<f64> { t.square()?.sum_all()?.item() };
/// assert!((norm(&y)? - norm(&x)?).abs() < 1e-4);
/// # Ok::<(), fukai::Error>(())
/// ```
// Clones share the tables (tensors are reference-counted), so every layer of a model can hold
// the same one.
#[derive(Clone)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    head_dim: usize,
}

impl Rope {
    /// Tables for up to `max_len` positions, heads of (even) width `head_dim`, frequency base
    /// `base` (10000 in most models).
    pub fn new(head_dim: usize, max_len: usize, base: f64) -> Result<Self> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            bail!(
                "Rope",
                "head width must be even and positive, found {head_dim}"
            );
        }
        let inv_freq: Vec<f64> = (0..head_dim / 2)
            .map(|i| base.powf(-2.0 * i as f64 / head_dim as f64))
            .collect();
        Rope::from_inv_freq(&inv_freq, max_len)
    }
    /// Tables for heads of width `2·inv_freq.len()` whose pair `i` turns by
    /// `p · inv_freq[i]` at position `p`: the form scaled RoPE variants (linear, LLaMA 3)
    /// compute their frequencies in.
    pub fn from_inv_freq(inv_freq: &[f64], max_len: usize) -> Result<Self> {
        if inv_freq.is_empty() || inv_freq.iter().any(|f| !f.is_finite()) {
            bail!(
                "Rope",
                "inverse frequencies must be finite and at least one, found {} values",
                inv_freq.len()
            );
        }
        let half = inv_freq.len();
        let head_dim = 2 * half;
        let (mut c, mut s) = (
            vec![0.0f64; max_len * head_dim],
            vec![0.0f64; max_len * head_dim],
        );
        for p in 0..max_len {
            for (i, f) in inv_freq.iter().enumerate() {
                let a = p as f64 * f;
                for j in [i, i + half] {
                    c[p * head_dim + j] = a.cos();
                    s[p * head_dim + j] = a.sin();
                }
            }
        }
        Ok(Rope {
            cos: Tensor::from_vec(c, &[max_len, head_dim])?,
            sin: Tensor::from_vec(s, &[max_len, head_dim])?,
            head_dim,
        })
    }
    /// Rotates `x: [B, T, H·head_dim]` (heads side by side) for positions `offset..offset+T`.
    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let hd = self.head_dim;
        if x.rank() != 3 || !x.shape()[2].is_multiple_of(hd) {
            bail!(
                "Rope",
                "input must be [B, T, H*{hd}], found {:?}",
                x.shape()
            );
        }
        let (b, t, w) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        if offset + t > self.cos.shape()[0] {
            bail!(
                "Rope",
                "positions {offset}..{} exceed the table length {}",
                offset + t,
                self.cos.shape()[0]
            );
        }
        let heads = x.reshape(&[b, t, w / hd, hd])?;
        let table = |m: &Tensor| -> Result<Tensor> {
            m.narrow(0, offset, t)?
                .to_dtype(x.dtype())?
                .reshape(&[1, t, 1, hd])
        };
        let half = hd / 2;
        let rotated = Tensor::cat(
            &[
                heads.narrow(-1, half, half)?.neg()?,
                heads.narrow(-1, 0, half)?,
            ],
            -1,
        )?;
        heads
            .mul(&table(&self.cos)?)?
            .add(&rotated.mul(&table(&self.sin)?)?)?
            .reshape(&[b, t, w])
    }
    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }
}
