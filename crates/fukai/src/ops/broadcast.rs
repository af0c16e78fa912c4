//! The broadcasting loop shared by every two-input elementwise kernel.

use crate::parallel::for_each_chunk_mut;
use crate::tensor::{Layout, StorageSlice, Tensor};

/// Rows per parallel chunk are chosen so a chunk holds about this many elements.
const CHUNK_ELEMS: usize = 1 << 14;

/// Computes `f(a[i], b[i])` over the broadcast `shape` into a contiguous Vec. Inputs are read in
/// place through their (broadcast) strides; only the outer odometer allocates.
pub fn zip_map<A, B, O>(
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
    f: impl Fn(A, B) -> O + Sync + Send,
) -> Vec<O>
where
    A: StorageSlice,
    B: StorageSlice,
    O: Copy + Default + Send + Sync,
{
    let la = a
        .layout()
        .broadcast_to("broadcast", shape)
        .expect("shape checked by caller");
    let lb = b
        .layout()
        .broadcast_to("broadcast", shape)
        .expect("shape checked by caller");
    let da = a.storage().read();
    let db = b.storage().read();
    let sa = A::slice(&da).expect("dtype checked by caller");
    let sb = B::slice(&db).expect("dtype checked by caller");
    let n: usize = shape.iter().product();
    // Same-shape contiguous operands: one flat loop.
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        let (xa, xb) = (&sa[ra], &sb[rb]);
        assert!(
            xa.len() == n && xb.len() == n,
            "broadcast: contiguous ranges of {n}"
        );
        let chunk = crate::parallel::elementwise_piece(n);
        // SAFETY: each piece is written whole (zipped with equally long input ranges).
        return unsafe {
            crate::parallel::build_uninit(n, chunk, |i, o| {
                let s = i * chunk;
                let (xa, xb) = (&xa[s..s + o.len()], &xb[s..s + o.len()]);
                crate::simd::run(
                    #[inline(always)]
                    || {
                        for ((o, &x), &y) in o.iter_mut().zip(xa).zip(xb) {
                            o.write(f(x, y));
                        }
                    },
                )
            })
        };
    }
    if n == 0 {
        return Vec::new();
    }
    let rank = shape.len();
    let inner = shape[rank - 1];
    let (ia, ib) = (la.strides()[rank - 1], lb.strides()[rank - 1]);
    let outer_a = row_starts(&la);
    let outer_b = row_starts(&lb);
    let mut out = vec![O::default(); n];
    let rows_per_chunk = (CHUNK_ELEMS / inner.max(1)).max(1);
    let body = |row0: usize, o: &mut [O]| {
        crate::simd::run(
            #[inline(always)]
            || {
                for (r, orow) in o.chunks_mut(inner).enumerate() {
                    let (pa, pb) = (outer_a[row0 + r], outer_b[row0 + r]);
                    // Unit and zero inner strides (bias rows, per-channel scalars) get plain slice
                    // loops, which vectorize.
                    match (ia, ib) {
                        (1, 1) => {
                            let (xa, xb) = (&sa[pa..pa + inner], &sb[pb..pb + inner]);
                            for ((o, &x), &y) in orow.iter_mut().zip(xa).zip(xb) {
                                *o = f(x, y);
                            }
                        }
                        (1, 0) => {
                            let y = sb[pb];
                            for (o, &x) in orow.iter_mut().zip(&sa[pa..pa + inner]) {
                                *o = f(x, y);
                            }
                        }
                        (0, 1) => {
                            let x = sa[pa];
                            for (o, &y) in orow.iter_mut().zip(&sb[pb..pb + inner]) {
                                *o = f(x, y);
                            }
                        }
                        _ => {
                            for (j, o) in orow.iter_mut().enumerate() {
                                *o = f(sa[pa + j * ia], sb[pb + j * ib]);
                            }
                        }
                    }
                }
            },
        )
    };
    if n < crate::parallel::ELEMENTWISE_PAR_MIN {
        body(0, &mut out);
    } else {
        for_each_chunk_mut(&mut out, rows_per_chunk * inner, |i, o| {
            body(i * rows_per_chunk, o)
        });
    }
    out
}

/// Storage offset of the first element of every row (all dims but the last).
fn row_starts(l: &Layout) -> Vec<usize> {
    let rank = l.shape().len();
    Layout::new(
        l.shape()[..rank - 1].to_vec(),
        l.strides()[..rank - 1].to_vec(),
        l.offset(),
    )
    .indices()
    .collect()
}
