//! Recurrent layers (Elman RNN, GRU, LSTM): multi-layer, bidirectional, batch-first, with
//! initial states, dropout between layers and variable-length batches. Parameters are named and
//! shaped like PyTorch's `nn.RNN` / `nn.GRU` / `nn.LSTM` (`weight_ih_l0`, `bias_hh_l1_reverse`),
//! so a PyTorch state dict saved as safetensors loads as-is.

use super::{join, Module, TensorKind};
use crate::bail;
use crate::error::Result;
use crate::onnx::export::{layers::transpose, rnn::rnn_stack, Graph, Value};
use crate::ops::{recurrence, CellKind};
use crate::tensor::{DType, Tensor};

/// Layer options; `Default` is PyTorch's (1 layer, unidirectional, time-major, biases, no dropout).
///
/// ```
/// use fukai::nn::{Rnn, RnnOptions};
/// use fukai::{DType, Tensor};
/// let opts = RnnOptions { bidirectional: true, batch_first: true, ..RnnOptions::default() };
/// let gru = Rnn::gru(3, 5, opts)?;
/// let out = gru.forward_seq(&Tensor::randn(&[2, 7, 3], DType::F32)?, None, None)?;
/// assert_eq!(out.output.shape(), &[2, 7, 10]); // both directions side by side
/// assert_eq!(out.h_n.shape(), &[2, 2, 5]);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RnnOptions {
    /// Stacked layers.
    pub num_layers: usize,
    /// Run a second pass from the end of each sequence and concatenate both outputs.
    pub bidirectional: bool,
    /// Inputs and outputs are `[B, T, F]` instead of `[T, B, F]`.
    pub batch_first: bool,
    /// Dropout on each layer's output except the last, in training mode.
    pub dropout: f64,
    /// Whether the layers have `bias_ih` / `bias_hh`.
    pub bias: bool,
}

impl Default for RnnOptions {
    fn default() -> Self {
        RnnOptions {
            num_layers: 1,
            bidirectional: false,
            batch_first: false,
            dropout: 0.0,
            bias: true,
        }
    }
}

/// One direction of one layer.
struct DirParams {
    /// `l0`, `l0_reverse`, ...
    suffix: String,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Option<Tensor>,
    b_hh: Option<Tensor>,
}

/// What a recurrent layer returns.
///
/// ```
/// use fukai::nn::{Rnn, RnnOptions};
/// use fukai::{DType, Tensor};
/// let lstm = Rnn::lstm(3, 4, RnnOptions { batch_first: true, ..RnnOptions::default() })?;
/// let out = lstm.forward_seq(&Tensor::randn(&[2, 5, 3], DType::F32)?, None, Some(&[5, 2]))?;
/// assert_eq!(out.c_n.as_ref().unwrap().shape(), &[1, 2, 4]);
/// // Steps after a row's length are zeros; its final state is the one at its last valid step.
/// let row1 = out.output.narrow(0, 1, 1)?;
/// assert!(row1.narrow(1, 2, 3)?.to_vec::<f32>()?.iter().all(|&v| v == 0.0));
/// assert_eq!(row1.narrow(1, 1, 1)?.to_vec::<f32>()?, out.h_n.narrow(1, 1, 1)?.to_vec::<f32>()?);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct RnnOutput {
    /// `[T, B, D·H]` (or `[B, T, D·H]` when batch-first); zeros at padded steps.
    pub output: Tensor,
    /// Final hidden state of every layer and direction, `[L·D, B, H]`: for a padded row, the
    /// state at its last valid step (forward) or at step 0 (reverse).
    pub h_n: Tensor,
    /// Final cell state, `[L·D, B, H]` (LSTM only).
    pub c_n: Option<Tensor>,
}

