//! Operators fukai has no tensor op for, computed on the host in f64 (exact for the integer
//! magnitudes ONNX models use as indices); the gradient stops at them.

use super::super::attr::Node;
use super::util::{axis, floats, ints, scalar};
use crate::error::Result;
use crate::{DType, Tensor};

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    let r = match node.op_type() {
        "Trilu" => trilu(node),
        "CumSum" => cumsum(node),
        "Hardmax" => hardmax(node),
        "TopK" => return Some(topk(node)),
        "OneHot" => one_hot(node),
        "NonZero" => non_zero(node),
        "EyeLike" => eye_like(node),
        "Shrink" => shrink(node),
        "Compress" => compress(node),
        "GatherND" => gather_nd(node),
        "ScatterND" => scatter_nd(node),
        "ScatterElements" | "Scatter" => scatter_elements(node),
        "ReverseSequence" => reverse_sequence(node),
        "Det" => det(node),
        "HannWindow" | "HammingWindow" | "BlackmanWindow" => window(node),
        "LRN" => lrn(node),
        "Einsum" => einsum(node),
        "BitShift" => bit_shift(node),
        "MeanVarianceNormalization" => mvn(node),
        _ => return None,
    };
    Some(r.map(|t| vec![t]))
}

/// A tensor's values and shape on the host.
pub(super) struct Host {
    pub v: Vec<f64>,
    pub shape: Vec<usize>,
}

pub(super) fn host(node: &Node, t: &Tensor) -> Result<Host> {
    Ok(Host {
        v: floats(node, t)?,
        shape: t.shape().to_vec(),
    })
}

pub(super) fn make(node: &Node, v: Vec<f64>, shape: &[usize], dt: DType) -> Result<Tensor> {
    node.ctx(Tensor::from_vec(v, shape).and_then(|t| t.to_dtype(dt)))
}

pub(super) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The multi-index of flat position `i`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        if shape[d] > 0 {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
    }
    idx
}

/// Splits `shape` around axis `a` into (outer, len, inner) for strided 1-D passes.
fn around(shape: &[usize], a: usize) -> (usize, usize, usize) {
    (
        shape[..a].iter().product(),
        shape[a],
        shape[a + 1..].iter().product(),
    )
}

fn trilu(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let k = match node.opt_input(1) {
        Some(t) => scalar(node, t)? as i64,
        None => 0,
    };
    let upper = node.i("upper", 1)? == 1;
    if x.rank() < 2 {
        return Err(node.err(format!("input of rank {}: need at least 2", x.rank())));
    }
    let h = host(node, x)?;
    let (r, c) = (h.shape[h.shape.len() - 2], h.shape[h.shape.len() - 1]);
    let v =
        h.v.iter()
            .enumerate()
            .map(|(n, &val)| {
                let (i, j) = (((n / c.max(1)) % r.max(1)) as i64, (n % c.max(1)) as i64);
                let keep = if upper { j - i >= k } else { j - i <= k };
                if keep {
                    val
                } else {
                    0.0
                }
            })
            .collect();
    make(node, v, &h.shape, x.dtype())
}

fn cumsum(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let a = axis(node, scalar(node, node.input(1)?)? as i64, x.rank())?;
    let (excl, rev) = (node.i("exclusive", 0)? == 1, node.i("reverse", 0)? == 1);
    let h = host(node, x)?;
    let (outer, len, inner) = around(&h.shape, a);
    let mut out = vec![0.0; h.v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = 0.0;
            for s in 0..len {
                let k = if rev { len - 1 - s } else { s };
                let p = (o * len + k) * inner + i;
                if excl {
                    out[p] = acc;
                    acc += h.v[p];
                } else {
                    acc += h.v[p];
                    out[p] = acc;
                }
            }
        }
    }
    make(node, out, &h.shape, x.dtype())
}

fn hardmax(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let h = host(node, x)?;
    // Before opset 13 the input is seen as 2-D [prod(..axis), prod(axis..)].
    let (outer, len, inner) = if node.opset >= 13 {
        around(&h.shape, axis(node, node.i("axis", -1)?, x.rank())?)
    } else {
        let a = axis(node, node.i("axis", 1)?, x.rank())?;
        (
            h.shape[..a].iter().product(),
            h.shape[a..].iter().product(),
            1,
        )
    };
    let mut out = vec![0.0; h.v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0;
            for k in 1..len {
                if h.v[(o * len + k) * inner + i] > h.v[(o * len + best) * inner + i] {
                    best = k;
                }
            }
            if len > 0 {
                out[(o * len + best) * inner + i] = 1.0;
            }
        }
    }
    make(node, out, &h.shape, x.dtype())
}

