//! Launch glue for `optim.{wgsl,cu}`: SGD, Adam(W) and RMSprop updates in place on the device.

use super::{buf_of, elementwise::contiguous, groups, word, Kernel};
use crate::error::Result;
use crate::tensor::Tensor;

pub(crate) const SRC: super::Src = super::sources!("optim");

/// Which update, with its settings as f32 words after (n, weight offset, gradient offset).
pub(crate) enum Step {
    Sgd {
        fresh: bool,
        nesterov: bool,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    },
    Adam {
        decoupled: bool,
        step_size: f64,
        betas: (f64, f64),
        eps: f64,
        bc2_sqrt: f64,
        lr: f64,
        weight_decay: f64,
    },
    RmsProp {
        lr: f64,
        alpha: f64,
        eps: f64,
        momentum: f64,
        weight_decay: f64,
    },
}

fn f(v: f64) -> u32 {
    (v as f32).to_bits()
}

/// Updates the contiguous parameter `w` from gradient `g` and the state tensors the step keeps
/// (contiguous, from offset 0): SGD's momentum buffer in `s1` (none without momentum), Adam's
/// moments in `s1` and `s2`, RMSprop's mean square in `s1` and momentum buffer in `s2` (none
/// without momentum).
pub(crate) fn update(
    step: &Step,
    w: &Tensor,
    g: &Tensor,
    s1: Option<&Tensor>,
    s2: Option<&Tensor>,
) -> Result<()> {
    let g = contiguous(g)?;
    let n = w.numel();
    let mut meta = vec![
        word(n)?,
        word(w.layout().offset())?,
        word(g.layout().offset())?,
    ];
    let entry = match *step {
        Step::Sgd {
            fresh,
            nesterov,
            lr,
            momentum,
            weight_decay,
        } => {
            meta.extend([
                s1.is_some() as u32,
                fresh as u32,
                nesterov as u32,
                f(lr),
                f(momentum),
                f(weight_decay),
            ]);
            "sgd"
        }
        Step::Adam {
            decoupled,
            step_size,
            betas,
            eps,
            bc2_sqrt,
            lr,
            weight_decay,
        } => {
            meta.extend([
                decoupled as u32,
                f(step_size),
                f(betas.0),
                f(betas.1),
                f(eps),
                f(bc2_sqrt),
                f(lr),
                f(weight_decay),
            ]);
            "adam"
        }
        Step::RmsProp {
            lr,
            alpha,
            eps,
            momentum,
            weight_decay,
        } => {
            meta.extend([
                s2.is_some() as u32,
                f(lr),
                f(alpha),
                f(eps),
                f(momentum),
                f(weight_decay),
            ]);
            "rmsprop"
        }
    };
    let k = Kernel {
        file: "optim",
        src: SRC,
        entry,
        access: "wrww",
    };
    let ctx = super::ctx_of(w);
    // Absent state binds a one-word pooled buffer the kernel never touches (read-write
    // bindings may not alias, so each gets its own).
    let state = |s: Option<&Tensor>| -> Result<std::sync::Arc<super::GpuBuf>> {
        match s {
            Some(t) => Ok(buf_of(t)),
            None => Ok(std::sync::Arc::new(ctx.alloc(1)?)),
        }
    };
    let (b1, b2) = (state(s1)?, state(s2)?);
    ctx.launch(&k, &meta, &[&buf_of(w), &buf_of(&g), &b1, &b2], groups(n)?);
    Ok(())
}
