//! Cross-checks interpolation and the ConvLSTM layer against PyTorch (see
//! `torch_crosscheck.rs` for the method): `tests/fixtures/ops_resample.safetensors`, written by
//! the `resample` family of `scripts/torch_fixtures.py`. Tolerance
//! `|fukai - torch| <= 1e-5 * max(1, |torch|)`.

mod common;

use common::Fixtures;
use fukai::nn::{ConvLstm2d, Module, Upsample};
use fukai::{Interpolation, Result, Tensor};

/// The mode a case records, from its name (`nearest_*`, `<linear mode>_*_ac` / `_hp`).
fn mode_of(case: &str) -> Interpolation {
    if case.starts_with("nearest") {
        Interpolation::Nearest
    } else {
        Interpolation::Linear {
            align_corners: case.ends_with("_ac"),
        }
    }
}

#[test]
fn interpolate_matches_torch() {
    let fx = Fixtures::open_subset(
        "ops_resample.safetensors",
        &["nearest", "linear", "bilinear", "trilinear"],
    );
    let cases = fx.cases();
    assert!(cases.len() >= 24, "{cases:?}");
    for case in &cases {
        fx.check1(case, &["x"], |t, c| {
            // The output size is the spatial part of the stored output's shape.
            let size = c.aux("out")?.shape()[2..].to_vec();
            t[0].interpolate(&size, mode_of(case))
        });
    }
    fx.finish();
}

#[test]
fn upsample_layer_matches_torch() {
    let fx = Fixtures::open_subset("ops_resample.safetensors", &["upsample"]);
    let linear = Interpolation::Linear {
        align_corners: false,
    };
    let cases: [(&str, Upsample); 2] = [
        ("upsample_scale2_bilinear", Upsample::new(&[2, 2], linear)),
        (
            "upsample_scale3_nearest",
            Upsample::new(&[3, 3], Interpolation::Nearest),
        ),
    ];
    for (case, layer) in cases {
        fx.check1(case, &["x"], |t, _| layer.forward(&t[0]));
    }
    fx.finish();
}

/// A 3x3 ConvLSTM with the given convolution weight and bias.
fn layer(weight: &Tensor, bias: &Tensor) -> Result<ConvLstm2d> {
    let s = weight.shape();
    let mut layer = ConvLstm2d::new(s[1] - s[0] / 4, s[0] / 4, s[2])?;
    layer.conv.weight = weight.clone();
    layer.conv.bias = Some(bias.clone());
    Ok(layer)
}

#[test]
fn conv_lstm_matches_torch() {
    let fx = Fixtures::open_subset("ops_resample.safetensors", &["convlstm"]);
    fx.check(
        "convlstm_seq",
        &["x", "h0", "c0", "weight", "bias"],
        |t, _| {
            let (out, (h, c)) = layer(&t[3], &t[4])?.forward_seq(&t[0], Some((&t[1], &t[2])))?;
            Ok(vec![out, h, c])
        },
    );
    fx.check(
        "convlstm_step",
        &["x", "h0", "c0", "weight", "bias"],
        |t, _| {
            let (h, c) = layer(&t[3], &t[4])?.cell(&t[0].squeeze(1)?, Some((&t[1], &t[2])))?;
            Ok(vec![h, c])
        },
    );
    fx.check("convlstm_zero_state", &["x", "weight", "bias"], |t, _| {
        let (out, (h, c)) = layer(&t[1], &t[2])?.forward_seq(&t[0], None)?;
        Ok(vec![out, h, c])
    });
    fx.finish();
}
