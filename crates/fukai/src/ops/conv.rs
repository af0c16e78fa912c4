//! Convolution and transposed convolution over 1, 2 or 3 spatial axes with PyTorch's semantics
//! (cross-correlation, zero padding, dilation, groups). Argument checking and autograd live
//! here, the kernels in `conv_kernel`. Every rank runs as a 3-D convolution: 2-D ones have depth
//! 1, 1-D ones depth and height 1. A transposed convolution is the input gradient of the
//! convolution whose output is its input, so it runs that convolution's kernels with the roles
//! of the two sides swapped.

use super::conv_kernel::{channel_sums, conv_forward, conv_input_grad, conv_weight_grad, ConvGeom};
use super::float::{check_float_on, check_same_dtype, with_contig, wrap, Float};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::tensor::Tensor;

fn tensor<T: Float>(v: Vec<T>, shape: &[usize]) -> Tensor {
    let (s, l) = wrap(v, shape);
    Tensor::from_parts(s, l)
}

/// Stride, padding and dilation per spatial axis (depth, height, width), and the group count.
#[derive(Clone, Copy)]
struct Params {
    stride: [usize; 3],
    pad: [usize; 3],
    dil: [usize; 3],
    groups: usize,
}

/// Which way a convolution geometry runs.
#[derive(Clone, Copy, PartialEq)]
enum Dir {
    /// `x` is the geometry's input, the result its output.
    Conv,
    /// `x` is the geometry's output, the result its input (a transposed convolution).
    Transposed,
}

/// Names of the (depth, height, width) axes in errors per spatial rank; an empty name is an
/// axis of size 1 the rank does not have, which can never be the axis at fault.
fn axes(rank: usize) -> [&'static str; 3] {
    match rank {
        1 => ["", "", "length"],
        2 => ["", "height", "width"],
        _ => ["depth", "height", "width"],
    }
}

/// `[N, C, spatial...]` as `[N, C, D, H, W]`, the missing leading spatial axes of size 1.
fn to5(s: &[usize]) -> [usize; 5] {
    let mut out = [1; 5];
    out[..2].copy_from_slice(&s[..2]);
    out[5 - (s.len() - 2)..].copy_from_slice(&s[2..]);
    out
}

/// The sizes of the named axes, as `5`, `5x4` or `3x5x4`.
fn extent(axes: [&str; 3], v: [usize; 3]) -> String {
    let named: Vec<String> = (0..3)
        .filter(|&a| !axes[a].is_empty())
        .map(|a| v[a].to_string())
        .collect();
    named.join("x")
}

/// Checks shared by both directions: parameters, non-empty tensors, the bias shape.
/// `x` and `w` are 5-D; `out_channels` is the result's channel count.
fn check_common(
    op: &'static str,
    axes: [&str; 3],
    x: [usize; 5],
    w: [usize; 5],
    out_channels: usize,
    bias: Option<&[usize]>,
    p: Params,
) -> Result<()> {
    if p.groups == 0 {
        bail!(op, "groups must be at least 1, found 0");
    }
    for ((s, d), axis) in p.stride.into_iter().zip(p.dil).zip(axes) {
        if s == 0 || d == 0 {
            bail!(
                op,
                "stride and dilation must be positive, found stride {s} and dilation {d} along the {axis}"
            );
        }
    }
    let c = x[1];
    let size = [x[2], x[3], x[4]];
    if c == 0 || size.contains(&0) {
        bail!(
            op,
            "input channels and spatial sizes must be non-zero, found {c} channels of size {}",
            extent(axes, size)
        );
    }
    let k = [w[2], w[3], w[4]];
    if w[0] == 0 || w[1] == 0 || k.contains(&0) {
        bail!(
            op,
            "weight dims must all be non-zero, found {:?} (kernel {})",
            &w[..2],
            extent(axes, k)
        );
    }
    if let Some(bs) = bias {
        if bs != [out_channels] {
            bail!(
                op,
                "bias must have shape [{out_channels}] (one value per output channel), found {bs:?}"
            );
        }
    }
    Ok(())
}

