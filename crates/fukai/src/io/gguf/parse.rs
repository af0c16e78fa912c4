//! Parsing a GGUF header: magic, version, counts, the metadata key–value pairs, the tensor
//! infos, and where the tensor data starts. Every length and count is checked against the bytes
//! left before anything is allocated for it, so a hostile header cannot ask for more memory
//! than the file's own size. Errors are plain messages here; the caller adds the file name.

use super::value::{GgufValue, GgufValueType};
use super::TensorInfo;
use crate::quant::GgmlType;
use std::collections::HashSet;

/// Nested arrays deeper than this are refused: each level recurses once, and a file of 12-byte
/// array headers could otherwise nest deep enough to overflow the stack.
const MAX_NESTING: usize = 8;

/// GGML tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;

/// What the header holds.
pub(super) struct Header {
    pub version: u32,
    pub metadata: Vec<(String, GgufValue)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_start: u64,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!(
                "{what} at byte {} needs {n} bytes, the file has {} left",
                self.pos,
                self.left()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        Ok(self
            .take(N, what)?
            .try_into()
            .expect("take returns N bytes"))
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }
    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }
    /// A count of items of at least `min_size` bytes each, refused when the bytes left cannot
    /// hold that many.
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize, String> {
        let at = self.pos;
        let n = self.u64(what)?;
        let room = (self.left() / min_size.max(1)) as u64;
        if n > room {
            return Err(format!(
                "{what} at byte {at} is {n}, but the {} bytes left hold at most {room}",
                self.left()
            ));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.count(1, &format!("{what} length"))?;
        let at = self.pos;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| format!("{what} at byte {at} is not UTF-8 ({e})"))
    }
    fn value_type(&mut self, what: &str) -> Result<GgufValueType, String> {
        let at = self.pos;
        let id = self.u32(what)?;
        GgufValueType::from_id(id)
            .ok_or_else(|| format!("{what} at byte {at} is {id}, not a GGUF value type (0 to 12)"))
    }
    fn value(&mut self, t: GgufValueType, depth: usize) -> Result<GgufValue, String> {
        use GgufValueType as T;
        Ok(match t {
            T::U8 => GgufValue::U8(self.array::<1>("u8 value")?[0]),
            T::I8 => GgufValue::I8(self.array::<1>("i8 value")?[0] as i8),
            T::U16 => GgufValue::U16(u16::from_le_bytes(self.array("u16 value")?)),
            T::I16 => GgufValue::I16(i16::from_le_bytes(self.array("i16 value")?)),
            T::U32 => GgufValue::U32(self.u32("u32 value")?),
            T::I32 => GgufValue::I32(i32::from_le_bytes(self.array("i32 value")?)),
            T::F32 => GgufValue::F32(f32::from_le_bytes(self.array("f32 value")?)),
            T::U64 => GgufValue::U64(self.u64("u64 value")?),
            T::I64 => GgufValue::I64(i64::from_le_bytes(self.array("i64 value")?)),
            T::F64 => GgufValue::F64(f64::from_le_bytes(self.array("f64 value")?)),
            T::Bool => {
                let at = self.pos;
                match self.array::<1>("bool value")?[0] {
                    0 => GgufValue::Bool(false),
                    1 => GgufValue::Bool(true),
                    b => return Err(format!("bool value at byte {at} is {b}, not 0 or 1")),
                }
            }
            T::String => GgufValue::String(self.string("string value")?),
            T::Array => {
                if depth >= MAX_NESTING {
                    return Err(format!(
                        "array at byte {} is nested more than {MAX_NESTING} deep",
                        self.pos
                    ));
                }
                let elem = self.value_type("array element type")?;
                let n = self.count(elem.min_size(), "array length")?;
                let mut items = Vec::with_capacity(n);
                for i in 0..n {
                    items.push(
                        self.value(elem, depth + 1)
                            .map_err(|e| format!("array element {i}: {e}"))?,
                    );
                }
                GgufValue::Array(elem, items)
            }
        })
    }
}

