//! Multi-head attention (self and cross, causal and padding masks, grouped key/value heads,
//! optional rotary positions) on the fused attention kernel, with a key/value cache for
//! generation. Parameter names follow PyTorch's `nn.MultiheadAttention` (`in_proj_weight`,
//! `in_proj_bias`, `out_proj.*`), so its state dicts load as they are.

use super::position::Rope;
use super::{join, Linear, Module, TensorKind};
use crate::bail;
use crate::error::Result;
use crate::onnx::export::{transformer, Graph, Value};
use crate::ops::{attention, AttnInput, AttnOptions};
use crate::tensor::{DType, Tensor};

/// Which keys each query may see.
///
/// ```
/// use fukai::nn::{Mask, MultiHeadAttention};
/// use fukai::{DType, Tensor};
/// let attn = MultiHeadAttention::new(8, 2, 2, true)?;
/// let x = Tensor::randn(&[1, 4, 8], DType::F32)?;
/// // Two batch rows, the second with its last two keys marked as padding (nonzero).
/// let xs = Tensor::cat(&[x.clone(), x.clone()], 0)?;
/// let pad = Tensor::from_vec(vec![0u8, 0, 0, 0, 0, 0, 1, 1], &[2, 4])?;
/// let mask = Mask { key_padding: Some(pad), ..Mask::default() };
/// let y = attn.attend(&xs, None, &mask, None)?;
/// assert_eq!(y.shape(), &[2, 4, 8]);
/// // The padded row attends to fewer keys, so it differs from the unpadded one.
/// assert_ne!(y.narrow(0, 0, 1)?.to_vec::<f32>()?, y.narrow(0, 1, 1)?.to_vec::<f32>()?);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Mask {
    /// Query `i` sees keys up to its own position (cached keys included).
    pub causal: bool,
    /// `[B, S]`, nonzero where a key is padding.
    pub key_padding: Option<Tensor>,
    /// As PyTorch's `attn_mask`: a float mask added to the scores, or a u8 boolean mask that
    /// is nonzero where a query may not attend; `[Tq, S]`, `[B·heads, Tq, S]` (batch-major, as
    /// PyTorch lays it out), or anything broadcastable to `[B, heads, Tq, S]`.
    pub attn_mask: Option<Tensor>,
}

impl Mask {
    /// Causal masking only.
    pub fn causal() -> Self {
        Mask {
            causal: true,
            ..Mask::default()
        }
    }
}

/// Keys and values of the positions seen so far, `[B, S, kv_heads·head_dim]` each.
///
/// Decoding one position at a time with a cache gives what one causal pass over the whole
/// sequence gives:
///
/// ```
/// use fukai::nn::{KvCache, Mask, MultiHeadAttention};
/// use fukai::{DType, Tensor};
/// let attn = MultiHeadAttention::new(8, 2, 1, true)?;
/// let x = Tensor::randn(&[1, 3, 8], DType::F32)?;
/// let full = attn.attend(&x, None, &Mask::causal(), None)?;
/// let mut cache = KvCache::new();
/// let mut last = None;
/// for t in 0..3 {
///     last = Some(attn.attend(&x.narrow(1, t, 1)?, None, &Mask::causal(), Some(&mut cache))?);
/// }
/// assert_eq!(cache.len(), 3);
/// let diff = fukai::testing::max_abs_diff(&last.unwrap(), &full.narrow(1, 2, 1)?)?;
/// assert!(diff < 1e-5, "{diff}");
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Default)]
pub struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    /// `[B, capacity, D]` buffers that `k` and `v` are the first positions of: decoding writes
    /// each new position in place instead of copying the whole cache every step. Positions are
    /// written once, so views handed out earlier never change.
    room: Option<(Tensor, Tensor)>,
    /// What positions are stored as when no gradient is tracked (`None`: as they come).
    dtype: Option<DType>,
}

