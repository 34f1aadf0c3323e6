//! The LeRobot v3.0 dataset: writer, resume, validation and repair.
//!
//! This crate owns every file of a LeRobot v3.0 dataset directory. The modules here are the
//! format layer: path arithmetic ([`paths`]), Python-exact JSON ([`pyjson`]), `meta/info.json`
//! ([`info`]), the in-place, crash-safe parquet row-group append ([`parquet_append`]), the data
//! parquet ([`data`]), the episodes metadata parquet ([`episodes`]), `meta/tasks.parquet`
//! ([`tasks`]) and `meta/stats.json` ([`stats_json`]).
//!
//! On top of it: the [`writer`] (the API a recording session calls, whose committer thread
//! saves each episode as one journaled transaction), the per-camera encoding [`camera`]
//! pipeline (memory queue, disk spill, encoder, image stats), the [`deferred`] transcoder (live
//! codec → final codec in the background), [`check`] (validate, repair) and [`ticks`] (the
//! per-tick timing of every recorded frame, in files LeRobot ignores).
// Unit tests build with the dev-dependencies, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod camera;
pub mod check;
pub mod data;
pub mod deferred;
pub mod episodes;
pub mod figures;
pub mod front;
pub mod info;
pub mod lock;
pub mod merge;
pub mod overwrite;
pub mod parquet_append;
pub mod paths;
pub mod plan;
pub mod pyjson;
pub mod stats_json;
pub mod streams;
pub mod tasks;
pub mod ticks;
pub mod writer;