fn topk(node: &Node) -> Result<Vec<Tensor>> {
    let x = node.input(0)?;
    let k = scalar(node, node.input(1)?)? as usize;
    let a = axis(node, node.i("axis", -1)?, x.rank())?;
    let largest = node.i("largest", 1)? == 1;
    let h = host(node, x)?;
    let (outer, len, inner) = around(&h.shape, a);
    if k > len {
        return Err(node.err(format!("k = {k} exceeds axis length {len}")));
    }
    let mut shape = h.shape.clone();
    shape[a] = k;
    let (mut vals, mut idxs) = (vec![0.0; outer * k * inner], vec![0i64; outer * k * inner]);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| h.v[(o * len + j) * inner + i];
            let mut order: Vec<usize> = (0..len).collect();
            // Stable: equal values keep the lower index first, as ONNX specifies.
            order.sort_by(|&p, &q| {
                let c = at(p).total_cmp(&at(q));
                if largest {
                    c.reverse()
                } else {
                    c
                }
            });
            for (s, &j) in order.iter().take(k).enumerate() {
                vals[(o * k + s) * inner + i] = at(j);
                idxs[(o * k + s) * inner + i] = j as i64;
            }
        }
    }
    Ok(vec![
        make(node, vals, &shape, x.dtype())?,
        node.ctx(Tensor::from_vec(idxs, &shape))?,
    ])
}

fn one_hot(node: &Node) -> Result<Tensor> {
    let idx = host(node, node.input(0)?)?;
    let depth = scalar(node, node.input(1)?)? as i64;
    let vt = node.input(2)?;
    let values = floats(node, vt)?;
    if values.len() != 2 || depth < 1 {
        return Err(node.err("values must hold [off, on] and depth be positive"));
    }
    let r = idx.shape.len();
    let a = axis(node, node.i("axis", -1)?, r + 1)?;
    let mut shape = idx.shape.clone();
    shape.insert(a, depth as usize);
    let (outer, _, inner) = around(&shape, a);
    let d = depth as usize;
    let mut out = vec![values[0]; outer * d * inner];
    for o in 0..outer {
        for i in 0..inner {
            let mut c = idx.v[o * inner + i] as i64;
            if c < 0 {
                c += depth;
            }
            if (0..depth).contains(&c) {
                out[(o * d + c as usize) * inner + i] = values[1];
            }
        }
    }
    make(node, out, &shape, vt.dtype())
}

fn non_zero(node: &Node) -> Result<Tensor> {
    let h = host(node, node.input(0)?)?;
    let hits: Vec<usize> = (0..h.v.len()).filter(|&i| h.v[i] != 0.0).collect();
    let r = h.shape.len();
    let mut out = vec![0i64; r * hits.len()];
    for (n, &i) in hits.iter().enumerate() {
        for (d, c) in unravel(i, &h.shape).into_iter().enumerate() {
            out[d * hits.len() + n] = c as i64;
        }
    }
    node.ctx(Tensor::from_vec(out, &[r, hits.len()]))
}

fn eye_like(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    if x.rank() != 2 {
        return Err(node.err("input must be 2-D"));
    }
    let k = node.i("k", 0)?;
    let dt = match node.opt_i("dtype")? {
        Some(c) => super::super::tensor::dtype_from_onnx(c as i32)
            .ok_or_else(|| node.unsupported(format!("dtype {c}")))?,
        None => x.dtype(),
    };
    let (r, c) = (x.shape()[0], x.shape()[1]);
    let v = (0..r * c)
        .map(|n| f64::from(((n % c) as i64 - (n / c) as i64) == k))
        .collect();
    make(node, v, &[r, c], dt)
}

fn shrink(node: &Node) -> Result<Tensor> {
    let (bias, l) = (node.f("bias", 0.0)? as f64, node.f("lambd", 0.5)? as f64);
    super::util::host_map(node, node.input(0)?, None, |x| {
        if x < -l {
            x + bias
        } else if x > l {
            x - bias
        } else {
            0.0
        }
    })
}

