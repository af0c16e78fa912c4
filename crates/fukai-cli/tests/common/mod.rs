//! Helpers for the CLI tests: run the `fukai` binary, scratch folders, small generated data.
#![allow(dead_code)]

pub mod limited;
pub mod tiny_llama;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `fukai ARGS` (without FUKAI_ASSETS, so only the paths given are used).
pub fn fukai(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fukai"))
        .args(args)
        .env_remove("FUKAI_ASSETS")
        .output()
        .expect("the fukai binary runs")
}

/// Runs `fukai ARGS` and panics with its output unless it succeeds; returns stdout.
pub fn fukai_ok(args: &[&str]) -> String {
    expect_success(&fukai(args), &format!("fukai {args:?}"))
}

/// `out`'s stdout; a panic showing everything `what` printed when it failed.
pub fn expect_success(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every tensor of a safetensors file (a checkpoint: model, buffers, optimizer state) as the
/// raw bits of its values, sorted by name.
pub fn checkpoint_bits(path: &Path) -> Vec<(String, Vec<u64>)> {
    let f = fukai::io::load_safetensors(path).unwrap();
    let mut out: Vec<(String, Vec<u64>)> = f
        .tensors()
        .iter()
        .map(|(n, t)| {
            let bits = t
                .to_vec_f64()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            (n.clone(), bits)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A fresh, empty folder under the system temp dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fukai-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A path as a &str for command arguments.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// Writes a scikit-learn style CSV: 3 classes of `n` rows in 4 features, separable with noise.
pub fn write_table(path: &Path, n: usize) {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut text = format!("{n},4,alpha,beta,gamma\n");
    for i in 0..n {
        let c = i % 3;
        let f: Vec<String> = (0..4)
            .map(|j| format!("{:.4}", (c as f64) * (j as f64 + 1.0) * 0.6 + rnd() * 2.0))
            .collect();
        text.push_str(&format!("{},{c}\n", f.join(",")));
    }
    std::fs::write(path, text).unwrap();
}

/// A table-format TOML config on `data` (an MLP with dropout, Adam, shuffling via the seed).
pub fn table_config(name: &str, data: &Path, hidden: &[usize], extra_train: &str) -> String {
    let hidden: Vec<String> = hidden.iter().map(|h| h.to_string()).collect();
    format!(
        r#"name = "{name}"

[data]
format = "table"
path = "{}"
standardize = true
test_fraction = 0.25

[model]
kind = "mlp"
hidden = [{}]
dropout = 0.3

[train]
epochs = 2
batch_size = 8
lr = 0.01
optimizer = "adam"
schedule = "constant"
seed = 11
{extra_train}
"#,
        data.display(),
        hidden.join(", ")
    )
}