impl Clone for KvCache {
    /// The same positions; the copy gets buffers of its own on its next append (two caches
    /// writing into one buffer would overwrite each other's positions).
    fn clone(&self) -> Self {
        KvCache {
            k: self.k.clone(),
            v: self.v.clone(),
            room: None,
            dtype: self.dtype,
        }
    }
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        KvCache::default()
    }
    /// An empty cache that stores keys and values as `dtype` when no gradient is tracked:
    /// `DType::F16` halves the memory a decode step reads (llama.cpp's default), and attention
    /// computes in f32 on the exactly widened values. Training through the cache keeps the
    /// values' own dtype.
    ///
    /// ```
    /// use fukai::nn::{KvCache, Mask, MultiHeadAttention};
    /// use fukai::{DType, Tensor};
    /// let attn = MultiHeadAttention::new(8, 2, 1, true)?;
    /// let x = Tensor::randn(&[1, 3, 8], DType::F32)?;
    /// let _g = fukai::no_grad();
    /// let mut cache = KvCache::with_dtype(DType::F16);
    /// let y = attn.attend(&x, None, &Mask::causal(), Some(&mut cache))?;
    /// assert_eq!((y.dtype(), cache.len()), (DType::F32, 3));
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn with_dtype(dtype: DType) -> Self {
        KvCache {
            dtype: Some(dtype),
            ..KvCache::default()
        }
    }
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.shape()[1])
    }
    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Forgets every cached position.
    pub fn clear(&mut self) {
        *self = KvCache {
            dtype: self.dtype,
            ..KvCache::default()
        };
    }
    /// Keeps the first `len` positions (all of them if fewer are cached): a conversation that
    /// is rewritten after some point is fed again from there.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len >= self.len() {
            return Ok(());
        }
        if len == 0 {
            self.clear();
            return Ok(());
        }
        for t in [&mut self.k, &mut self.v].into_iter().flatten() {
            *t = t.narrow(1, 0, len)?.contiguous()?;
        }
        // The dropped positions may be in views handed out earlier: never write over them.
        self.room = None;
        Ok(())
    }
    fn append(&mut self, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        if Tensor::records_backward(&[&k, &v]) {
            // Training through the cache: the gradient needs the op, so concatenate.
            let (k, v) = match (&self.k, &self.v) {
                (Some(ck), Some(cv)) => (
                    Tensor::cat(&[ck.to_dtype(k.dtype())?, k], 1)?,
                    Tensor::cat(&[cv.to_dtype(v.dtype())?, v], 1)?,
                ),
                _ => (k.contiguous()?, v.contiguous()?),
            };
            self.k = Some(k.detach());
            self.v = Some(v.detach());
            self.room = None;
            return Ok((k, v));
        }
        let (k, v) = match self.dtype {
            Some(d) => (k.to_dtype(d)?, v.to_dtype(d)?),
            None => (k, v),
        };
        let (len, t) = (self.len(), k.shape()[1]);
        let fits = |b: &Tensor, x: &Tensor| {
            b.shape()[1] >= len + t
                && b.shape()[0] == x.shape()[0]
                && b.shape()[2..] == x.shape()[2..]
                && b.dtype() == x.dtype()
                && b.device() == x.device()
        };
        let room = match self.room.take() {
            Some((bk, bv)) if fits(&bk, &k) && fits(&bv, &v) => (bk, bv),
            _ => {
                // Room for 128 more positions: a regrowth copies the cache once per 128
                // decoded tokens, and the spare memory stays small.
                let cap = len + t + 128;
                let grow = |old: &Option<Tensor>, x: &Tensor| -> Result<Tensor> {
                    let mut shape = x.shape().to_vec();
                    shape[1] = cap;
                    let b = Tensor::zeros(&shape, x.dtype())?.to(x.device())?;
                    if let Some(old) = old {
                        b.narrow(1, 0, len)?.copy_from(&old.to_dtype(x.dtype())?)?;
                    }
                    Ok(b)
                };
                (grow(&self.k, &k)?, grow(&self.v, &v)?)
            }
        };
        room.0.narrow(1, len, t)?.copy_from(&k)?;
        room.1.narrow(1, len, t)?.copy_from(&v)?;
        let (k, v) = (room.0.narrow(1, 0, len + t)?, room.1.narrow(1, 0, len + t)?);
        self.k = Some(k.clone());
        self.v = Some(v.clone());
        self.room = Some(room);
        Ok((k, v))
    }
}

