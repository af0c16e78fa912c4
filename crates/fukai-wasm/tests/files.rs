//! The page's loaders on bad files: each error names the file the user picked wrong.

use fukai_wasm::{DigitModel, SentenceModel};

#[test]
fn corrupt_checkpoint_names_the_file() {
    let e = DigitModel::from_bytes(b"\x08\0\0\0\0\0\0\0{}xx", "broken.safetensors")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("broken.safetensors"), "{e}");
}

#[test]
#[ignore = "needs models/all-MiniLM-L6-v2 under $FUKAI_ASSETS"]
fn swapped_minilm_files_name_the_file() {
    let Some(assets) = fukai::testing::assets("models/all-MiniLM-L6-v2") else {
        return;
    };
    let dir = assets.join("models/all-MiniLM-L6-v2");
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let (config, weights, tokenizer) = (
        read("config.json"),
        read("model.safetensors"),
        read("tokenizer.json"),
    );
    let st = read("sentence_bert_config.json");

    let ok = SentenceModel::from_files(&config, &weights, &tokenizer, Some(&st)).unwrap();
    let native = fukai::models::SentenceEmbedder::from_dir(&dir).unwrap();
    let text = "Tokenizers in wasm: naïve café, 1,234 tokens!";
    assert_eq!(
        ok.tokenize(text).unwrap(),
        native.tokenize(&[text]).unwrap()[0]
    );
    assert_eq!(ok.embed(text).unwrap(), native.embed(&[text]).unwrap()[0]);

    // (config.json, model.safetensors, tokenizer.json, the file the error must name)
    type Case<'a> = (&'a [u8], &'a [u8], &'a [u8], &'a str);
    let cases: [Case; 3] = [
        (&tokenizer, &weights, &tokenizer, "config.json"),
        (&config, &config, &tokenizer, "model.safetensors"),
        (&config, &weights, &config, "tokenizer.json"),
    ];
    for (c, w, t, file) in cases {
        let e = SentenceModel::from_files(c, w, t, None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(file), "a wrong {file} gives {e}");
    }
    let e = SentenceModel::from_files(
        &config,
        &weights,
        &tokenizer,
        Some(b"{\"max_seq_length\": -3}"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("sentence_bert_config.json") && e.contains("max_seq_length"),
        "{e}"
    );
}
