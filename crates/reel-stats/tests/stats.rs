//! reel-stats's integration tests, one binary with a module per subject
//! (`cargo nextest run -p reel-stats`).
// A test crate sees every dependency of its package and uses few of them.
#![allow(unused_crate_dependencies)]

mod image;
mod reference;
