//! Dropout in training mode. With the `seed` attribute the mask comes from MT19937 seeded as
//! numpy's `np.random.seed(seed)` and drawn as `np.random.uniform(0, 1, shape)`, the generator
//! ONNX's reference implementation uses, so a seeded model drops the same elements as the
//! reference; without it, from fukai's default generator. The kept values are scaled with
//! fukai ops, so the gradient reaches the input.

use super::super::attr::Node;
use crate::error::Result;
use crate::{DType, Tensor};

/// Returns the output and the mask (as u8) of training-mode dropout with `ratio` in (0, 1).
pub fn train(node: &Node, x: &Tensor, ratio: f64) -> Result<Vec<Tensor>> {
    if !(0.0..1.0).contains(&ratio) {
        return Err(node.err(format!("ratio must be in [0, 1), found {ratio}")));
    }
    let n = x.numel();
    let u: Vec<f64> = match node.opt_i("seed")? {
        Some(seed) => {
            let seed = u32::try_from(seed)
                .map_err(|_| node.err(format!("seed {seed} is not a 32-bit unsigned integer")))?;
            let mut mt = Mt19937::new(seed);
            (0..n).map(|_| mt.next_f64()).collect()
        }
        None => node.ctx(Tensor::rand(&[n], DType::F64).and_then(|t| t.to_vec::<f64>()))?,
    };
    let mask: Vec<u8> = u.iter().map(|&v| u8::from(v >= ratio)).collect();
    let mask = node.ctx(Tensor::from_vec(mask, x.shape()).and_then(|m| m.to(x.device())))?;
    let y = super::util::via_float(node, &[x], |t| {
        t[0].mul(&mask.to_dtype(t[0].dtype())?)?
            .mul_scalar(1.0 / (1.0 - ratio))
    })?;
    Ok(vec![y, mask])
}

/// The 32-bit Mersenne Twister (Matsumoto & Nishimura 1998) with `init_genrand` seeding, as
/// numpy's legacy `RandomState`.
struct Mt19937 {
    mt: [u32; 624],
    i: usize,
}

impl Mt19937 {
    fn new(seed: u32) -> Mt19937 {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { mt, i: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.i >= 624 {
            for k in 0..624 {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % 624] & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.mt[k] = self.mt[(k + 397) % 624] ^ (y >> 1) ^ mag;
            }
            self.i = 0;
        }
        let mut y = self.mt[self.i];
        self.i += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in [0, 1) from 53 random bits, as numpy's `random_sample`.
    fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }
}

#[cfg(test)]
mod tests {
    use super::Mt19937;

    #[test]
    fn matches_numpy_legacy_seeding() {
        // np.random.seed(0); np.random.random_sample(2)
        let mut mt = Mt19937::new(0);
        assert_eq!(mt.next_f64(), 0.548_813_503_927_324_8);
        assert_eq!(mt.next_f64(), 0.715_189_366_372_419_5);
    }
}
