//! Object-detection operators (NonMaxSuppression, RoiAlign), on the host: fukai has no kernels
//! for them and NonMaxSuppression's output size depends on the values; the gradient stops here.

use super::super::attr::Node;
use super::misc::{host, make};
use super::util::scalar;
use crate::error::Result;
use crate::{DType, Tensor};

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    let r = match node.op_type() {
        "NonMaxSuppression" => nms(node),
        "RoiAlign" => roi_align(node),
        _ => return None,
    };
    Some(r.map(|t| vec![t]))
}

/// A box as (y1, x1, y2, x2) with y1 <= y2 and x1 <= x2.
type Corners = [f64; 4];

fn iou(a: &Corners, b: &Corners) -> f64 {
    let ih = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iw = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ih * iw;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

fn nms(node: &Node) -> Result<Tensor> {
    let (boxes, scores) = (host(node, node.input(0)?)?, host(node, node.input(1)?)?);
    if boxes.shape.len() != 3 || boxes.shape[2] != 4 {
        return Err(node.err(format!(
            "boxes must be [batches, boxes, 4], found {:?}",
            boxes.shape
        )));
    }
    let (nb, nbox) = (boxes.shape[0], boxes.shape[1]);
    if scores.shape.len() != 3 || scores.shape[0] != nb || scores.shape[2] != nbox {
        return Err(node.err(format!(
            "scores must be [{nb}, classes, {nbox}] for boxes {:?}, found {:?}",
            boxes.shape, scores.shape
        )));
    }
    let nc = scores.shape[1];
    let opt = |i: usize| node.opt_input(i).map(|t| scalar(node, t)).transpose();
    let max_out = opt(2)?.unwrap_or(0.0).max(0.0) as usize;
    let iou_threshold = opt(3)?.unwrap_or(0.0);
    let score_threshold = opt(4)?;
    let center = match node.i("center_point_box", 0)? {
        0 => false,
        1 => true,
        c => return Err(node.err(format!("center_point_box must be 0 or 1, found {c}"))),
    };
    let corners = |b: usize, i: usize| -> Corners {
        let v = &boxes.v[(b * nbox + i) * 4..][..4];
        if center {
            // [x_center, y_center, width, height]
            let (x, y, w, h) = (v[0], v[1], v[2], v[3]);
            [y - h / 2.0, x - w / 2.0, y + h / 2.0, x + w / 2.0]
        } else {
            // Either diagonal's corners may come first.
            [
                v[0].min(v[2]),
                v[1].min(v[3]),
                v[0].max(v[2]),
                v[1].max(v[3]),
            ]
        }
    };
    let mut selected = Vec::new();
    for b in 0..nb {
        for c in 0..nc {
            let s = &scores.v[(b * nc + c) * nbox..][..nbox];
            let mut cand: Vec<usize> = (0..nbox)
                .filter(|&i| score_threshold.is_none_or(|t| s[i] > t))
                .collect();
            // Highest score first; a stable sort keeps ties in box order.
            cand.sort_by(|&i, &j| s[j].total_cmp(&s[i]));
            let mut kept: Vec<usize> = Vec::new();
            for i in cand {
                if kept.len() >= max_out {
                    break;
                }
                let bi = corners(b, i);
                if kept
                    .iter()
                    .all(|&k| iou(&corners(b, k), &bi) <= iou_threshold)
                {
                    kept.push(i);
                }
            }
            selected.extend(
                kept.into_iter()
                    .flat_map(|i| [b as f64, c as f64, i as f64]),
            );
        }
    }
    let n = selected.len() / 3;
    make(node, selected, &[n, 3], DType::I64)
}

fn roi_align(node: &Node) -> Result<Tensor> {
    let x = node.input(0)?;
    let (xs, rois, bi) = (
        host(node, x)?,
        host(node, node.input(1)?)?,
        host(node, node.input(2)?)?,
    );
    if xs.shape.len() != 4 {
        return Err(node.err(format!("X must be [N, C, H, W], found {:?}", xs.shape)));
    }
    let (n, ch, h, w) = (xs.shape[0], xs.shape[1], xs.shape[2], xs.shape[3]);
    let nr = bi.v.len();
    if rois.shape != [nr, 4] {
        return Err(node.err(format!(
            "rois must be [{nr}, 4] for {nr} batch indices, found {:?}",
            rois.shape
        )));
    }
    let dim = |name: &str| -> Result<usize> {
        let v = node.i(name, 1)?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| node.err(format!("{name} must be positive, found {v}")))
    };
    let (oh, ow) = (dim("output_height")?, dim("output_width")?);
    let sampling = node.i("sampling_ratio", 0)?.max(0) as usize;
    let scale = node.f("spatial_scale", 1.0)? as f64;
    let max_mode = match node.s("mode")?.as_deref().unwrap_or("avg") {
        "avg" => false,
        "max" => true,
        m => return Err(node.unsupported(format!("mode {m:?}"))),
    };
    // Opset 16 added half_pixel (and made it the default); before, coordinates were not shifted.
    let default_mode = if node.opset >= 16 {
        "half_pixel"
    } else {
        "output_half_pixel"
    };
    let half_pixel = match node
        .s("coordinate_transformation_mode")?
        .as_deref()
        .unwrap_or(default_mode)
    {
        "half_pixel" => true,
        "output_half_pixel" => false,
        m => return Err(node.unsupported(format!("coordinate_transformation_mode {m:?}"))),
    };
    let offset = if half_pixel { 0.5 } else { 0.0 };
    let mut out = vec![0.0; nr * ch * oh * ow];
    for r in 0..nr {
        let b = bi.v[r];
        if b < 0.0 || b as usize >= n {
            return Err(node.err(format!("batch index {b} out of range for {n} images")));
        }
        let b = b as usize;
        let roi = &rois.v[r * 4..][..4];
        let (x0, y0) = (roi[0] * scale - offset, roi[1] * scale - offset);
        let (mut rw, mut rh) = (roi[2] * scale - offset - x0, roi[3] * scale - offset - y0);
        if !half_pixel {
            // The legacy mode forces rois to be at least one pixel.
            rw = rw.max(1.0);
            rh = rh.max(1.0);
        }
        let (bh, bw) = (rh / oh as f64, rw / ow as f64);
        let gh = if sampling > 0 {
            sampling
        } else {
            bh.ceil() as usize
        };
        let gw = if sampling > 0 {
            sampling
        } else {
            bw.ceil() as usize
        };
        let count = (gh * gw).max(1) as f64;
        for c in 0..ch {
            let img = &xs.v[(b * ch + c) * h * w..][..h * w];
            for py in 0..oh {
                for px in 0..ow {
                    let mut acc = if max_mode { f64::MIN } else { 0.0 };
                    let mut any = false;
                    for iy in 0..gh {
                        let y = y0 + py as f64 * bh + (iy as f64 + 0.5) * bh / gh as f64;
                        for ix in 0..gw {
                            let xx = x0 + px as f64 * bw + (ix as f64 + 0.5) * bw / gw as f64;
                            let taps = bilinear_taps(y, xx, h, w);
                            any = true;
                            if max_mode {
                                // As ONNX Runtime: the largest weighted tap.
                                for (i, wt) in taps {
                                    acc = acc.max(wt * img[i]);
                                }
                            } else {
                                acc += taps.iter().map(|&(i, wt)| wt * img[i]).sum::<f64>();
                            }
                        }
                    }
                    out[((r * ch + c) * oh + py) * ow + px] = match (max_mode, any) {
                        (true, true) => acc,
                        (true, false) => 0.0,
                        (false, _) => acc / count,
                    };
                }
            }
        }
    }
    make(node, out, &[nr, ch, oh, ow], x.dtype())
}

/// The four (flat index, weight) taps of bilinear sampling at (y, x), as RoiAlign defines it:
/// points more than one pixel outside contribute nothing, the rest clamp to the border.
fn bilinear_taps(y: f64, x: f64, h: usize, w: usize) -> Vec<(usize, f64)> {
    if y < -1.0 || y > h as f64 || x < -1.0 || x > w as f64 || h == 0 || w == 0 {
        return Vec::new();
    }
    let clamp = |v: f64, n: usize| -> (usize, usize, f64) {
        let v = v.max(0.0);
        let lo = v as usize;
        if lo >= n - 1 {
            (n - 1, n - 1, 0.0)
        } else {
            (lo, lo + 1, v - lo as f64)
        }
    };
    let (y0, y1, ly) = clamp(y, h);
    let (x0, x1, lx) = clamp(x, w);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    vec![
        (y0 * w + x0, hy * hx),
        (y0 * w + x1, hy * lx),
        (y1 * w + x0, ly * hx),
        (y1 * w + x1, ly * lx),
    ]
}
