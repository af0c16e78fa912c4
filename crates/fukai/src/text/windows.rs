//! Fixed-length windows over a token stream for next-token prediction: window `i` is the input
//! `tokens[i..i+T]` and the target `tokens[i+1..i+T+1]`.

use crate::bail;
use crate::error::Result;
use crate::rng::Generator;
use crate::tensor::Tensor;

/// Every window of `context` tokens (with its shifted target) in a token stream.
#[derive(Clone, Debug)]
pub struct TokenWindows {
    tokens: Vec<u32>,
    context: usize,
}

impl TokenWindows {
    /// Windows of `context` tokens; needs at least `context + 1` tokens.
    pub fn new(tokens: Vec<u32>, context: usize) -> Result<Self> {
        if context == 0 || tokens.len() <= context {
            bail!(
                "TokenWindows",
                "need more than context = {context} tokens (and context > 0), found {}",
                tokens.len()
            );
        }
        Ok(TokenWindows { tokens, context })
    }
    /// The first `train_fraction` of `tokens` and the rest, as two window sets (the split
    /// nanoGPT uses: no window straddles the boundary).
    pub fn split_tail(tokens: &[u32], context: usize, train_fraction: f64) -> Result<(Self, Self)> {
        if !(0.0..=1.0).contains(&train_fraction) {
            bail!(
                "TokenWindows",
                "train fraction must be in [0, 1], found {train_fraction}"
            );
        }
        let cut = (tokens.len() as f64 * train_fraction) as usize;
        Ok((
            TokenWindows::new(tokens[..cut].to_vec(), context)?,
            TokenWindows::new(tokens[cut..].to_vec(), context)?,
        ))
    }
    /// Number of windows.
    pub fn len(&self) -> usize {
        self.tokens.len() - self.context
    }
    /// Always false (construction needs one window).
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Tokens per window.
    pub fn context(&self) -> usize {
        self.context
    }
    /// The token stream.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }
    /// Inputs and targets `[n, T]` (i64) of the windows starting at `starts`.
    pub fn batch(&self, starts: &[usize]) -> Result<(Tensor, Tensor)> {
        let t = self.context;
        let mut x = Vec::with_capacity(starts.len() * t);
        let mut y = Vec::with_capacity(starts.len() * t);
        for &s in starts {
            if s >= self.len() {
                bail!(
                    "TokenWindows",
                    "window {s} out of range (there are {})",
                    self.len()
                );
            }
            x.extend(self.tokens[s..s + t].iter().map(|&v| v as i64));
            y.extend(self.tokens[s + 1..s + t + 1].iter().map(|&v| v as i64));
        }
        Ok((
            Tensor::from_vec(x, &[starts.len(), t])?,
            Tensor::from_vec(y, &[starts.len(), t])?,
        ))
    }
    /// `n` window starts drawn uniformly (with replacement) from `gen`.
    pub fn sample_starts(&self, n: usize, gen: &mut Generator) -> Vec<usize> {
        (0..n)
            .map(|_| gen.below(self.len() as u64) as usize)
            .collect()
    }
    /// A random batch of `n` windows.
    pub fn sample(&self, n: usize, gen: &mut Generator) -> Result<(Tensor, Tensor)> {
        self.batch(&self.sample_starts(n, gen))
    }
    /// Splits the windows into two seeded, disjoint sets of non-overlapping windows (starts at
    /// multiples of `T`, shuffled by `seed`): a validation set drawn from the whole text rather
    /// than its tail. Returns `(train starts, validation starts)`.
    pub fn shuffled_split(&self, val_fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
        if !(0.0..=1.0).contains(&val_fraction) {
            bail!(
                "TokenWindows",
                "validation fraction must be in [0, 1], found {val_fraction}"
            );
        }
        let mut starts: Vec<usize> = (0..self.len()).step_by(self.context).collect();
        let mut gen = Generator::new(seed);
        for i in (1..starts.len()).rev() {
            let j = gen.below(i as u64 + 1) as usize;
            starts.swap(i, j);
        }
        let n_val = (starts.len() as f64 * val_fraction).round() as usize;
        let train = starts.split_off(n_val);
        Ok((train, starts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_shift_by_one() {
        let w = TokenWindows::new((0..10).collect(), 4).unwrap();
        assert_eq!(w.len(), 6);
        let (x, y) = w.batch(&[0, 5]).unwrap();
        assert_eq!(x.to_vec::<i64>().unwrap(), vec![0, 1, 2, 3, 5, 6, 7, 8]);
        assert_eq!(y.to_vec::<i64>().unwrap(), vec![1, 2, 3, 4, 6, 7, 8, 9]);
        assert!(w.batch(&[6]).is_err());
        assert!(TokenWindows::new(vec![1, 2], 2).is_err());
    }

    #[test]
    fn tail_split_and_seeded_split() {
        let tokens: Vec<u32> = (0..100).collect();
        let (tr, va) = TokenWindows::split_tail(&tokens, 8, 0.9).unwrap();
        assert_eq!(tr.tokens().len(), 90);
        assert_eq!(va.tokens()[0], 90);
        let w = TokenWindows::new(tokens, 8).unwrap();
        let (a, b) = w.shuffled_split(0.25, 3).unwrap();
        let (a2, b2) = w.shuffled_split(0.25, 3).unwrap();
        assert_eq!((&a, &b), (&a2, &b2));
        assert_ne!(w.shuffled_split(0.25, 4).unwrap().1, b);
        assert_eq!(a.len() + b.len(), 12);
        assert!(b.iter().all(|s| !a.contains(s)));
        let mut g = Generator::new(1);
        let s = w.sample_starts(50, &mut g);
        assert!(s.iter().all(|&i| i < w.len()));
    }
}
