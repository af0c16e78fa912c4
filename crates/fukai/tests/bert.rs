//! The BERT encoder and the tokenizer.json reader against `transformers` and `tokenizers`:
//! a tiny random BERT directory (`tests/fixtures/tiny_bert`, written by
//! `scripts/torch_fixtures.py bert`), the real all-MiniLM-L6-v2 from the shared assets, and
//! broken model directories.

#![cfg(feature = "hf")]

use fukai::io::{load_safetensors, save_safetensors};
use fukai::models::{BertModel, SentenceEmbedder};
use fukai::text::hf::HfTokenizer;
use fukai::{DType, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn tiny_dir() -> PathBuf {
    fixtures().join("tiny_bert")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn tiny_bert_matches_transformers() {
    let model = BertModel::from_dir(tiny_dir()).unwrap();
    let exp = load_safetensors(fixtures().join("tiny_bert_expected.safetensors")).unwrap();
    let ids = exp.tensor("ids").unwrap();
    let mask = exp.tensor("mask").unwrap();
    let want = exp.tensor("hidden").unwrap().to_vec::<f32>().unwrap();
    let got = model.forward(ids, mask).unwrap();
    assert_eq!(got.shape(), exp.tensor("hidden").unwrap().shape());
    let got = got.to_vec::<f32>().unwrap();
    let mut worst = 0f64;
    for (g, w) in got.iter().zip(&want) {
        let err = (g - w).abs() as f64 / 1f64.max(w.abs() as f64);
        worst = worst.max(err);
    }
    println!(
        "tiny BERT: worst error {worst:.2e} over {} values",
        got.len()
    );
    assert!(worst <= 1e-5, "worst error {worst:e}");
}

#[test]
fn wordpiece_and_bpe_match_python_tokenizers() {
    let expected = read_json(&fixtures().join("tokenizers.json"));
    let mut wp = HfTokenizer::from_file(tiny_dir().join("tokenizer.json")).unwrap();
    // The file pads and truncates to 8; the Python ids were taken with both off.
    assert_eq!(wp.encode("").unwrap().len(), 8);
    wp.set_max_len(None).unwrap();
    let bpe = HfTokenizer::from_file(fixtures().join("bpe_tokenizer.json")).unwrap();
    for (tok, name) in [(&wp, "wordpiece"), (&bpe, "bpe")] {
        for case in expected[name].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let ids = tok.encode(text).unwrap();
            assert_eq!(ids, ids_of(&case["ids"]), "{name} on {text:?}");
            if let Some(d) = case.get("decoded") {
                assert_eq!(tok.decode(&ids).unwrap(), d.as_str().unwrap(), "{text:?}");
            }
        }
    }
    assert_eq!(wp.token_to_id("[CLS]"), Some(2));
    assert_eq!(wp.id_to_token(5).as_deref(), Some("the"));
    // Byte-level BPE covers every byte: no text is out of its vocabulary.
    let ids = bpe.encode("ünïcødé 🦀").unwrap();
    assert_eq!(bpe.decode(&ids).unwrap(), "ünïcødé 🦀");
}

#[test]
fn truncation_keeps_the_special_tokens() {
    let mut wp = HfTokenizer::from_file(tiny_dir().join("tokenizer.json")).unwrap();
    wp.set_max_len(Some(5)).unwrap();
    assert_eq!(wp.max_len(), Some(5));
    let ids = wp.encode("the cat sat on the mat").unwrap();
    assert_eq!(ids, vec![2, 5, 6, 7, 3]);
    assert_eq!(wp.encode("").unwrap(), vec![2, 3], "no padding");
}

#[test]
fn sentence_embeddings_do_not_depend_on_batching() {
    let emb = SentenceEmbedder::from_dir(tiny_dir()).unwrap();
    // max_position_embeddings is 16 and there is no sentence_bert_config.json.
    assert_eq!(emb.tokenizer().max_len(), Some(16));
    let texts = [
        "The cat sat on the mat.",
        "",
        "hello world",
        &"token ".repeat(30),
    ];
    let together = emb.embed(&texts).unwrap();
    for (text, e) in texts.iter().zip(&together) {
        let alone = emb.embed(&[text]).unwrap().remove(0);
        let norm: f32 = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        let diff = e
            .iter()
            .zip(&alone)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-5, "{text:?}: batched vs alone differ by {diff}");
    }
    // The same as pooling the encoder's output by hand.
    let ids = emb.tokenizer().encode(texts[0]).unwrap();
    let n = ids.len();
    let ids = Tensor::from_vec(ids.iter().map(|&i| i64::from(i)).collect(), &[1, n]).unwrap();
    let hidden = emb
        .model()
        .forward(&ids, &Tensor::ones(&[1, n], DType::F32).unwrap())
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let h = hidden.len() / n;
    let mean: Vec<f32> = (0..h)
        .map(|j| (0..n).map(|i| hidden[i * h + j]).sum::<f32>() / n as f32)
        .collect();
    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
    for (a, m) in together[0].iter().zip(&mean) {
        assert!((a - m / norm).abs() < 1e-5);
    }
}

