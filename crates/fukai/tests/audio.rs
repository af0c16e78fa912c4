//! Audio I/O and front end: WAV decoding in every supported format (files written with hound),
//! clear errors for truncated and unsupported files, the resampler's frequency response, STFT
//! and mel sanity, deterministic SpecAugment, and manifest datasets with their error messages.

use fukai::audio::{
    decode_wav, read_wav, resample, spectrogram, trim_silence, FeatureConfig, SpecAugment,
    StftConfig, TimeShift,
};
use fukai::data::{read_manifest, DataLoader, Dataset, InMemory, Transform};
use fukai::Generator;
use std::f64::consts::TAU;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fukai-audio-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn spec(channels: u16, bits: u16, float: bool) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: 8000,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

fn write_int(path: &Path, s: hound::WavSpec, v: &[i32]) {
    let mut w = hound::WavWriter::create(path, s).unwrap();
    for &x in v {
        match s.bits_per_sample {
            8 => w.write_sample(x as i8).unwrap(),
            16 => w.write_sample(x as i16).unwrap(),
            _ => w.write_sample(x).unwrap(),
        }
    }
    w.finalize().unwrap();
}

#[test]
fn wav_reads_every_supported_format() {
    let dir = tmp_dir("formats");
    let cases: [(u16, &[i32]); 4] = [
        (8, &[-128, -1, 0, 1, 127]),
        (16, &[-32768, -1, 0, 12345, 32767]),
        (24, &[-8_388_608, -1, 0, 4_000_000, 8_388_607]),
        (32, &[i32::MIN, -1, 0, 1 << 30, i32::MAX]),
    ];
    for (bits, vals) in cases {
        let p = dir.join(format!("pcm{bits}.wav"));
        write_int(&p, spec(1, bits, false), vals);
        let w = read_wav(&p).unwrap();
        assert_eq!(
            (w.sample_rate, w.channels, w.bits_per_sample, w.float),
            (8000, 1, bits, false)
        );
        let scale = (1u64 << (bits - 1)) as f64;
        let want: Vec<f32> = vals.iter().map(|&v| (v as f64 / scale) as f32).collect();
        assert_eq!(w.samples, want, "{bits}-bit");
        assert!(w.samples.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
    // 32-bit float keeps its values.
    let p = dir.join("f32.wav");
    let vals = [-1.0f32, -0.25, 0.0, 0.123_456_7, 0.999];
    let mut w = hound::WavWriter::create(&p, spec(1, 32, true)).unwrap();
    vals.iter().for_each(|&v| w.write_sample(v).unwrap());
    w.finalize().unwrap();
    let got = read_wav(&p).unwrap();
    assert!(got.float);
    assert_eq!(got.samples, vals);
    // Stereo is mixed to mono by averaging the channels.
    let p = dir.join("stereo.wav");
    write_int(
        &p,
        spec(2, 16, false),
        &[16384, 0, -16384, -16384, 32767, -32768],
    );
    let got = read_wav(&p).unwrap();
    assert_eq!(got.channels, 2);
    assert_eq!(got.samples, vec![0.25, -0.5, -0.5 / 32768.0]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A canonical 44-byte WAV header.
fn header(format_tag: u16, channels: u16, bits: u16, data_len: u32) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_len).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&format_tag.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&8000u32.to_le_bytes());
    h.extend_from_slice(&(8000 * block as u32).to_le_bytes());
    h.extend_from_slice(&block.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

#[test]
fn wav_errors_name_the_file_and_the_problem() {
    let dir = tmp_dir("bad");
    // Truncated data: the header promises 1000 samples, the file holds 600.
    let p = dir.join("short.wav");
    write_int(&p, spec(1, 16, false), &[7; 1000]);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..44 + 1200]).unwrap();
    let e = read_wav(&p).unwrap_err().to_string();
    assert!(e.contains("short.wav") && e.contains("truncated"), "{e}");
    assert!(e.contains("1000 frames") && e.contains("600"), "{e}");
    // A header promising 4 GB must not allocate 4 GB.
    let mut huge = header(1, 1, 16, u32::MAX - 101);
    huge.extend_from_slice(&[0; 64]);
    let e = decode_wav(&huge, "huge.wav").unwrap_err().to_string();
    assert!(e.contains("huge.wav") && e.contains("truncated"), "{e}");
    // Cut inside the header.
    let e = decode_wav(&bytes[..20], "cut.wav").unwrap_err().to_string();
    assert!(e.contains("cut.wav"), "{e}");
    // Not a WAV at all.
    let e = decode_wav(b"ID3 this is an mp3", "song.mp3")
        .unwrap_err()
        .to_string();
    assert!(e.contains("song.mp3") && e.contains("WAV"), "{e}");
    // Unsupported sample formats: A-law, mu-law, 64-bit float.
    for (tag, bits, what) in [(6u16, 8u16, "alaw"), (7, 8, "mulaw"), (3, 64, "f64")] {
        let mut b = header(tag, 1, bits, 16);
        b.extend_from_slice(&[0; 16]);
        let name = format!("{what}.wav");
        let e = decode_wav(&b, &name).unwrap_err().to_string();
        assert!(
            e.contains(&name) && e.contains("supported: integer PCM"),
            "{e}"
        );
    }
    // Non-finite float samples.
    let mut b = header(3, 1, 32, 8);
    b.extend_from_slice(&0.5f32.to_le_bytes());
    b.extend_from_slice(&f32::NAN.to_le_bytes());
    let e = decode_wav(&b, "nan.wav").unwrap_err().to_string();
    assert!(e.contains("nan.wav") && e.contains("sample 1"), "{e}");
    // A missing file is an I/O error naming it.
    let e = read_wav(&dir.join("nope.wav")).unwrap_err().to_string();
    assert!(e.contains("nope.wav"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn tone(freq: f64, rate: u32, secs: f64, amp: f64) -> Vec<f32> {
    let n = (secs * rate as f64) as usize;
    (0..n)
        .map(|i| (amp * (TAU * freq * i as f64 / rate as f64).sin()) as f32)
        .collect()
}

/// Least-squares fit of `a sin + b cos` at `freq` over the middle half of `x`: the amplitude
/// and the RMS of what the fit leaves over.
fn fit(x: &[f32], freq: f64, rate: u32) -> (f64, f64) {
    let (lo, hi) = (x.len() / 4, 3 * x.len() / 4);
    let (mut ss, mut sc, mut cc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &v) in x.iter().enumerate().take(hi).skip(lo) {
        let (s, c) = (TAU * freq * i as f64 / rate as f64).sin_cos();
        ss += s * s;
        sc += s * c;
        cc += c * c;
        xs += v as f64 * s;
        xc += v as f64 * c;
    }
    let det = ss * cc - sc * sc;
    let (a, b) = ((xs * cc - xc * sc) / det, (xc * ss - xs * sc) / det);
    let mut res = 0.0;
    for (i, &v) in x.iter().enumerate().take(hi).skip(lo) {
        let (s, c) = (TAU * freq * i as f64 / rate as f64).sin_cos();
        res += (v as f64 - a * s - b * c).powi(2);
    }
    ((a * a + b * b).sqrt(), (res / (hi - lo) as f64).sqrt())
}

fn rms_mid(x: &[f32]) -> f64 {
    let m = &x[x.len() / 4..3 * x.len() / 4];
    (m.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / m.len() as f64).sqrt()
}

#[test]
fn resampling_keeps_frequency_and_amplitude() {
    for (from, to, freq) in [
        (8000, 16000, 1000.0),
        (16000, 8000, 1000.0),
        (16000, 8000, 3000.0),
        (44100, 16000, 3000.0),
        (22050, 8000, 440.0),
        (8000, 44100, 2500.0),
        (8000, 8001, 1234.0),
    ] {
        let x = tone(freq, from, 0.5, 0.8);
        let y = resample(&x, from, to).unwrap();
        assert_eq!(
            y.len(),
            (x.len() as u64 * to as u64).div_ceil(from as u64) as usize
        );
        let (amp, residual) = fit(&y, freq, to);
        assert!(
            (amp - 0.8).abs() < 0.8 * 2e-3 && residual < 1e-3,
            "{from} -> {to} Hz, {freq} Hz tone: amplitude {amp}, residual {residual}"
        );
    }
    // Equal rates copy.
    let x = tone(300.0, 8000, 0.1, 0.5);
    assert_eq!(resample(&x, 8000, 8000).unwrap(), x);
    assert!(resample(&x, 0, 8000).is_err());
}

#[test]
fn downsampling_removes_what_would_alias() {
    // Tones above the new Nyquist (4 kHz) would fold back to 8000 - f; they must vanish.
    for (freq, floor_db) in [
        (4100.0, -60.0),
        (5000.0, -80.0),
        (6000.0, -80.0),
        (7900.0, -80.0),
    ] {
        let y = resample(&tone(freq, 16000, 0.5, 1.0), 16000, 8000).unwrap();
        let db = 20.0 * (rms_mid(&y) / (0.5f64).sqrt()).log10();
        assert!(db < floor_db, "{freq} Hz tone after 16k -> 8k: {db:.1} dB");
    }
    // 44.1 kHz -> 16 kHz: a 10 kHz tone (aliasing to 6 kHz) disappears too.
    let y = resample(&tone(10000.0, 44100, 0.3, 1.0), 44100, 16000).unwrap();
    assert!(rms_mid(&y) < 1e-4, "{}", rms_mid(&y));
}

#[test]
fn stft_puts_a_tone_in_its_bin_and_mel_features_have_their_shape() {
    let x = tone(1000.0, 8000, 1.0, 0.5);
    let s = spectrogram(&x, &StftConfig::new(256, 80), 1.0).unwrap();
    assert_eq!((s.bins, s.frames), (129, 101));
    // 1000 Hz is bin 32 of a 256-point FFT at 8 kHz; a Hann window's peak magnitude is
    // amplitude * n_fft / 4.
    let mid = 50;
    let col: Vec<f32> = (0..s.bins).map(|b| s.data[b * s.frames + mid]).collect();
    let peak = (0..col.len()).fold(0, |b, i| if col[i] > col[b] { i } else { b });
    assert_eq!(peak, 32);
    assert!((col[32] - 0.5 * 256.0 / 4.0).abs() < 1e-3, "{}", col[32]);
    assert!(spectrogram(&x[..100], &StftConfig::new(256, 80), 2.0).is_err());

    let cfg = FeatureConfig {
        sample_rate: 8000,
        n_fft: 256,
        hop_length: 80,
        ..FeatureConfig::default()
    };
    let wav = fukai::audio::Wav {
        samples: tone(1000.0, 16000, 0.5, 0.3),
        sample_rate: 16000,
        channels: 1,
        bits_per_sample: 16,
        float: false,
    };
    let f = cfg.extract(&wav).unwrap();
    let [c, h, w] = cfg.shape();
    assert_eq!(f.len(), c * h * w);
    assert_eq!((h, w), (40, 101));
    // The loudest band at frame 10 is the one whose triangle peaks nearest 1 kHz.
    let band = (0..h).fold(0, |b, i| if f[i * w + 10] > f[b * w + 10] { i } else { b });
    let mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
    let step = (mel(4000.0) - mel(20.0)) / 41.0;
    let want = ((mel(1000.0) - mel(20.0)) / step).round() as usize - 1;
    assert_eq!(band, want);
    let mfcc = FeatureConfig { n_mfcc: 13, ..cfg };
    assert_eq!(mfcc.shape(), [1, 13, 101]);
    assert_eq!(mfcc.extract(&wav).unwrap().len(), 13 * 101);
}

#[test]
fn trimming_finds_the_sound() {
    let mut x = vec![0f32; 1000];
    x.extend(tone(500.0, 8000, 0.25, 0.5));
    x.extend(vec![0f32; 700]);
    let (a, b) = trim_silence(&x, 40.0, 256, 40);
    assert!(a <= 1000 && a + 256 >= 1000, "start {a}");
    assert!((3000..=3000 + 256).contains(&b), "end {b}");
    assert_eq!(trim_silence(&[0.0; 500], 40.0, 256, 40), (0, 0));
}

#[test]
fn spec_augment_is_deterministic_per_epoch_and_sample() {
    let shape = [1usize, 40, 101];
    let base: Vec<f32> = (0..40 * 101).map(|i| (i % 97) as f32).collect();
    let aug = SpecAugment {
        freq_masks: 2,
        freq_width: 6,
        time_masks: 2,
        time_width: 12,
    };
    let run = |epoch: u64, sample: u64| {
        let mut x = base.clone();
        aug.apply(&mut x, &shape, &mut Generator::new(3).fork(epoch, sample));
        x
    };
    assert_eq!(run(1, 5), run(1, 5));
    assert_ne!(run(1, 5), run(2, 5));
    assert_ne!(run(1, 5), run(1, 6));
    // Masks cover at most 2 x 6 rows and 2 x 12 columns, with the sample's mean.
    let mean = base.iter().map(|&v| v as f64).sum::<f64>() / base.len() as f64;
    for s in 0..50 {
        let x = run(0, s);
        let changed_rows = (0..40)
            .filter(|&r| (0..101).all(|t| x[r * 101 + t] == mean as f32))
            .count();
        let changed_cols = (0..101)
            .filter(|&t| (0..40).all(|r| x[r * 101 + t] == mean as f32))
            .count();
        assert!(changed_rows <= 12 && changed_cols <= 24);
        for (a, b) in x.iter().zip(&base) {
            assert!(a == b || *a == mean as f32);
        }
    }
    // Through the loader: same batches whatever the prefetching, different per epoch.
    let n = 16;
    let x: Vec<f32> = (0..n * 40 * 101).map(|i| ((i * 7) % 101) as f32).collect();
    let data: Arc<dyn Dataset> = Arc::new(InMemory::new(x, vec![0; n], &shape, 1).unwrap());
    let loader = |prefetch| {
        DataLoader::new(data.clone(), 4)
            .shuffle(9)
            .prefetch(prefetch)
            .transforms(vec![
                Box::new(TimeShift { max_shift: 10 }),
                Box::new(aug.clone()),
            ])
    };
    let batches = |l: DataLoader, epoch| -> Vec<Vec<f32>> {
        l.epoch(epoch)
            .map(|b| b.unwrap().x.to_vec::<f32>().unwrap())
            .collect()
    };
    assert_eq!(batches(loader(0), 2), batches(loader(3), 2));
    assert_ne!(batches(loader(0), 2), batches(loader(0), 3));
}

#[test]
fn time_shift_moves_every_row_together() {
    let shape = [1usize, 2, 8];
    let x: Vec<f32> = (0..16).map(|i| i as f32 + 1.0).collect();
    for s in 0..20 {
        let mut y = x.clone();
        TimeShift { max_shift: 3 }.apply(&mut y, &shape, &mut Generator::new(s));
        let shift = (0..8)
            .find(|&k| y[k] != 1.0)
            .map(|k| y[k] as i64 - 1 - k as i64);
        // Row 1 is row 0 plus 8 wherever neither holds the fill value.
        for t in 0..8 {
            if y[t] != 1.0 && y[8 + t] != 1.0 {
                assert_eq!(y[8 + t], y[t] + 8.0, "seed {s} shift {shift:?}");
            }
        }
    }
}

fn write_tone(path: &Path, freq: f64) {
    let v: Vec<i32> = tone(freq, 8000, 0.3, 0.5)
        .iter()
        .map(|&s| (s * 32767.0) as i32)
        .collect();
    write_int(path, spec(1, 16, false), &v);
}

#[test]
fn manifests_load_and_report_bad_rows_by_line() {
    let dir = tmp_dir("manifest");
    std::fs::create_dir_all(dir.join("wav")).unwrap();
    for (name, f) in [("a", 300.0), ("b", 900.0), ("c", 2000.0)] {
        write_tone(&dir.join(format!("wav/{name}.wav")), f);
    }
    let m = dir.join("manifest.csv");
    std::fs::write(
        &m,
        "file,label,split\nwav/a.wav,low,train\n\"wav/b.wav\",mid,train\nwav/c.wav,high,test\n",
    )
    .unwrap();
    let man = read_manifest(&m).unwrap();
    assert_eq!(man.class_names, vec!["high", "low", "mid"]);
    assert_eq!(
        man.rows.iter().map(|r| r.label).collect::<Vec<_>>(),
        vec![1, 2, 0]
    );
    assert_eq!(man.rows_in(Some("train")).len(), 2);
    let cfg = FeatureConfig {
        sample_rate: 8000,
        n_fft: 256,
        hop_length: 80,
        clip_seconds: 0.5,
        ..FeatureConfig::default()
    };
    let shape = cfg.shape();
    let extract = |p: &Path| cfg.extract_file(p);
    let ds = man.load(&man.rows_in(None), &shape, &extract).unwrap();
    assert_eq!(
        (ds.len(), ds.classes(), ds.sample_shape()),
        (3, 3, &shape[..])
    );

    let bad = |text: &str| {
        std::fs::write(&m, text).unwrap();
        read_manifest(&m).unwrap_err().to_string()
    };
    let e = bad("file,label\nwav/a.wav,0\nwav/missing.wav,1\n");
    assert!(
        e.contains("manifest.csv") && e.contains("line 3") && e.contains("missing.wav"),
        "{e}"
    );
    let e = bad("file,label\nwav/a.wav,0,extra\n");
    assert!(
        e.contains("line 2") && e.contains("3 fields, expected 2"),
        "{e}"
    );
    let e = bad("name,class\nwav/a.wav,0\n");
    assert!(e.contains("line 1") && e.contains("label"), "{e}");
    let e = bad("file,label\n\nwav/a.wav,\n");
    assert!(e.contains("line 3") && e.contains("empty"), "{e}");

    // A file that exists but does not decode: the manifest line and the file are named.
    let bytes = std::fs::read(dir.join("wav/b.wav")).unwrap();
    std::fs::write(dir.join("wav/b.wav"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(&m, "file,label\nwav/a.wav,0\nwav/b.wav,1\n").unwrap();
    let man = read_manifest(&m).unwrap();
    let Err(e) = man.load(&man.rows_in(None), &shape, &extract) else {
        panic!("a truncated file loaded")
    };
    let e = e.to_string();
    assert!(
        e.contains("manifest.csv") && e.contains("line 3") && e.contains("b.wav"),
        "{e}"
    );
    assert!(e.contains("truncated"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}
