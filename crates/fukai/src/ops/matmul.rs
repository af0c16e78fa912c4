//! Matrix multiplication on the `gemm` crate. Operands are passed by their strides, so
//! transposed views (the usual case in backward) never get copied.

use super::bf16::{gemm_bf16, Kernel};
use super::float::{check_float_on, check_same_dtype, Float};
use crate::autograd::{autocast, precision, Precision};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::tensor::StorageSlice;
use crate::tensor::{broadcast_shapes, DType, Layout, Storage, Tensor};
use gemm::Parallelism;
use std::sync::Arc;

/// Products smaller than this many multiply-adds (about 20 µs on one core) run on one thread:
/// below it, handing blocks to other threads costs more than it saves (a 64³ product took
/// 23 µs split across two threads against 6 µs on one).
const PAR_FLOPS: usize = 1 << 21;
/// Rows (or columns) per split block are a multiple of this, and blocks are at least this big.
#[cfg(feature = "threads")]
const SPLIT_MIN: usize = 32;
/// Longest sum over `k` handed to one gemm call in a split product: gemm never cuts a sum
/// this long into its own blocks (its k-block is at least 512).
#[cfg(feature = "threads")]
const K_BLOCK: usize = 512;

/// A raw pointer that parallel tasks may share: each task writes a disjoint part.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    // A method, so closures capture the whole wrapper rather than the raw field.
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

pub(crate) fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    // One row is a matrix-vector product, bound by reading the matrix: gemm's own path for it
    // on one thread ran SmolLM2's 49152×576 output head 3× faster than the split blocks
    // (`fukai-bench linear_rows`).
    if m == 1 {
        return Parallelism::None;
    }
    let threads = crate::parallel::num_threads();
    // Rayon even with one thread: `gemm_raw` then splits mid-sized products into the same
    // blocks at every thread count, which keeps the bits independent of it.
    #[cfg(feature = "threads")]
    if m * n * k >= PAR_FLOPS {
        return Parallelism::Rayon(threads);
    }
    let _ = (threads, m, n, k, PAR_FLOPS);
    Parallelism::None
}

/// `dst[m×n] = lhs[m×k] · rhs[k×n]`, each operand given by pointer and (row, col) strides.
///
/// # Safety
/// Pointers must cover every element their strides reach; `dst` must not alias the inputs.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_raw<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: isize,
    lhs: *const T,
    (lhs_rs, lhs_cs): (isize, isize),
    rhs: *const T,
    (rhs_rs, rhs_cs): (isize, isize),
    accumulate: bool,
    par: Parallelism,
) {
    #[cfg(feature = "threads")]
    if let Parallelism::Rayon(_) = par {
        if m.max(n) >= 2 * SPLIT_MIN {
            // SAFETY: the blocks write disjoint parts of `dst`; the caller's contract covers
            // every element each block reads.
            unsafe {
                gemm_split::<T>(
                    (m, n, k),
                    dst,
                    dst_rs,
                    lhs,
                    (lhs_rs, lhs_cs),
                    rhs,
                    (rhs_rs, rhs_cs),
                    accumulate,
                )
            };
            return;
        }
    }
    #[cfg(feature = "threads")]
    let par = match par {
        Parallelism::Rayon(t) if t <= 1 => Parallelism::None,
        p => p,
    };
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs,
        accumulate,
        lhs,
        lhs_cs,
        lhs_rs,
        rhs,
        rhs_cs,
        rhs_rs,
        T::ONE,
        T::ONE,
        false,
        false,
        false,
        par,
    )
}

