//! See why: reel explains its own timing.
//!
//! * [`doctor`]: `reel doctor` — short trials on the real setup (cameras alone and together,
//!   the loop with the chosen encoder, deferred, without encoding, at lower rates, with and
//!   without real-time priority) and a verdict: causes ranked with evidence, the highest rate
//!   that held, the settings to record with;
//! * [`report`]: `reel report` — one self-contained HTML page of a dataset's timing (per
//!   episode from the stored ticks, across episodes from the `reel/*` columns);
//! * [`live`]: the live page of `reel record --display` (and of the Python module): a small
//!   HTTP server on 127.0.0.1 the loop publishes into without ever waiting;
//! * [`page`] and [`charts`]: the page code and the figures (SVG by `plotters`) the report
//!   and the live page share.

pub mod charts;
pub mod doctor;
pub mod live;
pub mod page;
pub mod report;
