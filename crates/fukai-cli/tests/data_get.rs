//! `fukai data get` against a local HTTP server on 127.0.0.1 (the machine running the tests
//! needs no internet): downloads, hash checks, skipping what is present, and refusals that leave
//! no file behind.

mod common;

use common::{s, scratch};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// What the test server answers for a path.
enum Reply {
    /// 200 with a Content-Length.
    Body(Vec<u8>),
    /// Raw bytes as the whole response (headers included); the connection closes after them.
    Raw(Vec<u8>),
    /// 404.
    Missing,
}

type Handler = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// Starts a tiny HTTP/1.1 server on 127.0.0.1 (one thread per connection, `Connection: close`);
/// returns its base URL. It lives until the test process exits.
fn serve(handler: Handler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || answer(conn, &*handler));
        }
    });
    format!("http://{addr}/mirror")
}

fn answer(conn: TcpStream, handler: &(dyn Fn(&str) -> Reply + Send + Sync)) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
    let path = path.strip_prefix("/mirror/").unwrap_or("").to_string();
    let mut conn = conn;
    let _ = match handler(&path) {
        Reply::Body(body) => conn
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .and_then(|()| conn.write_all(&body)),
        Reply::Raw(bytes) => conn.write_all(&bytes),
        Reply::Missing => conn.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
    };
    let _ = conn.flush();
}

/// Runs `fukai data get NAME --dir DIR --base-url URL`, with no proxy or data variables from the
/// environment in the way.
fn data_get(name: &str, dir: &Path, base_url: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fukai"));
    cmd.args(["data", "get", name, "--dir", s(dir), "--base-url", base_url]);
    for var in [
        "FUKAI_ASSETS",
        "FUKAI_DATA",
        "FUKAI_DATA_MIRROR",
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd.output().expect("the fukai binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The shared assets folder: `$FUKAI_ASSETS`, else `../shared/assets` from the workspace root.
/// `None` (the test skips, saying why) when neither has `what`, unless FUKAI_REQUIRE_ASSETS is
/// set.
fn assets(what: &str) -> Option<PathBuf> {
    let root = std::env::var_os("FUKAI_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/assets"));
    if root.join(what).exists() {
        return Some(root);
    }
    assert!(
        std::env::var_os("FUKAI_REQUIRE_ASSETS").is_none(),
        "FUKAI_REQUIRE_ASSETS is set but {} has no {what}",
        root.display()
    );
    eprintln!(
        "skipped: needs {what} under $FUKAI_ASSETS or ../shared/assets ({} has none)",
        root.display()
    );
    None
}

/// A handler serving files of the assets folder at their paths under it.
fn from_folder(root: PathBuf) -> Handler {
    Arc::new(move |path: &str| {
        if path.split('/').any(|p| p == "..") {
            return Reply::Missing;
        }
        match std::fs::read(root.join(path)) {
            Ok(bytes) => Reply::Body(bytes),
            Err(_) => Reply::Missing,
        }
    })
}

fn sha256(path: &Path) -> String {
    fukai::data::download::sha256_file(path).unwrap()
}

/// No file and no `.part` file anywhere under `dir`.
fn assert_no_files(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            assert!(p.is_dir(), "left behind: {}", p.display());
            stack.push(p);
        }
    }
}

const VOWELS: [&str; 2] = [
    "timeseries/uea/JapaneseVowels_TRAIN.ts",
    "timeseries/uea/JapaneseVowels_TEST.ts",
];

