//! One SGD step of a small tabular MLP: 13 → 64 → 64 → 3, ReLU, batch 32, cross-entropy written
//! as `-mean(gather(log_softmax(logits), y))`, backward, and an in-place SGD update through
//! `update_f32`. At this size the step is almost all per-op overhead; the goal is ≤ 0.33× the
//! PyTorch step (nn.Linear + F.cross_entropy + torch.optim.SGD).

use crate::harness::{budgeted, Line};
use fukai::{DType, Tensor};
use std::time::Duration;

const BATCH: usize = 32;
const DIMS: [usize; 4] = [13, 64, 64, 3];
const LR: f32 = 0.01;
/// Upper bound on the time spent measuring (fewer steps per sample when a step is slow).
const BUDGET: Duration = Duration::from_secs(5);

struct Mlp {
    /// (weight [in, out], bias [out]) per layer.
    layers: Vec<(Tensor, Tensor)>,
}

impl Mlp {
    fn new() -> fukai::Result<Mlp> {
        let mut layers = Vec::new();
        for w in DIMS.windows(2) {
            let (fan_in, fan_out) = (w[0], w[1]);
            let bound = 1.0 / (fan_in as f64).sqrt();
            let weight =
                Tensor::uniform(&[fan_in, fan_out], -bound, bound, DType::F32)?.with_grad()?;
            let bias = Tensor::uniform(&[fan_out], -bound, bound, DType::F32)?.with_grad()?;
            layers.push((weight, bias));
        }
        Ok(Mlp { layers })
    }

    fn forward(&self, x: &Tensor) -> fukai::Result<Tensor> {
        let mut h = x.clone();
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.matmul(w)?.add(b)?;
            if i < last {
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    fn params(&self) -> impl Iterator<Item = &Tensor> {
        self.layers.iter().flat_map(|(w, b)| [w, b])
    }
}

/// `-mean_i log_softmax(logits)[i, y_i]`; `y` is an i64 [batch, 1] index tensor.
fn cross_entropy(logits: &Tensor, y: &Tensor) -> fukai::Result<Tensor> {
    logits.log_softmax(1)?.gather(1, y)?.mean_all()?.neg()
}

/// `p -= lr · grad(p)` in place, then clears the gradient.
fn sgd_step(p: &Tensor) -> fukai::Result<()> {
    let Some(g) = p.grad() else {
        return Ok(());
    };
    let update = |w: &mut [f32], g: &[f32]| {
        for (w, g) in w.iter_mut().zip(g) {
            *w -= LR * g;
        }
    };
    if g.shares_storage(p) {
        // Would deadlock holding a read and a write lock on one buffer: copy first.
        let gv = g.to_vec::<f32>()?;
        p.update_f32(|w| update(w, &gv))?;
    } else {
        g.with_f32(|gv| p.update_f32(|w| update(w, gv)))??;
    }
    p.zero_grad();
    Ok(())
}

/// Times training steps and prints µs per step.
pub fn run(threads: usize, steps: usize, reps: usize) -> fukai::Result<()> {
    let model = Mlp::new()?;
    let x = Tensor::randn(&[BATCH, DIMS[0]], DType::F32)?;
    let labels: Vec<i64> = (0..BATCH as i64).map(|i| (i * 7 + 1) % 3).collect();
    let y = Tensor::from_vec(labels, &[BATCH, 1])?;
    let mut first_loss = None;
    let mut last_loss = 0.0;
    let mut err = None;
    let mut step = || -> fukai::Result<()> {
        let loss = cross_entropy(&model.forward(&x)?, &y)?;
        loss.backward()?;
        for p in model.params() {
            sgd_step(p)?;
        }
        let l = loss.item()?;
        first_loss.get_or_insert(l);
        last_loss = l;
        Ok(())
    };
    let st = budgeted(
        &mut || {
            if let Err(e) = step() {
                err = Some(e);
            }
        },
        steps.div_ceil(10),
        reps,
        steps.div_ceil(reps).max(1),
        BUDGET,
    );
    if let Some(e) = err {
        return Err(e);
    }
    // Training on one fixed batch must drive the loss down, or the step is not a real step.
    let first = first_loss.unwrap_or(f64::NAN);
    assert!(
        last_loss < first,
        "mlp_step: loss did not fall ({first} -> {last_loss})"
    );
    Line::new("mlp_step", "fukai", threads)
        .stats(&st)
        .num("us_per_step", st.median() * 1e6)
        .num("first_loss", first)
        .num("last_loss", last_loss)
        .print();
    Ok(())
}
