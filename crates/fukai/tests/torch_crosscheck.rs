//! Cross-checks fukai's ops against PyTorch: outputs and gradients of `sum(out * w)` for the
//! cases stored in `tests/fixtures/ops_*.safetensors` by `scripts/torch_fixtures.py` (PyTorch
//! in f64, rounded to f32). fukai runs in f32; agreement is required within
//! `|fukai - torch| <= 1e-5 * max(1, |torch|)`. Run with `--nocapture` to see the worst errors.
//! The conv / pool families live in `torch_crosscheck_conv.rs`.

mod common;

use common::Fixtures;
use fukai::{Result, Tensor};

type Un = fn(&Tensor) -> Result<Tensor>;
type Bin = fn(&Tensor, &Tensor) -> Result<Tensor>;

#[test]
fn unary() {
    let fx = Fixtures::open("ops_unary.safetensors");
    let cases: &[(&str, Un)] = &[
        ("neg", Tensor::neg),
        ("exp", Tensor::exp),
        ("exp_wide", Tensor::exp),
        ("log", Tensor::log),
        ("sqrt", Tensor::sqrt),
        ("rsqrt", Tensor::rsqrt),
        ("recip", Tensor::recip),
        ("abs", Tensor::abs),
        ("square", Tensor::square),
        ("sin", Tensor::sin),
        ("cos", Tensor::cos),
        ("tanh", Tensor::tanh),
        ("tanh_wide", Tensor::tanh),
        ("sigmoid", Tensor::sigmoid),
        ("sigmoid_wide", Tensor::sigmoid),
        ("gelu", Tensor::gelu),
        ("gelu_wide", Tensor::gelu),
        ("gelu_tanh", Tensor::gelu_tanh),
        ("gelu_tanh_wide", Tensor::gelu_tanh),
        ("silu", Tensor::silu),
        ("silu_wide", Tensor::silu),
        ("relu", Tensor::relu),
        ("leaky_relu", |x| x.leaky_relu(0.01)),
        ("leaky_relu_0p2", |x| x.leaky_relu(0.2)),
        ("clamp", |x| x.clamp(-0.5, 0.75)),
        ("powf_2p5", |x| x.powf(2.5)),
        ("powf_m1p5", |x| x.powf(-1.5)),
        ("powf_0p5", |x| x.powf(0.5)),
        ("powf_2", |x| x.powf(2.0)),
        ("powf_3", |x| x.powf(3.0)),
        ("powf_0", |x| x.powf(0.0)),
        ("affine", |x| x.affine(-2.0, 0.5)),
    ];
    for &(case, f) in cases {
        fx.check1(case, &["x"], |t, _| f(&t[0]));
    }
    fx.finish();
}

#[test]
fn binary_broadcast() {
    let fx = Fixtures::open("ops_binary.safetensors");
    let ops: &[(&str, Bin)] = &[
        ("add", Tensor::add),
        ("sub", Tensor::sub),
        ("mul", Tensor::mul),
        ("div", Tensor::div),
        ("maximum", Tensor::maximum),
        ("minimum", Tensor::minimum),
        ("pow", Tensor::pow),
    ];
    // Shapes: [3,4]&[3,4], [2,3,4]&[4], [3,1]&[1,4], [2,1,4]&[3,1], [4]&[2,3,4], [2,3]&[].
    for shape in 0..6 {
        for &(op, f) in ops {
            fx.check1(&format!("{op}_s{shape}"), &["a", "b"], |t, _| {
                f(&t[0], &t[1])
            });
        }
    }
    fx.check1("pow_zero", &["a", "b"], |t, _| t[0].pow(&t[1]));
    fx.check1("mul_views", &["a", "b"], |t, _| {
        t[0].t()?.mul(&t[1].expand(&[3, 4])?)
    });
    fx.finish();
}

