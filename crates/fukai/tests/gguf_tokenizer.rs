//! The GGUF-metadata tokenizer and chat template against `transformers`: ids and renderings
//! for SmolLM2-135M-Instruct's vocabulary (`tests/fixtures/gguf_tokenizer.json`, written by
//! `scripts/gguf_tokenizer_fixture.py` with the reachable part of the vocabulary), and a
//! hand-made SentencePiece vocabulary.

use fukai::text::{ChatMessage, ChatTemplate, GgufTokenizer, GgufVocab, StreamDecoder};
use serde_json::Value;
use std::path::Path;

fn fixture() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_tokenizer.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn smollm(f: &Value) -> GgufTokenizer {
    let n = f["vocab_size"].as_u64().unwrap() as usize;
    // Ids the fixture leaves out get texts no input can produce.
    let mut tokens: Vec<String> = (0..n).map(|i| format!("\u{0}unused{i}")).collect();
    let mut token_type = vec![1; n];
    for t in f["tokens"].as_array().unwrap() {
        let i = t[0].as_u64().unwrap() as usize;
        tokens[i] = t[1].as_str().unwrap().to_string();
        token_type[i] = t[2].as_i64().unwrap() as i32;
    }
    let merges = f["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    GgufTokenizer::new(GgufVocab {
        model: f["model"].as_str().unwrap().into(),
        pre: Some(f["pre"].as_str().unwrap().into()),
        tokens,
        merges,
        token_type,
        bos: Some(f["bos"].as_u64().unwrap() as u32),
        eos: Some(f["eos"].as_u64().unwrap() as u32),
        add_bos: f["add_bos"].as_bool().unwrap(),
        ..GgufVocab::default()
    })
    .unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn byte_level_bpe_matches_transformers() {
    let f = fixture();
    let tok = smollm(&f);
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = ids(&c["ids"]);
        assert_eq!(tok.encode(text, true).unwrap(), want, "{text:?}");
        assert_eq!(tok.decode(&want).unwrap(), c["decoded"].as_str().unwrap());
        // Streaming gives the same text, however the characters split over tokens.
        let mut s = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &want {
            let piece = s.push(&tok, id).unwrap();
            assert!(
                !piece.contains('\u{FFFD}'),
                "{text:?}: partial character emitted"
            );
            streamed.push_str(&piece);
        }
        streamed.push_str(&s.finish());
        assert_eq!(streamed, text);
    }
    assert_eq!(tok.id_of("<|im_end|>"), Some(2));
    assert!(tok.is_control(2) && !tok.is_control(19556));
    assert!(tok.decode(&[49152]).is_err());
}

#[test]
fn chat_template_matches_transformers() {
    let f = fixture();
    let t = ChatTemplate::new(
        f["chat_template"].as_str().unwrap(),
        "<|im_start|>",
        "<|im_end|>",
    )
    .unwrap();
    for c in f["chats"].as_array().unwrap() {
        let msgs: Vec<ChatMessage> = c["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let gen = c["add_generation_prompt"].as_bool().unwrap();
        assert_eq!(
            t.render(&msgs, gen).unwrap(),
            c["rendered"].as_str().unwrap(),
            "{msgs:?} {gen}"
        );
    }
    let e = ChatTemplate::new("{% for %}", "", "")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("chat template"), "{e}");
    let raising =
        ChatTemplate::new("{{ raise_exception('roles must alternate') }}", "", "").unwrap();
    let e = raising.render(&[], false).unwrap_err().to_string();
    assert!(e.contains("roles must alternate"), "{e}");
}

