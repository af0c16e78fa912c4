//! Data-parallel training: the process group a [`Trainer`](crate::train::Trainer) trains in.
//!
//! One process is a group of one ([`Single`]); under `mpirun` (cargo feature `mpi`) every rank
//! joins the MPI world with `init`, and trainers built afterwards train data-parallel without
//! further code. What makes N ranks give the same bits as one process:
//!
//! - An optimizer step's gradient is defined as the sum, in micro-batch order, of fixed-size
//!   micro-batch gradients (each computed from zero). Rank `r` of `N` computes micro-batches
//!   `r·k .. (r+1)·k` of each step's `N·k`; every rank gathers all of them and adds them in
//!   that order, whatever MPI's own reduction algorithm would do. One process accumulating the
//!   same micro-batches adds the same tensors in the same order.
//! - Dropout draws from a stream keyed by (seed, epoch, micro-batch), never by what a rank
//!   processed before.
//! - Batch norm normalizes with per-micro-batch statistics (as PyTorch's DDP does); the running
//!   estimates are updated after the exchange, replaying every micro-batch's statistics in
//!   order, so they too equal one process's.
//!
//! ```
//! use fukai::distributed::{self, Collective};
//! // Outside mpirun (or without the `mpi` feature) a process is a group of one.
//! let g = distributed::world();
//! assert_eq!((g.rank(), g.size()), (0, 1));
//! assert_eq!(g.all_gather(b"abc")?, vec![b"abc".to_vec()]);
//! # Ok::<(), fukai::Error>(())
//! ```

#[cfg(feature = "mpi")]
mod mpi;
mod reduce;

use crate::error::Result;
use std::sync::{Arc, OnceLock};

#[cfg(feature = "mpi")]
pub use self::mpi::{init, MpiGuard};

/// The collectives data-parallel training needs. Every rank calls each in the same order.
pub trait Collective: Send + Sync {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// Processes in the group.
    fn size(&self) -> usize;
    /// Every rank's `local` bytes (lengths may differ), in rank order.
    fn all_gather(&self, local: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Rank 0's bytes on every rank. Rank 0 passes `Ok(bytes)`, or the error it met, which the
    /// other ranks then report as theirs (so nobody waits for data that never comes); the
    /// others pass anything (ignored).
    fn broadcast(&self, root: Result<Vec<u8>>) -> Result<Vec<u8>>;
    /// Returns when every rank has called it.
    fn barrier(&self) -> Result<()>;
    /// Ends every process of the group at once (after a rank's error, so none waits forever
    /// in a collective the failed one will never join).
    fn abort(&self, code: i32) -> !;
    /// Bytes this rank has sent through collectives so far.
    fn bytes_sent(&self) -> u64 {
        0
    }
}

/// A group of one process: collectives are copies.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather(&self, local: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(vec![local.to_vec()])
    }
    fn broadcast(&self, root: Result<Vec<u8>>) -> Result<Vec<u8>> {
        root
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Environment variables a launcher sets for its processes: Open MPI's `mpirun`, MPICH/Hydra
/// and Intel MPI (PMI), PMIx launchers (Slurm's `srun --mpi=pmix`, PRRTE).
const LAUNCHER_VARS: &[&str] = &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"];

/// True when this process was started by an MPI launcher.
pub fn launched() -> bool {
    LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

/// How many processes the MPI launcher that started this one started, when its environment
/// says (Open MPI, PMI); a binary built without the `mpi` feature checks it so that
/// `mpirun -np 4` does not run 4 independent copies of one run.
pub fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

static WORLD: OnceLock<Arc<dyn Collective>> = OnceLock::new();

/// The group this process trains in: the MPI world after `init` (feature `mpi`) under a
/// launcher, else a group of one. Trainers pick it up when built.
pub fn world() -> Arc<dyn Collective> {
    WORLD.get().cloned().unwrap_or_else(|| Arc::new(Single))
}

/// Makes `group` what [`world`] returns (once per process; later calls are ignored and return
/// false).
pub fn set_world(group: Arc<dyn Collective>) -> bool {
    WORLD.set(group).is_ok()
}

/// This process is rank 0 of its group: the one that prints, writes metrics and checkpoints.
pub fn is_main() -> bool {
    world().rank() == 0
}
