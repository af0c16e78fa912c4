//! `fukai embed`: sentence embeddings from a Hugging Face model directory.

use fukai::models::SentenceEmbedder;
use std::io::{BufRead, Write};
use std::path::Path;

/// Embeds `texts` (or, when there are none, every line of standard input) and prints one
/// embedding per text: a JSON array with `json`, else the text's token count and first values.
pub fn run(model: &Path, json: bool, texts: Vec<String>) -> fukai::Result<()> {
    let embedder = SentenceEmbedder::from_dir(model)?;
    let texts = if texts.is_empty() {
        read_stdin()?
    } else {
        texts
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ids = embedder.tokenize(&refs)?;
    let embeddings = embedder.embed_ids(&ids)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write_err = |source| fukai::Error::Io {
        path: "<stdout>".into(),
        source,
    };
    for ((text, e), ids) in texts.iter().zip(&embeddings).zip(&ids) {
        let line = if json {
            serde_json::to_string(e).expect("floats serialize")
        } else {
            let head: Vec<String> = e.iter().take(4).map(|v| format!("{v:+.4}")).collect();
            format!(
                "{} tokens, dim {} [{} …]  {text}",
                ids.len(),
                e.len(),
                head.join(", ")
            )
        };
        writeln!(out, "{line}").map_err(write_err)?;
    }
    out.flush().map_err(write_err)
}

fn read_stdin() -> fukai::Result<Vec<String>> {
    std::io::stdin()
        .lock()
        .lines()
        .collect::<std::io::Result<Vec<String>>>()
        .map_err(|source| fukai::Error::Io {
            path: "<stdin>".into(),
            source,
        })
}
