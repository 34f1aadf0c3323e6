//! The one thing the recorder needs from a camera: its name and its latest frame. A trait so
//! that a recording session shares its `reel_capture::Camera`s and tests can feed synthetic ones.

use reel_core::SharedFrame;

/// A camera as the demo recorder sees it. `latest` must be cheap and non-blocking: it is called
/// twice per output frame. Frames carry `captured_ns` on the [`reel_core::monotonic_ns`] clock
/// and a per-source `seq` that increases with every new frame.
pub trait FrameSource: Send + Sync {
    fn name(&self) -> &str;
    fn latest(&self) -> Option<SharedFrame>;
}

impl FrameSource for reel_capture::Camera {
    fn name(&self) -> &str {
        reel_capture::Camera::name(self)
    }
    fn latest(&self) -> Option<SharedFrame> {
        reel_capture::Camera::latest(self)
    }
}
