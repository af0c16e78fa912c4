//! Cross-checks fukai's convolution and pooling ops against PyTorch (see `torch_crosscheck.rs`
//! for the method): `tests/fixtures/ops_conv.safetensors`, written by
//! `scripts/torch_fixtures.py`. Tolerance `|fukai - torch| <= 1e-5 * max(1, |torch|)`.

#![allow(clippy::type_complexity)] // case tables are tuples of (name, stride, padding, dilation, ...)

mod common;

use common::Fixtures;

#[test]
fn conv_and_pool() {
    let fx = Fixtures::open("ops_conv.safetensors");
    let xwb = &["x", "weight", "bias"];
    // (case, stride, padding, dilation, groups), all with bias.
    let cases: &[(&str, [usize; 2], [usize; 2], [usize; 2], usize)] = &[
        ("conv2d_basic", [1, 1], [0, 0], [1, 1], 1),
        ("conv2d_stride2_pad1", [2, 2], [1, 1], [1, 1], 1),
        ("conv2d_asym", [2, 1], [1, 2], [1, 1], 1),
        ("conv2d_dilation", [1, 2], [2, 1], [2, 2], 1),
        ("conv2d_groups", [1, 1], [1, 1], [1, 1], 2),
        ("conv2d_depthwise", [1, 1], [1, 1], [1, 1], 3),
        ("conv2d_1x1", [1, 1], [0, 0], [1, 1], 1),
    ];
    for &(case, s, p, d, g) in cases {
        fx.check1(case, xwb, |t, _| {
            t[0].conv2d(&t[1], Some(&t[2]), s, p, d, g)
        });
    }
    fx.check1("conv2d_nobias", &["x", "weight"], |t, _| {
        t[0].conv2d(&t[1], None, [2, 2], [0, 1], [1, 1], 1)
    });

    // (case, stride, padding, dilation, groups)
    let cases: &[(&str, usize, usize, usize, usize)] = &[
        ("conv1d_basic", 1, 0, 1, 1),
        ("conv1d_stride_pad_dil", 2, 1, 2, 1),
        ("conv1d_groups", 1, 1, 1, 3),
    ];
    for &(case, s, p, d, g) in cases {
        fx.check1(case, xwb, |t, _| {
            t[0].conv1d(&t[1], Some(&t[2]), s, p, d, g)
        });
    }
    fx.check1("conv1d_nobias", &["x", "weight"], |t, _| {
        t[0].conv1d(&t[1], None, 3, 2, 1, 1)
    });

    let x = &["x"];
    // (case, kernel, stride, padding)
    let pools: &[(&str, [usize; 2], [usize; 2], [usize; 2])] = &[
        ("max_pool2d_k2s2", [2, 2], [2, 2], [0, 0]),
        ("max_pool2d_k3s2p1", [3, 3], [2, 2], [1, 1]),
        ("max_pool2d_asym", [3, 2], [1, 2], [1, 0]),
        ("max_pool2d_overlap", [3, 3], [1, 1], [0, 0]),
    ];
    for &(case, k, s, p) in pools {
        fx.check1(case, x, |t, _| t[0].max_pool2d(k, s, p));
    }
    // (case, kernel, stride, padding, count_include_pad)
    let pools: &[(&str, [usize; 2], [usize; 2], [usize; 2], bool)] = &[
        ("avg_pool2d_k2s2", [2, 2], [2, 2], [0, 0], true),
        ("avg_pool2d_k3s2p1_incl", [3, 3], [2, 2], [1, 1], true),
        ("avg_pool2d_k3s2p1_excl", [3, 3], [2, 2], [1, 1], false),
        ("avg_pool2d_asym_incl", [3, 2], [2, 1], [1, 1], true),
        ("avg_pool2d_asym_excl", [3, 2], [2, 1], [1, 1], false),
    ];
    for &(case, k, s, p, incl) in pools {
        fx.check1(case, x, |t, _| t[0].avg_pool2d(k, s, p, incl));
    }
    let adaptive: &[(&str, [usize; 2])] = &[
        ("adaptive_avg_pool2d_3x2", [3, 2]),
        ("adaptive_avg_pool2d_1x1", [1, 1]),
        ("adaptive_avg_pool2d_same", [4, 3]),
        ("adaptive_avg_pool2d_4x3", [4, 3]),
        ("adaptive_avg_pool2d_up", [5, 4]),
    ];
    for &(case, o) in adaptive {
        fx.check1(case, x, |t, _| t[0].adaptive_avg_pool2d(o));
    }
    fx.finish();
}
