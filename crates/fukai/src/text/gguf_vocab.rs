//! Tokenizers described by GGUF metadata (`tokenizer.ggml.*`), given as plain data so any
//! reader can build one: GPT-2-style byte-level BPE (`model = "gpt2"`: merges by rank over the
//! bytes of pre-tokenized words, as SmolLM2, Qwen and LLaMA 3 use) and SentencePiece-style BPE
//! (`model = "llama"`: merges by score over characters, bytes as `<0xXX>` tokens when a
//! character is not in the vocabulary). Control and user-defined tokens (`<|im_start|>`, ...)
//! are matched in the text as whole tokens before anything else.

use crate::bail;
use crate::error::{op_err, Result};
use regex::Regex;
use std::collections::HashMap;

/// GGUF's token types (`tokenizer.ggml.token_type`).
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// The tokenizer fields of a GGUF file, as plain values.
#[derive(Clone, Debug, Default)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE).
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer of a "gpt2" vocabulary ("gpt-2", "smollm",
    /// "starcoder"); `None` means "gpt-2".
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`: the text of each id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.merges`: "left right" pairs, most preferred first ("gpt2" only).
    pub merges: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token (empty: all normal).
    pub token_type: Vec<i32>,
    /// `tokenizer.ggml.scores`, one per token ("llama" only: higher merges first).
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`: stands for text the vocabulary cannot spell.
    pub unk: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`: [`GgufTokenizer::encode`] starts with BOS.
    pub add_bos: bool,
    /// `tokenizer.ggml.add_space_prefix` ("llama" only): a space before the text.
    pub add_space_prefix: bool,
}

enum Kind {
    /// Byte-level BPE: merge ranks keyed by "left right", the pre-tokenizer, and the byte of
    /// each character of the byte-to-character map.
    Bpe {
        ranks: HashMap<String, usize>,
        pre: Regex,
        split_digits: bool,
        char_byte: HashMap<char, u8>,
    },
    /// SentencePiece BPE: scores by id.
    Spm { scores: Vec<f32> },
}

/// A tokenizer built from [`GgufVocab`].
pub struct GgufTokenizer {
    kind: Kind,
    tokens: Vec<String>,
    types: Vec<i32>,
    ids: HashMap<String, u32>,
    /// Control and user-defined tokens by first character, longest first.
    special: HashMap<char, Vec<(String, u32)>>,
    bos: Option<u32>,
    eos: Option<u32>,
    pad: Option<u32>,
    unk: Option<u32>,
    add_bos: bool,
    add_space_prefix: bool,
}

/// GPT-2's map from bytes to printable characters: printable Latin-1 bytes stand for
/// themselves, the others for the characters from U+0100 on, in byte order. A byte-level BPE
/// vocabulary (GPT-2, Llama 3, SmolLM2) spells its tokens in these characters.
///
/// ```
/// let map = fukai::text::byte_chars();
/// assert_eq!((map[b'a' as usize], map[b' ' as usize]), ('a', '\u{120}'));
/// ```
pub fn byte_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in map.iter_mut().enumerate() {
        let printable = matches!(b, 33..=126 | 161..=172 | 174..=255);
        *slot = if printable {
            char::from(b as u8)
        } else {
            next += 1;
            char::from_u32(next - 1).expect("below the surrogates")
        };
    }
    map
}

/// GPT-2's pre-tokenizer pattern, without its `\s+(?!\S)` look-ahead (which `regex` lacks):
/// [`pre_tokenize`] gives a run of spaces back its last character instead.
const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

fn pre_tokenize<'a>(re: &Regex, text: &'a str, out: &mut Vec<&'a str>) {
    let mut at = 0;
    while let Some(m) = re.find_at(text, at) {
        let mut end = m.end();
        let s = m.as_str();
        // `\s+(?!\S)`: a run of spaces followed by a word leaves its last space to the word.
        if end < text.len() && s.chars().all(char::is_whitespace) {
            let last = s.chars().next_back().map_or(0, char::len_utf8);
            if s.len() > last {
                end -= last;
            }
        }
        out.push(&text[m.start()..end]);
        at = end;
    }
}

