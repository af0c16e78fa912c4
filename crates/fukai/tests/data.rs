//! Data pipeline: the loader's order and batches depend only on (seed, epoch), whatever the
//! prefetching; transforms are deterministic; the IDX and CSV readers on small hand-made files
//! (and on the real assets when FUKAI_ASSETS is set).

use fukai::data::{
    read_idx, read_idx_images, read_idx_labels, read_table, stratified_split, DataLoader, Dataset,
    InMemory, Normalize, RandomCrop, RandomHorizontalFlip, Transform,
};
use fukai::Generator;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// `n` samples of shape [1, 4, 4] whose pixels encode the sample index; labels i % 3.
fn dataset(n: usize) -> Arc<dyn Dataset> {
    let x: Vec<f32> = (0..n * 16)
        .map(|i| (i / 16) as f32 + (i % 16) as f32 / 100.0)
        .collect();
    let y: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
    Arc::new(InMemory::new(x, y, &[1, 4, 4], 3).unwrap())
}

/// Every batch of an epoch as (features, labels).
fn batches(loader: &DataLoader, epoch: u64) -> Vec<(Vec<f32>, Vec<usize>, Vec<i64>)> {
    loader
        .epoch(epoch)
        .map(|b| {
            let b = b.unwrap();
            (
                b.x.to_vec::<f32>().unwrap(),
                b.x.shape().to_vec(),
                b.y.to_vec::<i64>().unwrap(),
            )
        })
        .collect()
}

/// Sample indices in epoch order (pixel 0 of each sample is its index when not transformed).
fn order(loader: &DataLoader, epoch: u64) -> Vec<usize> {
    batches(loader, epoch)
        .iter()
        .flat_map(|(x, _, _)| x.chunks(16).map(|s| s[0] as usize).collect::<Vec<_>>())
        .collect()
}

#[test]
fn order_is_a_function_of_seed_and_epoch() {
    let data = dataset(50);
    let a = DataLoader::new(data.clone(), 8).shuffle(7);
    let b = DataLoader::new(data.clone(), 8).shuffle(7);
    for epoch in 0..3 {
        let o = order(&a, epoch);
        assert_eq!(
            o,
            order(&b, epoch),
            "epoch {epoch}: same seed, different order"
        );
        assert_eq!(o, order(&a, epoch), "epoch {epoch}: not repeatable");
        let mut sorted = o.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..50).collect::<Vec<_>>(),
            "epoch {epoch} is not a permutation"
        );
    }
    assert_ne!(order(&a, 0), order(&a, 1), "epochs must reshuffle");
    assert_ne!(
        order(&a, 0),
        order(&DataLoader::new(data.clone(), 8).shuffle(8), 0),
        "seeds must differ"
    );
    assert_eq!(
        order(&DataLoader::new(data, 8), 3),
        (0..50).collect::<Vec<_>>(),
        "no shuffle keeps the order"
    );
}

#[test]
fn drop_last_and_batch_sizes() {
    let data = dataset(50);
    let keep = DataLoader::new(data.clone(), 8).shuffle(1);
    let drop = DataLoader::new(data.clone(), 8).shuffle(1).drop_last(true);
    assert_eq!(keep.num_batches(), 7);
    assert_eq!(drop.num_batches(), 6);
    let kb = batches(&keep, 2);
    let db = batches(&drop, 2);
    assert_eq!(
        kb.iter().map(|b| b.2.len()).collect::<Vec<_>>(),
        vec![8, 8, 8, 8, 8, 8, 2]
    );
    assert_eq!(db.iter().map(|b| b.2.len()).collect::<Vec<_>>(), vec![8; 6]);
    assert_eq!(kb[..6], db[..], "drop_last only drops the tail");
    assert_eq!(kb[6].1, vec![2, 1, 4, 4]);
    // Exact multiple: nothing to drop.
    let even = DataLoader::new(dataset(48), 8).drop_last(true);
    assert_eq!(even.num_batches(), 6);
    // Fewer samples than a batch.
    assert_eq!(
        DataLoader::new(dataset(5), 8).drop_last(true).num_batches(),
        0
    );
    assert_eq!(
        batches(&DataLoader::new(dataset(5), 8).drop_last(true), 0).len(),
        0
    );
    assert_eq!(
        batches(&DataLoader::new(dataset(5), 8), 0)[0].2,
        vec![0, 1, 2, 0, 1]
    );
}

