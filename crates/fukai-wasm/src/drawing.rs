//! A canvas drawing as an MNIST-style input: MNIST digits fit a 20×20 box centred by their
//! centre of mass in a 28×28 image, so a digit drawn anywhere on a large canvas is cropped,
//! scaled and placed the same way before the model sees it.

use fukai::{bail, Result};
use image::imageops::{resize, FilterType};
use image::{ImageBuffer, Luma};

/// Pixels above this intensity count as ink when finding the drawing's bounding box.
const INK: f32 = 0.05;

/// Turns an RGBA drawing (`width × height`, light strokes on a dark background, as the page
/// draws) into a `side × side` grey image in `[0, 1]`, row-major: the inked part scaled to fit
/// `side × 20 / 28` pixels and centred by its centre of mass. A blank drawing gives zeros.
pub fn drawing_to_input(rgba: &[u8], width: usize, height: usize, side: usize) -> Result<Vec<f32>> {
    if width == 0 || height == 0 || rgba.len() != width * height * 4 {
        bail!(
            "drawing_to_input",
            "expected {width}x{height} RGBA pixels ({} bytes), got {} bytes",
            width * height * 4,
            rgba.len()
        );
    }
    if side < 4 {
        bail!(
            "drawing_to_input",
            "the model's input side {side} is too small"
        );
    }
    let grey: Vec<f32> = rgba
        .chunks_exact(4)
        .map(|p| {
            let lum = (f32::from(p[0]) + f32::from(p[1]) + f32::from(p[2])) / (3.0 * 255.0);
            lum * f32::from(p[3]) / 255.0
        })
        .collect();
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, &v) in grey.iter().enumerate() {
        if v > INK {
            let (x, y) = (i % width, i / width);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    let mut out = vec![0.0f32; side * side];
    if x0 == usize::MAX {
        return Ok(out);
    }
    let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
    let crop = ImageBuffer::<Luma<f32>, Vec<f32>>::from_fn(bw as u32, bh as u32, |x, y| {
        Luma([grey[(y0 + y as usize) * width + x0 + x as usize]])
    });
    let boxed = (side * 20).div_ceil(28);
    let scale = boxed as f32 / bw.max(bh) as f32;
    let (nw, nh) = (
        ((bw as f32 * scale).round() as usize).clamp(1, boxed),
        ((bh as f32 * scale).round() as usize).clamp(1, boxed),
    );
    let small = resize(&crop, nw as u32, nh as u32, FilterType::Triangle);
    let (mut mass, mut cx, mut cy) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y, p) in small.enumerate_pixels() {
        let v = p.0[0].clamp(0.0, 1.0);
        mass += v;
        cx += v * x as f32;
        cy += v * y as f32;
    }
    let centre = |c: f32, n: usize| {
        let c = if mass > 0.0 { c / mass } else { n as f32 / 2.0 };
        let off = (side as f32 / 2.0 - c - 0.5).round() as i64;
        off.clamp(0, (side - n) as i64) as usize
    };
    let (ox, oy) = (centre(cx, nw), centre(cy, nh));
    for (x, y, p) in small.enumerate_pixels() {
        out[(oy + y as usize) * side + ox + x as usize] = p.0[0].clamp(0.0, 1.0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canvas(w: usize, h: usize, ink: impl Fn(usize, usize) -> bool) -> Vec<u8> {
        (0..w * h)
            .flat_map(|i| {
                let v = if ink(i % w, i / w) { 255 } else { 0 };
                [v, v, v, 255]
            })
            .collect()
    }

    #[test]
    fn blank_drawing_is_zeros() {
        let x = drawing_to_input(&canvas(50, 40, |_, _| false), 50, 40, 28).unwrap();
        assert!(x.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn stroke_in_a_corner_is_centred_and_boxed() {
        // A vertical bar in the top-left corner of a large canvas.
        let x =
            drawing_to_input(&canvas(280, 280, |x, y| x < 20 && y < 100), 280, 280, 28).unwrap();
        let rows: Vec<usize> = (0..28)
            .filter(|r| x[r * 28..(r + 1) * 28].iter().any(|&v| v > 0.5))
            .collect();
        let cols: Vec<usize> = (0..28)
            .filter(|c| (0..28).any(|r| x[r * 28 + c] > 0.5))
            .collect();
        assert_eq!(
            rows.len(),
            20,
            "the bar's height fills the 20-pixel box: {rows:?}"
        );
        assert!(
            (rows[0] as i64 - 4).abs() <= 1,
            "centred vertically: {rows:?}"
        );
        assert!(
            cols.iter().all(|&c| (12..=15).contains(&c)),
            "centred horizontally: {cols:?}"
        );
    }

    #[test]
    fn wrong_byte_count_is_an_error() {
        let e = drawing_to_input(&[0; 10], 2, 2, 28)
            .unwrap_err()
            .to_string();
        assert!(e.contains("16 bytes") && e.contains("10 bytes"), "{e}");
    }
}
