//! A character-level tokenizer: one id per distinct character of a corpus, in sorted order (as
//! nanoGPT's `shakespeare_char` does).

use crate::error::{Error, Result};

/// Maps characters to ids `0..vocab_size` and back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharTokenizer {
    chars: Vec<char>,
}

impl CharTokenizer {
    /// The vocabulary of every distinct character in `text`, sorted.
    pub fn from_text(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        CharTokenizer { chars }
    }
    /// A tokenizer from a saved vocabulary string (see [`CharTokenizer::vocab_string`]);
    /// characters must be distinct.
    pub fn from_vocab(vocab: &str) -> Result<Self> {
        let chars: Vec<char> = vocab.chars().collect();
        let mut sorted = chars.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Format {
                file: "vocabulary".into(),
                msg: format!("character {:?} appears twice", w[0]),
            });
        }
        Ok(CharTokenizer { chars })
    }
    /// The vocabulary as one string (id order), for saving with a model.
    pub fn vocab_string(&self) -> String {
        self.chars.iter().collect()
    }
    /// Number of ids.
    pub fn vocab_size(&self) -> usize {
        self.chars.len()
    }
    /// The ids of `text`; an error names the first character outside the vocabulary and where
    /// it is.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                self.id(c).ok_or_else(|| Error::Format {
                    file: "text".into(),
                    msg: format!(
                        "character {c:?} (U+{:04X}) at position {i} is not in the {}-character vocabulary",
                        c as u32,
                        self.chars.len()
                    ),
                })
            })
            .collect()
    }
    /// The id of one character.
    pub fn id(&self, c: char) -> Option<u32> {
        self.chars
            .binary_search(&c)
            .ok()
            .map(|i| i as u32)
            .or_else(|| {
                // Vocabularies loaded with from_vocab need not be sorted.
                self.chars.iter().position(|&x| x == c).map(|i| i as u32)
            })
    }
    /// The text of `ids`; an error for an id outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        ids.iter()
            .map(|&i| {
                self.chars
                    .get(i as usize)
                    .copied()
                    .ok_or_else(|| Error::Format {
                        file: "ids".into(),
                        msg: format!("id {i} is outside the vocabulary of {}", self.chars.len()),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_sorted_ids() {
        let t = CharTokenizer::from_text("hello world");
        assert_eq!(t.vocab_string(), " dehlorw");
        let ids = t.encode("hold").unwrap();
        assert_eq!(ids, vec![3, 5, 4, 1]);
        assert_eq!(t.decode(&ids).unwrap(), "hold");
        let again = CharTokenizer::from_vocab(&t.vocab_string()).unwrap();
        assert_eq!(again, t);
    }

    #[test]
    fn unknown_character_is_named() {
        let t = CharTokenizer::from_text("abc");
        let e = t.encode("abZc").unwrap_err().to_string();
        assert!(e.contains("'Z'") && e.contains("position 2"), "{e}");
        assert!(t.decode(&[7]).is_err());
        assert!(CharTokenizer::from_vocab("aba").is_err());
    }
}
