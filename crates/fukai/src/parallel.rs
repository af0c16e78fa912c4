//! The one place that decides how work is split across threads. Splits are by fixed chunk size,
//! never by thread count, so every result is the same at any RAYON_NUM_THREADS.

use std::mem::MaybeUninit;

#[cfg(feature = "threads")]
mod spin;
#[cfg(feature = "threads")]
pub use spin::set_spinning;

/// Without the `threads` feature there is no pool to keep awake.
#[cfg(not(feature = "threads"))]
pub fn set_spinning(_on: bool) {}

/// Work below this many elements runs on the calling thread: spawning costs more than it saves.
pub const PAR_THRESHOLD: usize = 1 << 15;

/// Elementwise maps (one read and one write per element, memory-bound) over fewer elements
/// than this run on the calling thread: below it, waking a second thread costs more than it
/// saves (a Transformer's 98k-element residual adds ran slower on two threads than on one).
pub const ELEMENTWISE_PAR_MIN: usize = 1 << 17;

/// Elements per piece of an elementwise result built with [`build_uninit`]: a fixed 16,384
/// (splits never depend on the thread count), or the whole result as one piece on the calling
/// thread below [`ELEMENTWISE_PAR_MIN`]. Either way the caller's per-piece loop can be compiled
/// inside `simd::run` (a `collect` there calls out to a baseline-SSE2 copy of the loop:
/// MiniLM's GELU ran 4 lanes wide).
pub fn elementwise_piece(len: usize) -> usize {
    if len < ELEMENTWISE_PAR_MIN {
        len
    } else {
        1 << 14
    }
}

/// Chunked work over fewer elements than this stays on the calling thread whatever the chunk
/// size: handing a task to the pool and waiting for it (a futex round trip) costs more than any
/// kernel spends on a few thousand elements. Tiny training steps are dominated by this.
pub const MIN_PAR_ELEMS: usize = 1 << 12;

/// Number of worker threads kernels may use. With one, every helper below runs on the calling
/// thread: handing work to a one-thread pool only adds a futex round trip (about 10% of a
/// small Transformer's step at RAYON_NUM_THREADS=1).
pub fn num_threads() -> usize {
    #[cfg(feature = "threads")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "threads"))]
    {
        1
    }
}

/// Runs `f` on a worker of the thread pool (waiting for it), so the kernels it calls hand work
/// to the other workers directly: from a thread outside the pool, every parallel kernel is a
/// futex round trip to wake the pool and another to wake the caller (500 fashion-cnn training
/// steps at two threads: 12.3 s from the main thread, 11.0 s on a worker). While `f` runs, the
/// other workers spin instead of sleeping between kernels (see [`set_spinning`]). Inline with
/// one thread, or without the `threads` feature. `f` runs in the caller's grad mode and
/// autocast precision, which are per thread.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "threads")]
    if num_threads() > 1 && rayon::current_thread_index().is_none() {
        let (grad, precision) = (crate::is_grad_enabled(), crate::autograd::precision());
        let f = move || {
            let _grad = (!grad).then(crate::no_grad);
            let _precision = crate::autograd::autocast(precision);
            f()
        };
        return rayon::join(|| spin::while_running(f), || ()).0;
    }
    f()
}

/// Calls `f(chunk_index, chunk)` for consecutive `chunk`-sized pieces of `data`, in parallel
/// when the `threads` feature is on.
pub fn for_each_chunk_mut<T: Send>(
    data: &mut [T],
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    for_each_chunk_mut_if(data.len() >= MIN_PAR_ELEMS, data, chunk, f);
}

/// [`for_each_chunk_mut`] with the caller deciding whether the work is worth spreading
/// (`parallel`), whatever the length of `data`.
pub fn for_each_chunk_mut_if<T: Send>(
    parallel: bool,
    data: &mut [T],
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    let chunk = chunk.max(1);
    #[cfg(feature = "threads")]
    if parallel && data.len() > chunk && num_threads() > 1 {
        use rayon::prelude::*;
        data.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
        return;
    }
    let _ = parallel;
    data.chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i, c));
}

/// Maps `0..n` through `f` into a Vec, in parallel when worthwhile; order is preserved.
pub fn map_range<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    map_range_if(true, n, f)
}

/// [`map_range`], kept on the calling thread when `parallel` is false (small total work).
pub fn map_range_if<R: Send>(
    parallel: bool,
    n: usize,
    f: impl Fn(usize) -> R + Sync + Send,
) -> Vec<R> {
    #[cfg(feature = "threads")]
    if parallel && n > 1 && num_threads() > 1 {
        use rayon::prelude::*;
        return (0..n).into_par_iter().map(f).collect();
    }
    let _ = parallel;
    (0..n).map(f).collect()
}

