//! One optimizer step's micro-batches, from whichever ranks computed them, combined in one
//! order: gradients added in micro-batch order, batch-norm running statistics replayed in that
//! order, loss and accuracy counted in that order. One process and N ranks run this same code
//! over the same micro-batch results, so they reach the same bits.

use crate::distributed::Collective;
use crate::error::{op_err, Result};
use crate::io::{parse_safetensors, serialize_safetensors};
use crate::nn::RunningUpdate;
use crate::tensor::Tensor;
use std::collections::HashMap;

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

fn f64s(v: &[f64]) -> Result<Tensor> {
    Tensor::from_vec(v.to_vec(), &[v.len()])
}

/// `micros` as bytes another rank can decode against its own [`Targets`].
fn encode(micros: &[Micro], t: &Targets) -> Result<Vec<u8>> {
    let mut out: Vec<(String, Tensor)> = Vec::new();
    for (k, m) in micros.iter().enumerate() {
        out.push((
            format!("{k}.r"),
            f64s(&[m.index as f64, m.loss, m.rows as f64, m.correct as f64])?,
        ));
        for (i, g) in m.grads.iter().enumerate() {
            if let Some(g) = g {
                out.push((format!("{k}.g{i}"), g.clone()));
            }
        }
        for (j, s) in m.stats.iter().enumerate() {
            let at = [
                t.state_index(&s.mean)? as f64,
                t.state_index(&s.var)? as f64,
                t.state_index(&s.tracked)? as f64,
                s.momentum,
            ];
            out.push((format!("{k}.s{j}.at"), f64s(&at)?));
            out.push((format!("{k}.s{j}.m"), s.batch_mean.clone()));
            out.push((format!("{k}.s{j}.v"), s.batch_var.clone()));
        }
    }
    let mut meta = HashMap::new();
    meta.insert("micros".to_string(), micros.len().to_string());
    serialize_safetensors(&out, Some(&meta))
}

/// The micro-batch results another rank encoded.
fn decode(bytes: &[u8], rank: usize, t: &Targets) -> Result<Vec<Micro>> {
    let src = format!("micro-batch results from rank {rank}");
    let file = parse_safetensors(bytes, &src)?;
    let bad = |msg: String| op_err("train", format!("{src}: {msg}"));
    let n: usize = file
        .metadata()
        .get("micros")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("no micro-batch count".into()))?;
    let f64_at = |name: &str, len: usize| -> Result<Vec<f64>> {
        let v = file.tensor(name)?.to_vec_f64()?;
        if v.len() != len {
            return Err(bad(format!(
                "{name} has {} values, expected {len}",
                v.len()
            )));
        }
        Ok(v)
    };
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let r = f64_at(&format!("{k}.r"), 4)?;
        let mut grads = Vec::with_capacity(t.params.len());
        for (i, p) in t.params.iter().enumerate() {
            let g = file.get(&format!("{k}.g{i}")).cloned();
            if let Some(g) = &g {
                if g.shape() != p.shape() || g.dtype() != p.dtype() {
                    return Err(bad(format!(
                        "gradient {i} is {:?} {}, the parameter {:?} {}",
                        g.shape(),
                        g.dtype(),
                        p.shape(),
                        p.dtype()
                    )));
                }
            }
            grads.push(g);
        }
        let mut stats = Vec::new();
        for j in 0.. {
            let Some(at) = file.get(&format!("{k}.s{j}.at")) else {
                break;
            };
            let at = at.to_vec_f64()?;
            let buf = |x: f64| -> Result<Tensor> {
                t.state
                    .get(x as usize)
                    .cloned()
                    .ok_or_else(|| bad(format!("buffer index {x} is out of range")))
            };
            if at.len() != 4 {
                return Err(bad(format!("{k}.s{j}.at has {} values", at.len())));
            }
            stats.push(RunningUpdate {
                mean: buf(at[0])?,
                var: buf(at[1])?,
                tracked: buf(at[2])?,
                momentum: at[3],
                batch_mean: file.tensor(&format!("{k}.s{j}.m"))?.clone(),
                batch_var: file.tensor(&format!("{k}.s{j}.v"))?.clone(),
            });
        }
        out.push(Micro {
            index: r[0] as usize,
            loss: r[1],
            rows: r[2] as u64,
            correct: r[3] as u64,
            grads,
            stats,
        });
    }
    Ok(out)
}

/// Every rank's micro-batch results of this step, in micro-batch order (this rank's own are
/// used as they are; a group of one exchanges nothing).
pub(super) fn gather(group: &dyn Collective, mine: Vec<Micro>, t: &Targets) -> Result<Vec<Micro>> {
    if group.size() == 1 {
        return Ok(mine);
    }
    let blobs = group.all_gather(&encode(&mine, t)?)?;
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
    for m in micros {
        for s in &m.stats {
            s.apply()?;
        }
    }
    Ok(())
}
