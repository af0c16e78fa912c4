//! The elementwise half of an LSTM step as one op: from the pre-activation gates (the output
//! of whatever produced them: a matmul, a convolution) and the cell state to (h', c'). A
//! ConvLSTM step otherwise records nine elementwise nodes, each writing a full-size tensor
//! forward and more backward; this one reads each gate once, and its backward recomputes the
//! activations from the saved gates instead of keeping them.
//!
//! Both states come out of one `[2, B, H, ...]` buffer (h', then c'), as contiguous views, so
//! the op stays a single autograd node with a single output.

use super::float::{check_float_on, check_same_dtype, with_contig, wrap, Float};
use super::recurrence::sigmoid;
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::parallel::{for_each_item, ELEMENTWISE_PAR_MIN};
use crate::tensor::Tensor;

/// Elements per parallel task; fixed, and elementwise work never reduces across tasks, so the
/// bits are the same at any thread count.
const SEG: usize = 1 << 14;

/// Runs `f` on every task, on the pool only when the whole op is big enough to pay for it.
fn run_tasks<I: Send>(tasks: Vec<I>, total: usize, f: impl Fn(I) + Sync + Send) {
    if total >= ELEMENTWISE_PAR_MIN {
        for_each_item(tasks, f);
    } else {
        tasks.into_iter().for_each(f);
    }
}

/// The activated gates of one element: σ(i), σ(f), tanh(g), σ(o).
#[inline(always)]
fn activate<T: Float>(gi: T, gf: T, gg: T, go: T) -> [T; 4] {
    [sigmoid(gi), sigmoid(gf), gg.fast_tanh(), sigmoid(go)]
}

/// `[2, B, n]`: h' then c', from gates `[B, 4, n]` and c `[B, n]`.
fn forward<T: Float>(gates: &[T], c: &[T], n: usize) -> Vec<T> {
    let total = c.len();
    let mut out = vec![T::ZERO; 2 * total];
    let (hs, cs) = out.split_at_mut(total);
    let mut tasks = Vec::new();
    for (r, (hr, cr)) in hs.chunks_mut(n).zip(cs.chunks_mut(n)).enumerate() {
        for (k, (h, cn)) in hr.chunks_mut(SEG).zip(cr.chunks_mut(SEG)).enumerate() {
            tasks.push((r, k * SEG, h, cn));
        }
    }
    run_tasks(tasks, total, |(r, start, h, cn)| {
        let len = h.len();
        let g = |k: usize| &gates[(4 * r + k) * n + start..][..len];
        let (gi, gf, gg, go) = (g(0), g(1), g(2), g(3));
        let cp = &c[r * n + start..][..len];
        crate::simd::run(
            #[inline(always)]
            || {
                for j in 0..len {
                    let [i, f, g, o] = activate(gi[j], gf[j], gg[j], go[j]);
                    let c = f * cp[j] + i * g;
                    cn[j] = c;
                    h[j] = o * c.fast_tanh();
                }
            },
        )
    });
    out
}

/// Gradients of the gates `[B, 4, n]` and of c `[B, n]` from the output's gradient `[2, B, n]`.
fn backward<T: Float>(gates: &[T], c: &[T], gy: &[T], n: usize) -> (Vec<T>, Vec<T>) {
    let total = c.len();
    let (dh, dc_out) = gy.split_at(total);
    let mut dgates = vec![T::ZERO; 4 * total];
    let mut dc = vec![T::ZERO; total];
    let mut tasks = Vec::new();
    for (r, (dgr, dcr)) in dgates.chunks_mut(4 * n).zip(dc.chunks_mut(n)).enumerate() {
        let mut d = dgr.chunks_mut(n).map(|d| d.chunks_mut(SEG));
        let mut next = || d.next().expect("four gates per row");
        let (di, df, dg, d_o) = (next(), next(), next(), next());
        for (k, ((((di, df), dg), d_o), dc)) in di
            .zip(df)
            .zip(dg)
            .zip(d_o)
            .zip(dcr.chunks_mut(SEG))
            .enumerate()
        {
            tasks.push((r, k * SEG, [di, df, dg, d_o], dc));
        }
    }
    run_tasks(tasks, total, |(r, start, [di, df, dg, d_o], dcp)| {
        let len = dcp.len();
        let g = |k: usize| &gates[(4 * r + k) * n + start..][..len];
        let (gi, gf, gg, go) = (g(0), g(1), g(2), g(3));
        let at = r * n + start..r * n + start + len;
        let (cp, dh, dcn) = (&c[at.clone()], &dh[at.clone()], &dc_out[at]);
        crate::simd::run(
            #[inline(always)]
            || {
                for j in 0..len {
                    let [i, f, g, o] = activate(gi[j], gf[j], gg[j], go[j]);
                    let tc = (f * cp[j] + i * g).fast_tanh();
                    let dcj = dcn[j] + dh[j] * o * (T::ONE - tc * tc);
                    di[j] = dcj * g * i * (T::ONE - i);
                    df[j] = dcj * cp[j] * f * (T::ONE - f);
                    dg[j] = dcj * i * (T::ONE - g * g);
                    d_o[j] = dh[j] * tc * o * (T::ONE - o);
                    dcp[j] = dcj * f;
                }
            },
        )
    });
    (dgates, dc)
}

