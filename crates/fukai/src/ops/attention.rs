//! Fused scaled-dot-product attention. Queries, keys and values are read in place from column
//! ranges of `[B, T, W]` projections (a fused qkv projection is one source used three times), the
//! scale, the causal/padding/additive masks and the softmax are applied in one pass over each
//! score row, and the output is written straight into `[B, Tq, H·hd]`: no head split, no
//! transposes, no mask tensors and no separate softmax buffers. Backward writes every source's
//! gradient into one buffer per distinct source.

use super::attention_kernel::{add_weighted_rows, rows_times_cols, whole_blocks, KvElem, Mat};
use super::float::{with_contig, wrap, Float};
use super::lanes::lane_dot;
use super::matmul::SendPtr as Ptr;
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::tensor::{DType, Storage, StorageSlice, Tensor};
use std::sync::Arc;

/// One of q, k, v: the `[B, T, W]` tensor it is read from and its first column. Head `h` of it
/// occupies columns `col + h·head_dim .. col + (h+1)·head_dim`.
#[derive(Clone, Copy)]
pub struct AttnInput<'a> {
    /// `[B, T, W]` source.
    pub src: &'a Tensor,
    /// First column of head 0.
    pub col: usize,
}

/// Shape and masking of one attention call.
#[derive(Clone, Debug)]
pub struct AttnOptions {
    /// Query heads `H`.
    pub heads: usize,
    /// Key/value heads (divides `heads`; fewer is grouped-query attention).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Query `i` sees keys `j <= i + (S - Tq)` only (so a cached prefix stays visible).
    pub causal: bool,
    /// Multiplies the scores; `None` is `1/sqrt(head_dim)`.
    pub scale: Option<f64>,
    /// `[B, S]`, nonzero where a key is padding (never attended to).
    pub key_padding: Option<Tensor>,
    /// Broadcastable to `[B, H, Tq, S]` (e.g. `[Tq, S]`): a float mask is added to the scores
    /// (-inf hides a key); a u8 boolean mask hides the keys where it is nonzero (PyTorch's
    /// `True` = may not attend).
    pub attn_mask: Option<Tensor>,
}

impl AttnOptions {
    /// `heads` heads of width `head_dim`, no masks.
    pub fn new(heads: usize, head_dim: usize) -> Self {
        AttnOptions {
            heads,
            kv_heads: heads,
            head_dim,
            causal: false,
            scale: None,
            key_padding: None,
            attn_mask: None,
        }
    }
}

/// Geometry shared by forward and backward.
#[derive(Clone, Copy)]
struct Geo {
    b: usize,
    tq: usize,
    s: usize,
    h: usize,
    hkv: usize,
    hd: usize,
    // Row widths and first columns of the q, k, v sources.
    w: [usize; 3],
    col: [usize; 3],
    scale: f64,
    causal: bool,
}

impl Geo {
    fn q_at(&self, b: usize, h: usize) -> usize {
        b * self.tq * self.w[0] + self.col[0] + h * self.hd
    }
    fn kv_at(&self, which: usize, b: usize, g: usize) -> usize {
        b * self.s * self.w[which] + self.col[which] + g * self.hd
    }
    fn out_at(&self, b: usize, h: usize) -> usize {
        b * self.tq * self.h * self.hd + h * self.hd
    }
    fn probs_at(&self, b: usize, h: usize) -> usize {
        (b * self.h + h) * self.tq * self.s
    }
    /// Keys visible to query `i` under the causal rule.
    fn visible(&self, i: usize) -> usize {
        if self.causal {
            (i + 1 + self.s - self.tq).min(self.s)
        } else {
            self.s
        }
    }
}

/// Masks as plain arrays, the additive one in the computing float `T` (read once a call, not
/// converted per head and row). The additive mask keeps its own (broadcast) shape, with strides
/// for `[B, H, Tq, S]` that are 0 on its size-1 axes: a `[B, 1, 1, S]` padding mask is read in
/// place instead of being expanded to B·H·Tq·S values on every call.
struct Masks<T> {
    pad: Option<Vec<bool>>,
    add: Option<(Vec<T>, [usize; 4])>,
}

/// The additive mask with its `[B, H, Tq, S]` strides, as one score row's softmax reads it.
type AddMask<'a, T> = Option<(&'a [T], [usize; 4])>;