/// [`gemm_raw`] at precision `prec`: an f32 product under [`Precision::Bf16`] runs on the bf16
/// kernel (operands rounded to bf16, f32 sums), everything else on gemm.
///
/// # Safety
/// As [`gemm_raw`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_at<T: Float>(
    prec: Precision,
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: isize,
    lhs: *const T,
    ls: (isize, isize),
    rhs: *const T,
    rs: (isize, isize),
    accumulate: bool,
    par: Parallelism,
) {
    if prec == Precision::Bf16 && T::DTYPE == DType::F32 {
        // SAFETY: T is f32, so the casts are identities; the rest is the caller's contract.
        unsafe {
            gemm_bf16(
                (m, n, k),
                dst.cast(),
                dst_rs as usize,
                lhs.cast(),
                ls,
                rhs.cast(),
                rs,
                accumulate,
                par,
                Kernel::Auto,
            )
        };
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { gemm_raw::<T>(m, n, k, dst, dst_rs, lhs, ls, rhs, rs, accumulate, par) }
}

/// A product as one single-threaded gemm per thread, each over a block of the output's rows
/// (or columns, whichever is longer): gemm's own threading scales poorly (a Transformer's
/// 768x128x512 projections ran 1.2x faster on two threads than on one, 1.9x split). Products
/// above 2^26 multiply-adds were once left to it; on an AVX-512 Xeon, MiniLM on 8 x 128 tokens
/// at two threads (1024 x 384 x 1536 and the like) then took 129-165 ms against 122-156 split.
/// The bits do not depend on the blocks: gemm sums every output element over `k` in an order
/// set by `k` alone (its k-blocking depends on neither `m` nor `n`), which
/// `tests/determinism.rs` checks across thread counts. With one thread there is one block: a
/// 768x512x128 product ran at 71 GFLOP/s as four blocks and at 100 as one.
///
/// # Safety
/// As [`gemm_raw`].
#[cfg(feature = "threads")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_split<T: Float>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    dst_rs: isize,
    lhs: *const T,
    ls: (isize, isize),
    rhs: *const T,
    rs: (isize, isize),
    accumulate: bool,
) {
    let by_rows = m >= n;
    let len = if by_rows { m } else { n };
    let blocks = crate::parallel::num_threads().min(len / SPLIT_MIN).max(1);
    let block = len.div_ceil(blocks).div_ceil(SPLIT_MIN) * SPLIT_MIN;
    if block >= len {
        // SAFETY: the caller's contract.
        unsafe { gemm_k_blocks::<T>((m, n, k), dst, dst_rs, lhs, ls, rhs, rs, accumulate) };
        return;
    }
    let (d, l, r) = (SendPtr(dst), SendPtr(lhs as *mut T), SendPtr(rhs as *mut T));
    let blocks: Vec<usize> = (0..len.div_ceil(block)).collect();
    crate::parallel::for_each_item(blocks, |b| {
        let (start, size) = (b * block, block.min(len - b * block));
        // SAFETY: block `b` covers rows (or columns) start..start+size only.
        unsafe {
            let (dst, lhs, rhs) = (d.get(), l.get() as *const T, r.get() as *const T);
            let off = start as isize;
            let (mm, nn, dst, lhs, rhs) = if by_rows {
                (
                    size,
                    n,
                    dst.offset(off * dst_rs),
                    lhs.offset(off * ls.0),
                    rhs,
                )
            } else {
                (m, size, dst.offset(off), lhs, rhs.offset(off * rs.1))
            };
            gemm_k_blocks::<T>((mm, nn, k), dst, dst_rs, lhs, ls, rhs, rs, accumulate);
        }
    });
}