fn compress(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let cond = floats(node, node.input(1)?)?;
    let mut h = host(node, x)?;
    let a = match node.opt_i("axis")? {
        Some(a) => axis(node, a, x.rank())?,
        None => {
            h.shape = vec![h.v.len()];
            0
        }
    };
    let (outer, len, inner) = around(&h.shape, a);
    let keep: Vec<usize> = (0..len.min(cond.len()))
        .filter(|&i| cond[i] != 0.0)
        .collect();
    let mut out = Vec::with_capacity(outer * keep.len() * inner);
    for o in 0..outer {
        for &k in &keep {
            out.extend_from_slice(&h.v[(o * len + k) * inner..][..inner]);
        }
    }
    let mut shape = h.shape.clone();
    shape[a] = keep.len();
    make(node, out, &shape, x.dtype())
}

fn gather_nd(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let h = host(node, x)?;
    let it = node.input(1)?;
    let idx = ints(node, it)?;
    let ishape = it.shape().to_vec();
    let b = node.i("batch_dims", 0)? as usize;
    let q = *ishape
        .last()
        .ok_or_else(|| node.err("indices must have rank >= 1"))?;
    if b + q > h.shape.len() {
        return Err(node.err("indices' last dimension is too long for the data"));
    }
    let xs = strides(&h.shape);
    let slice: usize = h.shape[b + q..].iter().product();
    let batch: usize = h.shape[..b].iter().product();
    let rows = idx.len() / q.max(1);
    let per_batch = rows / batch.max(1);
    let mut out = Vec::with_capacity(rows * slice);
    for r in 0..rows {
        let bi = r / per_batch.max(1);
        let mut off = if b > 0 { bi * xs[b - 1] } else { 0 };
        for j in 0..q {
            let n = h.shape[b + j] as i64;
            let mut i = idx[r * q + j];
            if i < 0 {
                i += n;
            }
            if !(0..n).contains(&i) {
                return Err(node.err(format!("index {} out of range", idx[r * q + j])));
            }
            off += i as usize * xs[b + j];
        }
        out.extend_from_slice(&h.v[off..off + slice]);
    }
    let mut shape = ishape[..ishape.len() - 1].to_vec();
    shape.extend_from_slice(&h.shape[b + q..]);
    make(node, out, &shape, x.dtype())
}

fn reduce_into(node: &Node, dst: &mut f64, src: f64) -> Result<()> {
    match node.s("reduction")?.as_deref().unwrap_or("none") {
        "none" => *dst = src,
        "add" => *dst += src,
        "mul" => *dst *= src,
        "max" => *dst = dst.max(src),
        "min" => *dst = dst.min(src),
        r => return Err(node.unsupported(format!("reduction {r:?}"))),
    }
    Ok(())
}

fn scatter_nd(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let mut h = host(node, x)?;
    let it = node.input(1)?;
    let idx = ints(node, it)?;
    let upd = floats(node, node.input(2)?)?;
    let q = *it
        .shape()
        .last()
        .ok_or_else(|| node.err("indices must have rank >= 1"))?;
    let xs = strides(&h.shape);
    let slice: usize = h.shape[q..].iter().product();
    for r in 0..idx.len() / q.max(1) {
        let mut off = 0;
        for j in 0..q {
            let n = h.shape[j] as i64;
            let i = idx[r * q + j];
            let i = if i < 0 { i + n } else { i };
            if !(0..n).contains(&i) {
                return Err(node.err(format!("index {} out of range", idx[r * q + j])));
            }
            off += i as usize * xs[j];
        }
        for s in 0..slice {
            reduce_into(node, &mut h.v[off + s], upd[r * slice + s])?;
        }
    }
    make(node, h.v, &h.shape, x.dtype())
}

fn scatter_elements(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let mut h = host(node, x)?;
    let it = node.input(1)?;
    let idx = ints(node, it)?;
    let upd = floats(node, node.input(2)?)?;
    let a = axis(node, node.i("axis", 0)?, x.rank())?;
    let xs = strides(&h.shape);
    let n = h.shape[a] as i64;
    for (p, &i) in idx.iter().enumerate() {
        let mut at = unravel(p, it.shape());
        let i = if i < 0 { i + n } else { i };
        if !(0..n).contains(&i) {
            return Err(node.err(format!("index {i} out of range")));
        }
        at[a] = i as usize;
        let off: usize = at.iter().zip(&xs).map(|(a, s)| a * s).sum();
        reduce_into(node, &mut h.v[off], upd[p])?;
    }
    make(node, h.v, &h.shape, x.dtype())
}

fn reverse_sequence(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let h = host(node, x)?;
    let lens = ints(node, node.input(1)?)?;
    let ba = axis(node, node.i("batch_axis", 1)?, x.rank())?;
    let ta = axis(node, node.i("time_axis", 0)?, x.rank())?;
    let xs = strides(&h.shape);
    let mut out = h.v.clone();
    for (p, o) in out.iter_mut().enumerate() {
        let mut at = unravel(p, &h.shape);
        let l = lens[at[ba]] as usize;
        if at[ta] < l {
            at[ta] = l - 1 - at[ta];
            *o = h.v[at.iter().zip(&xs).map(|(a, s)| a * s).sum::<usize>()];
        }
    }
    make(node, out, &h.shape, x.dtype())
}

