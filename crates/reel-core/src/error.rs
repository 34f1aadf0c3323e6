//! The error type shared by all reel crates. Every variant names what went wrong and where,
//! in words a user can act on. Errors travel between threads (camera pipelines, the
//! committer, the deferred converter) as they are, never as strings, so that a full disk
//! reaches the user as a full disk with its path ([`Error::is_disk_full`]). They are `Clone`
//! so that one failure can be reported to every caller that waits on it.

use std::path::PathBuf;
use std::sync::Arc;

/// Result alias used across reel.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while recording, encoding or checking a dataset.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A file-system operation failed; `path` is the file involved.
    #[error("{}", io_message(op, path, source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
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
    /// Another writer holds the dataset (see `reel_dataset::lock`).
    #[error("{path} is in use by another writer: {holder}")]
    Locked { path: PathBuf, holder: String },
    /// The work was asked to stop (a signal, or the caller) before it finished.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// A thread of reel's own stopped unexpectedly (a panic); `what` names it.
    #[error("{what} stopped unexpectedly: {msg}")]
    ThreadDied { what: String, msg: String },
    /// Another error, with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

fn io_message(op: &str, path: &std::path::Path, source: &std::io::Error) -> String {
    let full = matches!(
        source.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EFBIG) | Some(libc::EDQUOT)
    );
    if full {
        format!(
            "disk full: {op} {}: {source} (free space, or raise the file-size limit, and try again)",
            path.display()
        )
    } else {
        format!("{op} {}: {source}", path.display())
    }
}

impl Error {
    /// Wraps an `io::Error` with the operation and path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
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
    /// Shorthand for [`Error::Encoder`].
    pub fn encoder(camera: impl Into<String>, msg: impl std::fmt::Display) -> Self {
        Error::Encoder {
            camera: camera.into(),
            msg: msg.to_string(),
        }
    }
    /// This error, saying what was being done (the cause keeps its kind: a full disk stays one).
    pub fn context(self, context: impl Into<String>) -> Self {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
    /// The innermost error under any [`Error::Context`].
    pub fn root_cause(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.root_cause(),
            e => e,
        }
    }
    /// True when the underlying cause is a full disk (ENOSPC), a quota (EDQUOT) or a file-size
    /// limit (EFBIG).
    pub fn is_disk_full(&self) -> bool {
        match self.root_cause() {
            Error::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EFBIG) | Some(libc::EDQUOT)
            ),
            _ => false,
        }
    }
    /// True when the work stopped because it was asked to.
    pub fn is_interrupted(&self) -> bool {
        matches!(self.root_cause(), Error::Interrupted(_))
    }
    /// The file involved, when the error names one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self.root_cause() {
            Error::Io { path, .. }
            | Error::Corrupt { path, .. }
            | Error::Parquet { path, .. }
            | Error::Locked { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Adds context to a `Result`'s error (see [`Error::context`]).
pub trait ResultExt<T> {
    /// Says what was being done when the error happened.
    fn context(self, context: impl Into<String>) -> Result<T>;
    /// Like [`context`](ResultExt::context), with the message built only on error.
    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.context(context))
    }
    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.context(f()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_stays_a_full_disk_through_context_and_clones() {
        let e = Error::io(
            "append",
            "/data/ds/videos/file-000.mp4",
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        )
        .context("camera front")
        .context("saving episode 3");
        let c = e.clone();
        assert!(c.is_disk_full());
        assert_eq!(
            c.path(),
            Some(std::path::Path::new("/data/ds/videos/file-000.mp4"))
        );
        let text = c.to_string();
        assert!(
            text.starts_with(
                "saving episode 3: camera front: disk full: append /data/ds/videos/file-000.mp4"
            ),
            "{text}"
        );
        let other = Error::io(
            "read",
            "/x",
            std::io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert!(!other.is_disk_full());
        assert!(!other.to_string().contains("disk full"));
        assert!(Error::Interrupted("signal".into())
            .context("finalize")
            .is_interrupted());
    }
}