/// Scales, masks and softmaxes one score row in place (`row` holds the raw scores).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn softmax_row<T: Float>(
    geo: &Geo,
    pad: Option<&[bool]>,
    add: AddMask<T>,
    b: usize,
    h: usize,
    i: usize,
    row: &mut [T],
) {
    let scale = T::c(geo.scale);
    // Keys past the causal limit get probability 0 without being exponentiated.
    let vis = geo.visible(i);
    let (seen, hidden) = row.split_at_mut(vis);
    hidden.iter_mut().for_each(|x| *x = T::ZERO);
    // `x · scale`, -inf where padded, plus the additive mask, whose key axis is either its own
    // (stride 1) or broadcast (stride 0). Without padding, one pass; the operations per score
    // are the same either way.
    let add = add.map(|(a, st)| (&a[b * st[0] + h * st[1] + i * st[2]..], st[3]));
    match (pad, add) {
        (None, None) => seen.iter_mut().for_each(|x| *x = *x * scale),
        (None, Some((a, 1))) => seen
            .iter_mut()
            .zip(a)
            .for_each(|(x, &a)| *x = *x * scale + a),
        (None, Some((a, _))) => {
            let a = a[0];
            seen.iter_mut().for_each(|x| *x = *x * scale + a);
        }
        (Some(p), add) => {
            seen.iter_mut().for_each(|x| *x = *x * scale);
            for (x, &p) in seen.iter_mut().zip(&p[b * geo.s..]) {
                if p {
                    *x = T::NEG_INF;
                }
            }
            match add {
                Some((a, 1)) => seen.iter_mut().zip(a).for_each(|(x, &a)| *x += a),
                Some((a, _)) => seen.iter_mut().for_each(|x| *x += a[0]),
                None => {}
            }
        }
    }
    // A row with a NaN (or a CPU without the fast path) takes the maximum in order.
    let m = super::row_max::fast_max(seen)
        .unwrap_or_else(|| seen.iter().fold(T::NEG_INF, |a, &b| a.max_nan(b)));
    if m == T::NEG_INF {
        // Every key masked: attend to nothing (PyTorch would produce NaN).
        seen.iter_mut().for_each(|x| *x = T::ZERO);
        return;
    }
    // Exponentials first (a vectorizable loop), then their sum in 8 fixed lanes.
    for x in seen.iter_mut() {
        *x = (*x - m).fast_exp();
    }
    let mut lanes = [T::ZERO; 8];
    let mut chunks = seen.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    let mut sum = lanes.into_iter().fold(T::ZERO, |a, v| a + v);
    for &v in chunks.remainder() {
        sum += v;
    }
    let inv = T::ONE / sum;
    seen.iter_mut().for_each(|x| *x = *x * inv);
}

/// Query rows per key/value head (query rows × heads in its group) up to which the forward
/// reads key rows directly instead of transposing them.
const DIRECT_ROWS: usize = 8;

/// Runs `f(task)` for every task index, in parallel when the work is worth it. Tasks write
/// disjoint memory, so the result does not depend on the thread count.
fn tasks(n: usize, work: usize, f: impl Fn(usize) + Sync + Send) {
    tasks_with(n, work, || (), |_, t| f(t));
}

/// [`tasks`] with a scratch value per worker (`f` overwrites what it reads of it).
fn tasks_with<S>(
    n: usize,
    work: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize) + Sync + Send,
) {
    crate::parallel::for_each_index_with(n > 1 && work >= 1 << 15, n, init, f);
}

/// Copies `rows` rows of `hd` values (row `j` at `src[j·stride..]`) transposed into `[hd][rows]`
/// (16x16 register blocks with AVX-512; the 8x8 tiles this had, compiled for baseline x86,
/// were 6% of MiniLM's attention).
fn transpose_head<T: Float>(src: &[T], stride: usize, rows: usize, hd: usize) -> Vec<T> {
    let mut t = Vec::new();
    transpose_head_into(src, stride, rows, hd, &mut t);
    t
}