/// Errors if a tensor or the column matrix of `g` would hold more than `usize::MAX` elements.
fn check_sizes(op: &'static str, g: &ConvGeom) -> Result<()> {
    let prod = |v: &[usize]| v.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
    let sizes = [
        prod(&[g.n, g.c, g.d, g.h, g.w]),
        prod(&[g.n, g.o, g.od, g.oh, g.ow]),
        prod(&[g.c, g.kd, g.kh, g.kw, g.od, g.oh, g.ow]),
    ];
    if sizes.contains(&None) {
        bail!(
            op,
            "sizes overflow: input {:?}, output {:?}, kernel {:?}",
            [g.n, g.c, g.d, g.h, g.w],
            [g.n, g.o, g.od, g.oh, g.ow],
            [g.kd, g.kh, g.kw]
        );
    }
    Ok(())
}

/// Checks a convolution's 5-D input/weight pair and its parameters.
fn geometry(
    op: &'static str,
    axes: [&str; 3],
    x: [usize; 5],
    w: [usize; 5],
    bias: Option<&[usize]>,
    p: Params,
) -> Result<ConvGeom> {
    let [n, c, d, h, wd] = x;
    let [o, cg, kd, kh, kw] = w;
    check_common(op, axes, x, w, o, bias, p)?;
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
    let g = ConvGeom {
        n,
        c,
        d,
        h,
        w: wd,
        o,
        groups: p.groups,
        kd,
        kh,
        kw,
        stride: p.stride,
        pad: p.pad,
        dil: p.dil,
        od: out(0, d, kd)?,
        oh: out(1, h, kh)?,
        ow: out(2, wd, kw)?,
        precision: crate::precision(),
    };
    check_sizes(op, &g)?;
    Ok(g)
}

/// Checks a transposed convolution's 5-D input `x` [N, C_in, ...] and weight
/// [C_in, C_out/groups, k...], and returns the geometry of the convolution from its output
/// (`c`, `d`, `h`, `w`) to its input (`o`, `od`, `oh`, `ow`).
fn transposed_geometry(
    op: &'static str,
    axes: [&str; 3],
    x: [usize; 5],
    w: [usize; 5],
    bias: Option<&[usize]>,
    p: Params,
    out_pad: [usize; 3],
) -> Result<ConvGeom> {
    let [n, c, d, h, wd] = x;
    let [wc, og, kd, kh, kw] = w;
    let Some(o) = og.checked_mul(p.groups) else {
        bail!(
            op,
            "output channels overflow: {og} per group times {} groups",
            p.groups
        );
    };
    check_common(op, axes, x, w, o, bias, p)?;
    if c % p.groups != 0 {
        bail!(
            op,
            "input channels ({c}) must be divisible by groups ({})",
            p.groups
        );
    }
    if wc != c {
        bail!(
            op,
            "weight [C_in, C_out/groups, ...] takes {wc} input channels, but the input has {c}"
        );
    }
    // (in - 1)*stride - 2*pad + dil*(k - 1) + out_pad + 1, which must stay positive.
    let out = |a: usize, len: usize, k: usize| -> Result<usize> {
        let (s, pd, dl, op_) = (p.stride[a], p.pad[a], p.dil[a], out_pad[a]);
        if op_ >= s && op_ >= dl {
            bail!(
                op,
                "output_padding {op_} along the {} must be smaller than the stride ({s}) or the dilation ({dl})",
                axes[a]
            );
        }
        let full = (len - 1)
            .checked_mul(s)
            .zip(dl.checked_mul(k - 1))
            .and_then(|(a, b)| a.checked_add(b))
            .and_then(|v| v.checked_add(op_ + 1));
        match full.map(|f| (f, pd.checked_mul(2))) {
            Some((f, Some(p2))) if f > p2 => Ok(f - p2),
            _ => bail!(
                op,
                "along the {}, input {len} with stride {s}, kernel {k}, dilation {dl} and output_padding {op_} leaves no output after padding 2*{pd}",
                axes[a]
            ),
        }
    };
    let g = ConvGeom {
        n,
        c: o,
        d: out(0, d, kd)?,
        h: out(1, h, kh)?,
        w: out(2, wd, kw)?,
        o: c,
        groups: p.groups,
        kd,
        kh,
        kw,
        stride: p.stride,
        pad: p.pad,
        dil: p.dil,
        od: d,
        oh: h,
        ow: wd,
        precision: crate::precision(),
    };
    check_sizes(op, &g)?;
    Ok(g)
}

