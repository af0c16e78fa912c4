//! LoRA adapters on small random LLaMA models: a fresh adapter changes nothing, merged and
//! unmerged adapters agree, the adapted projection's gradients match finite differences, saved
//! adapters reload bit for bit and bad ones are refused naming what is wrong, chat records
//! load with the prompt masked (bad ones refused naming file, line and field), and training
//! is the same at 1 and 2 threads.

use fukai::models::{
    finetune, ChatExample, FinetuneConfig, Llama, LlamaConfig, LoraAdapter, LoraConfig, LoraTarget,
    RopeScaling,
};
use fukai::testing::{gradcheck, max_abs_diff, randn64, with_threads};
use fukai::text::{ChatMessage, ChatTemplate, GgufTokenizer, GgufVocab};
use fukai::{DType, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

fn config() -> LlamaConfig {
    LlamaConfig {
        vocab: 260,
        hidden: 16,
        intermediate: 24,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 4,
        rope_theta: 10000.0,
        rope_scaling: RopeScaling::None,
        rms_eps: 1e-5,
        tie_embeddings: true,
        max_context: 128,
    }
}

fn ids() -> Tensor {
    Tensor::from_vec(vec![3i64, 17, 250, 9, 41, 41, 7, 100], &[2, 4]).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fukai-lora-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn fresh_adapter_leaves_logits_bit_identical() {
    let mut model = Llama::random(config(), 1).unwrap();
    let before = model.logits(&ids(), None).unwrap().to_vec::<f32>().unwrap();
    let mut caches = model.new_caches();
    let step_before = model.step(&[3, 17, 250], &mut caches).unwrap();
    let lora = LoraConfig::new(4, 8.0, &LoraTarget::ALL);
    model
        .set_lora(LoraAdapter::new(&config(), lora, 5).unwrap())
        .unwrap();
    let after = model.logits(&ids(), None).unwrap().to_vec::<f32>().unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&before), bits(&after));
    let mut caches = model.new_caches();
    assert_eq!(
        bits(&step_before),
        bits(&model.step(&[3, 17, 250], &mut caches).unwrap())
    );
    // A is drawn as PEFT draws it (U(±1/√in)), B is zero.
    let names = model.lora().unwrap().named_tensors();
    let (_, a) = names
        .iter()
        .find(|(n, _)| n == "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight")
        .unwrap();
    assert_eq!(a.shape(), &[4, 24]);
    let bound = 1.0 / 24f32.sqrt();
    let a = a.to_vec::<f32>().unwrap();
    assert!(a.iter().all(|v| v.abs() <= bound) && a.iter().any(|v| v.abs() > bound / 2.0));
    assert!(names
        .iter()
        .filter(|(n, _)| n.contains("lora_B"))
        .all(|(_, b)| b.to_vec::<f32>().unwrap().iter().all(|&v| v == 0.0)));
}

/// Trains a few steps so that B is no longer zero.
fn trained(targets: &[LoraTarget], seed: u64, steps: usize) -> Llama {
    let mut model = Llama::random(config(), 2).unwrap();
    let data = vec![
        ChatExample::new(
            vec![1, 2, 3, 10, 11, 12],
            vec![false, false, false, true, true, true],
        )
        .unwrap(),
        ChatExample::new(vec![4, 5, 20, 21], vec![false, false, true, true]).unwrap(),
    ];
    let cfg = FinetuneConfig {
        lr: 1e-2,
        steps: Some(steps),
        batch_size: 2,
        seed,
        ..FinetuneConfig::new(LoraConfig::new(4, 8.0, targets))
    };
    let report = finetune(&mut model, &data, &cfg, |_| {}).unwrap();
    assert!(report.last_loss < report.first_loss, "{report:?}");
    model
}

#[test]
fn an_adapted_model_decodes_through_an_f16_cache() {
    // The adapter's parameters want gradients, but decoding records none: keys and values go
    // into the f16 cache even when only the queries are adapted.
    let mut model = trained(&[LoraTarget::QProj], 7, 3);
    let run = |model: &Llama| {
        let mut caches = model.new_caches();
        let mut out = model.step(&[3, 17, 250], &mut caches).unwrap();
        out.extend(model.step(&[9], &mut caches).unwrap());
        Tensor::from_vec(out, &[2, config().vocab]).unwrap()
    };
    let f32_cache = run(&model);
    model.set_kv_dtype(DType::F16).unwrap();
    let f16_cache = run(&model);
    let d = max_abs_diff(&f32_cache, &f16_cache).unwrap();
    assert!(d < 1e-2, "{d}");
    assert!(model.set_kv_dtype(DType::I64).is_err());
}

