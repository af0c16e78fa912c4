//! `fukai train`: picks the config (preset, file or a run to resume), applies the overrides,
//! and hands the run to the library.

use crate::{config, presets};
use fukai::run::{self, Existing, Run, RunConfig};
use fukai::{Error, Result};
use std::path::{Path, PathBuf};

/// What `fukai train` was asked.
#[derive(clap::Args, Default)]
pub struct TrainArgs {
    /// Preset name (`fukai presets` lists them).
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// TOML config file (`fukai presets show NAME` prints one to start from).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data file or folder (overrides the config).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run directory (default runs/<name>); an existing run is refused unless --force or --resume.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its newest checkpoint (its config is stored there).
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Overwrite an existing run in the run directory.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Override the number of epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Override the seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Override the batch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Stop this session after this many optimizer steps in the run (a checkpoint is written;
    /// --resume continues); the schedule still spans the configured epochs.
    #[arg(long)]
    pub steps: Option<u64>,
    /// k-fold cross-validation (tables): each fold in turn is the test set; prints the mean and
    /// standard deviation of the test metric, the baseline's beside it (runs in OUT/fold-I,
    /// summary in OUT/cv.json).
    #[arg(long, value_name = "K", conflicts_with_all = ["resume", "steps"])]
    pub cv: Option<usize>,
    /// Samples per micro-batch: the global batch (batch_size × accumulate) is kept and split
    /// into micro-batches of this size, shared by the ranks of a data-parallel run (mpirun).
    /// One process and N ranks with the same micro-batch train to the same bits.
    #[arg(long, value_name = "M")]
    pub micro_batch: Option<usize>,
    /// Data-parallel runs: batch norm with statistics over all ranks' micro-batches of a step
    /// (synchronized batch norm) instead of each micro-batch's own (train.sync_batch_norm).
    #[arg(long)]
    pub sync_batch_norm: bool,
    /// Matrix products and convolutions in `bf16` (operands rounded to bf16, f32 sums;
    /// AVX512-BF16 where the CPU has it, cuBLAS on CUDA), `tf32` (TF32 tensor cores on CUDA,
    /// f32 elsewhere) or `f32` (train.precision); weights and optimizer state stay f32.
    #[arg(long, value_name = "f32|bf16|tf32")]
    pub precision: Option<String>,
}

/// `cfg` as it trains: in micro-batches of `micro`, shared by this run's ranks.
fn split(mut cfg: RunConfig, micro: Option<usize>, sync_bn: bool) -> Result<RunConfig> {
    cfg.train.sync_batch_norm |= sync_bn;
    if let Some(m) = micro {
        cfg.train = cfg.train.with_micro_batch(m)?;
    }
    cfg.train = cfg.train.for_ranks(fukai::distributed::world().size())?;
    Ok(cfg)
}

fn read_config(path: &Path) -> Result<RunConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let in_file = |msg: String| Error::Format {
        file: path.display().to_string(),
        msg,
    };
    let cfg = config::parse(&text).map_err(in_file)?;
    run::validate(&cfg).map_err(|e| in_file(e.to_string()))?;
    Ok(cfg)
}

fn from_preset(name: &str) -> Result<RunConfig> {
    presets::preset(name).ok_or_else(|| Error::Format {
        file: "--preset".into(),
        msg: format!("unknown preset {name:?}; available: {}", presets::names()),
    })
}

