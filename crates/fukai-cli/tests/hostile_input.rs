//! The CLI on hostile or careless input (issue 16): labels like 1e18, checkpoint metadata and
//! configs that describe enormous models, zero widths, empty splits, non-finite inputs and
//! weights, the wrong kind of file. Each is a clean failure whose message names the file or
//! field, what was expected and what was found — no panic, no huge allocation, no made-up score.

mod common;

use common::{fukai, fukai_ok, s, scratch, table_config, write_table};
use std::collections::HashMap;
use std::path::Path;

/// Runs fukai expecting a clean failure whose stderr mentions every `needle`.
fn fails(what: &str, args: &[&str], needles: &[&str]) -> String {
    let out = fukai(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: fukai {args:?} should fail cleanly:\nstdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in needles {
        assert!(stderr.contains(n), "{what}: stderr lacks {n:?}:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{what}: panicked:\n{stderr}");
    stderr
}

fn config(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// Rewrites a checkpoint with metadata field `key` set to `value`, or with its tensors edited.
fn rewrite(
    src: &Path,
    dst: &Path,
    key: Option<(&str, &str)>,
    edit: impl Fn(&mut Vec<(String, fukai::Tensor)>),
) {
    let (mut tensors, meta) = fukai::io::load_safetensors(src).unwrap().into_parts();
    let mut meta: HashMap<String, String> = meta;
    if let Some((k, v)) = key {
        meta.insert(k.into(), v.into());
    }
    edit(&mut tensors);
    fukai::io::save_safetensors(dst, &tensors, Some(&meta)).unwrap();
}

#[test]
fn tables_with_hostile_labels_and_splits() {
    let dir = scratch("hostile-tables");
    let csv = dir.join("l.csv");
    std::fs::write(&csv, "a,b,label\n1,2,0\n3,4,1\n5,6,1e18\n7,8,0\n").unwrap();
    let cfg = config(&dir, "l", &table_config("l", &csv, &[4], ""));
    // Labels are categories: 1e18 is a class name, never a class count.
    let out = fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&dir.join("r1")),
        "--epochs",
        "1",
    ]);
    assert!(out.contains("1e18"), "{out}");

    // Empty splits: all-test, all-train, a one-row file.
    let data = dir.join("data.csv");
    write_table(&data, 30);
    for (frac, needle) in [
        ("0.999", "training split is empty"),
        ("0.0", "test split is empty"),
    ] {
        let text = table_config("f", &data, &[4], "")
            .replace("test_fraction = 0.25", &format!("test_fraction = {frac}"));
        let cfg = config(&dir, "frac", &text);
        fails(
            &format!("test_fraction {frac}"),
            &["train", "--config", s(&cfg), "--out", s(&dir.join("r2"))],
            &["data.csv", needle],
        );
    }
    let one = dir.join("one.csv");
    std::fs::write(&one, "a,b,label\n1,2,0\n").unwrap();
    let cfg = config(&dir, "one", &table_config("one", &one, &[4], ""));
    fails(
        "one-row CSV",
        &["train", "--config", s(&cfg), "--out", s(&dir.join("r3"))],
        &["one.csv", "split is empty"],
    );

    // Config numbers past their meaning, and zero widths.
    for (from, to, needle) in [
        (
            "hidden = [4]",
            "hidden = [100000000000]",
            "model.hidden[0] = 100000000000",
        ),
        ("hidden = [4]", "hidden = [0]", "model.hidden[0] = 0"),
        ("batch_size = 8", "batch_size = 0", "train.batch_size"),
    ] {
        let text = table_config("big", &data, &[4], "").replace(from, to);
        let cfg = config(&dir, "big", &text);
        fails(
            to,
            &["train", "--config", s(&cfg), "--out", s(&dir.join("r4"))],
            &[needle],
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checkpoints_with_lying_metadata_or_broken_weights() {
    let dir = scratch("hostile-ckpt");
    let data = dir.join("data.csv");
    write_table(&data, 60);
    let cfg = config(&dir, "small", &table_config("small", &data, &[6], ""));
    let run = dir.join("run");
    fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--epochs",
        "1",
        "--out",
        s(&run),
    ]);
    let ckpt = run.join("checkpoint.safetensors");
    let meta = fukai::io::load_safetensors(&ckpt).unwrap().into_parts().1;

    // A model config describing 2 x 4 billion weights: refused before allocating them.
    let huge = dir.join("huge.safetensors");
    assert!(
        meta["model"].contains("\"hidden\":[6]"),
        "{}",
        meta["model"]
    );
    let text = meta["model"].replace("\"hidden\":[6]", "\"hidden\":[65536,65536,65536]");
    rewrite(&ckpt, &huge, Some(("model", &text)), |_| {});
    for cmd in [
        &["eval", "--checkpoint", s(&huge)][..],
        &["predict", "--checkpoint", s(&huge), "1,2,3,4"],
        &["info", s(&huge)],
    ] {
        fails(
            "huge hidden widths",
            cmd,
            &[
                "huge.safetensors",
                "cannot be built from its tensors",
                "allocation limit",
            ],
        );
    }
    let text = meta["model"].replace("\"hidden\":[6]", "\"hidden\":[100000000000]");
    rewrite(&ckpt, &huge, Some(("model", &text)), |_| {});
    fails(
        "width past the limit",
        &["eval", "--checkpoint", s(&huge)],
        &["huge.safetensors", "[100000000000, 4]", "allocation limit"],
    );
    // The run config stored beside it is validated too.
    let text = meta["run"].replace("\"hidden\":[6]", "\"hidden\":[100000000000]");
    rewrite(&ckpt, &huge, Some(("run", &text)), |_| {});
    fails(
        "run config width past the limit",
        &["eval", "--checkpoint", s(&huge)],
        &[
            "huge.safetensors",
            "metadata field \"run\"",
            "model.hidden[0]",
        ],
    );
    // Input shape and normalization that cannot be.
    let bad = dir.join("bad.safetensors");
    rewrite(
        &ckpt,
        &bad,
        Some(("input_shape", "[1000000000000]")),
        |_| {},
    );
    fails(
        "huge input shape",
        &["eval", "--checkpoint", s(&bad)],
        &["bad.safetensors", "[1000000000000]"],
    );
    rewrite(
        &ckpt,
        &bad,
        Some(("norm", r#"{"mean":[],"std":[]}"#)),
        |_| {},
    );
    fails(
        "empty normalization",
        &["eval", "--checkpoint", s(&bad)],
        &["bad.safetensors", "norm"],
    );
    fails(
        "empty normalization",
        &["predict", "--checkpoint", s(&bad), "1,2,3,4"],
        &["norm"],
    );

    // A NaN weight: refused, naming the tensor.
    rewrite(&ckpt, &bad, None, |t| {
        let (_, w) = t
            .iter_mut()
            .find(|(n, w)| n.ends_with("weight") && w.numel() > 1)
            .expect("a weight matrix");
        let mut v = w.to_vec::<f32>().unwrap();
        v[1] = f32::NAN;
        *w = fukai::Tensor::from_vec(v, w.shape()).unwrap();
    });
    fails(
        "NaN weight",
        &["predict", "--checkpoint", s(&bad), "1,2,3,4"],
        &["bad.safetensors", "NaN", "finite"],
    );

    // Non-finite input, a binary file, and a table of the wrong width.
    // "nan" is a missing cell (as in pandas): imputed, and said so; "inf" is no number.
    let out = fukai(&["predict", "--checkpoint", s(&ckpt), "nan,1,2,3"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"feature_1\" is missing: imputed"), "{err}");
    fails(
        "infinite input",
        &["predict", "--checkpoint", s(&ckpt), "inf,1,2,3"],
        &["feature_1", "\"inf\" is not a finite number"],
    );
    let png = dir.join("picture.png");
    image::GrayImage::new(4, 4).save(&png).unwrap();
    fails(
        "PNG to a table model",
        &["predict", "--checkpoint", s(&ckpt), s(&png)],
        &["picture.png", "not a text file"],
    );
    let wide = dir.join("wide.csv");
    let mut text = String::from("a,b,c,d,e,label\n");
    for i in 0..20 {
        text.push_str(&format!("{i},1,2,3,4,{}\n", i % 3));
    }
    std::fs::write(&wide, text).unwrap();
    fails(
        "eval on a wider table",
        &["eval", "--checkpoint", s(&ckpt), "--data", s(&wide)],
        &[
            "wide.csv",
            "this data fits the model",
            "\"input_shape\":[5]",
            "checkpoint.safetensors holds",
            "\"input_shape\":[4]",
        ],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A GPT checkpoint whose config claims far more layers, width or context than its tensors.
#[test]
fn gpt_checkpoint_with_lying_metadata() {
    let dir = scratch("hostile-gpt");
    std::fs::write(dir.join("text.txt"), "the cat sat on the mat. ".repeat(20)).unwrap();
    let cfg = config(
        &dir,
        "gpt",
        r#"name = "tiny-gpt"
[data]
format = "text"
test_fraction = 0.2
eval_windows = 2
[model]
kind = "gpt"
[model.gpt]
layers = 1
heads = 2
width = 16
context = 8
[train]
epochs = 1
steps_per_epoch = 2
batch_size = 4
lr = 0.01
min_lr = 0.001
"#,
    );
    let run = dir.join("run");
    fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--data",
        s(&dir.join("text.txt")),
        "--out",
        s(&run),
    ]);
    let ckpt = run.join("checkpoint.safetensors");
    let meta = fukai::io::load_safetensors(&ckpt).unwrap().into_parts().1;
    let bad = dir.join("bad.safetensors");
    for (from, to, needle) in [
        // Small enough to build: the tensors' names and shapes then disagree.
        ("\"layers\":1", "\"layers\":500", "bad.safetensors"),
        ("\"context\":8", "\"context\":131072", "bad.safetensors"),
        // 12.9 GB of weights per layer: refused before building.
        ("\"width\":16", "\"width\":32768", "allocation limit"),
        ("\"layers\":1", "\"layers\":1000000", "allocation limit"),
    ] {
        assert!(meta["model"].contains(from), "{from} in {}", meta["model"]);
        let text = meta["model"].replace(from, to);
        rewrite(&ckpt, &bad, Some(("model", &text)), |_| {});
        fails(
            to,
            &["generate", "--checkpoint", s(&bad)],
            &["bad.safetensors", needle],
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
