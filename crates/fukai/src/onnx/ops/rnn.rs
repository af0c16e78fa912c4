//! The recurrent operators RNN, GRU and LSTM, unrolled over time with fukai ops so they stay
//! differentiable. Gate orders are ONNX's: LSTM i, o, f, c; GRU z, r, h.

use super::super::attr::Node;
use super::util::{compute_dtype, ints};
use crate::error::Result;
use crate::Tensor;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rnn,
    Gru,
    Lstm,
}

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    let kind = match node.op_type() {
        "RNN" => Kind::Rnn,
        "GRU" => Kind::Gru,
        "LSTM" => Kind::Lstm,
        _ => return None,
    };
    Some(recurrent(node, kind))
}

#[derive(Clone, Copy)]
enum Act {
    Sigmoid,
    Tanh,
    Relu,
}

impl Act {
    fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Act::Sigmoid => x.sigmoid(),
            Act::Tanh => x.tanh(),
            Act::Relu => x.relu(),
        }
    }
}

fn recurrent(node: &Node, kind: Kind) -> Result<Vec<Tensor>> {
    let x0 = node.input(0)?;
    let dt = x0.dtype();
    let cd = compute_dtype(dt);
    let get = |i: usize| -> Result<Option<Tensor>> {
        node.opt_input(i)
            .map(|t| node.ctx(t.to_dtype(cd)))
            .transpose()
    };
    let layout = node.i("layout", 0)?;
    let mut x = get(0)?.ok_or_else(|| node.err("input X is required"))?;
    if layout == 1 {
        x = node.ctx(x.transpose(0, 1))?;
    }
    let w = get(1)?.ok_or_else(|| node.err("input W is required"))?;
    let rw = get(2)?.ok_or_else(|| node.err("input R is required"))?;
    let b = get(3)?;
    let (seq, batch) = (x.shape()[0], x.shape()[1]);
    let hidden = node
        .opt_i("hidden_size")?
        .map(|h| h as usize)
        .unwrap_or(rw.shape()[2]);
    let g = match kind {
        Kind::Rnn => 1,
        Kind::Gru => 3,
        Kind::Lstm => 4,
    };
    let direction = node.s("direction")?.unwrap_or_else(|| "forward".into());
    let dirs: Vec<bool> = match direction.as_str() {
        "forward" => vec![false],
        "reverse" => vec![true],
        "bidirectional" => vec![false, true],
        d => return Err(node.err(format!("direction {d:?}"))),
    };
    if node.has("clip") {
        return Err(node.unsupported("clip"));
    }
    if kind == Kind::Lstm && node.i("input_forget", 0)? != 0 {
        return Err(node.unsupported("input_forget"));
    }
    let lbr = kind == Kind::Gru && node.i("linear_before_reset", 0)? != 0;
    let acts: Vec<Act> = match node
        .proto
        .attribute
        .iter()
        .find(|a| a.name() == "activations")
    {
        None => match kind {
            Kind::Rnn => vec![Act::Tanh; 2],
            Kind::Gru => vec![Act::Sigmoid, Act::Tanh, Act::Sigmoid, Act::Tanh],
            Kind::Lstm => [Act::Sigmoid, Act::Tanh, Act::Tanh].repeat(2),
        },
        Some(a) => a
            .strings
            .iter()
            .map(
                |s| match String::from_utf8_lossy(s).to_ascii_lowercase().as_str() {
                    "sigmoid" => Ok(Act::Sigmoid),
                    "tanh" => Ok(Act::Tanh),
                    "relu" => Ok(Act::Relu),
                    other => Err(node.unsupported(format!("activation {other:?}"))),
                },
            )
            .collect::<Result<_>>()?,
    };
    let per_dir = match kind {
        Kind::Rnn => 1,
        Kind::Gru => 2,
        Kind::Lstm => 3,
    };
    let lens = match node.opt_input(4) {
        Some(t) => Some(ints(node, t)?),
        None => None,
    };
    let full = lens
        .as_ref()
        .is_none_or(|l| l.iter().all(|&n| n as usize == seq));
    let init = |i: usize| -> Result<Option<Tensor>> {
        let t = get(i)?;
        Ok(match t {
            Some(t) if layout == 1 => Some(node.ctx(t.transpose(0, 1))?),
            t => t,
        })
    };
    let h0 = init(5)?;
    let c0 = if kind == Kind::Lstm { init(6)? } else { None };
    let p = if kind == Kind::Lstm { get(7)? } else { None };
    let dev = x.device();
    let zeros = || node.ctx(Tensor::full_on(&[batch, hidden], 0.0, cd, dev));
    // mask[t]: [batch, 1], 1 where step t is inside that sequence.
    let masks: Option<Vec<Tensor>> = if full {
        None
    } else {
        let l = lens.as_deref().unwrap_or(&[]);
        Some(
            (0..seq)
                .map(|t| {
                    let v: Vec<f64> = l.iter().map(|&n| f64::from((t as i64) < n)).collect();
                    node.ctx(
                        Tensor::from_vec(v, &[batch, 1])
                            .and_then(|m| m.to_dtype(cd))
                            .and_then(|m| m.to(dev)),
                    )
                })
                .collect::<Result<_>>()?,
        )
    };
    let mut ys: Vec<Vec<Tensor>> = Vec::new();
    let (mut hn, mut cn) = (Vec::new(), Vec::new());
    for (di, &rev) in dirs.iter().enumerate() {
        if rev && masks.is_some() {
            return Err(node.unsupported("sequence_lens with a reverse direction"));
        }
        let a = &acts[di * per_dir..];
        let sel = |t: &Tensor| node.ctx(t.narrow(0, di, 1).and_then(|t| t.squeeze(0)));
        let wt = node.ctx(sel(&w)?.t())?;
        let rt = node.ctx(sel(&rw)?.t())?;
        let (wb, rb) = match &b {
            Some(b) => {
                let b = sel(b)?;
                (
                    Some(node.ctx(b.narrow(0, 0, g * hidden))?),
                    Some(node.ctx(b.narrow(0, g * hidden, g * hidden))?),
                )
            }
            None => (None, None),
        };
        let mut h = match &h0 {
            Some(h) => sel(h)?,
            None => zeros()?,
        };
        let mut c = match &c0 {
            Some(c) => sel(c)?,
            None => zeros()?,
        };
        let pp = p.as_ref().map(sel).transpose()?;
        let mut out = vec![None; seq];
        for s in 0..seq {
            let t = if rev { seq - 1 - s } else { s };
            let step = || -> Result<(Tensor, Tensor)> {
                let xt = x.narrow(0, t, 1)?.squeeze(0)?;
                let mut gx = xt.matmul(&wt)?;
                if let Some(wb) = &wb {
                    gx = gx.add(wb)?;
                }
                let gate = |m: &Tensor, k: usize| m.narrow(1, k * hidden, hidden);
                let rbk = |k: usize| -> Result<Option<Tensor>> {
                    rb.as_ref()
                        .map(|r| r.narrow(0, k * hidden, hidden))
                        .transpose()
                };
                Ok(match kind {
                    Kind::Rnn => {
                        let mut z = gx.add(&h.matmul(&rt)?)?;
                        if let Some(r) = &rb {
                            z = z.add(r)?;
                        }
                        (a[0].apply(&z)?, c.clone())
                    }
                    Kind::Gru => {
                        let rtk = |k: usize| rt.narrow(1, k * hidden, hidden);
                        let pre = |k: usize, hh: &Tensor| -> Result<Tensor> {
                            let mut v = hh.matmul(&rtk(k)?)?;
                            if let Some(r) = rbk(k)? {
                                v = v.add(&r)?;
                            }
                            Ok(v)
                        };
                        let z = a[0].apply(&gate(&gx, 0)?.add(&pre(0, &h)?)?)?;
                        let r = a[0].apply(&gate(&gx, 1)?.add(&pre(1, &h)?)?)?;
                        let hh = if lbr {
                            gate(&gx, 2)?.add(&r.mul(&pre(2, &h)?)?)?
                        } else {
                            gate(&gx, 2)?.add(&pre(2, &r.mul(&h)?)?)?
                        };
                        let hh = a[1].apply(&hh)?;
                        // (1 - z) * hh + z * h
                        let hn = hh.add(&z.mul(&h.sub(&hh)?)?)?;
                        (hn, c.clone())
                    }
                    Kind::Lstm => {
                        let mut gs = gx.add(&h.matmul(&rt)?)?;
                        if let Some(r) = &rb {
                            gs = gs.add(r)?;
                        }
                        let peep = |k: usize, cc: &Tensor| -> Result<Option<Tensor>> {
                            pp.as_ref()
                                .map(|p| p.narrow(0, k * hidden, hidden)?.mul(cc))
                                .transpose()
                        };
                        let with_peep = |v: Tensor, k: usize, cc: &Tensor| -> Result<Tensor> {
                            match peep(k, cc)? {
                                Some(pv) => v.add(&pv),
                                None => Ok(v),
                            }
                        };
                        let i = a[0].apply(&with_peep(gate(&gs, 0)?, 0, &c)?)?;
                        let f = a[0].apply(&with_peep(gate(&gs, 2)?, 2, &c)?)?;
                        let cc = a[1].apply(&gate(&gs, 3)?)?;
                        let cn = f.mul(&c)?.add(&i.mul(&cc)?)?;
                        let o = a[0].apply(&with_peep(gate(&gs, 1)?, 1, &cn)?)?;
                        (o.mul(&a[2].apply(&cn)?)?, cn)
                    }
                })
            };
            let (hn_t, cn_t) = node.ctx(step())?;
            let (hn_t, cn_t, y) = match &masks {
                Some(m) => {
                    // Past a sequence's end its state holds and its output is zero.
                    let m = &m[t];
                    let keep = |new: &Tensor, old: &Tensor| -> Result<Tensor> {
                        old.add(&new.sub(old)?.mul(m)?)
                    };
                    let y = node.ctx(hn_t.mul(m))?;
                    (node.ctx(keep(&hn_t, &h))?, node.ctx(keep(&cn_t, &c))?, y)
                }
                None => (hn_t.clone(), cn_t, hn_t),
            };
            h = hn_t;
            c = cn_t;
            out[t] = Some(y);
        }
        ys.push(
            out.into_iter()
                .map(|y| y.expect("every step ran"))
                .collect(),
        );
        hn.push(h);
        cn.push(c);
    }
    let steps = (0..seq)
        .map(|t| Tensor::stack(&ys.iter().map(|d| d[t].clone()).collect::<Vec<_>>(), 0))
        .collect::<Result<Vec<_>>>();
    let mut y = node.ctx(steps.and_then(|s| Tensor::stack(&s, 0)))?;
    let mut yh = node.ctx(Tensor::stack(&hn, 0))?;
    let mut yc = node.ctx(Tensor::stack(&cn, 0))?;
    if layout == 1 {
        y = node.ctx(y.permute(&[2, 0, 1, 3]))?;
        yh = node.ctx(yh.transpose(0, 1))?;
        yc = node.ctx(yc.transpose(0, 1))?;
    }
    let mut outs = vec![y, yh];
    if kind == Kind::Lstm {
        outs.push(yc);
    }
    outs.into_iter()
        .map(|t| node.ctx(t.contiguous().and_then(|t| t.to_dtype(dt))))
        .collect()
}
