//! Errors of the ONNX importer. Unsupported features say "unsupported" so a caller (the
//! conformance runner) can tell them apart from wrong results or malformed models.

use crate::error::Error;

/// The op name every importer error carries.
pub(crate) const OP: &str = "onnx";

/// A malformed model file or tensor.
pub(crate) fn format_err(file: &str, msg: impl Into<String>) -> Error {
    Error::Format {
        file: file.to_string(),
        msg: msg.into(),
    }
}

/// A feature the importer does not implement.
pub(crate) fn unsupported(msg: impl std::fmt::Display) -> Error {
    crate::error::op_err(OP, format!("unsupported {msg}"))
}
