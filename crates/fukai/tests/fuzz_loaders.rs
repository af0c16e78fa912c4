//! Mutation fuzzing of every file loader (issue 16): each target feeds mutations of its seed
//! corpus (`tests/fuzz_corpus/<target>/`) to one loader for `FUKAI_FUZZ_SECONDS` (default 2),
//! and fails on a panic, an error that does not name the file, or an allocation sized by an
//! unchecked header. See `fuzz/harness.rs` for replaying a failure.

mod fuzz;

use fuzz::harness::{run, scratch, Target};
use std::path::Path;

#[global_allocator]
static GUARD: fuzz::alloc_guard::Guard = fuzz::alloc_guard::Guard;

fn ok<T>(r: fukai::Result<T>) -> fukai::Result<()> {
    r.map(drop)
}

/// Each loader on a raw file and a gzipped one, as every text and IDX loader accepts `.gz`.
fn raw_and_gz(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    vec![dir.join(name), dir.join(format!("{name}.gz"))]
}

#[test]
fn fuzz_idx() {
    let dir = scratch("idx");
    run(Target {
        corpus: "idx",
        paths: raw_and_gz(&dir, "data-idx-ubyte"),
        load: &|p| match fukai::data::read_idx(p)?.dims.len() {
            3 => ok(fukai::data::read_idx_images(p)),
            1 => ok(fukai::data::read_idx_labels(p)),
            _ => Ok(()),
        },
    });
}

#[test]
fn fuzz_mnist_csv() {
    let dir = scratch("mnist_csv");
    run(Target {
        corpus: "mnist_csv",
        paths: raw_and_gz(&dir, "mnist.csv"),
        load: &|p| ok(fukai::data::read_mnist_csv(p)),
    });
}

#[test]
fn fuzz_ts() {
    let dir = scratch("ts");
    run(Target {
        corpus: "ts",
        paths: raw_and_gz(&dir, "data.ts"),
        load: &|p| ok(fukai::data::read_ts(p)),
    });
}

#[test]
fn fuzz_series_csv() {
    let dir = scratch("series_csv");
    run(Target {
        corpus: "series_csv",
        paths: raw_and_gz(&dir, "series.csv"),
        load: &|p| ok(fukai::data::read_series_csv(p, &["temp", "rain"])),
    });
}

#[test]
fn fuzz_wav() {
    let dir = scratch("wav");
    run(Target {
        corpus: "wav",
        paths: vec![dir.join("clip.wav")],
        load: &|p| ok(fukai::audio::read_wav(p)),
    });
}

#[test]
fn fuzz_safetensors() {
    let dir = scratch("safetensors");
    run(Target {
        corpus: "safetensors",
        paths: vec![dir.join("model.safetensors")],
        load: &|p| ok(fukai::io::load_safetensors(p)),
    });
}

/// The model the checkpoint corpus was saved from (see fuzz_corpus/README.md).
fn checkpoint_model() -> fukai::nn::Sequential {
    use fukai::nn::{Activation, Linear, Sequential};
    Sequential::new()
        .add(Linear::new(3, 4, true).unwrap())
        .add(Activation::Relu)
        .add(Linear::new(4, 2, true).unwrap())
}

#[test]
fn fuzz_checkpoint() {
    use fukai::nn::Module;
    let dir = scratch("checkpoint");
    run(Target {
        corpus: "checkpoint",
        paths: vec![dir.join("checkpoint.safetensors")],
        load: &|p| {
            let model = checkpoint_model();
            let mut opt = fukai::optim::Adam::new(model.parameters(), 1e-3);
            ok(fukai::io::checkpoint::load(p, &model, Some(&mut opt)))
        },
    });
}

#[cfg(feature = "hf")]
#[test]
fn fuzz_tokenizer_json() {
    let dir = scratch("tokenizer");
    run(Target {
        corpus: "tokenizer",
        paths: vec![dir.join("tokenizer.json")],
        load: &|p| {
            let t = fukai::text::hf::HfTokenizer::from_file(p)?;
            // Decoding options are only checked when used, so use them once.
            let ids = t.encode("Hello, fuzzy world!")?;
            ok(t.decode(&ids))
        },
    });
}

#[test]
fn fuzz_bert_config() {
    let dir = scratch("bert_config");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_bert");
    std::fs::copy(
        fixture.join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    run(Target {
        corpus: "bert_config",
        paths: vec![dir.join("config.json")],
        // The weights are checked against the config's sizes, so a config claiming huge ones
        // must fail on the shapes, not allocate them.
        load: &|p| ok(fukai::models::BertModel::from_dir(p.parent().unwrap())),
    });
}

#[test]
fn fuzz_table_csv() {
    let dir = scratch("table");
    run(Target {
        corpus: "table",
        paths: raw_and_gz(&dir, "table.csv"),
        load: &|p| ok(fukai::data::read_table(p)),
    });
}

/// The table pipeline: read, type the columns (label last), fit a schema on every row, encode.
#[test]
fn fuzz_table_schema() {
    let dir = scratch("table_schema");
    run(Target {
        corpus: "table_schema",
        paths: raw_and_gz(&dir, "table.csv"),
        load: &|p| {
            let raw = fukai::data::read_csv(p, &Default::default())?;
            let spec = fukai::data::TableSpec::default();
            let layout = spec.layout(&raw)?;
            let all: Vec<usize> = (0..layout.rows.len()).collect();
            let schema = fukai::data::Schema::fit(&spec, &raw, &layout, &all)?;
            ok(schema.encode_rows(&raw, &layout.rows))
        },
    });
}

#[test]
fn fuzz_manifest() {
    let dir = scratch("manifest");
    // The files the corpus manifests name; read_manifest only checks that they exist.
    for f in ["a.wav", "b.wav", "c d.wav"] {
        std::fs::write(dir.join(f), b"").unwrap();
    }
    run(Target {
        corpus: "manifest",
        paths: raw_and_gz(&dir, "manifest.csv"),
        load: &|p| {
            let m = fukai::data::read_manifest(p)?;
            // Loading builds the dataset from the labels: the class count must be sane too.
            ok(m.load(&m.rows_in(None), &[1], &|_| Ok(vec![0.0])))
        },
    });
}
