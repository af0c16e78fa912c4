//! Fourier transforms (DFT, STFT; opset 17), on the host as direct O(n^2) sums in f64: fukai
//! has no FFT, and the models that use these ops transform short signals. The gradient stops
//! here. Complex values are a trailing axis of 2 (real, imaginary), as ONNX stores them.

use super::super::attr::Node;
use super::misc::{host, make};
use super::util::{axis, scalar};
use crate::error::Result;
use crate::Tensor;
use std::f64::consts::PI;

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    let r = match node.op_type() {
        "DFT" => dft(node),
        "STFT" => stft(node),
        _ => return None,
    };
    Some(r.map(|t| vec![t]))
}

/// The DFT of `n` complex samples (read by `at`) at frequency bins `0..bins`, of transform
/// length `len` (samples past `n` are zeros). `inverse` flips the sign and divides by `len`.
fn transform(
    at: impl Fn(usize) -> (f64, f64),
    n: usize,
    len: usize,
    bins: usize,
    inverse: bool,
) -> Vec<(f64, f64)> {
    let sign = if inverse { 1.0 } else { -1.0 };
    (0..bins)
        .map(|k| {
            let (mut re, mut im) = (0.0, 0.0);
            for t in 0..n.min(len) {
                let (xr, xi) = at(t);
                // The angle is reduced mod len in integers first, which keeps it exact.
                let ang = sign * 2.0 * PI * ((k * t) % len) as f64 / len as f64;
                let (s, c) = ang.sin_cos();
                re += xr * c - xi * s;
                im += xr * s + xi * c;
            }
            if inverse {
                (re / len as f64, im / len as f64)
            } else {
                (re, im)
            }
        })
        .collect()
}

/// Checks the trailing axis is 1 (real) or 2 (complex) and returns it.
fn components(node: &Node, shape: &[usize]) -> Result<usize> {
    match shape.last() {
        Some(&c @ (1 | 2)) if shape.len() >= 2 => Ok(c),
        _ => Err(node.err(format!(
            "input must end in an axis of 1 (real) or 2 (complex), found shape {shape:?}"
        ))),
    }
}

fn dft(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let h = host(node, x)?;
    let comp = components(node, &h.shape)?;
    let rank = h.shape.len();
    // The signal axes exclude the trailing complex axis.
    let a = axis(node, node.i("axis", 1)?, rank - 1)?;
    let n = h.shape[a];
    let len = match node.opt_input(1) {
        Some(t) => {
            let l = scalar(node, t)?;
            if l < 1.0 {
                return Err(node.err(format!("dft_length must be positive, found {l}")));
            }
            l as usize
        }
        None => n,
    };
    let inverse = node.i("inverse", 0)? != 0;
    let onesided = node.i("onesided", 0)? != 0;
    if inverse && onesided {
        return Err(node.unsupported("onesided inverse DFT"));
    }
    let bins = if onesided { len / 2 + 1 } else { len };
    let outer: usize = h.shape[..a].iter().product();
    let inner: usize = h.shape[a + 1..rank - 1].iter().product();
    let mut out = vec![0.0; outer * bins * inner * 2];
    for o in 0..outer {
        for i in 0..inner {
            let at = |t: usize| {
                let base = ((o * n + t) * inner + i) * comp;
                (h.v[base], if comp == 2 { h.v[base + 1] } else { 0.0 })
            };
            for (k, (re, im)) in transform(at, n, len, bins, inverse).into_iter().enumerate() {
                let base = ((o * bins + k) * inner + i) * 2;
                out[base] = re;
                out[base + 1] = im;
            }
        }
    }
    let mut shape = h.shape.clone();
    shape[a] = bins;
    shape[rank - 1] = 2;
    make(node, out, &shape, x.dtype())
}

fn stft(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let h = host(node, x)?;
    let comp = components(node, &h.shape)?;
    if h.shape.len() != 3 {
        return Err(node.err(format!(
            "signal must be [batch, length, 1 or 2], found {:?}",
            h.shape
        )));
    }
    let (batch, length) = (h.shape[0], h.shape[1]);
    let step = scalar(node, node.input(1)?)?;
    if step < 1.0 {
        return Err(node.err(format!("frame_step must be positive, found {step}")));
    }
    let step = step as usize;
    let window = node.opt_input(2).map(|w| host(node, w)).transpose()?;
    let frame_len = match (node.opt_input(3), &window) {
        (Some(t), _) => scalar(node, t)? as usize,
        (None, Some(w)) => w.v.len(),
        (None, None) => {
            return Err(node.err("needs a window or a frame_length"));
        }
    };
    if let Some(w) = &window {
        if w.v.len() != frame_len {
            return Err(node.err(format!(
                "window has {} values, frame_length is {frame_len}",
                w.v.len()
            )));
        }
    }
    if frame_len == 0 || frame_len > length {
        return Err(node.err(format!(
            "frame_length {frame_len} must be in 1..={length} (the signal length)"
        )));
    }
    let onesided = node.i("onesided", 1)? != 0;
    if onesided && comp == 2 {
        return Err(node.err("onesided needs a real signal"));
    }
    let bins = if onesided {
        frame_len / 2 + 1
    } else {
        frame_len
    };
    let frames = 1 + (length - frame_len) / step;
    let mut out = vec![0.0; batch * frames * bins * 2];
    for b in 0..batch {
        for f in 0..frames {
            let at = |t: usize| {
                let w = window.as_ref().map_or(1.0, |w| w.v[t]);
                let base = (b * length + f * step + t) * comp;
                let im = if comp == 2 { h.v[base + 1] } else { 0.0 };
                (h.v[base] * w, im * w)
            };
            let spec = transform(at, frame_len, frame_len, bins, false);
            for (k, (re, im)) in spec.into_iter().enumerate() {
                let base = ((b * frames + f) * bins + k) * 2;
                out[base] = re;
                out[base + 1] = im;
            }
        }
    }
    make(node, out, &[batch, frames, bins, 2], x.dtype())
}
