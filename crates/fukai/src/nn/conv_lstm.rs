//! Convolutional LSTM (Shi et al. 2015, without peepholes), written the way PyTorch users write
//! it: one convolution over `cat([x_t, h], dim=1)` gives all four gates, so a PyTorch module
//! with an `nn.Conv2d` named `conv` loads as-is.

use super::{join, Conv2d, Module, TensorKind};
use crate::bail;
use crate::error::Result;
use crate::tensor::Tensor;

/// A ConvLSTM layer over `[B, T, C, H, W]` sequences with 'same' padding.
///
/// Gates are chunks of the convolution's `4·hidden` output channels in the order i, f, g, o:
/// `c' = σ(f)·c + σ(i)·tanh(g)`, `h' = σ(o)·tanh(c')`.
///
/// ```
/// use fukai::nn::{ConvLstm2d, Module};
/// use fukai::{DType, Tensor};
/// let layer = ConvLstm2d::new(3, 8, 3)?;
/// let x = Tensor::randn(&[2, 5, 3, 6, 7], DType::F32)?; // [B, T, C, H, W]
/// let (out, (h, c)) = layer.forward_seq(&x, None)?;
/// assert_eq!(out.shape(), &[2, 5, 8, 6, 7]);
/// assert_eq!(c.shape(), &[2, 8, 6, 7]);
/// // The last output is the final hidden state; a step can also run on its own.
/// assert_eq!(out.narrow(1, 4, 1)?.squeeze(1)?.to_vec::<f32>()?, h.to_vec::<f32>()?);
/// let (h1, _) = layer.cell(&x.narrow(1, 0, 1)?.squeeze(1)?, Some((&h, &c)))?;
/// assert_eq!(h1.shape(), &[2, 8, 6, 7]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub struct ConvLstm2d {
    /// `(inputs + hidden) -> 4·hidden` channels, kernel `k x k`, padding `k/2`.
    pub conv: Conv2d,
    /// Channels of h and c.
    pub hidden: usize,
}

impl ConvLstm2d {
    /// A layer with PyTorch's `nn.Conv2d` initialization; `kernel` must be odd so the padding
    /// keeps the spatial size.
    pub fn new(inputs: usize, hidden: usize, kernel: usize) -> Result<Self> {
        if inputs == 0 || hidden == 0 || kernel.is_multiple_of(2) {
            bail!(
                "ConvLstm2d",
                "needs positive input and hidden channels and an odd kernel, found inputs {inputs}, hidden {hidden}, kernel {kernel}"
            );
        }
        let (Some(channels), Some(gates)) = (inputs.checked_add(hidden), hidden.checked_mul(4))
        else {
            bail!(
                "ConvLstm2d",
                "inputs {inputs} + hidden {hidden} channels (and 4 gates per hidden channel) overflow usize"
            );
        };
        Ok(ConvLstm2d {
            conv: Conv2d::new(channels, gates, kernel, kernel / 2)?,
            hidden,
        })
    }

    /// Input channels per step.
    pub fn inputs(&self) -> usize {
        self.conv.weight.shape()[1] - self.hidden
    }

    /// One step: `x` `[B, C, H, W]`, state (h, c) `[B, hidden, H, W]` (zeros when `None`);
    /// returns (h', c').
    pub fn cell(&self, x: &Tensor, state: Option<(&Tensor, &Tensor)>) -> Result<(Tensor, Tensor)> {
        let s = x.shape();
        if x.rank() != 4 || s[1] != self.inputs() {
            bail!(
                "ConvLstm2d",
                "cell needs x [B, {}, H, W], found shape {s:?}",
                self.inputs()
            );
        }
        let want = [s[0], self.hidden, s[2], s[3]];
        let Some((h, c)) = state else {
            // A zero h adds nothing to the convolution: convolve x alone with the weight's
            // input-channel slice (a fifth of the work for 16 input and 64 hidden channels).
            let w = self.conv.weight.narrow(1, 0, self.inputs())?;
            let gates = self.conv_with(x, &w)?;
            return gates.lstm_cell(&Tensor::zeros_on(&want, x.dtype(), x.device())?);
        };
        if h.shape() != want || c.shape() != want {
            bail!(
                "ConvLstm2d",
                "state (h, c) must be {want:?} for x {s:?}, found {:?} and {:?}",
                h.shape(),
                c.shape()
            );
        }
        let gates = self.conv_with(&Tensor::cat(&[x.clone(), h.clone()], 1)?, &self.conv.weight)?;
        gates.lstm_cell(c)
    }

    /// The layer's convolution (bias, padding) with the weight `w`.
    fn conv_with(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let conv = &self.conv;
        x.conv2d(
            w,
            conv.bias.as_ref(),
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
        )
    }

    /// Runs the steps of `x` `[B, T, C, H, W]` from `state` (zeros when `None`); returns the
    /// hidden states `[B, T, hidden, H, W]` and the final (h, c).
    pub fn forward_seq(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        if x.rank() != 5 || x.shape()[1] == 0 {
            bail!(
                "ConvLstm2d",
                "forward_seq needs x [B, T, {}, H, W] with T > 0, found shape {:?}",
                self.inputs(),
                x.shape()
            );
        }
        let mut outs = Vec::with_capacity(x.shape()[1]);
        let mut cur: Option<(Tensor, Tensor)> = None;
        for t in 0..x.shape()[1] {
            let xt = x.narrow(1, t, 1)?.squeeze(1)?;
            let prev = match &cur {
                Some((h, c)) => Some((h, c)),
                None => state,
            };
            let (h, c) = self.cell(&xt, prev)?;
            outs.push(h.clone());
            cur = Some((h, c));
        }
        let state = cur.expect("at least one step");
        Ok((Tensor::stack(&outs, 1)?, state))
    }
}

impl Module for ConvLstm2d {
    /// The hidden states of [`ConvLstm2d::forward_seq`] from a zero state.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_seq(x, None)?.0)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        self.conv.visit(&join(prefix, "conv"), f);
    }
    fn describe(&self) -> String {
        let k = self.conv.weight.shape()[2];
        format!("ConvLstm2d({} -> {}, {k}x{k})", self.inputs(), self.hidden)
    }
}
