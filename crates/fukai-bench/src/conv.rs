//! Convolution forward + backward, no bias, gradients for both input and weight (a layer in the
//! middle of a network). Goal: ≤ 1.0× PyTorch.
//!
//! - `conv2d`: input 64×32×28×28, weight 64×32×3×3, stride 1, padding 1.
//! - `conv3d`: input 8×32×10×32×32, weight 64×32×3×4×4, stride (1, 2, 2), padding 1 (a video
//!   encoder's downsampling layer).

use crate::harness::Line;

/// One convolution workload: shapes are `[N, C_in, spatial...]` and `[C_out, C_in, k...]`;
/// stride and padding per spatial axis.
pub struct Conv {
    pub name: &'static str,
    pub input: &'static [usize],
    pub weight: &'static [usize],
    pub stride: &'static [usize],
    pub padding: &'static [usize],
}

pub const CONV2D: Conv = Conv {
    name: "conv2d",
    input: &[64, 32, 28, 28],
    weight: &[64, 32, 3, 3],
    stride: &[1, 1],
    padding: &[1, 1],
};

pub const CONV3D: Conv = Conv {
    name: "conv3d",
    input: &[8, 32, 10, 32, 32],
    weight: &[64, 32, 3, 4, 4],
    stride: &[1, 2, 2],
    padding: &[1, 1, 1],
};

impl Conv {
    /// Output positions per channel.
    fn out_len(&self) -> usize {
        (0..self.stride.len())
            .map(|a| {
                (self.input[a + 2] + 2 * self.padding[a] - self.weight[a + 2]) / self.stride[a] + 1
            })
            .product()
    }
    /// Multiply-adds ×2 of the forward pass; backward (input and weight gradients) is twice
    /// that.
    pub fn fwd_bwd_flop(&self) -> f64 {
        let taps: usize = self.weight[1..].iter().product();
        3.0 * 2.0 * (self.input[0] * self.weight[0] * self.out_len() * taps) as f64
    }

    fn forward(&self, x: &fukai::Tensor, w: &fukai::Tensor) -> fukai::Result<fukai::Tensor> {
        let (s, p) = (self.stride, self.padding);
        match s.len() {
            2 => x.conv2d(w, None, [s[0], s[1]], [p[0], p[1]], [1, 1], 1),
            _ => x.conv3d(
                w,
                None,
                [s[0], s[1], s[2]],
                [p[0], p[1], p[2]],
                [1, 1, 1],
                1,
            ),
        }
    }

    pub fn run(&self, threads: usize, reps: usize) -> fukai::Result<()> {
        use crate::harness::fixed;
        use fukai::{DType, Tensor};

        let x = Tensor::randn(self.input, DType::F32)?.with_grad()?;
        let fan_in = self.weight[1..].iter().product::<usize>() as f64;
        let w = Tensor::randn(self.weight, DType::F32)?
            .mul_scalar(1.0 / fan_in.sqrt())?
            .with_grad()?;
        let mut err = None;
        let step = || -> fukai::Result<()> {
            self.forward(&x, &w)?.sum_all()?.backward()?;
            x.zero_grad();
            w.zero_grad();
            Ok(())
        };
        let st = fixed(
            &mut || {
                if let Err(e) = step() {
                    err = Some(e);
                }
            },
            2,
            reps,
            1,
        );
        if let Some(e) = err {
            return Err(e);
        }
        Line::new(self.name, "fukai", threads)
            .stats(&st)
            .num("gflops", self.fwd_bwd_flop() / st.median() / 1e9)
            .print();
        Ok(())
    }
}