#[test]
fn reductions() {
    let fx = Fixtures::open("ops_reduce.safetensors");
    let dim_sets: &[(&str, &[isize], bool)] = &[
        ("1", &[1], false),
        ("02_keep", &[0, 2], true),
        ("2", &[-1], false),
        ("012", &[0, 1, 2], false),
        ("12_keep", &[1, 2], true),
    ];
    for &(tag, dims, keep) in dim_sets {
        fx.check1(&format!("sum_d{tag}"), &["x"], |t, _| t[0].sum(dims, keep));
        fx.check1(&format!("mean_d{tag}"), &["x"], |t, _| {
            t[0].mean(dims, keep)
        });
        for corr in [0, 1] {
            fx.check1(&format!("var_c{corr}_d{tag}"), &["x"], |t, _| {
                t[0].var(dims, corr, keep)
            });
        }
    }
    fx.check1("sum_all", &["x"], |t, _| t[0].sum_all());
    fx.check1("mean_all", &["x"], |t, _| t[0].mean_all());
    fx.check1("max_all", &["x"], |t, _| t[0].max_all());
    fx.check1("min_all", &["x"], |t, _| t[0].min_all());
    for ties in ["", "_ties"] {
        for (dim, keep, tag) in [(0, false, "d0"), (1, false, "d1"), (-1, true, "d2_keep")] {
            fx.check(&format!("max_{tag}{ties}"), &["x"], |t, _| {
                let (v, i) = t[0].max_dim(dim, keep)?;
                Ok(vec![v, i])
            });
            fx.check(&format!("min_{tag}{ties}"), &["x"], |t, _| {
                let (v, i) = t[0].min_dim(dim, keep)?;
                Ok(vec![v, i])
            });
            fx.check1(&format!("argmax_{tag}{ties}"), &["x"], |t, _| {
                t[0].argmax(dim, keep)
            });
            fx.check1(&format!("argmin_{tag}{ties}"), &["x"], |t, _| {
                t[0].argmin(dim, keep)
            });
        }
    }
    for (dim, keep, tag) in [(0, false, "d0"), (1, false, "d1"), (-1, true, "d2_keep")] {
        fx.check1(&format!("logsumexp_{tag}"), &["x"], |t, _| {
            t[0].logsumexp(dim, keep)
        });
    }
    fx.check1("logsumexp_big", &["x"], |t, _| t[0].logsumexp(1, false));
    fx.check1("logsumexp_neginf", &["x"], |t, _| t[0].logsumexp(-1, false));
    fx.check1("logsumexp_allneginf", &["x"], |t, _| {
        t[0].logsumexp(-1, false)
    });
    fx.check("max_d1_nan", &["x"], |t, _| {
        let (v, i) = t[0].max_dim(1, false)?;
        Ok(vec![v, i])
    });
    fx.check1("argmax_d1_nan", &["x"], |t, _| t[0].argmax(1, false));
    fx.check1("sum_permuted", &["x"], |t, _| {
        t[0].permute(&[2, 0, 1])?.sum(&[1], false)
    });
    fx.check1("var_permuted", &["x"], |t, _| {
        t[0].permute(&[2, 0, 1])?.var(&[0, 2], 1, false)
    });
    fx.check("max_transposed", &["x"], |t, _| {
        let (v, i) = t[0].transpose(0, 2)?.max_dim(1, false)?;
        Ok(vec![v, i])
    });
    fx.check1("sum_empty_dim", &["x"], |t, _| t[0].sum(&[1], false));
    fx.check1("mean_empty_dim", &["x"], |t, _| t[0].mean(&[1], false));
    fx.finish();
}

#[test]
fn softmax() {
    let fx = Fixtures::open("ops_softmax.safetensors");
    for (dim, tag) in [(0, "d0"), (1, "d1"), (2, "d2"), (-1, "d2_neg")] {
        fx.check1(&format!("softmax_{tag}"), &["x"], |t, _| t[0].softmax(dim));
        fx.check1(&format!("log_softmax_{tag}"), &["x"], |t, _| {
            t[0].log_softmax(dim)
        });
    }
    fx.check1("softmax_wide", &["x"], |t, _| t[0].softmax(1));
    fx.check1("log_softmax_wide", &["x"], |t, _| t[0].log_softmax(1));
    fx.check1("softmax_1d", &["x"], |t, _| t[0].softmax(0));
    fx.check1("log_softmax_1d", &["x"], |t, _| t[0].log_softmax(0));
    fx.check1("softmax_masked", &["x"], |t, _| t[0].softmax(-1));
    fx.check1("log_softmax_masked", &["x"], |t, _| t[0].log_softmax(-1));
    fx.check1("softmax_allmasked", &["x"], |t, _| t[0].softmax(-1));
    fx.check1("softmax_transposed", &["x"], |t, _| {
        t[0].transpose(0, 2)?.softmax(1)
    });
    fx.check1("log_softmax_transposed", &["x"], |t, _| {
        t[0].transpose(0, 2)?.log_softmax(-1)
    });
    fx.finish();
}

#[test]
fn matmul() {
    let fx = Fixtures::open("ops_matmul.safetensors");
    let plain = [
        "mm",
        "bmm",
        "batch_bcast",
        "batch_bcast2",
        "batch_rhs2d",
        "dot",
        "vec_mat",
        "mat_vec",
        "vec_bmm",
        "bmm_vec",
        "k1",
        "big",
        "k0",
    ];
    for case in plain {
        fx.check1(case, &["a", "b"], |t, _| t[0].matmul(&t[1]));
    }
    let ab = &["a", "b"];
    fx.check1("at_b", ab, |t, _| t[0].t()?.matmul(&t[1]));
    fx.check1("a_bt", ab, |t, _| t[0].matmul(&t[1].t()?));
    fx.check1("at_bt", ab, |t, _| t[0].t()?.matmul(&t[1].t()?));
    fx.check1("batch_at_b", ab, |t, _| {
        t[0].transpose(-1, -2)?.matmul(&t[1])
    });
    fx.check1("batch_a_bt", ab, |t, _| {
        t[0].matmul(&t[1].transpose(-1, -2)?)
    });
    fx.check1("batch_at_rhs2d", ab, |t, _| {
        t[0].transpose(-1, -2)?.matmul(&t[1])
    });
    fx.check1("bcast_at_bt", ab, |t, _| {
        t[0].transpose(-1, -2)?.matmul(&t[1].transpose(-1, -2)?)
    });
    fx.finish();
}

