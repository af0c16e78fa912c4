//! Tables as people have them (issue 25): CSV quoting, delimiters, byte-order marks and
//! headers; column typing and its overrides; missing values imputed from training rows only;
//! unseen categories; embeddings; regression with R²; k-fold splits; raw-row prediction.

use fukai::data::{
    parse_csv, read_csv, stratified_folds, Column, ColumnKind, ColumnRef, CsvOptions, Encoding,
    Impute, Schema, TableSpec, Target,
};
use fukai::run::{self, Existing, Prediction, Run, RunConfig};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Runs seed the global generator; tests that train take turns.
static TRAINING: Mutex<()> = Mutex::new(());

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fukai-tables-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn parse(text: &str) -> fukai::data::RawTable {
    parse_csv(text.as_bytes(), "t.csv", &CsvOptions::default()).unwrap()
}

fn by_name(n: &str) -> Option<ColumnRef> {
    Some(ColumnRef::Name(n.into()))
}

/// Every usable row of a layout (`Schema::fit` takes indices into `layout.rows`).
fn all(l: &fukai::data::Layout) -> Vec<usize> {
    (0..l.rows.len()).collect()
}

fn err(r: fukai::Result<impl Sized>) -> String {
    r.err().expect("an error").to_string()
}

#[test]
fn quoting_bom_delimiters_and_blank_lines() {
    let t = parse(
        "\u{feff}name,note,n\n\"Smith, J.\",\"said \"\"hi\"\"\nthen left\",1\n\n  Lee ,x, 2 \n",
    );
    assert_eq!(t.names, ["name", "note", "n"]);
    assert_eq!(t.len(), 2);
    assert_eq!(t.cell(0, 0), "Smith, J.");
    assert_eq!(t.cell(0, 1), "said \"hi\"\nthen left");
    assert_eq!((t.cell(1, 0), t.cell(1, 2)), ("Lee", "2"));
    // The second record starts on line 5: the quoted line break and the blank line count.
    assert_eq!(t.lines, [2, 5]);

    let semi = CsvOptions {
        delimiter: Some(b';'),
        header: None,
    };
    let t = parse_csv("a;b\n1,5;x\n".as_bytes(), "s.csv", &semi).unwrap();
    assert_eq!(t.cell(0, 0), "1,5");

    let dir = scratch("tsv");
    let p = dir.join("t.tsv");
    std::fs::write(&p, "a\tb\n1\tx y\n").unwrap();
    let t = read_csv(&p, &CsvOptions::default()).unwrap();
    assert_eq!((t.names.len(), t.cell(0, 1)), (2, "x y"));
}

#[test]
fn headers_are_inferred_or_given() {
    let t = parse("1,2,0\n3,4,1\n");
    assert_eq!(t.names, ["column_1", "column_2", "column_3"]);
    assert_eq!(t.len(), 2);
    let forced = CsvOptions {
        delimiter: None,
        header: Some(true),
    };
    let t = parse_csv("1,2,0\n3,4,1\n".as_bytes(), "t", &forced).unwrap();
    assert_eq!((t.names[0].as_str(), t.len()), ("1", 1));
    // scikit-learn's layout: the header counts rows and features and names the classes.
    let t = parse("2,2,setosa,virginica\n5.1,3.5,0\n6.2,3.4,1\n");
    assert_eq!(
        t.class_names.as_deref(),
        Some(&["setosa".into(), "virginica".into()][..])
    );
    let layout = TableSpec::default().layout(&t).unwrap();
    assert_eq!(layout.class_names, ["setosa", "virginica"]);
    let e = err(parse_csv(
        "3,2,a,b\n1,2,0\n".as_bytes(),
        "sk.csv",
        &Default::default(),
    ));
    assert!(e.contains("header says 3 samples"), "{e}");
}

