//! `fukai data get NAME` and `fukai data list`: public data sets into a cache folder laid out
//! like the assets folder the presets read, with a progress bar and SHA-256 checks.

use clap::Subcommand;
use fukai::data::download::{self, DataSet, Fetched, Status};
use fukai::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// `fukai data ...`
#[derive(Subcommand)]
pub enum DataCmd {
    /// Download a data set (see `fukai data list`) into the cache folder, SHA-256 checked.
    Get {
        /// The data set's name, e.g. fashion-mnist.
        name: String,
        /// Cache folder (default: $FUKAI_DATA, else $XDG_CACHE_HOME/fukai or ~/.cache/fukai).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Fetch from this mirror (a base URL serving the cache layout) instead of the
        /// canonical URLs; also $FUKAI_DATA_MIRROR. For tests.
        #[arg(long, hide = true)]
        base_url: Option<String>,
    },
    /// List the data sets `data get` knows: size, source and where they go.
    List,
}

/// Runs a `data` subcommand.
pub fn run(cmd: DataCmd) -> Result<()> {
    match cmd {
        DataCmd::Get {
            name,
            dir,
            base_url,
        } => get(&name, dir, base_url),
        DataCmd::List => list(),
    }
}

fn cache_dir(dir: Option<PathBuf>) -> Result<PathBuf> {
    dir.or_else(download::default_cache_dir)
        .ok_or_else(|| Error::Format {
            file: "--dir".into(),
            msg: format!(
                "no cache folder: pass --dir DIR or set {} (neither XDG_CACHE_HOME nor HOME is set)",
                download::CACHE_ENV
            ),
        })
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Where a set's files go: their common folder (`fashion-mnist/`), or the single file.
fn destination(set: &DataSet) -> String {
    let parent = |d: &str| d.rsplit_once('/').map_or("", |(p, _)| p).to_string();
    match set.files {
        [one] => one.dest.to_string(),
        [first, rest @ ..] if rest.iter().all(|f| parent(f.dest) == parent(first.dest)) => {
            format!("{}/ ({} files)", parent(first.dest), set.files.len())
        }
        files => files.iter().map(|f| f.dest).collect::<Vec<_>>().join(", "),
    }
}

fn list() -> Result<()> {
    let dir = download::default_cache_dir();
    match &dir {
        Some(d) => println!("cache folder: {}", d.display()),
        None => println!("cache folder: none (pass --dir to `fukai data get`)"),
    }
    println!(
        "  (`data get --dir DIR`, else ${}, else $XDG_CACHE_HOME/fukai or ~/.cache/fukai)\n",
        download::CACHE_ENV
    );
    for set in download::DATASETS {
        let present = dir.as_deref().is_some_and(|d| {
            set.files
                .iter()
                .all(|f| download::dest_path(f, d).is_ok_and(|p| p.is_file()))
        });
        let unverified = set.files.iter().filter(|f| f.sha256.is_none()).count();
        println!(
            "{:<16} {:>8}  -> {}{}",
            set.name,
            megabytes(set.size()),
            destination(set),
            if present { "  [present]" } else { "" }
        );
        println!("    {}", set.about);
        let host = set.files[0]
            .url
            .split('/')
            .nth(2)
            .unwrap_or(set.files[0].url);
        println!(
            "    from {host}; {}",
            if unverified == 0 {
                "SHA-256 checked".to_string()
            } else {
                format!(
                    "{unverified} of {} files have no known SHA-256 (kept unverified)",
                    set.files.len()
                )
            }
        );
        if !set.note.is_empty() {
            println!("    note: {}", set.note);
        }
    }
    println!("\nfetch one with: fukai data get NAME [--dir DIR]");
    Ok(())
}

fn get(name: &str, dir: Option<PathBuf>, base_url: Option<String>) -> Result<()> {
    let set = download::dataset(name).ok_or_else(|| Error::Format {
        file: name.into(),
        msg: format!(
            "unknown data set; known: {}",
            download::DATASETS
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })?;
    let dir = cache_dir(dir)?;
    let mirror = base_url.or_else(|| {
        std::env::var(download::MIRROR_ENV)
            .ok()
            .filter(|m| !m.is_empty())
    });
    println!(
        "{}: {} in {} file(s) -> {}",
        set.name,
        megabytes(set.size()),
        set.files.len(),
        dir.display()
    );
    if let Some(m) = &mirror {
        println!("  from the mirror {m}");
    }
    if !set.note.is_empty() {
        println!("  note: {}", set.note);
    }
    let style = ProgressStyle::with_template(
        "  {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    let mut unverified = Vec::new();
    for file in set.files {
        let bar = ProgressBar::new(file.size)
            .with_style(style.clone())
            .with_prefix(file.dest);
        let got = download::fetch_file(file, &dir, mirror.as_deref(), &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        });
        bar.finish_and_clear();
        let got = got?;
        report(file.dest, &got);
        if !got.verified {
            unverified.push(got);
        }
    }
    if !unverified.is_empty() {
        println!(
            "\nNOT VERIFIED: the registry has no SHA-256 for these files; their computed hashes:"
        );
        for f in &unverified {
            println!("  {}  {}", f.sha256, f.path.display());
        }
    }
    println!("\nthe presets find the data with:");
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    println!("  export FUKAI_ASSETS={}", shell_path(&dir));
    Ok(())
}

fn report(dest: &str, got: &Fetched) {
    let check = if got.verified {
        "SHA-256 verified"
    } else {
        "SHA-256 NOT verified (no known hash)"
    };
    match got.status {
        Status::Downloaded => println!("  downloaded {dest} ({} bytes, {check})", got.size),
        Status::Present => println!("  present    {dest} ({} bytes, {check}); skipped", got.size),
    }
}

/// The folder as a shell word: quoted when it has characters a shell would split or expand.
fn shell_path(dir: &Path) -> String {
    let s = dir.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
