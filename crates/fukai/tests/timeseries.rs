//! Time-series data: the `.ts` reader (valid files, ragged rows and malformed headers/values as
//! errors naming file and line), padded sequence batches, and CSV forecasting windows whose
//! normalization sees the training rows only.

use fukai::data::{read_series_csv, read_ts, Windows};
use std::path::PathBuf;

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fukai_ts_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const HEADER: &str = "# comment\n@problemName toy\n@timeStamps false\n@missing false\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true a b\n@data\n";

#[test]
fn reads_variable_length_multivariate_ts() {
    let p = write("ok.ts", &format!("{HEADER}1,2,3:4,5,6:b\n7,8:9,10:a\n"));
    let s = read_ts(&p).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s.dims, 2);
    assert_eq!(s.lengths, vec![3, 2]);
    assert_eq!(s.labels, vec![1, 0]);
    // Time-major: step 0 is (1, 4).
    assert_eq!(s.series[0], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    let (x, lengths, y) = s.batch(&[1, 0]).unwrap();
    assert_eq!(x.shape(), &[2, 3, 2]);
    assert_eq!(lengths, vec![2, 3]);
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![0, 1]);
    assert_eq!(
        x.to_vec::<f32>().unwrap(),
        vec![7.0, 9.0, 8.0, 10.0, 0.0, 0.0, 1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
    );
}

fn err_of(name: &str, text: &str) -> String {
    let p = write(name, text);
    read_ts(&p).unwrap_err().to_string()
}

#[test]
fn bad_ts_files_name_file_and_line() {
    let cases = [
        (
            "ragged.ts",
            format!("{HEADER}1,2,3:4,5,6:b\n1,2,3:4,5:a\n"),
            "line 11",
            "ragged row",
        ),
        (
            "dims.ts",
            format!("{HEADER}1,2,3:b\n"),
            "line 10",
            "1 dimensions, expected 2",
        ),
        (
            "label.ts",
            format!("{HEADER}1:2:c\n"),
            "line 10",
            "class label \"c\"",
        ),
        (
            "value.ts",
            format!("{HEADER}1,x:2,3:a\n"),
            "line 10",
            "(\"x\") is not a finite number",
        ),
        (
            "missing.ts",
            format!("{HEADER}1,?:2,3:a\n"),
            "line 10",
            "@missing false",
        ),
        (
            "tag.ts",
            "@problemName t\n@bogus 3\n@data\n".to_string(),
            "line 2",
            "unknown header",
        ),
        (
            "dimval.ts",
            "@dimensions many\n".to_string(),
            "line 1",
            "positive integer",
        ),
        (
            "bool.ts",
            "@missing maybe\n".to_string(),
            "line 1",
            "true or false",
        ),
        (
            "nolabel.ts",
            "@dimensions 1\n@data\n1,2\n".to_string(),
            "line 2",
            "@classLabel",
        ),
        (
            "nodata.ts",
            "@classLabel true a\n".to_string(),
            "",
            "no @data",
        ),
        ("before.ts", "1,2:a\n".to_string(), "line 1", "before @data"),
    ];
    for (name, text, line, what) in cases {
        let e = err_of(name, &text);
        assert!(e.contains(name), "{name}: {e}");
        assert!(e.contains(line), "{name}: {e}");
        assert!(e.contains(what), "{name}: {e}");
    }
}

#[test]
fn windows_fit_normalization_on_train_only() {
    let mut csv = String::from("\"YEAR\",\"V\"\n");
    for r in 0..20 {
        // Train rows 0..10 are 0..9; test rows jump to 100+.
        let v = if r < 10 { r as f32 } else { 100.0 + r as f32 };
        csv.push_str(&format!("{},{v}\n", 1900 + r));
    }
    let p = write("series.csv", &csv);
    let s = read_series_csv(&p, &["V"]).unwrap();
    assert_eq!(s.rows(), 20);
    let w = Windows::new(&s, 0, 3, 1, 10).unwrap();
    assert!((w.mean[0] - 4.5).abs() < 1e-6, "{:?}", w.mean);
    assert!((w.std[0] - 8.25f32.sqrt()).abs() < 1e-5, "{:?}", w.std);
    // Training windows end before row 10; test windows predict rows 10..20.
    assert_eq!(w.train, (0..=6).collect::<Vec<_>>());
    assert_eq!(w.test, (7..=16).collect::<Vec<_>>());
    let (x, y) = w.batch(&[7]).unwrap();
    assert_eq!(x.shape(), &[1, 3, 1]);
    assert!((w.unscale(y.to_vec::<f32>().unwrap()[0]) - 110.0).abs() < 1e-3);
    let e = read_series_csv(&p, &["W"]).unwrap_err().to_string();
    assert!(
        e.contains("series.csv") && e.contains("line 1") && e.contains("\"W\""),
        "{e}"
    );
    let p2 = write("bad.csv", "a,b\n1,2\n3,oops\n");
    let e = read_series_csv(&p2, &["b"]).unwrap_err().to_string();
    assert!(e.contains("line 3") && e.contains("oops"), "{e}");
    assert!(Windows::new(&s, 0, 3, 1, 20).is_err());
    assert!(Windows::new(&s, 0, 3, 1, 3).is_err());
}

#[test]
#[ignore = "needs FUKAI_ASSETS (timeseries/uea)"]
fn japanese_vowels_loads() {
    let Some(assets) = fukai::testing::assets("timeseries/uea") else {
        return;
    };
    let train = read_ts(assets.join("timeseries/uea/JapaneseVowels_TRAIN.ts")).unwrap();
    let test = read_ts(assets.join("timeseries/uea/JapaneseVowels_TEST.ts")).unwrap();
    assert_eq!((train.len(), test.len()), (270, 370));
    assert_eq!(train.dims, 12);
    assert_eq!(train.class_names.len(), 9);
    let lens = train.lengths.iter().chain(&test.lengths);
    assert_eq!(lens.clone().min(), Some(&7));
    assert_eq!(lens.max(), Some(&29));
    let s = read_series_csv(assets.join("timeseries/sunspots.csv"), &["SUNACTIVITY"]).unwrap();
    assert_eq!(s.rows(), 309);
}
