//! Loads a config's data into train and test sets.

use crate::config::DataConfig;
use fukai::data::{self, Dataset, InMemory};
use fukai::{Error, Result};
use std::path::{Path, PathBuf};

/// Train and test sets with class names.
pub struct Splits {
    /// Training samples.
    pub train: InMemory,
    /// Held-out samples.
    pub test: InMemory,
    /// Label names.
    pub class_names: Vec<String>,
}

/// The MNIST-5k CSV that ships with this repository (the default job's data).
pub fn shipped_mnist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist_5k.csv.gz")
}

/// Resolves the data path: `--data` wins; otherwise the config's path under $FUKAI_ASSETS; the
/// shipped MNIST-5k for `mnist-csv` when neither is set.
pub fn resolve(cfg: &DataConfig, override_path: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = override_path {
        return Ok(p.to_path_buf());
    }
    let rel = cfg.path.as_deref().unwrap_or("");
    if Path::new(rel).is_absolute() {
        return Ok(rel.into());
    }
    if let Ok(root) = std::env::var("FUKAI_ASSETS") {
        return Ok(Path::new(&root).join(rel));
    }
    if cfg.format == "mnist-csv" {
        return Ok(shipped_mnist());
    }
    Err(Error::Format {
        file: rel.to_string(),
        msg: "no data location: pass --data PATH or set FUKAI_ASSETS to the assets folder".into(),
    })
}

fn missing(path: &Path) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "data not found"),
    }
}

/// Loads and splits the data; refuses a split with no samples, so no run trains on nothing or
/// reports a score measured on nothing.
pub fn load(cfg: &DataConfig, path: &Path, seed: u64) -> Result<Splits> {
    let splits = load_any(cfg, path, seed)?;
    for (name, set) in [("training", &splits.train), ("test", &splits.test)] {
        if set.is_empty() {
            return Err(Error::Format {
                file: path.display().to_string(),
                msg: format!(
                    "the {name} split is empty ({} training and {} test samples; data.test_fraction = {})",
                    splits.train.len(),
                    splits.test.len(),
                    cfg.test_fraction
                ),
            });
        }
    }
    Ok(splits)
}

fn load_any(cfg: &DataConfig, path: &Path, seed: u64) -> Result<Splits> {
    if !path.exists() {
        return Err(missing(path));
    }
    let digits = || (0..10).map(|d| d.to_string()).collect::<Vec<_>>();
    match cfg.format.as_str() {
        "mnist-csv" => {
            let (x, y) = data::read_mnist_csv(path)?;
            let all = InMemory::new(x, y.clone(), &[1, 28, 28], 10)?;
            let (tr, te) = data::stratified_split(&y, cfg.test_fraction, seed)?;
            Ok(Splits {
                train: all.subset(tr)?,
                test: all.subset(te)?,
                class_names: digits(),
            })
        }
        "idx" => {
            let part = |prefix: &str| -> Result<InMemory> {
                let img = find(path, &format!("{prefix}-images-idx3-ubyte"))?;
                let lab = find(path, &format!("{prefix}-labels-idx1-ubyte"))?;
                let (x, [n, h, w]) = data::read_idx_images(&img)?;
                let y = data::read_idx_labels(&lab)?;
                if y.len() != n {
                    return Err(Error::Format {
                        file: lab.display().to_string(),
                        msg: format!("{} labels for {n} images in {}", y.len(), img.display()),
                    });
                }
                InMemory::new(x, y, &[1, h, w], 10)
            };
            let names = if path.to_string_lossy().contains("fashion") {
                [
                    "T-shirt/top",
                    "Trouser",
                    "Pullover",
                    "Dress",
                    "Coat",
                    "Sandal",
                    "Shirt",
                    "Sneaker",
                    "Bag",
                    "Ankle boot",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
            } else {
                digits()
            };
            Ok(Splits {
                train: part("train")?,
                test: part("t10k")?,
                class_names: names,
            })
        }
        "table" => {
            let t = data::read_table(path)?;
            let classes = t.class_names.len();
            let all = InMemory::new(t.x, t.y.clone(), &[t.features], classes)?;
            let (tr, te) = data::stratified_split(&t.y, cfg.test_fraction, seed)?;
            Ok(Splits {
                train: all.subset(tr)?,
                test: all.subset(te)?,
                class_names: t.class_names,
            })
        }
        "image-folder" => {
            let size = cfg.image_size.unwrap_or([64, 64]);
            let (train, names) = data::read_image_folder(&path.join("train"), size, cfg.channels)?;
            let (test, test_names) =
                data::read_image_folder(&path.join("test"), size, cfg.channels)?;
            if names != test_names {
                return Err(Error::Format {
                    file: path.display().to_string(),
                    msg: format!("train classes {names:?} differ from test classes {test_names:?}"),
                });
            }
            Ok(Splits {
                train,
                test,
                class_names: names,
            })
        }
        "audio-manifest" => crate::audio_data::load(cfg, path, seed),
        other => Err(Error::Format {
            file: path.display().to_string(),
            msg: format!(
                "unknown data format {other:?}; expected mnist-csv, idx, table, image-folder or audio-manifest"
            ),
        }),
    }
}

/// `dir/name` or `dir/name.gz`, whichever exists.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    for cand in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if cand.exists() {
            return Ok(cand);
        }
    }
    Err(missing(&dir.join(format!("{name}[.gz]"))))
}