/// A (transposed) convolution of `x` [N, C, spatial...] with `w`, both of spatial rank 1 to 3,
/// recorded under `op`.
fn conv_impl(
    op: &'static str,
    dir: Dir,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: Params,
    out_pad: [usize; 3],
) -> Result<Tensor> {
    check_float_on(op, x)?;
    check_same_dtype(op, x, w)?;
    if let Some(b) = bias {
        check_same_dtype(op, x, b)?;
    }
    let rank = x.rank() - 2;
    let (x5, w5, bs) = (to5(x.shape()), to5(w.shape()), bias.map(|b| b.shape()));
    let g = match dir {
        Dir::Conv => geometry(op, axes(rank), x5, w5, bs, p)?,
        Dir::Transposed => transposed_geometry(op, axes(rank), x5, w5, bs, p, out_pad)?,
    };
    let (channels, size) = match dir {
        Dir::Conv => (g.o, [g.od, g.oh, g.ow]),
        Dir::Transposed => (g.c, [g.d, g.h, g.w]),
    };
    let mut shape = vec![g.n, channels];
    shape.extend_from_slice(&size[3 - rank..]);
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if g.planar() && crate::tensor::on_gpu(&[x, w]) {
        return device_conv(op, dir, g, x, w, bias, &shape);
    }
    x.cpu_only(op)?;
    let dtype = x.dtype();
    let (storage, layout) = float_dispatch!(dtype, T => {
        let out = with_contig::<T, _>(x, |xv| with_contig::<T, _>(w, |wv| {
            let run = |bv: Option<&[T]>| match dir {
                Dir::Conv => conv_forward(&g, xv, wv, bv),
                Dir::Transposed => conv_input_grad(&g, wv, xv, bv),
            };
            match bias {
                Some(b) => with_contig::<T, _>(b, |bv| run(Some(bv))),
                None => run(None),
            }
        }));
        wrap(out, &shape)
    });
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    let (xs, ws, has_bias) = (x.detach(), w.detach(), bias.is_some());
    Ok(Tensor::op_result(op, storage, layout, &inputs, move || {
        Box::new(move |gy, needs| {
            let (need_x, need_w) = (needs[0], needs[1]);
            let grads = float_dispatch!(dtype, T => with_contig::<T, _>(gy, |gv| {
                let dx = need_x.then(|| with_contig::<T, _>(&ws, |w| match dir {
                    Dir::Conv => conv_input_grad(&g, w, gv, None),
                    Dir::Transposed => conv_forward(&g, gv, w, None),
                }));
                let dw = need_w.then(|| with_contig::<T, _>(&xs, |x| match dir {
                    Dir::Conv => conv_weight_grad(&g, x, gv),
                    Dir::Transposed => conv_weight_grad(&g, gv, x),
                }));
                let mut grads = vec![
                    dx.map(|v| tensor(v, xs.shape())),
                    dw.map(|v| tensor(v, ws.shape())),
                ];
                if has_bias {
                    let (c, l) = match dir {
                        Dir::Conv => (g.o, g.l()),
                        Dir::Transposed => (g.c, g.dhw()),
                    };
                    grads.push(needs[2].then(|| tensor(channel_sums((g.n, c, l), gv), &[c])));
                }
                grads
            }));
            Ok(grads)
        })
    }))
}

/// A 1-D or 2-D (transposed) convolution on a GPU (`shape` is the result's). A transposed
/// convolution runs the device kernels of its geometry the other way round, as on the CPU.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn device_conv(
    op: &'static str,
    dir: Dir,
    g: ConvGeom,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    shape: &[usize],
) -> Result<Tensor> {
    use crate::backend::gpu::conv;
    let (xd, wd) = (x.detach(), w.detach());
    let y = match dir {
        Dir::Conv => {
            conv::forward(&g, &xd, &wd, bias.map(|b| b.detach()).as_ref())?.reshape(shape)?
        }
        Dir::Transposed => {
            let y = conv::input_grad(&g, &wd, &xd)?.reshape(shape)?;
            match bias {
                Some(b) => {
                    let mut per_channel = vec![1; shape.len()];
                    per_channel[1] = g.c;
                    y.add(&b.detach().reshape(&per_channel)?)?
                }
                None => y,
            }
        }
    };
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    let has_bias = bias.is_some();
    // The bias gradient sums over the batch and every spatial axis.
    let summed: Vec<isize> = (0..shape.len() as isize).filter(|&a| a != 1).collect();
    Ok(Tensor::op_result(
        op,
        y.storage().clone(),
        y.layout().clone(),
        &inputs,
        move || {
            Box::new(move |gy, needs| {
                let dx = needs[0]
                    .then(|| match dir {
                        Dir::Conv => conv::input_grad(&g, &wd, gy),
                        Dir::Transposed => conv::forward(&g, gy, &wd, None),
                    })
                    .transpose()?;
                let dw = needs[1]
                    .then(|| match dir {
                        Dir::Conv => conv::weight_grad(&g, &xd, gy),
                        Dir::Transposed => conv::weight_grad(&g, gy, &xd),
                    })
                    .transpose()?;
                let mut grads = vec![
                    dx.map(|d| d.reshape(xd.shape())).transpose()?,
                    dw.map(|d| d.reshape(wd.shape())).transpose()?,
                ];
                if has_bias {
                    grads.push(needs[2].then(|| gy.sum(&summed, false)).transpose()?);
                }
                Ok(grads)
            })
        },
    ))
}

