//! reel-media's integration tests, one binary with a module per subject
//! (`cargo nextest run -p reel-media`).
// A test crate sees every dependency of its package and uses few of them.
#![allow(unused_crate_dependencies)]
// Tests unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod depth;
mod faults;
mod media;
mod svt_backend;
