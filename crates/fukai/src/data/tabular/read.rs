//! CSV as people have it, through the `csv` crate: RFC 4180 quoting (commas and line breaks
//! inside quoted fields, doubled quotes), any one-byte delimiter, an optional header, a UTF-8
//! byte-order mark, `.gz` files. Records stream from the file; every error names the file, the
//! line and, where it has one, the column.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The most columns a table may have: a row is a sample's features, and a million-column
/// "table" is a wrong delimiter or a binary file, not data.
pub const MAX_COLUMNS: usize = 1 << 16;

/// The most bytes one line may have (16 MiB): a longer "line" is a binary file or a
/// decompression bomb, and would grow the record buffer without bound.
pub const MAX_LINE_BYTES: u64 = 1 << 24;

/// The most data rows a table may have in memory (about 4M); larger tables are for streaming
/// pipelines, not this reader.
pub const MAX_ROWS: usize = 1 << 22;

/// How to read a CSV file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CsvOptions {
    /// Field delimiter; `None` picks a tab for `.tsv` files and a comma otherwise.
    pub delimiter: Option<u8>,
    /// Whether the first record names the columns; `None` decides from the data: a first
    /// record of numbers only is data, anything else a header.
    pub header: Option<bool>,
}

/// A table of text cells as read, before any typing.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTable {
    /// Where it was read (for error messages).
    pub file: String,
    /// Column names: the header's, or `column_1`, `column_2`, ... without one.
    pub names: Vec<String>,
    /// Data records, all `names.len()` cells wide.
    pub rows: Vec<::csv::StringRecord>,
    /// The 1-based line each record starts on.
    pub lines: Vec<u64>,
    /// Class names from a scikit-learn header (`n_samples,n_features,name0,name1,...`).
    pub class_names: Option<Vec<String>>,
}

impl RawTable {
    /// Number of data records.
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    /// True without data records.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// Cell `col` of record `row`.
    pub fn cell(&self, row: usize, col: usize) -> &str {
        self.rows[row].get(col).unwrap_or("")
    }
    /// The index of the column named `name` (exact, then ignoring ASCII case).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.names
            .iter()
            .position(|n| n == name)
            .or_else(|| self.names.iter().position(|n| n.eq_ignore_ascii_case(name)))
    }
    /// An error about `row`'s record at `col` (0-based indices; messages are 1-based).
    pub fn err_at(&self, row: usize, col: usize, msg: impl std::fmt::Display) -> Error {
        Error::Format {
            file: self.file.clone(),
            msg: format!(
                "line {}, column {} ({:?}): {msg}",
                self.lines[row],
                col + 1,
                self.names[col]
            ),
        }
    }
}

/// A reader that notes where every line break is, since the `csv` crate's own line count skips
/// blank lines and miscounts CRLF files; a record's line is found from its byte offset.
/// (A record's byte offset is where the reader began looking for it, before any blank lines.)
struct LineBreaks<R> {
    inner: R,
    offset: u64,
    line_start: u64,
    blank: bool,
    lines: std::rc::Rc<std::cell::RefCell<Lines>>,
}

/// Where each line ends, and whether it was blank (nothing or only a `\r`).
#[derive(Default)]
struct Lines {
    ends: Vec<u64>,
    blank: Vec<bool>,
}

impl<R: Read> Read for LineBreaks<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut l = self.lines.borrow_mut();
        for (i, &c) in buf[..n].iter().enumerate() {
            if c == b'\n' {
                l.ends.push(self.offset + i as u64);
                l.blank.push(self.blank);
                self.blank = true;
                self.line_start = self.offset + i as u64 + 1;
            } else if c != b'\r' {
                self.blank = false;
            }
        }
        self.offset += n as u64;
        if self.offset - self.line_start > MAX_LINE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a line longer than {MAX_LINE_BYTES} bytes (a binary file, a decompression bomb, or no line breaks?)"),
            ));
        }
        if self.offset > super::super::MAX_INFLATED_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "more than {} bytes of text",
                    super::super::MAX_INFLATED_BYTES
                ),
            ));
        }
        Ok(n)
    }
}

impl Lines {
    /// The 1-based line of the first non-blank line from byte `at` on.
    fn line_of(&self, at: u64) -> u64 {
        let mut i = self.ends.partition_point(|&b| b < at);
        // At a line break itself: the `\n` of a CRLF (the `\r` ended the last record) or a
        // blank line; the record starts after it.
        if self.ends.get(i) == Some(&at) {
            i += 1;
        }
        while self.blank.get(i) == Some(&true) {
            i += 1;
        }
        i as u64 + 1
    }
}

fn is_number(s: &str) -> bool {
    s.trim().parse::<f64>().is_ok()
}

/// Reads a CSV file (`.gz` too). See [`parse_csv`] for the rules.
///
/// ```
/// let path = std::env::temp_dir().join(format!("fukai-doc-{}-raw.csv", std::process::id()));
/// std::fs::write(&path, "name,comment,size\n\"Smith, J.\",\"said \"\"hi\"\"\",3\n").unwrap();
/// let t = fukai::data::read_csv(&path, &Default::default())?;
/// assert_eq!(t.names, ["name", "comment", "size"]);
/// assert_eq!((t.cell(0, 0), t.cell(0, 1)), ("Smith, J.", "said \"hi\""));
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn read_csv(path: &Path, opts: &CsvOptions) -> Result<RawTable> {
    let reader = super::super::open_maybe_gz(path)?;
    let tsv = path.to_string_lossy().to_ascii_lowercase();
    let delimiter =
        opts.delimiter
            .unwrap_or(if tsv.ends_with(".tsv") || tsv.ends_with(".tsv.gz") {
                b'\t'
            } else {
                b','
            });
    let opts = CsvOptions {
        delimiter: Some(delimiter),
        ..opts.clone()
    };
    parse_csv(reader, &path.display().to_string(), &opts)
}

