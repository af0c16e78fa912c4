//! The IDX format of MNIST and Fashion-MNIST (optionally gzipped): a magic number naming the
//! element type and rank, big-endian dims, then the raw array.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// A decoded IDX file of bytes.
///
/// ```
/// let path = std::env::temp_dir().join(format!("fukai-doc-{}-labels.idx", std::process::id()));
/// // IDX: two zero bytes, type 0x08 (u8), the rank, big-endian u32 dims, then the data.
/// let mut bytes = vec![0, 0, 8, 1];
/// bytes.extend_from_slice(&3u32.to_be_bytes());
/// bytes.extend_from_slice(&[4, 0, 9]);
/// std::fs::write(&path, bytes).unwrap();
/// let a = fukai::data::read_idx(&path)?;
/// assert_eq!((a.dims, a.data), (vec![3], vec![4, 0, 9]));
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
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

/// Reads an IDX file of unsigned bytes (`.gz` is decompressed). The data is read as a stream
/// and capped at the size the header promises, so neither a lying header nor a gzip bomb can
/// make it allocate more than the bytes actually present.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let mut src = super::open_maybe_gz(path)?;
    let mut head = [0u8; 4];
    let got = read_up_to(path, &mut src, &mut head)?;
    if got < 4 || head[0] != 0 || head[1] != 0 {
        return Err(fmt_err(
            path,
            "not an IDX file: the magic number must start with two zero bytes".into(),
        ));
    }
    if head[2] != 0x08 {
        return Err(fmt_err(
            path,
            format!(
                "element type 0x{:02x} is not supported (expected 0x08, unsigned byte)",
                head[2]
            ),
        ));
    }
    let rank = head[3] as usize;
    let mut raw_dims = vec![0u8; 4 * rank];
    let got = read_up_to(path, &mut src, &mut raw_dims)?;
    if rank == 0 || got < raw_dims.len() {
        return Err(fmt_err(
            path,
            format!(
                "header of rank {rank} is truncated ({} bytes in file)",
                4 + got
            ),
        ));
    }
    let dims: Vec<usize> = raw_dims
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
        .collect();
    let Some(n) = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
        return Err(fmt_err(path, format!("dims {dims:?} overflow")));
    };
    let what = format!("data: dims {dims:?} need {n} data bytes, file has more");
    let data = super::read_capped(path, &mut src, n as u64, &what)?;
    if data.len() != n {
        return Err(fmt_err(
            path,
            format!("dims {dims:?} need {n} data bytes, file has {}", data.len()),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Fills as much of `buf` as the stream has; returns how many bytes were read.
fn read_up_to(path: &Path, src: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(super::read_err(path, e)),
        }
    }
    Ok(got)
}

/// Images `[N, rows, cols]` scaled to [0, 1].
///
/// ```
/// let path = std::env::temp_dir().join(format!("fukai-doc-{}-images.idx", std::process::id()));
/// let mut bytes = vec![0, 0, 8, 3];
/// for d in [2u32, 2, 2] {
///     bytes.extend_from_slice(&d.to_be_bytes());
/// }
/// bytes.extend_from_slice(&[0, 255, 51, 0, 255, 255, 255, 255]);
/// std::fs::write(&path, bytes).unwrap();
/// let (pixels, shape) = fukai::data::read_idx_images(&path)?;
/// assert_eq!(shape, [2, 2, 2]);
/// assert_eq!(&pixels[..3], &[0.0, 1.0, 0.2]);
/// // A labels file is refused as images, naming the file.
/// assert!(fukai::data::read_idx_labels(&path).is_err());
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
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
///
/// ```
/// let path = std::env::temp_dir().join(format!("fukai-doc-{}-train-labels.idx", std::process::id()));
/// // IDX: two zero bytes, type 0x08 (u8), the rank, big-endian u32 dims, then the data.
/// let mut bytes = vec![0, 0, 8, 1];
/// bytes.extend_from_slice(&3u32.to_be_bytes());
/// bytes.extend_from_slice(&[4, 0, 9]);
/// std::fs::write(&path, bytes).unwrap();
/// assert_eq!(fukai::data::read_idx_labels(&path)?, [4, 0, 9]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
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