impl GgufTokenizer {
    /// Checks and indexes the vocabulary; errors name the field at fault.
    pub fn new(v: GgufVocab) -> Result<Self> {
        let n = v.tokens.len();
        if n == 0 || n > u32::MAX as usize {
            bail!(
                "tokenizer",
                "field `tokenizer.ggml.tokens`: expected 1..=2^32-1 tokens, found {n}"
            );
        }
        let types = if v.token_type.is_empty() {
            vec![NORMAL; n]
        } else if v.token_type.len() == n {
            v.token_type
        } else {
            bail!(
                "tokenizer",
                "field `tokenizer.ggml.token_type`: expected {n} entries (one per token), found {}",
                v.token_type.len()
            );
        };
        for (name, id) in [
            ("bos", v.bos),
            ("eos", v.eos),
            ("padding", v.pad),
            ("unknown", v.unk),
        ] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                bail!(
                    "tokenizer",
                    "field `tokenizer.ggml.{name}_token_id`: expected an id below {n}, found {id}"
                );
            }
        }
        let mut ids = HashMap::with_capacity(n);
        let mut special: HashMap<char, Vec<(String, u32)>> = HashMap::new();
        for (i, t) in v.tokens.iter().enumerate() {
            // The first id of a duplicated text wins, as in llama.cpp.
            ids.entry(t.clone()).or_insert(i as u32);
            if matches!(types[i], CONTROL | USER_DEFINED) {
                if let Some(c) = t.chars().next() {
                    special.entry(c).or_default().push((t.clone(), i as u32));
                }
            }
        }
        for list in special.values_mut() {
            list.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        }
        let kind = match v.model.as_str() {
            "gpt2" => {
                let split_digits = match v.pre.as_deref().unwrap_or("gpt-2") {
                    "gpt-2" => false,
                    "smollm" | "starcoder" => true,
                    other => bail!(
                        "tokenizer",
                        "field `tokenizer.ggml.pre`: pre-tokenizer {other:?} is not supported \
                         (supported: \"gpt-2\", \"smollm\", \"starcoder\")"
                    ),
                };
                let mut ranks = HashMap::with_capacity(v.merges.len());
                for (r, m) in v.merges.iter().enumerate() {
                    if m.split_once(' ').is_none() {
                        bail!(
                            "tokenizer",
                            "field `tokenizer.ggml.merges`: entry {r} {m:?} is not two tokens separated by a space"
                        );
                    }
                    ranks.entry(m.clone()).or_insert(r);
                }
                let char_byte = byte_chars()
                    .iter()
                    .enumerate()
                    .map(|(b, &c)| (c, b as u8))
                    .collect();
                Kind::Bpe {
                    ranks,
                    pre: Regex::new(GPT2_PATTERN).expect("the pattern is valid"),
                    split_digits,
                    char_byte,
                }
            }
            "llama" => {
                if v.scores.len() != n {
                    bail!(
                        "tokenizer",
                        "field `tokenizer.ggml.scores`: expected {n} entries (one per token), found {}",
                        v.scores.len()
                    );
                }
                Kind::Spm { scores: v.scores }
            }
            other => bail!(
                "tokenizer",
                "field `tokenizer.ggml.model`: {other:?} is not supported (\"gpt2\", \"llama\")"
            ),
        };
        Ok(GgufTokenizer {
            kind,
            tokens: v.tokens,
            types,
            ids,
            special,
            bos: v.bos,
            eos: v.eos,
            pad: v.pad,
            unk: v.unk,
            add_bos: v.add_bos,
            add_space_prefix: v.add_space_prefix,
        })
    }

    /// Tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }
    /// Beginning-of-sequence id.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    /// End-of-sequence id.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// Padding id.
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }
    /// The id of a token's exact text (`"<|im_end|>"`).
    pub fn id_of(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }
    /// Whether `id` is a control token (end of turn, start of text, ...), which chat front ends
    /// hide.
    pub fn is_control(&self, id: u32) -> bool {
        self.types.get(id as usize) == Some(&CONTROL)
    }

    /// The ids of `text`, after BOS when the vocabulary asks for it and `add_special` is set.
    /// Control and user-defined tokens written in the text become their ids.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let mut after_special = true;
        for (piece, special) in self.split_special(text) {
            match special {
                Some(id) => out.push(id),
                None => self.encode_text(piece, after_special, &mut out)?,
            }
            after_special = special.is_some();
        }
        Ok(out)
    }

    /// Splits `text` at the control and user-defined tokens it contains (leftmost, longest).
    fn split_special<'a>(&self, text: &'a str) -> Vec<(&'a str, Option<u32>)> {
        let mut parts = Vec::new();
        let (mut start, mut i) = (0, 0);
        while i < text.len() {
            let c = text[i..].chars().next().expect("i is on a char boundary");
            let hit = self
                .special
                .get(&c)
                .and_then(|list| list.iter().find(|(s, _)| text[i..].starts_with(s.as_str())));
            match hit {
                Some((s, id)) => {
                    if start < i {
                        parts.push((&text[start..i], None));
                    }
                    parts.push((&text[i..i + s.len()], Some(*id)));
                    i += s.len();
                    start = i;
                }
                None => i += c.len_utf8(),
            }
        }
        if start < text.len() {
            parts.push((&text[start..], None));
        }
        parts
    }

    fn id_or_unk(&self, piece: &str) -> Result<u32> {
        self.ids.get(piece).copied().or(self.unk).ok_or_else(|| {
            op_err(
                "tokenizer",
                format!("the vocabulary has no token {piece:?} and no unknown token"),
            )
        })
    }

    fn encode_text(&self, text: &str, after_special: bool, out: &mut Vec<u32>) -> Result<()> {
        match &self.kind {
            Kind::Bpe {
                ranks,
                pre,
                split_digits,
                ..
            } => {
                let mut words = Vec::new();
                if *split_digits {
                    // Every digit alone, then GPT-2's pattern on the text between them.
                    let mut start = 0;
                    for (i, c) in text.char_indices().filter(|(_, c)| c.is_numeric()) {
                        pre_tokenize(pre, &text[start..i], &mut words);
                        words.push(&text[i..i + c.len_utf8()]);
                        start = i + c.len_utf8();
                    }
                    pre_tokenize(pre, &text[start..], &mut words);
                } else {
                    pre_tokenize(pre, text, &mut words);
                }
                let chars = byte_chars();
                for w in words {
                    let syms: Vec<String> = w.bytes().map(|b| chars[b as usize].into()).collect();
                    let merged = merge_by(syms, |a, b| {
                        ranks.get(&format!("{a} {b}")).map(|&r| -(r as f64))
                    });
                    for s in merged {
                        out.push(self.id_or_unk(&s)?);
                    }
                }
            }
            Kind::Spm { scores } => {
                let mut s = String::with_capacity(text.len() + 3);
                if self.add_space_prefix && after_special {
                    s.push('▁');
                }
                s.extend(text.chars().map(|c| if c == ' ' { '▁' } else { c }));
                let syms: Vec<String> = s.chars().map(String::from).collect();
                let merged = merge_by(syms, |a, b| {
                    self.ids
                        .get(&format!("{a}{b}"))
                        .map(|&id| scores[id as usize] as f64)
                });
                for sym in merged {
                    if let Some(&id) = self.ids.get(&sym) {
                        out.push(id);
                        continue;
                    }
                    // Byte fallback: <0xXX> for each byte of a character the vocabulary lacks.
                    for b in sym.bytes() {
                        out.push(self.id_or_unk(&format!("<0x{b:02X}>"))?);
                    }
                }
            }
        }
        Ok(())
    }

    /// The bytes `id` stands for: a byte-level token's bytes, a `<0xXX>` token's byte, a
    /// SentencePiece piece with `▁` as a space, or a control token's own text.
    pub fn token_bytes(&self, id: u32) -> Result<Vec<u8>> {
        let text = self.tokens.get(id as usize).ok_or_else(|| {
            op_err(
                "tokenizer",
                format!(
                    "token id {id} is outside the vocabulary of {}",
                    self.tokens.len()
                ),
            )
        })?;
        if matches!(self.types[id as usize], CONTROL | USER_DEFINED) {
            return Ok(text.as_bytes().to_vec());
        }
        match &self.kind {
            Kind::Bpe { char_byte, .. } => text
                .chars()
                .map(|c| {
                    char_byte.get(&c).copied().ok_or_else(|| {
                        op_err(
                            "tokenizer",
                            format!("token {id} ({text:?}) is not byte-level text: {c:?}"),
                        )
                    })
                })
                .collect(),
            Kind::Spm { .. } => {
                let hex = text
                    .strip_prefix("<0x")
                    .and_then(|h| h.strip_suffix('>'))
                    .filter(|h| h.len() == 2);
                if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    return Ok(vec![b]);
                }
                Ok(text.replace('▁', " ").into_bytes())
            }
        }
    }

    /// The text of `ids` (invalid UTF-8 replaced by U+FFFD). A SentencePiece vocabulary that
    /// adds a space prefix loses it again here.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend(self.token_bytes(id)?);
        }
        let mut s = String::from_utf8_lossy(&bytes).into_owned();
        if matches!(self.kind, Kind::Spm { .. }) && self.add_space_prefix && s.starts_with(' ') {
            s.remove(0);
        }
        Ok(s)
    }
}

