//! The fuzz targets of the labelled-CSV loaders (tables and manifests), apart from
//! `fuzz_loaders.rs` because they currently abort the process (a label such as 1e15 sizes the
//! class-name list; issue 16): an abort here cannot take the other targets down with it.

mod fuzz;

use fuzz::harness::{run, scratch, Target};
use std::path::Path;

#[global_allocator]
static GUARD: fuzz::alloc_guard::Guard = fuzz::alloc_guard::Guard;

fn ok<T>(r: fukai::Result<T>) -> fukai::Result<()> {
    r.map(drop)
}

fn raw_and_gz(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    vec![dir.join(name), dir.join(format!("{name}.gz"))]
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
