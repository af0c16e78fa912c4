//! Fused recurrences: a whole RNN / GRU / LSTM pass over a sequence as one autograd node.
//!
//! The input projection `x·W_ihᵀ + b_ih` for every step is one big matrix product done by the
//! caller. This op then runs, per step, one gemm `h·W_hhᵀ` and one fused elementwise cell kernel,
//! and its hand-written backward runs the steps in reverse with one gemm per step plus a single
//! gemm for `∂W_hh` over the whole sequence. Recording one node instead of a dozen per step is
//! what makes small recurrent layers fast.
//!
//! Variable-length batches: a row is active at step `t` while `t < len`. An inactive row keeps
//! its state, emits zeros, and receives no gradient from its padded outputs or inputs.

use super::float::{check_same_dtype, with_contig, wrap, Float};
use super::matmul::{gemm_raw, parallelism};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::tensor::Tensor;
use gemm::Parallelism;

/// The cell a recurrence runs; gate order matches PyTorch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnTanh,
    /// `h' = relu(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnRelu,
    /// Gates r, z, n: `n = tanh(x_n + r·(W_hn h + b_hn))`, `h' = (1-z)·n + z·h`.
    Gru,
    /// Gates i, f, g, o: `c' = f·c + i·g`, `h' = o·tanh(c')`.
    Lstm,
}

impl CellKind {
    /// Rows of `W_ih` / `W_hh` per hidden unit.
    pub fn gates(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Gru => 3,
            CellKind::Lstm => 4,
        }
    }
    /// State tensors carried between steps (h, and c for LSTM).
    pub fn states(self) -> usize {
        if self == CellKind::Lstm {
            2
        } else {
            1
        }
    }
    /// Saved per-step values per hidden unit for backward.
    fn saved(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 0,
            CellKind::Gru | CellKind::Lstm => 4,
        }
    }
}

#[derive(Clone)]
struct Geom {
    cell: CellKind,
    steps: usize,
    batch: usize,
    hidden: usize,
    reverse: bool,
    lengths: Vec<usize>,
}

impl Geom {
    fn g(&self) -> usize {
        self.cell.gates() * self.hidden
    }
    /// Time index of the `k`-th processed step.
    fn time(&self, k: usize) -> usize {
        if self.reverse {
            self.steps - 1 - k
        } else {
            k
        }
    }
}

#[inline(always)]
pub(super) fn sigmoid<T: Float>(x: T) -> T {
    T::ONE / (T::ONE + (-x).fast_exp())
}

/// `dst[m×n] (+)= a[m×k] · bᵀ` where `b` is a row-major `[n×k]` matrix.
fn gemm_abt<T: Float>(m: usize, n: usize, k: usize, dst: &mut [T], a: &[T], b: &[T], acc: bool) {
    // SAFETY: slices cover m×k, n×k and m×n elements; dst does not alias the inputs.
    unsafe {
        gemm_raw::<T>(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            n as isize,
            a.as_ptr(),
            (k as isize, 1),
            b.as_ptr(),
            (1, k as isize),
            acc,
            par(m, n, k),
        )
    }
}

/// `dst[m×n] (+)= a[m×k] · b[k×n]`, both row-major.
fn gemm_ab<T: Float>(m: usize, n: usize, k: usize, dst: &mut [T], a: &[T], b: &[T], acc: bool) {
    // SAFETY: as in gemm_abt.
    unsafe {
        gemm_raw::<T>(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            n as isize,
            a.as_ptr(),
            (k as isize, 1),
            b.as_ptr(),
            (n as isize, 1),
            acc,
            par(m, n, k),
        )
    }
}

/// `dst[m×n] (+)= aᵀ · b` where `a` is row-major `[k×m]` and `b` row-major `[k×n]`.
fn gemm_atb<T: Float>(m: usize, n: usize, k: usize, dst: &mut [T], a: &[T], b: &[T], acc: bool) {
    // SAFETY: as in gemm_abt.
    unsafe {
        gemm_raw::<T>(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            n as isize,
            a.as_ptr(),
            (1, m as isize),
            b.as_ptr(),
            (n as isize, 1),
            acc,
            par(m, n, k),
        )
    }
}