#[test]
fn views_joins_indexing() {
    let fx = Fixtures::open("ops_index.safetensors");
    let x = &["x"];
    fx.check1("reshape", x, |t, _| t[0].reshape(&[6, 4]));
    fx.check1("reshape_permuted", x, |t, _| {
        t[0].permute(&[2, 0, 1])?.reshape(&[4, 6])
    });
    fx.check1("permute", x, |t, _| t[0].permute(&[2, 0, 1]));
    fx.check1("permute_neg", x, |t, _| t[0].permute(&[-1, 0, -2]));
    fx.check1("transpose", x, |t, _| t[0].transpose(0, 2));
    fx.check1("t", x, |t, _| t[0].t());
    fx.check1("narrow_d1", x, |t, _| t[0].narrow(1, 1, 2));
    fx.check1("narrow_last", x, |t, _| t[0].narrow(-1, 0, 3));
    fx.check1("narrow_exp", x, |t, _| t[0].narrow(2, 1, 2)?.exp());
    fx.check1("expand", x, |t, _| t[0].expand(&[2, 3, 4]));
    fx.check1("unsqueeze", x, |t, _| t[0].unsqueeze(1));
    fx.check1("squeeze", x, |t, _| t[0].squeeze(1));
    fx.check1("flatten", x, |t, _| t[0].flatten(1, 2));

    let abc = &["a", "b", "c"];
    fx.check1("cat_d0", abc, |t, _| Tensor::cat(t, 0));
    fx.check1("cat_d1", abc, |t, _| Tensor::cat(t, 1));
    fx.check1("cat_last", abc, |t, _| Tensor::cat(t, -1));
    fx.check1("cat_empty", abc, |t, _| Tensor::cat(t, 1));
    fx.check1("stack_d0", abc, |t, _| Tensor::stack(t, 0));
    fx.check1("stack_d1", abc, |t, _| Tensor::stack(t, 1));
    fx.check1("stack_d2_neg", abc, |t, _| Tensor::stack(t, -1));
    fx.check("split", x, |t, _| t[0].split(2, 1));
    fx.check("chunk_uneven", x, |t, _| t[0].chunk(3, 0));
    fx.check("chunk_fewer", x, |t, _| t[0].chunk(4, 1));

    fx.check1("gather_d0", x, |t, c| t[0].gather(0, &c.aux("index")?));
    fx.check1("gather_d1", x, |t, c| t[0].gather(1, &c.aux("index")?));
    fx.check1("gather_last", x, |t, c| t[0].gather(-1, &c.aux("index")?));
    fx.check1("index_select_d0", x, |t, c| {
        t[0].index_select(0, &c.aux("index")?)
    });
    fx.check1("index_select_d1", x, |t, c| {
        t[0].index_select(1, &c.aux("index")?)
    });
    let xs = &["x", "src"];
    fx.check1("scatter_add_d0", xs, |t, c| {
        t[0].scatter_add(0, &c.aux("index")?, &t[1])
    });
    fx.check1("scatter_add_d1", xs, |t, c| {
        t[0].scatter_add(1, &c.aux("index")?, &t[1])
    });
    fx.check1("index_add_d0", xs, |t, c| {
        t[0].index_add(0, &c.aux("index")?, &t[1])
    });
    fx.check1("index_add_d1", xs, |t, c| {
        t[0].index_add(1, &c.aux("index")?, &t[1])
    });
    fx.check1("embedding", &["weight"], |t, c| {
        t[0].embedding(&c.aux("ids")?)
    });

    fx.check1("where", &["a", "b"], |t, c| {
        c.aux("cond")?.where_cond(&t[0], &t[1])
    });
    fx.check1("where_full", &["a", "b"], |t, c| {
        c.aux("cond")?.where_cond(&t[0], &t[1])
    });
    fx.check1("masked_fill", x, |t, c| {
        t[0].masked_fill(&c.aux("mask")?, 2.5)
    });
    fx.check1("masked_fill_neginf", x, |t, c| {
        t[0].masked_fill(&c.aux("mask")?, f64::NEG_INFINITY)
    });
    fx.finish();
}
