//! The safetensors format: an 8-byte little-endian header length, a JSON header (dtype, shape
//! and byte range of every tensor, plus optional string metadata), then the raw little-endian
//! data. Parsing and validation of the header are the `safetensors` crate's; this file converts
//! between its byte views and fukai tensors.

use super::atomic::write_atomic;
use crate::error::{op_err, Error, Result};
use crate::tensor::{match_storage, CpuStorage, DType, Tensor};
use ::safetensors::tensor::{Metadata, SafeTensors};
use ::safetensors::{Dtype, View};
use half::{bf16, f16};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// The tensors and metadata of a safetensors file.
#[derive(Clone, Debug)]
pub struct SafetensorsFile {
    source: String,
    tensors: Vec<(String, Tensor)>,
    index: HashMap<String, usize>,
    metadata: HashMap<String, String>,
}

impl SafetensorsFile {
    /// The file (or stream name) the tensors were read from.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// All tensors in file order (by position of their data).
    pub fn tensors(&self) -> &[(String, Tensor)] {
        &self.tensors
    }
    /// The tensor called `name`, if the file has one.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.tensors[i].1)
    }
    /// The tensor called `name`, or an error naming the file and the missing tensor.
    pub fn tensor(&self, name: &str) -> Result<&Tensor> {
        self.get(name).ok_or_else(|| Error::Format {
            file: self.source.clone(),
            msg: format!("no tensor named {name:?} ({} tensors in file)", self.len()),
        })
    }
    /// The string metadata (`__metadata__` in the header); empty if there was none.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }
    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }
    /// True when the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
    /// Bytes of tensor data the file holds.
    pub fn data_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .map(|(_, t)| (t.numel() * t.dtype().size_in_bytes()) as u64)
            .sum()
    }
    /// A bound for [`crate::tensor::with_alloc_limit`] while building the model these tensors
    /// belong to from metadata: room for the parameters with their f64 initialization scratch
    /// (12 bytes per weight, 6x the bytes of a 16-bit weight in the file), plus 64 MiB for
    /// buffers a model computes itself (masks, position tables).
    pub fn build_limit(&self) -> u64 {
        self.data_bytes().saturating_mul(6).saturating_add(64 << 20)
    }
    /// Errors, naming the tensor and the element, unless every float value is finite: a model
    /// with a NaN or infinite weight answers every input with garbage, so it is refused at load.
    pub fn check_finite(&self) -> Result<()> {
        for (name, t) in &self.tensors {
            if !t.dtype().is_float() {
                continue;
            }
            let v = t.to_vec_f64()?;
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::Format {
                    file: self.source.clone(),
                    msg: format!(
                        "tensor {name:?}: element {i} is {} (weights must be finite)",
                        v[i]
                    ),
                });
            }
        }
        Ok(())
    }
    /// The tensors (in file order) and the metadata, by value.
    pub fn into_parts(self) -> (Vec<(String, Tensor)>, HashMap<String, String>) {
        (self.tensors, self.metadata)
    }
}

fn st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::BF16 => Dtype::BF16,
        DType::F16 => Dtype::F16,
        DType::I64 => Dtype::I64,
        DType::U32 => Dtype::U32,
        DType::U8 => Dtype::U8,
    }
}

/// A tensor as the serializer sees it: bytes are produced one tensor at a time, when written.
struct TensorBytes<'a> {
    tensor: &'a Tensor,
    dtype: Dtype,
}

impl View for TensorBytes<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        self.tensor.shape()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        let data = self.tensor.copy_contiguous_storage();
        let mut out = Vec::with_capacity(self.data_len());
        match_storage!(&data, v => {
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        });
        Cow::Owned(out)
    }
    fn data_len(&self) -> usize {
        self.tensor.numel() * self.tensor.dtype().size_in_bytes()
    }
}