/// A copy of the tiny model directory, changed by `edit`, removed when dropped.
struct BrokenDir(PathBuf);

impl BrokenDir {
    fn new(name: &str, edit: impl FnOnce(&Path)) -> Self {
        let dir = std::env::temp_dir().join(format!("fukai-bert-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(tiny_dir().join(f), dir.join(f)).unwrap();
        }
        edit(&dir);
        BrokenDir(dir)
    }
    fn error(&self) -> String {
        match SentenceEmbedder::from_dir(&self.0) {
            Ok(_) => panic!("{} loaded", self.0.display()),
            Err(e) => e.to_string(),
        }
    }
}

impl Drop for BrokenDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Rewrites the directory's weights through `f(name, tensor) -> Some(replacement) | None (drop)`.
fn edit_weights(dir: &Path, f: impl Fn(&str, &Tensor) -> Option<Tensor>) {
    let path = dir.join("model.safetensors");
    let file = load_safetensors(&path).unwrap();
    let kept: Vec<(String, Tensor)> = file
        .tensors()
        .iter()
        .filter_map(|(n, t)| f(n, t).map(|t| (n.clone(), t)))
        .collect();
    save_safetensors(&path, &kept, None).unwrap();
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("config.json");
    let mut v = read_json(&path);
    f(v.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
}

fn assert_mentions(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "error {err:?} does not mention {p:?}");
    }
}

#[test]
fn missing_tensor_is_named() {
    let name = "encoder.layer.1.attention.self.key.weight";
    let d = BrokenDir::new("missing", |d| {
        edit_weights(d, |n, t| (n != name).then(|| t.clone()))
    });
    assert_mentions(
        &d.error(),
        &["model.safetensors", "missing tensor", name, "[32, 32]"],
    );
}

#[test]
fn misshaped_tensor_is_named() {
    let name = "encoder.layer.0.intermediate.dense.weight";
    let d = BrokenDir::new("shape", |d| {
        edit_weights(d, |n, t| {
            Some(if n == name {
                Tensor::zeros(&[64, 31], DType::F32).unwrap()
            } else {
                t.clone()
            })
        })
    });
    assert_mentions(
        &d.error(),
        &[name, "expected shape [64, 32]", "found [64, 31]"],
    );
}

#[test]
fn non_finite_weights_are_rejected() {
    let name = "encoder.layer.0.output.dense.weight";
    let d = BrokenDir::new("nan", |d| {
        edit_weights(d, |n, t| {
            Some(if n == name {
                t.mul_scalar(f64::NAN).unwrap()
            } else {
                t.clone()
            })
        })
    });
    assert_mentions(&d.error(), &["model.safetensors", name, "NaN", "finite"]);
}

#[test]
fn integer_weights_are_rejected() {
    let name = "embeddings.LayerNorm.bias";
    let d = BrokenDir::new("dtype", |d| {
        edit_weights(d, |n, t| {
            Some(if n == name {
                Tensor::zeros(&[32], DType::I64).unwrap()
            } else {
                t.clone()
            })
        })
    });
    assert_mentions(&d.error(), &[name, "float dtype", "i64"]);
}

#[test]
fn unknown_architecture_is_named() {
    let d = BrokenDir::new("arch", |d| {
        edit_config(d, |c| {
            c.insert("model_type".into(), "gpt2".into());
        })
    });
    assert_mentions(&d.error(), &["config.json", "model_type", "\"gpt2\""]);
    let d = BrokenDir::new("noarch", |d| {
        edit_config(d, |c| {
            c.remove("model_type");
        })
    });
    assert_mentions(&d.error(), &["config.json", "model_type", "missing"]);
}

