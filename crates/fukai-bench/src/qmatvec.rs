//! Quantized matrix–vector products (`fukai::quant::QMatrix`, one token) at SmolLM2-135M's
//! shapes and types, beside the f32 product of the same dequantized weights (`Tensor::matmul`
//! of a `[1, in]` row): µs per product and GB/s of weight bytes read. Decoding one token is a
//! chain of such products, each reading its whole weight matrix once.

use crate::harness::{interleaved, Case, Line};
use fukai::quant::{GgmlType, Kernel, QMatrix};
use fukai::Tensor;
use std::hint::black_box;
use std::time::Duration;

/// (name, type, out features, in features): SmolLM2's FFN up and down projections (Q4_1) and
/// its tied output projection (Q8_0, the vocabulary of 49152).
const SHAPES: &[(&str, GgmlType, usize, usize)] = &[
    ("ffn_up_q4_1", GgmlType::Q4_1, 1536, 576),
    ("ffn_down_q4_1", GgmlType::Q4_1, 576, 1536),
    ("output_q8_0", GgmlType::Q8_0, 49152, 576),
    ("ffn_up_q4_k", GgmlType::Q4_K, 1536, 768),
    ("ffn_up_q6_k", GgmlType::Q6_K, 1536, 768),
];

/// Random blocks with small finite scales (every f16 scale field set), as a real model's.
fn random_matrix(ty: GgmlType, rows: usize, cols: usize) -> fukai::Result<QMatrix> {
    let scales: &[usize] = match ty {
        GgmlType::Q4_1 | GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[0],
    };
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let n = rows * cols / ty.block_size() * ty.type_size();
    let mut data: Vec<u8> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect();
    for block in data.chunks_exact_mut(ty.type_size()) {
        for &at in scales {
            block[at..at + 2].copy_from_slice(&SCALE_F16.to_le_bytes());
        }
    }
    QMatrix::new(ty, rows, cols, data)
}

/// 0.01 as an f16's bits.
const SCALE_F16: u16 = 0x211f;

pub fn run(threads: usize, reps: usize) -> fukai::Result<()> {
    for &(name, ty, rows, cols) in SHAPES {
        let w = random_matrix(ty, rows, cols)?;
        let wf = w.dequantize()?.transpose(0, 1)?.contiguous()?;
        let x: Vec<f32> = (0..cols)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1)
            .collect();
        let xt = Tensor::from_vec(x.clone(), &[1, cols])?;
        // Each case may fail; the first error is reported after the timing.
        let err: std::cell::RefCell<Option<fukai::Error>> = std::cell::RefCell::new(None);
        let mut cases = vec![
            Case {
                name: "quantized",
                run: Box::new(|| match w.matmul(black_box(&x), 1) {
                    Ok(y) => drop(black_box(y)),
                    Err(e) => *err.borrow_mut() = Some(e),
                }),
            },
            Case {
                name: "quantized_portable",
                run: Box::new(|| match w.matmul_with(Kernel::Portable, black_box(&x), 1) {
                    Ok(y) => drop(black_box(y)),
                    Err(e) => *err.borrow_mut() = Some(e),
                }),
            },
            Case {
                name: "f32_dequantized",
                run: Box::new(|| match xt.matmul(&wf) {
                    Ok(y) => drop(black_box(y)),
                    Err(e) => *err.borrow_mut() = Some(e),
                }),
            },
        ];
        let stats = interleaved(&mut cases, reps, Duration::from_millis(20));
        let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
        drop(cases);
        if let Some(e) = err.into_inner() {
            return Err(e);
        }
        for (imp, st) in names.iter().zip(&stats) {
            let bytes = if *imp == "f32_dequantized" {
                rows * cols * 4
            } else {
                w.bytes().len()
            };
            Line::new("qmatvec", imp, threads)
                .str("shape", name)
                .str("kernel", &format!("{:?}", Kernel::best()))
                .stats(st)
                .num("us", st.median() * 1e6)
                .num("weight_gb_per_s", bytes as f64 / st.median() / 1e9)
                .print();
        }
    }
    Ok(())
}