fn par(m: usize, n: usize, k: usize) -> Parallelism {
    if m == 0 || n == 0 || k == 0 {
        return Parallelism::None;
    }
    parallelism(m, n, k)
}

struct Saved<T> {
    /// Per processed step: the activated gates (and GRU's `W_hn h + b_hn`), `[T, B, saved·H]`.
    acts: Vec<T>,
    /// h before each processed step and after the last: `[T+1, B, H]`.
    hs: Vec<T>,
    /// c likewise (LSTM only).
    cs: Vec<T>,
}

/// Runs the recurrence. Returns `[T + states, B, H]` (outputs, then final h, then final c)
/// and what backward needs.
fn forward<T: Float>(
    geo: &Geom,
    xg: &[T],
    w: &[T],
    bh: Option<&[T]>,
    h0: &[T],
    c0: Option<&[T]>,
) -> (Vec<T>, Saved<T>) {
    let (tn, b, h, g) = (geo.steps, geo.batch, geo.hidden, geo.g());
    let a = geo.cell.saved() * h;
    let bh_n = b * h;
    let mut out = vec![T::ZERO; (tn + geo.cell.states()) * bh_n];
    let mut acts = vec![T::ZERO; tn * b * a];
    let mut hs = vec![T::ZERO; (tn + 1) * bh_n];
    hs[..bh_n].copy_from_slice(h0);
    let lstm = geo.cell == CellKind::Lstm;
    let mut cs = if lstm {
        vec![T::ZERO; (tn + 1) * bh_n]
    } else {
        Vec::new()
    };
    if let Some(c0) = c0 {
        cs[..bh_n].copy_from_slice(c0);
    }
    let mut hg = vec![T::ZERO; b * g];
    for k in 0..tn {
        let t = geo.time(k);
        let (hprev, hnext) = hs[k * bh_n..(k + 2) * bh_n].split_at_mut(bh_n);
        gemm_abt(b, g, h, &mut hg, hprev, w, false);
        if let Some(bias) = bh {
            for row in hg.chunks_mut(g) {
                row.iter_mut().zip(bias).for_each(|(v, &bb)| *v += bb);
            }
        }
        let (cprev, cnext) = if lstm {
            let (p, n) = cs[k * bh_n..(k + 2) * bh_n].split_at_mut(bh_n);
            (&p[..], n)
        } else {
            (&[][..], &mut [][..])
        };
        // Compiled for the widest vector unit: the gate activations are vectorizable.
        crate::simd::run(
            #[inline(always)]
            || {
                for r in 0..b {
                    let hp = &hprev[r * h..(r + 1) * h];
                    let hn = &mut hnext[r * h..(r + 1) * h];
                    if t >= geo.lengths[r] {
                        hn.copy_from_slice(hp);
                        if lstm {
                            cnext[r * h..(r + 1) * h].copy_from_slice(&cprev[r * h..(r + 1) * h]);
                        }
                        continue;
                    }
                    let x = &xg[(t * b + r) * g..(t * b + r + 1) * g];
                    let hgr = &hg[r * g..(r + 1) * g];
                    let act = &mut acts[(k * b + r) * a..(k * b + r + 1) * a];
                    match geo.cell {
                        CellKind::RnnTanh => {
                            for j in 0..h {
                                hn[j] = (x[j] + hgr[j]).fast_tanh();
                            }
                        }
                        CellKind::RnnRelu => {
                            for j in 0..h {
                                hn[j] = (x[j] + hgr[j]).max_nan(T::ZERO);
                            }
                        }
                        CellKind::Gru => {
                            for j in 0..h {
                                let rg = sigmoid(x[j] + hgr[j]);
                                let zg = sigmoid(x[h + j] + hgr[h + j]);
                                let hnj = hgr[2 * h + j];
                                let ng = (x[2 * h + j] + rg * hnj).fast_tanh();
                                hn[j] = (T::ONE - zg) * ng + zg * hp[j];
                                act[j] = rg;
                                act[h + j] = zg;
                                act[2 * h + j] = ng;
                                act[3 * h + j] = hnj;
                            }
                        }
                        CellKind::Lstm => {
                            let cp = &cprev[r * h..(r + 1) * h];
                            let cn = &mut cnext[r * h..(r + 1) * h];
                            for j in 0..h {
                                let ig = sigmoid(x[j] + hgr[j]);
                                let fg = sigmoid(x[h + j] + hgr[h + j]);
                                let gg = (x[2 * h + j] + hgr[2 * h + j]).fast_tanh();
                                let og = sigmoid(x[3 * h + j] + hgr[3 * h + j]);
                                let c = fg * cp[j] + ig * gg;
                                cn[j] = c;
                                hn[j] = og * c.fast_tanh();
                                act[j] = ig;
                                act[h + j] = fg;
                                act[2 * h + j] = gg;
                                act[3 * h + j] = og;
                            }
                        }
                    }
                    out[(t * b + r) * h..(t * b + r + 1) * h].copy_from_slice(hn);
                }
            },
        );
    }
    out[tn * bh_n..(tn + 1) * bh_n].copy_from_slice(&hs[tn * bh_n..]);
    if lstm {
        out[(tn + 1) * bh_n..].copy_from_slice(&cs[tn * bh_n..]);
    }
    (out, Saved { acts, hs, cs })
}

