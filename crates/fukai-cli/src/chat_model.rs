//! What `fukai chat` runs: a LLaMA-family model, its tokenizer and chat template, loaded by
//! [`load`], the one place a new model format plugs in: a GGUF file (llama.cpp's format, any
//! quantization fukai dequantizes) or a Hugging Face model directory (`config.json`,
//! `model.safetensors`, a byte-level BPE `tokenizer.json`, the template in
//! `tokenizer_config.json` or `chat_template.jinja`).

use fukai::error::Error;
use fukai::io::{load_safetensors, GgufFile};
use fukai::models::{Llama, LlamaConfig};
use fukai::text::{ChatTemplate, GgufTokenizer, GgufVocab};
use fukai::{bail, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// A model ready to chat.
pub struct ChatModel {
    pub model: Llama,
    pub tokenizer: GgufTokenizer,
    pub template: ChatTemplate,
    /// Ids that end the assistant's turn.
    pub stop: Vec<u32>,
}

/// Loads `--model`.
pub fn load(path: &Path) -> Result<ChatModel> {
    if path.is_dir() {
        return load_hf_dir(path);
    }
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        let file = GgufFile::open(path)?;
        return ready(
            Llama::from_gguf(&file)?,
            GgufTokenizer::from_gguf(&file)?,
            ChatTemplate::from_gguf(&file)?,
        );
    }
    bail!(
        "load model",
        "--model {}: expected a .gguf file or a Hugging Face model directory (config.json, \
         model.safetensors, tokenizer.json, tokenizer_config.json)",
        path.display()
    )
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

fn json(path: &Path) -> Result<Value> {
    serde_json::from_str(&read(path)?).map_err(|e| Error::Format {
        file: path.display().to_string(),
        msg: format!("not valid JSON: {e}"),
    })
}

fn load_hf_dir(dir: &Path) -> Result<ChatModel> {
    let cfg_path = dir.join("config.json");
    let cfg = LlamaConfig::from_hf_json(&read(&cfg_path)?, &cfg_path.display().to_string())?;
    let tensors: HashMap<_, _> = load_safetensors(dir.join("model.safetensors"))?
        .into_parts()
        .0
        .into_iter()
        .collect();
    let model = Llama::from_tensors(cfg, tensors)?;
    let tc = json(&dir.join("tokenizer_config.json"))?;
    let special = |k: &str| -> String {
        match &tc[k] {
            Value::String(s) => s.clone(),
            v => v["content"].as_str().unwrap_or_default().to_string(),
        }
    };
    let tok_path = dir.join("tokenizer.json");
    let mut vocab = vocab_of_tokenizer_json(&json(&tok_path)?, &tok_path.display().to_string())?;
    let id = |k: &str| {
        let text = special(k);
        vocab
            .tokens
            .iter()
            .position(|t| *t == text)
            .map(|i| i as u32)
    };
    (vocab.bos, vocab.eos) = (id("bos_token"), id("eos_token"));
    vocab.add_bos = tc["add_bos_token"].as_bool().unwrap_or(false);
    let tokenizer = GgufTokenizer::new(vocab)?;
    let source = match tc["chat_template"].as_str() {
        Some(s) => s.to_string(),
        None => read(&dir.join("chat_template.jinja"))?,
    };
    let template = ChatTemplate::new(&source, &special("bos_token"), &special("eos_token"))?;
    ready(model, tokenizer, template)
}

/// The model with the ids that end an assistant's turn: EOS and the chat formats' end markers
/// the vocabulary has as control tokens.
fn ready(model: Llama, tokenizer: GgufTokenizer, template: ChatTemplate) -> Result<ChatModel> {
    let mut stop: Vec<u32> = tokenizer.eos().into_iter().collect();
    for end in [
        "<|im_end|>",
        "<|eot_id|>",
        "<|end|>",
        "</s>",
        "<|endoftext|>",
    ] {
        stop.extend(tokenizer.id_of(end).filter(|&id| tokenizer.is_control(id)));
    }
    stop.sort_unstable();
    stop.dedup();
    Ok(ChatModel {
        model,
        tokenizer,
        template,
        stop,
    })
}

/// A byte-level BPE `tokenizer.json` as the GGUF fields it maps to: ids from `model.vocab`,
/// `model.merges` in order, added tokens as control (special) or user-defined ones, and the
/// digit splitting of SmolLM2-style pre-tokenizers.
fn vocab_of_tokenizer_json(t: &Value, file: &str) -> Result<GgufVocab> {
    let err = |msg: String| Error::Format {
        file: file.to_string(),
        msg,
    };
    let model = &t["model"];
    if model["type"].as_str() != Some("BPE") {
        return Err(err(format!(
            "field \"model.type\": expected \"BPE\", found {}",
            model["type"]
        )));
    }
    if t["decoder"]["type"].as_str() != Some("ByteLevel") {
        return Err(err(format!(
            "field \"decoder.type\": expected \"ByteLevel\" (byte-level BPE), found {}",
            t["decoder"]["type"]
        )));
    }
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| err("field \"model.vocab\": expected an object".into()))?;
    let mut named: Vec<(u32, String, i32)> = Vec::with_capacity(vocab.len());
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .filter(|&i| i < u32::MAX as u64)
            .ok_or_else(|| err(format!("field \"model.vocab\": {text:?} has no integer id")))?;
        named.push((id as u32, text.clone(), 1));
    }
    for a in t["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(text)) = (a["id"].as_u64(), a["content"].as_str()) else {
            return Err(err(format!(
                "field \"added_tokens\": expected id and content, found {a}"
            )));
        };
        let kind = if a["special"].as_bool() == Some(true) {
            3
        } else {
            4
        };
        named.retain(|(i, _, _)| *i as u64 != id);
        named.push((id as u32, text.to_string(), kind));
    }
    named.sort_by_key(|(id, _, _)| *id);
    let n = named.last().map_or(0, |(id, _, _)| *id as usize + 1);
    if n != named.len() {
        return Err(err(format!(
            "field \"model.vocab\": ids must run 0..{n} without gaps, found {} tokens",
            named.len()
        )));
    }
    let merges = model["merges"]
        .as_array()
        .ok_or_else(|| err("field \"model.merges\": expected a list".into()))?
        .iter()
        .map(|m| match m {
            Value::String(s) => Ok(s.clone()),
            Value::Array(p) if p.len() == 2 => Ok(format!(
                "{} {}",
                p[0].as_str().unwrap_or_default(),
                p[1].as_str().unwrap_or_default()
            )),
            other => Err(err(format!(
                "field \"model.merges\": expected \"a b\" or [a, b], found {other}"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    let digits = t["pre_tokenizer"]
        .to_string()
        .contains("\"individual_digits\":true");
    let (mut tokens, mut token_type) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (_, text, kind) in named {
        tokens.push(text);
        token_type.push(kind);
    }
    Ok(GgufVocab {
        model: "gpt2".into(),
        pre: Some(if digits { "smollm" } else { "gpt-2" }.into()),
        tokens,
        merges,
        token_type,
        ..GgufVocab::default()
    })
}
