//! Headless Chromium through chromedriver (Debian's `chromium` and `chromium-driver`).

use fantoccini::{Client, ClientBuilder};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A chromedriver process, killed when dropped.
pub struct Driver {
    child: Child,
    pub port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser and its driver: `$FUKAI_CHROMIUM` / `$FUKAI_CHROMEDRIVER`, else Debian's paths.
pub fn binaries() -> Result<(PathBuf, PathBuf), String> {
    let pick = |var: &str, default: &str| {
        std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
    };
    let chromium = pick("FUKAI_CHROMIUM", "/usr/bin/chromium");
    let driver = pick("FUKAI_CHROMEDRIVER", "/usr/bin/chromedriver");
    for (p, what) in [(&chromium, "chromium"), (&driver, "chromedriver")] {
        if !p.is_file() {
            return Err(format!(
                "no {what} at {} (apt-get install chromium chromium-driver)",
                p.display()
            ));
        }
    }
    Ok((chromium, driver))
}

/// Starts chromedriver on a free port and waits until it listens.
pub fn start_driver(driver: &PathBuf) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
    let d = Driver { child, port };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "chromedriver did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

/// A headless session; root has no sandbox, hence `--no-sandbox`.
pub async fn session(driver: &Driver, chromium: &PathBuf) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1600,1100", "--hide-scrollbars"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromedriver session")
}