#[test]
fn merged_and_unmerged_adapters_agree() {
    let mut model = trained(&LoraTarget::ALL, 3, 20);
    let unmerged = model.logits(&ids(), None).unwrap();
    let base = {
        let adapter = model.take_lora().unwrap();
        let base = model.logits(&ids(), None).unwrap();
        model.set_lora(adapter).unwrap();
        base
    };
    // Training moved the outputs well beyond the merge tolerance.
    assert!(max_abs_diff(&unmerged, &base).unwrap() > 1e-3);
    model.merge_lora().unwrap();
    assert!(model.lora().is_none());
    let merged = model.logits(&ids(), None).unwrap();
    let diff = max_abs_diff(&unmerged, &merged).unwrap();
    // f32: (x W) + s (x A) B against x (W + s B A), sums in another order.
    assert!(diff < 1e-4, "merged vs unmerged: {diff}");
}

#[test]
fn lora_linear_gradcheck_f64() {
    // The adapted projection exactly as the adapter computes it: y = x Wᵀ + s · (x Aᵀ) Bᵀ.
    let scale = 2.5;
    let x = randn64(&[2, 3, 6], 1).unwrap();
    let w = randn64(&[5, 6], 2).unwrap();
    let a = randn64(&[2, 6], 3).unwrap();
    let b = randn64(&[5, 2], 4).unwrap();
    gradcheck(
        |t| {
            let base = t[0].linear(&t[1], None)?;
            let delta = fukai::models::lora_delta(&t[0], &t[2], &t[3], scale)?;
            base.add(&delta)
        },
        &[x, w, a, b],
        1e-6,
        1e-6,
    )
    .unwrap();
}

#[test]
fn saved_adapters_reload_bit_for_bit_and_refuse_overwrite() {
    let mut model = trained(
        &[LoraTarget::QProj, LoraTarget::VProj, LoraTarget::UpProj],
        4,
        8,
    );
    let want = model.logits(&ids(), None).unwrap().to_vec::<f32>().unwrap();
    let path = tmp("save").join("adapter.safetensors");
    let _ = std::fs::remove_file(&path);
    let adapter = model.take_lora().unwrap();
    adapter.save(&path, false).unwrap();
    let e = adapter.save(&path, false).unwrap_err().to_string();
    assert!(
        e.contains("adapter.safetensors") && e.contains("exists"),
        "{e}"
    );
    adapter.save(&path, true).unwrap();
    let file = fukai::io::load_safetensors(&path).unwrap();
    assert_eq!(file.metadata()["r"], "4");
    assert_eq!(file.metadata()["lora_alpha"], "8");
    assert_eq!(file.metadata()["target_modules"], "q_proj,v_proj,up_proj");
    assert_eq!(file.len(), 2 * 2 * 3);
    assert_eq!(
        file.tensor("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight")
            .unwrap()
            .shape(),
        &[8, 4]
    );
    let loaded = LoraAdapter::load(&path, &config()).unwrap();
    assert_eq!(loaded.config(), adapter.config());
    for ((n1, t1), (n2, t2)) in adapter.named_tensors().iter().zip(loaded.named_tensors()) {
        assert_eq!(n1, &n2);
        assert_eq!(
            t1.to_vec::<f32>().unwrap(),
            t2.to_vec::<f32>().unwrap(),
            "{n1}"
        );
    }
    model.set_lora(loaded).unwrap();
    assert_eq!(
        model.logits(&ids(), None).unwrap().to_vec::<f32>().unwrap(),
        want
    );
    // An adapter for another shape of model is refused.
    let other = LlamaConfig {
        layers: 3,
        ..config()
    };
    let e = match LoraAdapter::load(&path, &other) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("loaded an adapter for 2 layers into 3"),
    };
    assert!(
        e.contains("missing tensor") && e.contains("layers.2"),
        "{e}"
    );
}

