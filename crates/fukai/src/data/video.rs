//! Video clips: equal-length sequences of equal-sized frames, read from folders of images
//! (`clip_0001/frame_000.png …`) or made on demand ([`super::MovingMnist`]). A clip is stored as
//! `[T, C, H, W]` values in [0, 1].

use super::images::{decode_into, image_files};
use crate::error::{Error, Result};
use std::path::Path;

/// A source of clips, read by index.
pub trait Clips: Send + Sync {
    /// Clips in the source.
    fn len(&self) -> usize;
    /// True when there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Frames per clip.
    fn frames(&self) -> usize;
    /// The shape of one frame, `[C, H, W]`.
    fn frame_shape(&self) -> [usize; 3];
    /// Writes clip `index` (`[T, C, H, W]`) into `out`.
    fn clip(&self, index: usize, out: &mut [f32]) -> Result<()>;
    /// Values per clip.
    fn clip_len(&self) -> usize {
        self.frames() * self.frame_shape().iter().product::<usize>()
    }
}

/// Clips held in memory: every frame of every clip, in order.
#[derive(Clone, Debug)]
pub struct FrameClips {
    values: Vec<f32>,
    frames: usize,
    shape: [usize; 3],
    /// Each clip's folder name.
    pub names: Vec<String>,
}

/// Caps a folder source so that one read cannot fill the memory (4 GiB of f32 values).
const MAX_VALUES: usize = 1 << 30;

impl FrameClips {
    /// Clips from values `[N, T, C, H, W]`.
    pub fn new(values: Vec<f32>, frames: usize, shape: [usize; 3]) -> Result<Self> {
        let per = frames * shape.iter().product::<usize>();
        if per == 0 || !values.len().is_multiple_of(per) {
            return Err(crate::error::op_err(
                "FrameClips",
                format!(
                    "{} values do not split into clips of {frames} frames of shape {shape:?}",
                    values.len()
                ),
            ));
        }
        let n = values.len() / per;
        Ok(FrameClips {
            values,
            frames,
            shape,
            names: (0..n).map(|i| format!("clip {i}")).collect(),
        })
    }

    /// Reads every clip folder under `root` (sorted by name; each holds its frames as PNG or
    /// JPEG files, sorted by name), resized to `size` (h, w; default: the first frame's size)
    /// with `channels` 1 (grey) or 3 (RGB). Every clip must have the same number of frames.
    ///
    /// ```
    /// let root = std::env::temp_dir().join(format!("fukai-doc-{}-frames", std::process::id()));
    /// for clip in ["clip_0001", "clip_0002"] {
    ///     std::fs::create_dir_all(root.join(clip)).unwrap();
    ///     for t in 0..3u8 {
    ///         let img = image::GrayImage::from_pixel(4, 4, image::Luma([t * 100]));
    ///         img.save(root.join(clip).join(format!("frame_{t:03}.png"))).unwrap();
    ///     }
    /// }
    /// use fukai::data::Clips;
    /// let clips = fukai::data::FrameClips::read_folder(&root, None, 1)?;
    /// assert_eq!((clips.len(), clips.frames(), clips.frame_shape()), (2, 3, [1, 4, 4]));
    /// let mut v = vec![0f32; clips.clip_len()];
    /// clips.clip(1, &mut v)?;
    /// assert_eq!(v[16], 100.0 / 255.0); // frame 1, first pixel
    /// # std::fs::remove_dir_all(&root).unwrap();
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn read_folder(root: &Path, size: Option<[usize; 2]>, channels: usize) -> Result<Self> {
        let bad = |file: &Path, msg: String| Error::Format {
            file: file.display().to_string(),
            msg,
        };
        if channels != 1 && channels != 3 {
            return Err(bad(
                root,
                format!("channels must be 1 or 3, found {channels}"),
            ));
        }
        let io = |p: &Path, e: std::io::Error| Error::Io {
            path: p.display().to_string(),
            source: e,
        };
        let mut dirs = Vec::new();
        for e in std::fs::read_dir(root).map_err(|e| io(root, e))? {
            let e = e.map_err(|e| io(root, e))?;
            if e.file_type().map_err(|x| io(&e.path(), x))?.is_dir() {
                dirs.push(e.path());
            }
        }
        dirs.sort();
        if dirs.is_empty() {
            return Err(bad(
                root,
                "no clip folders found (expected clip_0001/frame_000.png …)".into(),
            ));
        }
        let (mut values, mut names) = (Vec::new(), Vec::new());
        let mut frames = None;
        let mut size = size;
        for dir in &dirs {
            let files = image_files(dir)?;
            match frames {
                None if files.is_empty() => {
                    return Err(bad(dir, "a clip folder without PNG or JPEG frames".into()))
                }
                None => frames = Some(files.len()),
                Some(t) if t != files.len() => {
                    return Err(bad(
                        dir,
                        format!(
                        "{} frames, but the first clip has {t} (every clip needs the same count)",
                        files.len()
                    ),
                    ))
                }
                _ => {}
            }
            let size = match size {
                Some(s) => s,
                None => {
                    let (w, h) = image::image_dimensions(&files[0])
                        .map_err(|e| bad(&files[0], format!("cannot read the image size: {e}")))?;
                    *size.insert([h as usize, w as usize])
                }
            };
            if size[0] == 0 || size[1] == 0 {
                return Err(bad(
                    dir,
                    format!("frames of size {size:?}: must be non-empty"),
                ));
            }
            let per_clip = files.len() * channels * size[0] * size[1];
            if values.len() + per_clip > MAX_VALUES {
                return Err(bad(
                    root,
                    format!("more than {MAX_VALUES} values of frames; use fewer or smaller clips"),
                ));
            }
            for f in &files {
                decode_into(f, size, channels, &mut values)?;
            }
            names.push(
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
        let size = size.expect("set by the first clip");
        let mut clips = FrameClips::new(
            values,
            frames.expect("set by the first clip"),
            [channels, size[0], size[1]],
        )?;
        clips.names = names;
        Ok(clips)
    }

    /// The clips at `rows`, in that order.
    pub fn subset(&self, rows: &[usize]) -> Result<FrameClips> {
        let per = self.clip_len();
        let mut values = Vec::with_capacity(rows.len() * per);
        let mut names = Vec::with_capacity(rows.len());
        for &r in rows {
            if r >= self.len() {
                return Err(crate::error::op_err(
                    "FrameClips::subset",
                    format!("clip {r} of {}", self.len()),
                ));
            }
            values.extend_from_slice(&self.values[r * per..(r + 1) * per]);
            names.push(self.names[r].clone());
        }
        Ok(FrameClips {
            values,
            frames: self.frames,
            shape: self.shape,
            names,
        })
    }
}

impl Clips for FrameClips {
    fn len(&self) -> usize {
        self.values.len() / self.clip_len().max(1)
    }
    fn frames(&self) -> usize {
        self.frames
    }
    fn frame_shape(&self) -> [usize; 3] {
        self.shape
    }
    fn clip(&self, index: usize, out: &mut [f32]) -> Result<()> {
        let per = self.clip_len();
        if index >= self.len() || out.len() != per {
            return Err(crate::error::op_err(
                "FrameClips::clip",
                format!(
                    "clip {index} of {} into {} values (a clip has {per})",
                    self.len(),
                    out.len()
                ),
            ));
        }
        out.copy_from_slice(&self.values[index * per..(index + 1) * per]);
        Ok(())
    }
}
