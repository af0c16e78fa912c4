//! SmolLM2-135M-Instruct (Q4_1 GGUF) loaded by fukai against `transformers` running the same
//! file dequantized (tests/fixtures/smollm2_reference.json, written by
//! scripts/smollm2_reference.py): the chat template's text, the prompt's token ids, the 8 largest
//! logits after the prompt and after each of 32 greedy steps (decoded with the KV cache), and
//! the greedy tokens themselves.

use fukai::io::GgufFile;
use fukai::models::{Llama, LlamaConfig};
use fukai::text::{ChatMessage, ChatTemplate, GgufTokenizer};

/// Logits are about 30 in size; the reference is f32 too, summed in another order, across 30
/// layers of dequantized weights (the largest difference measured was 3.4e-5).
const LOGIT_TOL: f32 = 1e-3;

#[test]
#[ignore = "needs the 98 MB SmolLM2 GGUF: scripts/fetch_smollm2.sh, then FUKAI_GGUF_SMOLLM2=<path>"]
fn smollm2_from_gguf_matches_transformers() {
    let Some(path) = fukai::testing::asset_file(
        "FUKAI_GGUF_SMOLLM2",
        "scripts/fetch_smollm2.sh prints the path",
    ) else {
        return;
    };
    let want: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/smollm2_reference.json")).unwrap();
    let file = GgufFile::open(&path).unwrap();
    let cfg = LlamaConfig::from_gguf(&file).unwrap();
    assert_eq!(
        (cfg.layers, cfg.hidden, cfg.heads, cfg.kv_heads, cfg.vocab),
        (30, 576, 9, 3, 49152),
        "SmolLM2-135M's shape"
    );
    assert!(cfg.tie_embeddings);
    let model = Llama::from_gguf(&file).unwrap();
    let tok = GgufTokenizer::from_gguf(&file).unwrap();
    let template = ChatTemplate::from_gguf(&file).unwrap();
    let mut worst = 0f32;
    for case in want["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let text = template
            .render(&[ChatMessage::new("user", prompt)], true)
            .unwrap();
        assert_eq!(
            text,
            case["rendered"].as_str().unwrap(),
            "{prompt}: template"
        );
        let ids = tok.encode(&text, false).unwrap();
        let want_ids: Vec<u32> = ids_of(&case["ids"]);
        assert_eq!(ids, want_ids, "{prompt}: prompt ids");
        let mut caches = model.new_caches();
        let mut logits = model.step(&ids, &mut caches).unwrap();
        let mut greedy = Vec::new();
        for (step, top) in case["top"].as_array().unwrap().iter().enumerate() {
            let top_ids = ids_of(&top["ids"]);
            for (k, (&id, want)) in top_ids
                .iter()
                .zip(top["logits"].as_array().unwrap())
                .enumerate()
            {
                let (got, want) = (logits[id as usize], want.as_f64().unwrap() as f32);
                worst = worst.max((got - want).abs());
                assert!(
                    (got - want).abs() <= LOGIT_TOL,
                    "{prompt}: step {step}: logit of token {id} (rank {k}): {got} vs transformers {want}"
                );
            }
            let next = argmax(&logits);
            greedy.push(next);
            logits = model.step(&[next], &mut caches).unwrap();
        }
        assert_eq!(greedy, ids_of(&case["greedy"]), "{prompt}: greedy tokens");
        let answer = tok.decode(&greedy).unwrap();
        assert_eq!(answer, case["greedy_text"].as_str().unwrap(), "{prompt}");
    }
    eprintln!("largest logit difference from transformers: {worst:.2e}");
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}