/// Multi-head attention with `heads` query heads and `kv_heads` key/value heads (grouped-query
/// attention when fewer) of width `d_model / heads`.
///
/// ```
/// use fukai::nn::{Mask, Module, MultiHeadAttention};
/// use fukai::{DType, Tensor};
/// let attn = MultiHeadAttention::new(16, 4, 4, true)?;
/// let x = Tensor::randn(&[2, 5, 16], DType::F32)?;
/// assert_eq!(attn.forward(&x)?.shape(), &[2, 5, 16]);
/// // Causal: changing the last position leaves the first position's output as it was.
/// let y = attn.attend(&x, None, &Mask::causal(), None)?;
/// let x2 = Tensor::cat(&[x.narrow(1, 0, 4)?, Tensor::zeros(&[2, 1, 16], DType::F32)?], 1)?;
/// let y2 = attn.attend(&x2, None, &Mask::causal(), None)?;
/// assert_eq!(y.narrow(1, 0, 1)?.to_vec::<f32>()?, y2.narrow(1, 0, 1)?.to_vec::<f32>()?);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct MultiHeadAttention {
    /// `[d + 2·kv_dim, d]`: the q, k and v projections stacked (q rows first).
    pub in_proj_weight: Tensor,
    /// `[d + 2·kv_dim]`, if any.
    pub in_proj_bias: Option<Tensor>,
    /// Output projection `d -> d`.
    pub out_proj: Linear,
    /// Rotary positions applied to q and k, if set.
    pub rope: Option<Rope>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl MultiHeadAttention {
    /// PyTorch's initialization: Xavier-uniform input projection, zero biases.
    pub fn new(d_model: usize, heads: usize, kv_heads: usize, bias: bool) -> Result<Self> {
        if heads == 0
            || !d_model.is_multiple_of(heads)
            || kv_heads == 0
            || !heads.is_multiple_of(kv_heads)
        {
            bail!(
                "MultiHeadAttention",
                "d_model {d_model} must split into {heads} heads, and heads into {kv_heads} kv heads"
            );
        }
        let head_dim = d_model / heads;
        let rows = d_model + 2 * kv_heads * head_dim;
        let bound = (6.0 / (rows + d_model) as f64).sqrt();
        let mut out_proj = Linear::new(d_model, d_model, bias)?;
        if let Some(b) = &out_proj.bias {
            out_proj.bias = Some(b.zeros_like()?.with_grad()?);
        }
        Ok(MultiHeadAttention {
            in_proj_weight: Tensor::uniform(&[rows, d_model], -bound, bound, DType::F32)?
                .with_grad()?,
            in_proj_bias: if bias {
                Some(Tensor::zeros(&[rows], DType::F32)?.with_grad()?)
            } else {
                None
            },
            out_proj,
            rope: None,
            heads,
            kv_heads,
            head_dim,
        })
    }
    /// Attention over given weights: the stacked q, k, v projection `[d + 2·kv_dim, d]` (q rows
    /// first) with its optional bias, and the output projection; the widths are checked.
    pub fn from_parts(
        heads: usize,
        kv_heads: usize,
        in_proj_weight: Tensor,
        in_proj_bias: Option<Tensor>,
        out_proj: Linear,
    ) -> Result<Self> {
        let (rows, d) = match in_proj_weight.shape() {
            &[r, d] => (r, d),
            s => bail!(
                "MultiHeadAttention",
                "in_proj_weight must be [d + 2*kv_dim, d], found {s:?}"
            ),
        };
        if heads == 0
            || !d.is_multiple_of(heads)
            || kv_heads == 0
            || !heads.is_multiple_of(kv_heads)
        {
            bail!(
                "MultiHeadAttention",
                "d_model {d} must split into {heads} heads, and heads into {kv_heads} kv heads"
            );
        }
        let head_dim = d / heads;
        let want = d + 2 * kv_heads * head_dim;
        if rows != want {
            bail!(
                "MultiHeadAttention",
                "in_proj_weight must have {want} rows for {heads} heads and {kv_heads} kv heads of width {head_dim}, found {rows}"
            );
        }
        if let Some(b) = &in_proj_bias {
            if b.shape() != [want] {
                bail!(
                    "MultiHeadAttention",
                    "in_proj_bias must be [{want}], found {:?}",
                    b.shape()
                );
            }
        }
        if out_proj.weight.shape() != [d, d] {
            bail!(
                "MultiHeadAttention",
                "out_proj.weight must be [{d}, {d}], found {:?}",
                out_proj.weight.shape()
            );
        }
        Ok(MultiHeadAttention {
            in_proj_weight,
            in_proj_bias,
            out_proj,
            rope: None,
            heads,
            kv_heads,
            head_dim,
        })
    }
    /// Adds rotary positions (tables for `max_len` positions, frequency base `base`).
    pub fn with_rope(mut self, max_len: usize, base: f64) -> Result<Self> {
        self.rope = Some(Rope::new(self.head_dim, max_len, base)?);
        Ok(self)
    }
    /// Query heads.
    pub fn heads(&self) -> usize {
        self.heads
    }
    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.kv_heads
    }
    fn d_model(&self) -> usize {
        self.heads * self.head_dim
    }
    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
    /// `x Wᵀ + b` for rows `start..start+len` of the stacked projection.
    fn project(&self, x: &Tensor, start: usize, len: usize) -> Result<Tensor> {
        if start == 0 && len == self.in_proj_weight.shape()[0] {
            return x.linear(&self.in_proj_weight, self.in_proj_bias.as_ref());
        }
        let b = match &self.in_proj_bias {
            Some(b) => Some(b.narrow(0, start, len)?),
            None => None,
        };
        x.linear(&self.in_proj_weight.narrow(0, start, len)?, b.as_ref())
    }

    /// PyTorch's 3-D `[B·heads, Tq, S]` mask as the `[B, heads, Tq, S]` the kernel broadcasts
    /// (the same memory; any other shape is left to broadcasting).
    fn per_head_mask(&self, m: &Tensor, batch: usize) -> Result<Tensor> {
        let s = m.shape();
        if m.rank() == 3 && batch > 1 && s[0] == batch * self.heads {
            m.reshape(&[batch, self.heads, s[1], s[2]])
        } else {
            Ok(m.clone())
        }
    }

    /// Attention of `x: [B, T, d]` over `memory: [B, S, d]` (cross-attention) or over itself
    /// (`memory: None`). With a `cache` (self-attention only), the new keys and values are
    /// appended to it and the queries see every cached position too.
    pub fn attend(
        &self,
        x: &Tensor,
        memory: Option<&Tensor>,
        mask: &Mask,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let d = self.d_model();
        let kvd = self.kv_dim();
        for t in std::iter::once(x).chain(memory) {
            if t.rank() != 3 || t.shape()[2] != d {
                bail!(
                    "MultiHeadAttention",
                    "inputs must be [B, T, {d}], found {:?}",
                    t.shape()
                );
            }
        }
        if memory.is_some() && cache.is_some() {
            bail!(
                "MultiHeadAttention",
                "a key/value cache is for self-attention only"
            );
        }
        let offset = cache.as_ref().map_or(0, |c| c.len());
        let opts = AttnOptions {
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            causal: mask.causal,
            scale: None,
            key_padding: mask.key_padding.clone(),
            attn_mask: match &mask.attn_mask {
                Some(m) => Some(self.per_head_mask(m, x.shape()[0])?),
                None => None,
            },
        };
        let input = |src, col| AttnInput { src, col };
        let out = match (memory, &self.rope, cache) {
            // The common case: one projection, q, k and v read in place from it.
            (None, None, None) => {
                let qkv = self.project(x, 0, d + 2 * kvd)?;
                attention(input(&qkv, 0), input(&qkv, d), input(&qkv, d + kvd), &opts)?
            }
            (Some(mem), _, None) => {
                let mut q = self.project(x, 0, d)?;
                let mut kv = self.project(mem, d, 2 * kvd)?;
                if let Some(r) = &self.rope {
                    q = r.apply(&q, 0)?;
                    let k = r.apply(&kv.narrow(-1, 0, kvd)?, 0)?;
                    kv = Tensor::cat(&[k, kv.narrow(-1, kvd, kvd)?], -1)?;
                }
                attention(input(&q, 0), input(&kv, 0), input(&kv, kvd), &opts)?
            }
            (None, _, cache) => {
                let qkv = self.project(x, 0, d + 2 * kvd)?;
                let (q, k) = (qkv.narrow(-1, 0, d)?, qkv.narrow(-1, d, kvd)?);
                let v = qkv.narrow(-1, d + kvd, kvd)?;
                self.attend_projected(q, k, v, &opts, offset, cache)?
            }
            (Some(_), _, Some(_)) => unreachable!("rejected above"),
        };
        self.out_proj.forward(&out)
    }
}

