//! Products on quantized blocks ([`QMatrix`]): every SIMD kernel gives the portable kernel's
//! bits, results are the same at any thread count, and they stay within the bound that 8-bit
//! activations allow of the product with the dequantized f32 weights.

use fukai::quant::{dequantize, GgmlType, Kernel, QMatrix};

/// The types with a quantized product, and where each block keeps its f16 scales.
const TYPES: [(GgmlType, &[usize]); 10] = [
    (GgmlType::Q4_0, &[0]),
    (GgmlType::Q4_1, &[0, 2]),
    (GgmlType::Q5_0, &[0]),
    (GgmlType::Q5_1, &[0, 2]),
    (GgmlType::Q8_0, &[0]),
    (GgmlType::Q2_K, &[80, 82]),
    (GgmlType::Q3_K, &[108]),
    (GgmlType::Q4_K, &[0, 2]),
    (GgmlType::Q5_K, &[0, 2]),
    (GgmlType::Q6_K, &[208]),
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Random valid blocks: random bytes, with scales in ±0.01 (finite, as real models have).
fn weights(ty: GgmlType, scales: &[usize], rows: usize, cols: usize, rng: &mut Rng) -> QMatrix {
    let n_blocks = rows * cols / ty.block_size();
    let mut data: Vec<u8> = (0..n_blocks * ty.type_size())
        .map(|_| rng.next() as u8)
        .collect();
    for block in data.chunks_exact_mut(ty.type_size()) {
        for &at in scales {
            let s = half::f16::from_f32(rng.unit() * 0.01);
            block[at..at + 2].copy_from_slice(&s.to_le_bytes());
        }
    }
    QMatrix::new(ty, rows, cols, data).unwrap()
}

fn input(n: usize, cols: usize, rng: &mut Rng) -> Vec<f32> {
    // A spread of magnitudes across blocks, and an all-zero block.
    let mut x: Vec<f32> = (0..n * cols)
        .map(|i| rng.unit() * (1 + i % 7) as f32)
        .collect();
    x[..32].iter_mut().for_each(|v| *v = 0.0);
    x
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn simd_kernels_give_the_portable_bits() {
    let kernels = Kernel::available();
    eprintln!("kernels on this CPU: {kernels:?}");
    let mut rng = Rng(18);
    for (ty, scales) in TYPES {
        // 19 blocks of 32 (four at a time, then three alone), or two of 256.
        let cols = if ty.block_size() == 32 { 608 } else { 512 };
        let w = weights(ty, scales, 37, cols, &mut rng);
        for n in [1, 5] {
            let x = input(n, cols, &mut rng);
            let want = bits(&w.matmul_with(Kernel::Portable, &x, n).unwrap());
            for &k in &kernels {
                let got = bits(&w.matmul_with(k, &x, n).unwrap());
                assert_eq!(got, want, "{ty}, {n} tokens: {k:?} differs from portable");
            }
            assert_eq!(bits(&w.matmul(&x, n).unwrap()), want);
        }
    }
}

#[test]
fn close_to_the_dequantized_product() {
    let mut rng = Rng(7);
    let (rows, cols, n) = (23, 768, 3);
    for (ty, scales) in TYPES {
        let w = weights(ty, scales, rows, cols, &mut rng);
        let wf = dequantize(ty, w.bytes(), rows * cols).unwrap();
        let x = input(n, cols, &mut rng);
        let y = w.matmul(&x, n).unwrap();
        // Each activation is rounded to the nearest multiple of its block's scale
        // d = max|x| / 127 (blocks of 32, or of 256 for the K-quants), so |x̂ - x| <= d / 2
        // and |ŷ - y| <= Σ |w| d / 2, plus f32 rounding of the sums.
        let ab = ty.block_size().max(32);
        for t in 0..n {
            let xt = &x[t * cols..(t + 1) * cols];
            let half_step: Vec<f64> = xt
                .chunks(ab)
                .flat_map(|b| {
                    let d = b.iter().fold(0f32, |m, v| m.max(v.abs())) as f64 / 127.0;
                    std::iter::repeat_n(d / 2.0, b.len())
                })
                .collect();
            for r in 0..rows {
                let wr = &wf[r * cols..(r + 1) * cols];
                let exact: f64 = wr.iter().zip(xt).map(|(&a, &b)| a as f64 * b as f64).sum();
                let bound: f64 = wr
                    .iter()
                    .zip(&half_step)
                    .map(|(&a, h)| a.abs() as f64 * h)
                    .sum();
                let mag: f64 = wr
                    .iter()
                    .zip(xt)
                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                    .sum();
                let err = (y[t * rows + r] as f64 - exact).abs();
                assert!(
                    err <= bound * 1.001 + mag * 1e-5,
                    "{ty} row {r} token {t}: {} vs exact {exact} (error {err}, bound {bound})",
                    y[t * rows + r]
                );
            }
        }
    }
}

#[test]
fn same_bits_at_any_thread_count() {
    let mut rng = Rng(3);
    for (ty, scales) in [TYPES[1], TYPES[4], TYPES[7], TYPES[9]] {
        let w = weights(ty, scales, 300, 512, &mut rng);
        let x = input(4, 512, &mut rng);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            bits(&pool.install(|| w.matmul(&x, 4).unwrap()))
        };
        let one = run(1);
        for threads in [2, 3, 8] {
            assert_eq!(run(threads), one, "{ty} at {threads} threads");
        }
    }
}

#[test]
fn forward_takes_batched_tensors() {
    let mut rng = Rng(11);
    let w = weights(GgmlType::Q4_1, &[0, 2], 5, 64, &mut rng);
    let x = input(6, 64, &mut rng);
    let xt = fukai::Tensor::from_vec(x.clone(), &[2, 3, 64]).unwrap();
    let y = w.forward(&xt).unwrap();
    assert_eq!(y.shape(), &[2, 3, 5]);
    assert_eq!(y.to_vec::<f32>().unwrap(), w.matmul(&x, 6).unwrap());
    let e = w.forward(&fukai::Tensor::zeros(&[2, 63], fukai::DType::F32).unwrap());
    assert!(e.unwrap_err().to_string().contains("64 columns"));
}

#[test]
fn refuses_bad_shapes_and_types() {
    let e = QMatrix::new(GgmlType::Q4_0, 2, 32, vec![0; 35])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("takes Some(36) bytes") && e.contains("Some(35)"),
        "{e}"
    );
    let e = QMatrix::new(GgmlType::Q4_0, 1, 48, vec![0; 27])
        .unwrap_err()
        .to_string();
    assert!(e.contains("48 columns"), "{e}");
    let e = QMatrix::new(GgmlType::IQ2_XXS, 1, 256, vec![0; 66])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no quantized matmul for IQ2_XXS"), "{e}");
    let w = QMatrix::new(GgmlType::Q8_0, 1, 32, vec![0; 34]).unwrap();
    let e = w.matmul(&[0.0; 31], 1).unwrap_err().to_string();
    assert!(e.contains("31 values") && e.contains("32 columns"), "{e}");
}
