//! The one place that decides how work is split across threads. Splits are by fixed chunk size,
//! never by thread count, so every result is the same at any RAYON_NUM_THREADS.

/// Work below this many elements runs on the calling thread: spawning costs more than it saves.
pub const PAR_THRESHOLD: usize = 1 << 15;

/// Number of worker threads kernels may use.
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

/// Calls `f(chunk_index, chunk)` for consecutive `chunk`-sized pieces of `data`, in parallel
/// when the `threads` feature is on.
pub fn for_each_chunk_mut<T: Send>(
    data: &mut [T],
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    let chunk = chunk.max(1);
    #[cfg(feature = "threads")]
    if data.len() > chunk {
        use rayon::prelude::*;
        data.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
        return;
    }
    data.chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i, c));
}

/// Maps `0..n` through `f` into a Vec, in parallel when worthwhile; order is preserved.
pub fn map_range<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    #[cfg(feature = "threads")]
    if n > 1 {
        use rayon::prelude::*;
        return (0..n).into_par_iter().map(f).collect();
    }
    (0..n).map(f).collect()
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
    if data.len() > chunk {
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

/// Calls `f(index, item)` for every item, in parallel when there is more than one.
pub fn for_each_item_mut<T: Send>(items: &mut [T], f: impl Fn(usize, &mut T) + Sync + Send) {
    #[cfg(feature = "threads")]
    if items.len() > 1 {
        use rayon::prelude::*;
        items.par_iter_mut().enumerate().for_each(|(i, t)| f(i, t));
        return;
    }
    items.iter_mut().enumerate().for_each(|(i, t)| f(i, t));
}
