//! Data-parallel training over MPI: the trainer example, run by every rank.
//!
//! ```text
//! cargo build --release -p fukai --features mpi,report --example data_parallel
//! mpirun -np 2 target/release/examples/data_parallel     # the same bits as:
//! target/release/examples/data_parallel                  # one process
//! ```
use fukai::data::{DataLoader, InMemory};
use fukai::distributed;
use fukai::models::{Mlp, MlpConfig};
use fukai::train::{Progress, TrainConfig, Trainer};
use std::sync::Arc;

fn main() -> fukai::Result<()> {
    // Joins the MPI world under mpirun (Ok(None) otherwise); MPI ends when it drops.
    let _mpi = distributed::init()?;
    let world = distributed::world();
    let x: Vec<f32> = (0..2400)
        .map(|i| ((i * 7919) % 100) as f32 / 100.0 + (i / 4 % 3) as f32)
        .collect();
    let y: Vec<i64> = (0..600).map(|i| (i % 3) as i64).collect();
    // Every rank holds the whole set; each reads only its micro-batches of every step.
    let data = Arc::new(InMemory::new(x, y, &[4], 3)?);
    // A global batch of 64 in micro-batches of 16: 4 per step, shared by the ranks.
    let cfg = TrainConfig::new(10, 64, 1e-2)
        .with_micro_batch(16)?
        .for_ranks(world.size())?;
    let train = DataLoader::new(data.clone(), cfg.batch_size).shuffle(0);
    fukai::manual_seed(0);
    let model = Mlp::new(MlpConfig::new(&[4], &[64, 64], 3))?;
    // Hooks and checkpoints run on rank 0 only.
    let mut trainer = Trainer::new(model, cfg)?.hook(Progress::new());
    let report = trainer.fit(&train, Some(&DataLoader::new(data, 600)))?;
    if world.rank() == 0 {
        let dp = &report.data_parallel;
        println!(
            "{} ranks: validation accuracy {:?}; first weight bits {:08x}",
            dp.ranks,
            report.val.and_then(|v| v.accuracy()),
            trainer.model().parameters()[0].to_vec::<f32>()?[0].to_bits()
        );
    }
    Ok(())
}
