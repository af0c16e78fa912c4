//! Cross-checks fukai's 3-D convolution, transposed convolutions and 3-D pooling against
//! PyTorch (see `torch_crosscheck.rs` for the method): `tests/fixtures/ops_conv3d.safetensors`,
//! written by `scripts/torch_fixtures.py conv3d`. Tolerance
//! `|fukai - torch| <= 1e-5 * max(1, |torch|)` on the output and every gradient.

#![allow(clippy::type_complexity)] // case tables are tuples of (name, stride, padding, ...)

mod common;

use common::Fixtures;

const XWB: &[&str] = &["x", "weight", "bias"];
const XW: &[&str] = &["x", "weight"];

#[test]
fn conv3d() {
    let fx = Fixtures::open_subset("ops_conv3d.safetensors", &["conv3d_"]);
    // (case, bias, stride, padding, dilation, groups)
    let cases: &[(&str, bool, [usize; 3], [usize; 3], [usize; 3], usize)] = &[
        ("conv3d_basic", true, [1; 3], [0; 3], [1; 3], 1),
        ("conv3d_stride_pad", true, [1, 2, 2], [1; 3], [1; 3], 1),
        ("conv3d_dilation", true, [2, 1, 1], [1, 2, 0], [2, 1, 3], 1),
        ("conv3d_groups", true, [1; 3], [0, 1, 1], [1; 3], 2),
        ("conv3d_nobias", false, [2; 3], [0, 1, 1], [1; 3], 1),
        ("conv3d_unbatched", true, [1; 3], [1, 0, 1], [1; 3], 1),
        ("conv3d_1x1x1", true, [1; 3], [0; 3], [1; 3], 1),
    ];
    for &(case, bias, s, p, d, g) in cases {
        fx.check1(case, if bias { XWB } else { XW }, |t, _| {
            t[0].conv3d(&t[1], t.get(2), s, p, d, g)
        });
    }
    fx.finish();
}

#[test]
fn conv_transpose() {
    let fx = Fixtures::open_subset("ops_conv3d.safetensors", &["conv_transpose"]);
    // (case, bias, stride, padding, output_padding, dilation, groups)
    let cases: &[(&str, bool, usize, usize, usize, usize, usize)] = &[
        ("conv_transpose1d_basic", true, 1, 0, 0, 1, 1),
        ("conv_transpose1d_stride_outpad", true, 3, 1, 2, 1, 1),
        ("conv_transpose1d_groups_dil", false, 1, 2, 0, 2, 2),
    ];
    for &(case, bias, s, p, op, d, g) in cases {
        fx.check1(case, if bias { XWB } else { XW }, |t, _| {
            t[0].conv_transpose1d(&t[1], t.get(2), s, p, op, d, g)
        });
    }
    let cases: &[(
        &str,
        bool,
        [usize; 2],
        [usize; 2],
        [usize; 2],
        [usize; 2],
        usize,
    )] = &[
        (
            "conv_transpose2d_basic",
            true,
            [1, 1],
            [0, 0],
            [0, 0],
            [1, 1],
            1,
        ),
        (
            "conv_transpose2d_up2",
            true,
            [2, 2],
            [0, 0],
            [0, 0],
            [1, 1],
            1,
        ),
        (
            "conv_transpose2d_stride_pad_outpad",
            true,
            [2, 2],
            [1, 1],
            [1, 0],
            [1, 1],
            1,
        ),
        (
            "conv_transpose2d_dil_outpad",
            true,
            [1, 1],
            [1, 0],
            [1, 0],
            [2, 1],
            1,
        ),
        (
            "conv_transpose2d_groups",
            false,
            [1, 2],
            [0, 1],
            [0, 0],
            [1, 1],
            2,
        ),
        (
            "conv_transpose2d_winograd",
            true,
            [1, 1],
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        ),
    ];
    for &(case, bias, s, p, op, d, g) in cases {
        fx.check1(case, if bias { XWB } else { XW }, |t, _| {
            t[0].conv_transpose2d(&t[1], t.get(2), s, p, op, d, g)
        });
    }
    let cases: &[(
        &str,
        bool,
        [usize; 3],
        [usize; 3],
        [usize; 3],
        [usize; 3],
        usize,
    )] = &[
        (
            "conv_transpose3d_basic",
            true,
            [1; 3],
            [0; 3],
            [0; 3],
            [1; 3],
            1,
        ),
        (
            "conv_transpose3d_up2",
            true,
            [2; 3],
            [0; 3],
            [0; 3],
            [1; 3],
            1,
        ),
        (
            "conv_transpose3d_stride_pad_outpad",
            true,
            [1, 2, 2],
            [1; 3],
            [0, 1, 1],
            [1; 3],
            1,
        ),
        (
            "conv_transpose3d_dil_groups",
            false,
            [1, 2, 1],
            [0, 1, 1],
            [1, 1, 0],
            [2, 1, 2],
            2,
        ),
        (
            "conv_transpose3d_unbatched",
            true,
            [2, 1, 2],
            [0; 3],
            [1, 0, 0],
            [1; 3],
            1,
        ),
    ];
    for &(case, bias, s, p, op, d, g) in cases {
        fx.check1(case, if bias { XWB } else { XW }, |t, _| {
            t[0].conv_transpose3d(&t[1], t.get(2), s, p, op, d, g)
        });
    }
    fx.finish();
}

#[test]
fn pool3d() {
    let fx = Fixtures::open_subset("ops_conv3d.safetensors", &["max_pool3d", "avg_pool3d"]);
    let x = &["x"];
    // (case, kernel, stride, padding)
    let pools: &[(&str, [usize; 3], [usize; 3], [usize; 3])] = &[
        ("max_pool3d_k2s2", [2; 3], [2; 3], [0; 3]),
        ("max_pool3d_k3s2p1", [3; 3], [2; 3], [1; 3]),
        ("max_pool3d_asym_overlap", [2, 3, 2], [1, 2, 1], [1, 1, 0]),
        ("max_pool3d_unbatched", [2; 3], [2, 1, 2], [0, 1, 1]),
        ("max_pool3d_ties", [2; 3], [1; 3], [1; 3]),
    ];
    for &(case, k, s, p) in pools {
        fx.check1(case, x, |t, _| t[0].max_pool3d(k, s, p));
    }
    // (case, kernel, stride, padding, count_include_pad)
    let pools: &[(&str, [usize; 3], [usize; 3], [usize; 3], bool)] = &[
        ("avg_pool3d_k2s2", [2; 3], [2; 3], [0; 3], true),
        ("avg_pool3d_k3s2p1_incl", [3; 3], [2; 3], [1; 3], true),
        ("avg_pool3d_k3s2p1_excl", [3; 3], [2; 3], [1; 3], false),
        (
            "avg_pool3d_asym_incl",
            [2, 3, 2],
            [1, 2, 1],
            [1, 1, 0],
            true,
        ),
        (
            "avg_pool3d_asym_excl",
            [2, 3, 2],
            [1, 2, 1],
            [1, 1, 0],
            false,
        ),
    ];
    for &(case, k, s, p, incl) in pools {
        fx.check1(case, x, |t, _| t[0].avg_pool3d(k, s, p, incl));
    }
    fx.finish();
}
