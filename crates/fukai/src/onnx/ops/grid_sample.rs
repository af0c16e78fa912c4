//! GridSample (4-D, opset 16), on the host with PyTorch's `grid_sample` semantics, which ONNX
//! adopted: fukai has no gather-with-interpolation kernel, so the gradient stops here.

use super::super::attr::Node;
use super::misc::{host, make};
use crate::error::Result;
use crate::Tensor;

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    match node.op_type() {
        "GridSample" => Some(grid_sample(node).map(|t| vec![t])),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Padding {
    Zeros,
    Border,
    Reflection,
}

/// How one axis maps normalized grid coordinates to pixels and applies the padding mode.
struct Axis {
    size: usize,
    align: bool,
    padding: Padding,
}

impl Axis {
    /// [-1, 1] to pixel coordinates: the corner pixels' centres (align_corners) or their edges.
    fn unnormalize(&self, g: f64) -> f64 {
        let n = self.size as f64;
        if self.align {
            (g + 1.0) / 2.0 * (n - 1.0)
        } else {
            ((g + 1.0) * n - 1.0) / 2.0
        }
    }

    /// Applies border or reflection padding to a pixel coordinate (zeros leaves it, and reads
    /// outside the image give 0).
    fn pad(&self, x: f64) -> f64 {
        let hi = self.size as f64 - 1.0;
        match self.padding {
            Padding::Zeros => x,
            Padding::Border => x.clamp(0.0, hi),
            Padding::Reflection => {
                let r = if self.align {
                    reflect(x, 0.0, 2.0 * hi)
                } else {
                    reflect(x, -1.0, 2.0 * hi + 1.0)
                };
                r.clamp(0.0, hi)
            }
        }
    }
}

/// Reflects `x` into [twice_low / 2, twice_high / 2], as PyTorch's `reflect_coordinates`.
fn reflect(x: f64, twice_low: f64, twice_high: f64) -> f64 {
    if twice_low == twice_high {
        return 0.0;
    }
    let min = twice_low / 2.0;
    let span = (twice_high - twice_low) / 2.0;
    let x = (x - min).abs();
    let extra = x % span;
    let flips = (x / span).floor();
    if flips % 2.0 == 0.0 {
        extra + min
    } else {
        span - extra + min
    }
}

/// Keys's cubic convolution weights with A = -0.75 for the four taps around fraction `t`.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

fn grid_sample(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let (xs, grid) = (host(node, x)?, host(node, node.input(1)?)?);
    if xs.shape.len() != 4 {
        return Err(node.unsupported(format!(
            "input of rank {} (only 4-D [N, C, H, W])",
            xs.shape.len()
        )));
    }
    let (n, ch, h, w) = (xs.shape[0], xs.shape[1], xs.shape[2], xs.shape[3]);
    if grid.shape.len() != 4 || grid.shape[0] != n || grid.shape[3] != 2 {
        return Err(node.err(format!(
            "grid must be [{n}, H_out, W_out, 2] for input {:?}, found {:?}",
            xs.shape, grid.shape
        )));
    }
    if h == 0 || w == 0 {
        return Err(node.err(format!("cannot sample an empty image {:?}", xs.shape)));
    }
    let (oh, ow) = (grid.shape[1], grid.shape[2]);
    let align = node.i("align_corners", 0)? != 0;
    let padding = match node.s("padding_mode")?.as_deref().unwrap_or("zeros") {
        "zeros" => Padding::Zeros,
        "border" => Padding::Border,
        "reflection" => Padding::Reflection,
        p => return Err(node.unsupported(format!("padding_mode {p:?}"))),
    };
    let mode = node.s("mode")?.unwrap_or_else(|| "bilinear".into());
    if !matches!(mode.as_str(), "bilinear" | "nearest" | "bicubic") {
        return Err(node.unsupported(format!("mode {mode:?}")));
    }
    let ax = |size| Axis {
        size,
        align,
        padding,
    };
    let (ay, axx) = (ax(h), ax(w));
    let mut out = vec![0.0; n * ch * oh * ow];
    for b in 0..n {
        for i in 0..oh {
            for j in 0..ow {
                let g = &grid.v[((b * oh + i) * ow + j) * 2..][..2];
                let (fx, fy) = (axx.unnormalize(g[0]), ay.unnormalize(g[1]));
                for c in 0..ch {
                    let img = &xs.v[(b * ch + c) * h * w..][..h * w];
                    // Reads outside the image are 0 (only reachable with zeros padding).
                    let at = |yy: f64, xx: f64| -> f64 {
                        if yy < 0.0 || xx < 0.0 || yy >= h as f64 || xx >= w as f64 {
                            0.0
                        } else {
                            img[yy as usize * w + xx as usize]
                        }
                    };
                    let v = match mode.as_str() {
                        "nearest" => {
                            let (py, px) = (ay.pad(fy), axx.pad(fx));
                            at(py.round_ties_even(), px.round_ties_even())
                        }
                        "bilinear" => {
                            let (py, px) = (ay.pad(fy), axx.pad(fx));
                            let (y0, x0) = (py.floor(), px.floor());
                            let (ty, tx) = (py - y0, px - x0);
                            at(y0, x0) * (1.0 - ty) * (1.0 - tx)
                                + at(y0, x0 + 1.0) * (1.0 - ty) * tx
                                + at(y0 + 1.0, x0) * ty * (1.0 - tx)
                                + at(y0 + 1.0, x0 + 1.0) * ty * tx
                        }
                        _ => {
                            // Bicubic pads each tap, not the sampling point.
                            let (y0, x0) = (fy.floor(), fx.floor());
                            let (wy, wx) = (cubic_weights(fy - y0), cubic_weights(fx - x0));
                            let mut s = 0.0;
                            for (ty, wyv) in wy.iter().enumerate() {
                                let yy = ay.pad(y0 - 1.0 + ty as f64);
                                for (tx, wxv) in wx.iter().enumerate() {
                                    let xx = axx.pad(x0 - 1.0 + tx as f64);
                                    s += wyv * wxv * at(yy.trunc(), xx.trunc());
                                }
                            }
                            s
                        }
                    };
                    out[((b * ch + c) * oh + i) * ow + j] = v;
                }
            }
        }
    }
    make(node, out, &[n, ch, oh, ow], x.dtype())
}
