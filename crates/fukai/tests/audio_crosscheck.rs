//! The audio front end against references stored by `scripts/torch_fixtures.py` (family
//! `audio`): power STFT against `torch.stft` in f64, mel filterbanks, `power_to_db` and MFCC
//! against librosa. Agreement within `|fukai - ref| <= 1e-5 * max(1, |ref|)`.

mod common;

use common::{Fixtures, TOL};
use fukai::audio::{
    mfcc, power_to_db, spectrogram, MelConfig, MelFilterbank, MelScale, PadMode, Spectrogram,
    StftConfig, Window,
};
use fukai::Tensor;

fn as_tensor(s: &Spectrogram) -> Tensor {
    Tensor::from_vec(s.data.clone(), &[s.bins, s.frames]).unwrap()
}

fn signal(fx: &Fixtures, case: &str) -> Vec<f32> {
    fx.tensor(case, "x").to_vec::<f32>().unwrap()
}

fn htk_40() -> MelFilterbank {
    MelFilterbank::new(&MelConfig {
        sample_rate: 8000,
        n_fft: 256,
        n_mels: 40,
        f_min: 20.0,
        f_max: 4000.0,
        scale: MelScale::Htk,
        slaney_norm: false,
    })
    .unwrap()
}

#[test]
fn audio_front_end_matches_torch_and_librosa() {
    let fx = Fixtures::open("ops_audio.safetensors");
    let stfts = [
        ("stft_reflect", 256, 80, 256, PadMode::Reflect, true),
        ("stft_win200_zeros", 256, 64, 200, PadMode::Zeros, true),
        ("stft_nocenter", 128, 50, 128, PadMode::Reflect, false),
    ];
    for (case, n_fft, hop, win, pad_mode, center) in stfts {
        let cfg = StftConfig {
            n_fft,
            hop_length: hop,
            win_length: win,
            window: Window::Hann,
            center,
            pad_mode,
        };
        let got = spectrogram(&signal(&fx, case), &cfg, 2.0).map(|s| as_tensor(&s));
        let outcome = got
            .map_err(|e| e.to_string())
            .and_then(|g| Fixtures::error(&g, &fx.tensor(case, "out")));
        fx.record(case, outcome, TOL);
    }

    let mels = [
        ("mel_htk", 8000, 256, 40, 20.0, 4000.0, MelScale::Htk, false),
        (
            "mel_slaney",
            16000,
            512,
            64,
            0.0,
            8000.0,
            MelScale::Slaney,
            true,
        ),
        (
            "mel_htk_slaneynorm",
            8000,
            256,
            32,
            100.0,
            3500.0,
            MelScale::Htk,
            true,
        ),
    ];
    for (case, sr, n_fft, n_mels, f_min, f_max, scale, slaney_norm) in mels {
        let bank = MelFilterbank::new(&MelConfig {
            sample_rate: sr,
            n_fft,
            n_mels,
            f_min,
            f_max,
            scale,
            slaney_norm,
        })
        .unwrap();
        let got = Tensor::from_vec(bank.weights, &[bank.n_mels, bank.n_freqs]).unwrap();
        fx.record(case, Fixtures::error(&got, &fx.tensor(case, "out")), TOL);
    }

    let power = spectrogram(&signal(&fx, "melspec"), &StftConfig::new(256, 80), 2.0).unwrap();
    let mel = htk_40().apply(&power).unwrap();
    fx.record(
        "melspec",
        Fixtures::error(&as_tensor(&mel), &fx.tensor("melspec", "out")),
        TOL,
    );
    let power = spectrogram(&signal(&fx, "logmel"), &StftConfig::new(256, 80), 2.0).unwrap();
    let mut db = htk_40().apply(&power).unwrap();
    power_to_db(&mut db.data, 1e-10, Some(80.0));
    fx.record(
        "logmel",
        Fixtures::error(&as_tensor(&db), &fx.tensor("logmel", "out")),
        TOL,
    );

    for (case, n_mfcc, lifter) in [("mfcc13", 13, 0.0), ("mfcc20_lifter22", 20, 22.0)] {
        let x = fx.tensor(case, "x");
        let log_mel = Spectrogram {
            data: x.to_vec::<f32>().unwrap(),
            bins: x.shape()[0],
            frames: x.shape()[1],
        };
        let got = mfcc(&log_mel, n_mfcc, lifter).unwrap();
        fx.record(
            case,
            Fixtures::error(&as_tensor(&got), &fx.tensor(case, "out")),
            TOL,
        );
    }
    fx.finish();
}
