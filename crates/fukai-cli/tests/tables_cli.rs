//! `fukai train` / `predict` on tables as people have them (issue 25): strings, missing cells,
//! named labels, regression, cross-validation, and raw rows at prediction time.

mod common;

use common::{fukai, fukai_ok, s, scratch};
use std::path::Path;

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let data = dir.join("shop.csv");
    let mut text = String::from("store,visits,\"spend, eur\",segment\n");
    for i in 0..150 {
        let store = ["Berlin", "Paris", "Rome"][i % 3];
        let visits = if i % 11 == 0 {
            "NA".to_string()
        } else {
            format!("{}", (i * 7) % 20)
        };
        let spend = (i * 13) % 50;
        let segment = if ((i * 13) % 50) as i64 + [10, 0, -10][i % 3] > 25 {
            "big"
        } else {
            "small"
        };
        text += &format!("{store},{visits},{spend},{segment}\n");
    }
    std::fs::write(&data, text).unwrap();
    let cfg = dir.join("shop.toml");
    let label = if extra.starts_with("label") {
        ""
    } else {
        "label = \"segment\"\n"
    };
    std::fs::write(
        &cfg,
        format!(
            "name = \"shop\"\n[data]\nformat = \"table\"\npath = \"shop.csv\"\n{label}standardize = true\n{extra}[model]\nkind = \"mlp\"\nhidden = [16]\n[train]\nepochs = 40\nbatch_size = 16\nlr = 0.01\n"
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn a_table_with_strings_trains_predicts_raw_rows_and_cross_validates() {
    let dir = scratch("tables-shop");
    let cfg = write_config(&dir, "");
    let run = dir.join("run");
    let out = fukai_ok(&["train", "--config", s(&cfg), "--out", s(&run)]);
    assert!(out.contains("logistic regression"), "{out}");
    assert!(out.contains("test loss"), "{out}");
    let ckpt = run.join("checkpoint.safetensors");
    let p = fukai_ok(&["predict", "--checkpoint", s(&ckpt), "Paris,3,40"]);
    assert!(p.contains("Paris,3,40: big"), "{p}");
    let p = fukai_ok(&[
        "predict",
        "--checkpoint",
        s(&ckpt),
        "--json",
        r#"{"store": "Rome", "spend, eur": 5}"#,
    ]);
    assert!(p.contains("\"prediction\":\"small\""), "{p}");
    // An unseen store is predicted with a warning; a bad number is an error naming the column.
    let o = fukai(&["predict", "--checkpoint", s(&ckpt), "Madrid,3,40"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"Madrid\" was not seen in training"));
    let o = fukai(&["predict", "--checkpoint", s(&ckpt), "Paris,many,40"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("\"visits\": \"many\" is not a finite number"),
        "{e}"
    );

    let cv = dir.join("cv");
    let out = fukai_ok(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&cv),
        "--cv",
        "3",
        "--epochs",
        "10",
    ]);
    assert!(
        out.contains("fold 3/3") && out.contains("3-fold cross-validation"),
        "{out}"
    );
    assert!(out.contains('±') && cv.join("cv.json").is_file(), "{out}");
    let o = fukai(&["train", "--config", s(&cfg), "--out", s(&cv), "--cv", "1"]);
    assert!(!o.status.success());
}

#[test]
fn table_config_mistakes_are_errors_that_name_the_field() {
    let dir = scratch("tables-bad");
    for (extra, want) in [
        ("task = \"clustering\"\n", "data.task must be"),
        (
            "delimiter = \";;\"\n",
            "data.delimiter must be one ASCII character",
        ),
        ("max_categories = 0\n", "data.max_categories = 0 is outside"),
        ("impute = \"mode\"\n", "unknown variant `mode`"),
        ("label = \"nope\"\n", "no column \"nope\""),
        (
            "numeric = [\"store\"]\n",
            "\"Berlin\" is not a finite number",
        ),
    ] {
        let cfg = write_config(&dir, extra);
        let o = fukai(&["train", "--config", s(&cfg), "--out", s(&dir.join("run"))]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(want), "{extra}: {e}");
        assert!(!dir.join("run/checkpoint.safetensors").exists());
    }
}

#[test]
#[ignore = "needs FUKAI_ASSETS (tabular/penguins.csv)"]
fn penguin_presets_meet_their_goals() {
    let Some(assets) = fukai::testing::assets("tabular/penguins.csv") else {
        return;
    };
    let data = assets.join("tabular/penguins.csv");
    let dir = scratch("tables-penguins");
    let cv = dir.join("cv");
    let out = fukai_ok(&[
        "train",
        "--preset",
        "penguins-mlp",
        "--data",
        s(&data),
        "--out",
        s(&cv),
        "--cv",
        "5",
    ]);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cv.join("cv.json")).unwrap()).unwrap();
    let acc = doc["model"]["accuracy"]["mean"].as_f64().unwrap();
    assert!(acc >= 0.97, "5-fold mean accuracy {acc}:\n{out}");
    assert!(doc["baseline"]["accuracy"]["mean"].as_f64().is_some());

    let mass = dir.join("mass");
    let out = fukai_ok(&[
        "train",
        "--preset",
        "penguins-mass",
        "--data",
        s(&data),
        "--out",
        s(&mass),
    ]);
    let sum: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(mass.join("summary.json")).unwrap()).unwrap();
    let r2 = sum["test_r2"].as_f64().unwrap();
    assert!(r2 >= 0.8, "R² {r2}:\n{out}");
    assert!(sum["test_rmse"].as_f64().unwrap() < sum["naive_rmse"].as_f64().unwrap());
    assert_eq!(sum["baseline"]["model"], "linear regression");
    let p = fukai_ok(&[
        "predict",
        "--checkpoint",
        s(&mass.join("checkpoint.safetensors")),
        "Gentoo,Biscoe,50,15,220,male,2008",
    ]);
    let grams: f64 = p.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!((4500.0..6500.0).contains(&grams), "{p}");
}