/// A SentencePiece vocabulary: pieces with `▁` for spaces, merged by score, bytes as `<0xXX>`.
fn spm() -> GgufTokenizer {
    let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0, 0.0, 0.0];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for (p, s) in [
        ("▁", -1.0),
        ("h", -2.0),
        ("e", -2.0),
        ("l", -2.0),
        ("o", -2.0),
        ("w", -2.0),
        ("r", -2.0),
        ("d", -2.0),
        ("he", -3.0),
        ("ll", -1.5),
        ("llo", -4.0),
        ("hello", -5.0),
        ("▁hello", -6.0),
        ("▁w", -7.0),
        ("or", -3.5),
        ("▁wor", -8.0),
    ] {
        tokens.push(p.into());
        types.push(1);
        scores.push(s);
    }
    GgufTokenizer::new(GgufVocab {
        model: "llama".into(),
        tokens,
        token_type: types,
        scores,
        bos: Some(1),
        eos: Some(2),
        unk: Some(0),
        add_bos: true,
        add_space_prefix: true,
        ..GgufVocab::default()
    })
    .unwrap()
}

#[test]
fn sentencepiece_bpe_merges_by_score_with_byte_fallback() {
    let tok = spm();
    let id = |s: &str| tok.id_of(s).unwrap();
    let got = tok.encode("hello world", true).unwrap();
    // "▁hello" whole; "▁world": ▁w+or is not a piece, ▁w then "or" then ▁wor... by score:
    // "or" (-3.5) merges before "▁w" (-7), then "▁w"+"or" = "▁wor" (-8); "l", "d" stay.
    assert_eq!(
        got,
        vec![1, id("▁hello"), id("▁wor"), id("l"), id("d")],
        "{got:?}"
    );
    assert_eq!(tok.decode(&got[1..]).unwrap(), "hello world");
    // "é" is not a piece: its two UTF-8 bytes.
    let got = tok.encode("hé", false).unwrap();
    assert_eq!(got, vec![id("▁"), id("h"), id("<0xC3>"), id("<0xA9>")]);
    assert_eq!(tok.decode(&got).unwrap(), "hé");
    // The streaming decoder holds the first byte of "é" until the second arrives.
    let mut s = StreamDecoder::new();
    assert_eq!(s.push(&tok, id("<0xC3>")).unwrap(), "");
    assert_eq!(s.push(&tok, id("<0xA9>")).unwrap(), "é");
    // Control tokens in the text are single ids; a space prefix follows them again.
    assert_eq!(
        tok.encode("</s>hello", false).unwrap(),
        vec![2, id("▁hello")]
    );
}

#[test]
fn malformed_vocabularies_name_the_field() {
    let base = GgufVocab {
        model: "gpt2".into(),
        tokens: vec!["a".into(), "b".into()],
        ..GgufVocab::default()
    };
    let err = |v: GgufVocab| GgufTokenizer::new(v).err().unwrap().to_string();
    let e = err(GgufVocab {
        model: "wordpiece".into(),
        ..base.clone()
    });
    assert!(e.contains("tokenizer.ggml.model"), "{e}");
    let e = err(GgufVocab {
        pre: Some("qwen2".into()),
        ..base.clone()
    });
    assert!(
        e.contains("tokenizer.ggml.pre") && e.contains("qwen2"),
        "{e}"
    );
    let e = err(GgufVocab {
        token_type: vec![1],
        ..base.clone()
    });
    assert!(e.contains("token_type") && e.contains("expected 2"), "{e}");
    let e = err(GgufVocab {
        merges: vec!["ab".into()],
        ..base.clone()
    });
    assert!(e.contains("merges"), "{e}");
    let e = err(GgufVocab {
        eos: Some(7),
        ..base.clone()
    });
    assert!(e.contains("eos_token_id") && e.contains('7'), "{e}");
    let e = err(GgufVocab {
        model: "llama".into(),
        ..base.clone()
    });
    assert!(e.contains("scores"), "{e}");
    // A byte the vocabulary cannot spell, with no unknown token: an error, not a panic.
    let tok = GgufTokenizer::new(base).unwrap();
    let e = tok.encode("z", false).unwrap_err().to_string();
    assert!(e.contains("no token"), "{e}");
}
