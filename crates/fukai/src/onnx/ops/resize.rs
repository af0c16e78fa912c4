//! Resize and Upsample, on the host, following ONNX's reference interpolation: each axis is
//! interpolated independently, so an output element is a product of per-axis weights.

use super::super::attr::Node;
use super::util::floats;
use crate::error::Result;
use crate::Tensor;

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    match node.op_type() {
        "Resize" | "Upsample" => Some(resize(node).map(|t| vec![t])),
        _ => None,
    }
}

/// An input that may be given as an empty tensor meaning "absent".
fn present(node: &Node, i: usize) -> Result<Option<Vec<f64>>> {
    match node.opt_input(i) {
        Some(t) if t.numel() > 0 => Ok(Some(floats(node, t)?)),
        _ => Ok(None),
    }
}

fn resize(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let shape = x.shape().to_vec();
    let r = shape.len();
    let upsample = node.op_type() == "Upsample";
    let mode = node.s("mode")?.unwrap_or_else(|| "nearest".into());
    let (ctm, nearest_mode) = if upsample || node.opset < 11 {
        // Upsample (and Resize-10) repeat by the scale: asymmetric coordinates, floor.
        ("asymmetric".to_string(), "floor".to_string())
    } else {
        (
            node.s("coordinate_transformation_mode")?
                .unwrap_or_else(|| "half_pixel".into()),
            node.s("nearest_mode")?
                .unwrap_or_else(|| "round_prefer_floor".into()),
        )
    };
    let (roi, scales, sizes) = if upsample {
        let s = match node.floats("scales")? {
            Some(s) => s.into_iter().map(f64::from).collect(),
            None => present(node, 1)?.ok_or_else(|| node.err("scales are required"))?,
        };
        (None, Some(s), None)
    } else if node.opset < 11 {
        (None, present(node, 1)?, None)
    } else {
        (present(node, 1)?, present(node, 2)?, present(node, 3)?)
    };
    if node.has("axes") || node.i("keep_aspect_ratio_policy", 0).is_err() {
        return Err(node.unsupported("axes / keep_aspect_ratio_policy"));
    }
    let (scales, out_shape): (Vec<f64>, Vec<usize>) = match (scales, sizes) {
        (_, Some(sz)) => {
            let o: Vec<usize> = sz.iter().map(|&s| s as usize).collect();
            (
                o.iter()
                    .zip(&shape)
                    .map(|(&o, &i)| o as f64 / i as f64)
                    .collect(),
                o,
            )
        }
        (Some(s), None) => {
            let o = s
                .iter()
                .zip(&shape)
                .map(|(&s, &i)| (s * i as f64) as usize)
                .collect();
            (s, o)
        }
        (None, None) => return Err(node.err("neither scales nor sizes is given")),
    };
    if scales.len() != r || out_shape.len() != r {
        return Err(node.err(format!(
            "scales/sizes of length {} for rank {r}",
            scales.len()
        )));
    }
    let a = node.f("cubic_coeff_a", -0.75)? as f64;
    let exclude = node.i("exclude_outside", 0)? == 1;
    let extrap = node.f("extrapolation_value", 0.0)? as f64;
    let coeffs = |ratio: f64| -> Result<Vec<f64>> {
        Ok(match mode.as_str() {
            "nearest" => {
                if ratio == 1.0 {
                    return Ok(vec![0.0, 1.0]);
                }
                let right = match nearest_mode.as_str() {
                    "round_prefer_floor" => ratio > 0.5,
                    "round_prefer_ceil" => ratio >= 0.5,
                    "floor" => false,
                    "ceil" => true,
                    m => return Err(node.err(format!("nearest_mode {m:?}"))),
                };
                vec![f64::from(!right), f64::from(right)]
            }
            "linear" | "bilinear" | "trilinear" => vec![1.0 - ratio, ratio],
            "cubic" | "bicubic" => {
                let (p, q) = (ratio + 1.0, 2.0 - ratio);
                let s = 1.0 - ratio;
                vec![
                    ((a * p - 5.0 * a) * p + 8.0 * a) * p - 4.0 * a,
                    ((a + 2.0) * ratio - (a + 3.0)) * ratio * ratio + 1.0,
                    ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0,
                    ((a * q - 5.0 * a) * q + 8.0 * a) * q - 4.0 * a,
                ]
            }
            m => return Err(node.err(format!("mode {m:?}"))),
        })
    };
    // Per axis, per output coordinate: (input index, weight) pairs, or None for a point outside
    // tf_crop_and_resize's box (which takes extrapolation_value).
    type Taps = Option<Vec<(usize, f64)>>;
    let mut taps: Vec<Vec<Taps>> = Vec::with_capacity(r);
    for d in 0..r {
        let len = shape[d];
        let scale = scales[d];
        let out_w = scale * len as f64;
        let mut axis_taps = Vec::with_capacity(out_shape[d]);
        for xo in 0..out_shape[d] {
            let x = xo as f64;
            let l1 = len as f64 - 1.0;
            let xi = match ctm.as_str() {
                "half_pixel" => (x + 0.5) / scale - 0.5,
                "asymmetric" => x / scale,
                "pytorch_half_pixel" => {
                    if out_w == 1.0 {
                        -0.5
                    } else {
                        (x + 0.5) / scale - 0.5
                    }
                }
                "tf_half_pixel_for_nn" => (x + 0.5) / scale,
                "align_corners" => {
                    if out_w == 1.0 {
                        0.0
                    } else {
                        x * l1 / (out_w - 1.0)
                    }
                }
                "tf_crop_and_resize" => {
                    let roi = roi
                        .as_ref()
                        .ok_or_else(|| node.err("tf_crop_and_resize needs roi"))?;
                    let (s, e) = (roi[d], roi[r + d]);
                    let v = if out_w == 1.0 {
                        (e - s) * l1 / 2.0
                    } else {
                        x * (e - s) * l1 / (out_w - 1.0)
                    } + s * l1;
                    if v < 0.0 || v > l1 {
                        axis_taps.push(None);
                        continue;
                    }
                    v
                }
                m => return Err(node.err(format!("coordinate_transformation_mode {m:?}"))),
            };
            let ratio = if xi.fract() == 0.0 {
                1.0
            } else {
                xi - xi.floor()
            };
            let mut c = coeffs(ratio)?;
            let n = c.len() as i64;
            // The n indices nearest xi (ties to the lower), in an edge-padded axis.
            let pw = (n + 1) / 2;
            let mut cand: Vec<i64> = (-pw..len as i64 + pw).collect();
            cand.sort_by(|&p, &q| {
                (xi - p as f64)
                    .abs()
                    .total_cmp(&(xi - q as f64).abs())
                    .then(p.cmp(&q))
            });
            let mut idx: Vec<i64> = cand.into_iter().take(n as usize).collect();
            idx.sort();
            if exclude {
                for (w, &i) in c.iter_mut().zip(&idx) {
                    if i < 0 || i >= len as i64 {
                        *w = 0.0;
                    }
                }
                let s: f64 = c.iter().sum();
                c.iter_mut().for_each(|w| *w /= s);
            }
            axis_taps.push(Some(
                idx.iter()
                    .zip(&c)
                    .map(|(&i, &w)| (i.clamp(0, len as i64 - 1) as usize, w))
                    .collect(),
            ));
        }
        taps.push(axis_taps);
    }
    let v = floats(node, x)?;
    let mut st = vec![1usize; r];
    for i in (0..r.saturating_sub(1)).rev() {
        st[i] = st[i + 1] * shape[i + 1];
    }
    let total: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(total);
    let mut at = vec![0usize; r];
    for _ in 0..total {
        let axes: Option<Vec<&Vec<(usize, f64)>>> =
            (0..r).map(|d| taps[d][at[d]].as_ref()).collect();
        let val = match axes {
            None => extrap,
            Some(axes) => {
                // The product over axes of the per-axis taps.
                let mut acc = 0.0;
                let mut k = vec![0usize; r];
                'outer: loop {
                    let mut w = 1.0;
                    let mut off = 0;
                    for d in 0..r {
                        let (i, wd) = axes[d][k[d]];
                        w *= wd;
                        off += i * st[d];
                    }
                    if w != 0.0 {
                        acc += w * v[off];
                    }
                    for d in (0..r).rev() {
                        k[d] += 1;
                        if k[d] < axes[d].len() {
                            continue 'outer;
                        }
                        k[d] = 0;
                    }
                    break;
                }
                acc
            }
        };
        out.push(val);
        for d in (0..r).rev() {
            at[d] += 1;
            if at[d] < out_shape[d] {
                break;
            }
            at[d] = 0;
        }
    }
    node.ctx(Tensor::from_vec(out, &out_shape).and_then(|t| t.to_dtype(x.dtype())))
}
