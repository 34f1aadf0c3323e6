//! Demo videos of rollouts: this crate's one job is to turn live cameras and an audio input into
//! one MP4 (picture-in-picture, side-by-side or grid, H.264 + AAC) whose video time and audio
//! time both equal the wall clock, whatever the control loop does meanwhile.
//!
//! [`DemoRecorder::start`] takes the cameras as `Vec<Arc<dyn FrameSource>>` (the trait is
//! implemented for `reel_capture::Camera`, so a recording session shares its cameras), opens the
//! output (`<output>.partial`) and the audio input, and runs two threads it owns:
//!
//! * the **mux thread** pulls the latest frame of each camera at `fps` by the wall clock,
//!   repeating a camera's previous frame when it has no new one (counted per camera),
//!   composites them with an in-process FFmpeg filter graph, encodes H.264 and AAC and muxes;
//! * the **audio thread** reads any FFmpeg audio input (PulseAudio, ALSA, a file, `lavfi`),
//!   resamples it to 48 kHz stereo and stamps each chunk against the same clock.
//!
//! [`DemoRecorder::stop`] finalizes even when the audio input blocks forever, and renames the
//! file into place only when the trailer is written. An encoder still behind the wall clock
//! after [`DemoConfig::stop_deadline`] (a loaded machine) has its video cut where it is
//! (`DemoStats::frames_cut`, audio cut to match) rather than the recording lost.
// Unit tests build with the dev-dependencies, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

mod audio;
mod compositor;
mod config;
mod recorder;
mod say;
mod source;

pub use audio::{AudioStream, STREAM_RATE};
pub use config::{AudioInput, DemoConfig, Layout};
pub use recorder::{CameraDemoStats, DemoRecorder, DemoStats};
pub use say::say;
pub use source::{FrameSlot, FrameSource};
