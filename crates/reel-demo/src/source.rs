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

/// A camera fed by its owner rather than read from a device: whoever holds the slot pushes
/// frames (a Python loop, a callback thread) and the recorder samples the latest one, as it
/// does for a `reel_capture::Camera`. Pushing replaces the frame; it never waits.
pub struct FrameSlot {
    name: String,
    latest: std::sync::Mutex<Option<SharedFrame>>,
}

impl FrameSlot {
    pub fn new(name: impl Into<String>) -> std::sync::Arc<FrameSlot> {
        std::sync::Arc::new(FrameSlot {
            name: name.into(),
            latest: std::sync::Mutex::new(None),
        })
    }

    /// Makes `frame` the latest (its `captured_ns` places it on the video's time line).
    pub fn push(&self, frame: SharedFrame) {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(frame);
    }
}

impl FrameSource for FrameSlot {
    fn name(&self) -> &str {
        &self.name
    }
    fn latest(&self) -> Option<SharedFrame> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