/// A stack of recurrent layers running one [`CellKind`].
///
/// ```
/// use fukai::nn::{Module, Rnn, RnnOptions};
/// use fukai::{DType, Tensor};
/// let lstm = Rnn::lstm(3, 5, RnnOptions::default())?;
/// let names: Vec<String> = lstm.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]);
/// // Time-major by default: [T, B, F] in, [T, B, H] out.
/// let out = lstm.forward_seq(&Tensor::randn(&[7, 2, 3], DType::F32)?, None, None)?;
/// assert_eq!(out.output.shape(), &[7, 2, 5]);
/// assert_eq!(out.output.narrow(0, 6, 1)?.to_vec::<f32>()?, out.h_n.to_vec::<f32>()?);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct Rnn {
    cell: CellKind,
    input_size: usize,
    hidden_size: usize,
    opts: RnnOptions,
    params: Vec<DirParams>,
    training: bool,
}

impl Rnn {
    /// A layer stack with PyTorch's initialization: every tensor U(-1/√H, 1/√H).
    pub fn new(
        cell: CellKind,
        input_size: usize,
        hidden_size: usize,
        opts: RnnOptions,
    ) -> Result<Self> {
        if input_size == 0 || hidden_size == 0 || opts.num_layers == 0 {
            bail!(
                "Rnn",
                "input size, hidden size and layer count must be positive, found {input_size}, {hidden_size}, {}",
                opts.num_layers
            );
        }
        if !(0.0..1.0).contains(&opts.dropout) {
            bail!("Rnn", "dropout must be in [0, 1), found {}", opts.dropout);
        }
        let k = 1.0 / (hidden_size as f64).sqrt();
        let u = |shape: &[usize]| Tensor::uniform(shape, -k, k, DType::F32)?.with_grad();
        let dirs = if opts.bidirectional { 2 } else { 1 };
        let g = cell.gates() * hidden_size;
        let mut params = Vec::new();
        for l in 0..opts.num_layers {
            let fan = if l == 0 {
                input_size
            } else {
                hidden_size * dirs
            };
            for d in 0..dirs {
                params.push(DirParams {
                    suffix: format!("l{l}{}", if d == 1 { "_reverse" } else { "" }),
                    w_ih: u(&[g, fan])?,
                    w_hh: u(&[g, hidden_size])?,
                    b_ih: if opts.bias { Some(u(&[g])?) } else { None },
                    b_hh: if opts.bias { Some(u(&[g])?) } else { None },
                });
            }
        }
        Ok(Rnn {
            cell,
            input_size,
            hidden_size,
            opts,
            params,
            training: true,
        })
    }
    /// An LSTM stack.
    pub fn lstm(input_size: usize, hidden_size: usize, opts: RnnOptions) -> Result<Self> {
        Rnn::new(CellKind::Lstm, input_size, hidden_size, opts)
    }
    /// A GRU stack.
    pub fn gru(input_size: usize, hidden_size: usize, opts: RnnOptions) -> Result<Self> {
        Rnn::new(CellKind::Gru, input_size, hidden_size, opts)
    }
    /// The cell this stack runs.
    pub fn cell(&self) -> CellKind {
        self.cell
    }
    /// Hidden units per direction.
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }
    /// 2 when bidirectional, else 1.
    pub fn directions(&self) -> usize {
        if self.opts.bidirectional {
            2
        } else {
            1
        }
    }
    /// The options the stack was built with.
    pub fn options(&self) -> &RnnOptions {
        &self.opts
    }

    /// Every layer's and direction's `([w_ih, w_hh], [b_ih, b_hh])`, layer by layer, forward
    /// before reverse (what the ONNX export repacks).
    pub(crate) fn weights(&self) -> Vec<([&Tensor; 2], [Option<&Tensor>; 2])> {
        self.params
            .iter()
            .map(|p| ([&p.w_ih, &p.w_hh], [p.b_ih.as_ref(), p.b_hh.as_ref()]))
            .collect()
    }

    /// The stack with every parameter converted to `dtype` (f32 or f64; PyTorch's `.double()`),
    /// as fresh leaves requiring grad: what an f64 state dict loads into. Inputs and states
    /// must then come in `dtype` too.
    pub fn to_dtype(mut self, dtype: DType) -> Result<Self> {
        if !dtype.is_compute_float() {
            bail!("Rnn", "parameters must be f32 or f64, asked for {dtype}");
        }
        let conv = |t: &Tensor| t.detach().to_dtype(dtype)?.with_grad();
        for p in &mut self.params {
            p.w_ih = conv(&p.w_ih)?;
            p.w_hh = conv(&p.w_hh)?;
            p.b_ih = p.b_ih.as_ref().map(conv).transpose()?;
            p.b_hh = p.b_hh.as_ref().map(conv).transpose()?;
        }
        Ok(self)
    }

    /// Swaps in `t` as the parameter called `name` (PyTorch's name, e.g. `weight_hh_l1_reverse`)
    /// without copying, so gradients reach `t` itself; shape and dtype must match.
    pub fn replace_parameter(&mut self, name: &str, t: Tensor) -> Result<()> {
        for p in &mut self.params {
            let slot = match name.strip_suffix(p.suffix.as_str()) {
                Some("weight_ih_") => Some(&mut p.w_ih),
                Some("weight_hh_") => Some(&mut p.w_hh),
                Some("bias_ih_") => p.b_ih.as_mut(),
                Some("bias_hh_") => p.b_hh.as_mut(),
                _ => None,
            };
            if let Some(slot) = slot {
                if slot.shape() != t.shape() || slot.dtype() != t.dtype() {
                    bail!(
                        "Rnn",
                        "parameter {name:?} is {:?} {}, found {:?} {}",
                        slot.shape(),
                        slot.dtype(),
                        t.shape(),
                        t.dtype()
                    );
                }
                *slot = t;
                return Ok(());
            }
        }
        bail!("Rnn", "no parameter named {name:?}")
    }

    /// Runs the stack. `state` is `(h0, c0)`, each `[L·D, B, H]` (c0 only for LSTM; zeros when
    /// absent); `lengths` gives each batch row's valid steps (at most T, padding after them).
    pub fn forward_seq(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, Option<&Tensor>)>,
        lengths: Option<&[usize]>,
    ) -> Result<RnnOutput> {
        if x.rank() != 3 || x.shape()[2] != self.input_size {
            bail!(
                "Rnn",
                "input must be {} with {} features, found shape {:?}",
                if self.opts.batch_first {
                    "[B, T, F]"
                } else {
                    "[T, B, F]"
                },
                self.input_size,
                x.shape()
            );
        }
        let x = if self.opts.batch_first {
            x.transpose(0, 1)?.contiguous()?
        } else {
            x.contiguous()?
        };
        let (steps, batch) = (x.shape()[0], x.shape()[1]);
        let dirs = self.directions();
        let lstm = self.cell == CellKind::Lstm;
        let state_shape = [self.opts.num_layers * dirs, batch, self.hidden_size];
        let zeros = || Tensor::zeros_on(&state_shape, x.dtype(), x.device());
        let (h0, c0) = match state {
            Some((h, c)) => (h.clone(), c.cloned()),
            None => (zeros()?, None),
        };
        if h0.shape() != state_shape {
            bail!(
                "Rnn",
                "h0 must have shape {state_shape:?}, found {:?}",
                h0.shape()
            );
        }
        let c0 = match (lstm, c0) {
            (true, Some(c)) if c.shape() == state_shape => Some(c),
            (true, Some(c)) => bail!(
                "Rnn",
                "c0 must have shape {state_shape:?}, found {:?}",
                c.shape()
            ),
            (true, None) => Some(zeros()?),
            (false, Some(_)) => bail!("Rnn", "only an LSTM takes a cell state c0"),
            (false, None) => None,
        };
        let mut inp = x;
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for l in 0..self.opts.num_layers {
            let mut outs = Vec::with_capacity(dirs);
            for d in 0..dirs {
                let idx = l * dirs + d;
                let p = &self.params[idx];
                let mut xg = inp.matmul(&p.w_ih.t()?)?;
                if let Some(b) = &p.b_ih {
                    xg = xg.add(b)?;
                }
                let h_init = h0.narrow(0, idx, 1)?.squeeze(0)?;
                let c_init = match &c0 {
                    Some(c) => Some(c.narrow(0, idx, 1)?.squeeze(0)?),
                    None => None,
                };
                let y = recurrence(
                    self.cell,
                    &xg,
                    &p.w_hh,
                    p.b_hh.as_ref(),
                    &h_init,
                    c_init.as_ref(),
                    lengths,
                    d == 1,
                )?;
                outs.push(y.narrow(0, 0, steps)?);
                hs.push(y.narrow(0, steps, 1)?);
                if lstm {
                    cs.push(y.narrow(0, steps + 1, 1)?);
                }
            }
            inp = if dirs == 1 {
                outs.pop().expect("one direction")
            } else {
                Tensor::cat(&outs, 2)?
            };
            if l + 1 < self.opts.num_layers {
                inp = inp.dropout(self.opts.dropout, self.training)?;
            }
        }
        let output = if self.opts.batch_first {
            inp.transpose(0, 1)?.contiguous()?
        } else {
            inp
        };
        Ok(RnnOutput {
            output,
            h_n: Tensor::cat(&hs, 0)?,
            c_n: if lstm {
                Some(Tensor::cat(&cs, 0)?)
            } else {
                None
            },
        })
    }
}