/// Writes `tensors` with `meta` and returns the error of loading them.
fn load_error(name: &str, tensors: Vec<(String, Tensor)>, meta: HashMap<String, String>) -> String {
    let path = tmp("bad").join(format!("{name}.safetensors"));
    fukai::io::save_safetensors(&path, &tensors, Some(&meta)).unwrap();
    match LoraAdapter::load(&path, &config()) {
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains(&format!("{name}.safetensors")), "{e}");
            e
        }
        Ok(_) => panic!("{name}: loaded"),
    }
}

#[test]
fn bad_adapters_are_refused_naming_what_is_wrong() {
    let adapter =
        LoraAdapter::new(&config(), LoraConfig::new(2, 4.0, &[LoraTarget::QProj]), 1).unwrap();
    let good = adapter.named_tensors();
    let meta = adapter.metadata();
    let with = |k: &str, v: &str| {
        let mut m = meta.clone();
        m.insert(k.into(), v.into());
        m
    };
    // The metadata's rank disagrees with the tensors.
    let e = load_error("rank", good.clone(), with("r", "3"));
    assert!(
        e.contains("lora_A.weight") && e.contains("[3, 16]") && e.contains("[2, 16]"),
        "{e}"
    );
    // A module the model has not.
    let e = load_error(
        "module",
        good.clone(),
        with("target_modules", "q_proj,c_attn"),
    );
    assert!(
        e.contains("target_modules") && e.contains("c_attn") && e.contains("q_proj"),
        "{e}"
    );
    // A missing setting.
    let mut m = meta.clone();
    m.remove("lora_alpha");
    let e = load_error("alpha", good.clone(), m);
    assert!(e.contains("lora_alpha") && e.contains("missing"), "{e}");
    let e = load_error("rank_text", good.clone(), with("r", "eight"));
    assert!(e.contains("\"r\"") && e.contains("eight"), "{e}");
    // A missing tensor.
    let e = load_error("missing", good[1..].to_vec(), meta.clone());
    assert!(
        e.contains("missing tensor")
            && e.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
            && e.contains("[2, 16]"),
        "{e}"
    );
    // An unknown tensor (a target the metadata does not list).
    let mut extra = good.clone();
    extra.push((
        "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight".into(),
        Tensor::zeros(&[2, 16], DType::F32).unwrap(),
    ));
    let e = load_error("unknown", extra, meta.clone());
    assert!(
        e.contains("unexpected tensor") && e.contains("mlp.up_proj.lora_A"),
        "{e}"
    );
    // A tensor of the wrong shape.
    let mut wrong = good.clone();
    wrong[1].1 = Tensor::zeros(&[16, 5], DType::F32).unwrap();
    let e = load_error("shape", wrong, meta.clone());
    assert!(e.contains(&good[1].0) && e.contains("found [16, 5]"), "{e}");
    // Not a safetensors file at all.
    let path = tmp("bad").join("junk.safetensors");
    std::fs::write(&path, b"not a safetensors file").unwrap();
    let e = LoraAdapter::load(&path, &config())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("junk.safetensors"), "{e}");
}