/// Checks gates `[B, 4H, ...]` against c `[B, H, ...]`; returns (B, H·(spatial size)).
fn check(op: &'static str, gates: &Tensor, c: &Tensor) -> Result<(usize, usize)> {
    check_float_on(op, gates)?;
    check_same_dtype(op, gates, c)?;
    let (gs, cs) = (gates.shape(), c.shape());
    let fits = gs.len() >= 2
        && gs.len() == cs.len()
        && gs[0] == cs[0]
        && gs[1] == 4 * cs[1]
        && gs[2..] == cs[2..];
    if !fits {
        bail!(
            op,
            "needs gates [B, 4H, ...] and a cell state [B, H, ...] of the same batch and trailing dims, found gates {gs:?} and c {cs:?}"
        );
    }
    Ok((cs[0], cs[1..].iter().product()))
}

impl Tensor {
    /// The LSTM update from pre-activation gates `self` `[B, 4H, ...]` (chunks i, f, g, o along
    /// dim 1, PyTorch's order) and the cell state `c` `[B, H, ...]`: returns
    /// `h' = σ(o)·tanh(c')` and `c' = σ(f)·c + σ(i)·tanh(g)`. Any trailing dims (none for
    /// `nn.LSTM`-style gates, H x W for a ConvLSTM) are elementwise. One fused kernel on the
    /// CPU, [`Tensor::lstm_cell_composite`] elsewhere.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let gates = Tensor::zeros(&[1, 4, 2], DType::F32)?; // every gate pre-activation 0
    /// let c = Tensor::from_vec(vec![1.0f32, -2.0], &[1, 1, 2])?;
    /// let (h, c2) = gates.lstm_cell(&c)?;
    /// // σ(0) = 0.5 and tanh(0) = 0: c' = 0.5·c, h' = 0.5·tanh(c').
    /// assert_eq!(c2.to_vec::<f32>()?, [0.5, -1.0]);
    /// let h = h.to_vec::<f32>()?;
    /// assert!((h[0] - 0.5 * 0.5f32.tanh()).abs() < 1e-6);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn lstm_cell(&self, c: &Tensor) -> Result<(Tensor, Tensor)> {
        const OP: &str = "lstm_cell";
        let (b, n) = check(OP, self, c)?;
        if !self.device().is_cpu() || !c.device().is_cpu() {
            return self.lstm_cell_composite(c);
        }
        let dtype = self.dtype();
        let mut shape = vec![2];
        shape.extend_from_slice(c.shape());
        let (storage, layout) = float_dispatch!(dtype, T => with_contig::<T, _>(self, |g| {
            with_contig::<T, _>(c, |cv| wrap(forward(g, cv, n), &shape))
        }));
        let (gates, cs) = (self.detach(), c.detach());
        let out = Tensor::op_result(OP, storage, layout, &[self, c], move || {
            Box::new(move |gy, _| {
                let (dg, dc) = float_dispatch!(dtype, T => with_contig::<T, _>(&gates, |g| {
                    with_contig::<T, _>(&cs, |cv| with_contig::<T, _>(gy, |gy| {
                        let (dg, dc) = backward(g, cv, gy, n);
                        let (sg, lg) = wrap(dg, gates.shape());
                        let (sc, lc) = wrap(dc, cs.shape());
                        (Tensor::from_parts(sg, lg), Tensor::from_parts(sc, lc))
                    }))
                }));
                Ok(vec![Some(dg), Some(dc)])
            })
        });
        debug_assert_eq!(b * n * 2, out.numel());
        Ok((
            out.narrow(0, 0, 1)?.squeeze(0)?,
            out.narrow(0, 1, 1)?.squeeze(0)?,
        ))
    }

    /// [`Tensor::lstm_cell`] composed of chunk, sigmoid, tanh, mul and add: the reference the
    /// fused kernel is tested against, and its path on devices.
    pub fn lstm_cell_composite(&self, c: &Tensor) -> Result<(Tensor, Tensor)> {
        check("lstm_cell", self, c)?;
        let g = self.chunk(4, 1)?;
        let (i, f, cand, o) = (
            g[0].sigmoid()?,
            g[1].sigmoid()?,
            g[2].tanh()?,
            g[3].sigmoid()?,
        );
        let c = f.mul(c)?.add(&i.mul(&cand)?)?;
        Ok((o.mul(&c.tanh()?)?, c))
    }
}