struct Grads<T> {
    xg: Vec<T>,
    w: Vec<T>,
    b: Vec<T>,
    h0: Vec<T>,
    c0: Vec<T>,
}

/// Backpropagation through time. `gout` is the gradient of the `[T + states, B, H]` output.
fn backward<T: Float>(geo: &Geom, gout: &[T], w: &[T], s: &Saved<T>) -> Grads<T> {
    let (tn, b, h, g) = (geo.steps, geo.batch, geo.hidden, geo.g());
    let a = geo.cell.saved() * h;
    let bh_n = b * h;
    let lstm = geo.cell == CellKind::Lstm;
    let mut dh = gout[tn * bh_n..(tn + 1) * bh_n].to_vec();
    let mut dc = if lstm {
        gout[(tn + 1) * bh_n..(tn + 2) * bh_n].to_vec()
    } else {
        Vec::new()
    };
    let mut dxg = vec![T::ZERO; tn * b * g];
    // ∂(h·W_hhᵀ + b_hh) per processed step, for the single ∂W_hh product at the end.
    let mut dhg = vec![T::ZERO; tn * b * g];
    let mut dh_prev = vec![T::ZERO; bh_n];
    for k in (0..tn).rev() {
        let t = geo.time(k);
        let hp_all = &s.hs[k * bh_n..(k + 1) * bh_n];
        let hn_all = &s.hs[(k + 1) * bh_n..(k + 2) * bh_n];
        let dhg_k = &mut dhg[k * b * g..(k + 1) * b * g];
        for r in 0..b {
            let dhr = &mut dh[r * h..(r + 1) * h];
            let dpr = &mut dh_prev[r * h..(r + 1) * h];
            if t >= geo.lengths[r] {
                // Padded step: state passes through unchanged, so does its gradient.
                dpr.copy_from_slice(dhr);
                continue;
            }
            let gy = &gout[(t * b + r) * h..(t * b + r + 1) * h];
            let act = &s.acts[(k * b + r) * a..(k * b + r + 1) * a];
            let dx = &mut dxg[(t * b + r) * g..(t * b + r + 1) * g];
            let dg = &mut dhg_k[r * g..(r + 1) * g];
            let hn = &hn_all[r * h..(r + 1) * h];
            match geo.cell {
                CellKind::RnnTanh | CellKind::RnnRelu => {
                    for j in 0..h {
                        let d = dhr[j] + gy[j];
                        let dp = if geo.cell == CellKind::RnnTanh {
                            d * (T::ONE - hn[j] * hn[j])
                        } else if hn[j] > T::ZERO {
                            d
                        } else {
                            T::ZERO
                        };
                        dx[j] = dp;
                        dg[j] = dp;
                        dpr[j] = T::ZERO;
                    }
                }
                CellKind::Gru => {
                    let hp = &hp_all[r * h..(r + 1) * h];
                    for j in 0..h {
                        let d = dhr[j] + gy[j];
                        let (rg, zg, ng, hnj) =
                            (act[j], act[h + j], act[2 * h + j], act[3 * h + j]);
                        let dn = d * (T::ONE - zg) * (T::ONE - ng * ng);
                        let dz = d * (hp[j] - ng) * zg * (T::ONE - zg);
                        let dr = dn * hnj * rg * (T::ONE - rg);
                        dx[j] = dr;
                        dx[h + j] = dz;
                        dx[2 * h + j] = dn;
                        dg[j] = dr;
                        dg[h + j] = dz;
                        dg[2 * h + j] = dn * rg;
                        dpr[j] = d * zg;
                    }
                }
                CellKind::Lstm => {
                    let cp = &s.cs[k * bh_n + r * h..k * bh_n + (r + 1) * h];
                    let cn = &s.cs[(k + 1) * bh_n + r * h..(k + 1) * bh_n + (r + 1) * h];
                    let dcr = &mut dc[r * h..(r + 1) * h];
                    for j in 0..h {
                        let d = dhr[j] + gy[j];
                        let (ig, fg, gg, og) = (act[j], act[h + j], act[2 * h + j], act[3 * h + j]);
                        let tc = cn[j].fast_tanh();
                        let dcj = dcr[j] + d * og * (T::ONE - tc * tc);
                        let di = dcj * gg * ig * (T::ONE - ig);
                        let df = dcj * cp[j] * fg * (T::ONE - fg);
                        let dgg = dcj * ig * (T::ONE - gg * gg);
                        let do_ = d * tc * og * (T::ONE - og);
                        dx[j] = di;
                        dx[h + j] = df;
                        dx[2 * h + j] = dgg;
                        dx[3 * h + j] = do_;
                        dg[j] = di;
                        dg[h + j] = df;
                        dg[2 * h + j] = dgg;
                        dg[3 * h + j] = do_;
                        dcr[j] = dcj * fg;
                        dpr[j] = T::ZERO;
                    }
                }
            }
        }
        // Padded rows have a zero dhg row, so the product adds nothing to their pass-through.
        gemm_ab(b, h, g, &mut dh_prev, dhg_k, w, true);
        std::mem::swap(&mut dh, &mut dh_prev);
    }
    let mut dw = vec![T::ZERO; g * h];
    gemm_atb(g, h, tn * b, &mut dw, &dhg, &s.hs[..tn * bh_n], false);
    let mut db = vec![T::ZERO; g];
    for row in dhg.chunks(g) {
        db.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
    }
    Grads {
        xg: dxg,
        w: dw,
        b: db,
        h0: dh,
        c0: dc,
    }
}

