//! The anchor of the product workloads: the `gemm` crate called directly, the way someone
//! using it by hand would (one preallocated output, strides passed through, the thread count
//! as gemm's own parallelism).

use gemm::Parallelism;

/// Row and column strides of a matrix operand, in elements.
pub type Strides = (usize, usize);

/// Largest index a `rows × cols` operand with `strides` reads, plus one.
fn extent((rows, cols): (usize, usize), (rs, cs): Strides) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `dst[m×n] = lhs[m×k] · rhs[k×n]` (dst row-major), each input read through its strides.
pub fn gemm_f32(
    (m, k, n): (usize, usize, usize),
    dst: &mut [f32],
    lhs: (&[f32], Strides),
    rhs: (&[f32], Strides),
    threads: usize,
) {
    assert!(
        dst.len() == m * n
            && lhs.0.len() >= extent((m, k), lhs.1)
            && rhs.0.len() >= extent((k, n), rhs.1),
        "gemm_f32: buffers too small for {m}x{k}x{n}"
    );
    let par = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: every index the strides reach is inside its buffer (checked above), and dst, a
    // unique borrow, aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.0.as_ptr(),
            lhs.1 .1 as isize,
            lhs.1 .0 as isize,
            rhs.0.as_ptr(),
            rhs.1 .1 as isize,
            rhs.1 .0 as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        )
    }
}
