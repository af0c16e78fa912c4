//! Out-of-place matrix transpose, in 16×16 register blocks for f32 on AVX-512.
//!
//! The Winograd weight gradient multiplies two operands that both run along the tiles; handed
//! over as they are, the gemm crate gathers one of them element by element into its packed
//! layout. Transposing it first in whole-vector blocks is cheaper than that gather, and the
//! product then runs at the forward pass's speed (32×32×112, the F(4x4) layer's shape: 2.2 µs
//! strided, 1.0 µs transposed; 64×64×112: 4.9 µs, 4.0 µs).

use super::float::Float;

/// Block edge of the vector kernel (f32 lanes of a 512-bit vector).
const B: usize = 16;

/// `dst[c * ds + r] = src[r * ss + c]` for `r < rows`, `c < cols`.
pub(crate) fn transpose<T: Float>(
    (rows, cols): (usize, usize),
    src: &[T],
    ss: usize,
    dst: &mut [T],
    ds: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        (rows - 1) * ss + cols <= src.len() && (cols - 1) * ds + rows <= dst.len(),
        "transpose: {rows}x{cols} at strides {ss}/{ds} does not fit {} / {} elements",
        src.len(),
        dst.len()
    );
    let (full_r, full_c) = (rows / B * B, cols / B * B);
    #[cfg(target_arch = "x86_64")]
    if T::DTYPE == crate::DType::F32 && std::arch::is_x86_feature_detected!("avx512f") {
        let (sp, dp) = (src.as_ptr() as *const f32, dst.as_mut_ptr() as *mut f32);
        for r in (0..full_r).step_by(B) {
            for c in (0..full_c).step_by(B) {
                // SAFETY: T is f32; the CPU has AVX-512F; the block's rows r..r+16 and columns
                // c..c+16 are inside both matrices (r + 16 <= rows, c + 16 <= cols, and the
                // assert above bounds the last row and column).
                unsafe { x86::block16(sp.add(r * ss + c), ss, dp.add(c * ds + r), ds) };
            }
        }
        scalar(src, ss, dst, ds, (full_r..rows, 0..cols));
        scalar(src, ss, dst, ds, (0..full_r, full_c..cols));
        return;
    }
    scalar(src, ss, dst, ds, (0..rows, 0..cols));
}

/// The transpose of rows `rs` and columns `cs`, element by element.
fn scalar<T: Float>(
    src: &[T],
    ss: usize,
    dst: &mut [T],
    ds: usize,
    (rs, cs): (std::ops::Range<usize>, std::ops::Range<usize>),
) {
    for r in rs {
        for c in cs.clone() {
            dst[c * ds + r] = src[r * ss + c];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Transposes the 16×16 block at `s` (row stride `ss`) into `d` (row stride `ds`):
    /// interleave pairs of rows, then pairs of pairs, then 128-bit lanes twice.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; 16 rows of 16 f32 must be readable at `s` and writable
    /// at `d` with the given strides.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block16(s: *const f32, ss: usize, d: *mut f32, ds: usize) {
        let r: [__m512; 16] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(s.add(i * ss)) });
        // Pairs of rows, 32-bit elements interleaved.
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        // Pairs of pairs, 64-bit elements interleaved.
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let q = i / 4 * 4;
            let (a, b) = match i % 4 {
                0 | 1 => (t[q], t[q + 2]),
                _ => (t[q + 1], t[q + 3]),
            };
            let (a, b) = (_mm512_castps_pd(a), _mm512_castps_pd(b));
            _mm512_castpd_ps(if i % 2 == 0 {
                _mm512_unpacklo_pd(a, b)
            } else {
                _mm512_unpackhi_pd(a, b)
            })
        });
        // 128-bit lanes: rows i and i+4 within each group of 8.
        let v: [__m512; 16] = std::array::from_fn(|i| {
            let (g, k) = (i / 8 * 8, i % 8);
            let (a, b) = (u[g + k % 4], u[g + k % 4 + 4]);
            if k < 4 {
                _mm512_shuffle_f32x4::<0x88>(a, b)
            } else {
                _mm512_shuffle_f32x4::<0xdd>(a, b)
            }
        });
        // 128-bit lanes across the two groups of 8.
        for i in 0..16 {
            let (a, b) = (v[i % 8], v[i % 8 + 8]);
            let o = if i < 8 {
                _mm512_shuffle_f32x4::<0x88>(a, b)
            } else {
                _mm512_shuffle_f32x4::<0xdd>(a, b)
            };
            unsafe { _mm512_storeu_ps(d.add(i * ds), o) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn every_shape_and_stride() {
        for (rows, cols) in [(16, 16), (32, 112), (17, 33), (5, 3), (48, 16), (1, 40)] {
            let (ss, ds) = (cols + 3, rows + 5);
            let src: Vec<f32> = (0..rows * ss).map(|i| i as f32).collect();
            let mut dst = vec![-1f32; cols * ds];
            transpose((rows, cols), &src, ss, &mut dst, ds);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[c * ds + r],
                        src[r * ss + c],
                        "{rows}x{cols} at ({r}, {c})"
                    );
                }
            }
            for c in 0..cols {
                assert!(dst[c * ds + rows..(c + 1) * ds].iter().all(|&v| v == -1.0));
            }
            let src64: Vec<f64> = src.iter().map(|&v| v as f64).collect();
            let mut dst64 = vec![0f64; cols * ds];
            transpose((rows, cols), &src64, ss, &mut dst64, ds);
            assert!((0..rows).all(|r| (0..cols).all(|c| dst64[c * ds + r] == src64[r * ss + c])));
        }
    }
}
