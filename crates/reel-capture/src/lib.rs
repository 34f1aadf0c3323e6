//! reel-capture has one job: turn cameras into latest-frame slots. Each camera is any FFmpeg
//! input (a `lavfi` graph, a video file, a V4L2 device `/dev/videoN`), read on its own thread
//! through one code path (libavformat/libavdevice, decoder, swscale to RGB24), paced to real
//! time, and published as [`reel_core::SharedFrame`]s the control loop takes without waiting.
// Unit tests build with the dev-dependencies, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

mod camera;
pub mod negotiate;
mod pacing;
mod reader;
mod spec;

pub use camera::{Camera, CaptureStats};
pub use spec::{CameraSpec, DEFAULT_FPS, DEFAULT_HEIGHT, DEFAULT_WIDTH, V4L2_INPUT_FORMATS};
