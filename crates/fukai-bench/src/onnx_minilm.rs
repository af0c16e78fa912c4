//! all-MiniLM-L6-v2 from ONNX: the graph `scripts/onnx_minilm.py` exported with
//! `torch.onnx.export` (committed as crates/fukai/tests/fixtures/onnx_minilm, its weights read
//! from the shared model.safetensors), run by `fukai::onnx::Model`. Its twin
//! `bench/onnx_minilm_ort.py` runs the same file in ONNX Runtime on the same inputs; the
//! driver `bench/onnx_minilm.sh` alternates the two. Goal: ≤ 1.0× ONNX Runtime.

use crate::harness::{fixed, Line};
use crate::minilm;
use fukai::onnx::Model;
use fukai::Tensor;
use std::path::{Path, PathBuf};

/// The cases both sides time: (name, ids [B, T], mask [B, T]).
type Case = (&'static str, Tensor, Tensor);

/// The first `n` reference sentences, padded to the longest (mask 0 on padding).
fn sentences(reference: &serde_json::Value, n: usize) -> fukai::Result<(Tensor, Tensor)> {
    let rows: Vec<Vec<i64>> = reference["items"]
        .as_array()
        .into_iter()
        .flatten()
        .take(n)
        .map(|it| {
            let ids = it["input_ids"].as_array().into_iter().flatten();
            ids.map(|x| x.as_i64().unwrap_or(0)).collect()
        })
        .collect();
    let t = rows.iter().map(Vec::len).max().unwrap_or(0);
    let (mut ids, mut mask) = (Vec::new(), Vec::new());
    for r in &rows {
        for j in 0..t {
            ids.push(r.get(j).copied().unwrap_or(0));
            mask.push(i64::from(j < r.len()));
        }
    }
    Ok((
        Tensor::from_vec(ids, &[rows.len(), t])?,
        Tensor::from_vec(mask, &[rows.len(), t])?,
    ))
}

fn cases(assets: &Path) -> fukai::Result<Vec<Case>> {
    let path = assets.join("models/all-MiniLM-L6-v2.reference.json");
    let text = std::fs::read_to_string(&path).map_err(|source| fukai::Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let reference: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fukai::Error::Format {
            file: path.display().to_string(),
            msg: e.to_string(),
        })?;
    let (b1, m1) = sentences(&reference, 1)?;
    let (b8, m8) = sentences(&reference, 8)?;
    let long = Tensor::from_vec(minilm::ids(), &[minilm::BATCH, minilm::TOKENS])?;
    let long_mask = Tensor::ones(&[minilm::BATCH, minilm::TOKENS], fukai::DType::I64)?;
    Ok(vec![
        ("1 sentence", b1, m1),
        ("8 sentences", b8, m8),
        ("8x128 tokens", long, long_mask),
    ])
}

/// A temporary folder with the committed graph and a link to the weights it points into.
fn linked(model_dir: &Path) -> std::io::Result<PathBuf> {
    let graph = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fukai/tests/fixtures/onnx_minilm/all-MiniLM-L6-v2.onnx");
    let dir = std::env::temp_dir().join(format!("fukai-bench-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(graph, dir.join("all-MiniLM-L6-v2.onnx"))?;
    let link = dir.join("model.safetensors");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(model_dir.join("model.safetensors"), &link)?;
    Ok(dir)
}

pub fn run(threads: usize, reps: usize) -> fukai::Result<()> {
    let Some(assets) = std::env::var_os("FUKAI_ASSETS").map(PathBuf::from) else {
        Line::new("onnx_minilm", "fukai", threads)
            .str("skipped", "no model: set FUKAI_ASSETS")
            .print();
        return Ok(());
    };
    let dir =
        linked(&assets.join("models/all-MiniLM-L6-v2")).map_err(|source| fukai::Error::Io {
            path: "the linked ONNX model folder".into(),
            source,
        })?;
    let model = Model::load(dir.join("all-MiniLM-L6-v2.onnx"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut model = model?;
    // FUKAI_ONNX_FUSION=0 times the graph as written (no load-time rewrites), for comparison.
    let fused = std::env::var("FUKAI_ONNX_FUSION").map_or(true, |v| v != "0");
    model.set_fusion(fused);
    // FUKAI_BENCH_CASE=NAME times only that case (for profiling one of them).
    let only = std::env::var("FUKAI_BENCH_CASE").ok();
    for (name, ids, mask) in cases(&assets)? {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let mut err = None;
        let mut step = || {
            let r = model.run(&[("input_ids", ids.clone()), ("attention_mask", mask.clone())]);
            if let Err(e) = r {
                err = Some(e);
            }
        };
        let st = fixed(&mut step, 3, reps, 1);
        if let Some(e) = err {
            return Err(e);
        }
        Line::new("onnx_minilm", "fukai", threads)
            .str("case", name)
            .str("fusion", if fused { "on" } else { "off" })
            .stats(&st)
            .print();
    }
    Ok(())
}
