//! Hugging Face `tokenizer.json` files (WordPiece, BPE, Unigram, with their normalizers,
//! pre-tokenizers and special-token templates) through the `tokenizers` crate.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;
use tokenizers::{Tokenizer, TruncationParams};

/// A tokenizer read from a `tokenizer.json` file.
pub struct HfTokenizer {
    inner: Tokenizer,
    source: String,
}

impl HfTokenizer {
    /// Reads `path`; a missing file is an [`Error::Io`], an invalid one an [`Error::Format`]
    /// naming the file and what the parser rejected (field, line and column).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses the JSON text of a tokenizer; `source` names it in errors.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        // `tokenizers` panics (an `expect` in its decoder deserializer) on some syntax errors,
        // e.g. a file cut inside "decoder"; checking the syntax first turns those into errors.
        let fmt_err = |msg: String| Error::Format {
            file: source.to_string(),
            msg: format!("not a valid Hugging Face tokenizer.json: {msg}"),
        };
        let json: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| fmt_err(e.to_string()))?;
        if let Some(p) = json.get("post_processor") {
            check_post_processor(p).map_err(fmt_err)?;
        }
        check_padding(&json).map_err(fmt_err)?;
        check_bpe_merges(&json).map_err(fmt_err)?;
        let inner = Tokenizer::from_bytes(bytes).map_err(|e| Error::Format {
            file: source.to_string(),
            msg: format!("not a valid Hugging Face tokenizer.json: {e}"),
        })?;
        Ok(HfTokenizer {
            inner,
            source: source.to_string(),
        })
    }

    /// The file (or name) the tokenizer came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Encodes without padding, truncating to `max_len` tokens (special tokens included) when
    /// given; `None` turns truncation off. Replaces what the file set: a `tokenizer.json` often
    /// pads or truncates for its training setup, not for the model's real limit.
    pub fn set_max_len(&mut self, max_len: Option<usize>) -> Result<()> {
        let trunc = max_len.map(|max_length| TruncationParams {
            max_length,
            ..Default::default()
        });
        self.inner.with_padding(None);
        let res = self.inner.with_truncation(trunc).map(|_| ());
        res.map_err(|e| self.err(format!("truncation to {max_len:?} tokens: {e}")))
    }

    /// The truncation length the tokenizer applies, if any.
    pub fn max_len(&self) -> Option<usize> {
        self.inner.get_truncation().map(|t| t.max_length)
    }

    /// Token ids of `text`, with the special tokens of the file's template (e.g. `[CLS] … [SEP]`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.encode_full(text)?.0)
    }

    /// Token ids and token strings of `text`, special tokens included.
    pub fn encode_full(&self, text: &str) -> Result<(Vec<u32>, Vec<String>)> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| self.err(format!("encoding {:?}: {e}", preview(text))))?;
        Ok((enc.get_ids().to_vec(), enc.get_tokens().to_vec()))
    }

    /// The text of `ids`, special tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| self.err(format!("decoding {} ids: {e}", ids.len())))
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token string, if the vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token string of an id, if there is one.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    fn err(&self, msg: String) -> Error {
        Error::Format {
            file: self.source.clone(),
            msg,
        }
    }
}

/// Longest padding a tokenizer.json may ask for: every encoding allocates its padded length
/// several times over, so `"Fixed": 9999999999` would ask for tens of GB per text.
const MAX_PADDING: u64 = 1 << 20;

fn check_padding(json: &Value) -> std::result::Result<(), String> {
    let padding = json.get("padding");
    let fields = [
        ("padding.strategy.Fixed", "/strategy/Fixed"),
        ("padding.pad_to_multiple_of", "/pad_to_multiple_of"),
    ];
    for (name, pointer) in fields {
        let n = padding
            .and_then(|p| p.pointer(pointer))
            .and_then(Value::as_u64);
        if let Some(n) = n.filter(|&n| n > MAX_PADDING) {
            return Err(format!(
                "field \"{name}\": pads to {n} tokens; at most {MAX_PADDING} are supported"
            ));
        }
    }
    Ok(())
}

/// `tokenizers` builds each BPE merge's token in a buffer as long as the longest vocabulary
/// entry, cutting the continuing-subword prefix off the merge's second part: a second part
/// shorter than the prefix, or a merged token longer than every entry, panics there.
fn check_bpe_merges(json: &Value) -> std::result::Result<(), String> {
    let Some(model) = json.get("model") else {
        return Ok(());
    };
    // Other models do not read merges.
    if model.get("type").is_some_and(|t| t != "BPE") {
        return Ok(());
    }
    let Some(merges) = model.get("merges").and_then(Value::as_array) else {
        return Ok(());
    };
    let prefix = model
        .get("continuing_subword_prefix")
        .and_then(Value::as_str)
        .map_or(0, str::len);
    let longest = model
        .get("vocab")
        .and_then(Value::as_object)
        .and_then(|v| v.keys().map(String::len).max())
        .unwrap_or(0);
    for (i, merge) in merges.iter().enumerate() {
        let pair = match merge {
            Value::String(s) => s.split_once(' '),
            Value::Array(p) => p
                .first()
                .and_then(Value::as_str)
                .zip(p.get(1).and_then(Value::as_str)),
            _ => None,
        };
        // Other shapes are `tokenizers`' own errors.
        let Some((a, b)) = pair else { continue };
        if b.len() < prefix {
            return Err(format!(
                "field \"model.merges\"[{i}]: second part {b:?} is shorter than the \
                 continuing_subword_prefix ({prefix} bytes)"
            ));
        }
        if a.len() + b.len() - prefix > longest {
            return Err(format!(
                "field \"model.merges\"[{i}]: {a:?} + {b:?} makes a token longer than any in \
                 the vocabulary ({longest} bytes)"
            ));
        }
    }
    Ok(())
}

/// `tokenizers` loads a template that its encoder then panics on (indexing by the template's
/// names): a special token missing from `special_tokens`, or sequence B in the single template.
fn check_post_processor(p: &Value) -> std::result::Result<(), String> {
    let pieces = |field: &str| p.get(field).and_then(Value::as_array).into_iter().flatten();
    match p.get("type").and_then(Value::as_str) {
        Some("Sequence") => {
            let steps = p.get("processors").and_then(Value::as_array);
            steps
                .into_iter()
                .flatten()
                .try_for_each(check_post_processor)
        }
        Some("TemplateProcessing") => {
            let defined = p.get("special_tokens").and_then(Value::as_object);
            for field in ["single", "pair"] {
                for piece in pieces(field) {
                    if let Some(id) = piece.pointer("/SpecialToken/id").and_then(Value::as_str) {
                        if !defined.is_some_and(|d| d.contains_key(id)) {
                            return Err(format!(
                                "field \"post_processor.{field}\": special token {id:?} is not \
                                 defined in post_processor.special_tokens"
                            ));
                        }
                    }
                }
            }
            let b = |piece: &Value| piece.pointer("/Sequence/id") == Some(&Value::from("B"));
            if pieces("single").any(b) {
                return Err("field \"post_processor.single\": uses sequence B, which a \
                            single-text template does not have"
                    .into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The first characters of a text, for error messages.
fn preview(text: &str) -> String {
    let mut s: String = text.chars().take(40).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}
