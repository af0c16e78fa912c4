//! One optimizer step's micro-batches, from whichever ranks computed them, combined in one
//! order: gradients added in micro-batch order, batch-norm running statistics replayed in that
//! order, loss and accuracy counted in that order. One process and N ranks run this same code
//! over the same micro-batch results, so they reach the same bits.

use super::hooks::DataParallel;
use crate::distributed::Collective;
use crate::error::{op_err, Result};
use crate::nn::RunningUpdate;
use crate::tensor::{DType, Tensor};
use std::time::Instant;

/// What training on one micro-batch produced.
pub(super) struct Micro {
    /// Position of the micro-batch in its epoch.
    pub index: usize,
    /// Each parameter's gradient (none where backward did not reach it).
    pub grads: Vec<Option<Tensor>>,
    /// Batch-norm running-statistics updates, in the order the forward made them.
    pub stats: Vec<RunningUpdate>,
    pub loss: f64,
    pub rows: u64,
    pub correct: u64,
}

/// The tensors a micro-batch result refers to: the model's parameters and its state (whose
/// buffers the running statistics update), the same on every rank.
pub(super) struct Targets {
    pub params: Vec<Tensor>,
    pub state: Vec<Tensor>,
}

impl Targets {
    fn state_index(&self, t: &Tensor) -> Result<usize> {
        self.state
            .iter()
            .position(|s| s.shares_storage(t))
            .ok_or_else(|| {
                op_err(
                    "train",
                    "a batch-norm layer updated a buffer that is not in the model's state dict",
                )
            })
    }
}

/// Appends a tensor's values: f32 as they are, any other float type widened to f64 (exact,
/// and narrowed back exactly on decoding).
fn put_tensor(out: &mut Vec<u8>, t: &Tensor) -> Result<()> {
    if t.dtype() == DType::F32 {
        let at = out.len();
        out.resize(at + 4 * t.numel(), 0);
        crate::ops::float::with_contig::<f32, _>(t, |v| {
            for (c, x) in out[at..].chunks_exact_mut(4).zip(v) {
                c.copy_from_slice(&x.to_le_bytes());
            }
        });
    } else {
        let v = t.to_vec_f64()?;
        let at = out.len();
        out.resize(at + 8 * v.len(), 0);
        for (c, x) in out[at..].chunks_exact_mut(8).zip(&v) {
            c.copy_from_slice(&x.to_le_bytes());
        }
    }
    Ok(())
}

fn put(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_le_bytes());
}

/// `micros` as bytes another rank can decode against its own [`Targets`] (same model, so
/// shapes and dtypes are known to both sides and not sent).
fn encode(micros: &[Micro], t: &Targets) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    put(&mut out, micros.len() as u64);
    for m in micros {
        put(&mut out, m.index as u64);
        put(&mut out, m.loss.to_bits());
        put(&mut out, m.rows);
        put(&mut out, m.correct);
        put(&mut out, m.stats.len() as u64);
        for (g, p) in m.grads.iter().zip(&t.params) {
            match g {
                Some(g) if g.dtype() == p.dtype() && g.shape() == p.shape() => {
                    out.push(1);
                    put_tensor(&mut out, g)?;
                }
                Some(g) => {
                    return Err(op_err(
                        "train",
                        format!(
                            "a gradient is {:?} {} for a parameter {:?} {}",
                            g.shape(),
                            g.dtype(),
                            p.shape(),
                            p.dtype()
                        ),
                    ))
                }
                None => out.push(0),
            }
        }
        for s in &m.stats {
            if s.batch_mean.dtype() != s.mean.dtype() || s.batch_var.dtype() != s.var.dtype() {
                return Err(op_err(
                    "train",
                    format!(
                        "data-parallel batch norm: batch statistics in {} for running buffers in {}",
                        s.batch_mean.dtype(),
                        s.mean.dtype()
                    ),
                ));
            }
            for b in [&s.mean, &s.var, &s.tracked] {
                put(&mut out, t.state_index(b)? as u64);
            }
            put(&mut out, s.momentum.to_bits());
            put(&mut out, s.shared as u64);
            put_tensor(&mut out, &s.batch_mean)?;
            put_tensor(&mut out, &s.batch_var)?;
        }
    }
    Ok(out)
}

/// Reads what [`encode`] wrote, checking every length against the receiving model.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    rank: usize,
}

