//! The IDX format of MNIST and Fashion-MNIST (optionally gzipped): a magic number naming the
//! element type and rank, big-endian dims, then the raw array.

use crate::error::{Error, Result};
use std::path::Path;

/// A decoded IDX file of bytes.
pub struct IdxArray {
    /// Dims from the header.
    pub dims: Vec<usize>,
    /// Row-major u8 data.
    pub data: Vec<u8>,
}

fn fmt_err(path: &Path, msg: String) -> Error {
    Error::Format {
        file: path.display().to_string(),
        msg,
    }
}

/// Reads an IDX file of unsigned bytes (`.gz` is decompressed). The header's sizes are checked
/// against the bytes actually present before anything is allocated from them.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = super::read_maybe_gz(path)?;
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(fmt_err(
            path,
            "not an IDX file: the magic number must start with two zero bytes".into(),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(fmt_err(
            path,
            format!(
                "element type 0x{:02x} is not supported (expected 0x08, unsigned byte)",
                bytes[2]
            ),
        ));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        return Err(fmt_err(
            path,
            format!(
                "header of rank {rank} is truncated ({} bytes in file)",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match n {
        Some(n) if header + n == bytes.len() => Ok(IdxArray {
            data: bytes[header..].to_vec(),
            dims,
        }),
        Some(n) => Err(fmt_err(
            path,
            format!(
                "dims {dims:?} need {n} data bytes, file has {}",
                bytes.len() - header
            ),
        )),
        None => Err(fmt_err(path, format!("dims {dims:?} overflow"))),
    }
}

/// Images `[N, rows, cols]` scaled to [0, 1].
pub fn read_idx_images(path: &Path) -> Result<(Vec<f32>, [usize; 3])> {
    let a = read_idx(path)?;
    if a.dims.len() != 3 {
        return Err(fmt_err(
            path,
            format!(
                "expected 3 dims [N, rows, cols] for images, found {:?}",
                a.dims
            ),
        ));
    }
    Ok((
        a.data.iter().map(|&b| b as f32 / 255.0).collect(),
        [a.dims[0], a.dims[1], a.dims[2]],
    ))
}

/// Labels `[N]`.
pub fn read_idx_labels(path: &Path) -> Result<Vec<i64>> {
    let a = read_idx(path)?;
    if a.dims.len() != 1 {
        return Err(fmt_err(
            path,
            format!("expected 1 dim [N] for labels, found {:?}", a.dims),
        ));
    }
    Ok(a.data.iter().map(|&b| b as i64).collect())
}