#[test]
fn errors_name_the_file_line_and_column() {
    let e = err(parse_csv(
        "a,b,c\n1,2,3\n4,5\n".as_bytes(),
        "t.csv",
        &Default::default(),
    ));
    assert!(e.contains("t.csv: line 3: 2 fields, expected 3"), "{e}");
    // Lines count as a text editor shows them: CRLF endings and blank lines included.
    let e = err(parse_csv(
        "a,b\r\n1,2\r\n\r\n3\r\n".as_bytes(),
        "crlf.csv",
        &Default::default(),
    ));
    assert!(e.contains("crlf.csv: line 4: 1 fields, expected 2"), "{e}");
    let e = err(parse_csv(
        &b"a,b\n1,\xff\xfe\n"[..],
        "bin.csv",
        &Default::default(),
    ));
    assert!(
        e.contains("bin.csv") && e.contains("line 2") && e.contains("UTF-8"),
        "{e}"
    );
    let t = parse("x,y,label\n1,2,a\n3,oops,b\n");
    let spec = TableSpec {
        kinds: vec![(ColumnRef::Name("y".into()), ColumnKind::Numeric)],
        ..TableSpec::default()
    };
    let e = err(spec.layout(&t));
    assert!(
        e.contains("t.csv: line 3, column 2 (\"y\"): \"oops\" is not a finite number"),
        "{e}"
    );
    let e = err(TableSpec {
        label: by_name("nope"),
        ..TableSpec::default()
    }
    .layout(&t));
    assert!(
        e.contains("no column \"nope\"") && e.contains("\"label\""),
        "{e}"
    );
    let e = err(TableSpec {
        label: Some(ColumnRef::Index(7)),
        ..TableSpec::default()
    }
    .layout(&t));
    assert!(e.contains("at index 7"), "{e}");
    let reg = TableSpec {
        regression: true,
        ..TableSpec::default()
    };
    let e = err(reg.layout(&t));
    assert!(
        e.contains("line 2, column 3") && e.contains("regression label"),
        "{e}"
    );
    let e = err(TableSpec::default().layout(&parse("only\n1\n")));
    assert!(e.contains("at least one feature and a label"), "{e}");
}

#[test]
fn column_kinds_are_inferred_and_overridable() {
    let mut text = String::from("id,size,colour,code,note,label\n");
    for i in 0..60 {
        text += &format!(
            "{i},{}.5,{},{},free text {i},{}\n",
            i % 7,
            ["red", "blue"][i % 2],
            i % 3,
            i % 2
        );
    }
    let t = parse(&text);
    let l = TableSpec::default().layout(&t).unwrap();
    use ColumnKind::*;
    // Numbers are numeric; a few strings categorical; 60 distinct strings are free text.
    assert_eq!(
        l.kinds,
        [Numeric, Numeric, Categorical, Numeric, Ignored, Ignored]
    );
    assert!(
        l.notes
            .iter()
            .any(|n| n.contains("\"note\"") && n.contains("ignored")),
        "{:?}",
        l.notes
    );
    let spec = TableSpec {
        features: Some(vec![ColumnRef::Name("size".into()), ColumnRef::Index(3)]),
        kinds: vec![(ColumnRef::Name("code".into()), Categorical)],
        ..TableSpec::default()
    };
    let l = spec.layout(&t).unwrap();
    assert_eq!(
        l.kinds,
        [Ignored, Numeric, Ignored, Categorical, Ignored, Ignored]
    );
    let schema = Schema::fit(&spec, &t, &l, &all(&l)).unwrap();
    // size, then code one-hot over its three values.
    assert_eq!(schema.width(), 1 + 3);
    assert_eq!(schema.used().count(), 2);
}

#[test]
fn imputation_statistics_come_from_the_training_rows_only() {
    let t = parse("a,s,label\n1,x,p\n3,NA,q\nNA,y,p\n100,x,q\n");
    let spec = TableSpec::default();
    let l = spec.layout(&t).unwrap();
    let train = [0, 1, 2];
    let schema = Schema::fit(&spec, &t, &l, &train).unwrap();
    let Column::Numeric {
        fill, mean, std, ..
    } = &schema.columns[0]
    else {
        panic!("numeric")
    };
    // Rows 0-2 only: the 100 of the held-out row leaves no trace.
    assert_eq!((*fill, *mean), (2.0, 2.0));
    assert_eq!(*std, 1.0);
    let Column::Categorical { categories, .. } = &schema.columns[1] else {
        panic!("categorical")
    };
    assert_eq!(categories, &["<missing>", "x", "y"]);
    // Row 2: a imputed to the mean (standardized 0), s = y.
    assert_eq!(schema.encode_rows(&t, &[2]).unwrap(), [0.0, 0.0, 0.0, 1.0]);

    let median = TableSpec {
        impute: Impute::Median,
        standardize: false,
        ..TableSpec::default()
    };
    let s = Schema::fit(&median, &t, &l, &[0, 1, 2, 3]).unwrap();
    assert!(matches!(s.columns[0], Column::Numeric { fill, .. } if fill == 3.0));

    let drop = TableSpec {
        impute: Impute::Drop,
        ..TableSpec::default()
    };
    let l = drop.layout(&t).unwrap();
    assert_eq!(l.rows, [0, 3]);
    assert!(l
        .notes
        .iter()
        .any(|n| n.contains("2 rows with missing features dropped")));
    // A row without a label is never used.
    let l = TableSpec::default()
        .layout(&parse("a,label\n1,p\n2,NA\n3,\n"))
        .unwrap();
    assert_eq!(l.rows, [0]);
    // Training rows are indices into the usable rows, not the file's: usable row 1 is line 4.
    let t = parse("a,label\n1,p\nNA,NA\n3,q\n");
    let l = TableSpec::default().layout(&t).unwrap();
    assert_eq!(l.rows, [0, 2]);
    let s = Schema::fit(&TableSpec::default(), &t, &l, &[1]).unwrap();
    assert!(matches!(s.columns[0], Column::Numeric { fill, .. } if fill == 3.0));
    let e = err(Schema::fit(&TableSpec::default(), &t, &l, &[2]));
    assert!(
        e.contains("training row 2 is outside the 2 usable rows"),
        "{e}"
    );
}

