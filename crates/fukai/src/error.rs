//! One error type for the whole library: every message names the operation (or file) at fault,
//! what it expected and what it found, so a user can fix the call without reading our source.

use std::fmt;

/// Everything that can go wrong in fukai.
#[derive(Debug)]
pub enum Error {
    /// An operation was called with arguments it cannot accept (shape, dtype, dim, value).
    Op {
        /// The operation, e.g. `"matmul"`.
        op: &'static str,
        /// What was expected and what was found.
        msg: String,
    },
    /// A file could not be read or written.
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file was read but its content is invalid.
    Format {
        /// The file (or stream) being parsed.
        file: String,
        /// The field or position and what was wrong with it.
        msg: String,
    },
    /// Autograd was used wrongly (backward twice, non-scalar output without a gradient, ...).
    Autograd(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Op { op, msg } => write!(f, "{op}: {msg}"),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::Format { file, msg } => write!(f, "{file}: {msg}"),
            Error::Autograd(msg) => write!(f, "autograd: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result with fukai's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error::Op`]; used as `return Err(op_err("matmul", format!(..)))`.
pub fn op_err(op: &'static str, msg: impl Into<String>) -> Error {
    Error::Op {
        op,
        msg: msg.into(),
    }
}

/// Returns early with an [`Error::Op`] naming `op`.
#[macro_export]
macro_rules! bail {
    ($op:expr, $($arg:tt)*) => {
        return Err($crate::error::op_err($op, format!($($arg)*)))
    };
}