#[test]
fn downloads_checks_and_then_skips() {
    let Some(root) = assets(VOWELS[0]) else {
        return;
    };
    let url = serve(from_folder(root.clone()));
    let dir = scratch("data-get");
    let out = data_get("japanese-vowels", &dir, &url);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let set = fukai::data::download::dataset("japanese-vowels").unwrap();
    for (dest, file) in VOWELS.iter().zip(set.files) {
        let got = dir.join(dest);
        assert_eq!(sha256(&got), sha256(&root.join(dest)), "{dest}");
        assert_eq!(Some(sha256(&got).as_str()), file.sha256, "{dest}");
        assert!(
            stdout.contains(&format!("downloaded {dest}")),
            "{}",
            text(&out)
        );
        assert!(!dir.join(format!("{dest}.part")).exists());
    }
    assert!(stdout.contains("SHA-256 verified"), "{}", text(&out));
    assert!(
        stdout.contains(&format!("export FUKAI_ASSETS={}", dir.display())),
        "{}",
        text(&out)
    );

    // Again: everything is present with the right hash, nothing is fetched (a mirror that
    // answers 404 to everything proves it).
    let gone = serve(Arc::new(|_: &str| Reply::Missing));
    let again = data_get("japanese-vowels", &dir, &gone);
    assert!(again.status.success(), "{}", text(&again));
    let stdout = String::from_utf8_lossy(&again.stdout);
    for dest in VOWELS {
        assert!(
            stdout.contains(&format!("present    {dest}")),
            "{}",
            text(&again)
        );
    }
    assert!(!stdout.contains("downloaded"), "{}", text(&again));

    // A present file that was changed is reported, not silently replaced or trusted.
    std::fs::write(dir.join(VOWELS[1]), b"not the data").unwrap();
    let changed = data_get("japanese-vowels", &dir, &gone);
    assert_eq!(changed.status.code(), Some(1), "{}", text(&changed));
    let stderr = String::from_utf8_lossy(&changed.stderr);
    assert!(
        stderr.contains("already exists with SHA-256") && stderr.contains("delete it"),
        "{}",
        text(&changed)
    );
    assert_eq!(std::fs::read(dir.join(VOWELS[1])).unwrap(), b"not the data");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_download_is_refused_and_removed() {
    let Some(root) = assets(VOWELS[0]) else {
        return;
    };
    // The right length, one byte changed in the middle.
    let url = serve(Arc::new(move |path: &str| {
        match std::fs::read(root.join(path)) {
            Ok(mut bytes) => {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x20;
                Reply::Body(bytes)
            }
            Err(_) => Reply::Missing,
        }
    }));
    let dir = scratch("data-get-corrupt");
    let out = data_get("japanese-vowels", &dir, &url);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = fukai::data::download::dataset("japanese-vowels")
        .unwrap()
        .files[0]
        .sha256
        .unwrap();
    for part in [
        "SHA-256 mismatch",
        want,
        "found ",
        "JapaneseVowels_TRAIN.ts",
        url.as_str(),
    ] {
        assert!(stderr.contains(part), "no {part:?} in\n{}", text(&out));
    }
    assert_no_files(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn oversized_and_missing_files_are_refused() {
    // Content-Length far above the registry's size: refused before any byte is written.
    let url = serve(Arc::new(|_: &str| {
        Reply::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Length: 50000000000\r\nConnection: close\r\n\r\nxyz"
                .to_vec(),
        )
    }));
    let dir = scratch("data-get-huge");
    let out = data_get("japanese-vowels", &dir, &url);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("50000000000") && stderr.contains("refusing"),
        "{}",
        text(&out)
    );
    assert_no_files(&dir);

    // No Content-Length and a body that does not end: cut off at the cap.
    let url = serve(Arc::new(|_: &str| {
        let mut r = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        r.resize(r.len() + 3_000_000, b'7');
        Reply::Raw(r)
    }));
    let out = data_get("japanese-vowels", &dir, &url);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("more than"),
        "{}",
        text(&out)
    );
    assert_no_files(&dir);

    // 404: the error names the URL and the status.
    let url = serve(Arc::new(|_: &str| Reply::Missing));
    let out = data_get("shakespeare", &dir, &url);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{url}/text/shakespeare.txt")) && stderr.contains("404"),
        "{}",
        text(&out)
    );
    assert_no_files(&dir);

    // An unknown name lists the known ones.
    let out = data_get("no-such-set", &dir, &url);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fashion-mnist"),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn list_names_every_set_and_its_destination() {
    let out = Command::new(env!("CARGO_BIN_EXE_fukai"))
        .args(["data", "list"])
        .env("FUKAI_DATA", "/nonexistent/fukai-cache")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("/nonexistent/fukai-cache"), "{stdout}");
    for set in fukai::data::download::DATASETS {
        assert!(stdout.contains(set.name), "{stdout}");
    }
    for dest in ["fashion-mnist/", "timeseries/uea/", "text/shakespeare.txt"] {
        assert!(stdout.contains(dest), "{stdout}");
    }
    assert!(stdout.contains("NOT the text"), "{stdout}");
}