fn det(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let h = host(node, x)?;
    let r = h.shape.len();
    if r < 2 || h.shape[r - 1] != h.shape[r - 2] {
        return Err(node.err(format!("input of shape {:?}: need [..., M, M]", h.shape)));
    }
    let m = h.shape[r - 1];
    let out =
        h.v.chunks(m * m)
            .map(|a| {
                // Gaussian elimination with partial pivoting.
                let mut a = a.to_vec();
                let mut d = 1.0;
                for c in 0..m {
                    let p = (c..m)
                        .max_by(|&i, &j| a[i * m + c].abs().total_cmp(&a[j * m + c].abs()))
                        .unwrap_or(c);
                    if a[p * m + c] == 0.0 {
                        return 0.0;
                    }
                    if p != c {
                        for k in 0..m {
                            a.swap(p * m + k, c * m + k);
                        }
                        d = -d;
                    }
                    d *= a[c * m + c];
                    for i in c + 1..m {
                        let f = a[i * m + c] / a[c * m + c];
                        for k in c..m {
                            a[i * m + k] -= f * a[c * m + k];
                        }
                    }
                }
                d
            })
            .collect();
    make(node, out, &h.shape[..r - 2], x.dtype())
}

fn window(node: &Node) -> Result<Tensor> {
    let n = scalar(node, node.input(0)?)? as usize;
    let periodic = node.i("periodic", 1)? == 1;
    let dt = super::super::tensor::dtype_from_onnx(node.i("output_datatype", 1)? as i32)
        .ok_or_else(|| node.unsupported("output_datatype"))?;
    let nn = if periodic { n as f64 } else { n as f64 - 1.0 };
    let tau = 2.0 * std::f64::consts::PI;
    let v = (0..n)
        .map(|i| {
            let x = tau * i as f64 / nn;
            match node.op_type() {
                "HannWindow" => 0.5 - 0.5 * x.cos(),
                "HammingWindow" => 25.0 / 46.0 - 21.0 / 46.0 * x.cos(),
                _ => 0.42 - 0.5 * x.cos() + 0.08 * (2.0 * x).cos(),
            }
        })
        .collect();
    make(node, v, &[n], dt)
}

fn lrn(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let h = host(node, x)?;
    let alpha = node.f("alpha", 1e-4)? as f64;
    let beta = node.f("beta", 0.75)? as f64;
    let bias = node.f("bias", 1.0)? as f64;
    let size = node
        .opt_i("size")?
        .ok_or_else(|| node.err("size is required"))? as usize;
    if h.shape.len() < 2 {
        return Err(node.err("input must be [N, C, ...]"));
    }
    let (outer, c, inner) = around(&h.shape, 1);
    let (lo, hi) = ((size - 1) / 2, (size - 1).div_ceil(2));
    let mut out = vec![0.0; h.v.len()];
    for o in 0..outer {
        for ch in 0..c {
            for i in 0..inner {
                let s: f64 = (ch.saturating_sub(lo)..=(ch + hi).min(c - 1))
                    .map(|k| h.v[(o * c + k) * inner + i].powi(2))
                    .sum();
                let p = (o * c + ch) * inner + i;
                out[p] = h.v[p] / (bias + alpha / size as f64 * s).powf(beta);
            }
        }
    }
    make(node, out, &h.shape, x.dtype())
}

