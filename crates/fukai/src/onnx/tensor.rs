//! TensorProto <-> Tensor. ONNX has more element types than fukai: the narrow integer types
//! widen to i64 and bool becomes a u8 mask; on the way out a tensor keeps its fukai dtype.

use super::errors::format_err;
use super::proto::{tensor_proto::DataLocation, tensor_proto::DataType, TensorProto};
use crate::error::Result;
use crate::tensor::checked_numel;
use crate::{DType, Tensor};
use half::{bf16, f16};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

/// The fukai dtype an ONNX `TensorProto.DataType` code loads as, or `None` when fukai has no
/// dtype that holds it (strings, complex numbers, 8-bit floats).
pub fn dtype_from_onnx(code: i32) -> Option<DType> {
    Some(match DataType::try_from(code).ok()? {
        DataType::Float => DType::F32,
        DataType::Double => DType::F64,
        DataType::Float16 => DType::F16,
        DataType::Bfloat16 => DType::BF16,
        DataType::Uint8 | DataType::Bool => DType::U8,
        DataType::Uint32 => DType::U32,
        DataType::Int8
        | DataType::Int16
        | DataType::Uint16
        | DataType::Int32
        | DataType::Int64
        | DataType::Uint64 => DType::I64,
        _ => return None,
    })
}

/// Bytes per element in `raw_data`.
fn raw_size(ty: DataType) -> Option<usize> {
    Some(match ty {
        DataType::Float | DataType::Int32 | DataType::Uint32 => 4,
        DataType::Double | DataType::Int64 | DataType::Uint64 => 8,
        DataType::Float16 | DataType::Bfloat16 | DataType::Int16 | DataType::Uint16 => 2,
        DataType::Int8 | DataType::Uint8 | DataType::Bool => 1,
        _ => return None,
    })
}

/// Decodes a tensor. `dir` is the model's folder, where external data lives; `file` names the
/// model in errors.
pub fn tensor_from_proto(t: &TensorProto, dir: Option<&Path>, file: &str) -> Result<Tensor> {
    let what = |msg: String| format_err(file, format!("tensor {:?}: {msg}", t.name()));
    let ty = DataType::try_from(t.data_type())
        .map_err(|_| what(format!("unknown data_type {}", t.data_type())))?;
    let (Some(_), Some(size)) = (dtype_from_onnx(t.data_type()), raw_size(ty)) else {
        return Err(super::errors::unsupported(format!(
            "tensor data type {} (tensor {:?})",
            ty.as_str_name(),
            t.name()
        )));
    };
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        shape.push(usize::try_from(d).map_err(|_| what(format!("negative dim in {:?}", t.dims)))?);
    }
    let n =
        checked_numel("onnx", &shape).map_err(|_| what(format!("dims {:?} overflow", t.dims)))?;
    let external;
    let raw: Option<&[u8]> = if t.data_location() == DataLocation::External {
        external = read_external(t, dir, n, size, file)?;
        Some(external.as_slice())
    } else {
        t.raw_data.as_deref()
    };
    if let Some(raw) = raw {
        // Sizes are checked against the bytes present before anything is allocated.
        if Some(raw.len()) != n.checked_mul(size) {
            return Err(what(format!(
                "raw_data has {} bytes, dims {:?} of {} need {}",
                raw.len(),
                t.dims,
                ty.as_str_name(),
                n.saturating_mul(size)
            )));
        }
        return from_raw(ty, raw, &shape);
    }
    let count = |len: usize, field: &str| -> Result<()> {
        if len != n {
            return Err(what(format!(
                "{field} has {len} values, dims {:?} need {n}",
                t.dims
            )));
        }
        Ok(())
    };
    match ty {
        DataType::Float => {
            count(t.float_data.len(), "float_data")?;
            Tensor::from_slice(&t.float_data, &shape)
        }
        DataType::Double => {
            count(t.double_data.len(), "double_data")?;
            Tensor::from_slice(&t.double_data, &shape)
        }
        DataType::Int64 => {
            count(t.int64_data.len(), "int64_data")?;
            Tensor::from_slice(&t.int64_data, &shape)
        }
        DataType::Uint32 | DataType::Uint64 => {
            count(t.uint64_data.len(), "uint64_data")?;
            if ty == DataType::Uint32 {
                let v: Vec<u32> = t.uint64_data.iter().map(|&x| x as u32).collect();
                return Tensor::from_vec(v, &shape);
            }
            let v = t
                .uint64_data
                .iter()
                .map(|&x| i64::try_from(x).map_err(|_| what(format!("uint64 {x} exceeds i64"))))
                .collect::<Result<Vec<i64>>>()?;
            Tensor::from_vec(v, &shape)
        }
        DataType::Float16 | DataType::Bfloat16 => {
            count(t.int32_data.len(), "int32_data")?;
            let bits = t.int32_data.iter().map(|&x| x as u16);
            if ty == DataType::Float16 {
                Tensor::from_vec(bits.map(f16::from_bits).collect::<Vec<_>>(), &shape)
            } else {
                Tensor::from_vec(bits.map(bf16::from_bits).collect::<Vec<_>>(), &shape)
            }
        }
        DataType::Uint8 | DataType::Bool => {
            count(t.int32_data.len(), "int32_data")?;
            let v: Vec<u8> = t.int32_data.iter().map(|&x| x as u8).collect();
            Tensor::from_vec(v, &shape)
        }
        _ => {
            count(t.int32_data.len(), "int32_data")?;
            let v: Vec<i64> = t.int32_data.iter().map(|&x| x as i64).collect();
            Tensor::from_vec(v, &shape)
        }
    }
}