/// [`transpose_head`] into `t`, which keeps its memory from one call to the next. One block of
/// slack follows the `[hd][rows]` values, so the products read their ragged last columns in
/// place (see `attention_kernel::product`).
fn transpose_head_into<T: Float>(src: &[T], stride: usize, rows: usize, hd: usize, t: &mut Vec<T>) {
    t.resize(hd * rows + super::attention_kernel::W, T::ZERO);
    super::transpose::transpose((rows, hd), src, stride, t, rows);
}

/// Runs `f(first_row, rows)` over `0..n` in blocks of at most 4 rows.
#[inline(always)]
fn row_blocks(n: usize, mut f: impl FnMut(usize, usize)) {
    let mut i0 = 0;
    while i0 < n {
        let rb = (n - i0).min(4);
        f(i0, rb);
        i0 += rb;
    }
}

/// Copies `rows` rows of `hd` values from `src` onto rows of `dst` (row `i` at `at + i·stride`).
///
/// # Safety
/// The destination rows must be valid (allocated, not necessarily initialized) and written by
/// no one else meanwhile.
unsafe fn copy_rows<T: Float>(dst: Ptr<T>, at: usize, stride: usize, src: &[T], hd: usize) {
    for (i, row) in src.chunks_exact(hd).enumerate() {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), dst.get().add(at + i * stride), hd) };
    }
}

/// Adds `rows` rows of `hd` values from `src` onto rows of `dst` (row `i` at `at + i·stride`).
///
/// # Safety
/// The destination rows must be valid and written by no one else meanwhile.
unsafe fn add_rows<T: Float>(dst: Ptr<T>, at: usize, stride: usize, src: &[T], hd: usize) {
    for (i, row) in src.chunks_exact(hd).enumerate() {
        // SAFETY: the caller's contract.
        let d = unsafe { std::slice::from_raw_parts_mut(dst.get().add(at + i * stride), hd) };
        for (d, &s) in d.iter_mut().zip(row) {
            *d += s;
        }
    }
}

