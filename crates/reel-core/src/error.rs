//! The error type shared by all reel crates. Every variant names what went wrong and where,
//! in words a user can act on.

use std::path::PathBuf;

/// Result alias used across reel.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while recording, encoding or checking a dataset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation failed; `path` is the file involved.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The caller passed something invalid (a frame with a missing feature, an unknown codec...).
    #[error("{0}")]
    InvalidInput(String),
    /// An existing dataset does not match what the caller asked for (resume with other fps...).
    #[error("{0}")]
    Mismatch(String),
    /// A dataset file is damaged or inconsistent.
    #[error("corrupt dataset: {path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    /// FFmpeg or a codec failed.
    #[error("{context}: {msg}")]
    Media { context: String, msg: String },
    /// A camera or other source failed.
    #[error("source {name}: {msg}")]
    Source { name: String, msg: String },
    /// An encoder worker failed; the frames it held are reported.
    #[error("encoder for {camera}: {msg}")]
    Encoder { camera: String, msg: String },
    /// Parquet / Arrow failure.
    #[error("parquet {path}: {msg}")]
    Parquet { path: PathBuf, msg: String },
}

impl Error {
    /// Wraps an `io::Error` with the operation and path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
    /// Shorthand for [`Error::Media`].
    pub fn media(context: impl Into<String>, msg: impl std::fmt::Display) -> Self {
        Error::Media {
            context: context.into(),
            msg: msg.to_string(),
        }
    }
    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            msg: msg.into(),
        }
    }
    /// True when the underlying cause is a full disk (ENOSPC) or a file-size limit (EFBIG).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EFBIG)
            ),
            _ => false,
        }
    }
}