impl MultiHeadAttention {
    /// Self-attention of queries, keys and values already projected (`[B, T, d]`,
    /// `[B, T, kv_dim]` twice): rotary positions from `offset`, the cache, the kernel; the
    /// output before `out_proj`. Adapters that change the projections (LoRA) share this path,
    /// so with a zero change they give what [`MultiHeadAttention::attend`] gives, bit for bit.
    fn attend_projected(
        &self,
        mut q: Tensor,
        mut k: Tensor,
        mut v: Tensor,
        opts: &AttnOptions,
        offset: usize,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        if let Some(r) = &self.rope {
            q = r.apply(&q, offset)?;
            k = r.apply(&k, offset)?;
        }
        if let Some(c) = cache {
            (k, v) = c.append(k, v)?;
        }
        let input = |src, col| AttnInput { src, col };
        attention(input(&q, 0), input(&k, 0), input(&v, 0), opts)
    }

    /// Causal self-attention (no other mask) whose q, k and v projections and output
    /// projection are each followed by `adjust(which, input, output)` (`which` 0..4 = q, k, v,
    /// out): the hook through which an adapter adds its low-rank update.
    pub(crate) fn attend_adjusted(
        &self,
        x: &Tensor,
        cache: Option<&mut KvCache>,
        adjust: &dyn Fn(usize, &Tensor, Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let d = self.d_model();
        let kvd = self.kv_dim();
        if x.rank() != 3 || x.shape()[2] != d {
            bail!(
                "MultiHeadAttention",
                "inputs must be [B, T, {d}], found {:?}",
                x.shape()
            );
        }
        let offset = cache.as_ref().map_or(0, |c| c.len());
        let opts = AttnOptions {
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            causal: true,
            scale: None,
            key_padding: None,
            attn_mask: None,
        };
        let qkv = self.project(x, 0, d + 2 * kvd)?;
        let q = adjust(0, x, qkv.narrow(-1, 0, d)?)?;
        let k = adjust(1, x, qkv.narrow(-1, d, kvd)?)?;
        let v = adjust(2, x, qkv.narrow(-1, d + kvd, kvd)?)?;
        let out = self.attend_projected(q, k, v, &opts, offset, cache)?;
        adjust(3, &out, self.out_proj.forward(&out)?)
    }
}

impl Module for MultiHeadAttention {
    /// Unmasked self-attention.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.attend(x, None, &Mask::default(), None)
    }
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        transformer::attention(g, prefix, self, x, None)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        f(
            &join(prefix, "in_proj_weight"),
            &self.in_proj_weight,
            TensorKind::Parameter,
        );
        if let Some(b) = &self.in_proj_bias {
            f(&join(prefix, "in_proj_bias"), b, TensorKind::Parameter);
        }
        self.out_proj.visit(&join(prefix, "out_proj"), f);
    }
    fn describe(&self) -> String {
        format!(
            "MultiHeadAttention(d {}, heads {}, kv heads {})",
            self.d_model(),
            self.heads,
            self.kv_heads
        )
    }
}
