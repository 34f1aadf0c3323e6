//! reel-media's integration tests, one binary with a module per subject
//! (`cargo nextest run -p reel-media`).
// A test crate sees every dependency of its package and uses few of them.
#![allow(unused_crate_dependencies)]

mod faults;
mod media;