/// Calls `f` on every item, in parallel when the `threads` feature is on.
pub fn for_each_item<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync + Send) {
    #[cfg(feature = "threads")]
    if items.len() > 1 && num_threads() > 1 {
        use rayon::prelude::*;
        items.into_par_iter().for_each(f);
        return;
    }
    items.into_iter().for_each(f);
}

/// [`for_each_chunk_mut`] with a scratch value per worker: `init` runs once per rayon split and
/// `f` may reuse what it left. `f` must overwrite whatever part of the scratch it reads, so the
/// result cannot depend on which chunks shared a scratch.
pub fn for_each_chunk_mut_with<T: Send, S>(
    data: &mut [T],
    chunk: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, &mut [T]) + Sync + Send,
) {
    let chunk = chunk.max(1);
    #[cfg(feature = "threads")]
    if data.len() > chunk && data.len() >= MIN_PAR_ELEMS && num_threads() > 1 {
        use rayon::prelude::*;
        data.par_chunks_mut(chunk)
            .enumerate()
            .for_each_init(&init, |s, (i, c)| f(s, i, c));
        return;
    }
    let mut s = init();
    data.chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(&mut s, i, c));
}

/// Calls `f(scratch, i)` for every `i` in `0..n`, in parallel when `parallel` is true, with a
/// scratch value per worker as in [`for_each_chunk_mut_with`] (the same rule: `f` overwrites
/// whatever part of the scratch it reads).
pub fn for_each_index_with<S>(
    parallel: bool,
    n: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize) + Sync + Send,
) {
    #[cfg(feature = "threads")]
    if parallel && n > 1 && num_threads() > 1 {
        use rayon::prelude::*;
        (0..n).into_par_iter().for_each_init(&init, |s, i| f(s, i));
        return;
    }
    let _ = parallel;
    let mut s = init();
    (0..n).for_each(|i| f(&mut s, i));
}

/// A Vec of `len` elements built in `chunk`-sized pieces by `f(scratch, index, piece)`, in
/// parallel (scratch as in [`for_each_chunk_mut_with`]). Each piece is first set, `row` elements
/// at a time, to `fill(row index within the piece)` by the thread that then runs `f` on it, so
/// no serial pass clears the whole buffer first.
pub fn build_chunks<T: Copy + Send + Sync, S>(
    len: usize,
    (chunk, row): (usize, usize),
    fill: impl Fn(usize) -> T + Sync + Send,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, &mut [T]) + Sync + Send,
) -> Vec<T> {
    let filled = |s: &mut S, i: usize, c: &mut [MaybeUninit<T>]| {
        for (r, part) in c.chunks_mut(row.max(1)).enumerate() {
            let x = fill(r);
            for e in part {
                e.write(x);
            }
        }
        // SAFETY: every element of `c` was initialized just above, and `MaybeUninit<T>` has
        // the layout of `T`.
        f(s, i, unsafe {
            &mut *(c as *mut [MaybeUninit<T>] as *mut [T])
        });
    };
    // SAFETY: `filled` writes every element of its piece.
    unsafe { build_uninit_with(len, chunk, init, filled) }
}

/// A Vec of `len` elements built in `chunk`-sized pieces by `f(index, piece)`, in parallel,
/// each piece handed over uninitialized: for elementwise kernels, which write every element
/// once, clearing the piece first was a second full write pass (1.2% of a CNN training step in
/// batch norm alone).
///
/// # Safety
/// `f` must initialize every element of every piece it is given.
pub unsafe fn build_uninit<T: Copy + Send + Sync>(
    len: usize,
    chunk: usize,
    f: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    // SAFETY: forwarded from the caller.
    unsafe { build_uninit_with(len, chunk, || (), |_, i, c| f(i, c)) }
}

/// [`build_uninit`] with a scratch value per worker (as in [`for_each_chunk_mut_with`]).
///
/// # Safety
/// `f` must initialize every element of every piece it is given.
unsafe fn build_uninit_with<T: Copy + Send + Sync, S>(
    len: usize,
    chunk: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, &mut [MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    for_each_chunk_mut_with(&mut v.spare_capacity_mut()[..len], chunk, init, f);
    // SAFETY: the pieces cover `0..len` and `f` initialized each (the caller's promise); a
    // panic in `f` unwinds past this line, leaving the length at 0.
    unsafe { v.set_len(len) };
    v
}