/// Forward, one task per (batch, key/value head), or per query head when decoding, with its
/// operands in L1 (see attention_kernel): scores against the transposed keys, the masked
/// softmax, the probabilities times the values. Rows of a causal head stop at their last
/// visible key (rounded up to a register block).
fn forward<T: Float, E: KvElem<T>>(
    geo: &Geo,
    (q_src, k_src, v_src): (&[T], &[E], &[E]),
    masks: &Masks<T>,
    keep_probs: bool,
) -> (Vec<T>, Option<Vec<T>>) {
    // Each task writes its heads' columns of every row of its batch, so together the tasks
    // write every element once: the output starts uninitialized (clearing it was a pass over
    // 1.5 MB per MiniLM layer on 8 x 128 tokens, on one thread).
    let len = geo.b * geo.tq * geo.h * geo.hd;
    let mut out: Vec<T> = Vec::with_capacity(len);
    // The backward reads every head's probabilities; without one, each task reuses one head's
    // worth, which stays in cache (the whole array was 6 MB for MiniLM on 8 x 128 tokens,
    // cleared and written to memory on every call).
    let mut probs = if keep_probs {
        vec![T::ZERO; geo.b * geo.h * geo.tq * geo.s]
    } else {
        Vec::new()
    };
    let (po, pp) = (Ptr(out.as_mut_ptr()), Ptr(probs.as_mut_ptr()));
    let group = geo.h / geo.hkv;
    let (hd, s) = (geo.hd, geo.s);
    let work = geo.b * geo.h * geo.tq * geo.s * geo.hd;
    let (pad, add) = (
        masks.pad.as_deref(),
        masks.add.as_ref().map(|(a, st)| (&a[..], *st)),
    );
    // Transposed keys pay off over many query rows; a decode step reads the rows directly.
    let direct = geo.tq * group <= DIRECT_ROWS && E::direct_available();
    // One task per (batch, key/value head), its keys transposed once for every query head of
    // its group; read directly, the heads share nothing, and one task per query head spreads
    // better (SmolLM2's 3 groups left one of two threads idle a third of the time).
    let per = if direct { 1 } else { group };
    let tasks_per_b = geo.h / per;
    // A worker keeps its transposed keys, one head's probabilities (without a backward) and
    // its output rows from one task to the next (allocated and cleared per task, they were
    // 1% of MiniLM's time on 8 x 128 tokens).
    let init = || (Vec::new(), Vec::new(), Vec::new());
    tasks_with(
        geo.b * tasks_per_b,
        work,
        init,
        |(kt, scratch, o): &mut (Vec<T>, Vec<T>, Vec<T>), t| {
            let (b, h0) = (t / tasks_per_b, t % tasks_per_b * per);
            let g = h0 / group;
            let k = &k_src[geo.kv_at(1, b, g)..];
            let v = &v_src[geo.kv_at(2, b, g)..];
            // A full pass reads its keys transposed and its values as `T` (widened once, when the
            // cache holds f16).
            let vt = if direct {
                None
            } else {
                let (kr, ks) = E::as_rows(k, geo.w[1], s, hd);
                transpose_head_into(&kr, ks, s, hd, kt);
                Some(E::as_rows(v, geo.w[2], s, hd))
            };
            if !keep_probs {
                scratch.resize(geo.tq * s, T::ZERO);
            }
            o.resize(geo.tq * hd, T::ZERO);
            for h in h0..h0 + per {
                let q = &q_src[geo.q_at(b, h)..];
                let probs = if keep_probs {
                    // SAFETY: task t alone writes the probs blocks (b, h) of its heads.
                    unsafe {
                        std::slice::from_raw_parts_mut(pp.get().add(geo.probs_at(b, h)), geo.tq * s)
                    }
                } else {
                    // Every element is rewritten below: scores up to the last visible key (whole
                    // blocks), the softmax zeroes the rest of each row.
                    &mut scratch[..]
                };
                o.fill(T::ZERO);
                crate::simd::run(
                    #[inline(always)]
                    || {
                        if direct {
                            for i in 0..geo.tq {
                                let qi = &q[i * geo.w[0]..];
                                let n = geo.visible(i);
                                E::dots(&qi[..hd], k, geo.w[1], &mut probs[i * s..][..n]);
                            }
                        } else {
                            row_blocks(
                                geo.tq,
                                #[inline(always)]
                                |i0, rb| {
                                    let n = whole_blocks(geo.visible(i0 + rb - 1), s);
                                    let a = Mat::new(&q[i0 * geo.w[0]..], geo.w[0], 1);
                                    rows_times_cols(a, rb, hd, kt, s, n, &mut probs[i0 * s..], s);
                                },
                            );
                        }
                        for (i, row) in probs.chunks_mut(s).enumerate() {
                            softmax_row(geo, pad, add, b, h, i, row);
                        }
                        row_blocks(
                            geo.tq,
                            #[inline(always)]
                            |i0, rb| {
                                let len = geo.visible(i0 + rb - 1);
                                if let Some((vr, vs)) = &vt {
                                    let p = Mat::new(&probs[i0 * s..], s, 1);
                                    add_weighted_rows(
                                        p,
                                        rb,
                                        (0, len),
                                        vr,
                                        *vs,
                                        hd,
                                        &mut o[i0 * hd..],
                                        hd,
                                    );
                                } else {
                                    // Row by row, the same sums as a block of rows.
                                    for i in i0..i0 + rb {
                                        let (p, oi) = (&probs[i * s..], &mut o[i * hd..][..hd]);
                                        E::weighted_row(p, (0, len), v, geo.w[2], oi);
                                    }
                                }
                            },
                        );
                    },
                );
                // SAFETY: task t alone writes the output columns of its heads h in batch b.
                unsafe { copy_rows(po, geo.out_at(b, h), geo.h * hd, o, hd) };
            }
        },
    );
    // SAFETY: the tasks wrote all `len` elements (see above).
    unsafe { out.set_len(len) };
    (out, keep_probs.then_some(probs))
}

