//! The LeRobot v3.0 dataset directory: its files, their layout and their crash-safe updates.
//!
//! Path arithmetic ([`paths`]), Python-exact JSON ([`pyjson`]), `meta/info.json` ([`info`]),
//! the in-place, crash-safe parquet row-group append ([`parquet_append`]) and its MP4 twin
//! ([`mp4`]: box-level append of an encoded segment, frame truncation, index reading), the data
//! parquet ([`data`]), the episodes metadata parquet ([`episodes`]), `meta/tasks.parquet`
//! ([`tasks`]), `meta/stats.json` ([`stats_json`]), reel's own files LeRobot ignores
//! ([`ticks`], [`figures`], [`streams`]), the writer's lock ([`lock`]) and [`overwrite`].
//!
//! No threads and no FFmpeg: the recording engine (`reel-engine`) and every tool that reads or
//! edits a dataset build on this crate.
// Unit tests build with the dev-dependencies, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod data;
pub mod episodes;
pub mod figures;
pub mod info;
pub mod lock;
pub mod mp4;
pub mod overwrite;
pub mod parquet_append;
pub mod paths;
pub mod pyjson;
pub mod stats_json;
pub mod streams;
pub mod tasks;
pub mod ticks;
