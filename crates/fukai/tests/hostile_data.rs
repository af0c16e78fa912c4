//! Data that would hurt a careless loader: labels sized like 1e18, decompression bombs, a panic
//! inside user dataset code, statistics that cannot normalize, splits that would be empty.
//! Each case gets a clear error, never a panic, a huge allocation or a short, silent epoch.

use fukai::data::{
    read_idx, read_manifest, read_table, stratified_split, DataLoader, Dataset, Normalize,
};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fukai-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn huge_labels_never_size_the_class_list() {
    let dir = scratch("labels");
    // The reproduction: past 2^53 a label is no longer an exact integer.
    let p = dir.join("l.csv");
    std::fs::write(&p, "a,b,label\n1,2,0\n3,4,1\n5,6,1e18\n7,8,0\n").unwrap();
    // Labels are categories: 1e18 is read as the name of a class, never as a class count.
    let t = read_table(&p).unwrap();
    assert_eq!(t.class_names, ["0", "1", "1e18"]);
    assert_eq!(t.y, [0, 1, 2, 0]);
    // Large but exact labels are renumbered densely, named by their values.
    std::fs::write(&p, "a,b,label\n1,2,0\n3,4,1e9\n5,6,7\n7,8,0\n").unwrap();
    let t = read_table(&p).unwrap();
    assert_eq!(t.class_names, ["0", "7", "1000000000"]);
    assert_eq!(t.y, [0, 2, 1, 0]);
    // Negative labels (a ±1 target) too.
    std::fs::write(&p, "a,label\n1,-1\n2,1\n3,-1\n").unwrap();
    let t = read_table(&p).unwrap();
    assert_eq!(
        (t.class_names.clone(), t.y),
        (vec!["-1".into(), "1".into()], vec![0, 1, 0])
    );
    // Ordinary 0..k labels keep their values.
    std::fs::write(&p, "a,label\n1,2\n2,0\n3,1\n").unwrap();
    assert_eq!(read_table(&p).unwrap().y, [2, 0, 1]);

    std::fs::write(dir.join("a.wav"), b"RIFF").unwrap();
    let m = dir.join("manifest.csv");
    std::fs::write(&m, "file,label\na.wav,0\na.wav,1000000000000000000\n").unwrap();
    let man = read_manifest(&m).unwrap();
    assert_eq!(man.class_names, ["0", "1000000000000000000"]);
    assert_eq!(man.rows[1].label, 1);
}

#[test]
fn stratified_split_takes_any_labels_and_checks_the_fraction() {
    let labels = [5_000_000_000i64, -3, 5_000_000_000, -3, 7, 7];
    let (train, test) = stratified_split(&labels, 0.5, 1).unwrap();
    assert_eq!((train.len(), test.len()), (3, 3));
    for bad in [1.5, -0.1, f64::NAN] {
        let e = stratified_split(&labels, bad, 1).unwrap_err().to_string();
        assert!(e.contains("test_fraction"), "{e}");
    }
}

#[test]
fn gzip_bombs_stop_at_what_the_header_promises() {
    let dir = scratch("bomb");
    // An IDX header promising one 28x28 image, followed by 64 MB of zeros: refused after
    // reading 785 bytes of data, not 64 MB.
    let mut raw = vec![0u8, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28];
    raw.resize(raw.len() + (64 << 20), 0);
    let p = dir.join("bomb-idx3-ubyte.gz");
    std::fs::write(&p, gzip(&raw)).unwrap();
    let e = read_idx(&p)
        .err()
        .expect("extra data is refused")
        .to_string();
    assert!(
        e.contains("bomb-idx3-ubyte.gz") && e.contains("need 784 data bytes, file has more"),
        "{e}"
    );
    // A header promising more than the stream holds.
    let p = dir.join("short-idx3-ubyte.gz");
    std::fs::write(&p, gzip(&raw[..16 + 100])).unwrap();
    let e = read_idx(&p)
        .err()
        .expect("short data is refused")
        .to_string();
    assert!(e.contains("need 784 data bytes, file has 100"), "{e}");
    // A header promising 2^32 images of 2^32 x 2^32: overflow, before any allocation.
    let p = dir.join("huge-idx3-ubyte");
    std::fs::write(
        &p,
        [
            0u8, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        ],
    )
    .unwrap();
    let e = read_idx(&p).err().expect("overflow is refused").to_string();
    assert!(e.contains("overflow"), "{e}");
    assert_eq!(fukai::data::MAX_INFLATED_BYTES, 1 << 30);
}

/// A dataset whose sample `bad` panics, as a buggy user `get` would.
struct Fragile {
    bad: usize,
}

impl Dataset for Fragile {
    fn len(&self) -> usize {
        10
    }
    fn sample_shape(&self) -> &[usize] {
        &[2]
    }
    fn get(&self, i: usize, out: &mut [f32]) -> fukai::Result<i64> {
        assert!(i != self.bad, "sample {i} is cursed");
        out.fill(i as f32);
        Ok(0)
    }
    fn classes(&self) -> usize {
        1
    }
}

#[test]
fn a_panicking_dataset_is_an_error_naming_the_sample() {
    for prefetch in [0, 2] {
        let loader = DataLoader::new(Arc::new(Fragile { bad: 7 }), 3).prefetch(prefetch);
        let results: Vec<_> = loader.epoch(0).collect();
        assert_eq!(
            results.len(),
            4,
            "prefetch {prefetch}: the epoch must not end early"
        );
        assert!(results[..2].iter().all(|b| b.is_ok()));
        let e = results[2]
            .as_ref()
            .err()
            .expect("batch 2 holds sample 7")
            .to_string();
        assert!(
            e.contains("sample 7") && e.contains("cursed"),
            "prefetch {prefetch}: {e}"
        );
    }
}

#[test]
fn normalize_refuses_statistics_it_cannot_apply() {
    for (mean, std, needle) in [
        (vec![], vec![], "at least one"),
        (vec![0.0, 1.0], vec![1.0], "as many"),
        (vec![f32::NAN], vec![1.0], "finite"),
        (vec![0.0], vec![0.0], "positive"),
    ] {
        let e = Normalize::new(mean, std)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("Normalize") && e.contains(needle), "{e}");
    }
}
