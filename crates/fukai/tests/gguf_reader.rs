//! The GGUF reader on hand-built files: every value type, nested arrays, tensor infos,
//! alignment, and each malformed field refused with an error that names the file and the field.
//! Plus SmolLM2-135M-Instruct (scripts/fetch_smollm2.sh), read the same as gguf-py reads it.

use fukai::io::gguf::{GgufFile, GgufValue, GgufValueType};
use fukai::quant::GgmlType;

/// Writes a GGUF file field by field; each field can be set to a wrong value.
#[derive(Clone)]
struct Builder {
    magic: [u8; 4],
    version: u32,
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    alignment: u64,
    data: Vec<u8>,
}

fn s(b: &mut Vec<u8>, v: &str) {
    b.extend((v.len() as u64).to_le_bytes());
    b.extend(v.as_bytes());
}

impl Builder {
    fn new() -> Builder {
        Builder {
            magic: *b"GGUF",
            version: 3,
            kv: vec![],
            n_kv: 0,
            infos: vec![],
            n_tensors: 0,
            alignment: 32,
            data: vec![],
        }
    }
    /// A pair whose value (type id `ty`, then `payload`) is given raw.
    fn kv(mut self, key: &str, ty: u32, payload: &[u8]) -> Builder {
        s(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend(payload);
        self.n_kv += 1;
        self
    }
    fn kv_u32(self, key: &str, v: u32) -> Builder {
        self.kv(key, 4, &v.to_le_bytes())
    }
    fn kv_str(self, key: &str, v: &str) -> Builder {
        let mut p = vec![];
        s(&mut p, v);
        self.kv(key, 8, &p)
    }
    /// A tensor info with raw fields; its data is whatever `data` holds at `offset`.
    fn info(mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Builder {
        s(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(ty.to_le_bytes());
        self.infos.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }
    /// Appends `bytes` to the data section at the next aligned offset, returning that offset.
    fn push_data(&mut self, bytes: &[u8]) -> u64 {
        let at = (self.data.len() as u64).next_multiple_of(self.alignment);
        self.data.resize(at as usize, 0);
        self.data.extend(bytes);
        at
    }
    fn tensor(mut self, name: &str, dims: &[u64], ty: GgmlType, bytes: &[u8]) -> Builder {
        let at = self.push_data(bytes);
        self.info(name, dims, ty.id(), at)
    }
    fn bytes(&self) -> Vec<u8> {
        let mut b = self.magic.to_vec();
        b.extend(self.version.to_le_bytes());
        b.extend(self.n_tensors.to_le_bytes());
        b.extend(self.n_kv.to_le_bytes());
        b.extend(&self.kv);
        b.extend(&self.infos);
        b.resize(
            (b.len() as u64).next_multiple_of(self.alignment) as usize,
            0,
        );
        b.extend(&self.data);
        b
    }
    fn parse(&self) -> fukai::Result<GgufFile> {
        GgufFile::from_bytes("test.gguf", self.bytes())
    }
    /// The error parsing gives, which must name the file and contain each of `words`.
    fn error(&self, words: &[&str]) -> String {
        let e = self
            .parse()
            .expect_err("a malformed file must be refused")
            .to_string();
        assert!(
            e.starts_with("test.gguf: "),
            "error does not name the file: {e}"
        );
        for w in words {
            assert!(e.contains(w), "error {e:?} does not mention {w:?}");
        }
        e
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// One Q8_0 block: scale 0.5, values -16..16.
fn q8_block() -> Vec<u8> {
    let mut b = half::f16::from_f32(0.5).to_le_bytes().to_vec();
    b.extend((0..32).map(|i| (i - 16) as i8 as u8));
    b
}

/// A file with a pair of every value type, a nested array, and two tensors.
fn full() -> Builder {
    let mut nested = vec![];
    nested.extend(9u32.to_le_bytes()); // array of arrays
    nested.extend(2u64.to_le_bytes());
    for row in [vec![1i16, -2], vec![3]] {
        nested.extend(3u32.to_le_bytes());
        nested.extend((row.len() as u64).to_le_bytes());
        for v in row {
            nested.extend(v.to_le_bytes());
        }
    }
    let mut strs = vec![];
    strs.extend(8u32.to_le_bytes());
    strs.extend(3u64.to_le_bytes());
    for t in ["<s>", "héllo", ""] {
        s(&mut strs, t);
    }
    Builder::new()
        .kv("u8", 0, &[200])
        .kv("i8", 1, &[0xff])
        .kv("u16", 2, &60000u16.to_le_bytes())
        .kv("i16", 3, &(-30000i16).to_le_bytes())
        .kv_u32("u32", 4_000_000_000)
        .kv("i32", 5, &(-7i32).to_le_bytes())
        .kv("f32", 6, &1.5f32.to_le_bytes())
        .kv("bool", 7, &[1])
        .kv_str("str", "llama")
        .kv("u64", 10, &u64::MAX.to_le_bytes())
        .kv("i64", 11, &i64::MIN.to_le_bytes())
        .kv("f64", 12, &0.1f64.to_le_bytes())
        .kv("nested", 9, &nested)
        .kv("tokens", 9, &strs)
        .tensor(
            "norm",
            &[3, 2],
            GgmlType::F32,
            &f32_bytes(&[1., 2., 3., 4., 5., 6.]),
        )
        .tensor("w", &[32, 1], GgmlType::Q8_0, &q8_block())
}

#[test]
fn reads_every_value_type_and_tensor() {
    let f = full().parse().unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.metadata().len(), 14);
    assert_eq!(f.get("u8"), Some(&GgufValue::U8(200)));
    assert_eq!(f.get("i8"), Some(&GgufValue::I8(-1)));
    assert_eq!(f.get("u16"), Some(&GgufValue::U16(60000)));
    assert_eq!(f.get("i16"), Some(&GgufValue::I16(-30000)));
    assert_eq!(f.get_u32("u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get_i64("i32").unwrap(), -7);
    assert_eq!(f.get_f32("f32").unwrap(), 1.5);
    assert!(f.get_bool("bool").unwrap());
    assert_eq!(f.get_str("str").unwrap(), "llama");
    assert_eq!(f.get_u64("u64").unwrap(), u64::MAX);
    assert_eq!(f.get_i64("i64").unwrap(), i64::MIN);
    assert_eq!(f.get("f64"), Some(&GgufValue::F64(0.1)));
    assert_eq!(
        f.get("nested"),
        Some(&GgufValue::Array(
            GgufValueType::Array,
            vec![
                GgufValue::Array(
                    GgufValueType::I16,
                    vec![GgufValue::I16(1), GgufValue::I16(-2)]
                ),
                GgufValue::Array(GgufValueType::I16, vec![GgufValue::I16(3)]),
            ]
        ))
    );
    assert_eq!(f.get_str_array("tokens").unwrap(), ["<s>", "héllo", ""]);

    let t = f.tensors();
    assert_eq!(
        (t[0].name.as_str(), t[0].ggml_type),
        ("norm", GgmlType::F32)
    );
    assert_eq!(t[0].shape, [2, 3], "row-major: GGUF's dims reversed");
    assert_eq!(
        (t[1].shape.as_slice(), t[1].offset),
        ([1, 32].as_slice(), 32)
    );
    assert_eq!(f.data_start() % 32, 0);
    let norm = f.tensor_f32("norm").unwrap();
    assert_eq!(norm.shape(), &[2, 3]);
    assert_eq!(norm.to_vec::<f32>().unwrap(), [1., 2., 3., 4., 5., 6.]);
    assert_eq!(f.tensor_bytes("w").unwrap(), q8_block().as_slice());
    let w = f.tensor_f32("w").unwrap().to_vec::<f32>().unwrap();
    assert_eq!(
        w,
        (0..32).map(|i| (i - 16) as f32 * 0.5).collect::<Vec<_>>()
    );
    let q = f.qmatrix("w").unwrap();
    assert_eq!((q.rows(), q.cols(), q.ggml_type()), (1, 32, GgmlType::Q8_0));
}

#[test]
fn typed_reads_name_the_key_and_the_type_found() {
    let f = full().parse().unwrap();
    let e = f.get_u32("str").unwrap_err().to_string();
    assert!(e.contains("\"str\"") && e.contains("found string"), "{e}");
    let e = f.get_u32("i64").unwrap_err().to_string();
    assert!(e.contains("u32 range") && e.contains("found i64"), "{e}");
    let e = f.get_str_array("nested").unwrap_err().to_string();
    assert!(
        e.contains("array of string") && e.contains("found array of array"),
        "{e}"
    );
    let e = f.get_f32("missing.key").unwrap_err().to_string();
    assert!(e.contains("no metadata key \"missing.key\""), "{e}");
    let e = f.tensor_f32("nope").unwrap_err().to_string();
    assert!(e.contains("no tensor named \"nope\""), "{e}");
}

#[test]
fn honours_general_alignment() {
    let mut b = Builder::new().kv_u32("general.alignment", 64);
    b.alignment = 64;
    let b = b
        .tensor("a", &[4], GgmlType::F32, &f32_bytes(&[1., 2., 3., 4.]))
        .tensor("b", &[2], GgmlType::F32, &f32_bytes(&[5., 6.]));
    let f = b.parse().unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_start() % 64, 0);
    assert_eq!(f.tensors()[1].offset, 64);
    assert_eq!(
        f.tensor_f32("b").unwrap().to_vec::<f32>().unwrap(),
        [5., 6.]
    );
    // Offsets that are multiples of 32 but not of the declared 64 are refused.
    let mut b = Builder::new().kv_u32("general.alignment", 64);
    b.alignment = 64;
    b.data = vec![0; 128];
    b.info("a", &[4], 0, 32)
        .error(&["\"a\"", "offset", "alignment 64"]);
    Builder::new()
        .kv_u32("general.alignment", 48)
        .error(&["general.alignment", "power of two"]);
    Builder::new()
        .kv_str("general.alignment", "32")
        .error(&["general.alignment", "string"]);
}

#[test]
fn refuses_each_malformed_field() {
    let mut b = Builder::new();
    b.magic = *b"GGML";
    b.error(&["magic", "not a GGUF file"]);
    for v in [1, 4, 0x0300_0000] {
        let mut b = Builder::new();
        b.version = v;
        b.error(&[&format!("version is {v}")]);
    }
    let mut b = Builder::new();
    b.n_tensors = 1 << 40;
    b.error(&["tensor count", "1099511627776"]);
    let mut b = Builder::new();
    b.n_kv = u64::MAX;
    b.error(&["metadata count"]);
    // A string length past the end of the file.
    Builder::new()
        .kv("k", 8, &(1u64 << 50).to_le_bytes())
        .error(&["\"k\"", "string value length"]);
    Builder::new()
        .kv("k", 13, &[0; 8])
        .error(&["\"k\"", "value type", "13"]);
    Builder::new()
        .kv("flag", 7, &[2])
        .error(&["\"flag\"", "bool", "2"]);
    Builder::new()
        .kv("k", 8, &[2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe])
        .error(&["\"k\"", "UTF-8"]);
    // Array lengths past the end, of scalars and of (empty) strings.
    let mut arr = 4u32.to_le_bytes().to_vec();
    arr.extend((1u64 << 40).to_le_bytes());
    Builder::new()
        .kv("a", 9, &arr)
        .error(&["\"a\"", "array length"]);
    let mut arr = 8u32.to_le_bytes().to_vec();
    arr.extend(100u64.to_le_bytes());
    arr.extend([0u8; 16 * 8]);
    Builder::new()
        .kv("a", 9, &arr)
        .error(&["\"a\"", "array length", "is 100"]);
    // Arrays nested past the limit.
    let mut deep = vec![];
    for _ in 0..20 {
        deep.extend(9u32.to_le_bytes());
        deep.extend(1u64.to_le_bytes());
    }
    deep.extend(0u32.to_le_bytes());
    deep.extend(0u64.to_le_bytes());
    Builder::new()
        .kv("deep", 9, &deep)
        .error(&["\"deep\"", "nested"]);
    Builder::new()
        .kv_u32("k", 1)
        .kv_u32("k", 2)
        .error(&["\"k\"", "twice"]);

    let data = Builder::new().tensor("t", &[4], GgmlType::F32, &[0; 16]);
    data.clone()
        .info("u", &[4], 99, 0)
        .error(&["\"u\"", "tensor type", "99"]);
    data.clone()
        .info("u", &[2, 2, 2, 2, 2], 0, 0)
        .error(&["\"u\"", "dimension count", "5"]);
    data.clone()
        .info("u", &[1 << 32, 1 << 32], 0, 0)
        .error(&["\"u\"", "overflow"]);
    data.clone()
        .info("u", &[5], 0, 32)
        .error(&["\"u\"", "past the end"]);
    data.clone()
        .info("u", &[4], 0, 4)
        .error(&["\"u\"", "not a multiple of the alignment 32"]);
    data.clone()
        .info("u", &[16], 2, 0)
        .error(&["\"u\"", "Q4_0", "block size 32"]);
    data.clone()
        .info("t", &[4], 0, 0)
        .error(&["\"t\"", "twice"]);
    data.clone()
        .info("u", &[4], 0, u64::MAX - 31)
        .error(&["\"u\"", "past the end"]);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = full().bytes();
    for len in 0..bytes.len() {
        let e = GgufFile::from_bytes("cut.gguf", bytes[..len].to_vec());
        assert!(e.is_err(), "a file cut to {len} bytes parsed");
    }
}

#[test]
fn unsupported_types_are_listed_but_not_dequantized() {
    // IQ2_XXS: known to the reader (so the file opens), refused by tensor_f32 by name.
    let f = Builder::new()
        .tensor("iq", &[256], GgmlType::IQ2_XXS, &[0; 66])
        .parse()
        .unwrap();
    assert_eq!(f.tensors()[0].ggml_type, GgmlType::IQ2_XXS);
    let e = f.tensor_f32("iq").unwrap_err().to_string();
    assert!(
        e.contains("\"iq\"") && e.contains("cannot dequantize IQ2_XXS"),
        "{e}"
    );
}

/// SmolLM2-135M-Instruct Q4_1 from `$FUKAI_GGUF_SMOLLM2`, compared with what gguf-py read from
/// it (tests/fixtures/gguf_smollm2.json, written by scripts/gguf_fixtures.py).
#[test]
#[ignore = "needs the 98 MB SmolLM2 GGUF: scripts/fetch_smollm2.sh, then FUKAI_GGUF_SMOLLM2=<path>"]
fn reads_smollm2_as_gguf_py_does() {
    let Some(path) = fukai::testing::asset_file(
        "FUKAI_GGUF_SMOLLM2",
        "scripts/fetch_smollm2.sh prints the path",
    ) else {
        return;
    };
    let want: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/gguf_smollm2.json")).expect("fixture parses");
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(
        f.tensors().len() as u64,
        want["tensor_count"].as_u64().unwrap()
    );
    assert_eq!(
        f.metadata().len() as u64,
        want["kv_count"].as_u64().unwrap()
    );
    let m = &want["metadata"];
    assert_eq!(
        f.get_str("general.architecture").unwrap(),
        m["general.architecture"]
    );
    assert_eq!(f.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(f.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(f.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(
        f.get_f32("llama.rope.freq_base").unwrap() as f64,
        m["llama.rope.freq_base"].as_f64().unwrap()
    );
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    let tokens = f.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(
        tokens.len() as u64,
        want["tokens"]["count"].as_u64().unwrap()
    );
    assert_eq!(tokens[..3], want["tokens"]["first"].as_array().unwrap()[..]);
    assert_eq!(tokens[tokens.len() - 1], want["tokens"]["last"]);
    assert!(f
        .get_str("tokenizer.chat_template")
        .unwrap()
        .contains("im_start"));

    let mut types = std::collections::BTreeSet::new();
    for t in f.tensors() {
        types.insert(t.ggml_type.name());
    }
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        ["F32", "Q4_1", "Q8_0"]
    );
    for (name, t) in want["tensors"].as_object().unwrap() {
        let info = f.tensor_info(name).unwrap();
        assert_eq!(info.ggml_type.name(), t["type"], "{name}");
        let shape: Vec<usize> = serde_json::from_value(t["shape"].clone()).unwrap();
        assert_eq!(info.shape, shape, "{name}");
        assert_eq!(
            f.data_start() + info.offset,
            t["file_offset"].as_u64().unwrap()
        );
        let v = f.tensor_f32(name).unwrap().to_vec::<f32>().unwrap();
        let head: Vec<f32> = serde_json::from_value(t["first_row_head"].clone()).unwrap();
        assert_eq!(
            &v[..head.len()],
            head.as_slice(),
            "{name}: gguf-py's values, bit for bit"
        );
        let sum: f64 = v.iter().map(|&x| x as f64).sum();
        let want_sum = t["sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-9 * want_sum.abs().max(1.0),
            "{name}: {sum}"
        );
    }
}
