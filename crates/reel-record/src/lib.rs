//! The recording session: a fixed-rate control loop through episodes and resets, timed by
//! section, driven by keys and signals, feeding a `reel_engine::writer::DatasetWriter`.
//!
//! * [`robot`]: the [`robot::Robot`] and [`robot::Teleop`] traits a real arm implements,
//!   and the simulated 6-joint arm with its teleop;
//! * [`session`]: the episode/reset state machine and the loop itself;
//! * [`timing`]: per-tick section timings, percentiles, missed deadlines, frame ages;
//! * [`pacing`]: sleep-then-spin waits and loop priority;
//! * [`events`]: keys (→ ← Esc) and SIGINT/SIGTERM;
//! * [`watch`]: camera disconnect detection (deadline, end the episode or flag stale frames).
//! * [`samples`]: side-stream sources (threads sending samples at their own rate) and the
//!   loop's [`samples::StreamCutter`], which cuts them into episodes by time;
//! * [`bus`]: the bus thread, a robot read at the bus's rate, every read a stream sample;
//! * [`external`]: a loop reel does not run (LeRobot's, a user's) feeding the writer, timed
//!   from its `add_frame` calls ([`timing::ExternalTimer`]) into the same per-episode figures.
//!
//! The loop thread never waits on encoding or disk: everything it hands over is an `Arc`
//! or a few numbers.
// Unit tests build with the dev-dependencies, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod bus;
pub mod events;
pub mod external;
pub mod observe;
pub mod pacing;
pub mod robot;
pub mod samples;
pub mod session;
pub mod timing;
pub mod watch;
