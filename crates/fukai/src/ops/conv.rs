//! 1-D and 2-D convolution with PyTorch's semantics (cross-correlation, zero padding, dilation,
//! groups). Argument checking and autograd live here; the kernels in `conv_kernel`.

use super::conv_kernel::{
    conv_bias_grad, conv_forward, conv_input_grad, conv_weight_grad, ConvGeom,
};
use super::float::{check_float_on, check_same_dtype, with_contig, wrap, Float};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::tensor::Tensor;

fn tensor<T: Float>(v: Vec<T>, shape: &[usize]) -> Tensor {
    let (s, l) = wrap(v, shape);
    Tensor::from_parts(s, l)
}

/// Stride, padding and dilation per spatial axis (height, width), and the group count.
#[derive(Clone, Copy)]
struct Params {
    stride: [usize; 2],
    pad: [usize; 2],
    dil: [usize; 2],
    groups: usize,
}

/// Checks a 4-D input/weight pair and the parameters; `axes` names the spatial axes in errors
/// (conv1d runs as a conv2d of height 1, which can never be the axis at fault).
fn geometry(
    op: &'static str,
    axes: [&str; 2],
    x: &[usize],
    w: &[usize],
    bias: Option<&[usize]>,
    p: Params,
) -> Result<ConvGeom> {
    let (n, c, h, wd) = (x[0], x[1], x[2], x[3]);
    let (o, cg, kh, kw) = (w[0], w[1], w[2], w[3]);
    if p.groups == 0 {
        bail!(op, "groups must be at least 1, found 0");
    }
    for ((s, d), axis) in p.stride.iter().zip(p.dil).zip(axes) {
        if *s == 0 || d == 0 {
            bail!(
                op,
                "stride and dilation must be positive, found stride {s} and dilation {d} along the {axis}"
            );
        }
    }
    if c == 0 || h == 0 || wd == 0 {
        bail!(
            op,
            "input channels and spatial sizes must be non-zero, found {c} channels of {}",
            if axes[0].is_empty() {
                format!("length {wd}")
            } else {
                format!("{h}x{wd}")
            }
        );
    }
    if o == 0 || cg == 0 || kh == 0 || kw == 0 {
        bail!(op, "weight dims must all be non-zero, found {o} output channels, {cg} input channels per group, kernel {kh}x{kw}");
    }
    if c % p.groups != 0 || o % p.groups != 0 {
        bail!(
            op,
            "input channels ({c}) and output channels ({o}) must both be divisible by groups ({})",
            p.groups
        );
    }
    if cg * p.groups != c {
        bail!(
            op,
            "weight takes {cg} input channels per group ({} with groups {}), but the input has {c} channels",
            cg * p.groups,
            p.groups
        );
    }
    if let Some(bs) = bias {
        if bs != [o] {
            bail!(
                op,
                "bias must have shape [{o}] (one value per output channel), found {bs:?}"
            );
        }
    }
    let out = |a: usize, len: usize, k: usize| -> Result<usize> {
        let span = p.dil[a].checked_mul(k - 1).and_then(|v| v.checked_add(1));
        let padded = p.pad[a].checked_mul(2).and_then(|v| v.checked_add(len));
        match (span, padded) {
            (Some(s), Some(pd)) if s <= pd => Ok((pd - s) / p.stride[a] + 1),
            _ => bail!(
                op,
                "along the {}, kernel {k} with dilation {} spans {} elements, more than the padded input ({len} + 2*{})",
                axes[a],
                p.dil[a],
                span.map_or("too many".to_string(), |s| s.to_string()),
                p.pad[a]
            ),
        }
    };
    let oh = out(0, h, kh)?;
    let ow = out(1, wd, kw)?;
    Ok(ConvGeom {
        n,
        c,
        h,
        w: wd,
        o,
        groups: p.groups,
        kh,
        kw,
        stride: p.stride,
        pad: p.pad,
        dil: p.dil,
        oh,
        ow,
    })
}