/// Checks one operand's shape.
fn expect(what: &str, t: &Tensor, shape: &[usize]) -> Result<()> {
    if t.shape() != shape {
        bail!(
            "recurrence",
            "{what} must have shape {shape:?}, found {:?}",
            t.shape()
        );
    }
    Ok(())
}

/// The same recurrence step by step from primitive ops, differentiated by autograd: the device
/// path until a fused device kernel exists.
fn composite(
    geo: &Geom,
    xg: &Tensor,
    w_hh: &Tensor,
    b_hh: Option<&Tensor>,
    h0: &Tensor,
    c0: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, hd, dev) = (geo.batch, geo.hidden, xg.device());
    let w_t = w_hh.t()?;
    let (mut h, mut c) = (h0.clone(), c0.cloned());
    let zeros = Tensor::zeros_on(&[b, hd], xg.dtype(), dev)?;
    let mut outs: Vec<Option<Tensor>> = vec![None; geo.steps];
    let order: Vec<usize> = if geo.reverse {
        (0..geo.steps).rev().collect()
    } else {
        (0..geo.steps).collect()
    };
    let sigmoid = |t: Tensor| t.sigmoid();
    for t in order {
        // Rows past their length keep their state and output zeros (as the fused kernel).
        let valid: Vec<u8> = geo.lengths.iter().map(|&l| (t < l) as u8).collect();
        let valid = Tensor::from_vec(valid, &[b, 1])?.to(dev)?;
        let x = xg.narrow(0, t, 1)?.squeeze(0)?;
        let mut hg = h.matmul(&w_t)?;
        if let Some(bb) = b_hh {
            hg = hg.add(bb)?;
        }
        let part = |m: &Tensor, k: usize| m.narrow(1, k * hd, hd);
        let (hn, cn) = match geo.cell {
            CellKind::RnnTanh => (x.add(&hg)?.tanh()?, None),
            CellKind::RnnRelu => (x.add(&hg)?.relu()?, None),
            CellKind::Gru => {
                let r = sigmoid(part(&x, 0)?.add(&part(&hg, 0)?)?)?;
                let z = sigmoid(part(&x, 1)?.add(&part(&hg, 1)?)?)?;
                let n = part(&x, 2)?.add(&r.mul(&part(&hg, 2)?)?)?.tanh()?;
                (z.neg()?.add_scalar(1.0)?.mul(&n)?.add(&z.mul(&h)?)?, None)
            }
            CellKind::Lstm => {
                let gates = x.add(&hg)?;
                let i = sigmoid(part(&gates, 0)?)?;
                let f = sigmoid(part(&gates, 1)?)?;
                let g = part(&gates, 2)?.tanh()?;
                let o = sigmoid(part(&gates, 3)?)?;
                let prev = c.as_ref().expect("an LSTM has a cell state");
                let cn = f.mul(prev)?.add(&i.mul(&g)?)?;
                (o.mul(&cn.tanh()?)?, Some(cn))
            }
        };
        outs[t] = Some(valid.where_cond(&hn, &zeros)?);
        h = valid.where_cond(&hn, &h)?;
        if let (Some(cn), Some(cp)) = (cn, c.as_ref()) {
            c = Some(valid.where_cond(&cn, cp)?);
        }
    }
    let mut parts: Vec<Tensor> = outs
        .into_iter()
        .map(|o| o.expect("every step ran"))
        .collect();
    parts.push(h);
    parts.extend(c);
    Tensor::stack(&parts, 0)
}