#[test]
fn the_registry_is_consistent() {
    use fukai::data::download::{dataset, dest_path, DATASETS};
    let mut names: Vec<_> = DATASETS.iter().map(|d| d.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), DATASETS.len(), "duplicate data set names");
    let dir = Path::new("/cache");
    let mut dests = Vec::new();
    for d in DATASETS {
        assert_eq!(dataset(d.name).map(|x| x.name), Some(d.name));
        for f in d.files {
            let p = dest_path(f, dir).unwrap_or_else(|e| panic!("{}: {e}", f.dest));
            assert!(
                Path::new(f.dest).is_relative() && p.starts_with(dir),
                "{}",
                f.dest
            );
            dests.push(f.dest);
        }
    }
    let n = dests.len();
    dests.sort_unstable();
    dests.dedup();
    assert_eq!(dests.len(), n, "two files share a destination");
}

/// Zalando's original gzip header for a Fashion-MNIST file: the Debian package ships the same
/// deflate stream under a 10-byte header without the file name, re-timestamped. The originals
/// were written 2017-08-31 (train files at 10:50:06 UTC, test files at 10:50:27).
fn zalando_original(debian: &[u8], name: &str) -> Option<Vec<u8>> {
    let flags_none = debian.len() > 10 && debian[..4] == [0x1f, 0x8b, 8, 0];
    if !flags_none {
        return None;
    }
    let mtime: u32 = if name.starts_with("train") {
        1_504_176_606
    } else {
        1_504_176_627
    };
    let stem = name.strip_suffix(".gz")?;
    let mut out = vec![0x1f, 0x8b, 8, 8];
    out.extend_from_slice(&mtime.to_le_bytes());
    out.extend_from_slice(&[0, 3]);
    out.extend_from_slice(stem.as_bytes());
    out.push(0);
    out.extend_from_slice(&debian[10..]);
    Some(out)
}

#[test]
fn fashion_mnist_through_a_mirror_matches_the_registry() {
    let Some(root) = assets("fashion-mnist/train-labels-idx1-ubyte.gz") else {
        return;
    };
    let url = serve(Arc::new(move |path: &str| {
        let name = path.strip_prefix("fashion-mnist/").unwrap_or("");
        let original = std::fs::read(root.join(path))
            .ok()
            .and_then(|b| zalando_original(&b, name));
        original.map_or(Reply::Missing, Reply::Body)
    }));
    let dir = scratch("data-get-fashion");
    let out = data_get("fashion-mnist", &dir, &url);
    assert!(out.status.success(), "{}", text(&out));
    let set = fukai::data::download::dataset("fashion-mnist").unwrap();
    for f in set.files {
        let got = dir.join(f.dest);
        assert_eq!(std::fs::metadata(&got).unwrap().len(), f.size, "{}", f.dest);
        assert_eq!(Some(sha256(&got).as_str()), f.sha256, "{}", f.dest);
    }
    // The presets read what was downloaded.
    let images = fukai::data::read_idx_images(&dir.join("fashion-mnist/t10k-images-idx3-ubyte.gz"));
    assert!(images.is_ok(), "{:?}", images.err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_without_a_known_hash_is_kept_unverified() {
    use fukai::data::download::{fetch_file, RemoteFile, Status};
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let served = body.clone();
    let url = serve(Arc::new(move |path: &str| {
        if path == "extra/blob.bin" {
            Reply::Body(served.clone())
        } else {
            Reply::Missing
        }
    }));
    let file = RemoteFile {
        url: "https://example.invalid/blob.bin",
        dest: "extra/blob.bin",
        size: body.len() as u64,
        sha256: None,
    };
    let dir = scratch("data-get-unverified");
    let mut seen = Vec::new();
    let got = fetch_file(&file, &dir, Some(&url), &mut |done, total| {
        seen.push((done, total))
    })
    .unwrap();
    assert_eq!(got.status, Status::Downloaded);
    assert!(!got.verified);
    assert_eq!(got.size, body.len() as u64);
    assert_eq!(got.sha256, sha256(&got.path));
    assert_eq!(std::fs::read(&got.path).unwrap(), body);
    assert_eq!(
        got.url.as_deref(),
        Some(format!("{url}/extra/blob.bin").as_str())
    );
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert_eq!(seen.last(), Some(&(body.len() as u64, body.len() as u64)));
    // Present again: kept (size matches), still unverified, nothing fetched.
    let again = fetch_file(&file, &dir, Some("http://127.0.0.1:9"), &mut |_, _| {}).unwrap();
    assert_eq!((again.status, again.verified), (Status::Present, false));
    assert_eq!(again.sha256, got.sha256);
    let _ = std::fs::remove_dir_all(&dir);
}