/// The bytes of a safetensors file holding `tensors` (names must be distinct) and `metadata`.
/// The format stores tensors sorted by dtype, then name; that is the order loading gives back.
pub fn serialize_safetensors(
    tensors: &[(String, Tensor)],
    metadata: Option<&HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    for (name, _) in tensors {
        if name == "__metadata__" {
            return Err(op_err(
                "save_safetensors",
                "the tensor name \"__metadata__\" is reserved by the format",
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(op_err(
                "save_safetensors",
                format!("tensor name {name:?} appears twice"),
            ));
        }
    }
    // Device tensors are read back first: files hold host bytes, so they load anywhere.
    let host: Vec<Tensor> = tensors
        .iter()
        .map(|(_, t)| t.detach().to(crate::Device::Cpu))
        .collect::<Result<_>>()?;
    let views = tensors.iter().zip(&host).map(|((name, _), t)| {
        (
            name.as_str(),
            TensorBytes {
                tensor: t,
                dtype: st_dtype(t.dtype()),
            },
        )
    });
    let mut bytes = ::safetensors::serialize(views, metadata.cloned())
        .map_err(|e| op_err("save_safetensors", format!("cannot serialize: {e}")))?;
    sort_metadata(&mut bytes);
    Ok(bytes)
}

/// The safetensors crate writes the metadata map in hash order, which changes from run to run;
/// rewritten here in key order (the same characters, so the same length), so that the same
/// tensors and metadata always give the same bytes.
fn sort_metadata(bytes: &mut [u8]) {
    const KEY: &str = "{\"__metadata__\":";
    let Some(len) = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(|b: [u8; 8]| u64::from_le_bytes(b) as usize)
    else {
        return;
    };
    let Some(header) = bytes.get(8..8usize.saturating_add(len)) else {
        return;
    };
    let Some(rest) = std::str::from_utf8(header)
        .ok()
        .and_then(|h| h.strip_prefix(KEY))
    else {
        return;
    };
    let mut values = serde_json::Deserializer::from_str(rest)
        .into_iter::<std::collections::BTreeMap<String, String>>();
    let Some(Ok(sorted)) = values.next() else {
        return;
    };
    let end = values.byte_offset();
    if let Ok(text) = serde_json::to_string(&sorted) {
        if text.len() == end {
            let at = 8 + KEY.len();
            bytes[at..at + end].copy_from_slice(text.as_bytes());
        }
    }
}

/// Writes `tensors` (any dtype, any layout; names must be distinct) and optional string
/// `metadata` to `path` in safetensors format, atomically (see [`write_atomic`]).
pub fn save_safetensors(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor)],
    metadata: Option<&HashMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    let bytes = serialize_safetensors(tensors, metadata).map_err(|e| match e {
        Error::Op { op, msg } => Error::Op {
            op,
            msg: format!("{}: {msg}", path.display()),
        },
        e => e,
    })?;
    write_atomic(path, &bytes)
}

/// Reads a safetensors file. Every tensor comes back as a contiguous leaf in its stored dtype
/// (`BOOL` tensors become `u8` masks). Invalid or truncated files give an [`Error::Format`]
/// naming the file; dtypes fukai cannot hold give one naming the tensor and dtype.
pub fn load_safetensors(path: impl AsRef<Path>) -> Result<SafetensorsFile> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_safetensors(&bytes, &path.display().to_string())
}

/// Parses the bytes of a safetensors file; `source` names it in errors.
pub fn parse_safetensors(bytes: &[u8], source: &str) -> Result<SafetensorsFile> {
    let fmt_err = |msg: String| Error::Format {
        file: source.to_string(),
        msg,
    };
    // Validates the header: offsets are contiguous, in bounds, match dtype × shape (with
    // overflow checks) and cover the file exactly. Sizes below are therefore backed by bytes.
    let (header_len, meta): (usize, Metadata) = SafeTensors::read_metadata(bytes).map_err(|e| {
        fmt_err(format!(
            "not a valid safetensors file ({} bytes): {e}",
            bytes.len()
        ))
    })?;
    let data = bytes
        .get(8 + header_len..)
        .ok_or_else(|| fmt_err("data section missing".into()))?;
    let names = meta.offset_keys();
    let mut tensors = Vec::with_capacity(names.len());
    let mut index = HashMap::with_capacity(names.len());
    for name in names {
        let info = meta
            .info(&name)
            .ok_or_else(|| fmt_err(format!("tensor {name:?}: missing from the header")))?;
        let (start, end) = info.data_offsets;
        let raw = data.get(start..end).ok_or_else(|| {
            fmt_err(format!(
                "tensor {name:?}: byte range {start}..{end} outside the data section ({} bytes)",
                data.len()
            ))
        })?;
        let t = decode(&name, info.dtype, &info.shape, raw).map_err(fmt_err)?;
        index.insert(name.clone(), tensors.len());
        tensors.push((name, t));
    }
    Ok(SafetensorsFile {
        source: source.to_string(),
        tensors,
        index,
        metadata: meta.metadata().clone().unwrap_or_default(),
    })
}