/// Runs `fukai train`.
pub fn run(a: TrainArgs) -> Result<()> {
    let mut base = None;
    let (mut cfg, out, existing, stored_data) = match &a.resume {
        Some(dir) => {
            let ckpt = dir.join("checkpoint.safetensors");
            let t = run::load_trained(&ckpt)?;
            let Some(stored) = t.run else {
                return Err(Error::Format {
                    file: ckpt.display().to_string(),
                    msg: "the checkpoint holds no run config (not written by `fukai train`)".into(),
                });
            };
            // A preset or config given with --resume must be the run's own.
            let given = match (&a.preset, &a.config) {
                (Some(p), _) => Some(from_preset(p)?),
                (_, Some(c)) => Some(read_config(c)?),
                _ => None,
            };
            if let Some(g) = given {
                let g = split(g, a.micro_batch, a.sync_batch_norm)?;
                let diff = run::config_differences(&stored, &g);
                if !diff.is_empty() {
                    return Err(Error::Format {
                        file: ckpt.display().to_string(),
                        msg: format!(
                            "the run was trained with a different config: {}",
                            diff.join("; ")
                        ),
                    });
                }
            }
            (stored, dir.clone(), Existing::Resume, t.data)
        }
        None => {
            let cfg = match (&a.preset, &a.config) {
                (_, Some(path)) => {
                    base = path.parent().map(Path::to_path_buf);
                    read_config(path)?
                }
                (p, None) => from_preset(p.as_deref().unwrap_or("mnist-cnn"))?,
            };
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
            let existing = if a.force {
                Existing::Overwrite
            } else {
                Existing::Refuse
            };
            (cfg, out, existing, None)
        }
    };
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    if let Some(s) = a.seed {
        cfg.train.seed = s;
    }
    if let Some(lr) = a.lr {
        cfg.train.lr = lr;
    }
    if let Some(b) = a.batch_size {
        cfg.train.batch_size = b;
    }
    if let Some(p) = &a.precision {
        cfg.train.precision = p.parse().map_err(|e: Error| Error::Format {
            file: "--precision".into(),
            msg: e.to_string(),
        })?;
    }
    let cfg = split(cfg, a.micro_batch, a.sync_batch_norm)?;
    run::validate(&cfg)?;
    let main = fukai::distributed::is_main();
    // Only rank 0 of a data-parallel run prints.
    macro_rules! say {
        ($($t:tt)*) => { if main { println!($($t)*); } };
    }
    let data = match (&a.data, stored_data) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d,
        (None, None) => run::resolve(&cfg.data, None, base.as_deref())?,
    };
    if let Some(k) = a.cv {
        return cross_validate(&cfg, &data, &out, k, existing);
    }
    let prepared = Run::prepare(&cfg, &data, &out, existing)?;
    say!(
        "fukai train: {} | {} | {} | {}",
        cfg.name,
        prepared.data.describe,
        data.display(),
        crate::device()
    );
    for n in &prepared.data.notes {
        say!("  note: {n}");
    }
    let classes = prepared.data.class_names.clone();
    let outcome = prepared.device(crate::device()).train(a.steps, main)?;
    let ckpt = outcome.checkpoint.display();
    if let Some(line) = data_parallel_line(&outcome.report.data_parallel) {
        say!("{line}");
    }
    let Some(test) = outcome.test else {
        say!(
            "\nstopped after step {} (--steps) | {:.0} samples/s; continue with: fukai train --resume {}",
            outcome.report.steps,
            outcome.report.samples_per_second,
            out.display()
        );
        return Ok(());
    };
    if test.accuracy().is_some() {
        let t = crate::eval::confusion_table(&test.confusion, &classes);
        say!("\nconfusion matrix (test set):\n{t}");
    }
    let r = &outcome.report;
    say!(
        "test {} | {} epochs, {} steps in {:.1}s | {:.0} samples/s",
        test.describe(),
        r.history.len(),
        r.steps,
        r.train_seconds,
        r.samples_per_second
    );
    if let Some((name, b)) = &outcome.baseline {
        say!(
            "baseline ({name}, the same pipeline without hidden layers): test {}",
            b.describe()
        );
    }
    if let Some(shown) = &outcome.showcase {
        for line in crate::showcase::lines(shown) {
            say!("{line}");
        }
    }
    let extra = match cfg.model.kind.as_str() {
        "gpt" => format!("\n  fukai generate --checkpoint {ckpt} --prompt \"ROMEO:\""),
        "cnn" => format!("\n  fukai viz --checkpoint {ckpt}   # filters and feature maps"),
        _ => String::new(),
    };
    say!(
        "\nrun directory: {} (checkpoints, metrics.jsonl, curves.png, summary.json)\nnext:\n  fukai eval --checkpoint {ckpt}\n  fukai info {ckpt}{extra}\n  fukai presets   # other presets",
        out.display()
    );
    Ok(())
}

/// What sharing the steps among ranks cost this session.
fn data_parallel_line(dp: &fukai::train::DataParallel) -> Option<String> {
    if dp.ranks < 2 || dp.steps == 0 {
        return None;
    }
    let per_step = |x: f64| 1e3 * x / dp.steps as f64;
    Some(format!(
        "data-parallel: {} ranks x {} micro-batches per step | exchange {:.2} MB sent per rank and step, {:.1} ms of a {:.1} ms step ({:.1}%): {:.1} ms waiting for the slowest rank, {:.1} ms transfer, {:.1} ms encoding and adding",
        dp.ranks,
        dp.micro_batches_per_rank,
        dp.bytes_sent as f64 / 1e6 / dp.steps as f64,
        per_step(dp.exchange_seconds),
        per_step(dp.step_seconds),
        100.0 * dp.exchange_seconds / dp.step_seconds.max(1e-12),
        per_step(dp.wait_seconds),
        per_step(dp.transfer_seconds),
        per_step(dp.exchange_seconds - dp.wait_seconds - dp.transfer_seconds),
    ))
}

fn cross_validate(
    cfg: &RunConfig,
    data: &Path,
    out: &Path,
    k: usize,
    existing: Existing,
) -> Result<()> {
    println!(
        "fukai train: {} | {k}-fold cross-validation | {}",
        cfg.name,
        data.display()
    );
    let show = |ev: &fukai::train::Evaluation| -> String {
        run::headline(ev)
            .iter()
            .map(|(n, v)| match *n {
                "accuracy" => format!("accuracy {:.2}%", 100.0 * v),
                n => format!("{n} {v:.4}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let cv = run::cross_validate(cfg, data, out, k, existing, false, |f| {
        let base = f
            .baseline
            .as_ref()
            .map(|(n, b)| format!(" | {n}: {}", show(b)))
            .unwrap_or_default();
        println!("fold {}/{k}: test {}{base}", f.index + 1, show(&f.test));
    })?;
    let line = |spreads: &[run::Spread]| -> String {
        spreads
            .iter()
            .map(|s| match s.metric {
                "accuracy" => format!("accuracy {:.2}% ± {:.2}", 100.0 * s.mean, 100.0 * s.std),
                n => format!("{n} {:.4} ± {:.4}", s.mean, s.std),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("\n{k}-fold cross-validation (mean ± std over folds):");
    println!(
        "  {:<20} {}",
        cfg.model.kind.to_uppercase(),
        line(&cv.model)
    );
    if let Some((name, spreads)) = &cv.baseline {
        println!("  {name:<20} {}", line(spreads));
    }
    println!(
        "\nruns: {}/fold-1 .. fold-{k}; summary: {}/cv.json",
        out.display(),
        out.display()
    );
    Ok(())
}
