//! Counter-based random numbers (Philox 4x32-10, Salmon et al. 2011). Element `i` of a draw
//! depends only on (seed, counter + i / 4), never on thread count or draw order within a call, so
//! sampling parallelizes and reproduces bit for bit.

use parking_lot::Mutex;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// One Philox 4x32-10 block: 4 random u32 from a 128-bit counter and a 64-bit key.
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for _ in 0..10 {
        c = round(c, k);
        k = bump(k);
    }
    c
}

/// One Philox round of counter `c` under round key `k`.
#[inline(always)]
fn round(c: [u32; 4], k: [u32; 2]) -> [u32; 4] {
    let p0 = (M0 as u64) * (c[0] as u64);
    let p1 = (M1 as u64) * (c[2] as u64);
    [
        ((p1 >> 32) as u32) ^ c[1] ^ k[0],
        p1 as u32,
        ((p0 >> 32) as u32) ^ c[3] ^ k[1],
        p0 as u32,
    ]
}

/// The next round's key.
#[inline(always)]
fn bump(k: [u32; 2]) -> [u32; 2] {
    [k[0].wrapping_add(W0), k[1].wrapping_add(W1)]
}

/// A seeded stream of random blocks. Its whole state is `(seed, offset)`, which checkpoints save.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generator {
    seed: u64,
    offset: u64,
}

impl Generator {
    /// A generator at the start of the stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Generator { seed, offset: 0 }
    }
    /// Restores a generator from saved state.
    pub fn from_state(seed: u64, offset: u64) -> Self {
        Generator { seed, offset }
    }
    /// `(seed, offset)`: enough to resume the stream exactly.
    pub fn state(&self) -> (u64, u64) {
        (self.seed, self.offset)
    }
    /// Reserves `blocks` consecutive counter values and returns the first.
    pub fn reserve(&mut self, blocks: u64) -> u64 {
        let start = self.offset;
        self.offset += blocks;
        start
    }
    /// The block at absolute counter `c` of this seed.
    #[inline]
    pub fn block(&self, c: u64) -> [u32; 4] {
        philox4x32(
            [c as u32, (c >> 32) as u32, 0, 0],
            [self.seed as u32, (self.seed >> 32) as u32],
        )
    }
    /// Blocks `first, first + 1, ...` into `out`, equal to [`Generator::block`] one by one,
    /// computed 16 counters at a time in lanes so the 32x32→64-bit multiplies vectorize.
    pub fn fill_blocks(&self, first: u64, out: &mut [[u32; 4]]) {
        const W: usize = 16;
        let key = [self.seed as u32, (self.seed >> 32) as u32];
        crate::simd::run(
            #[inline(always)]
            || {
                for (j, group) in out.chunks_mut(W).enumerate() {
                    let base = first.wrapping_add((j * W) as u64);
                    let (mut c0, mut c1) = ([0u32; W], [0u32; W]);
                    let (mut c2, mut c3) = ([0u32; W], [0u32; W]);
                    for l in 0..W {
                        let c = base.wrapping_add(l as u64);
                        c0[l] = c as u32;
                        c1[l] = (c >> 32) as u32;
                    }
                    let mut k = key;
                    for _ in 0..10 {
                        for l in 0..W {
                            [c0[l], c1[l], c2[l], c3[l]] = round([c0[l], c1[l], c2[l], c3[l]], k);
                        }
                        k = bump(k);
                    }
                    for (l, o) in group.iter_mut().enumerate() {
                        *o = [c0[l], c1[l], c2[l], c3[l]];
                    }
                }
            },
        )
    }
    /// `n` uniform values in [0, 1), as f64 built from 32 random bits each.
    pub fn uniform_f64(&mut self, n: usize) -> Vec<f64> {
        let start = self.reserve(n.div_ceil(4) as u64);
        (0..n)
            .map(|i| {
                let b = self.block(start + (i / 4) as u64);
                to_unit(b[i % 4])
            })
            .collect()
    }
    /// `n` standard normal values (Box-Muller on lane pairs of each block).
    pub fn normal_f64(&mut self, n: usize) -> Vec<f64> {
        let start = self.reserve(n.div_ceil(4) as u64);
        let mut out = Vec::with_capacity(n);
        let mut c = start;
        while out.len() < n {
            let b = self.block(c);
            c += 1;
            for pair in [(b[0], b[1]), (b[2], b[3])] {
                // (0,1] for the log so it never sees zero.
                let u1 = 1.0 - to_unit(pair.0);
                let u2 = to_unit(pair.1);
                let r = (-2.0 * u1.ln()).sqrt();
                let t = std::f64::consts::TAU * u2;
                out.push(r * t.cos());
                out.push(r * t.sin());
            }
        }
        out.truncate(n);
        out
    }
    /// An independent stream for (a, b), e.g. (epoch, sample): per-item randomness that does
    /// not depend on the order items are processed in.
    pub fn fork(&self, a: u64, b: u64) -> Generator {
        let k = self.block(a ^ b.rotate_left(32) ^ 0xA5A5_A5A5);
        let mix = self.block(b.wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        Generator::new(
            ((k[0] as u64) << 32 | k[1] as u64) ^ ((mix[2] as u64) << 32 | mix[3] as u64),
        )
    }
    /// A uniform integer in `0..n` (for shuffles); `n` must be non-zero.
    pub fn below(&mut self, n: u64) -> u64 {
        let c = self.reserve(1);
        let b = self.block(c);
        let x = ((b[0] as u64) << 32) | b[1] as u64;
        // Modulo bias is below 2^-32 for the n we shuffle over.
        x % n
    }
}

#[inline]
fn to_unit(x: u32) -> f64 {
    x as f64 * (1.0 / 4_294_967_296.0)
}

static DEFAULT: Mutex<Option<Generator>> = Mutex::new(None);

/// Seeds the default generator used by `rand`, `randn`, dropout and initializers.
pub fn manual_seed(seed: u64) {
    *DEFAULT.lock() = Some(Generator::new(seed));
}

/// Runs `f` with the default generator (seed 0 until [`manual_seed`] is called).
pub fn with_default_generator<R>(f: impl FnOnce(&mut Generator) -> R) -> R {
    let mut g = DEFAULT.lock();
    f(g.get_or_insert_with(|| Generator::new(0)))
}

/// The default generator's state, for checkpoints.
pub fn default_generator_state() -> (u64, u64) {
    with_default_generator(|g| g.state())
}

/// Restores the default generator's state from a checkpoint.
pub fn set_default_generator_state(seed: u64, offset: u64) {
    *DEFAULT.lock() = Some(Generator::from_state(seed, offset));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_blocks_equals_block_by_block() {
        let g = Generator::new(0x1234_5678_9abc_def0);
        // Group edges (16 lanes), a ragged tail, and a counter crossing 2^32.
        for (first, n) in [
            (0u64, 37usize),
            (u32::MAX as u64 - 5, 21),
            (999, 16),
            (7, 1),
        ] {
            let mut out = vec![[0u32; 4]; n];
            g.fill_blocks(first, &mut out);
            for (i, b) in out.iter().enumerate() {
                assert_eq!(
                    *b,
                    g.block(first + i as u64),
                    "counter {}",
                    first + i as u64
                );
            }
        }
    }

    #[test]
    fn philox_known_answer() {
        // Random123's published known-answer vectors for philox4x32_10.
        assert_eq!(
            philox4x32([0, 0, 0, 0], [0, 0]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
    }

    #[test]
    fn normal_moments() {
        let v = Generator::new(7).normal_f64(100_000);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