/// Convolution of a 4-D input with a 4-D weight, recorded under `op`.
fn conv_impl(
    op: &'static str,
    axes: [&str; 2],
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: Params,
) -> Result<Tensor> {
    check_float_on(op, x)?;
    check_same_dtype(op, x, w)?;
    if let Some(b) = bias {
        check_same_dtype(op, x, b)?;
    }
    let g = geometry(op, axes, x.shape(), w.shape(), bias.map(|b| b.shape()), p)?;
    let dtype = x.dtype();
    #[cfg(feature = "wgpu")]
    if crate::tensor::on_wgpu(&[x, w]) {
        use crate::backend::wgpu::conv;
        let y = conv::forward(
            &g,
            &x.detach(),
            &w.detach(),
            bias.map(|b| b.detach()).as_ref(),
        )?;
        let mut inputs = vec![x, w];
        inputs.extend(bias);
        let (xs, ws, has_bias) = (x.detach(), w.detach(), bias.is_some());
        return Ok(Tensor::op_result(
            op,
            y.storage().clone(),
            y.layout().clone(),
            &inputs,
            move || {
                Box::new(move |gy, needs| {
                    let mut grads = vec![
                        needs[0]
                            .then(|| conv::input_grad(&g, &ws, gy))
                            .transpose()?,
                        needs[1]
                            .then(|| conv::weight_grad(&g, &xs, gy))
                            .transpose()?,
                    ];
                    if has_bias {
                        grads.push(needs[2].then(|| gy.sum(&[0, 2, 3], false)).transpose()?);
                    }
                    Ok(grads)
                })
            },
        ));
    }
    x.cpu_only(op)?;
    let (storage, layout) = float_dispatch!(dtype, T => {
        let out = with_contig::<T, _>(x, |xv| with_contig::<T, _>(w, |wv| match bias {
            Some(b) => with_contig::<T, _>(b, |bv| conv_forward(&g, xv, wv, Some(bv))),
            None => conv_forward(&g, xv, wv, None),
        }));
        wrap(out, &[g.n, g.o, g.oh, g.ow])
    });
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    let (xs, ws, has_bias) = (x.detach(), w.detach(), bias.is_some());
    Ok(Tensor::op_result(op, storage, layout, &inputs, move || {
        Box::new(move |gy, needs| {
            let (need_x, need_w) = (needs[0], needs[1]);
            let grads = float_dispatch!(dtype, T => with_contig::<T, _>(gy, |gv| {
                let dx = need_x.then(|| with_contig::<T, _>(&ws, |w| conv_input_grad(&g, w, gv)));
                let dw = need_w.then(|| with_contig::<T, _>(&xs, |x| conv_weight_grad(&g, x, gv)));
                let mut grads = vec![
                    dx.map(|v| tensor(v, xs.shape())),
                    dw.map(|v| tensor(v, ws.shape())),
                ];
                if has_bias {
                    grads.push(needs[2].then(|| tensor(conv_bias_grad(&g, gv), &[g.o])));
                }
                grads
            }));
            Ok(grads)
        })
    }))
}

impl Tensor {
    /// 2-D convolution (PyTorch's `conv2d`): input `[N, C, H, W]` (or unbatched `[C, H, W]`),
    /// weight `[O, C/groups, kh, kw]`, optional bias `[O]`; output `[N, O, OH, OW]` with
    /// `OH = (H + 2*padding - dilation*(kh-1) - 1) / stride + 1` (likewise OW).
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Result<Tensor> {
        if self.rank() == 3 && weight.rank() == 4 {
            return self
                .unsqueeze(0)?
                .conv2d(weight, bias, stride, padding, dilation, groups)?
                .squeeze(0);
        }
        if self.rank() != 4 || weight.rank() != 4 {
            bail!(
                "conv2d",
                "needs input [N, C, H, W] (or [C, H, W]) and weight [O, C/groups, kh, kw], found {:?} and {:?}",
                self.shape(),
                weight.shape()
            );
        }
        let p = Params {
            stride,
            pad: padding,
            dil: dilation,
            groups,
        };
        conv_impl("conv2d", ["height", "width"], self, weight, bias, p)
    }

    /// 1-D convolution (PyTorch's `conv1d`): input `[N, C, L]` (or unbatched `[C, L]`), weight
    /// `[O, C/groups, k]`, optional bias `[O]`; output `[N, O, OL]`. Runs as a conv2d of height 1.
    pub fn conv1d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Result<Tensor> {
        if self.rank() == 2 && weight.rank() == 3 {
            return self
                .unsqueeze(0)?
                .conv1d(weight, bias, stride, padding, dilation, groups)?
                .squeeze(0);
        }
        if self.rank() != 3 || weight.rank() != 3 {
            bail!(
                "conv1d",
                "needs input [N, C, L] (or [C, L]) and weight [O, C/groups, k], found {:?} and {:?}",
                self.shape(),
                weight.shape()
            );
        }
        let p = Params {
            stride: [1, stride],
            pad: [0, padding],
            dil: [1, dilation],
            groups,
        };
        let (x, w) = (self.unsqueeze(2)?, weight.unsqueeze(2)?);
        conv_impl("conv1d", ["", "length"], &x, &w, bias, p)?.squeeze(2)
    }
}
