//! Bad input fails cleanly: a non-zero exit, an error on stderr that names the file and the field
//! at fault, and an existing run directory left as it was.

mod common;

use common::{fukai, fukai_ok, s, scratch, table_config, write_table};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A run directory from an earlier run: a summary and metrics that must survive.
struct ExistingRun {
    dir: PathBuf,
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl ExistingRun {
    fn new(root: &Path) -> Self {
        let dir = root.join("existing-run");
        std::fs::create_dir_all(&dir).unwrap();
        let files = vec![
            (
                dir.join("summary.json"),
                br#"{"name": "earlier run", "test_accuracy": 0.5}"#.to_vec(),
            ),
            (dir.join("metrics.jsonl"), b"{\"epoch\": 1}\n".to_vec()),
        ];
        for (p, b) in &files {
            std::fs::write(p, b).unwrap();
        }
        ExistingRun { dir, files }
    }
    /// Panics unless the folder holds exactly its original files, unchanged.
    fn check_untouched(&self, what: &str) {
        for (p, b) in &self.files {
            assert_eq!(
                &std::fs::read(p).unwrap(),
                b,
                "{what}: {} was modified",
                p.display()
            );
        }
        let n = std::fs::read_dir(&self.dir).unwrap().count();
        assert_eq!(
            n,
            self.files.len(),
            "{what}: files were added to the run directory"
        );
    }
}

/// Runs fukai expecting failure; returns stderr after checking it mentions every `needle`.
fn fails(what: &str, args: &[&str], needles: &[&str]) -> String {
    let out = fukai(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{what}: fukai {args:?} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in needles {
        assert!(
            stderr.contains(n),
            "{what}: stderr does not mention {n:?}:\n{stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "{what}: panicked:\n{stderr}");
    stderr
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

/// An MNIST-style folder of 20 train / 10 test 28x28 images; `break_file` is replaced by what
/// `corrupt` makes of its bytes.
fn idx_folder(dir: &Path, break_file: &str, corrupt: impl Fn(Vec<u8>) -> Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n) in [("train", 20u32), ("t10k", 10)] {
        let pixels: Vec<u8> = (0..n * 784).map(|i| (i % 251) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        for (name, bytes) in [
            (
                format!("{prefix}-images-idx3-ubyte.gz"),
                gzip(&idx(&[n, 28, 28], &pixels)),
            ),
            (format!("{prefix}-labels-idx1-ubyte"), idx(&[n], &labels)),
        ] {
            let bytes = if name == break_file {
                corrupt(bytes)
            } else {
                bytes
            };
            std::fs::write(dir.join(&name), bytes).unwrap();
        }
    }
}

fn idx_config(root: &Path, name: &str, data: &Path) -> PathBuf {
    let p = root.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\n[data]\nformat = \"idx\"\npath = \"{}\"\n[model]\nkind = \"mlp\"\nhidden = [8]\n[train]\nepochs = 1\nbatch_size = 8\nlr = 0.01\n",
        data.display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_data_files() {
    let root = scratch("bad-data");
    let run = ExistingRun::new(&root);
    let out = s(&run.dir).to_string();

    // The helpers make a folder that trains: the failures below are the corruption's.
    let good = root.join("idx-good");
    idx_folder(&good, "", |b| b);
    let cfg = idx_config(&root, "idx-good", &good);
    fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&root.join("good-run")),
    ]);

    type Corrupt = Box<dyn Fn(Vec<u8>) -> Vec<u8>>;
    let cases: Vec<(&str, &str, Corrupt, Vec<&str>)> = vec![
        (
            "truncated gzip",
            "train-images-idx3-ubyte.gz",
            Box::new(|b: Vec<u8>| b[..b.len() / 2].to_vec()),
            vec!["train-images-idx3-ubyte.gz", "corrupt gzip"],
        ),
        (
            "garbage gzip",
            "t10k-images-idx3-ubyte.gz",
            Box::new(|b: Vec<u8>| b.iter().map(|x| x ^ 0x5a).collect()),
            vec!["t10k-images-idx3-ubyte.gz", "gzip"],
        ),
        (
            "truncated raw IDX",
            "train-labels-idx1-ubyte",
            Box::new(|b: Vec<u8>| b[..b.len() - 3].to_vec()),
            vec![
                "train-labels-idx1-ubyte",
                "dims [20] need 20 data bytes, file has 17",
            ],
        ),
        (
            "raw IDX header cut",
            "t10k-labels-idx1-ubyte",
            Box::new(|b: Vec<u8>| b[..6].to_vec()),
            vec!["t10k-labels-idx1-ubyte", "header"],
        ),
        (
            "wrong element type",
            "train-labels-idx1-ubyte",
            Box::new(|mut b: Vec<u8>| {
                b[2] = 0x0D;
                b
            }),
            vec!["train-labels-idx1-ubyte", "element type 0x0d"],
        ),
        (
            "label count mismatch",
            "t10k-labels-idx1-ubyte",
            Box::new(|_| idx(&[9], &[1; 9])),
            vec!["t10k-labels-idx1-ubyte", "9 labels for 10 images"],
        ),
    ];
    for (what, file, corrupt, needles) in cases {
        let dir = root.join(what.replace(' ', "-"));
        idx_folder(&dir, file, corrupt);
        let cfg = idx_config(&root, &what.replace(' ', "-"), &dir);
        fails(
            what,
            &["train", "--config", s(&cfg), "--out", &out],
            &needles,
        );
        run.check_untouched(what);
    }

    // CSV tables: a word where a number belongs, a ragged row, a bad label.
    for (what, body, needles) in [
        (
            "csv word",
            "1.0,2.0,0\n1.5,abc,1\n",
            vec![
                "bad.csv",
                "line 3",
                "column 2",
                "\"abc\" is not a finite number",
            ],
        ),
        (
            "csv ragged",
            "1.0,2.0,0\n1.5,2.5,3.5,1\n",
            vec!["bad.csv", "line 3", "4 fields, expected 3"],
        ),
        (
            "csv label",
            "1.0,2.0,0\n1.5,2.5,one\n",
            vec!["bad.csv", "line 3", "label \"one\""],
        ),
    ] {
        let data = root.join("bad.csv");
        std::fs::write(&data, format!("2,2,a,b\n{body}")).unwrap();
        let cfg = root.join("table.toml");
        std::fs::write(&cfg, table_config("t", &data, &[4], "")).unwrap();
        fails(
            what,
            &["train", "--config", s(&cfg), "--out", &out],
            &needles,
        );
        run.check_untouched(what);
    }

    // An image-folder tree with a file that is not a PNG inside.
    let tree = root.join("images");
    for split in ["train", "test"] {
        for class in ["cat", "dog"] {
            let d = tree.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            image::GrayImage::from_pixel(6, 6, image::Luma([128]))
                .save(d.join("ok.png"))
                .unwrap();
        }
    }
    std::fs::write(
        tree.join("train/dog/broken.png"),
        b"\x89PNG\r\n\x1a\nthis is not image data",
    )
    .unwrap();
    let cfg = root.join("images.toml");
    std::fs::write(&cfg, format!("name = \"img\"\n[data]\nformat = \"image-folder\"\npath = \"{}\"\nimage_size = [8, 8]\nchannels = 1\n[model]\nkind = \"mlp\"\nhidden = [4]\n[train]\nepochs = 1\nbatch_size = 2\nlr = 0.01\n", tree.display())).unwrap();
    fails(
        "garbage png",
        &["train", "--config", s(&cfg), "--out", &out],
        &["broken.png", "cannot decode image"],
    );
    run.check_untouched("garbage png");

    // Missing data: a folder that is not there; an IDX folder without its label file.
    let cfg = idx_config(&root, "missing", &root.join("no-such-folder"));
    fails(
        "missing data dir",
        &["train", "--config", s(&cfg), "--out", &out],
        &["no-such-folder", "not found"],
    );
    run.check_untouched("missing data dir");
    let partial = root.join("partial");
    idx_folder(&partial, "", |b| b);
    std::fs::remove_file(partial.join("t10k-labels-idx1-ubyte")).unwrap();
    let cfg = idx_config(&root, "partial", &partial);
    fails(
        "missing label file",
        &["train", "--config", s(&cfg), "--out", &out],
        &["t10k-labels-idx1-ubyte", "not found"],
    );
    run.check_untouched("missing label file");
    fails(
        "missing --data",
        &[
            "train",
            "--config",
            s(&cfg),
            "--data",
            s(&root.join("nowhere")),
            "--out",
            &out,
        ],
        &["nowhere", "not found"],
    );
    run.check_untouched("missing --data");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bad_configs_and_presets() {
    let root = scratch("bad-config");
    let run = ExistingRun::new(&root);
    let out = s(&run.dir).to_string();
    let data = root.join("data.csv");
    write_table(&data, 30);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown top-level key",
            table_config("c", &data, &[4], "").replace("name = ", "nmae = \"x\"\nname = "),
            vec!["cfg.toml", "unknown field `nmae`"],
        ),
        (
            "unknown train key",
            table_config("c", &data, &[4], "learning_rate = 0.1"),
            vec![
                "cfg.toml",
                "line 21",
                "in section [train]",
                "unknown field `learning_rate`",
            ],
        ),
        (
            "unknown model key",
            table_config("c", &data, &[4], "").replace("dropout = 0.3", "drop_out = 0.3"),
            vec!["cfg.toml", "in section [model]", "unknown field `drop_out`"],
        ),
        (
            "wrong type",
            table_config("c", &data, &[4], "").replace("batch_size = 8", "batch_size = \"eight\""),
            vec!["cfg.toml", "batch_size"],
        ),
        (
            "missing section",
            "name = \"x\"\n[data]\nformat = \"table\"\n".to_string(),
            vec!["cfg.toml", "model"],
        ),
        (
            "unknown optimizer",
            table_config("c", &data, &[4], "").replace("\"adam\"", "\"adamx\""),
            vec!["cfg.toml", "train: optimizer \"adamx\" is unknown"],
        ),
        (
            "unknown schedule",
            table_config("c", &data, &[4], "").replace("\"constant\"", "\"linear\""),
            vec!["cfg.toml", "train: schedule \"linear\" is unknown"],
        ),
        (
            "unknown model kind",
            table_config("c", &data, &[4], "").replace("\"mlp\"", "\"capsnet\""),
            vec!["cfg.toml", "model.kind \"capsnet\" is unknown"],
        ),
        (
            "unknown data format",
            table_config("c", &data, &[4], "").replace("\"table\"", "\"parquet\""),
            vec!["cfg.toml", "data.format \"parquet\" is unknown"],
        ),
        (
            "negative lr",
            table_config("c", &data, &[4], "").replace("lr = 0.01", "lr = -0.01"),
            vec![
                "cfg.toml",
                "train: lr must be a positive number, found -0.01",
            ],
        ),
        (
            "dropout of 1",
            table_config("c", &data, &[4], "").replace("dropout = 0.3", "dropout = 1.0"),
            vec!["cfg.toml", "model.dropout must be in [0, 1), found 1"],
        ),
        (
            "val_fraction of 1",
            table_config("c", &data, &[4], "").replace(
                "test_fraction = 0.25",
                "test_fraction = 0.25\nval_fraction = 1.0",
            ),
            vec!["cfg.toml", "data.val_fraction must be in [0, 1), found 1"],
        ),
        (
            "unknown precision",
            table_config("c", &data, &[4], "precision = \"fp8\""),
            vec![
                "cfg.toml",
                "precision",
                "unknown variant `fp8`",
                "`f32`, `bf16`, `tf32`",
            ],
        ),
        (
            "label smoothing of 2",
            table_config("c", &data, &[4], "label_smoothing = 2.0"),
            vec![
                "cfg.toml",
                "train: label_smoothing must be in [0, 1], found 2",
            ],
        ),
    ];
    let cfg = root.join("cfg.toml");
    for (what, text, needles) in cases {
        std::fs::write(&cfg, text).unwrap();
        fails(
            what,
            &["train", "--config", s(&cfg), "--out", &out],
            &needles,
        );
        run.check_untouched(what);
    }
    fails(
        "missing config file",
        &[
            "train",
            "--config",
            s(&root.join("nope.toml")),
            "--out",
            &out,
        ],
        &["nope.toml"],
    );
    run.check_untouched("missing config file");
    fails(
        "unknown preset",
        &["train", "--preset", "fashion-mpl", "--out", &out],
        &["--preset", "fashion-mpl", "fashion-mlp"],
    );
    run.check_untouched("unknown preset");
    fails(
        "unknown --precision",
        &[
            "train",
            "--preset",
            "iris-mlp",
            "--precision",
            "fp16",
            "--out",
            &out,
        ],
        &[
            "--precision",
            "expected \"f32\", \"bf16\" or \"tf32\", found \"fp16\"",
        ],
    );
    run.check_untouched("unknown --precision");
    std::fs::remove_dir_all(&root).unwrap();
}

/// Rewrites a checkpoint with one metadata field replaced.
fn edit_metadata(src: &Path, dst: &Path, key: &str, edit: impl Fn(&str) -> String) {
    let file = fukai::io::load_safetensors(src).unwrap();
    let (tensors, meta) = file.into_parts();
    let mut meta: HashMap<String, String> = meta;
    let v = edit(&meta[key]);
    meta.insert(key.to_string(), v);
    fukai::io::save_safetensors(dst, &tensors, Some(&meta)).unwrap();
}

#[test]
fn checkpoints_that_do_not_fit() {
    let root = scratch("bad-ckpt");
    let data = root.join("data.csv");
    write_table(&data, 60);
    let small = root.join("small.toml");
    std::fs::write(&small, table_config("small", &data, &[6], "")).unwrap();
    let wide = root.join("wide.toml");
    std::fs::write(&wide, table_config("wide", &data, &[10], "")).unwrap();
    let trained = root.join("trained");
    fukai_ok(&[
        "train",
        "--config",
        s(&small),
        "--epochs",
        "1",
        "--out",
        s(&trained),
    ]);
    let ckpt = trained.join("checkpoint.safetensors");
    fukai_ok(&["eval", "--checkpoint", s(&ckpt)]);

    // eval: the model config stored in the checkpoint builds other widths than its tensors.
    let edited = root.join("edited.safetensors");
    edit_metadata(&ckpt, &edited, "model", |c| {
        assert!(c.contains("\"hidden\":[6]"), "{c}");
        c.replace("\"hidden\":[6]", "\"hidden\":[10]")
    });
    let err = fails(
        "eval with mismatched shapes",
        &["eval", "--checkpoint", s(&edited)],
        &["edited.safetensors", "0.weight", "[10, 4]", "[6, 4]"],
    );
    assert!(err.contains("model expects"), "{err}");
    fails(
        "predict with mismatched shapes",
        &["predict", "--checkpoint", s(&edited), "1,2,3,4"],
        &["edited.safetensors", "0.weight"],
    );
    // Broken metadata and a file that is not a checkpoint.
    let broken = root.join("broken-meta.safetensors");
    edit_metadata(&ckpt, &broken, "model", |c| {
        c.replace("\"kind\"", "\"knid\"")
    });
    fails(
        "eval with broken model metadata",
        &["eval", "--checkpoint", s(&broken)],
        &[
            "broken-meta.safetensors",
            "metadata field \"model\"",
            "kind",
        ],
    );
    let broken_run = root.join("broken-run.safetensors");
    edit_metadata(&ckpt, &broken_run, "run", |c| {
        c.replace("\"train\"", "\"trian\"")
    });
    fails(
        "eval with broken run metadata",
        &["eval", "--checkpoint", s(&broken_run)],
        &["broken-run.safetensors", "metadata field \"run\"", "train"],
    );
    let junk = root.join("junk.safetensors");
    std::fs::write(&junk, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}").unwrap();
    fails(
        "eval of junk",
        &["eval", "--checkpoint", s(&junk)],
        &["junk.safetensors"],
    );
    let cut = root.join("cut.safetensors");
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    fails(
        "eval of a truncated checkpoint",
        &["eval", "--checkpoint", s(&cut)],
        &["cut.safetensors"],
    );

    // train --resume of a run directory whose checkpoint does not fit: refused, and the run
    // directory keeps its files.
    let resume_into = |what: &str, ckpt_file: &Path, extra: &[&str], needles: &[&str]| {
        let mut run = ExistingRun::new(&root);
        let c = run.dir.join("checkpoint.safetensors");
        std::fs::copy(ckpt_file, &c).unwrap();
        run.files.push((c.clone(), std::fs::read(&c).unwrap()));
        let mut args = vec!["train", "--resume", s(&run.dir)];
        args.extend_from_slice(extra);
        fails(what, &args, needles);
        run.check_untouched(what);
        std::fs::remove_dir_all(&run.dir).unwrap();
    };
    resume_into(
        "resume with mismatched shapes",
        &edited,
        &[],
        &["checkpoint.safetensors", "0.weight", "[10, 4]", "[6, 4]"],
    );
    // The run config says 10 wide, the model and its tensors 6.
    let lying = root.join("lying-run.safetensors");
    edit_metadata(&ckpt, &lying, "run", |c| {
        c.replace("\"hidden\":[6]", "\"hidden\":[10]")
    });
    resume_into(
        "resume with a run config of another width",
        &lying,
        &[],
        &[
            "checkpoint.safetensors",
            "different model",
            "model.hidden: checkpoint [6], now [10]",
        ],
    );
    resume_into(
        "resume with another config file",
        &ckpt,
        &["--config", s(&wide)],
        &[
            "checkpoint.safetensors",
            "different config",
            "model.hidden: checkpoint [6], now [10]",
        ],
    );
    let gone = root.join("gone");
    fails(
        "resume from a missing run",
        &["train", "--resume", s(&gone)],
        &["gone", "checkpoint.safetensors"],
    );
    assert!(!gone.exists(), "resuming a missing run created its folder");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn out_on_an_existing_run() {
    let root = scratch("existing-out");
    let data = root.join("data.csv");
    write_table(&data, 60);
    let cfg = root.join("run.toml");
    std::fs::write(&cfg, table_config("first", &data, &[6], "")).unwrap();
    let run = ExistingRun::new(&root);
    let out = s(&run.dir).to_string();
    // Good data and config: only the earlier run stands in the way.
    let err = fails(
        "--out on an existing run",
        &["train", "--config", s(&cfg), "--out", &out],
        &[&out, "already holds a run", "--force", "--resume"],
    );
    assert!(!err.contains("epoch"), "{err}");
    run.check_untouched("--out on an existing run");
    // --force replaces it: the new run's files, none of the old ones' contents.
    let stdout = fukai_ok(&["train", "--config", s(&cfg), "--out", &out, "--force"]);
    assert!(stdout.contains("test loss"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["name"], "first", "{summary}");
    let metrics = std::fs::read_to_string(run.dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "old lines kept: {metrics}");
    // A real run is refused as well, and --force with --resume is a usage error.
    fails(
        "--out on a trained run",
        &["train", "--config", s(&cfg), "--out", &out],
        &[&out, "already holds a run"],
    );
    fails(
        "--force with --resume",
        &["train", "--resume", &out, "--force"],
        &["--force"],
    );
    // An --out that cannot be created fails before any training.
    let file = root.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let under = file.join("run");
    let r = common::fukai(&["train", "--config", s(&cfg), "--out", s(&under)]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "trained into {}", under.display());
    assert!(stderr.contains(s(&under)), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&r.stdout).contains("epoch"),
        "trained before finding --out unwritable"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// `mpirun -np 4` of a fukai built without MPI would run 4 independent copies of one run into
/// one directory; it is refused, saying how to build the right one.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_binary_without_mpi_refuses_to_run_as_one_of_many_ranks() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fukai"))
        .args([
            "train",
            "--steps",
            "1",
            "--out",
            "/nonexistent/never-written",
        ])
        .env("OMPI_COMM_WORLD_SIZE", "4")
        .env("OMPI_COMM_WORLD_RANK", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("one of 4 processes") && err.contains("--features mpi"),
        "{err}"
    );
}
