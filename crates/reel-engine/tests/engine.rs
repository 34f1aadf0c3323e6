//! reel-engine's integration tests, one binary with a module per subject
//! (`cargo nextest run -p reel-engine`).
// A test crate sees every dependency of its package and uses few of them.
#![allow(unused_crate_dependencies)]
// Tests unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lerobot_roundtrip;
mod writer;
