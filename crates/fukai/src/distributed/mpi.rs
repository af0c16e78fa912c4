//! The MPI world as a [`Collective`], through rsmpi. Calls are serialized by a lock (MPI is
//! initialized at `MPI_THREAD_SERIALIZED`), so any one thread at a time may use it: training
//! runs on a worker of the thread pool, not on `main`.

use super::{launched, Collective};
use crate::error::{op_err, Result};
use ::mpi::datatype::PartitionMut;
use ::mpi::environment::Universe;
use ::mpi::topology::SimpleCommunicator;
use ::mpi::traits::*;
use ::mpi::Threading;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Keeps MPI initialized; dropping it finalizes MPI (hold it in `main` until the end).
pub struct MpiGuard {
    _universe: Universe,
    rank: usize,
    size: usize,
}

impl MpiGuard {
    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }
    /// Processes in the world.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// Joins the MPI world when an MPI launcher started this process (else `Ok(None)`: a single
/// process needs no MPI), makes it what [`world`](super::world) returns, and gives each rank
/// its share of the node's cores (`cores / ranks on this node`, at least 1) unless
/// `RAYON_NUM_THREADS` says otherwise. Call it first thing in `main`, before any thread pool
/// starts.
pub fn init() -> Result<Option<MpiGuard>> {
    if !launched() {
        return Ok(None);
    }
    let (universe, level) = ::mpi::initialize_with_threading(Threading::Serialized)
        .ok_or_else(|| op_err("distributed", "MPI was already initialized in this process"))?;
    if level < Threading::Serialized {
        return Err(op_err(
            "distributed",
            format!(
                "the MPI library offers thread support {level:?}; fukai needs Serialized (build \
                 Open MPI or MPICH with thread support)"
            ),
        ));
    }
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let local = [
            "OMPI_COMM_WORLD_LOCAL_SIZE",
            "MPI_LOCALNRANKS",
            "SLURM_NTASKS_PER_NODE",
        ]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", (cores / local).max(1).to_string());
    }
    super::set_world(Arc::new(Mpi {
        rank,
        size,
        lock: Mutex::new(()),
        sent: AtomicU64::new(0),
    }));
    Ok(Some(MpiGuard {
        _universe: universe,
        rank,
        size,
    }))
}

struct Mpi {
    rank: usize,
    size: usize,
    lock: Mutex<()>,
    sent: AtomicU64,
}

fn world() -> SimpleCommunicator {
    SimpleCommunicator::world()
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_gather(&self, local: &[u8]) -> Result<Vec<Vec<u8>>> {
        let _g = self.lock.lock();
        let w = world();
        let mut lens = vec![0u64; self.size];
        w.all_gather_into(&(local.len() as u64), &mut lens[..]);
        let total: u64 = lens.iter().sum();
        let counts: Vec<i32> = lens
            .iter()
            .map(|&l| i32::try_from(l))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                op_err(
                    "distributed",
                    format!("all_gather: a rank sends {lens:?} bytes; MPI counts stop at 2 GiB"),
                )
            })?;
        let displs: Vec<i32> = counts
            .iter()
            .scan(0i64, |at, &c| {
                let d = *at;
                *at += c as i64;
                Some(i32::try_from(d).unwrap_or(i32::MAX))
            })
            .collect();
        if total > i32::MAX as u64 {
            return Err(op_err(
                "distributed",
                format!("all_gather: {total} bytes in all; MPI offsets stop at 2 GiB"),
            ));
        }
        let mut flat = vec![0u8; total as usize];
        {
            let mut part = PartitionMut::new(&mut flat[..], &counts[..], &displs[..]);
            w.all_gather_varcount_into(local, &mut part);
        }
        self.sent
            .fetch_add(local.len() as u64 + 8, Ordering::Relaxed);
        let mut out = Vec::with_capacity(self.size);
        let mut at = 0usize;
        for &l in &lens {
            out.push(flat[at..at + l as usize].to_vec());
            at += l as usize;
        }
        Ok(out)
    }
    fn broadcast(&self, root: Result<Vec<u8>>) -> Result<Vec<u8>> {
        let _g = self.lock.lock();
        let w = world();
        let r0 = w.process_at_rank(0);
        // u64::MAX as the length says "rank 0 failed"; its error stays on rank 0.
        let (mut len, data, err) = match (self.rank, root) {
            (0, Ok(d)) => (d.len() as u64, d, None),
            (0, Err(e)) => (u64::MAX, Vec::new(), Some(e)),
            _ => (0, Vec::new(), None),
        };
        r0.broadcast_into(&mut len);
        if len == u64::MAX {
            return Err(err.unwrap_or_else(|| {
                op_err(
                    "distributed",
                    "rank 0 failed to read what it was to share (its error is in its output)",
                )
            }));
        }
        let mut buf = if self.rank == 0 {
            data
        } else {
            vec![0u8; len as usize]
        };
        // Broadcast in pieces: MPI counts are 32-bit.
        for piece in buf.chunks_mut(1 << 30) {
            r0.broadcast_into(piece);
        }
        if self.rank == 0 {
            self.sent.fetch_add(len, Ordering::Relaxed);
        }
        Ok(buf)
    }
    fn barrier(&self) -> Result<()> {
        let _g = self.lock.lock();
        world().barrier();
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        world().abort(code)
    }
    fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}
