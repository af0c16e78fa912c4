//! A deterministic byte mutator for the loader fuzz tests: the same seed always gives the same
//! inputs, so a failure found in CI replays locally from the seed and iteration alone.
//!
//! Shared with the CLI crate's config fuzz test (`#[path]`), so it uses std only.
#![allow(dead_code)]

/// xorshift64*: tiny, seedable and good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Zero is xorshift's fixed point; mixing keeps nearby seeds apart.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Numbers as text that parsers tend to mishandle: overflow, negatives, non-finite, exponents.
const TEXT_VALUES: &[&str] = &[
    "0",
    "-1",
    "1e18",
    "1e300",
    "-1e300",
    "NaN",
    "inf",
    "-inf",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "2147483648",
    "1.5",
    "",
    "\"",
    ",",
    ":",
    "\n",
    "?",
    "[]",
    "{}",
    "null",
];

/// Binary values at the edges of the integer types, in both byte orders.
fn binary_value(rng: &mut Rng) -> Vec<u8> {
    let v: u64 = match rng.below(8) {
        0 => 0,
        1 => u64::MAX,
        2 => u32::MAX as u64,
        3 => i32::MAX as u64,
        4 => 1 << 31,
        5 => i64::MAX as u64,
        6 => 1 << rng.below(64),
        _ => rng.next(),
    };
    let width = [1, 2, 4, 8][rng.below(4)];
    if rng.chance(2) {
        v.to_le_bytes()[..width].to_vec()
    } else {
        v.to_be_bytes()[8 - width..].to_vec()
    }
}

/// Byte ranges of ASCII digits (with sign, dot and exponent): the header counts, shapes, offsets
/// and labels of text formats. Replacing one inflates a count without breaking the syntax.
fn number_spans(b: &[u8]) -> Vec<(usize, usize)> {
    let is_num = |c: u8| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E');
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let mut s = i;
            while s > 0 && is_num(b[s - 1]) {
                s -= 1;
            }
            let mut e = i;
            while e < b.len() && is_num(b[e]) {
                e += 1;
            }
            spans.push((s, e));
            i = e;
        } else {
            i += 1;
        }
    }
    spans
}

/// One to four mutations of `input`; `other` is another corpus file to splice from.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, &mut b, other);
    }
    b
}

fn mutate_once(rng: &mut Rng, b: &mut Vec<u8>, other: &[u8]) {
    let len = b.len();
    let at = |rng: &mut Rng| rng.below(len + 1);
    match rng.below(12) {
        0 if len > 0 => {
            let i = rng.below(len);
            b[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            b[i] = [0, 0xFF, 0x7F, 0x80, b'0', b'9'][rng.below(6)];
        }
        2 => {
            let i = at(rng);
            b.insert(i, rng.next() as u8);
        }
        3 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(16));
            b.drain(i..i + n);
        }
        4 => b.truncate(at(rng)),
        5 if len > 0 => {
            // Overwrite in place, so binary headers keep their offsets.
            let v = binary_value(rng);
            let i = rng.below(len);
            for (k, &x) in v.iter().enumerate() {
                if let Some(c) = b.get_mut(i + k) {
                    *c = x;
                }
            }
        }
        6 => {
            let i = at(rng);
            let v = binary_value(rng);
            b.splice(i..i, v);
        }
        7 => {
            let spans = number_spans(b);
            if spans.is_empty() {
                return;
            }
            let (s, e) = spans[rng.below(spans.len())];
            let v = TEXT_VALUES[rng.below(TEXT_VALUES.len())];
            b.splice(s..e, v.bytes());
        }
        8 => {
            let i = at(rng);
            let v = TEXT_VALUES[rng.below(TEXT_VALUES.len())];
            b.splice(i..i, v.bytes());
        }
        9 if len > 0 => {
            // A repeated chunk: duplicated rows, records or tensors.
            let s = rng.below(len);
            let e = s + 1 + rng.below((len - s).min(256));
            let chunk = b[s..e].to_vec();
            let times = 1 + rng.below(8);
            let i = at(rng);
            b.splice(i..i, chunk.repeat(times));
        }
        10 if !other.is_empty() => {
            let cut = at(rng);
            let from = rng.below(other.len());
            b.truncate(cut);
            b.extend_from_slice(&other[from..]);
        }
        11 => {
            // Header-count inflation: a number becomes a huge one of the same syntax.
            let spans = number_spans(b);
            if spans.is_empty() {
                return;
            }
            let (s, e) = spans[rng.below(spans.len())];
            let digits = 9 + rng.below(12);
            b.splice(s..e, std::iter::repeat_n(b'9', digits));
        }
        _ => {}
    }
}
