//! Matrix products with bf16 operands and f32 accumulation: the kernel behind
//! [`Precision::Bf16`](crate::Precision).
//!
//! Both operands are rounded to bf16 (round to nearest even) while they are packed: A in
//! panels of `MR` rows, B in panels of `NR` columns, each holding consecutive `k` pairs in
//! one 32-bit word (even `k` in the low half), the layout AVX512-BF16's `vdpbf16ps` reads. Each
//! output element starts at 0 (or its current value when accumulating) and takes its `k` pairs
//! in order; neither the blocking nor the thread count changes that order, so the bits depend
//! on `k` alone.
//!
//! `vdpbf16ps` adds the odd product, then the even one, each rounded to nearest even, with
//! denormal inputs and results flushed to zero (Intel's pseudocode). [`Kernel::Portable`]
//! computes exactly that in scalar code, for CPUs and targets without the instruction;
//! `tests/bf16.rs` checks that both give the same bits on the CPU it runs on. On this
//! project's AMD Zen machine they do while the products stay in f32's normal range; with
//! denormal products (operands below about 1e-19) the CPU keeps values the pseudocode
//! flushes, so there the two paths differ (each still deterministic).
//!
//! Winograd convolutions (3x3, stride 1, enough channels) stay f32 under bf16: they already do
//! a quarter of the multiplications of im2col, more than bf16's two products per instruction
//! win back, and their transforms would round again in bf16.

use super::matmul::SendPtr;
use gemm::Parallelism;

/// Rows of A per packed panel and per microkernel call.
const MR: usize = 12;
/// Columns of B per packed panel: two 16-lane vectors.
const NR: usize = 32;
/// Output rows of one parallel task (whole panels). The tasks are fixed by the shape, not by
/// the thread count.
const MB: usize = 8 * MR;
/// Output columns of one parallel task (whole panels): its B panels stay in L2 while it walks
/// its row panels.
const NB: usize = 8 * NR;

/// Which code computes a bf16 product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX512-BF16 where the CPU has it, else [`Kernel::Portable`].
    Auto,
    /// `vdpbf16ps`; falls back to [`Kernel::Portable`] on a CPU without AVX512-BF16.
    Avx512Bf16,
    /// Scalar code with the same rounding as `vdpbf16ps`, for any target.
    Portable,
}

/// Whether this CPU has AVX512-BF16 (`vdpbf16ps`).
pub fn avx512_bf16_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
            && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The bf16 bits nearest `x` (ties to even); a NaN stays a (quiet) NaN.
#[inline(always)]
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `x` rounded to the nearest bf16 (ties to even), as an f32.
///
/// ```
/// use fukai::ops::bf16::round;
/// assert_eq!(round(1.0 + 1.0 / 256.0), 1.0); // a tie: to the even neighbour
/// assert_eq!(round(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
/// assert_eq!(round(0.1), 0.10009765625);
/// ```
#[inline(always)]
pub fn round(x: f32) -> f32 {
    f32::from_bits((bf16_bits(x) as u32) << 16)
}

/// Two consecutive `k` elements as one word: `lo` in the low half.
#[inline(always)]
fn pair(lo: f32, hi: f32) -> u32 {
    bf16_bits(lo) as u32 | ((bf16_bits(hi) as u32) << 16)
}

/// `[m×k]` (strides `s`) into panels of `MR` rows: word `(panel·k2 + p)·MR + r` holds elements
/// `2p` and `2p + 1` of the panel's row `r`; rows past `m` and the odd `k`'s partner are 0.
///
/// # Safety
/// `a` covers every element the strides reach.
unsafe fn pack_a(m: usize, k: usize, a: *const f32, s: (isize, isize)) -> Vec<u32> {
    let k2 = k.div_ceil(2);
    let mut out = vec![0u32; m.div_ceil(MR) * k2 * MR];
    let at = |i: usize, j: usize| -> f32 {
        if j < k {
            // SAFETY: (i, j) is inside the operand.
            unsafe { *a.offset(i as isize * s.0 + j as isize * s.1) }
        } else {
            0.0
        }
    };
    crate::simd::run(|| {
        for (ip, panel) in out.chunks_exact_mut(k2 * MR).enumerate() {
            for r in 0..MR.min(m - ip * MR) {
                let i = ip * MR + r;
                for p in 0..k2 {
                    panel[p * MR + r] = pair(at(i, 2 * p), at(i, 2 * p + 1));
                }
            }
        }
    });
    out
}