#[test]
fn bad_config_fields_are_named() {
    let d = BrokenDir::new("field", |d| {
        edit_config(d, |c| {
            c.remove("hidden_size");
        })
    });
    assert_mentions(&d.error(), &["config.json", "hidden_size"]);
    let d = BrokenDir::new("heads", |d| {
        edit_config(d, |c| {
            c.insert("num_attention_heads".into(), 5.into());
        })
    });
    assert_mentions(&d.error(), &["num_attention_heads", "does not divide"]);
    let d = BrokenDir::new("act", |d| {
        edit_config(d, |c| {
            c.insert("hidden_act".into(), "mish".into());
        })
    });
    assert_mentions(&d.error(), &["hidden_act", "\"mish\""]);
    let d = BrokenDir::new("json", |d| {
        std::fs::write(d.join("config.json"), "{\"model_type\": \"bert\",").unwrap()
    });
    assert_mentions(&d.error(), &["config.json", "not valid JSON"]);
}

/// Found by fuzz_loaders: the layer list was sized from the config before any weight was read.
#[test]
fn huge_layer_count_fails_on_the_weights() {
    let d = BrokenDir::new("layers", |d| {
        edit_config(d, |c| {
            c.insert("num_hidden_layers".into(), u64::MAX.into());
        })
    });
    assert_mentions(
        &d.error(),
        &["model.safetensors", "missing tensor", "encoder.layer.2."],
    );
}

/// Found by fuzz_loaders: `tokenizers` panicked on a file cut inside its "decoder" object.
#[test]
fn tokenizer_cut_inside_the_decoder_is_an_error() {
    let err = HfTokenizer::from_bytes(br#"{"decoder": {"type": "ByteLevel""#, "cut.json")
        .err()
        .expect("a cut file loads")
        .to_string();
    assert_mentions(&err, &["cut.json", "not a valid", "EOF"]);
}

/// Found by fuzz_loaders: `tokenizers` loaded these templates, then panicked when encoding.
#[test]
fn templates_that_would_panic_are_rejected_at_load() {
    let base = read_json(&tiny_dir().join("tokenizer.json"));
    let load = |v: &Value| {
        HfTokenizer::from_bytes(v.to_string().as_bytes(), "tpl.json")
            .err()
            .expect("the template loads")
            .to_string()
    };
    let mut renamed = base.clone();
    let specials = renamed["post_processor"]["special_tokens"]
        .as_object_mut()
        .unwrap();
    let cls = specials.remove("[CLS]").unwrap();
    specials.insert("[CinfLS]".into(), cls);
    assert_mentions(
        &load(&renamed),
        &["tpl.json", "post_processor.single", "\"[CLS]\""],
    );
    let mut single_b = base.clone();
    single_b["post_processor"]["single"][1] =
        serde_json::json!({"Sequence": {"id": "B", "type_id": 0}});
    assert_mentions(&load(&single_b), &["tpl.json", "sequence B"]);
}

/// Found by fuzz_loaders: a padding length from the file sized every encoding (40 GB here).
#[test]
fn huge_padding_is_rejected_at_load() {
    let base = read_json(&tiny_dir().join("tokenizer.json"));
    for (field, edit) in [
        ("padding.strategy.Fixed", "/padding/strategy/Fixed"),
        ("padding.pad_to_multiple_of", "/padding/pad_to_multiple_of"),
    ] {
        let mut v = base.clone();
        *v.pointer_mut(edit).unwrap() = 9_999_999_999u64.into();
        let err = HfTokenizer::from_bytes(v.to_string().as_bytes(), "pad.json")
            .err()
            .expect("the padding loads")
            .to_string();
        assert_mentions(&err, &["pad.json", field, "9999999999"]);
    }
}

/// Found by fuzz_loaders: `tokenizers` panicked building BPE merges shorter than the
/// continuing-subword prefix, or longer than every vocabulary entry.
#[test]
fn bpe_merges_that_would_panic_are_rejected_at_load() {
    let bpe = |prefix: &str, merges: Value| {
        let v = serde_json::json!({
            "version": "1.0",
            "model": {
                "type": "BPE",
                "vocab": {"a": 0, "t": 1, "at": 2},
                "merges": merges,
                "continuing_subword_prefix": prefix,
            },
        });
        HfTokenizer::from_bytes(v.to_string().as_bytes(), "bpe.json")
    };
    let err = bpe("##", serde_json::json!([["a", "t"]]))
        .err()
        .expect("a merge shorter than the prefix loads")
        .to_string();
    assert_mentions(
        &err,
        &["bpe.json", "model.merges", "continuing_subword_prefix"],
    );
    let err = bpe("", serde_json::json!(["at at"]))
        .err()
        .expect("a merge longer than the vocabulary's entries loads")
        .to_string();
    assert_mentions(&err, &["bpe.json", "model.merges", "longer than any"]);
    // A well-formed merge still loads.
    bpe("", serde_json::json!([["a", "t"]])).expect("a plain merge");
}

#[test]
fn broken_tokenizer_is_named() {
    let d = BrokenDir::new("tok-truncated", |d| {
        let text = std::fs::read_to_string(d.join("tokenizer.json")).unwrap();
        std::fs::write(d.join("tokenizer.json"), &text[..text.len() / 2]).unwrap();
    });
    assert_mentions(&d.error(), &["tokenizer.json", "not a valid"]);
    let d = BrokenDir::new("tok-model", |d| {
        let mut v = read_json(&d.join("tokenizer.json"));
        v["model"]["type"] = "NoSuchModel".into();
        std::fs::write(d.join("tokenizer.json"), v.to_string()).unwrap();
    });
    assert_mentions(&d.error(), &["tokenizer.json", "not a valid"]);
    let d = BrokenDir::new("tok-missing", |d| {
        std::fs::remove_file(d.join("tokenizer.json")).unwrap()
    });
    assert_mentions(&d.error(), &["tokenizer.json"]);
    let d = BrokenDir::new("no-weights", |d| {
        std::fs::remove_file(d.join("model.safetensors")).unwrap()
    });
    assert_mentions(&d.error(), &["model.safetensors"]);
}

#[test]
fn forward_rejects_bad_inputs() {
    let model = BertModel::from_dir(tiny_dir()).unwrap();
    let ids = Tensor::from_vec(vec![2i64, 99, 3], &[1, 3]).unwrap();
    let mask = Tensor::ones(&[1, 3], DType::F32).unwrap();
    let e = model.forward(&ids, &mask).unwrap_err().to_string();
    assert_mentions(&e, &["99", "out of range"]);
    let long = Tensor::zeros(&[1, 17], DType::I64).unwrap();
    let e = model
        .forward(&long, &Tensor::ones(&[1, 17], DType::F32).unwrap())
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["17 tokens", "16 positions"]);
    let e = model
        .forward(&ids, &Tensor::ones(&[1, 2], DType::F32).unwrap())
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["[1, 3]", "[1, 2]"]);
}