/// Runs `f` on an input of spatial rank `rank` (weight rank `rank + 2`), giving an unbatched
/// input a batch axis of 1 for the call; `what` describes the expected shapes in errors.
fn batched(
    op: &'static str,
    what: &str,
    x: &Tensor,
    w: &Tensor,
    rank: usize,
    f: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let full = rank + 2;
    if w.rank() == full && x.rank() == full - 1 {
        return f(&x.unsqueeze(0)?)?.squeeze(0);
    }
    if x.rank() != full || w.rank() != full {
        bail!(
            op,
            "needs {what}, found {:?} and {:?}",
            x.shape(),
            w.shape()
        );
    }
    f(x)
}

/// 2-D parameters as 3-D ones with a trivial depth axis of `depth` (1 or 0).
fn flat2(v: [usize; 2], depth: usize) -> [usize; 3] {
    [depth, v[0], v[1]]
}

/// 1-D parameters as 3-D ones with trivial depth and height axes of `fill` (1 or 0).
fn flat1(v: usize, fill: usize) -> [usize; 3] {
    [fill, fill, v]
}

impl Tensor {
    /// 3-D convolution (PyTorch's `conv3d`): input `[N, C, D, H, W]` (or unbatched
    /// `[C, D, H, W]`), weight `[O, C/groups, kd, kh, kw]`, optional bias `[O]`; output
    /// `[N, O, OD, OH, OW]` with `OD = (D + 2*padding - dilation*(kd-1) - 1) / stride + 1`
    /// (likewise OH, OW). Stride, padding and dilation are per axis (depth, height, width).
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// // A 2x2x2 box filter over a volume of ones sums the 8 voxels each output covers.
    /// let x = Tensor::ones(&[1, 1, 3, 4, 4], DType::F32)?;
    /// let w = Tensor::ones(&[1, 1, 2, 2, 2], DType::F32)?;
    /// let y = x.conv3d(&w, None, [1, 2, 2], [0, 0, 0], [1, 1, 1], 1)?;
    /// assert_eq!(y.shape(), &[1, 1, 2, 2, 2]);
    /// assert_eq!(y.to_vec::<f32>()?, vec![8.0; 8]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn conv3d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: [usize; 3],
        padding: [usize; 3],
        dilation: [usize; 3],
        groups: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv3d";
        let what = "input [N, C, D, H, W] (or [C, D, H, W]) and weight [O, C/groups, kd, kh, kw]";
        let p = Params {
            stride,
            pad: padding,
            dil: dilation,
            groups,
        };
        batched(OP, what, self, weight, 3, |x| {
            conv_impl(OP, Dir::Conv, x, weight, bias, p, [0; 3])
        })
    }

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
        const OP: &str = "conv2d";
        let what = "input [N, C, H, W] (or [C, H, W]) and weight [O, C/groups, kh, kw]";
        let p = Params {
            stride: flat2(stride, 1),
            pad: flat2(padding, 0),
            dil: flat2(dilation, 1),
            groups,
        };
        batched(OP, what, self, weight, 2, |x| {
            conv_impl(OP, Dir::Conv, x, weight, bias, p, [0; 3])
        })
    }

    /// 1-D convolution (PyTorch's `conv1d`): input `[N, C, L]` (or unbatched `[C, L]`), weight
    /// `[O, C/groups, k]`, optional bias `[O]`; output `[N, O, OL]`.
    pub fn conv1d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv1d";
        let what = "input [N, C, L] (or [C, L]) and weight [O, C/groups, k]";
        let p = Params {
            stride: flat1(stride, 1),
            pad: flat1(padding, 0),
            dil: flat1(dilation, 1),
            groups,
        };
        batched(OP, what, self, weight, 1, |x| {
            conv_impl(OP, Dir::Conv, x, weight, bias, p, [0; 3])
        })
    }

    /// 3-D transposed convolution (PyTorch's `conv_transpose3d`, the gradient of `conv3d` with
    /// respect to its input): input `[N, C_in, D, H, W]` (or unbatched `[C_in, D, H, W]`),
    /// weight `[C_in, C_out/groups, kd, kh, kw]`, optional bias `[C_out]`; output
    /// `[N, C_out, OD, OH, OW]` with
    /// `OD = (D - 1)*stride - 2*padding + dilation*(kd - 1) + output_padding + 1` (likewise OH,
    /// OW). `output_padding` must be smaller than the stride or the dilation of its axis.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// // Stride 2 with a 2x2x2 kernel of ones spreads every voxel over its own 2x2x2 block.
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 1, 1, 1, 2])?;
    /// let w = Tensor::ones(&[1, 1, 2, 2, 2], DType::F32)?;
    /// let y = x.conv_transpose3d(&w, None, [2, 2, 2], [0, 0, 0], [0, 0, 0], [1, 1, 1], 1)?;
    /// assert_eq!(y.shape(), &[1, 1, 2, 2, 4]);
    /// assert_eq!(y.to_vec::<f32>()?[..4], [1.0, 1.0, 2.0, 2.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn conv_transpose3d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: [usize; 3],
        padding: [usize; 3],
        output_padding: [usize; 3],
        dilation: [usize; 3],
        groups: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv_transpose3d";
        let what = "input [N, C_in, D, H, W] (or [C_in, D, H, W]) and weight [C_in, C_out/groups, kd, kh, kw]";
        let p = Params {
            stride,
            pad: padding,
            dil: dilation,
            groups,
        };
        batched(OP, what, self, weight, 3, |x| {
            conv_impl(OP, Dir::Transposed, x, weight, bias, p, output_padding)
        })
    }

    /// 2-D transposed convolution (PyTorch's `conv_transpose2d`): input `[N, C_in, H, W]` (or
    /// `[C_in, H, W]`), weight `[C_in, C_out/groups, kh, kw]`, optional bias `[C_out]`; output
    /// `[N, C_out, OH, OW]` with `OH = (H - 1)*stride - 2*padding + dilation*(kh - 1) +
    /// output_padding + 1` (likewise OW).
    #[allow(clippy::too_many_arguments)]
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: [usize; 2],
        padding: [usize; 2],
        output_padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv_transpose2d";
        let what =
            "input [N, C_in, H, W] (or [C_in, H, W]) and weight [C_in, C_out/groups, kh, kw]";
        let p = Params {
            stride: flat2(stride, 1),
            pad: flat2(padding, 0),
            dil: flat2(dilation, 1),
            groups,
        };
        let out_pad = flat2(output_padding, 0);
        batched(OP, what, self, weight, 2, |x| {
            conv_impl(OP, Dir::Transposed, x, weight, bias, p, out_pad)
        })
    }

    /// 1-D transposed convolution (PyTorch's `conv_transpose1d`): input `[N, C_in, L]` (or
    /// `[C_in, L]`), weight `[C_in, C_out/groups, k]`, optional bias `[C_out]`; output
    /// `[N, C_out, OL]` with `OL = (L - 1)*stride - 2*padding + dilation*(k - 1) +
    /// output_padding + 1`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_transpose1d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        padding: usize,
        output_padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv_transpose1d";
        let what = "input [N, C_in, L] (or [C_in, L]) and weight [C_in, C_out/groups, k]";
        let p = Params {
            stride: flat1(stride, 1),
            pad: flat1(padding, 0),
            dil: flat1(dilation, 1),
            groups,
        };
        let out_pad = flat1(output_padding, 0);
        batched(OP, what, self, weight, 1, |x| {
            conv_impl(OP, Dir::Transposed, x, weight, bias, p, out_pad)
        })
    }
}