/// One single-threaded product, summed over `k` in fixed blocks of at most [`K_BLOCK`]. Within
/// one block gemm sums each element in `k` order whatever `m` and `n` are; across its own k
/// blocks it does not (a 144x800x32 product split by rows differed in 1,372 of 4,608
/// elements), so longer sums are cut here, where the cut does not depend on the split.
///
/// # Safety
/// As [`gemm_raw`].
#[cfg(feature = "threads")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_k_blocks<T: Float>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    dst_rs: isize,
    lhs: *const T,
    ls: (isize, isize),
    rhs: *const T,
    rs: (isize, isize),
    accumulate: bool,
) {
    let blocks = k.div_ceil(K_BLOCK).max(1);
    let kb = k.div_ceil(blocks);
    let mut k0 = 0;
    loop {
        let len = kb.min(k - k0);
        // SAFETY: columns k0..k0+len of lhs and rows k0..k0+len of rhs are within the caller's
        // operands.
        unsafe {
            gemm_raw::<T>(
                m,
                n,
                len,
                dst,
                dst_rs,
                lhs.offset(k0 as isize * ls.1),
                ls,
                rhs.offset(k0 as isize * rs.0),
                rs,
                accumulate || k0 > 0,
                Parallelism::None,
            )
        };
        k0 += len;
        if k0 >= k {
            break;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn matmul_kernel<T: Float>(
    prec: Precision,
    a: &Tensor,
    la: &Layout,
    b: &Tensor,
    lb: &Layout,
    batch: &[usize],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<T> {
    let nb: usize = batch.iter().product();
    let len = nb * m * n;
    if len == 0 || k == 0 {
        return vec![T::ZERO; len];
    }
    let mut out: Vec<T> = Vec::with_capacity(len);
    // SAFETY: with k > 0 and read_dst = false, gemm writes every element of every output
    // matrix before anything reads them; skipping the zero fill saves a pass over the output.
    #[allow(clippy::uninit_vec)]
    unsafe {
        out.set_len(len)
    };
    let r = batch.len();
    // Storage offset of every matrix in the batch (a plain 2-D product skips the odometer).
    let offsets = |l: &Layout| -> Vec<usize> {
        if r == 0 {
            return vec![l.offset()];
        }
        Layout::new(batch.to_vec(), l.strides()[..r].to_vec(), l.offset())
            .indices()
            .collect()
    };
    let (off_a, off_b) = (offsets(la), offsets(lb));
    let sa = (la.strides()[r] as isize, la.strides()[r + 1] as isize);
    let sb = (lb.strides()[r] as isize, lb.strides()[r + 1] as isize);
    let (da, db) = (a.storage().read(), b.storage().read());
    let (pa, pb) = (
        T::slice(&da).expect("dtype").as_ptr(),
        T::slice(&db).expect("dtype").as_ptr(),
    );
    let (pa, pb) = (SendPtr(pa as *mut T), SendPtr(pb as *mut T));
    let dst = SendPtr(out.as_mut_ptr());
    let one = |i: usize, par: Parallelism| unsafe {
        gemm_at::<T>(
            prec,
            m,
            n,
            k,
            dst.get().add(i * m * n),
            n as isize,
            pa.get().add(off_a[i]),
            sa,
            pb.get().add(off_b[i]),
            sb,
            false,
            par,
        )
    };
    let par = parallelism(m, n, k);
    if nb == 1 || !matches!(par, Parallelism::None) {
        (0..nb).for_each(|i| one(i, par));
    } else {
        // Many small products (attention heads): one per task, each on one thread.
        crate::parallel::map_range(nb, |i| one(i, Parallelism::None));
    }
    out
}

/// Whether a matrix dim of `t` is broadcast (stride 0 over more than one element), which gemm
/// does not expect.
fn broadcast_matrix(t: &Tensor) -> bool {
    let (s, d, r) = (t.strides(), t.shape(), t.rank());
    (s[r - 2] == 0 && d[r - 2] > 1) || (s[r - 1] == 0 && d[r - 1] > 1)
}

/// A 2-D view that is the transpose of a contiguous matrix (strides `[1, rows]`).
fn is_transposed_2d(t: &Tensor) -> bool {
    t.rank() == 2 && t.strides() == [1, t.shape()[0]] && t.shape()[0] > 1 && t.shape()[1] > 1
}

impl Tensor {
    /// Matrix product with PyTorch's rules: 1-D operands are promoted (and the added dim
    /// removed), batch dims broadcast, the last two dims multiply.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
    /// let b = Tensor::from_vec(vec![5.0f32, 6.0, 7.0, 8.0], &[2, 2])?;
    /// assert_eq!(a.matmul(&b)?.to_vec::<f32>()?, [19.0, 22.0, 43.0, 50.0]);
    /// // Batched, with the batch dims broadcast: [4, 2, 3] @ [3, 5] -> [4, 2, 5].
    /// let x = Tensor::randn(&[4, 2, 3], DType::F32)?;
    /// assert_eq!(x.matmul(&Tensor::randn(&[3, 5], DType::F32)?)?.shape(), &[4, 2, 5]);
    /// // The inner dims must agree.
    /// assert!(a.matmul(&Tensor::zeros(&[3, 2], DType::F32)?).is_err());
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        check_float_on("matmul", self)?;
        check_same_dtype("matmul", self, rhs)?;
        if self.rank() == 0 || rhs.rank() == 0 {
            bail!(
                "matmul",
                "both operands need at least 1 dim, found {:?} and {:?}",
                self.shape(),
                rhs.shape()
            );
        }
        // Checked on the caller's shapes, before 1-D operands are promoted.
        let k = self.shape()[self.rank() - 1];
        let k2 = rhs.shape()[rhs.rank().saturating_sub(2)];
        if k != k2 {
            bail!(
                "matmul",
                "inner dims differ: {:?} @ {:?} ({k} vs {k2})",
                self.shape(),
                rhs.shape()
            );
        }
        match (self.rank(), rhs.rank()) {
            // Dot product: a 0-dim result.
            (1, 1) => return self.unsqueeze(0)?.matmul(&rhs.unsqueeze(1)?)?.reshape(&[]),
            (1, _) => return self.unsqueeze(0)?.matmul(rhs)?.squeeze(-2),
            _ => {}
        }
        if rhs.rank() == 1 {
            return self.matmul(&rhs.unsqueeze(1)?)?.squeeze(-1);
        }
        // [.., m, k] @ [k, n] with a contiguous left side is one big product.
        if rhs.rank() == 2 && self.rank() > 2 && self.is_contiguous() {
            let lead = &self.shape()[..self.rank() - 1];
            let flat = self.reshape(&[lead.iter().product(), self.shape()[self.rank() - 1]])?;
            let mut shape = lead.to_vec();
            shape.push(rhs.shape()[1]);
            return flat.matmul(rhs)?.reshape(&shape);
        }
        let (ra, rb) = (self.rank(), rhs.rank());
        let (m, n) = (self.shape()[ra - 2], rhs.shape()[rb - 1]);
        let prec = precision();
        let (a, b, data, out_shape) = if ra == 2
            && rb == 2
            && !broadcast_matrix(self)
            && !broadcast_matrix(rhs)
            && !crate::tensor::on_gpu(&[self, rhs])
        {
            // A plain 2-D product skips the batch bookkeeping below: its allocations were a
            // tenth of a 64×64 product's time.
            let data = float_dispatch!(self.dtype(), T => T::wrap(matmul_kernel::<T>(
                prec, self, self.layout(), rhs, rhs.layout(), &[], m, k, n
            )));
            (
                self.clone(),
                rhs.clone(),
                Arc::new(Storage::new(data)),
                vec![m, n],
            )
        } else {
            self.batched_matmul(rhs, (m, k, n), prec)?
        };
        Ok(Tensor::op_result(
            "matmul",
            data,
            Layout::contiguous(&out_shape),
            &[self, rhs],
            move || {
                // Same shapes as `self` and `rhs` (only broadcast matrices were copied).
                let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
                Box::new(move |g, needs| {
                    // The backward products run at the forward's precision.
                    let _precision = autocast(prec);
                    // A transposed operand (Linear's `w.t()`) gets its gradient computed
                    // transposed, so it reaches the parameter contiguous and the optimizer
                    // reads it in place instead of gathering it every step.
                    let ga = match needs[0] {
                        false => None,
                        true if g.rank() == 2 && is_transposed_2d(&a) => {
                            Some(b.matmul(&g.t()?)?.t()?)
                        }
                        true => Some(g.matmul(&b.t()?)?.sum_to_shape(&sa)?),
                    };
                    let gb = match needs[1] {
                        false => None,
                        true if g.rank() == 2 && is_transposed_2d(&b) => {
                            Some(g.t()?.matmul(&a)?.t()?)
                        }
                        true => Some(a.t()?.matmul(g)?.sum_to_shape(&sb)?),
                    };
                    Ok(vec![ga, gb])
                })
            },
        ))
    }

    /// The general case of [`Tensor::matmul`]: batch dims broadcast, broadcast matrix dims
    /// copied. Returns the operands as multiplied, the product and its shape.
    fn batched_matmul(
        &self,
        rhs: &Tensor,
        (m, k, n): (usize, usize, usize),
        prec: Precision,
    ) -> Result<(Tensor, Tensor, Arc<Storage>, Vec<usize>)> {
        let (ra, rb) = (self.rank(), rhs.rank());
        let (batch_a, batch_b) = (&self.shape()[..ra - 2], &rhs.shape()[..rb - 2]);
        let Ok(batch) = broadcast_shapes("matmul", batch_a, batch_b) else {
            bail!(
                "matmul",
                "batch dims {batch_a:?} and {batch_b:?} of {:?} @ {:?} cannot be broadcast",
                self.shape(),
                rhs.shape()
            );
        };
        let mut out_shape = batch.clone();
        out_shape.extend_from_slice(&[m, n]);
        // Broadcast (stride-0) matrix dims are not something gemm expects: copy those.
        let fix = |t: &Tensor| -> Result<Tensor> {
            if broadcast_matrix(t) {
                t.detach().contiguous()
            } else {
                Ok(t.clone())
            }
        };
        let (a, b) = (fix(self)?, fix(rhs)?);
        let mut shape_a = batch.clone();
        shape_a.extend_from_slice(&[m, k]);
        let mut shape_b = batch.clone();
        shape_b.extend_from_slice(&[k, n]);
        let la = a.layout().broadcast_to("matmul", &shape_a)?;
        let lb = b.layout().broadcast_to("matmul", &shape_b)?;
        if crate::tensor::on_gpu(&[&a, &b]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                let data =
                    crate::backend::gpu::matmul::matmul(&a, &la, &b, &lb, &batch, (m, k, n), None)?;
                return Ok((a, b, data, out_shape));
            }
        }
        let data = float_dispatch!(self.dtype(), T => T::wrap(matmul_kernel::<T>(prec, &a, &la, &b, &lb, &batch, m, k, n)));
        Ok((a, b, Arc::new(Storage::new(data)), out_shape))
    }
}
