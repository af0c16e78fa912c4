//! A static file server for the page under test: `web/dist` at `/`, and the shared
//! all-MiniLM-L6-v2 folder at `/models/all-MiniLM-L6-v2/` when the assets are there.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

/// Serves until the process ends; returns the port.
pub fn serve(root: PathBuf, mounts: Vec<(String, PathBuf)>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (root, mounts) = (root.clone(), mounts.clone());
            std::thread::spawn(move || {
                let _ = answer(stream, &root, &mounts);
            });
        }
    });
    port
}

fn answer(mut stream: TcpStream, root: &Path, mounts: &[(String, PathBuf)]) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Drain the headers; the page only sends GETs without bodies.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let url = request.split_whitespace().nth(1).unwrap_or("/");
    let url = url.split(['?', '#']).next().unwrap_or("/");
    let url = if url == "/" { "/index.html" } else { url };
    let file = resolve(url, root, mounts);
    let (status, body, kind) = match file.as_ref().map(std::fs::read) {
        Some(Ok(body)) => ("200 OK", body, content_type(url)),
        _ => (
            "404 Not Found",
            format!("{url} not found").into_bytes(),
            "text/plain",
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

fn resolve(url: &str, root: &Path, mounts: &[(String, PathBuf)]) -> Option<PathBuf> {
    let rel = Path::new(url.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    for (prefix, dir) in mounts {
        if let Ok(rest) = rel.strip_prefix(prefix) {
            return Some(dir.join(rest));
        }
    }
    Some(root.join(rel))
}

fn content_type(url: &str) -> &'static str {
    match url.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript",
        "css" => "text/css",
        "wasm" => "application/wasm",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}
