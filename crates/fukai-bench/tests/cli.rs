//! The binary runs every workload at toy sizes and prints one JSON object per line.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fukai-bench"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn all_workloads_at_toy_sizes() {
    let (ok, stdout, stderr) = run(&[
        "--threads",
        "2",
        "--sizes",
        "8,33",
        "--reps",
        "2",
        "--tiny-iters",
        "200",
        "--mlp-steps",
        "40",
        "--max-batches",
        "2",
        "all",
    ]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    for l in &lines {
        assert!(l.starts_with('{') && l.ends_with('}'), "not an object: {l}");
        assert!(l.contains("\"threads\":2"), "{l}");
    }
    let has = |w: &str, imp: &str| {
        lines.iter().any(|l| {
            l.contains(&format!("\"workload\":\"{w}\""))
                && l.contains(&format!("\"impl\":\"{imp}\""))
        })
    };
    for imp in ["fukai", "gemm", "fukai_bf16"] {
        assert!(has("matmul", imp), "{stdout}");
    }
    for w in [
        "tiny_add",
        "tiny_mul",
        "tiny_relu",
        "tiny_sum_all",
        "tiny_matmul_4x4",
    ] {
        assert!(has(w, "fukai"), "{stdout}");
    }
    assert!(
        has("mlp_step", "fukai") && has("conv2d", "fukai"),
        "{stdout}"
    );
    // Measured with FUKAI_ASSETS, reported skipped without.
    for w in ["fashion_mlp", "fashion_cnn"] {
        assert!(has(w, "fukai"), "{stdout}");
    }
    // fukai, gemm and fukai's bf16 kernel at size 33.
    assert_eq!(
        lines.iter().filter(|l| l.contains("\"size\":33")).count(),
        3
    );
    assert!(lines.last().unwrap().contains("\"kind\":\"process\""));
}

#[test]
fn rejects_unknown_workload() {
    let (ok, _, stderr) = run(&["nope"]);
    assert!(!ok);
    assert!(stderr.contains("unknown workload"), "{stderr}");
}