fn augmenting(data: Arc<dyn Dataset>, prefetch: usize) -> DataLoader {
    let t: Vec<Box<dyn Transform>> = vec![
        Box::new(RandomCrop { padding: 1 }),
        Box::new(RandomHorizontalFlip { p: 0.5 }),
        Box::new(Normalize::new(vec![0.5], vec![2.0]).unwrap()),
    ];
    DataLoader::new(data, 6)
        .shuffle(3)
        .prefetch(prefetch)
        .transforms(t)
}

#[test]
fn prefetch_does_not_change_batches() {
    let data = dataset(40);
    let off = augmenting(data.clone(), 0);
    for prefetch in [1, 2, 8] {
        let on = augmenting(data.clone(), prefetch);
        for epoch in 0..3 {
            assert_eq!(
                batches(&off, epoch),
                batches(&on, epoch),
                "prefetch {prefetch}, epoch {epoch}"
            );
        }
    }
    // Stopping early (the receiver hangs up) is fine and the next epoch is unaffected.
    let on = augmenting(data, 2);
    assert_eq!(on.epoch(0).take(1).count(), 1);
    assert_eq!(batches(&on, 1), batches(&off, 1));
}

#[test]
fn augmentation_is_deterministic_and_varies_by_epoch() {
    let data = dataset(40);
    let a = augmenting(data.clone(), 2);
    let b = augmenting(data.clone(), 0);
    assert_eq!(batches(&a, 4), batches(&b, 4));
    // Without shuffling the order is fixed, so any difference between epochs is augmentation:
    // a sample's random crop / flip depends on (seed, epoch, sample), not on its batch.
    let crop = |bs: usize| -> DataLoader {
        DataLoader::new(data.clone(), bs).transforms(vec![
            Box::new(RandomCrop { padding: 2 }) as Box<dyn Transform>
        ])
    };
    let (e0, e1) = (batches(&crop(8), 0), batches(&crop(8), 1));
    assert_ne!(e0, e1, "epochs must draw new augmentations");
    let flat = |v: Vec<(Vec<f32>, Vec<usize>, Vec<i64>)>| {
        v.into_iter().flat_map(|b| b.0).collect::<Vec<f32>>()
    };
    assert_eq!(
        flat(batches(&crop(8), 1)),
        flat(batches(&crop(5), 1)),
        "augmentation depends on the batch size"
    );
}