/// Parses the header of the GGUF file `buf`.
pub(super) fn header(buf: &[u8]) -> Result<Header, String> {
    let mut c = Cursor { buf, pos: 0 };
    let magic = c.array::<4>("magic")?;
    if &magic != b"GGUF" {
        return Err(format!(
            "magic is {magic:02x?}, expected \"GGUF\" (47 47 55 46): not a GGUF file"
        ));
    }
    let version = c.u32("version")?;
    if version != 2 && version != 3 {
        return Err(format!(
            "version is {version}; this reader supports GGUF versions 2 and 3 (little-endian)"
        ));
    }
    // A tensor info takes at least 8 (name length) + 4 (dims) + 4 (type) + 8 (offset) bytes,
    // a key-value pair 8 (key length) + 4 (type) + 1 (smallest value).
    let n_tensors = c.count(24, "tensor count")?;
    let n_kv = c.count(13, "metadata count")?;

    let mut metadata = Vec::with_capacity(n_kv);
    let mut keys = HashSet::with_capacity(n_kv);
    for i in 0..n_kv {
        let key = c
            .string("key")
            .map_err(|e| format!("metadata pair {i}: {e}"))?;
        let value = c
            .value_type("value type")
            .and_then(|t| c.value(t, 0))
            .map_err(|e| format!("metadata {key:?}: {e}"))?;
        if !keys.insert(key.clone()) {
            return Err(format!("metadata key {key:?} appears twice"));
        }
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => 32,
        Some((_, GgufValue::U32(a))) if *a > 0 && a.is_power_of_two() => u64::from(*a),
        Some((_, v)) => {
            return Err(format!(
                "metadata \"general.alignment\" is {} {v}, expected a u32 power of two",
                v.type_name()
            ))
        }
    };

    let mut tensors = Vec::with_capacity(n_tensors);
    let mut names = HashSet::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let name = c
            .string("name")
            .map_err(|e| format!("tensor info {i}: {e}"))?;
        let info = tensor_info(&mut c, name.clone(), alignment)
            .map_err(|e| format!("tensor {name:?}: {e}"))?;
        if !names.insert(name.clone()) {
            return Err(format!("tensor name {name:?} appears twice"));
        }
        tensors.push(info);
    }

    let data_start = (c.pos as u64).next_multiple_of(alignment);
    let file_len = buf.len() as u64;
    for t in &tensors {
        let end = data_start
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.n_bytes));
        if end.is_none_or(|e| e > file_len) {
            return Err(format!(
                "tensor {:?}: data at offset {} (+{} bytes from the data section at byte \
                 {data_start}) runs past the end of the file ({file_len} bytes)",
                t.name, t.offset, t.n_bytes
            ));
        }
    }
    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}

fn tensor_info(c: &mut Cursor, name: String, alignment: u64) -> Result<TensorInfo, String> {
    let at = c.pos;
    let n_dims = c.u32("dimension count")?;
    if n_dims > MAX_DIMS {
        return Err(format!(
            "dimension count at byte {at} is {n_dims}, GGML tensors have at most {MAX_DIMS}"
        ));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(c.u64("dimension")?);
    }
    let at = c.pos;
    let id = c.u32("tensor type")?;
    let ggml_type = GgmlType::from_id(id)
        .ok_or_else(|| format!("tensor type at byte {at} is {id}, not a GGML type"))?;
    let at = c.pos;
    let offset = c.u64("data offset")?;
    if !offset.is_multiple_of(alignment) {
        return Err(format!(
            "data offset at byte {at} is {offset}, not a multiple of the alignment {alignment}"
        ));
    }
    let numel = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .filter(|&n| n.max(dims.iter().copied().max().unwrap_or(0)) <= isize::MAX as usize as u64)
        .ok_or_else(|| format!("dimensions {dims:?} overflow the element count"))?;
    if dims
        .first()
        .is_some_and(|&d| !d.is_multiple_of(ggml_type.block_size() as u64))
    {
        return Err(format!(
            "first dimension {} of {dims:?} is not a multiple of {ggml_type}'s block size {}",
            dims[0],
            ggml_type.block_size()
        ));
    }
    let n_bytes = ggml_type
        .bytes_for(numel)
        .ok_or_else(|| format!("{numel} elements of {ggml_type} overflow the byte count"))?;
    // GGUF lists dimensions fastest-varying first; row-major (PyTorch) order is the reverse.
    let shape = dims.iter().rev().map(|&d| d as usize).collect();
    Ok(TensorInfo {
        name,
        shape,
        ggml_type,
        offset,
        n_bytes,
    })
}
