//! Sums in 8 fixed lanes. A plain running sum is one long dependency chain that the compiler
//! may not reorder; 8 independent lanes vectorize, and because the lanes and the way they are
//! combined are fixed, the result is the same on every machine and at every vector width.

use super::float::Float;

const LANES: usize = 8;

/// Σ f(a_i, b_i) over two equally long slices, in 8 lanes then the tail in order.
#[inline(always)]
pub(crate) fn lane_sum2<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> T {
    let mut lanes = [T::ZERO; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..LANES {
            lanes[k] += f(x[k], y[k]);
        }
    }
    let mut s = lanes.into_iter().fold(T::ZERO, |a, v| a + v);
    for (&x, &y) in ra.iter().zip(rb) {
        s += f(x, y);
    }
    s
}

/// Σ f(a_i) in 8 lanes then the tail in order.
#[inline(always)]
pub(crate) fn lane_sum<T: Float>(a: &[T], f: impl Fn(T) -> T) -> T {
    lane_sum2(a, a, |x, _| f(x))
}

/// Σ a_i·b_i in 8 lanes then the tail in order.
#[inline(always)]
pub(crate) fn lane_dot<T: Float>(a: &[T], b: &[T]) -> T {
    lane_sum2(a, b, |x, y| x * y)
}

/// `(Σ (a_i - m), Σ (a_i - m)²)` in one pass, each in 8 lanes then the tail in order.
#[inline(always)]
pub(crate) fn lane_centered<T: Float>(a: &[T], m: T) -> (T, T) {
    let (mut l1, mut l2) = ([T::ZERO; LANES], [T::ZERO; LANES]);
    let c = a.chunks_exact(LANES);
    let rest = c.remainder();
    for x in c {
        for k in 0..LANES {
            let v = x[k] - m;
            l1[k] += v;
            l2[k] += v * v;
        }
    }
    let mut s1 = l1.into_iter().fold(T::ZERO, |a, v| a + v);
    let mut s2 = l2.into_iter().fold(T::ZERO, |a, v| a + v);
    for &x in rest {
        let v = x - m;
        s1 += v;
        s2 += v * v;
    }
    (s1, s2)
}
