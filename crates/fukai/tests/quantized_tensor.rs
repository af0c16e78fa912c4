//! Tensors over quantized memory (`Tensor::from_qmatrix`): `linear` computes on the blocks (a
//! few rows) or on the dequantized weight through gemm (many rows), `embedding` dequantizes only
//! the rows it looks up, row stacks and row permutations keep the blocks, and every other op —
//! backward and in-place updates included — sees the dequantized f32 values.

use fukai::quant::{GgmlType, QMatrix};
use fukai::{DType, Tensor};

/// A Q4_1 matrix of random blocks, its scales in ±0.05.
fn q4_1(rows: usize, cols: usize, seed: u64) -> QMatrix {
    let mut s = seed;
    let mut next = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut data = Vec::new();
    for _ in 0..rows * cols / 32 {
        for _ in 0..2 {
            let v = ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
            data.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
        data.extend((0..16).map(|_| next() as u8));
    }
    QMatrix::new(GgmlType::Q4_1, rows, cols, data).unwrap()
}

fn input(rows: usize, cols: usize) -> Tensor {
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    Tensor::from_vec(v, &[rows, cols]).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn reads_as_the_dequantized_matrix() {
    let q = q4_1(8, 64, 1);
    let t = Tensor::from_qmatrix(q.clone());
    assert_eq!((t.shape(), t.dtype()), (&[8usize, 64][..], DType::F32));
    assert_eq!(bits(&t), bits(&q.dequantize().unwrap()));
    assert_eq!(t.qmatrix().unwrap().bytes(), q.bytes());
    // Views: whole rows keep the blocks, anything else is just f32.
    assert_eq!(
        t.narrow(0, 2, 3).unwrap().qmatrix().unwrap().bytes(),
        q.rows_range(2..5).unwrap().bytes()
    );
    assert!(t.narrow(1, 0, 32).unwrap().qmatrix().is_none());
    assert!(t.t().unwrap().qmatrix().is_none());
}

#[test]
fn few_rows_multiply_on_the_blocks() {
    let q = q4_1(40, 64, 2);
    let w = Tensor::from_qmatrix(q.clone());
    let b = input(1, 40).reshape(&[40]).unwrap();
    for rows in [1, 3, 15] {
        let x = input(rows, 64);
        let y = x.linear(&w, Some(&b)).unwrap();
        let mut want = q.matmul(&x.to_vec::<f32>().unwrap(), rows).unwrap();
        let bv = b.to_vec::<f32>().unwrap();
        for (i, v) in want.iter_mut().enumerate() {
            *v += bv[i % 40];
        }
        assert_eq!(y.shape(), &[rows, 40]);
        assert_eq!(
            bits(&y),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn many_rows_are_the_dense_product_of_the_dequantized_weight() {
    let q = q4_1(40, 64, 3);
    let (w, dense) = (Tensor::from_qmatrix(q.clone()), q.dequantize().unwrap());
    for rows in [16, 50] {
        let x = input(rows, 64);
        let got = x.linear(&w, None).unwrap();
        assert_eq!(
            bits(&got),
            bits(&x.linear(&dense, None).unwrap()),
            "{rows} rows"
        );
    }
    // The quantized product is close to it (8-bit activations).
    let x = input(1, 64);
    let (a, b) = (
        x.linear(&w, None).unwrap().to_vec::<f32>().unwrap(),
        x.linear(&dense, None).unwrap().to_vec::<f32>().unwrap(),
    );
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in a.iter().zip(&b) {
        assert!((a - b).abs() <= 0.02 * scale, "{a} vs {b}");
    }
}

#[test]
fn the_backward_reads_the_dequantized_weight() {
    let q = q4_1(8, 32, 4);
    let w = Tensor::from_qmatrix(q.clone());
    let x = input(2, 32).with_grad().unwrap();
    x.linear(&w, None)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    // d(sum of x Wᵀ)/dx = the column sums of W, for every row.
    let col_sums = q.dequantize().unwrap().sum(&[0], false).unwrap();
    let gx = x.grad().unwrap();
    assert_eq!(
        bits(&gx.narrow(0, 1, 1).unwrap().reshape(&[32]).unwrap()),
        bits(&col_sums)
    );
    // A trained quantized weight gets its gradient and, updated in place, turns into f32.
    let w = Tensor::from_qmatrix(q.clone()).with_grad().unwrap();
    input(3, 32)
        .linear(&w, None)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(w.grad().unwrap().shape(), &[8, 32]);
    w.copy_from(&Tensor::zeros(&[8, 32], DType::F32).unwrap())
        .unwrap();
    assert!(w.qmatrix().is_none());
    assert_eq!(w.sum_all().unwrap().item().unwrap(), 0.0);
}

#[test]
fn embedding_dequantizes_the_rows_it_looks_up() {
    let q = q4_1(10, 64, 5);
    let (table, dense) = (Tensor::from_qmatrix(q.clone()), q.dequantize().unwrap());
    let ids = Tensor::from_vec(vec![3i64, 0, 9, 3], &[2, 2]).unwrap();
    let got = table.embedding(&ids).unwrap();
    assert_eq!(got.shape(), &[2, 2, 64]);
    assert_eq!(bits(&got), bits(&dense.embedding(&ids).unwrap()));
    let bad = Tensor::from_vec(vec![10i64], &[1]).unwrap();
    let err = table.embedding(&bad).unwrap_err().to_string();
    assert!(err.contains("embedding") && err.contains("10"), "{err}");
    let neg = Tensor::from_vec(vec![-1i64], &[1]).unwrap();
    assert!(table.embedding(&neg).is_err());
}

#[test]
fn row_stacks_and_permutations_keep_the_blocks() {
    let (a, b) = (q4_1(4, 64, 6), q4_1(6, 64, 7));
    let stacked = Tensor::cat(
        &[
            Tensor::from_qmatrix(a.clone()),
            Tensor::from_qmatrix(b.clone()),
        ],
        0,
    )
    .unwrap();
    let q = stacked.qmatrix().expect("still quantized");
    assert_eq!((q.rows(), q.cols()), (10, 64));
    let dense = Tensor::cat(&[a.dequantize().unwrap(), b.dequantize().unwrap()], 0).unwrap();
    assert_eq!(bits(&stacked), bits(&dense));
    // GGUF's query/key row order undone on the blocks equals undoing it on the f32 rows.
    let w = Tensor::from_qmatrix(q4_1(12, 64, 8));
    let dense = w.to_vec::<f32>().unwrap();
    let dense = Tensor::from_vec(dense, &[12, 64]).unwrap();
    let on_blocks = fukai::models::unpermute_qk_gguf(&w, 2).unwrap();
    assert!(on_blocks.qmatrix().is_some());
    assert_eq!(
        bits(&on_blocks),
        bits(&fukai::models::unpermute_qk_gguf(&dense, 2).unwrap())
    );
    // Mixed block types are stacked as f32.
    let mixed = Tensor::cat(&[Tensor::from_qmatrix(a), input(2, 64)], 0).unwrap();
    assert!(mixed.qmatrix().is_none());
    assert_eq!(mixed.shape(), &[6, 64]);
}
