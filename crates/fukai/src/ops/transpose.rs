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
    #[cfg(target_arch = "x86_64")]
    if T::DTYPE == crate::DType::F32 && std::arch::is_x86_feature_detected!("avx512f") {
        let (full_r, full_c) = (rows / B * B, cols / B * B);
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
    tiles8(src, ss, dst, ds, (rows, cols));
}

/// The portable path: 8x8 tiles copied through a local array (LLVM vectorizes the row copies;
/// element by element this was 2.5% of a GPT step), then the ragged edges.
fn tiles8<T: Float>(src: &[T], ss: usize, dst: &mut [T], ds: usize, (rows, cols): (usize, usize)) {
    const E: usize = 8;
    let (full_r, full_c) = (rows / E * E, cols / E * E);
    for r0 in (0..full_r).step_by(E) {
        for c0 in (0..full_c).step_by(E) {
            let mut tile = [[T::ZERO; E]; E];
            for (r, tr) in tile.iter_mut().enumerate() {
                tr.copy_from_slice(&src[(r0 + r) * ss + c0..][..E]);
            }
            for c in 0..E {
                let o = &mut dst[(c0 + c) * ds + r0..][..E];
                for (r, o) in o.iter_mut().enumerate() {
                    *o = tile[r][c];
                }
            }
        }
    }
    scalar(src, ss, dst, ds, (full_r..rows, 0..cols));
    scalar(src, ss, dst, ds, (0..full_r, full_c..cols));
}

/// `dst[M·l + j] = rows[j][l]`: M rows of 16 interleaved element by element (a 16×M transpose),
/// in shuffles for f32 on AVX-512 (M = 2 or 4). LLVM builds the generic loop from scalar
/// inserts: 192 `vinsertps` per F(4x4) output-transform step.
#[inline(always)]
pub(crate) fn interleave<T: Float, const M: usize>(rows: &[[T; B]], dst: &mut [T]) {
    assert!(rows.len() == M && dst.len() == M * B);
    #[cfg(target_arch = "x86_64")]
    if T::DTYPE == crate::DType::F32
        && (M == 2 || M == 4)
        && std::arch::is_x86_feature_detected!("avx512f")
    {
        // SAFETY: T is f32, the CPU has AVX-512F, `rows` holds M rows of 16 and `dst` M·16.
        unsafe {
            x86::interleave_f32::<M>(rows.as_ptr() as *const f32, dst.as_mut_ptr() as *mut f32)
        };
        return;
    }
    for (l, chunk) in dst.chunks_exact_mut(M).enumerate() {
        for (j, d) in chunk.iter_mut().enumerate() {
            *d = rows[j][l];
        }
    }
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

    /// [`super::interleave`] for M = 2 or 4 rows of 16 f32 at `r`, into M·16 f32 at `d`:
    /// pairs of rows interleaved within 128-bit lanes, then (M = 4) pairs of pairs, then the
    /// 128-bit lanes put in order.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `r` must hold M·16 readable f32 and `d` M·16 writable ones.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn interleave_f32<const M: usize>(r: *const f32, d: *mut f32) {
        let row = |j: usize| unsafe { _mm512_loadu_ps(r.add(16 * j)) };
        if M == 2 {
            let (a, b) = (row(0), row(1));
            let (t0, t1) = (_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
            let lo = _mm512_shuffle_f32x4::<0b01_00_01_00>(t0, t1);
            let hi = _mm512_shuffle_f32x4::<0b11_10_11_10>(t0, t1);
            unsafe {
                _mm512_storeu_ps(d, _mm512_shuffle_f32x4::<0b11_01_10_00>(lo, lo));
                _mm512_storeu_ps(d.add(16), _mm512_shuffle_f32x4::<0b11_01_10_00>(hi, hi));
            }
            return;
        }
        let (a, b, c, e) = (row(0), row(1), row(2), row(3));
        let pd = _mm512_castps_pd;
        let (t0, t1) = (_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        let (t2, t3) = (_mm512_unpacklo_ps(c, e), _mm512_unpackhi_ps(c, e));
        // u[q], 128-bit lane k: elements 4k + q of the four rows.
        let u = [
            _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t0), pd(t2))),
            _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t0), pd(t2))),
            _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t1), pd(t3))),
            _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t1), pd(t3))),
        ];
        // Output vector k is lane k of u[0..4].
        let s0 = _mm512_shuffle_f32x4::<0b01_00_01_00>(u[0], u[1]);
        let s1 = _mm512_shuffle_f32x4::<0b01_00_01_00>(u[2], u[3]);
        let s2 = _mm512_shuffle_f32x4::<0b11_10_11_10>(u[0], u[1]);
        let s3 = _mm512_shuffle_f32x4::<0b11_10_11_10>(u[2], u[3]);
        let v = [
            _mm512_shuffle_f32x4::<0b10_00_10_00>(s0, s1),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(s0, s1),
            _mm512_shuffle_f32x4::<0b10_00_10_00>(s2, s3),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(s2, s3),
        ];
        for (k, v) in v.into_iter().enumerate() {
            unsafe { _mm512_storeu_ps(d.add(16 * k), v) };
        }
    }

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
    use super::{interleave, transpose};

    #[test]
    fn interleave_matches_the_definition() {
        fn check<const M: usize>() {
            let rows: Vec<[f32; 16]> = (0..M)
                .map(|j| std::array::from_fn(|l| (100 * j + l) as f32))
                .collect();
            let mut dst = vec![0f32; M * 16];
            interleave::<f32, M>(&rows, &mut dst);
            for l in 0..16 {
                for j in 0..M {
                    assert_eq!(dst[M * l + j], rows[j][l], "M = {M}, lane {l}, row {j}");
                }
            }
        }
        check::<2>();
        check::<4>();
        check::<3>();
    }

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