/// Runs `cell` over a whole sequence in one fused op.
///
/// * `xg`: `[T, B, gates·H]`, the input projection `x·W_ihᵀ + b_ih` of every step;
/// * `w_hh`: `[gates·H, H]`; `b_hh`: `[gates·H]` or none;
/// * `h0` (and `c0` for LSTM): `[B, H]`;
/// * `lengths`: valid steps per batch row (each ≤ T); none means all T;
/// * `reverse`: run from each row's last valid step back to step 0.
///
/// Returns `[T + S, B, H]`: the T outputs (zeros at padded steps), then the final h and, for
/// LSTM (S = 2), the final c.
#[allow(clippy::too_many_arguments)]
pub fn recurrence(
    cell: CellKind,
    xg: &Tensor,
    w_hh: &Tensor,
    b_hh: Option<&Tensor>,
    h0: &Tensor,
    c0: Option<&Tensor>,
    lengths: Option<&[usize]>,
    reverse: bool,
) -> Result<Tensor> {
    super::float::check_float_on("recurrence", xg)?;
    if xg.rank() != 3 || w_hh.rank() != 2 {
        bail!(
            "recurrence",
            "xg must be [T, B, gates*H] and w_hh [gates*H, H], found {:?} and {:?}",
            xg.shape(),
            w_hh.shape()
        );
    }
    let (steps, batch) = (xg.shape()[0], xg.shape()[1]);
    let hidden = w_hh.shape()[1];
    let g = cell.gates() * hidden;
    expect("xg", xg, &[steps, batch, g])?;
    expect("w_hh", w_hh, &[g, hidden])?;
    expect("h0", h0, &[batch, hidden])?;
    check_same_dtype("recurrence", xg, w_hh)?;
    check_same_dtype("recurrence", xg, h0)?;
    if let Some(bb) = b_hh {
        expect("b_hh", bb, &[g])?;
        check_same_dtype("recurrence", xg, bb)?;
    }
    match (cell == CellKind::Lstm, c0) {
        (true, Some(c)) => {
            expect("c0", c, &[batch, hidden])?;
            check_same_dtype("recurrence", xg, c)?;
        }
        (true, None) => bail!("recurrence", "an LSTM needs an initial cell state c0"),
        (false, Some(_)) => bail!("recurrence", "only an LSTM takes a cell state c0"),
        (false, None) => {}
    }
    let lengths = match lengths {
        Some(l) => {
            if l.len() != batch {
                bail!(
                    "recurrence",
                    "lengths has {} entries for a batch of {batch}",
                    l.len()
                );
            }
            if let Some((i, &bad)) = l.iter().enumerate().find(|(_, &v)| v > steps) {
                bail!(
                    "recurrence",
                    "lengths[{i}] = {bad} exceeds the {steps} steps of the input"
                );
            }
            l.to_vec()
        }
        None => vec![steps; batch],
    };
    let geo = Geom {
        cell,
        steps,
        batch,
        hidden,
        reverse,
        lengths,
    };
    if crate::tensor::on_gpu(&[xg]) {
        return composite(&geo, xg, w_hh, b_hh, h0, c0);
    }
    xg.cpu_only("recurrence")?;
    let states = cell.states();
    let out_shape = [steps + states, batch, hidden];
    let mut inputs: Vec<&Tensor> = vec![xg, w_hh];
    inputs.extend(b_hh);
    inputs.push(h0);
    inputs.extend(c0);
    let has_b = b_hh.is_some();
    float_dispatch!(xg.dtype(), T => {
        let (out, saved) = with_contig::<T, _>(xg, |x| with_contig::<T, _>(w_hh, |w| with_contig::<T, _>(h0, |h0v| {
            let bv = b_hh.map(|bb| with_contig::<T, _>(bb, |v| v.to_vec()));
            let cv = c0.map(|c| with_contig::<T, _>(c, |v| v.to_vec()));
            forward::<T>(&geo, x, w, bv.as_deref(), h0v, cv.as_deref())
        })));
        let (storage, layout) = wrap(out, &out_shape);
        let wsaved = w_hh.detach();
        Ok(Tensor::op_result("recurrence", storage, layout, &inputs, move || {
            Box::new(move |gy, needs| {
                let gr = with_contig::<T, _>(gy, |gv| with_contig::<T, _>(&wsaved, |w| backward::<T>(&geo, gv, w, &saved)));
                let mk = |v: Vec<T>, shape: &[usize]| {
                    let (s, l) = wrap(v, shape);
                    Tensor::from_parts(s, l)
                };
                let (b, h, g) = (geo.batch, geo.hidden, geo.g());
                let mut grads = vec![Some(mk(gr.xg, &[geo.steps, b, g])), Some(mk(gr.w, &[g, h]))];
                if has_b {
                    grads.push(Some(mk(gr.b, &[g])));
                }
                grads.push(Some(mk(gr.h0, &[b, h])));
                if geo.cell == CellKind::Lstm {
                    grads.push(Some(mk(gr.c0, &[b, h])));
                }
                for (gi, &need) in grads.iter_mut().zip(needs) {
                    if !need {
                        *gi = None;
                    }
                }
                Ok(grads)
            })
        }))
    })
}
