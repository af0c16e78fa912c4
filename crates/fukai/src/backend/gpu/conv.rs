//! Convolutions on GPUs: im2col / col2im from `conv.{wgsl,cu}` around the matmul.

use super::{buf_of, elementwise::contiguous, groups, matmul::matmul, word, Kernel};
use crate::error::Result;
use crate::ops::ConvGeom;
use crate::tensor::{Layout, Tensor};

pub(crate) const SRC: super::Src = super::sources!("conv");

fn meta(g: &ConvGeom, offset: usize) -> Result<Vec<u32>> {
    [
        g.n,
        g.c,
        g.h,
        g.w,
        g.groups,
        g.kh,
        g.kw,
        g.stride[1],
        g.stride[2],
        g.pad[1],
        g.pad[2],
        g.dil[1],
        g.dil[2],
        g.oh,
        g.ow,
        offset,
    ]
    .into_iter()
    .map(word)
    .collect()
}

fn run(entry: &'static str, g: &ConvGeom, src: &Tensor, len: usize) -> Result<Tensor> {
    let src = contiguous(src)?;
    let ctx = super::ctx_of(&src);
    let out = ctx.alloc(len)?;
    let k = Kernel {
        file: "conv",
        src: SRC,
        entry,
        access: "rw",
    };
    ctx.launch(
        &k,
        &meta(g, src.layout().offset())?,
        &[&buf_of(&src), &out],
        groups(len)?,
    );
    let (s, l) = super::wrap(out, src.dtype(), &[len]);
    Ok(Tensor::from_parts(s, l))
}

/// Sizes of the column matrix: (groups, cin/groups · kh · kw, N · OH · OW).
fn cols_dims(g: &ConvGeom) -> (usize, usize, usize) {
    (g.groups, g.c / g.groups * g.kh * g.kw, g.n * g.oh * g.ow)
}

/// `x` [N, C, H, W] gathered into columns [G, kg, N·L].
fn im2col(g: &ConvGeom, x: &Tensor) -> Result<Tensor> {
    let (gs, kg, nl) = cols_dims(g);
    run("im2col", g, x, gs * kg * nl)
}

/// Per group, W_g [og, kg] viewed from the weight [O, cg, kh, kw] (optionally transposed).
fn weight_view(g: &ConvGeom, w: &Tensor, transposed: bool) -> Layout {
    let (gs, kg, _) = cols_dims(g);
    let og = g.o / gs;
    let off = w.layout().offset();
    if transposed {
        Layout::new(vec![gs, kg, og], vec![og * kg, 1, kg], off)
    } else {
        Layout::new(vec![gs, og, kg], vec![og * kg, kg, 1], off)
    }
}

/// The output [N, O, OH, OW] (bias added).
pub(crate) fn forward(
    g: &ConvGeom,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let (gs, kg, nl) = cols_dims(g);
    let og = g.o / gs;
    let cols = im2col(g, x)?;
    let w = contiguous(w)?;
    let lc = Layout::new(vec![gs, kg, nl], vec![kg * nl, nl, 1], 0);
    // [G, og, N·L] → [N, O, L].
    let y = matmul(
        &w,
        &weight_view(g, &w, false),
        &cols,
        &lc,
        &[gs],
        (og, kg, nl),
        None,
    )?;
    let l = g.oh * g.ow;
    let y = Tensor::from_parts(y, Layout::new(vec![g.n, g.o, l], vec![l, nl, 1], 0));
    let y = contiguous(&y)?.reshape(&[g.n, g.o, g.oh, g.ow])?;
    match bias {
        Some(b) => y.add(&b.reshape(&[g.o, 1, 1])?),
        None => Ok(y),
    }
}

/// The upstream gradient [N, O, OH, OW] as [G, og, N·L].
fn grad_by_group(g: &ConvGeom, gy: &Tensor) -> Result<Tensor> {
    let (gs, _, nl) = cols_dims(g);
    let l = g.oh * g.ow;
    let gy = gy.reshape(&[g.n, g.o, l])?.permute(&[1, 0, 2])?;
    contiguous(&gy)?.reshape(&[gs, g.o / gs, nl])
}

/// The input gradient [N, C, H, W].
pub(crate) fn input_grad(g: &ConvGeom, w: &Tensor, gy: &Tensor) -> Result<Tensor> {
    let (gs, kg, nl) = cols_dims(g);
    let og = g.o / gs;
    let w = contiguous(w)?;
    let gyg = grad_by_group(g, gy)?;
    let dcols = matmul(
        &w,
        &weight_view(g, &w, true),
        &gyg,
        gyg.layout(),
        &[gs],
        (kg, og, nl),
        None,
    )?;
    let dcols = Tensor::from_parts(dcols, Layout::contiguous(&[gs * kg * nl]));
    run("col2im", g, &dcols, g.n * g.c * g.h * g.w)?.reshape(&[g.n, g.c, g.h, g.w])
}

/// The weight gradient [O, cg, kh, kw].
pub(crate) fn weight_grad(g: &ConvGeom, x: &Tensor, gy: &Tensor) -> Result<Tensor> {
    let (gs, kg, nl) = cols_dims(g);
    let og = g.o / gs;
    let cols = im2col(g, x)?;
    let gyg = grad_by_group(g, gy)?;
    // cols [G, kg, N·L] read transposed: [G, N·L, kg].
    let lc = Layout::new(vec![gs, nl, kg], vec![kg * nl, 1, nl], 0);
    let dw = matmul(&gyg, gyg.layout(), &cols, &lc, &[gs], (og, nl, kg), None)?;
    Tensor::from_parts(dw, Layout::contiguous(&[g.o, g.c / gs, g.kh, g.kw])).reshape(&[
        g.o,
        g.c / gs,
        g.kh,
        g.kw,
    ])
}
