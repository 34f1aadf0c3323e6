//! The CLI's integration tests, one binary (one link of the whole stack) with a module per
//! subject. Each test spawns the `reel` binary or calls the libraries; run them with
//! `cargo nextest run -p reel` (each test its own process) or `cargo test -p reel --test cli`.
// A test crate sees every dependency of its package and uses few of them.
#![allow(unused_crate_dependencies)]
// Tests unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fuzz_common;

/// The fuzzers' counting allocator (per-thread live and peak bytes; `fuzz_common::measure`).
#[global_allocator]
static A: fuzz_common::Counting = fuzz_common::Counting;

mod check_agrees;
mod crash;
mod deferred;
mod demo;
mod depth;
mod doctor;
mod faults;
mod fuzz_journal;
mod fuzz_meta;
mod fuzz_mp4;
mod hardening;
mod killpoints;
mod lock;
mod merge;
mod merge_native;
mod record;
mod report;
mod robots;
mod streams;
