//! LeRobot-exact statistics (see `shared/spec/lerobot-v3.md` §4): this crate's one job is to
//! compute the numbers that go into `stats.json` and the episodes parquet — per-feature min,
//! max, mean, std, count and the q01/q10/q50/q90/q99 quantiles — the way LeRobot's
//! `compute_stats.py` does.
//!
//! - [`RunningQuantileStats`]: per-dimension moments plus 5000-bin histograms, batch by batch
//!   (§4.1); quantiles are read off the histograms by linear interpolation inside a bin.
//! - [`vector_stats`]: `get_feature_stats` of a numeric column (§4.2).
//! - [`ImageStats`] and [`downsample_stride`]: the streaming encoder's per-camera image
//!   statistics (§3.4), values scaled to [0, 1], `count` = pixels.
//! - [`aggregate`] / [`aggregate_all`]: `aggregate_stats` (§4.4), merging episode stats.
//!
//! **Precision.** Everything is computed in f64. LeRobot computes in the promoted dtype of the
//! data (`result_type(dtype, float32)`): float32 for float32 and uint8 data (every camera and
//! every float32 vector feature), float64 only for float64/int32/int64 data (`timestamp`,
//! `frame_index`, `index`, ...). Using f64 everywhere is a deliberate, more exact choice; for
//! float32 inputs the results differ from LeRobot's in the last float32 digits, and the
//! `±1e-10` first-batch histogram padding, which float32 rounds away unless the value is
//! near 0, is always kept (q01 of an integer feature starting at 0 is `-1e-10`, as in
//! LeRobot's float64 case).
//!
//! Types and signatures here are the contract other crates use.
// Unit tests build with the dev-dependencies, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

mod aggregate;
mod image;
mod running;

pub use aggregate::{aggregate, aggregate_all, vector_stats};
pub use image::{downsample_stride, ImageStats};
pub use running::RunningQuantileStats;

/// The quantile levels LeRobot always computes, in its order.
pub const QUANTILES: [f64; 5] = [0.01, 0.10, 0.50, 0.90, 0.99];

/// Histogram bins per dimension in [`RunningQuantileStats`] (LeRobot's default).
pub const DEFAULT_BINS: usize = 5000;

/// LeRobot's key for quantile level `q`: `"q%02d" % int(q * 100)` (`0.01` → `"q01"`).
pub fn quantile_key(q: f64) -> String {
    format!("q{:02}", (q * 100.0) as i64)
}

/// The statistics of one feature: per-dimension vectors (length D for a vector feature,
/// C for a camera) plus the sample count. Quantiles are kept in LeRobot's order
/// (`q01, q10, q50, q90, q99`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub count: u64,
    /// `("q01", values)`, ... in LeRobot's order; may be empty for stats read from old files.
    pub quantiles: Vec<(String, Vec<f64>)>,
}

impl FeatureStats {
    /// The values of quantile `key` (`"q01"` ... `"q99"`), if present.
    pub fn quantile(&self, key: &str) -> Option<&[f64]> {
        self.quantiles
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}
