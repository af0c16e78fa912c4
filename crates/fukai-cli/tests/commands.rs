//! The commands around a run: `fukai presets` lists every preset and `presets show NAME` prints
//! a config that parses back and trains; `eval --json`, `predict` (text and `--json`, many
//! inputs) and `info` on a trained table model; a run trained from relative paths is evaluated
//! and resumed from another working directory.

mod common;

use common::{fukai, fukai_ok, s, scratch, table_config, write_table};
use std::process::Command;

const PRESETS: &[&str] = &[
    "mnist-cnn",
    "fashion-mlp",
    "fashion-cnn",
    "iris-mlp",
    "wine-mlp",
    "breast-cancer-mlp",
    "penguins-mlp",
    "penguins-mass",
    "vowels-lstm",
    "sunspots-lstm",
    "spoken-digits",
    "shakespeare-gpt",
    "fashion-ae",
    "fashion-vae",
    "moving-mnist-convlstm",
    "moving-mnist-conv3d",
];

#[test]
fn presets_list_and_show_parse_back() {
    let list = fukai_ok(&["presets"]);
    let listed: Vec<&str> = list
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, PRESETS, "{list}");
    assert!(list.contains("fukai presets show NAME"), "{list}");

    let dir = scratch("presets");
    let nowhere = dir.join("no-such-data");
    for name in PRESETS {
        let text = fukai_ok(&["presets", "show", name]);
        assert!(text.contains(&format!("name = \"{name}\"")), "{text}");
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, &text).unwrap();
        // The file parses and validates: the run gets as far as the (missing) data.
        let out = fukai(&[
            "train",
            "--config",
            s(&cfg),
            "--data",
            s(&nowhere),
            "--out",
            s(&dir.join("run")),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("no-such-data"),
            "presets show {name} did not parse back:\n{stderr}"
        );
    }
    // One shown preset, as a file, trains on data of its format.
    let data = dir.join("flowers.csv");
    write_table(&data, 60);
    let run = dir.join("iris-run");
    fukai_ok(&[
        "train",
        "--config",
        s(&dir.join("iris-mlp.toml")),
        "--data",
        s(&data),
        "--epochs",
        "2",
        "--out",
        s(&run),
    ]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["name"], "iris-mlp", "{summary}");
    assert_eq!(summary["epochs"], 2, "{summary}");
    assert!(summary["test_accuracy"].as_f64().is_some(), "{summary}");

    let out = fukai(&["presets", "show", "iris-mpl"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("iris-mpl") && stderr.contains("iris-mlp"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_predict_and_info_on_a_table_model() {
    let dir = scratch("commands");
    let data = dir.join("data.csv");
    write_table(&data, 90);
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, table_config("cmds", &data, &[6], "")).unwrap();
    let run = dir.join("run");
    fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--epochs",
        "20",
        "--out",
        s(&run),
    ]);
    let ckpt = run.join("checkpoint.safetensors");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    for key in [
        "task",
        "test_loss",
        "test_accuracy",
        "confusion",
        "val_loss",
        "best_epoch",
        "epochs",
        "steps",
        "stop",
        "train_seconds",
        "samples_per_second",
        "parameters",
        "threads",
        "name",
        "data",
        "checkpoint",
        "config",
    ] {
        assert!(
            !summary[key].is_null(),
            "summary.json lacks {key}: {summary}"
        );
    }
    for f in ["best.safetensors", "metrics.jsonl", "curves.png"] {
        assert!(run.join(f).exists(), "{f}");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    for line in metrics.lines() {
        let m: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in [
            "epoch",
            "step",
            "train_loss",
            "train_accuracy",
            "val_loss",
            "val_metric",
            "lr",
            "seconds",
            "samples_per_second",
        ] {
            assert!(!m[key].is_null(), "metrics line lacks {key}: {line}");
        }
    }

    // eval --json: the test set as in the summary, the confusion matrix summing to its size.
    let ev: serde_json::Value =
        serde_json::from_str(&fukai_ok(&["eval", "--checkpoint", s(&ckpt), "--json"])).unwrap();
    let test = &ev["test"];
    assert_eq!(test["loss"], summary["test_loss"], "{ev}");
    assert_eq!(test["accuracy"], summary["test_accuracy"], "{ev}");
    assert_eq!(test["confusion"], summary["confusion"], "{ev}");
    let n: u64 = test["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(test["samples"].as_u64(), Some(n), "{ev}");
    assert_eq!(n, 24, "a quarter of 90 rows, rounded up per class: {ev}");
    // eval on other data of the same shape.
    let other = dir.join("other.csv");
    write_table(&other, 30);
    let text = fukai_ok(&["eval", "--checkpoint", s(&ckpt), "--data", s(&other)]);
    assert!(text.contains("test loss"), "{text}");

    // predict: a CSV row, a file, a folder and - (paths on stdin); one line each.
    let row = dir.join("row.csv");
    std::fs::write(&row, "1.2,2.4,3.6,4.8\n").unwrap();
    let folder = dir.join("rows");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.csv"), "0.0,0.0,0.0,0.0\n").unwrap();
    std::fs::write(folder.join("b.csv"), "0.6,1.2,1.8,2.4\n").unwrap();
    let stdout = fukai_ok(&[
        "predict",
        "--checkpoint",
        s(&ckpt),
        "0.0,0.0,0.0,0.0",
        s(&row),
        s(&folder),
    ]);
    let lines: Vec<&str> = stdout.lines().collect();
    let inputs = [
        "0.0,0.0,0.0,0.0".to_string(),
        s(&row).to_string(),
        s(&folder.join("a.csv")).to_string(),
        s(&folder.join("b.csv")).to_string(),
    ];
    assert_eq!(lines.len(), 4, "{stdout}");
    for (l, input) in lines.iter().zip(&inputs) {
        let rest = l
            .strip_prefix(&format!("{input}: "))
            .unwrap_or_else(|| panic!("{l}"));
        let (class, top) = rest.split_once("  [").unwrap();
        assert!(["alpha", "beta", "gamma"].contains(&class), "{l}");
        assert!(top.starts_with(&format!("{class} ")), "{l}");
        assert_eq!(top.matches('%').count(), 3, "default --top-k 3: {l}");
    }
    // The class means: 0.6 * class * feature number.
    for (l, class) in lines.iter().zip(["alpha", "gamma", "alpha", "beta"]) {
        assert!(l.contains(&format!(": {class}  [")), "{class}: {stdout}");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_fukai"))
        .args(["predict", "--checkpoint", s(&ckpt), "--json", "-"])
        .env_remove("FUKAI_ASSETS")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}\n\n{}", s(&row), s(&folder.join("a.csv"))).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["input"], s(&row));
    assert_eq!(rows[0]["prediction"], "gamma");
    let top = rows[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert_eq!(top[0]["class"], "gamma");
    let p: Vec<f64> = top
        .iter()
        .map(|t| t["probability"].as_f64().unwrap())
        .collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]), "{p:?}");
    assert!(
        (p.iter().sum::<f64>() - 1.0).abs() < 1e-4,
        "3 classes: {p:?}"
    );

    // info: kind, parameter count (4*6 + 6 + 6*3 + 3), classes, progress.
    let info = fukai_ok(&["info", s(&ckpt)]);
    assert!(info.contains("kind:       mlp\n"), "{info}");
    assert!(info.contains("parameters: 51\n"), "{info}");
    assert!(info.contains("classes:    alpha, beta, gamma"), "{info}");
    assert!(info.contains("progress:   step "), "{info}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn relative_paths_work_from_elsewhere() {
    let dir = scratch("relative");
    write_table(&dir.join("data.csv"), 60);
    let text = table_config("rel", std::path::Path::new("data.csv"), &[6], "");
    std::fs::write(dir.join("run.toml"), text).unwrap();
    let run = |cwd: &std::path::Path, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_fukai"))
            .args(args)
            .current_dir(cwd)
            .env_remove("FUKAI_ASSETS")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fukai {args:?} in {}:\n{}",
            cwd.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(
        &dir,
        &[
            "train", "--config", "run.toml", "--steps", "3", "--out", "r",
        ],
    );
    let elsewhere = std::env::temp_dir();
    let r = dir.join("r");
    let out = run(&elsewhere, &["train", "--resume", s(&r)]);
    assert!(out.contains("resuming at epoch 1"), "{out}");
    run(
        &elsewhere,
        &["eval", "--checkpoint", s(&r.join("checkpoint.safetensors"))],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A config's relative data path is found next to the config file first, then under
/// `$FUKAI_ASSETS`, whatever the working directory.
#[test]
fn config_paths_resolve_against_the_config_folder_then_assets() {
    let dir = scratch("config-relative");
    let sub = dir.join("project");
    std::fs::create_dir_all(&sub).unwrap();
    write_table(&sub.join("data.csv"), 60);
    let cfg = sub.join("run.toml");
    std::fs::write(
        &cfg,
        table_config("cfgrel", std::path::Path::new("data.csv"), &[6], ""),
    )
    .unwrap();
    let go = |args: &[&str], assets: Option<&std::path::Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fukai"));
        c.args(args)
            .current_dir(std::env::temp_dir())
            .env_remove("FUKAI_ASSETS");
        if let Some(a) = assets {
            c.env("FUKAI_ASSETS", a);
        }
        c.output().unwrap()
    };
    let out = go(
        &[
            "train",
            "--config",
            s(&cfg),
            "--steps",
            "2",
            "--out",
            s(&dir.join("a")),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not next to the config: the assets folder is next.
    let assets = dir.join("assets");
    std::fs::create_dir_all(&assets).unwrap();
    std::fs::rename(sub.join("data.csv"), assets.join("data.csv")).unwrap();
    let out = go(
        &[
            "train",
            "--config",
            s(&cfg),
            "--steps",
            "2",
            "--out",
            s(&dir.join("b")),
        ],
        Some(&assets),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // In neither place: an error naming the path.
    let out = go(
        &[
            "train",
            "--config",
            s(&cfg),
            "--steps",
            "2",
            "--out",
            s(&dir.join("c")),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("data.csv"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `predict` on an image says how it was preprocessed, and warns when its polarity is the
/// opposite of the training images' (a dark digit on white, for a model of light-on-dark MNIST).
#[test]
fn predict_names_preprocessing_and_warns_on_inverted_images() {
    let dir = scratch("polarity");
    let cfg = dir.join("cnn.toml");
    let shipped =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist_5k.csv.gz");
    std::fs::write(
        &cfg,
        format!(
            "name = \"p\"\n[data]\nformat = \"mnist-csv\"\npath = \"{}\"\n[model]\nkind = \"cnn\"\nchannels = [4]\nhidden = [8]\n[train]\nepochs = 1\nbatch_size = 64\nlr = 0.002\n",
            shipped.display()
        ),
    )
    .unwrap();
    let run = dir.join("run");
    fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&run),
        "--steps",
        "5",
    ]);
    // A 56x56 colour image, dark strokes on white.
    let img = image::RgbImage::from_fn(56, 56, |x, y| {
        let stroke = (20..36).contains(&x) && (8..48).contains(&y);
        if stroke {
            image::Rgb([10, 10, 10])
        } else {
            image::Rgb([250, 250, 250])
        }
    });
    let png = dir.join("dark-on-light.png");
    img.save(&png).unwrap();
    let ckpt = run.join("checkpoint.safetensors");
    let out = fukai(&["predict", "--checkpoint", s(&ckpt), s(&png)]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("resized 56x56 to 28x28") && err.contains("converted colour to grey"),
        "{err}"
    );
    assert!(
        err.contains("warning: the image is mostly light but the training images were mostly dark"),
        "{err}"
    );
    let json = fukai_ok(&["predict", "--checkpoint", s(&ckpt), s(&png), "--json"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["preprocessing"].as_array().unwrap().len(), 3, "{v}");
    std::fs::remove_dir_all(&dir).unwrap();
}