/// Parses CSV from any reader; `file` names it in errors. Blank lines are skipped, a UTF-8
/// byte-order mark is dropped, cells are trimmed of surrounding spaces. Every record must have
/// the header's width.
///
/// ```
/// let text = "a;b\n1;\"x;y\"\n\n2;z\n";
/// let opts = fukai::data::CsvOptions { delimiter: Some(b';'), header: None };
/// let t = fukai::data::parse_csv(text.as_bytes(), "inline", &opts)?;
/// assert_eq!((t.len(), t.cell(0, 1), t.lines[1]), (2, "x;y", 4));
/// let err = fukai::data::parse_csv("a,b\n1,2\n3\n".as_bytes(), "t.csv", &Default::default());
/// assert!(err.err().unwrap().to_string().contains("t.csv: line 3: 1 fields, expected 2"));
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn parse_csv(reader: impl Read, file: &str, opts: &CsvOptions) -> Result<RawTable> {
    let breaks = std::rc::Rc::new(std::cell::RefCell::new(Lines::default()));
    let mut rdr = ::csv::ReaderBuilder::new()
        .delimiter(opts.delimiter.unwrap_or(b','))
        .has_headers(false)
        .flexible(true)
        .from_reader(LineBreaks {
            inner: reader,
            offset: 0,
            line_start: 0,
            blank: true,
            lines: breaks.clone(),
        });
    let line_at = |p: Option<&::csv::Position>| p.map_or(0, |p| breaks.borrow().line_of(p.byte()));
    let err = |line: u64, msg: String| Error::Format {
        file: file.to_string(),
        msg: if line > 0 {
            format!("line {line}: {msg}")
        } else {
            msg
        },
    };
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    let mut width = None;
    let mut record = ::csv::StringRecord::new();
    let mut first = true;
    let mut header: Option<::csv::StringRecord> = None;
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = line_at(e.position());
                let msg = match e.kind() {
                    ::csv::ErrorKind::Utf8 { err, .. } => format!(
                        "field {} is not UTF-8: not a text file (an image or other binary?), or text in another encoding (convert it to UTF-8)",
                        err.field() + 1
                    ),
                    ::csv::ErrorKind::Io(io) => format!("cannot read: {io}"),
                    _ => e.to_string(),
                };
                return Err(err(line, msg));
            }
        }
        let line = line_at(record.position());
        if record.len() == 1 && record[0].trim().is_empty() {
            continue;
        }
        if first {
            first = false;
            if let Some(f) = record.get(0) {
                if let Some(rest) = f.strip_prefix('\u{feff}') {
                    let mut r = ::csv::StringRecord::new();
                    r.push_field(rest);
                    record.iter().skip(1).for_each(|c| r.push_field(c));
                    record = r;
                }
            }
            if record.len() > MAX_COLUMNS {
                return Err(err(
                    line,
                    format!(
                        "{} fields, more than the {MAX_COLUMNS} a table may have (a wrong delimiter?)",
                        record.len()
                    ),
                ));
            }
            let is_header = opts.header.unwrap_or_else(|| !record.iter().all(is_number));
            if is_header {
                header = Some(record.clone());
                width = Some(record.len());
                continue;
            }
        }
        let w = *width.get_or_insert(record.len());
        if record.len() != w {
            // A scikit-learn header ("150,4,setosa,...") may be narrower than its rows.
            let sk = rows.is_empty() && header.as_ref().is_some_and(|h| sklearn(h).is_some());
            if !sk {
                return Err(err(
                    line,
                    format!(
                        "{} fields, expected {w} (as in the first row)",
                        record.len()
                    ),
                ));
            }
            width = Some(record.len());
        }
        record.trim();
        if rows.len() == MAX_ROWS {
            return Err(err(
                line,
                format!("more than {MAX_ROWS} rows, the most a table read into memory may have"),
            ));
        }
        rows.push(std::mem::take(&mut record));
        lines.push(line);
    }
    let w = width.unwrap_or(0);
    let mut class_names = None;
    let names = match header {
        Some(h) => match sklearn(&h) {
            Some((n, m, classes)) => {
                if n != rows.len() || m + 1 != w {
                    return Err(err(
                        lines.first().copied().unwrap_or(1),
                        format!(
                            "the scikit-learn header says {n} samples of {m} features, found {} rows of {} values",
                            rows.len(),
                            w.saturating_sub(1)
                        ),
                    ));
                }
                class_names = Some(classes);
                (1..w)
                    .map(|i| format!("feature_{i}"))
                    .chain(["target".to_string()])
                    .collect()
            }
            None => h.iter().map(|c| c.trim().to_string()).collect(),
        },
        None => (1..=w).map(|i| format!("column_{i}")).collect(),
    };
    Ok(RawTable {
        file: file.to_string(),
        names,
        rows,
        lines,
        class_names,
    })
}

/// `(samples, features, class names)` of a scikit-learn dataset header.
fn sklearn(h: &::csv::StringRecord) -> Option<(usize, usize, Vec<String>)> {
    let n = h.get(0)?.trim().parse().ok()?;
    let m = h.get(1)?.trim().parse().ok()?;
    let names: Vec<String> = h.iter().skip(2).map(|c| c.trim().to_string()).collect();
    (!names.is_empty() && names.iter().any(|c| !is_number(c))).then_some((n, m, names))
}