/// Gradients of q, k and v, each into its own (zeroed) buffer pointer; q, k and v may point
/// into the same buffer (distinct columns). One task per (batch, kv head): per query head dP
/// against the transposed values, dS, then dQ = dS K, dK += dSᵀ Q and dV += Pᵀ dO; the heads of
/// a group add into dK/dV in a fixed order.
fn backward<T: Float>(geo: &Geo, srcs: [&[T]; 3], probs: &[T], gout: &[T], grads: [Ptr<T>; 3]) {
    let group = geo.h / geo.hkv;
    let (hd, s, tq, ow) = (geo.hd, geo.s, geo.tq, geo.h * geo.hd);
    let scale = T::c(geo.scale);
    let work = geo.b * geo.h * geo.tq * geo.s * geo.hd;
    tasks(geo.b * geo.hkv, work, |t| {
        let (b, g) = (t / geo.hkv, t % geo.hkv);
        let (k, v) = (
            &srcs[1][geo.kv_at(1, b, g)..],
            &srcs[2][geo.kv_at(2, b, g)..],
        );
        let vt = transpose_head(v, geo.w[2], s, hd);
        let (mut dk, mut dv) = (vec![T::ZERO; s * hd], vec![T::ZERO; s * hd]);
        let mut ds = vec![T::ZERO; tq * s];
        let mut dq = vec![T::ZERO; tq * hd];
        for h in g * group..(g + 1) * group {
            let p = &probs[geo.probs_at(b, h)..][..tq * s];
            let go = &gout[geo.out_at(b, h)..];
            let q = &srcs[0][geo.q_at(b, h)..];
            dq.fill(T::ZERO);
            crate::simd::run(
                #[inline(always)]
                || {
                    // dP = dO Vᵀ, then dS = scale · P ⊙ (dP - rowsum(dP ⊙ P)), 0 past the keys seen.
                    row_blocks(
                        tq,
                        #[inline(always)]
                        |i0, rb| {
                            let n = whole_blocks(geo.visible(i0 + rb - 1), s);
                            let a = Mat::new(&go[i0 * ow..], ow, 1);
                            rows_times_cols(a, rb, hd, &vt, s, n, &mut ds[i0 * s..], s);
                        },
                    );
                    for (i, (d, pr)) in ds.chunks_mut(s).zip(p.chunks(s)).enumerate() {
                        let vis = geo.visible(i);
                        let dot = lane_dot(&d[..vis], &pr[..vis]);
                        for (a, &b) in d[..vis].iter_mut().zip(&pr[..vis]) {
                            *a = b * (*a - dot) * scale;
                        }
                        d[vis..].fill(T::ZERO);
                    }
                    // dQ = dS K
                    row_blocks(
                        tq,
                        #[inline(always)]
                        |i0, rb| {
                            let w = Mat::new(&ds[i0 * s..], s, 1);
                            let len = geo.visible(i0 + rb - 1);
                            add_weighted_rows(
                                w,
                                rb,
                                (0, len),
                                k,
                                geo.w[1],
                                hd,
                                &mut dq[i0 * hd..],
                                hd,
                            );
                        },
                    );
                    // dK += dSᵀ Q and dV += Pᵀ dO, from the first query that sees each key block.
                    row_blocks(
                        s,
                        #[inline(always)]
                        |j0, rb| {
                            let first = if geo.causal {
                                j0.saturating_sub(s - tq)
                            } else {
                                0
                            };
                            let w = Mat::new(&ds[j0..], 1, s);
                            add_weighted_rows(
                                w,
                                rb,
                                (first, tq),
                                q,
                                geo.w[0],
                                hd,
                                &mut dk[j0 * hd..],
                                hd,
                            );
                            let w = Mat::new(&p[j0..], 1, s);
                            add_weighted_rows(
                                w,
                                rb,
                                (first, tq),
                                go,
                                ow,
                                hd,
                                &mut dv[j0 * hd..],
                                hd,
                            );
                        },
                    );
                },
            );
            // SAFETY: task (b, g) alone writes dQ columns of its query heads in batch b.
            unsafe { add_rows(grads[0], geo.q_at(b, h), geo.w[0], &dq, hd) };
        }
        // SAFETY: task (b, g) alone writes the dK/dV columns of kv head g in batch b.
        unsafe {
            add_rows(grads[1], geo.kv_at(1, b, g), geo.w[1], &dk, hd);
            add_rows(grads[2], geo.kv_at(2, b, g), geo.w[2], &dv, hd);
        }
    });
}