/// `[k×n]` (strides `s`) into panels of `NR` columns: word `(panel·k2 + p)·NR + c` holds rows
/// `2p` and `2p + 1` of the panel's column `c`; columns past `n` and the odd `k`'s partner
/// are 0.
///
/// # Safety
/// `b` covers every element the strides reach.
unsafe fn pack_b(k: usize, n: usize, b: *const f32, s: (isize, isize)) -> Vec<u32> {
    let k2 = k.div_ceil(2);
    let mut out = vec![0u32; n.div_ceil(NR) * k2 * NR];
    let at = |i: usize, j: usize| -> f32 {
        if i < k {
            // SAFETY: (i, j) is inside the operand.
            unsafe { *b.offset(i as isize * s.0 + j as isize * s.1) }
        } else {
            0.0
        }
    };
    crate::simd::run(|| {
        for (jp, panel) in out.chunks_exact_mut(k2 * NR).enumerate() {
            let cols = NR.min(n - jp * NR);
            for p in 0..k2 {
                let row = &mut panel[p * NR..p * NR + cols];
                for (c, w) in row.iter_mut().enumerate() {
                    let j = jp * NR + c;
                    *w = pair(at(2 * p, j), at(2 * p + 1, j));
                }
            }
        }
    });
    out
}

/// One full `MR×NR` tile: `c` (row stride `c_rs`) = (or +=) the packed panels' product.
type TileFn = unsafe fn(usize, *const u32, *const u32, *mut f32, usize, bool);

/// The tile on `vdpbf16ps`: 24 accumulators, two B vectors and one broadcast A word per pair.
///
/// # Safety
/// The CPU has AVX512-BF16; `a` and `b` hold `k2` packed pairs; `c` covers the tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_avx512(
    k2: usize,
    a: *const u32,
    b: *const u32,
    c: *mut f32,
    c_rs: usize,
    acc0: bool,
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract; every pointer stays inside its panel or tile.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        if acc0 {
            for (r, row) in acc.iter_mut().enumerate() {
                row[0] = _mm512_loadu_ps(c.add(r * c_rs));
                row[1] = _mm512_loadu_ps(c.add(r * c_rs + 16));
            }
        }
        for p in 0..k2 {
            let b0 =
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.add(p * NR).cast()));
            let b1 = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                b.add(p * NR + 16).cast(),
            ));
            let ap = a.add(p * MR);
            for (r, row) in acc.iter_mut().enumerate() {
                let av =
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*ap.add(r) as i32));
                row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                row[1] = _mm512_dpbf16_ps(row[1], av, b1);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            _mm512_storeu_ps(c.add(r * c_rs), row[0]);
            _mm512_storeu_ps(c.add(r * c_rs + 16), row[1]);
        }
    }
}

/// `v` with a denormal flushed to a zero of its sign, as `vdpbf16ps` treats inputs and results.
#[inline(always)]
fn ftz(v: f32) -> f32 {
    let b = v.to_bits();
    if b & 0x7f80_0000 == 0 {
        f32::from_bits(b & 0x8000_0000)
    } else {
        v
    }
}

/// `acc` plus the word pair's two products, as `vdpbf16ps` adds them: the odd (high) product
/// first, each sum rounded, denormals flushed. The products of two bf16 values are exact in f32.
#[inline(always)]
fn dot_pair(acc: f32, a: u32, b: u32) -> f32 {
    let lo = |w: u32| ftz(f32::from_bits(w << 16));
    let hi = |w: u32| ftz(f32::from_bits(w & 0xffff_0000));
    let acc = ftz(acc + ftz(hi(a) * hi(b)));
    ftz(acc + ftz(lo(a) * lo(b)))
}

/// The tile in portable code, with `vdpbf16ps`'s rounding (see [`dot_pair`]).
///
/// # Safety
/// `a` and `b` hold `k2` packed pairs; `c` covers the tile.
unsafe fn tile_portable(
    k2: usize,
    a: *const u32,
    b: *const u32,
    c: *mut f32,
    c_rs: usize,
    acc0: bool,
) {
    // SAFETY: the caller's contract.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(a, k2 * MR),
            std::slice::from_raw_parts(b, k2 * NR),
        )
    };
    crate::simd::run(|| {
        let mut acc = [[0f32; NR]; MR];
        if acc0 {
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: row r of the tile.
                row.copy_from_slice(unsafe { std::slice::from_raw_parts(c.add(r * c_rs), NR) });
            }
        }
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            for (row, &aw) in acc.iter_mut().zip(ap) {
                for (v, &bw) in row.iter_mut().zip(bp) {
                    *v = dot_pair(*v, aw, bw);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            // SAFETY: row r of the tile.
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), c.add(r * c_rs), NR) };
        }
    })
}

