//! Library errors as Python exceptions. The message is the library's (it names the feature,
//! the option, the file); the class says what kind of problem it is:
//!
//! * `ValueError`: the caller passed something wrong (a frame, a feature, an option, a dataset
//!   that does not match what a resume asks for), as LeRobot raises for bad frames;
//! * `reel.ReelError` (a `RuntimeError`): something failed while recording (a file, with its
//!   path; an encoder; a thread of reel's), or the writer is closed.
//!
//! Rust panics never cross into Python: PyO3 turns a panic in a method into a
//! `PanicException`, and reel's own threads report theirs as errors.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyErr;
use reel_core::Error;

pyo3::create_exception!(
    _reel,
    ReelError,
    PyRuntimeError,
    "A recording failure (I/O with its path, an encoder, a thread of reel's) or a closed writer."
);

/// The Python exception for a library error.
pub(crate) fn to_py(e: Error) -> PyErr {
    match e.root_cause() {
        Error::InvalidInput(_) | Error::Mismatch(_) => PyValueError::new_err(e.to_string()),
        _ => ReelError::new_err(e.to_string()),
    }
}

/// `ValueError(msg)`.
pub(crate) fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// `ReelError(msg)`.
pub(crate) fn reel_error(msg: impl Into<String>) -> PyErr {
    ReelError::new_err(msg.into())
}
