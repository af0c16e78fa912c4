//! A tiny LLaMA (random weights, a byte-level vocabulary with ChatML's two control tokens) as
//! a Hugging Face model directory, for the commands that load one (`chat`, `generate`,
//! `finetune`).

use fukai::testing::randn64;
use fukai::DType;
use std::path::{Path, PathBuf};

pub const HIDDEN: usize = 32;
pub const FF: usize = 64;
pub const LAYERS: usize = 2;

/// A tiny LLaMA as a Hugging Face directory `fukai chat` loads.
pub fn tiny_model(dir: &Path) -> PathBuf {
    let m = dir.join("tiny-llama");
    std::fs::create_dir_all(&m).unwrap();
    let vocab = 258;
    let config = serde_json::json!({
        "model_type": "llama", "vocab_size": vocab, "hidden_size": HIDDEN,
        "intermediate_size": FF, "num_hidden_layers": LAYERS, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": true
    });
    std::fs::write(m.join("config.json"), config.to_string()).unwrap();
    let kvd = 2 * HIDDEN / 4;
    let mut seed = 0;
    let mut normal = |shape: &[usize]| {
        seed += 1;
        randn64(shape, seed)
            .unwrap()
            .mul_scalar(0.02)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
    };
    let mut t = vec![(
        "model.embed_tokens.weight".to_string(),
        normal(&[vocab, HIDDEN]),
    )];
    for i in 0..LAYERS {
        for (name, shape) in [
            ("self_attn.q_proj", [HIDDEN, HIDDEN]),
            ("self_attn.k_proj", [kvd, HIDDEN]),
            ("self_attn.v_proj", [kvd, HIDDEN]),
            ("self_attn.o_proj", [HIDDEN, HIDDEN]),
            ("mlp.gate_proj", [FF, HIDDEN]),
            ("mlp.up_proj", [FF, HIDDEN]),
            ("mlp.down_proj", [HIDDEN, FF]),
        ] {
            t.push((format!("model.layers.{i}.{name}.weight"), normal(&shape)));
        }
        for n in ["input_layernorm", "post_attention_layernorm"] {
            t.push((
                format!("model.layers.{i}.{n}.weight"),
                fukai::Tensor::ones(&[HIDDEN], DType::F32).unwrap(),
            ));
        }
    }
    t.push((
        "model.norm.weight".into(),
        fukai::Tensor::ones(&[HIDDEN], DType::F32).unwrap(),
    ));
    fukai::io::save_safetensors(m.join("model.safetensors"), &t, None).unwrap();
    let vocab_map: serde_json::Map<String, serde_json::Value> = fukai::text::byte_chars()
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), serde_json::json!(i)))
        .collect();
    let tokenizer = serde_json::json!({
        "model": {"type": "BPE", "vocab": vocab_map, "merges": []},
        "decoder": {"type": "ByteLevel"},
        "added_tokens": [
            {"id": 256, "content": "<|im_start|>", "special": true},
            {"id": 257, "content": "<|im_end|>", "special": true}
        ]
    });
    std::fs::write(m.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let tc = serde_json::json!({
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    });
    std::fs::write(m.join("tokenizer_config.json"), tc.to_string()).unwrap();
    m
}