fn tile_fn(kernel: Kernel) -> TileFn {
    #[cfg(target_arch = "x86_64")]
    if kernel != Kernel::Portable && avx512_bf16_available() {
        return tile_avx512;
    }
    let _ = kernel;
    tile_portable
}

/// `dst[m×n]` (row stride `dst_rs`) = (or += when `accumulate`) `lhs[m×k] · rhs[k×n]` with both
/// operands rounded to bf16 and f32 sums; operands given by (row, col) strides. `par` as for
/// gemm: `Parallelism::None` keeps it on the calling thread.
///
/// # Safety
/// Pointers cover every element their strides reach; `dst` does not alias the inputs.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_bf16(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    ls: (isize, isize),
    rhs: *const f32,
    rs: (isize, isize),
    accumulate: bool,
    par: Parallelism,
    kernel: Kernel,
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the caller's contract.
    let (pa, pb) = unsafe { (pack_a(m, k, lhs, ls), pack_b(k, n, rhs, rs)) };
    let k2 = k.div_ceil(2);
    let tile = tile_fn(kernel);
    let d = SendPtr(dst);
    let block = |t: usize, bn: usize| {
        let (i0, j0) = ((t / bn) * MB, (t % bn) * NB);
        let mut edge = [0f32; MR * NR];
        for jp in (j0 / NR)..(n.min(j0 + NB).div_ceil(NR)) {
            let bpan = pb[jp * k2 * NR..].as_ptr();
            let cols = NR.min(n - jp * NR);
            for ip in (i0 / MR)..(m.min(i0 + MB).div_ceil(MR)) {
                let apan = pa[ip * k2 * MR..].as_ptr();
                let rows = MR.min(m - ip * MR);
                // SAFETY: the tile's rows and columns are inside dst; a partial tile goes
                // through `edge`, a full MR×NR buffer.
                unsafe {
                    let c = d.get().add(ip * MR * dst_rs + jp * NR);
                    if rows == MR && cols == NR {
                        tile(k2, apan, bpan, c, dst_rs, accumulate);
                        continue;
                    }
                    if accumulate {
                        for r in 0..rows {
                            std::ptr::copy_nonoverlapping(
                                c.add(r * dst_rs),
                                edge[r * NR..].as_mut_ptr(),
                                cols,
                            );
                        }
                    }
                    tile(k2, apan, bpan, edge.as_mut_ptr(), NR, accumulate);
                    for r in 0..rows {
                        std::ptr::copy_nonoverlapping(
                            edge[r * NR..].as_ptr(),
                            c.add(r * dst_rs),
                            cols,
                        );
                    }
                }
            }
        }
    };
    let (bm, bn) = (m.div_ceil(MB), n.div_ceil(NB));
    let parallel = !matches!(par, Parallelism::None) && bm * bn > 1;
    crate::parallel::map_range_if(parallel, bm * bn, |t| block(t, bn));
}

/// `a[m×k] · b[k×n]` (row-major) with both rounded to bf16 and f32 sums, on `kernel`: the
/// kernel [`Precision::Bf16`](crate::Precision) products run on, for tests and benchmarks.
///
/// ```
/// use fukai::ops::bf16::{matmul, Kernel};
/// let a = [1.0f32, 2.0, 3.0, 4.0];
/// let b = [0.5f32, 0.25, 1.0 / 3.0, 1.0];
/// // 1/3 rounds to 0.333984375 in bf16.
/// assert_eq!(matmul(&a, &b, (2, 2, 2), Kernel::Portable), [1.16796875, 2.25, 2.8359375, 4.75]);
/// assert_eq!(matmul(&a, &b, (2, 2, 2), Kernel::Auto), matmul(&a, &b, (2, 2, 2), Kernel::Portable));
/// ```
pub fn matmul(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize), kernel: Kernel) -> Vec<f32> {
    assert!(
        a.len() == m * k && b.len() == k * n,
        "matmul: operands are not [m×k] and [k×n]"
    );
    let mut out = vec![0f32; m * n];
    // SAFETY: the lengths were checked; `out` is fresh.
    unsafe {
        gemm_bf16(
            (m, n, k),
            out.as_mut_ptr(),
            n,
            a.as_ptr(),
            (k as isize, 1),
            b.as_ptr(),
            (n as isize, 1),
            false,
            super::matmul::parallelism(m, n, k),
            kernel,
        )
    };
    out
}