fn check_inputs(q: &AttnInput, k: &AttnInput, v: &AttnInput, o: &AttnOptions) -> Result<Geo> {
    const OP: &str = "attention";
    // Keys and values may also be an f16 cache beside f32 queries (inference on the CPU).
    let f16_kv = q.src.dtype() == DType::F32
        && k.src.dtype() == DType::F16
        && v.src.dtype() == DType::F16
        && !crate::tensor::on_gpu(&[q.src]);
    for (name, x) in [("q", q), ("k", k), ("v", v)] {
        crate::tensor::check_same_device(OP, x.src, q.src)?;
        if f16_kv && name != "q" {
            continue;
        }
        super::float::check_float_on(OP, x.src)?;
        if x.src.dtype() != q.src.dtype() {
            bail!(
                OP,
                "{name} is {}, q is {} (keys and values may be f16 beside f32 queries)",
                x.src.dtype(),
                q.src.dtype()
            );
        }
        if x.src.rank() != 3 {
            bail!(
                OP,
                "{name} source must be [B, T, W], found {:?}",
                x.src.shape()
            );
        }
    }
    if o.heads == 0 || o.kv_heads == 0 || o.head_dim == 0 || !o.heads.is_multiple_of(o.kv_heads) {
        bail!(
            OP,
            "heads {} must be a positive multiple of kv_heads {} (head_dim {})",
            o.heads,
            o.kv_heads,
            o.head_dim
        );
    }
    let (b, tq) = (q.src.shape()[0], q.src.shape()[1]);
    let s = k.src.shape()[1];
    for (name, x, n, t) in [
        ("q", q, o.heads, tq),
        ("k", k, o.kv_heads, s),
        ("v", v, o.kv_heads, s),
    ] {
        let sh = x.src.shape();
        if sh[0] != b || sh[1] != t || x.col + n * o.head_dim > sh[2] {
            bail!(
                OP,
                "{name} source {sh:?} with first column {}: expected [{b}, {t}, >= {}]",
                x.col,
                x.col + n * o.head_dim
            );
        }
    }
    if o.causal && tq > s {
        bail!(
            OP,
            "causal attention needs at least as many keys ({s}) as queries ({tq})"
        );
    }
    Ok(Geo {
        b,
        tq,
        s,
        h: o.heads,
        hkv: o.kv_heads,
        hd: o.head_dim,
        w: [q.src.shape()[2], k.src.shape()[2], v.src.shape()[2]],
        col: [q.col, k.col, v.col],
        scale: o.scale.unwrap_or(1.0 / (o.head_dim as f64).sqrt()),
        causal: o.causal,
    })
}

fn read_masks<T: Float>(geo: &Geo, o: &AttnOptions) -> Result<Masks<T>> {
    let pad = match &o.key_padding {
        Some(m) => {
            if m.shape() != [geo.b, geo.s] {
                bail!(
                    "attention",
                    "key_padding must be [B, S] = [{}, {}], found {:?}",
                    geo.b,
                    geo.s,
                    m.shape()
                );
            }
            Some(m.to_vec_f64()?.iter().map(|&x| x != 0.0).collect())
        }
        None => None,
    };
    let add = match &o.attn_mask {
        Some(m) => {
            let bool_mask = m.dtype() == DType::U8;
            if !bool_mask && !m.dtype().is_float() {
                bail!(
                    "attention",
                    "attn_mask must be a float tensor (added to the scores) or a u8 boolean one \
                     (nonzero = may not attend), found {}",
                    m.dtype()
                );
            }
            let full = [geo.b, geo.h, geo.tq, geo.s];
            // Validates the broadcast (a clear error for a mask that does not fit).
            m.expand(&full)?;
            let mut shape = [1usize; 4];
            shape[4 - m.rank()..].copy_from_slice(m.shape());
            let mut strides = [0usize; 4];
            let mut step = 1;
            for d in (0..4).rev() {
                if shape[d] != 1 {
                    strides[d] = step;
                }
                step *= shape[d];
            }
            // A boolean mask is the additive mask that is -inf where it is set.
            let v: Vec<T> = if bool_mask {
                let set = m.to_vec::<u8>()?;
                set.into_iter()
                    .map(|x| if x != 0 { T::NEG_INF } else { T::ZERO })
                    .collect()
            } else if m.dtype() == T::DTYPE {
                m.to_vec::<T>()?
            } else {
                m.to_vec_f64()?.into_iter().map(T::c).collect()
            };
            Some((v, strides))
        }
        None => None,
    };
    Ok(Masks { pad, add })
}

