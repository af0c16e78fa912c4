//! Dequantization of every supported GGML type, bit for bit against the `gguf` Python
//! package's reference dequantizers on random but valid blocks (tests/fixtures/
//! gguf_dequant.safetensors, written by scripts/gguf_fixtures.py).

use fukai::io::load_safetensors;
use fukai::quant::{dequantize, GgmlType};

const TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

fn fixture(ty: GgmlType) -> (Vec<u8>, Vec<f32>) {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gguf_dequant.safetensors"
    );
    let f = load_safetensors(dir).unwrap();
    let raw = f
        .tensor(&format!("{ty}.raw"))
        .unwrap()
        .to_vec::<u8>()
        .unwrap();
    let want = f
        .tensor(&format!("{ty}.f32"))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    (raw, want)
}

#[test]
fn matches_gguf_py_bit_for_bit() {
    for ty in TYPES {
        assert!(ty.can_dequantize());
        let (raw, want) = fixture(ty);
        assert!(
            want.len() >= (3 * ty.block_size()).max(40),
            "{ty}: fixture too small"
        );
        let got = dequantize(ty, &raw, want.len()).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{ty} value {i}: {g} vs gguf-py's {w}"
            );
        }
        // Blocks are independent: dequantizing the last block alone gives its part.
        let (bs, ts) = (ty.block_size(), ty.type_size());
        let tail = dequantize(ty, &raw[raw.len() - ts..], bs).unwrap();
        assert_eq!(tail, want[want.len() - bs..], "{ty}: last block alone");
    }
}

#[test]
fn refuses_sizes_that_do_not_match() {
    let (raw, want) = fixture(GgmlType::Q4_K);
    let e = dequantize(GgmlType::Q4_K, &raw[1..], want.len())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("768 values of Q4_K") && e.contains("431 bytes"),
        "{e}"
    );
    let e = dequantize(GgmlType::Q4_0, &[0; 18], 16)
        .unwrap_err()
        .to_string();
    assert!(e.contains("16 values of Q4_0"), "{e}");
    let e = dequantize(GgmlType::IQ4_NL, &[0; 18], 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot dequantize IQ4_NL"), "{e}");
}

#[test]
fn type_table_matches_ggml() {
    // Ids, block sizes and bytes per block as GGML defines them (ggml.h / gguf-py constants).
    let table = [
        (GgmlType::F32, 0, 1, 4),
        (GgmlType::F16, 1, 1, 2),
        (GgmlType::Q4_0, 2, 32, 18),
        (GgmlType::Q4_1, 3, 32, 20),
        (GgmlType::Q5_0, 6, 32, 22),
        (GgmlType::Q5_1, 7, 32, 24),
        (GgmlType::Q8_0, 8, 32, 34),
        (GgmlType::Q8_1, 9, 32, 40),
        (GgmlType::Q2_K, 10, 256, 84),
        (GgmlType::Q3_K, 11, 256, 110),
        (GgmlType::Q4_K, 12, 256, 144),
        (GgmlType::Q5_K, 13, 256, 176),
        (GgmlType::Q6_K, 14, 256, 210),
        (GgmlType::Q8_K, 15, 256, 292),
        (GgmlType::BF16, 30, 1, 2),
    ];
    for (ty, id, bs, ts) in table {
        assert_eq!(
            (ty.id(), ty.block_size(), ty.type_size()),
            (id, bs, ts),
            "{ty}"
        );
        assert_eq!(GgmlType::from_id(id), Some(ty));
    }
    assert_eq!(
        GgmlType::from_id(4),
        None,
        "id 4 (Q4_2) was removed from GGML"
    );
    for ty in GgmlType::ALL {
        assert_eq!(GgmlType::from_id(ty.id()), Some(*ty));
    }
}
