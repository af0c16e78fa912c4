//! Bounds on every size a config can set, checked before anything is allocated from it. Each
//! limit says what the number means; a value past it is an error naming the field, the value
//! and the limit, never a multi-terabyte allocation or a million layers.

use super::RunConfig;
use crate::bail;
use crate::error::Result;

/// `field` must lie in `lo..=hi` (`what` says what the number is).
fn within(field: &str, v: usize, lo: usize, hi: usize, what: &str) -> Result<()> {
    if v < lo || v > hi {
        bail!("config", "{field} = {v} is outside {lo}..={hi} ({what})");
    }
    Ok(())
}

fn within_f(field: &str, v: f64, lo: f64, hi: f64, what: &str) -> Result<()> {
    if !(lo..=hi).contains(&v) {
        bail!("config", "{field} = {v} is outside {lo}..={hi} ({what})");
    }
    Ok(())
}

/// Checks every numeric field of `cfg` against its limit.
pub fn check(cfg: &RunConfig) -> Result<()> {
    let (d, m, t) = (&cfg.data, &cfg.model, &cfg.train);
    within(
        "data.crop_padding",
        d.crop_padding,
        0,
        1024,
        "pixels of padding",
    )?;
    if let Some([h, w]) = d.image_size {
        within("data.image_size[0]", h, 1, 8192, "image height in pixels")?;
        within("data.image_size[1]", w, 1, 8192, "image width in pixels")?;
    }
    within("data.channels", d.channels, 1, 4, "colour channels")?;
    within("data.lookback", d.lookback, 0, 1 << 20, "steps per window")?;
    within("data.horizon", d.horizon, 1, 1 << 16, "steps predicted")?;
    within(
        "data.max_categories",
        d.max_categories,
        1,
        crate::data::MAX_CATEGORIES,
        "distinct strings of a categorical column",
    )?;
    let video = [
        (
            "data.input_frames",
            d.input_frames,
            1,
            1000,
            "frames read per clip",
        ),
        ("data.clips", d.clips, 1, 1 << 24, "clips made"),
        ("data.frames", d.frames, 2, 1000, "frames per clip"),
        (
            "data.frame_size",
            d.frame_size,
            28,
            1024,
            "pixels per frame side",
        ),
        (
            "data.probe_labels",
            d.probe_labels,
            10,
            1 << 24,
            "labeled images for the probe",
        ),
        ("model.latent", m.latent, 1, 4096, "values per latent code"),
        ("model.patch", m.patch, 1, 16, "pixels per patch side"),
    ];
    for (field, v, lo, hi, what) in video {
        if let Some(v) = v {
            within(field, v, lo, hi, what)?;
        }
    }
    if let Some(b) = m.beta {
        within_f("model.beta", b, 0.0, 1e6, "weight of the KL term")?;
    }
    if let Some(n) = m.noise {
        within_f("model.noise", n, 0.0, 0.95, "share of input pixels masked")?;
    }
    if let Some(e) = m.embedding_dim {
        within(
            "model.embedding_dim",
            e,
            1,
            4096,
            "values per category embedding",
        )?;
    }
    if let Some(a) = &d.audio {
        let sr = a.sample_rate as usize;
        within("data.audio.sample_rate", sr, 1000, 384_000, "Hz")?;
        within_f(
            "data.audio.clip_seconds",
            a.clip_seconds,
            0.01,
            600.0,
            "seconds per clip",
        )?;
        within_f("data.audio.trim_db", a.trim_db, 0.0, 200.0, "dB")?;
        within_f("data.audio.top_db", a.top_db as f64, 0.0, 200.0, "dB")?;
        within_f(
            "data.audio.target_rms",
            a.target_rms as f64,
            0.0,
            1.0,
            "RMS of a clip",
        )?;
        within(
            "data.audio.n_fft",
            a.n_fft,
            2,
            1 << 16,
            "samples per STFT frame",
        )?;
        within(
            "data.audio.hop_length",
            a.hop_length,
            1,
            a.n_fft,
            "at most n_fft",
        )?;
        within("data.audio.n_mels", a.n_mels, 1, 512, "mel bands")?;
        within("data.audio.n_mfcc", a.n_mfcc, 0, a.n_mels, "at most n_mels")?;
        let nyquist = sr as f64 / 2.0;
        within_f(
            "data.audio.f_min",
            a.f_min,
            0.0,
            nyquist,
            "Hz, below Nyquist",
        )?;
        within_f("data.audio.f_max", a.f_max, 0.0, nyquist, "Hz, 0 = Nyquist")?;
        within(
            "data.audio.freq_masks",
            a.freq_masks,
            0,
            64,
            "masks per sample",
        )?;
        within(
            "data.audio.freq_width",
            a.freq_width,
            0,
            a.n_mels,
            "at most n_mels",
        )?;
        within(
            "data.audio.time_masks",
            a.time_masks,
            0,
            64,
            "masks per sample",
        )?;
        within("data.audio.time_width", a.time_width, 0, 1 << 16, "frames")?;
        within("data.audio.time_shift", a.time_shift, 0, 1 << 16, "frames")?;
    }
    within("len(model.hidden)", m.hidden.len(), 0, 256, "hidden layers")?;
    for (i, &h) in m.hidden.iter().enumerate() {
        within(
            &format!("model.hidden[{i}]"),
            h,
            1,
            1 << 16,
            "a layer's width",
        )?;
    }
    within(
        "len(model.channels)",
        m.channels.len(),
        0,
        16,
        "conv stages, each halving the image",
    )?;
    for (i, &c) in m.channels.iter().enumerate() {
        within(
            &format!("model.channels[{i}]"),
            c,
            1,
            1 << 13,
            "a stage's channels",
        )?;
    }
    within(
        "model.convs_per_stage",
        m.convs_per_stage,
        1,
        64,
        "convolutions per stage",
    )?;
    if let Some(g) = &m.gpt {
        within("model.gpt.layers", g.layers, 1, 512, "transformer blocks")?;
        within("model.gpt.heads", g.heads, 1, 1024, "attention heads")?;
        within("model.gpt.width", g.width, 1, 1 << 15, "model width")?;
        within("model.gpt.context", g.context, 1, 1 << 17, "positions")?;
        if g.width % g.heads != 0 {
            bail!(
                "config",
                "model.gpt.heads = {} does not divide model.gpt.width = {}",
                g.heads,
                g.width
            );
        }
    }
    within("train.epochs", t.epochs, 1, 1 << 20, "passes over the data")?;
    within(
        "train.batch_size",
        t.batch_size,
        1,
        1 << 20,
        "samples per step",
    )?;
    within(
        "train.accumulate",
        t.accumulate,
        1,
        1 << 16,
        "micro-batches per step",
    )?;
    within("train.warmup_steps", t.warmup_steps, 0, 1 << 30, "steps")?;
    if let Some(s) = t.steps_per_epoch {
        within("train.steps_per_epoch", s, 1, 1 << 30, "optimizer steps")?;
    }
    within(
        "train.keep_checkpoints",
        t.keep_checkpoints,
        1,
        1 << 16,
        "checkpoints kept",
    )?;
    within(
        "data.eval_windows",
        d.eval_windows,
        1,
        1 << 20,
        "windows per evaluation",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RunConfig {
        let text = r#"{"name": "t", "data": {"format": "table", "path": "x.csv"},
            "model": {"kind": "mlp", "hidden": [16]},
            "train": {"epochs": 2, "batch_size": 8, "lr": 0.01}}"#;
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_huge_number_names_its_field_and_limit() {
        let mut c = cfg();
        check(&c).unwrap();
        c.model.hidden = vec![16, 100_000_000_000];
        let e = check(&c).unwrap_err().to_string();
        assert!(
            e.contains("model.hidden[1] = 100000000000") && e.contains("1..=65536"),
            "{e}"
        );
        let mut c = cfg();
        c.data.eval_windows = 100_000_000_000;
        let e = check(&c).unwrap_err().to_string();
        assert!(e.contains("data.eval_windows"), "{e}");
        let mut c = cfg();
        c.data
            .audio
            .get_or_insert_with(Default::default)
            .clip_seconds = 1e9;
        let e = check(&c).unwrap_err().to_string();
        assert!(e.contains("data.audio.clip_seconds = 1000000000"), "{e}");
        c.data.audio.as_mut().unwrap().clip_seconds = 1.0;
        c.data.audio.as_mut().unwrap().freq_masks = 1_000_000_000;
        assert!(check(&c)
            .unwrap_err()
            .to_string()
            .contains("data.audio.freq_masks"));
    }
}