impl Reader<'_> {
    fn bad(&self, msg: &str) -> crate::Error {
        op_err(
            "train",
            format!(
                "micro-batch results from rank {} at byte {}: {msg} (do all ranks run the same model?)",
                self.rank, self.at
            ),
        )
    }
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.bad("the data ends early"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    /// A tensor shaped and typed like `like`.
    fn tensor(&mut self, like: &Tensor) -> Result<Tensor> {
        let n = like.numel();
        if like.dtype() == DType::F32 {
            let b = self.take(n.checked_mul(4).ok_or_else(|| self.bad("size"))?)?;
            let v: Vec<f32> = b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            Tensor::from_vec(v, like.shape())
        } else {
            let b = self.take(n.checked_mul(8).ok_or_else(|| self.bad("size"))?)?;
            let v: Vec<f64> = b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            Tensor::from_vec(v, like.shape())?.to_dtype(like.dtype())
        }
    }
}

/// The micro-batch results another rank encoded.
fn decode(bytes: &[u8], rank: usize, t: &Targets) -> Result<Vec<Micro>> {
    let mut r = Reader { bytes, at: 0, rank };
    let n = r.u64()?;
    if n > bytes.len() as u64 {
        return Err(r.bad("impossible micro-batch count"));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let index = r.u64()? as usize;
        let loss = f64::from_bits(r.u64()?);
        let (rows, correct, nstats) = (r.u64()?, r.u64()?, r.u64()?);
        let mut grads = Vec::with_capacity(t.params.len());
        for p in &t.params {
            grads.push(match r.byte()? {
                0 => None,
                1 => Some(r.tensor(p)?),
                _ => return Err(r.bad("bad gradient marker")),
            });
        }
        let mut stats = Vec::new();
        for _ in 0..nstats {
            let mut buf = || -> Result<Tensor> {
                let i = r.u64()? as usize;
                t.state
                    .get(i)
                    .cloned()
                    .ok_or_else(|| r.bad("buffer index out of range"))
            };
            let (mean, var, tracked) = (buf()?, buf()?, buf()?);
            let momentum = f64::from_bits(r.u64()?);
            let shared = r.u64()? == 1;
            let batch_mean = r.tensor(&mean)?;
            let batch_var = r.tensor(&var)?;
            stats.push(RunningUpdate {
                mean,
                var,
                tracked,
                momentum,
                batch_mean,
                batch_var,
                shared,
            });
        }
        out.push(Micro {
            index,
            grads,
            stats,
            loss,
            rows,
            correct,
        });
    }
    if r.at != bytes.len() {
        return Err(r.bad("bytes left over"));
    }
    Ok(out)
}

/// Every rank's micro-batch results of this step, in micro-batch order (this rank's own are
/// used as they are; a group of one exchanges nothing).
pub(super) fn gather(
    group: &dyn Collective,
    mine: Vec<Micro>,
    t: &Targets,
    dp: &mut DataParallel,
) -> Result<Vec<Micro>> {
    if group.size() == 1 {
        return Ok(mine);
    }
    let bytes = encode(&mine, t)?;
    // The barrier measures how long this rank waits for the slowest: time no overlap of
    // communication with computation could hide.
    let t0 = Instant::now();
    group.barrier()?;
    let t1 = Instant::now();
    let blobs = group.all_gather(&bytes)?;
    dp.wait_seconds += (t1 - t0).as_secs_f64();
    dp.transfer_seconds += t1.elapsed().as_secs_f64();
    let mut all = Vec::new();
    let mut mine = Some(mine);
    for (r, b) in blobs.iter().enumerate() {
        if r == group.rank() {
            all.extend(mine.take().unwrap_or_default());
        } else {
            all.extend(decode(b, r, t)?);
        }
    }
    if all.windows(2).any(|w| w[0].index >= w[1].index) {
        return Err(op_err(
            "train",
            "the ranks' micro-batches are not in order: ranks disagree about the step",
        ));
    }
    Ok(all)
}

/// Sets each parameter's gradient to the sum of the micro-batch gradients, added in order, and
/// applies the running-statistics updates in order.
pub(super) fn combine(micros: &[Micro], t: &Targets) -> Result<()> {
    for (i, p) in t.params.iter().enumerate() {
        let mut acc: Option<Tensor> = None;
        for m in micros {
            if let Some(g) = &m.grads[i] {
                acc = Some(match acc {
                    None => g.clone(),
                    Some(a) => a.add(g)?,
                });
            }
        }
        p.set_grad(acc);
    }
    // A synchronized layer's update is the same in every micro-batch of the step: once.
    for (k, m) in micros.iter().enumerate() {
        for s in m.stats.iter().filter(|s| !s.shared || k == 0) {
            s.apply()?;
        }
    }
    Ok(())
}