/// The same attention from primitive ops (matmul, masks, softmax), differentiated by autograd:
/// the device path until a fused device kernel exists.
fn composite(
    geo: &Geo,
    q: &AttnInput,
    k: &AttnInput,
    v: &AttnInput,
    o: &AttnOptions,
) -> Result<Tensor> {
    let dev = q.src.device();
    // [B, T, W] columns col.. as [B, heads, T, hd].
    let heads = |x: &AttnInput, t: usize, n: usize| -> Result<Tensor> {
        let cols = x.src.narrow(2, x.col, n * geo.hd)?;
        let h = cols
            .reshape(&[geo.b, t, n, geo.hd])?
            .permute(&[0, 2, 1, 3])?;
        if n == geo.h {
            return Ok(h);
        }
        // Grouped-query attention: each key/value head serves h / hkv query heads.
        let rep = geo.h / n;
        h.unsqueeze(2)?
            .expand(&[geo.b, n, rep, t, geo.hd])?
            .contiguous()?
            .reshape(&[geo.b, geo.h, t, geo.hd])
    };
    let qh = heads(q, geo.tq, geo.h)?;
    let kh = heads(k, geo.s, geo.hkv)?;
    let vh = heads(v, geo.s, geo.hkv)?;
    let mut scores = qh.matmul(&kh.transpose(-1, -2)?)?.mul_scalar(geo.scale)?;
    if geo.causal {
        let hidden: Vec<u8> = (0..geo.tq)
            .flat_map(|i| (0..geo.s).map(move |j| (j >= geo.visible(i)) as u8))
            .collect();
        let m = Tensor::from_vec(hidden, &[geo.tq, geo.s])?.to(dev)?;
        scores = scores.masked_fill(&m, f64::NEG_INFINITY)?;
    }
    if let Some(p) = &o.key_padding {
        let m = p.ne(&Tensor::scalar(0.0, p.dtype()))?.to(dev)?;
        scores = scores.masked_fill(&m.reshape(&[geo.b, 1, 1, geo.s])?, f64::NEG_INFINITY)?;
    }
    if let Some(m) = &o.attn_mask {
        let m = m.to(dev)?;
        scores = if m.dtype() == DType::U8 {
            scores.masked_fill(&m, f64::NEG_INFINITY)?
        } else {
            scores.add(&m.to_dtype(scores.dtype())?)?
        };
    }
    let probs = scores.softmax(-1)?;
    // A row with every key hidden is NaN after softmax; the fused kernel gives zeros.
    let nan = probs.detach().ne(&probs.detach())?;
    let probs = probs.masked_fill(&nan, 0.0)?;
    probs
        .matmul(&vh)?
        .permute(&[0, 2, 1, 3])?
        .contiguous()?
        .reshape(&[geo.b, geo.tq, geo.h * geo.hd])
}

/// [`attention`] of f32 queries over f16 keys and values (a [`crate::nn::KvCache`] kept in
/// f16): the products in f32 on the exactly widened values. Inference only: no gradient flows
/// to the queries.
fn attend_f16_cache(
    geo: &Geo,
    q: &AttnInput,
    k: &AttnInput,
    v: &AttnInput,
    masks: &Masks<f32>,
) -> Result<Tensor> {
    if Tensor::records_backward(&[q.src]) {
        bail!(
            "attention",
            "f16 keys and values are for inference: q requires a gradient (keep the cache in f32 to train through it)"
        );
    }
    let (qc, kc, vc) = (
        q.src.contiguous()?,
        k.src.contiguous()?,
        v.src.contiguous()?,
    );
    let (qv, kv, vv) = (
        qc.storage().read(),
        kc.storage().read(),
        vc.storage().read(),
    );
    let at = |t: &Tensor| t.layout().contiguous_range().expect("contiguous");
    let qs = &f32::slice(&qv).expect("checked dtype")[at(&qc)];
    let ks = &half::f16::slice(&kv).expect("checked dtype")[at(&kc)];
    let vs = &half::f16::slice(&vv).expect("checked dtype")[at(&vc)];
    let (out, _) = forward::<f32, half::f16>(geo, (qs, ks, vs), masks, false);
    Tensor::from_vec(out, &[geo.b, geo.tq, geo.h * geo.hd])
}