fn from_raw(ty: DataType, raw: &[u8], shape: &[usize]) -> Result<Tensor> {
    macro_rules! le {
        ($t:ty, $n:expr) => {
            raw.chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
        };
    }
    match ty {
        DataType::Float => Tensor::from_vec(le!(f32, 4).collect::<Vec<_>>(), shape),
        DataType::Double => Tensor::from_vec(le!(f64, 8).collect::<Vec<_>>(), shape),
        DataType::Int64 => Tensor::from_vec(le!(i64, 8).collect::<Vec<_>>(), shape),
        DataType::Int32 => Tensor::from_vec(le!(i32, 4).map(i64::from).collect::<Vec<_>>(), shape),
        DataType::Int16 => Tensor::from_vec(le!(i16, 2).map(i64::from).collect::<Vec<_>>(), shape),
        DataType::Uint16 => Tensor::from_vec(le!(u16, 2).map(i64::from).collect::<Vec<_>>(), shape),
        DataType::Int8 => Tensor::from_vec(
            raw.iter().map(|&b| b as i8 as i64).collect::<Vec<_>>(),
            shape,
        ),
        DataType::Uint8 | DataType::Bool => Tensor::from_slice(raw, shape),
        DataType::Uint32 => Tensor::from_vec(le!(u32, 4).collect::<Vec<_>>(), shape),
        DataType::Uint64 => {
            let v = le!(u64, 8)
                .map(|x| {
                    i64::try_from(x).map_err(|_| {
                        crate::error::op_err("onnx", format!("uint64 value {x} exceeds i64"))
                    })
                })
                .collect::<Result<Vec<i64>>>()?;
            Tensor::from_vec(v, shape)
        }
        DataType::Float16 => {
            Tensor::from_vec(le!(u16, 2).map(f16::from_bits).collect::<Vec<_>>(), shape)
        }
        DataType::Bfloat16 => {
            Tensor::from_vec(le!(u16, 2).map(bf16::from_bits).collect::<Vec<_>>(), shape)
        }
        _ => unreachable!("raw_size accepted only the types above"),
    }
}

/// Reads an external tensor's bytes: `location` relative to the model's folder (no absolute
/// paths, no `..`), `offset` and `length` checked against the file's size before reading.
fn read_external(
    t: &TensorProto,
    dir: Option<&Path>,
    n: usize,
    size: usize,
    file: &str,
) -> Result<Vec<u8>> {
    let what =
        |msg: String| format_err(file, format!("tensor {:?} external data: {msg}", t.name()));
    let get = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key() == k)
            .map(|e| e.value())
    };
    let Some(dir) = dir else {
        return Err(what("stored outside the model, but the model was read from bytes, not a file (use Model::load)".into()));
    };
    let location = get("location").ok_or_else(|| what("no location".into()))?;
    let rel = Path::new(location);
    if location.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(what(format!(
            "location {location:?} must be a relative path inside the model's folder"
        )));
    }
    let num = |k: &str| -> Result<Option<u64>> {
        get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| what(format!("{k} {v:?} is not a number")))
            })
            .transpose()
    };
    let offset = num("offset")?.unwrap_or(0);
    let need = n
        .checked_mul(size)
        .ok_or_else(|| what(format!("dims {:?} overflow", t.dims)))? as u64;
    let length = num("length")?.unwrap_or(need);
    if length != need {
        return Err(what(format!(
            "length {length}, but dims {:?} need {need} bytes",
            t.dims
        )));
    }
    let path = dir.join(rel);
    let io = |source| crate::Error::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::File::open(&path).map_err(io)?;
    let file_len = f.metadata().map_err(io)?.len();
    if offset.checked_add(length).is_none_or(|end| end > file_len) {
        return Err(what(format!(
            "offset {offset} + length {length} runs past the end of {location} ({file_len} bytes)"
        )));
    }
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = vec![0u8; length as usize];
    f.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

/// Encodes a tensor as a TensorProto with little-endian `raw_data` (u8 masks as UINT8).
pub fn tensor_to_proto(name: &str, t: &Tensor) -> Result<TensorProto> {
    let (ty, raw): (DataType, Vec<u8>) = match t.dtype() {
        DType::F32 => (
            DataType::Float,
            t.to_vec::<f32>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::F64 => (
            DataType::Double,
            t.to_vec::<f64>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::F16 => (
            DataType::Float16,
            t.to_vec::<f16>()?
                .iter()
                .flat_map(|x| x.to_bits().to_le_bytes())
                .collect(),
        ),
        DType::BF16 => (
            DataType::Bfloat16,
            t.to_vec::<bf16>()?
                .iter()
                .flat_map(|x| x.to_bits().to_le_bytes())
                .collect(),
        ),
        DType::I64 => (
            DataType::Int64,
            t.to_vec::<i64>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::U32 => (
            DataType::Uint32,
            t.to_vec::<u32>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
        DType::U8 => (DataType::Uint8, t.to_vec::<u8>()?),
    };
    Ok(TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(ty as i32),
        name: Some(name.to_string()),
        raw_data: Some(raw),
        ..Default::default()
    })
}

/// Reads a serialized TensorProto (`.pb`, as in ONNX's test data) and returns its name and
/// value. External data is looked up next to the file.
pub fn load_tensor(path: &Path) -> Result<(String, Tensor)> {
    use prost::Message;
    let bytes = std::fs::read(path).map_err(|source| crate::Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let file = path.display().to_string();
    let t = TensorProto::decode(bytes.as_slice())
        .map_err(|e| format_err(&file, format!("not a TensorProto: {e}")))?;
    let v = tensor_from_proto(&t, path.parent(), &file)?;
    Ok((t.name().to_string(), v))
}
