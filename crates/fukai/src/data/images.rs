//! Image classification folders: `root/<class name>/<image>.png|jpg`, classes in sorted order
//! (the cats-vs-dogs layout).

use super::InMemory;
use crate::error::{Error, Result};
use std::path::Path;

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Reads every PNG/JPEG under `root/<class>/`, resized to `size` (h, w) with `channels` 1
/// (grey) or 3 (RGB), scaled to [0, 1], as `[C, H, W]` samples. Returns the dataset and the
/// class names.
///
/// ```
/// use fukai::data::Dataset;
/// let root = std::env::temp_dir().join(format!("fukai-doc-{}-images", std::process::id()));
/// for (class, value) in [("cat", 0u8), ("dog", 255u8)] {
///     std::fs::create_dir_all(root.join(class)).unwrap();
///     // One 4x4 grey image per class, written with the `image` crate.
///     let img = image::GrayImage::from_pixel(4, 4, image::Luma([value]));
///     img.save(root.join(class).join("a.png")).unwrap();
/// }
/// let (data, classes) = fukai::data::read_image_folder(&root, [2, 2], 1)?;
/// assert_eq!(classes, ["cat", "dog"]);
/// assert_eq!((data.len(), data.sample_shape()), (2, &[1, 2, 2][..]));
/// let mut x = [0f32; 4];
/// assert_eq!(data.get(1, &mut x)?, 1);
/// assert_eq!(x, [1.0; 4]); // resized and scaled to [0, 1]
/// # std::fs::remove_dir_all(&root).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn read_image_folder(
    root: &Path,
    size: [usize; 2],
    channels: usize,
) -> Result<(InMemory, Vec<String>)> {
    if channels != 1 && channels != 3 {
        return Err(Error::Format {
            file: root.display().to_string(),
            msg: format!("channels must be 1 or 3, found {channels}"),
        });
    }
    let mut classes: Vec<String> = Vec::new();
    for e in std::fs::read_dir(root).map_err(|e| io_err(root, e))? {
        let e = e.map_err(|e| io_err(root, e))?;
        if e.file_type().map_err(|x| io_err(&e.path(), x))?.is_dir() {
            classes.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    classes.sort();
    if classes.is_empty() {
        return Err(Error::Format {
            file: root.display().to_string(),
            msg: "no class sub-directories found".into(),
        });
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        let files = image_files(&dir)?;
        for f in files {
            decode_into(&f, size, channels, &mut x)?;
            y.push(label as i64);
        }
    }
    if y.is_empty() {
        return Err(Error::Format {
            file: root.display().to_string(),
            msg: "no PNG or JPEG images found".into(),
        });
    }
    Ok((
        InMemory::new(x, y, &[channels, size[0], size[1]], classes.len())?,
        classes,
    ))
}

/// Appends the image at `path` to `out` as `[channels, H, W]` values in [0, 1], resized to
/// `size` (h, w).
pub(crate) fn decode_into(
    path: &Path,
    size: [usize; 2],
    channels: usize,
    out: &mut Vec<f32>,
) -> Result<()> {
    let img = image::open(path).map_err(|e| Error::Format {
        file: path.display().to_string(),
        msg: format!("cannot decode image: {e}"),
    })?;
    let img = if img.width() as usize == size[1] && img.height() as usize == size[0] {
        img
    } else {
        img.resize_exact(
            size[1] as u32,
            size[0] as u32,
            image::imageops::FilterType::Triangle,
        )
    };
    let plane = size[0] * size[1];
    let start = out.len();
    out.resize(start + channels * plane, 0.0);
    if channels == 1 {
        for (i, p) in img.to_luma8().pixels().enumerate() {
            out[start + i] = p.0[0] as f32 / 255.0;
        }
    } else {
        for (i, p) in img.to_rgb8().pixels().enumerate() {
            for c in 0..3 {
                out[start + c * plane + i] = p.0[c] as f32 / 255.0;
            }
        }
    }
    Ok(())
}

/// The PNG and JPEG files directly in `dir`, sorted by name.
pub(crate) fn image_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|s| s.to_str())
                .is_some_and(|s| matches!(s.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    Ok(files)
}