/// Valid lengths from a `[B, T]` padding mask (non-zero = valid). Each row must be a run of
/// valid steps followed only by padding.
///
/// ```
/// use fukai::Tensor;
/// let mask = Tensor::from_vec(vec![1u8, 1, 1, 1, 0, 0], &[2, 3])?;
/// assert_eq!(fukai::nn::lengths_from_mask(&mask)?, [3, 1]);
/// let gap = Tensor::from_vec(vec![1u8, 0, 1], &[1, 3])?;
/// assert!(fukai::nn::lengths_from_mask(&gap).is_err());
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn lengths_from_mask(mask: &Tensor) -> Result<Vec<usize>> {
    if mask.rank() != 2 {
        bail!(
            "lengths_from_mask",
            "mask must be [B, T], found shape {:?}",
            mask.shape()
        );
    }
    let t = mask.shape()[1];
    let v = mask.to_vec_f64()?;
    let mut out = Vec::with_capacity(mask.shape()[0]);
    for (b, row) in v.chunks(t.max(1)).enumerate().take(mask.shape()[0]) {
        let len = row.iter().take_while(|&&m| m != 0.0).count();
        if let Some(j) = row[len..].iter().position(|&m| m != 0.0) {
            bail!(
                "lengths_from_mask",
                "row {b}: valid step {} after padding at step {len}; padding must come last",
                len + j
            );
        }
        out.push(len);
    }
    Ok(out)
}

