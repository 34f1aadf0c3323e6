//! Shared vocabulary of reel.
//!
//! Every other crate speaks in these types: a [`VideoFrame`] captured by a source, a
//! [`Features`] schema describing a dataset row, the [`Value`]s of one row, the [`Error`]
//! every crate returns, and the [`journal`] that turns a multi-file update (an episode
//! save) into an all-or-nothing transaction that survives `kill -9`.
//!
//! This crate must stay small and dependency-light: no FFmpeg, no Arrow.
// Unit tests build with the dev-dependencies, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod error;
pub mod extra;
pub mod faultpoint;
pub mod feature;
pub mod frame;
pub mod journal;
pub mod pool;
pub mod safepath;
pub mod sched;
pub mod stop;
pub mod tick;

pub use error::{Error, Result, ResultExt};
pub use feature::{Dtype, Feature, Features, RowValues, Value, DEFAULT_FEATURES_NAMES};
pub use frame::{monotonic_ns, wall_ns, SharedFrame, VideoFrame};
pub use pool::FramePool;
pub use stop::{StopMark, StopToken};
