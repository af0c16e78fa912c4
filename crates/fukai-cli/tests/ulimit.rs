//! Hostile files through `fukai train`, `eval` and `predict` under `ulimit -v 4000000` (issue
//! 16): every run must end in a clean failure (exit 1 with an error naming the file or field),
//! never a panic, an abort on a failed allocation, a signal or a hang.

mod common;

use common::limited::{fukai_limited, unclean};
use common::{s, scratch, table_config, write_table};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const LIMIT_S: u32 = 120;

/// Panics unless `fukai ARGS` fails cleanly under the cap with every needle on stderr.
fn fails_cleanly(what: &str, args: &[&str], needles: &[&str]) {
    let out = fukai_limited(args, LIMIT_S);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(why) = unclean(&out) {
        panic!("{what}: fukai {args:?} did not fail cleanly: {why}\nstderr:\n{stderr}");
    }
    for n in needles {
        assert!(
            stderr.contains(n),
            "{what}: stderr does not mention {n:?}:\n{stderr}"
        );
    }
}

/// Trains the tiny table model under the cap and returns its checkpoint: the cap alone must not
/// be what makes the hostile cases fail.
fn trained(root: &Path) -> PathBuf {
    let data = root.join("data.csv");
    write_table(&data, 24);
    let cfg = root.join("good.toml");
    std::fs::write(&cfg, table_config("good", &data, &[6], "")).unwrap();
    let run = root.join("good-run");
    let out = fukai_limited(&["train", "--config", s(&cfg), "--out", s(&run)], LIMIT_S);
    assert!(
        out.status.success(),
        "training under the cap failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    run.join("checkpoint.safetensors")
}

/// A copy of `src` with one metadata field's JSON edited.
fn edit_metadata(src: &Path, dst: &Path, key: &str, edit: impl Fn(&mut serde_json::Value)) {
    let (tensors, meta) = fukai::io::load_safetensors(src).unwrap().into_parts();
    let mut meta: HashMap<String, String> = meta;
    let mut v: serde_json::Value = serde_json::from_str(&meta[key]).unwrap();
    edit(&mut v);
    meta.insert(key.to_string(), v.to_string());
    fukai::io::save_safetensors(dst, &tensors, Some(&meta)).unwrap();
}

#[test]
fn a_good_run_fits_under_the_cap() {
    let root = scratch("ulimit-good");
    let ckpt = trained(&root);
    for args in [
        vec!["eval", "--checkpoint", s(&ckpt)],
        vec!["predict", "--checkpoint", s(&ckpt), "0.1,0.2,0.3,0.4"],
    ] {
        let out = fukai_limited(&args, LIMIT_S);
        assert!(
            out.status.success(),
            "fukai {args:?} under the cap failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn safetensors_header_claiming_huge_sizes() {
    let root = scratch("ulimit-safetensors");
    let huge_len = root.join("huge-len.safetensors");
    let mut b = u64::MAX.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    std::fs::write(&huge_len, b).unwrap();
    let huge_shape = root.join("huge-shape.safetensors");
    let header =
        br#"{"x":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,4000000000000]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header);
    b.extend_from_slice(&[0; 16]);
    std::fs::write(&huge_shape, b).unwrap();
    for f in [&huge_len, &huge_shape] {
        let name = f.file_name().unwrap().to_str().unwrap();
        fails_cleanly(name, &["eval", "--checkpoint", s(f)], &[name]);
        fails_cleanly(name, &["predict", "--checkpoint", s(f), "1,2"], &[name]);
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn idx_header_claiming_2_pow_31_images() {
    let root = scratch("ulimit-idx");
    let data = root.join("idx");
    std::fs::create_dir_all(&data).unwrap();
    let idx = |dims: &[u32], payload: usize| {
        let mut b = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.resize(b.len() + payload, 7);
        b
    };
    for prefix in ["train", "t10k"] {
        let images = idx(&[1 << 31, 28, 28], 784);
        std::fs::write(data.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(
            data.join(format!("{prefix}-labels-idx1-ubyte")),
            idx(&[1], 1),
        )
        .unwrap();
    }
    let cfg = root.join("idx.toml");
    std::fs::write(&cfg, format!("name = \"idx\"\n[data]\nformat = \"idx\"\npath = \"{}\"\n[model]\nkind = \"mlp\"\nhidden = [8]\n[train]\nepochs = 1\nbatch_size = 8\nlr = 0.01\n", data.display())).unwrap();
    fails_cleanly(
        "IDX of 2^31 images",
        &["train", "--config", s(&cfg), "--out", s(&root.join("run"))],
        &["train-images-idx3-ubyte", "2147483648"],
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn csv_label_of_1e18() {
    let root = scratch("ulimit-label");
    let data = root.join("labels.csv");
    std::fs::write(&data, "3,2,a,b\n1.0,2.0,0\n1.5,2.5,1\n0.5,0.5,1e18\n").unwrap();
    let cfg = root.join("labels.toml");
    std::fs::write(&cfg, table_config("labels", &data, &[4], "")).unwrap();
    fails_cleanly(
        "label 1e18",
        &["train", "--config", s(&cfg), "--out", s(&root.join("run"))],
        &["labels.csv", "label"],
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn gzip_bomb() {
    let root = scratch("ulimit-gzip");
    let data = root.join("bomb.csv.gz");
    // 2.5 GiB of zeros in about 2.5 MB: past 2 GiB a growing buffer needs 4 GiB, over the cap.
    let mut e = flate2::write::GzEncoder::new(
        std::fs::File::create(&data).unwrap(),
        flate2::Compression::best(),
    );
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..2560 {
        e.write_all(&chunk).unwrap();
    }
    e.finish().unwrap();
    let cfg = root.join("bomb.toml");
    std::fs::write(&cfg, table_config("bomb", &data, &[4], "")).unwrap();
    // Today the cap itself stops it (read_to_end's reservation fails, an error naming the file);
    // a decompression limit gives the same clean exit without the cap.
    fails_cleanly(
        "gzip bomb",
        &["train", "--config", s(&cfg), "--out", s(&root.join("run"))],
        &["bomb.csv.gz"],
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn config_with_a_huge_hidden_width() {
    let root = scratch("ulimit-config");
    let data = root.join("data.csv");
    write_table(&data, 24);
    let cfg = root.join("huge.toml");
    std::fs::write(&cfg, table_config("huge", &data, &[100_000_000_000], "")).unwrap();
    fails_cleanly(
        "hidden = [100000000000]",
        &["train", "--config", s(&cfg), "--out", s(&root.join("run"))],
        &["huge.toml", "hidden"],
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn checkpoint_metadata_claiming_huge_widths() {
    let root = scratch("ulimit-checkpoint");
    let ckpt = trained(&root);
    let wide = root.join("wide.safetensors");
    edit_metadata(&ckpt, &wide, "model", |c| {
        assert_eq!(c["hidden"], serde_json::json!([6]), "{c}");
        c["hidden"] = serde_json::json!([100_000_000_000u64]);
    });
    let shape = root.join("shape.safetensors");
    edit_metadata(&ckpt, &shape, "input_shape", |v| {
        *v = serde_json::json!([100_000_000_000u64]);
    });
    for f in [&wide, &shape] {
        let name = f.file_name().unwrap().to_str().unwrap();
        fails_cleanly(name, &["eval", "--checkpoint", s(f)], &[name]);
        fails_cleanly(name, &["predict", "--checkpoint", s(f), "1,2,3,4"], &[name]);
    }
    std::fs::remove_dir_all(&root).unwrap();
}
