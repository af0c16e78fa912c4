//! One training step of a ConvLSTM encoder–forecaster on Moving-MNIST-shaped data: batch 8 of
//! 20 frames, each 64×64 folded 4×4 into 16 channels of 16×16 (random values in [0, 1]). The
//! encoder `ConvLstm2d(16, 64, 3)` reads frames 0..10; the forecaster `ConvLstm2d(16, 64, 3)`
//! starts from its final (h, c), is fed the last observed frame and then its own sigmoid
//! prediction; a 1×1 `Conv2d(64, 16)` on each forecaster h gives the next frame's logits.
//! Loss: BCE with logits against frames 10..20; Adam 1e-3. Goal: ≤ 0.8× PyTorch's step
//! (the same model with nn.Conv2d over cat, chunk, sigmoid/tanh; bench/torch_bench.py).

use crate::harness::{budgeted, Line};
use fukai::nn::loss::binary_cross_entropy_with_logits;
use fukai::nn::{Conv2d, ConvLstm2d, Module};
use fukai::optim::{Adam, Optimizer};
use fukai::{DType, Generator, Result, Tensor};
use std::time::Duration;

/// `[B, T, C, H, W]` of the frames; the first half is observed, the second predicted.
pub const FRAMES: [usize; 5] = [8, 20, 16, 16, 16];
/// Channels of the recurrent state.
pub const HIDDEN: usize = 64;
const BUDGET: Duration = Duration::from_secs(20);

struct Model {
    encoder: ConvLstm2d,
    forecaster: ConvLstm2d,
    head: Conv2d,
}

impl Model {
    fn new() -> Result<Model> {
        let c = FRAMES[2];
        Ok(Model {
            encoder: ConvLstm2d::new(c, HIDDEN, 3)?,
            forecaster: ConvLstm2d::new(c, HIDDEN, 3)?,
            head: Conv2d::new(HIDDEN, c, 1, 0)?,
        })
    }

    fn parameters(&self) -> Vec<Tensor> {
        let mut p = self.encoder.parameters();
        p.extend(self.forecaster.parameters());
        p.extend(self.head.parameters());
        p
    }

    /// The loss of predicting the second half of `frames` from the first.
    fn loss(&self, frames: &Tensor) -> Result<Tensor> {
        let seen = FRAMES[1] / 2;
        let (_, (mut h, mut c)) = self
            .encoder
            .forward_seq(&frames.narrow(1, 0, seen)?, None)?;
        let mut input = frames.narrow(1, seen - 1, 1)?.squeeze(1)?;
        let mut logits = Vec::with_capacity(FRAMES[1] - seen);
        for _ in seen..FRAMES[1] {
            (h, c) = self.forecaster.cell(&input, Some((&h, &c)))?;
            let l = self.head.forward(&h)?;
            input = l.sigmoid()?;
            logits.push(l);
        }
        let target = frames.narrow(1, seen, FRAMES[1] - seen)?;
        binary_cross_entropy_with_logits(&Tensor::stack(&logits, 1)?, &target)
    }
}

/// Times training steps and prints ms per step.
pub fn run(threads: usize, reps: usize) -> Result<()> {
    fukai::manual_seed(0);
    let model = Model::new()?;
    let frames = Tensor::uniform_with(&FRAMES, 0.0, 1.0, DType::F32, &mut Generator::new(1))?;
    let mut opt = Adam::new(model.parameters(), 1e-3);
    let (mut first, mut last) = (None, 0.0);
    let mut err = None;
    let mut step = || -> Result<()> {
        let loss = model.loss(&frames)?;
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
        last = loss.item()?;
        first.get_or_insert(last);
        Ok(())
    };
    let st = budgeted(
        &mut || {
            if let Err(e) = step() {
                err = Some(e);
            }
        },
        2,
        reps,
        1,
        BUDGET,
    );
    if let Some(e) = err {
        return Err(e);
    }
    let first = first.unwrap_or(f64::NAN);
    assert!(
        last < first,
        "convlstm_step: loss did not fall ({first} -> {last})"
    );
    Line::new("convlstm_step", "fukai", threads)
        .stats(&st)
        .num("ms_per_step", st.median() * 1e3)
        .num("first_loss", first)
        .num("last_loss", last)
        .print();
    Ok(())
}