/// Little-endian `raw` as a tensor of `dtype` and `shape`; checks the length before allocating.
fn decode(
    name: &str,
    dtype: Dtype,
    shape: &[usize],
    raw: &[u8],
) -> std::result::Result<Tensor, String> {
    let ours = match dtype {
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::BF16 => DType::BF16,
        Dtype::F16 => DType::F16,
        Dtype::I64 => DType::I64,
        Dtype::U32 => DType::U32,
        Dtype::U8 | Dtype::BOOL => DType::U8,
        other => {
            return Err(format!(
                "tensor {name:?} has dtype {other}, which fukai does not support \
                 (supported: F32, F64, BF16, F16, I64, U32, U8, BOOL)"
            ))
        }
    };
    let size = ours.size_in_bytes();
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let expected = numel.and_then(|n| n.checked_mul(size));
    let (Some(numel), Some(expected)) = (numel, expected) else {
        return Err(format!(
            "tensor {name:?}: shape {shape:?} overflows the element count"
        ));
    };
    if raw.len() != expected {
        return Err(format!(
            "tensor {name:?}: {dtype} shape {shape:?} needs {expected} bytes, found {}",
            raw.len()
        ));
    }
    macro_rules! le {
        ($t:ty, $n:literal, $conv:expr) => {{
            let v: Vec<$t> = raw
                .chunks_exact($n)
                .map(|c| {
                    let mut b = [0u8; $n];
                    b.copy_from_slice(c);
                    $conv(b)
                })
                .collect();
            v
        }};
    }
    let data = match ours {
        DType::F32 => CpuStorage::F32(le!(f32, 4, f32::from_le_bytes)),
        DType::F64 => CpuStorage::F64(le!(f64, 8, f64::from_le_bytes)),
        DType::BF16 => CpuStorage::BF16(le!(bf16, 2, |b| bf16::from_bits(u16::from_le_bytes(b)))),
        DType::F16 => CpuStorage::F16(le!(f16, 2, |b| f16::from_bits(u16::from_le_bytes(b)))),
        DType::I64 => CpuStorage::I64(le!(i64, 8, i64::from_le_bytes)),
        DType::U32 => CpuStorage::U32(le!(u32, 4, u32::from_le_bytes)),
        DType::U8 => CpuStorage::U8(raw.to_vec()),
    };
    debug_assert_eq!(data.len(), numel);
    Ok(Tensor::from_storage(data, shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fukai-st-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn all_dtypes() -> Vec<(String, Tensor)> {
        let f = [1.5, -2.25, 0.0, 3.0e-3, -7.0, 1.0e4];
        let mk = |d: DType| {
            Tensor::from_vec(f.to_vec(), &[2, 3])
                .unwrap()
                .to_dtype(d)
                .unwrap()
        };
        vec![
            ("f32".into(), mk(DType::F32)),
            ("f64".into(), mk(DType::F64)),
            ("bf16".into(), mk(DType::BF16)),
            ("f16".into(), mk(DType::F16)),
            (
                "i64".into(),
                Tensor::from_vec(vec![-3i64, i64::MAX, 0, 7], &[4]).unwrap(),
            ),
            (
                "u32".into(),
                Tensor::from_vec(vec![0u32, u32::MAX, 5], &[3, 1]).unwrap(),
            ),
            (
                "u8".into(),
                Tensor::from_vec(vec![0u8, 1, 255], &[3]).unwrap(),
            ),
            ("scalar".into(), Tensor::scalar(2.5, DType::F32)),
            ("empty".into(), Tensor::zeros(&[0, 4], DType::F32).unwrap()),
            // A strided view is written in logical order.
            ("transposed".into(), mk(DType::F32).t().unwrap()),
        ]
    }

    #[test]
    fn roundtrip_every_dtype_with_metadata() {
        let dir = scratch("roundtrip");
        let path = dir.join("all.safetensors");
        let tensors = all_dtypes();
        let meta: HashMap<String, String> = [
            ("format".to_string(), "pt".to_string()),
            ("step".into(), "12".into()),
        ]
        .into();
        save_safetensors(&path, &tensors, Some(&meta)).unwrap();
        let file = load_safetensors(&path).unwrap();
        assert_eq!(file.metadata(), &meta);
        assert_eq!(file.len(), tensors.len());
        for (name, t) in &tensors {
            let back = file.tensor(name).unwrap();
            assert_eq!(back.dtype(), t.dtype(), "{name}");
            assert_eq!(back.shape(), t.shape(), "{name}");
            let (a, b) = (back.to_vec_f64().unwrap(), t.to_vec_f64().unwrap());
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.to_bits(), y.to_bits(), "{name}");
            }
        }
        // Exact integer values survive (i64::MAX is not representable in f64).
        assert_eq!(
            file.tensor("i64").unwrap().to_vec::<i64>().unwrap(),
            vec![-3, i64::MAX, 0, 7]
        );
        // File order follows data offsets; names are all there once.
        let mut names: Vec<_> = file.tensors().iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        let mut want: Vec<_> = tensors.iter().map(|(n, _)| n.clone()).collect();
        want.sort();
        assert_eq!(names, want);
        let err = file.tensor("nope").unwrap_err().to_string();
        assert!(
            err.contains("all.safetensors") && err.contains("nope"),
            "{err}"
        );
        // No metadata: an empty map.
        save_safetensors(&path, &tensors[..1], None).unwrap();
        assert!(load_safetensors(&path).unwrap().metadata().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_files_give_errors_naming_the_file() {
        let dir = scratch("corrupt");
        let good = serialize_safetensors(&all_dtypes(), None).unwrap();
        // Every truncation point, including inside the length prefix and the header.
        for cut in (0..good.len()).step_by(7).chain([good.len() - 1]) {
            let p = dir.join("truncated.safetensors");
            std::fs::write(&p, &good[..cut]).unwrap();
            let err = load_safetensors(&p).unwrap_err();
            assert!(matches!(err, Error::Format { .. }), "cut {cut}: {err}");
            assert!(err.to_string().contains("truncated.safetensors"), "{err}");
        }
        // Garbage, and a header length claiming a huge allocation.
        let p = dir.join("garbage.safetensors");
        std::fs::write(&p, b"this is not a safetensors file at all").unwrap();
        let err = load_safetensors(&p).unwrap_err().to_string();
        assert!(err.contains("garbage.safetensors"), "{err}");
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(parse_safetensors(&huge, "huge").is_err());
        // A header promising more data than there is.
        let header =
            br#"{"x":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,4000000000000]}}"#;
        let mut lying = (header.len() as u64).to_le_bytes().to_vec();
        lying.extend_from_slice(header);
        lying.extend_from_slice(&[0; 16]);
        let err = parse_safetensors(&lying, "lying.safetensors")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lying.safetensors"), "{err}");
        // Flipped bytes anywhere never panic.
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x5a;
            let _ = parse_safetensors(&b, "flipped");
        }
        // A missing file is an Io error naming it.
        let err = load_safetensors(dir.join("missing.safetensors")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }) && err.to_string().contains("missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unsupported_dtype_names_tensor_and_dtype() {
        let header = br#"{"ids":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#;
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header);
        b.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
        let err = parse_safetensors(&b, "ints.safetensors")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ints.safetensors") && err.contains("\"ids\"") && err.contains("I32"),
            "{err}"
        );
        // BOOL loads as a u8 mask.
        let header = br#"{"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}"#;
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header);
        b.extend_from_slice(&[1, 0, 1]);
        let f = parse_safetensors(&b, "mask").unwrap();
        assert_eq!(
            f.tensor("m").unwrap().to_vec::<u8>().unwrap(),
            vec![1, 0, 1]
        );
    }

    #[test]
    fn bad_names_are_rejected() {
        let t = Tensor::scalar(1.0, DType::F32);
        let dup = [("a".to_string(), t.clone()), ("a".to_string(), t.clone())];
        let err = serialize_safetensors(&dup, None).unwrap_err().to_string();
        assert!(err.contains("\"a\""), "{err}");
        let reserved = [("__metadata__".to_string(), t)];
        assert!(serialize_safetensors(&reserved, None).is_err());
    }
}
