//! A character-level GPT trained on a text file, then sampled.
//!
//! `cargo run --release -p fukai --example gpt_text -- FILE.txt [STEPS]`

use fukai::models::{Gpt, GptConfig, Sampling};
use fukai::text::{CharTokenizer, TokenWindows};
use fukai::train::{Progress, TokenBatches, TrainConfig, Trainer};

fn main() -> fukai::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: gpt_text FILE.txt [STEPS]");
    let steps: usize = args
        .next()
        .map_or(600, |s| s.parse().expect("STEPS is a number"));
    let text = std::fs::read_to_string(&path).expect("a UTF-8 text file");
    let tok = CharTokenizer::from_text(&text);
    let ids = tok.encode(&text)?;
    // The last 10% of the text is held out for validation.
    let (train, val) = TokenWindows::split_tail(&ids, 64, 0.9)?;
    let val_starts = val.sample_starts(100, &mut fukai::Generator::new(1));

    fukai::manual_seed(0);
    let cfg = GptConfig {
        vocab: tok.vocab_size(),
        layers: 4,
        heads: 4,
        width: 128,
        context: 64,
        tie_weights: false,
    };
    let mut train_cfg = TrainConfig::new(steps.div_ceil(200), 12, 1e-3);
    train_cfg.steps_per_epoch = Some(200); // validate every 200 steps
    train_cfg.optimizer = "adamw".into();
    train_cfg.weight_decay = 0.1;
    train_cfg.decay_matrices_only = true;
    train_cfg.schedule = "cosine".into();
    train_cfg.warmup_steps = 50;
    train_cfg.clip_grad_norm = Some(1.0);
    let batches = TokenBatches::random(train, 12, 1, 200);
    let val = TokenBatches::fixed(val, val_starts, 50);
    let mut trainer = Trainer::new(Gpt::new(cfg.clone())?, train_cfg)?.hook(Progress::new());
    trainer.fit(&batches, Some(&val))?;

    // Sampling needs the GPT itself: rebuild it and copy the trained weights in.
    let gpt = Gpt::new(cfg)?;
    fukai::nn::Module::load_state_dict(&gpt, &trainer.model().state_dict())?;
    let prompt = tok.encode(&text[..1])?;
    let sampling = Sampling {
        temperature: 0.8,
        top_k: Some(40),
        top_p: None,
    };
    let out = gpt.generate(&prompt, 300, &sampling, 0, |_| {})?;
    println!("{}{}", &text[..1], tok.decode(&out)?);
    Ok(())
}