/// Multi-head attention `softmax(scale · Q Kᵀ + masks) V`, fused (see the module docs). Returns
/// `[B, Tq, H·head_dim]` with head `h` in columns `h·head_dim..`. Differentiable in q, k and v;
/// a row whose keys are all masked gives zeros.
pub fn attention(q: AttnInput, k: AttnInput, v: AttnInput, opts: &AttnOptions) -> Result<Tensor> {
    let geo = check_inputs(&q, &k, &v, opts)?;
    if crate::tensor::on_gpu(&[q.src]) {
        return composite(&geo, &q, &k, &v, opts);
    }
    q.src.cpu_only("attention")?;
    if k.src.dtype() == DType::F16 {
        return attend_f16_cache(&geo, &q, &k, &v, &read_masks(&geo, opts)?);
    }
    // Distinct sources (by identity), and which one each of q, k, v reads.
    let mut srcs: Vec<Tensor> = Vec::with_capacity(3);
    let mut which = [0usize; 3];
    for (slot, x) in [q, k, v].iter().enumerate() {
        which[slot] = match srcs.iter().position(|s| s.id() == x.src.id()) {
            Some(i) => i,
            None => {
                srcs.push(x.src.detach().contiguous()?);
                srcs.len() - 1
            }
        };
    }
    let out_shape = [geo.b, geo.tq, geo.h * geo.hd];
    let inputs: Vec<&Tensor> = [q.src, k.src, v.src]
        .iter()
        .enumerate()
        .filter(|(slot, _)| which[..*slot].iter().all(|&w| w != which[*slot]))
        .map(|(_, t)| *t)
        .collect();
    // The backward is the one reader of the probabilities.
    let keep_probs = Tensor::records_backward(&inputs);
    let (storage, layout, probs) = float_dispatch!(q.src.dtype(), T => {
        let guards: Vec<_> = srcs.iter().map(|s| s.storage().read()).collect();
        let slices: Vec<&[T]> = srcs
            .iter()
            .zip(&guards)
            .map(|(s, g)| &T::slice(g).expect("checked dtype")[s.layout().contiguous_range().expect("contiguous")])
            .collect();
        let masks = read_masks::<T>(&geo, opts)?;
        let (out, probs) = forward::<T, T>(&geo, (slices[which[0]], slices[which[1]], slices[which[2]]), &masks, keep_probs);
        let (s, l) = wrap(out, &out_shape);
        (s, l, probs.map(|p| Arc::new(Storage::new(T::wrap(p)))))
    });
    let saved: Vec<Tensor> = srcs.iter().map(|s| s.detach()).collect();
    Ok(Tensor::op_result(
        "attention",
        storage,
        layout,
        &inputs,
        move || {
            Box::new(move |g, needs| {
                let out = float_dispatch!(g.dtype(), T => {
                    let mut bufs: Vec<Vec<T>> = saved.iter().map(|s| vec![T::ZERO; s.numel()]).collect();
                    let ptrs: Vec<Ptr<T>> = bufs.iter_mut().map(|b| Ptr(b.as_mut_ptr())).collect();
                    let guards: Vec<_> = saved.iter().map(|s| s.storage().read()).collect();
                    let slices: Vec<&[T]> = saved
                        .iter()
                        .zip(&guards)
                        .map(|(s, g)| &T::slice(g).expect("dtype")[s.layout().contiguous_range().expect("contiguous")])
                        .collect();
                    let pg = probs
                        .as_ref()
                        .expect("probabilities are kept whenever a backward is recorded")
                        .read();
                    let p = T::slice(&pg).expect("dtype");
                    with_contig::<T, _>(g, |gv| {
                        backward::<T>(
                            &geo,
                            [slices[which[0]], slices[which[1]], slices[which[2]]],
                            p,
                            gv,
                            [ptrs[which[0]], ptrs[which[1]], ptrs[which[2]]],
                        )
                    });
                    drop(guards);
                    bufs.into_iter()
                        .zip(&saved)
                        .map(|(b, s)| Tensor::from_vec(b, s.shape()))
                        .collect::<Result<Vec<_>>>()?
                });
                Ok(out
                    .into_iter()
                    .zip(needs)
                    .map(|(t, &n)| n.then_some(t))
                    .collect())
            })
        },
    ))
}
