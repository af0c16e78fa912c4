//! all-MiniLM-L6-v2 end to end through ONNX: the graph `torch.onnx.export` wrote
//! (`scripts/onnx_minilm.py`; committed without its weights, which it reads from the shared
//! model.safetensors as external data) imported by `fukai::onnx::Model`, against fukai's own
//! BERT on the same safetensors and against ONNX Runtime's embeddings of the same file.

use fukai::io::load_safetensors;
use fukai::models::{mean_pool_normalized, BertModel};
use fukai::onnx::Model;
use fukai::{DType, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx_minilm")
}

/// A temporary folder holding the committed graph and a link to the weights it points into,
/// removed when dropped.
struct Linked(PathBuf);

impl Linked {
    fn new(model_dir: &Path) -> Self {
        let dir = std::env::temp_dir().join(format!("fukai-onnx-minilm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let onnx = dir.join("all-MiniLM-L6-v2.onnx");
        std::fs::copy(fixtures().join("all-MiniLM-L6-v2.onnx"), &onnx).unwrap();
        let link = dir.join("model.safetensors");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(model_dir.join("model.safetensors"), &link).unwrap();
        Linked(dir)
    }

    fn onnx(&self) -> PathBuf {
        self.0.join("all-MiniLM-L6-v2.onnx")
    }
}

impl Drop for Linked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

/// `[B, T]` ids and mask for texts padded to the longest (mask 0 on padding).
fn batch(ids: &[Vec<i64>]) -> (Tensor, Tensor) {
    let t = ids.iter().map(Vec::len).max().unwrap();
    let mut flat = Vec::new();
    let mut mask = Vec::new();
    for row in ids {
        for j in 0..t {
            flat.push(row.get(j).copied().unwrap_or(0));
            mask.push(i64::from(j < row.len()));
        }
    }
    let shape = [ids.len(), t];
    (
        Tensor::from_vec(flat, &shape).unwrap(),
        Tensor::from_vec(mask, &shape).unwrap(),
    )
}

#[test]
#[ignore = "needs FUKAI_ASSETS (models/all-MiniLM-L6-v2)"]
fn minilm_from_onnx_matches_safetensors_and_onnx_runtime() {
    let Some(assets) = fukai::testing::assets("models/all-MiniLM-L6-v2") else {
        return;
    };
    let model_dir = assets.join("models/all-MiniLM-L6-v2");
    let linked = Linked::new(&model_dir);
    let onnx = Model::load(linked.onnx()).unwrap();
    let mut unfused = Model::load(linked.onnx()).unwrap();
    unfused.set_fusion(false);
    assert_eq!(onnx.inputs(), ["input_ids", "attention_mask"]);
    // Every layer's six products, its attention, its GELU, and its two residual sums with the
    // layer norms after them; the embeddings' last sum with their layer norm.
    let count = |op: &str| onnx.fused_ops().iter().filter(|&&o| o == op).count();
    assert_eq!(
        [
            "linear",
            "attention",
            "gelu",
            "add_layer_norm",
            "layer_norm"
        ]
        .map(count),
        [36, 6, 6, 13, 0],
        "{:?}",
        onnx.fused_ops()
    );
    let bert = BertModel::from_dir(&model_dir).unwrap();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(assets.join("models/all-MiniLM-L6-v2.reference.json")).unwrap(),
    )
    .unwrap();
    let ids: Vec<Vec<i64>> = reference["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| {
            let v = it["input_ids"].as_array().unwrap();
            v.iter().map(|x| x.as_i64().unwrap()).collect()
        })
        .collect();
    let ort = load_safetensors(fixtures().join("expected.safetensors")).unwrap();
    let ort = ort.tensor("embeddings").unwrap();
    assert_eq!(ort.shape(), [ids.len(), 384]);
    let ort = ort.to_vec::<f32>().unwrap();

    // One text at a time (as ONNX Runtime ran them), then all in one padded batch, where the
    // mask must keep the padding out.
    let mut singles = Vec::new();
    for row in &ids {
        let (x, m) = batch(std::slice::from_ref(row));
        singles.push(run(&onnx, &x, &m).to_vec::<f32>().unwrap());
    }
    let (x, m) = batch(&ids);
    let batched = run(&onnx, &x, &m).to_vec::<f32>().unwrap();
    // The load-time rewrites (fused linear, GELU, layer norm) against the graph as written.
    let as_written = run(&unfused, &x, &m).to_vec::<f32>().unwrap();
    let fusion_diff = batched
        .iter()
        .zip(&as_written)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("fused vs unfused graph: largest difference {fusion_diff:.1e}");
    assert!(fusion_diff < 1e-5, "fused vs unfused: {fusion_diff}");
    let native = mean_pool_normalized(&bert.forward(&x, &m).unwrap(), &m)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let (mut vs_native, mut vs_ort, mut vs_single) = (1f64, 1f64, 1f64);
    for (i, single) in singles.iter().enumerate() {
        let row = |v: &[f32]| v[i * 384..(i + 1) * 384].to_vec();
        vs_native = vs_native.min(cosine(single, &row(&native)));
        vs_native = vs_native.min(cosine(&row(&batched), &row(&native)));
        vs_ort = vs_ort.min(cosine(single, &row(&ort)));
        vs_single = vs_single.min(cosine(single, &row(&batched)));
    }
    println!(
        "MiniLM from ONNX, smallest cosine over {} texts: vs fukai safetensors {vs_native:.9} \
         (1 - cos = {:.1e}), vs ONNX Runtime {vs_ort:.9} ({:.1e}), single vs padded batch \
         {vs_single:.9} ({:.1e})",
        ids.len(),
        1.0 - vs_native,
        1.0 - vs_ort,
        1.0 - vs_single
    );
    assert!(vs_native >= 0.99999, "vs the safetensors path: {vs_native}");
    assert!(vs_ort >= 0.99999, "vs ONNX Runtime: {vs_ort}");
    assert!(vs_single >= 0.99999, "single vs batched: {vs_single}");
}

fn run(model: &Model, ids: &Tensor, mask: &Tensor) -> Tensor {
    let mut out = model
        .run(&[("input_ids", ids.clone()), ("attention_mask", mask.clone())])
        .unwrap();
    assert_eq!(out.len(), 1);
    let e = out.remove(0).1;
    assert_eq!(e.shape(), [ids.shape()[0], 384]);
    assert_eq!(e.dtype(), DType::F32);
    e
}
