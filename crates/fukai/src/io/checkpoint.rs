//! Training checkpoints: model tensors, optimizer state, step counters and the RNG state in one
//! safetensors file, with JSON run metadata. Writes are atomic, so an interrupted save leaves
//! the previous checkpoint intact.

use super::{load_safetensors, save_safetensors, SafetensorsFile};
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::Optimizer;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::path::Path;

const FORMAT: &str = "fukai-checkpoint-1";

/// Where a run stood when its checkpoint was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Optimizer steps taken.
    pub step: u64,
    /// Epochs completed.
    pub epoch: u64,
}

/// Saves `model`, `optimizer` and the default RNG state to `path`. `extra` metadata (e.g. the
/// run's config as JSON) is stored alongside.
pub fn save(
    path: &Path,
    model: &dyn Module,
    optimizer: &dyn Optimizer,
    progress: &Progress,
    extra: &[(&str, String)],
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = model
        .state_dict()
        .into_iter()
        .map(|(n, t)| (format!("model.{n}"), t))
        .collect();
    tensors.extend(
        optimizer
            .state()?
            .into_iter()
            .map(|(n, t)| (format!("optim.{n}"), t)),
    );
    let (seed, offset) = crate::rng::default_generator_state();
    let mut meta: HashMap<String, String> = HashMap::new();
    meta.insert("format".into(), FORMAT.into());
    meta.insert("step".into(), progress.step.to_string());
    meta.insert("epoch".into(), progress.epoch.to_string());
    meta.insert("rng_seed".into(), seed.to_string());
    meta.insert("rng_offset".into(), offset.to_string());
    for (k, v) in extra {
        meta.insert((*k).to_string(), v.clone());
    }
    save_safetensors(path, &tensors, Some(&meta))
}

fn field<T: std::str::FromStr>(
    path: &Path,
    meta: &HashMap<String, String>,
    key: &str,
) -> Result<T> {
    let v = meta.get(key).ok_or_else(|| Error::Format {
        file: path.display().to_string(),
        msg: format!("metadata field {key:?} is missing"),
    })?;
    v.parse().map_err(|_| Error::Format {
        file: path.display().to_string(),
        msg: format!("metadata field {key:?}: {v:?} is not valid"),
    })
}

/// Loads a checkpoint into `model` (and `optimizer` when given), restores the default RNG
/// state, and returns the progress and metadata. The model is checked in full before anything
/// is overwritten.
pub fn load(
    path: &Path,
    model: &dyn Module,
    optimizer: Option<&mut dyn Optimizer>,
) -> Result<(Progress, HashMap<String, String>)> {
    load_file(&load_safetensors(path)?, path, model, optimizer)
}

/// [`load`] from a checkpoint already read (`path` names it in errors).
pub fn load_file(
    file: &SafetensorsFile,
    path: &Path,
    model: &dyn Module,
    optimizer: Option<&mut dyn Optimizer>,
) -> Result<(Progress, HashMap<String, String>)> {
    let meta = file.metadata().clone();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(Error::Format {
            file: path.display().to_string(),
            msg: format!(
                "not a fukai checkpoint (metadata format {:?}, expected {FORMAT:?})",
                meta.get("format")
            ),
        });
    }
    let pick = |prefix: &str| -> Vec<(String, Tensor)> {
        file.tensors()
            .iter()
            .filter_map(|(n, t)| n.strip_prefix(prefix).map(|s| (s.to_string(), t.clone())))
            .collect()
    };
    model
        .load_state_dict(&pick("model."))
        .map_err(|e| Error::Format {
            file: path.display().to_string(),
            msg: e.to_string(),
        })?;
    if let Some(opt) = optimizer {
        opt.load_state(&pick("optim.")).map_err(|e| Error::Format {
            file: path.display().to_string(),
            msg: e.to_string(),
        })?;
    }
    crate::rng::set_default_generator_state(
        field(path, &meta, "rng_seed")?,
        field(path, &meta, "rng_offset")?,
    );
    Ok((
        Progress {
            step: field(path, &meta, "step")?,
            epoch: field(path, &meta, "epoch")?,
        },
        meta,
    ))
}
