//! The recording engine: from the loop's frames to a LeRobot v3.0 dataset on disk.
//!
//! [`front`] (`open_writer`, the one builder every front end calls) decides the encoder
//! [`plan`]; the [`writer`] is the API a recording session calls (its committer thread saves
//! each episode as one journaled transaction through `reel-dataset`'s format modules); the
//! per-camera [`camera`] pipeline (memory queue, disk spill, encoder, image stats) encodes off
//! the loop's thread; [`deferred`] converts to the final codec in the background; [`check`]
//! validates and repairs; [`merge`] merges datasets.
// Unit tests build with the dev-dependencies, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod camera;
pub mod check;
pub mod deferred;
pub mod front;
pub mod merge;
pub mod plan;
pub mod writer;