impl Module for Rnn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_seq(x, None, None)?.output)
    }
    fn to_onnx(&self, g: &mut Graph, prefix: &str, x: &Value) -> Result<Value> {
        let bf = self.opts.batch_first;
        let x = if bf {
            transpose(g, x, &[1, 0, 2], &join(prefix, "time_major"))
        } else {
            x.clone()
        };
        let y = rnn_stack(g, prefix, self, &x, true)?
            .output
            .expect("asked for the output");
        Ok(if bf {
            transpose(g, &y, &[1, 0, 2], &join(prefix, "out"))
        } else {
            y
        })
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        for p in &self.params {
            let name = |n: &str| join(prefix, &format!("{n}_{}", p.suffix));
            f(&name("weight_ih"), &p.w_ih, TensorKind::Parameter);
            f(&name("weight_hh"), &p.w_hh, TensorKind::Parameter);
            if let Some(b) = &p.b_ih {
                f(&name("bias_ih"), b, TensorKind::Parameter);
            }
            if let Some(b) = &p.b_hh {
                f(&name("bias_hh"), b, TensorKind::Parameter);
            }
        }
    }
    fn set_training(&mut self, on: bool) {
        self.training = on;
    }
    fn describe(&self) -> String {
        let kind = match self.cell {
            CellKind::RnnTanh => "RNN(tanh)",
            CellKind::RnnRelu => "RNN(relu)",
            CellKind::Gru => "GRU",
            CellKind::Lstm => "LSTM",
        };
        format!(
            "{kind}({} -> {}, layers {}{})",
            self.input_size,
            self.hidden_size,
            self.opts.num_layers,
            if self.opts.bidirectional {
                ", bidirectional"
            } else {
                ""
            }
        )
    }
}