#[test]
fn transforms_on_their_own() {
    let shape = [1, 3, 3];
    let src: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let crop = RandomCrop { padding: 1 };
    let run = |seed| {
        let mut x = src.clone();
        crop.apply(&mut x, &shape, &mut Generator::new(seed));
        x
    };
    for seed in 0..20 {
        let out = run(seed);
        assert_eq!(out, run(seed), "seed {seed}");
        // A shift by at most one pixel: the centre pixel survives somewhere and the values
        // are the source's or zero padding.
        assert!(out.iter().all(|v| *v == 0.0 || src.contains(v)));
        assert!(out.contains(&5.0));
    }
    let mut flipped = src.clone();
    RandomHorizontalFlip { p: 1.0 }.apply(&mut flipped, &shape, &mut Generator::new(0));
    assert_eq!(flipped, vec![3., 2., 1., 6., 5., 4., 9., 8., 7.]);
    let mut kept = src.clone();
    RandomHorizontalFlip { p: 0.0 }.apply(&mut kept, &shape, &mut Generator::new(0));
    assert_eq!(kept, src);
    let mut rgb = vec![1.0f32, 1.0, 2.0, 2.0, 3.0, 3.0];
    Normalize::new(vec![1.0, 2.0, 0.0], vec![1.0, 0.5, 3.0])
        .unwrap()
        .apply(&mut rgb, &[3, 1, 2], &mut Generator::new(0));
    assert_eq!(rgb, vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn stratified_split_keeps_class_balance() {
    let labels: Vec<i64> = (0..100).map(|i| if i < 60 { 0 } else { 1 }).collect();
    let (train, test) = stratified_split(&labels, 0.25, 5).unwrap();
    assert_eq!((train.len(), test.len()), (75, 25));
    assert_eq!(test.iter().filter(|&&i| labels[i] == 0).count(), 15);
    assert_eq!(
        stratified_split(&labels, 0.25, 5).unwrap(),
        (train.clone(), test.clone())
    );
    let mut all: Vec<usize> = train.into_iter().chain(test).collect();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fukai-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An IDX file of unsigned bytes with these dims.
fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn idx_reader_raw_and_gzipped() {
    let dir = scratch("idx");
    let pixels: Vec<u8> = (0..2 * 3 * 2).map(|v| (v * 20) as u8).collect();
    let images = idx_bytes(&[2, 3, 2], &pixels);
    let labels = idx_bytes(&[2], &[7, 3]);
    std::fs::write(dir.join("img-idx3-ubyte"), &images).unwrap();
    std::fs::write(dir.join("img-idx3-ubyte.gz"), gzip(&images)).unwrap();
    std::fs::write(dir.join("lab-idx1-ubyte.gz"), gzip(&labels)).unwrap();
    for name in ["img-idx3-ubyte", "img-idx3-ubyte.gz"] {
        let a = read_idx(&dir.join(name)).unwrap();
        assert_eq!(a.dims, vec![2, 3, 2]);
        assert_eq!(a.data, pixels);
        let (x, dims) = read_idx_images(&dir.join(name)).unwrap();
        assert_eq!(dims, [2, 3, 2]);
        assert_eq!(x[1], 20.0 / 255.0);
        assert_eq!(x[11], 220.0 / 255.0);
    }
    assert_eq!(
        read_idx_labels(&dir.join("lab-idx1-ubyte.gz")).unwrap(),
        vec![7, 3]
    );
    // Images are not labels and vice versa.
    assert!(read_idx_labels(&dir.join("img-idx3-ubyte"))
        .unwrap_err()
        .to_string()
        .contains("expected 1 dim"));
    assert!(read_idx_images(&dir.join("lab-idx1-ubyte.gz"))
        .unwrap_err()
        .to_string()
        .contains("expected 3 dims"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn idx_reader_rejects_bad_files_naming_them() {
    let dir = scratch("idx-bad");
    let good = idx_bytes(&[2, 3, 2], &[1; 12]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated-data",
            good[..good.len() - 1].to_vec(),
            "need 12 data bytes, file has 11",
        ),
        (
            "extra-data",
            [good.clone(), vec![0]].concat(),
            "need 12 data bytes, file has more",
        ),
        ("truncated-header", good[..9].to_vec(), "truncated"),
        (
            "bad-magic",
            [vec![1u8], good[1..].to_vec()].concat(),
            "magic number",
        ),
        (
            "float-type",
            [vec![0u8, 0, 0x0D], good[3..].to_vec()].concat(),
            "element type 0x0d",
        ),
        ("empty", Vec::new(), "magic number"),
        (
            "huge-dims",
            idx_bytes(&[u32::MAX, u32::MAX, 1], &[0; 4]),
            "data bytes",
        ),
        (
            "overflowing-dims",
            idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[0; 4]),
            "overflow",
        ),
        (
            "truncated-gzip.gz",
            gzip(&good)[..20].to_vec(),
            "corrupt gzip",
        ),
        ("not-gzip.gz", good.clone(), "corrupt gzip"),
        (
            "gzip-of-truncated.gz",
            gzip(&good[..good.len() - 3]),
            "need 12 data bytes",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = read_idx(&p)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"))
            .to_string();
        assert!(
            err.contains(name),
            "{name}: error does not name the file: {err}"
        );
        assert!(err.contains(want), "{name}: expected {want:?} in {err}");
    }
    let err = read_idx(&dir.join("missing")).err().unwrap().to_string();
    assert!(err.contains("missing"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn read_table_sklearn_layout_and_plain_tables() {
    let dir = scratch("table");
    let sk = dir.join("sk.csv");
    std::fs::write(
        &sk,
        "4,2,setosa,versicolor,virginica\n5.1,3.5,0\n4.9,3.0,0\n\n6.3,2.5,2\n7.0,3.2,1\n",
    )
    .unwrap();
    let t = read_table(&sk).unwrap();
    assert_eq!(t.features, 2);
    assert_eq!(t.x, vec![5.1, 3.5, 4.9, 3.0, 6.3, 2.5, 7.0, 3.2]);
    assert_eq!(t.y, vec![0, 0, 2, 1]);
    assert_eq!(t.class_names, vec!["setosa", "versicolor", "virginica"]);

    // Named header row; numbers only (no header); gzipped.
    let named = dir.join("named.csv");
    std::fs::write(&named, "a,b,c,label\n1,2,3,1\n4,5,6,0\n").unwrap();
    let t = read_table(&named).unwrap();
    assert_eq!(
        (t.features, t.y.clone(), t.class_names.clone()),
        (3, vec![1, 0], vec!["0".to_string(), "1".to_string()])
    );
    let plain = dir.join("plain.csv.gz");
    std::fs::write(&plain, gzip(b"1,2,0\n3,4,1\n5,6,2\n")).unwrap();
    let t = read_table(&plain).unwrap();
    assert_eq!((t.features, t.x.len(), t.y.clone()), (2, 6, vec![0, 1, 2]));

    let bad: Vec<(&str, &str, &str)> = vec![
        (
            "count.csv",
            "3,2,a,b\n1,2,0\n3,4,1\n",
            "header says 3 samples of 2 features, found 2 rows",
        ),
        (
            "ragged.csv",
            "2,2,a,b\n1,2,0\n3,4,5,1\n",
            "line 3: 4 fields, expected 3",
        ),
        (
            "word.csv",
            "2,2,a,b\n1,2,0\n3,x,1\n",
            "line 3, column 2 (\"feature_2\"): \"x\" is not a finite number",
        ),
        (
            "nan.csv",
            "2,2,a,b\n1,NaN,0\n3,4,1\n",
            "line 2, column 2 (\"feature_2\"): \"NaN\" is not a finite number",
        ),
        ("empty.csv", "\n\n", "empty file"),
    ];
    for (name, text, want) in bad {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        let err = read_table(&p)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"))
            .to_string();
        assert!(
            err.contains(name) && err.contains(want),
            "{name}: expected {want:?} in {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs FUKAI_ASSETS"]
fn read_table_on_the_sklearn_files() {
    let Some(root) = fukai::testing::assets("tabular") else {
        return;
    };
    for (file, n, features, classes) in [
        ("iris.csv", 150, 4, 3),
        ("wine_data.csv", 178, 13, 3),
        ("breast_cancer.csv", 569, 30, 2),
        ("digits.csv.gz", 1797, 64, 10),
    ] {
        let t = read_table(&root.join("tabular").join(file)).unwrap();
        assert_eq!(
            (t.y.len(), t.features, t.x.len()),
            (n, features, n * features),
            "{file}"
        );
        assert_eq!(
            t.y.iter().max().map(|&m| m as usize + 1),
            Some(classes),
            "{file}"
        );
        assert_eq!(t.class_names.len(), classes, "{file}: {:?}", t.class_names);
    }
    let t = read_table(&root.join("tabular/iris.csv")).unwrap();
    assert_eq!(t.class_names, vec!["setosa", "versicolor", "virginica"]);
}

#[test]
#[ignore = "needs FUKAI_ASSETS"]
fn idx_reader_on_fashion_mnist() {
    let Some(root) = fukai::testing::assets("fashion-mnist") else {
        return;
    };
    let dir = root.join("fashion-mnist");
    let find = |stem: &str| -> PathBuf {
        [dir.join(stem), dir.join(format!("{stem}.gz"))]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{stem} in {}", dir.display()))
    };
    let (x, dims) = read_idx_images(&find("t10k-images-idx3-ubyte")).unwrap();
    assert_eq!(dims, [10_000, 28, 28]);
    assert_eq!(x.len(), 10_000 * 784);
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    let y = read_idx_labels(&find("t10k-labels-idx1-ubyte")).unwrap();
    assert_eq!(y.len(), 10_000);
    let mut counts = [0usize; 10];
    y.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [1000; 10]);
}