/// Merges adjacent symbols while some pair has a priority (higher first, leftmost on ties).
fn merge_by(mut syms: Vec<String>, priority: impl Fn(&str, &str) -> Option<f64>) -> Vec<String> {
    loop {
        let mut best: Option<(f64, usize)> = None;
        for i in 0..syms.len().saturating_sub(1) {
            if let Some(p) = priority(&syms[i], &syms[i + 1]) {
                if best.is_none_or(|(bp, _)| p > bp) {
                    best = Some((p, i));
                }
            }
        }
        let Some((_, i)) = best else {
            return syms;
        };
        let right = syms.remove(i + 1);
        syms[i].push_str(&right);
    }
}

/// Turns ids into text as they are generated: a character split over several tokens comes
/// out whole once its last byte arrives.
#[derive(Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        StreamDecoder::default()
    }
    /// The text completed by `id` (possibly empty).
    pub fn push(&mut self, tok: &GgufTokenizer, id: u32) -> Result<String> {
        self.pending.extend(tok.token_bytes(id)?);
        let (valid, keep) = match std::str::from_utf8(&self.pending) {
            Ok(_) => (self.pending.len(), 0),
            // Bytes that cannot start or continue a character are emitted (as U+FFFD) rather
            // than held forever; an unfinished character at the end waits.
            Err(e) => match e.error_len() {
                Some(_) => (self.pending.len(), 0),
                None => (e.valid_up_to(), self.pending.len() - e.valid_up_to()),
            },
        };
        let rest = self.pending.split_off(valid);
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        debug_assert_eq!(rest.len(), keep);
        self.pending = rest;
        Ok(out)
    }
    /// Whatever is still held (an unfinished character, as U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