/// A byte-level vocabulary (no merges) with ChatML's two control tokens, and ChatML.
fn chatml() -> (GgufTokenizer, ChatTemplate) {
    let mut tokens: Vec<String> = fukai::text::byte_chars()
        .into_iter()
        .map(String::from)
        .collect();
    let mut token_type = vec![1; 256];
    for t in ["<|im_start|>", "<|im_end|>"] {
        tokens.push(t.into());
        token_type.push(3);
    }
    let tok = GgufTokenizer::new(GgufVocab {
        model: "gpt2".into(),
        tokens,
        token_type,
        eos: Some(257),
        ..GgufVocab::default()
    })
    .unwrap();
    let template = ChatTemplate::new(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
         {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        "",
        "<|im_end|>",
    )
    .unwrap();
    (tok, template)
}

#[test]
fn chat_records_learn_the_assistant_tokens_only() {
    let (tok, template) = chatml();
    let msgs = [
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Yo"),
        ChatMessage::new("user", "Q"),
        ChatMessage::new("assistant", "A"),
    ];
    let ex = ChatExample::from_messages(&msgs, &tok, &template).unwrap();
    let text = template.render(&msgs, false).unwrap();
    assert_eq!(ex.ids, tok.encode(&text, true).unwrap());
    let learned: Vec<u32> = ex
        .ids
        .iter()
        .zip(&ex.learn)
        .filter(|(_, &l)| l)
        .map(|(&i, _)| i)
        .collect();
    // Each answer, its end-of-turn marker and the newline after it.
    let want: Vec<u32> = ["Yo<|im_end|>\n", "A<|im_end|>\n"]
        .iter()
        .flat_map(|s| tok.encode(s, false).unwrap())
        .collect();
    assert_eq!(learned, want);
}

#[test]
fn bad_chat_files_are_refused_naming_file_line_and_field() {
    let (tok, template) = chatml();
    let good = r#"{"messages":[{"role":"user","content":"Q"},{"role":"assistant","content":"A"}]}"#;
    let err = |text: &str, max: usize| {
        ChatExample::parse_jsonl(text, "data.jsonl", &tok, &template, max)
            .err()
            .unwrap_or_else(|| panic!("accepted {text:?}"))
            .to_string()
    };
    assert_eq!(
        ChatExample::parse_jsonl(&format!("{good}\n\n{good}\n"), "d", &tok, &template, 64)
            .unwrap()
            .len(),
        2
    );
    let e = err("", 64);
    assert!(e.contains("data.jsonl") && e.contains("no records"), "{e}");
    let e = err(&format!("{good}\n{{\"messages\": [\n"), 64);
    assert!(e.starts_with("data.jsonl:2: not valid JSON"), "{e}");
    let e = err(&format!("{good}\n{{\"msgs\": []}}\n"), 64);
    assert!(
        e.starts_with("data.jsonl:2:") && e.contains("\"messages\""),
        "{e}"
    );
    let e = err(
        r#"{"messages":[{"content":"Q"},{"role":"assistant","content":"A"}]}"#,
        64,
    );
    assert!(
        e.starts_with("data.jsonl:1:") && e.contains("messages[0].role") && e.contains("missing"),
        "{e}"
    );
    let e = err(
        r#"{"messages":[{"role":"bot","content":"Q"},{"role":"assistant","content":"A"}]}"#,
        64,
    );
    assert!(e.contains("messages[0].role") && e.contains("bot"), "{e}");
    let e = err(
        r#"{"messages":[{"role":"user","content":7},{"role":"assistant","content":"A"}]}"#,
        64,
    );
    assert!(
        e.contains("messages[0].content") && e.contains("string"),
        "{e}"
    );
    let e = err(r#"{"messages":[{"role":"user","content":"Q"}]}"#, 64);
    assert!(e.contains("assistant"), "{e}");
    let e = err(&format!("{good}\n{good}\n"), 10);
    assert!(
        e.starts_with("data.jsonl:1:")
            && e.contains("maximum length 10")
            && e.contains("--max-len"),
        "{e}"
    );
    let e = match ChatExample::load_jsonl("/nonexistent/data.jsonl", &tok, &template, 64) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("read a missing file"),
    };
    assert!(e.contains("/nonexistent/data.jsonl"), "{e}");
}

/// The adapter's file bytes after a few steps on a model wide enough (and sequences long
/// enough) that the kernels split their work across threads.
fn adapter_bytes(seed: u64) -> Vec<u8> {
    let cfg = LlamaConfig {
        hidden: 64,
        intermediate: 192,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        ..config()
    };
    let mut model = Llama::random(cfg, 2).unwrap();
    let data: Vec<ChatExample> = (0..4u32)
        .map(|k| {
            let ids: Vec<u32> = (0..48).map(|i| (i * 7 + k * 31) % 256).collect();
            let learn = (0..48).map(|i| i >= 24).collect();
            ChatExample::new(ids, learn).unwrap()
        })
        .collect();
    let train = FinetuneConfig {
        lr: 1e-2,
        steps: Some(3),
        batch_size: 2,
        seed,
        ..FinetuneConfig::new(LoraConfig {
            dropout: 0.1,
            ..LoraConfig::new(8, 16.0, &LoraTarget::ALL)
        })
    };
    finetune(&mut model, &data, &train, |_| {}).unwrap();
    let a = model.lora().unwrap();
    fukai::io::serialize_safetensors(&a.named_tensors(), Some(&a.metadata())).unwrap()
}

#[test]
fn training_is_the_same_at_one_and_two_threads() {
    let one = with_threads(1, || adapter_bytes(9));
    let two = with_threads(2, || adapter_bytes(9));
    assert!(one == two, "the adapters differ between 1 and 2 threads");
    // Another seed (A, dropout, order) gives another adapter.
    assert!(one != with_threads(2, || adapter_bytes(10)));
}