/// Einsum by direct summation over every label (the test-sized equations ONNX models use).
fn einsum(node: &Node) -> Result<Tensor> {
    let eq: String = node
        .s("equation")?
        .ok_or_else(|| node.err("equation is required"))?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let ins: Vec<Host> = node
        .inputs
        .iter()
        .map(|t| {
            t.as_ref()
                .ok_or_else(|| node.err("missing input"))
                .and_then(|t| host(node, t))
        })
        .collect::<Result<_>>()?;
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != ins.len() {
        return Err(node.err(format!("equation {eq:?} for {} inputs", ins.len())));
    }
    // Ellipsis dimensions become labels the equation cannot use (uppercase 'A'.. is allowed in
    // equations, so use chars past ASCII).
    let ell_rank = terms
        .iter()
        .zip(&ins)
        .filter(|(t, _)| t.contains("..."))
        .map(|(t, h)| h.shape.len() + 3 - t.len())
        .max()
        .unwrap_or(0);
    let ell: String = (0..ell_rank)
        .map(|i| char::from_u32(0x100 + i as u32).unwrap_or('?'))
        .collect();
    let expand = |t: &str, rank: usize| -> Vec<char> {
        if let Some((a, b)) = t.split_once("...") {
            let k = rank + 3 - t.len();
            let mut v: Vec<char> = a.chars().collect();
            v.extend(ell.chars().skip(ell_rank - k));
            v.extend(b.chars());
            v
        } else {
            t.chars().collect()
        }
    };
    let labels: Vec<Vec<char>> = terms
        .iter()
        .zip(&ins)
        .map(|(t, h)| expand(t, h.shape.len()))
        .collect();
    let mut size: std::collections::BTreeMap<char, usize> = Default::default();
    for (l, h) in labels.iter().zip(&ins) {
        if l.len() != h.shape.len() {
            return Err(node.err(format!(
                "equation {eq:?} does not match shape {:?}",
                h.shape
            )));
        }
        for (&c, &n) in l.iter().zip(&h.shape) {
            let e = size.entry(c).or_insert(n);
            if *e == 1 {
                *e = n;
            }
        }
    }
    let out: Vec<char> = match rhs {
        Some(r) => expand(
            &r,
            ell_rank
                + r.len()
                    .saturating_sub(if r.contains("...") { 3 } else { 0 }),
        )
        .into_iter()
        .collect(),
        None => {
            let mut v: Vec<char> = ell.chars().collect();
            let mut once: Vec<char> = size
                .keys()
                .filter(|c| !ell.contains(**c))
                .filter(|c| labels.iter().flatten().filter(|d| d == c).count() == 1)
                .copied()
                .collect();
            once.sort();
            v.extend(once);
            v
        }
    };
    let all: Vec<char> = size.keys().copied().collect();
    let dims: Vec<usize> = all.iter().map(|c| size[c]).collect();
    let oshape: Vec<usize> = out.iter().map(|c| size[c]).collect();
    let os = strides(&oshape);
    let in_strides: Vec<Vec<(usize, usize)>> = labels
        .iter()
        .zip(&ins)
        .map(|(l, h)| {
            let s = strides(&h.shape);
            l.iter()
                .enumerate()
                .map(|(d, c)| {
                    let pos = all.iter().position(|a| a == c).unwrap_or(0);
                    // Broadcast size-1 axes.
                    (pos, if h.shape[d] == 1 { 0 } else { s[d] })
                })
                .collect()
        })
        .collect();
    let out_pos: Vec<usize> = out
        .iter()
        .map(|c| all.iter().position(|a| a == c).unwrap_or(0))
        .collect();
    let mut res = vec![0.0; oshape.iter().product()];
    let total: usize = dims.iter().product();
    for n in 0..total {
        let at = unravel(n, &dims);
        let mut p = 1.0;
        for (h, st) in ins.iter().zip(&in_strides) {
            p *= h.v[st.iter().map(|&(pos, s)| at[pos] * s).sum::<usize>()];
        }
        let o: usize = out_pos.iter().zip(&os).map(|(&pos, s)| at[pos] * s).sum();
        res[o] += p;
    }
    let dt = node.input(0)?.dtype();
    make(node, res, &oshape, dt)
}

fn bit_shift(node: &Node) -> Result<Tensor> {
    let left = match node.s("direction")?.as_deref() {
        Some("LEFT") => true,
        Some("RIGHT") => false,
        d => return Err(node.err(format!("direction {d:?}"))),
    };
    let (a, b) = (node.input(0)?, node.input(1)?);
    super::util::host_zip(node, a, b, a.dtype(), |x, s| {
        let (x, s) = (x as u64, s as u32);
        (if left {
            x.checked_shl(s).unwrap_or(0)
        } else {
            x.checked_shr(s).unwrap_or(0)
        }) as f64
    })
}

fn mvn(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let axes = node.ints("axes")?.unwrap_or(vec![0, 2, 3]);
    let d: Vec<isize> = super::util::axes(node, &axes, x.rank())?
        .into_iter()
        .map(|a| a as isize)
        .collect();
    super::util::via_float(node, &[x], |t| {
        let x = &t[0];
        let mean = x.mean(&d, true)?;
        let var = x.square()?.mean(&d, true)?.sub(&mean.square()?)?;
        x.sub(&mean)?.div(&var.sqrt()?.add_scalar(1e-9)?)
    })
}
