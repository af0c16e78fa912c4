//! Crash-safe file replacement: write a temporary file next to the target, flush it to disk,
//! rename it over the target, then flush the directory entry. Readers see either the old file or
//! the complete new one, never a torn write.

use crate::error::{Error, Result};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

fn io_err(path: &Path, what: &str, e: io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: io::Error::new(e.kind(), format!("{what}: {e}")),
    }
}

/// Creates a fresh temporary file in `dir` for `name`; never reuses an existing path.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, fs::File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Removes the temporary files in `dir` that other processes left behind when they were killed
/// mid-write (`.NAME.PID.N.tmp` and `.NAME.PID.link.tmp` with another PID); a writer that is
/// still running keeps its own. For a folder with one writer at a time, such as a run's
/// checkpoints.
pub(crate) fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.strip_suffix(".tmp"))
        else {
            continue;
        };
        // NAME.PID.N or NAME.PID.link: the PID is the second field from the end.
        let pid = rest.rsplit('.').nth(1).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| p != me) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Flushes the directory entry after a rename (POSIX needs this for the rename to be durable;
/// other platforms have no portable equivalent and make the rename durable themselves).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    let _ = dir;
    Ok(())
}

/// Replaces the file at `path` with `bytes` atomically: afterwards `path` holds either its old
/// content or all of `bytes`, even if the process or machine dies midway. The temporary file
/// lives in the same directory (a rename cannot cross file systems) and is removed on failure.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let Some(name) = path.file_name() else {
        return Err(io_err(
            path,
            "cannot write",
            io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
        ));
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let (tmp, mut file) = create_temp(dir, &name.to_string_lossy())
        .map_err(|e| io_err(path, "creating a temporary file", e))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err(path, &format!("writing {}", tmp.display()), e))
        .and_then(|()| {
            // Closed before the rename (Windows cannot rename an open file); wasm32's File
            // holds nothing to close.
            #[cfg_attr(target_arch = "wasm32", allow(clippy::drop_non_drop))]
            drop(file);
            fs::rename(&tmp, path)
                .map_err(|e| io_err(path, &format!("renaming {} over it", tmp.display()), e))
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir).map_err(|e| io_err(dir, "syncing the directory", e))
}

/// Makes `link` name the same file as `target` atomically: a hard link to a temporary name,
/// renamed over `link`, so `link` is at every moment either its old file or `target`'s. Where
/// hard links are not supported, falls back to an atomic copy.
pub fn link_atomic(target: impl AsRef<Path>, link: impl AsRef<Path>) -> Result<()> {
    let (target, link) = (target.as_ref(), link.as_ref());
    let dir = match link.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = link.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.{}.link.tmp",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    if fs::hard_link(target, &tmp).is_err() {
        let bytes = fs::read(target).map_err(|e| io_err(target, "reading", e))?;
        return write_atomic(link, &bytes);
    }
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(
            link,
            &format!("renaming {} over it", tmp.display()),
            e,
        ));
    }
    sync_dir(dir).map_err(|e| io_err(dir, "syncing the directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fukai-atomic-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_and_replaces_without_leftovers() {
        let dir = scratch("replace");
        let p = dir.join("f.bin");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second, longer").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second, longer");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.bin")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failure_names_the_path_and_keeps_the_old_file() {
        let dir = scratch("fail");
        // A directory cannot be replaced by a file: the rename fails.
        let target = dir.join("sub");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"x").unwrap();
        let err = write_atomic(&target, b"data").unwrap_err().to_string();
        assert!(err.contains("sub"), "{err}");
        assert!(target.join("keep").exists());
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "temporary file left behind"
        );
        let missing = dir.join("no/such/dir/f.bin");
        let err = write_atomic(&missing, b"data").unwrap_err().to_string();
        assert!(err.contains("f.bin"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_temps_of_other_writers_go_and_ours_stay() {
        let dir = scratch("stale");
        let me = std::process::id();
        let other = me.wrapping_add(1);
        let keep = [
            format!(".step-1.safetensors.{me}.0.tmp"),
            "step-1.safetensors".to_string(),
            ".hidden".to_string(),
            format!(".x.{other}.tmp.bak"),
        ];
        let gone = [
            format!(".step-1.safetensors.{other}.3.tmp"),
            format!(".checkpoint.safetensors.{other}.link.tmp"),
        ];
        for n in keep.iter().chain(&gone) {
            fs::write(dir.join(n), b"").unwrap();
        }
        remove_stale_temps(&dir);
        for n in &keep {
            assert!(dir.join(n).exists(), "{n} was removed");
        }
        for n in &gone {
            assert!(!dir.join(n).exists(), "{n} was kept");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