/// all-MiniLM-L6-v2 against the embeddings and ids sentence-transformers computed.
#[test]
#[ignore = "needs FUKAI_ASSETS (models/all-MiniLM-L6-v2)"]
fn minilm_reproduces_sentence_transformers() {
    let Some(assets) = fukai::testing::assets("models/all-MiniLM-L6-v2") else {
        return;
    };
    let models = assets.join("models");
    let reference = read_json(&models.join("all-MiniLM-L6-v2.reference.json"));
    let emb = SentenceEmbedder::from_dir(models.join("all-MiniLM-L6-v2")).unwrap();
    let items = reference["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let ids = emb.tokenize(&texts).unwrap();
    for (item, got) in items.iter().zip(&ids) {
        assert_eq!(
            got,
            &ids_of(&item["input_ids"]),
            "ids of {:?}",
            item["text"]
        );
    }
    assert!(
        ids.iter().any(|i| i.len() == 256),
        "a text is truncated to 256"
    );
    // All texts in one padded batch: the mask must keep padding out.
    let got = emb.embed_ids(&ids).unwrap();
    let mut min_cos = f64::INFINITY;
    for (item, e) in items.iter().zip(&got) {
        let want: Vec<f64> = item["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(e.len(), want.len());
        let dot: f64 = e.iter().zip(&want).map(|(a, b)| *a as f64 * b).sum();
        let na: f64 = e.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = want.iter().map(|b| b * b).sum::<f64>().sqrt();
        let cos = dot / (na * nb);
        let text: String = item["text"].as_str().unwrap().chars().take(40).collect();
        println!("cos {cos:.9} (1 - cos = {:.1e})  {text:?}", 1.0 - cos);
        min_cos = min_cos.min(cos);
    }
    println!(
        "min cosine similarity {min_cos:.9} (1 - cos = {:.1e}) over {} texts",
        1.0 - min_cos,
        items.len()
    );
    assert!(min_cos >= 0.99999, "min cosine {min_cos}");
}