#[test]
fn unseen_categories_are_unknown_with_a_warning() {
    let t = parse("island,mass,label\nDream,1,a\nBiscoe,2,b\n");
    for enc in [Encoding::Onehot, Encoding::Embedding] {
        let spec = TableSpec {
            encoding: enc,
            ..TableSpec::default()
        };
        let l = spec.layout(&t).unwrap();
        let schema = Schema::fit(&spec, &t, &l, &all(&l)).unwrap();
        let (x, notes) = run::encode_input(&schema, "Atlantis,1.5").unwrap();
        assert!(
            notes[0].contains("\"Atlantis\" was not seen in training"),
            "{notes:?}"
        );
        match enc {
            Encoding::Onehot => assert_eq!(x, [0.0, 0.0, 0.0]),
            Encoding::Embedding => {
                assert_eq!(x, [0.0, 0.0]);
                assert_eq!(schema.embedding_sizes(), [3]);
            }
        }
        let (x, notes) = run::encode_input(&schema, r#"{"island": "Dream", "mass": 2}"#).unwrap();
        assert!(notes.is_empty());
        assert_eq!(x[0], 1.0);
        // The schema travels as JSON and comes back the same.
        let back: Schema = serde_json::from_str(&serde_json::to_string(&schema).unwrap()).unwrap();
        assert_eq!(back, schema);
        back.validate().unwrap();
    }
}

#[test]
fn hostile_schemas_and_inputs_are_refused() {
    let t = parse("c,n,label\nx,1,a\ny,2,b\n");
    let spec = TableSpec::default();
    let l = spec.layout(&t).unwrap();
    let schema = Schema::fit(&spec, &t, &l, &all(&l)).unwrap();
    let mut bad = schema.clone();
    bad.columns[1] = Column::Numeric {
        name: "n".into(),
        fill: 0.0,
        mean: 0.0,
        std: 0.0,
    };
    assert!(err(bad.validate()).contains("std"));
    let mut bad = schema.clone();
    bad.target = Target::Classes { names: vec![] };
    assert!(err(bad.validate()).contains("no class names"));
    let e = err(run::encode_input(&schema, "x"));
    assert!(
        e.contains("the row has 1 values; the model reads 2 (c, n)"),
        "{e}"
    );
    let e = err(run::encode_input(&schema, "x,abc"));
    assert!(e.contains("\"n\": \"abc\" is not a finite number"), "{e}");
    let e = err(run::encode_input(&schema, r#"{"c": "x", "m": 1}"#));
    assert!(e.contains("column \"m\" the model does not have"), "{e}");
    let e = err(run::encode_input(&schema, "{not json"));
    assert!(e.contains("not a JSON object"), "{e}");
}

#[test]
fn stratified_folds_cover_every_row_once_and_keep_the_balance() {
    let labels: Vec<i64> = (0..103).map(|i| (i % 3 == 0) as i64).collect();
    let folds = stratified_folds(&labels, 5, 11).unwrap();
    for f in 0..5 {
        let rows: Vec<usize> = (0..103).filter(|&i| folds[i] == f).collect();
        assert!((20..=21).contains(&rows.len()), "fold {f}: {}", rows.len());
        let ones = rows.iter().filter(|&&i| labels[i] == 1).count();
        assert!((6..=8).contains(&ones), "fold {f}: {ones} of class 1");
    }
    assert!(err(stratified_folds(&labels, 1, 0)).contains("k must lie in 2..=103"));
}

/// A table with a string category, a number with missing cells and a class or value target.
fn write_table(path: &Path, regression: bool) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut text = String::from("\"site, region\",x,z,target\n");
    for i in 0..240 {
        let site = ["north", "south", "east"][i % 3];
        let x = rnd() * 4.0 - 2.0;
        let z = rnd() * 2.0 - 1.0;
        let shift = [1.0, -1.0, 0.0][i % 3];
        let target = if regression {
            format!("{:.4}", 10.0 + 3.0 * x + 5.0 * shift + 0.3 * rnd())
        } else {
            ["low", "high"][(x + shift > 0.0) as usize].to_string()
        };
        let xs = if i % 17 == 0 {
            "NA".into()
        } else {
            format!("{x:.4}")
        };
        text += &format!("\"{site}, {}\",{xs},{z:.4},{target}\n", i % 2);
    }
    std::fs::write(path, text).unwrap();
}

fn config(name: &str, extra_data: &str, extra_model: &str) -> RunConfig {
    let toml = format!(
        "{{\"name\": \"{name}\", \"data\": {{\"format\": \"table\", \"standardize\": true, \"label\": \"target\"{extra_data}}},
          \"model\": {{\"kind\": \"mlp\", \"hidden\": [16]{extra_model}}},
          \"train\": {{\"epochs\": 40, \"batch_size\": 16, \"lr\": 0.01}}}}"
    );
    serde_json::from_str(&toml).unwrap()
}

#[test]
fn regression_reports_rmse_and_r2_beside_the_mean_and_a_linear_baseline() {
    let _g = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("regression");
    let data = dir.join("t.csv");
    write_table(&data, true);
    let cfg = config("reg", ", \"task\": \"regression\"", "");
    let run = Run::prepare(&cfg, &data, &dir.join("run"), Existing::Refuse).unwrap();
    let o = run.train(None, false).unwrap();
    let test = o.test.unwrap();
    let (rmse, naive, r2) = (
        test.rmse().unwrap(),
        test.baseline_rmse().unwrap(),
        test.r2().unwrap(),
    );
    assert!(
        r2 > 0.9 && rmse < 0.4 * naive,
        "rmse {rmse} naive {naive} r2 {r2}"
    );
    let (name, base) = o.baseline.unwrap();
    assert_eq!(name, "linear regression");
    // The target is linear in the inputs: linear regression fits it too.
    assert!(base.r2().unwrap() > 0.9, "{}", base.describe());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/summary.json")).unwrap())
            .unwrap();
    assert!(
        summary["baseline"]["r2"].as_f64().unwrap() > 0.9,
        "{summary}"
    );

    // Predict in the target's units from a raw row, the region string quoted.
    let t = run::load_trained(&dir.join("run/checkpoint.safetensors")).unwrap();
    let p = run::predict(&t, "\"north, 1\",1.0,0.0").unwrap();
    let Prediction::Value { column, value, .. } = &p[0] else {
        panic!("{p:?}")
    };
    assert_eq!(column, "target");
    assert!((value - 18.0).abs() < 1.5, "{value}");
}

#[test]
fn classification_with_embeddings_trains_and_predicts_raw_rows() {
    let _g = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("embedding");
    let data = dir.join("t.csv");
    write_table(&data, false);
    let cfg = config(
        "emb",
        "",
        ", \"categorical\": \"embedding\", \"embedding_dim\": 3",
    );
    let run = Run::prepare(&cfg, &data, &dir.join("run"), Existing::Refuse).unwrap();
    let fukai::models::ModelConfig::Mlp(m) = &run.data.model else {
        panic!("an mlp")
    };
    // x and z, then one index into a table of the 6 site strings + unknown.
    assert_eq!(
        (m.input_shape.clone(), m.embeddings.clone()),
        (vec![3], vec![[7, 3]])
    );
    let o = run.train(None, false).unwrap();
    let acc = o.test.unwrap().accuracy().unwrap();
    assert!(acc > 0.9, "{acc}");
    let t = run::load_trained(&dir.join("run/checkpoint.safetensors")).unwrap();
    for (row, want) in [
        ("\"north, 0\",0.5,0", "high"),
        ("\"south, 1\",0.5,0", "low"),
    ] {
        let p = run::predict(&t, row).unwrap();
        let Prediction::Classes { probs, .. } = &p[0] else {
            panic!("{p:?}")
        };
        let best = (0..probs.len())
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap();
        assert_eq!(t.classes[best], want, "{row}: {probs:?}");
    }
    // A CSV file of rows, the label column there or not, columns matched by name.
    let rows = dir.join("rows.csv");
    std::fs::write(
        &rows,
        "x,\"site, region\",z\n0.5,\"north, 0\",0\n0.5,\"mars, 0\",0\n",
    )
    .unwrap();
    let p = run::predict(&t, rows.to_str().unwrap()).unwrap();
    assert_eq!(p.len(), 2);
    let Prediction::Classes { notes, .. } = &p[1] else {
        panic!()
    };
    assert!(notes[0].contains("\"mars, 0\" was not seen"), "{notes:?}");
}

#[test]
fn cross_validation_trains_every_fold_and_writes_the_summary() {
    let _g = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("cv");
    let data = dir.join("t.csv");
    write_table(&data, false);
    let mut cfg = config("cv", "", "");
    cfg.train.epochs = 15;
    let mut seen = 0;
    let out = dir.join("cv");
    let run_cv =
        run::cross_validate(&cfg, &data, &out, 3, Existing::Refuse, false, |_| seen += 1).unwrap();
    assert_eq!((run_cv.folds.len(), seen), (3, 3));
    let tested: usize = run_cv.folds.iter().map(|f| f.test.count).sum();
    assert_eq!(tested, 240, "each row is tested exactly once");
    // The summary is the folds' own numbers.
    let accs: Vec<f64> = run_cv
        .folds
        .iter()
        .map(|f| f.test.accuracy().unwrap())
        .collect();
    assert_eq!(run_cv.model[0].metric, "accuracy");
    assert_eq!(run_cv.model[0].folds, accs);
    assert_eq!(run_cv.model[0].mean, accs.iter().sum::<f64>() / 3.0);
    let cv: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cv.json")).unwrap()).unwrap();
    assert_eq!(
        cv["model"]["accuracy"]["folds"].as_array().unwrap().len(),
        3
    );
    assert!(
        cv["model"]["accuracy"]["mean"].as_f64().unwrap() > 0.85,
        "{cv}"
    );
    assert_eq!(cv["baseline"]["model"], "logistic regression");
    // Never overwritten unasked.
    let e = err(run::cross_validate(
        &cfg,
        &data,
        &out,
        3,
        Existing::Refuse,
        false,
        |_| {},
    ));
    assert!(e.contains("already holds"), "{e}");
}

#[test]
#[ignore = "needs FUKAI_ASSETS (tabular/penguins-raw.csv)"]
fn penguins_raw_loads_with_a_named_label_and_chosen_columns() {
    let _g = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let Some(assets) = fukai::testing::assets("tabular/penguins-raw.csv") else {
        return;
    };
    let path = assets.join("tabular/penguins-raw.csv");
    let raw = read_csv(&path, &CsvOptions::default()).unwrap();
    assert_eq!((raw.len(), raw.names.len()), (344, 17));
    // "Adult, 1 Egg Stage" is one quoted field.
    assert_eq!(raw.cell(0, 5), "Adult, 1 Egg Stage");
    let dir = scratch("penguins-raw");
    let cfg: RunConfig = serde_json::from_str(
        r#"{"name": "penguins-raw", "data": {"format": "table", "label": "Species", "standardize": true,
            "features": ["Island", "Culmen Length (mm)", "Culmen Depth (mm)", "Flipper Length (mm)", "Sex"]},
           "model": {"kind": "mlp", "hidden": [32]},
           "train": {"epochs": 40, "batch_size": 16, "lr": 0.005}}"#,
    )
    .unwrap();
    let run = Run::prepare(&cfg, &path, &dir.join("run"), Existing::Refuse).unwrap();
    assert_eq!(run.data.class_names.len(), 3);
    assert!(run.data.class_names[0].starts_with("Adelie Penguin"));
    let acc = run
        .train(None, false)
        .unwrap()
        .test
        .unwrap()
        .accuracy()
        .unwrap();
    assert!(acc >= 0.95, "{acc}");
}
