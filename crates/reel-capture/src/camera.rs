//! The public face of a camera: a latest-frame slot filled by the reader thread, read by the
//! control loop without waiting, plus statistics, the terminal error, and a bounded stop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reel_core::{Error, Result, SharedFrame};

use crate::reader;
use crate::spec::CameraSpec;

/// How long `stop`/`Drop` waits for the reader thread before leaving it detached.
const STOP_WAIT: Duration = Duration::from_millis(1000);

/// Capture statistics of one camera (published frames only).
#[derive(Debug, Clone, Default)]
pub struct CaptureStats {
    /// Frames published to the slot.
    pub frames: u64,
    /// Packets or frames that failed to decode or convert (skipped), plus a terminal failure.
    pub errors: u64,
    /// `captured_ns` of the latest frame.
    pub last_capture_ns: u64,
    /// Mean time between published frames.
    pub mean_interval_ms: f64,
    /// Longest time between two consecutive published frames.
    pub max_interval_ms: f64,
}

/// The slot and everything the reader thread reports, under one lock.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) latest: Option<SharedFrame>,
    pub(crate) frames: u64,
    pub(crate) errors: u64,
    pub(crate) first_ns: u64,
    pub(crate) last_ns: u64,
    pub(crate) max_interval_ns: u64,
    /// Terminal error of the reader thread.
    pub(crate) error: Option<String>,
    /// The reader thread has exited (with or without error).
    pub(crate) done: bool,
    /// What the camera delivers, known after its first second.
    pub(crate) negotiated: Option<crate::negotiate::Negotiated>,
    /// What the input delivers, as opened (codec, pixel format, size, rate).
    pub(crate) format: Option<String>,
}

/// State shared by a [`Camera`] handle and its reader thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) slot: Mutex<Slot>,
    /// Signalled on every new frame, on error and on exit.
    pub(crate) changed: Condvar,
    /// Stop request, read lock-free by the reader thread and FFmpeg's interrupt callback.
    pub(crate) stop: Arc<AtomicBool>,
    /// Lets the reader thread sleep (pacing) and still wake at once on stop.
    pub(crate) stop_lock: Mutex<()>,
    pub(crate) stop_cv: Condvar,
    /// Monotonic time of the first read of the slot by the handle's user (0: not read yet).
    /// The clock of the `error-after` fault: a recording that starts late (a loaded machine,
    /// a slow robot connect) still sees its camera fail the same time into its first episode.
    pub(crate) first_read_ns: AtomicU64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Slot> {
        // A poisoned lock means the reader panicked while publishing; the data is still coherent
        // (plain fields), so keep serving it.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps until monotonic time `until_ns` or a stop request. Returns false when stopping.
    pub(crate) fn sleep_until(&self, until_ns: u64) -> bool {
        let mut guard = self.stop_lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.stopping() {
                return false;
            }
            let now = reel_core::monotonic_ns();
            if now >= until_ns {
                return true;
            }
            let wait = Duration::from_nanos(until_ns - now);
            guard = match self.stop_cv.wait_timeout(guard, wait) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _g = self.stop_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.stop_cv.notify_all();
    }

    /// Publishes a frame (the lock is held only to swap the Arc and update counters).
    pub(crate) fn publish(&self, frame: SharedFrame) {
        let t = frame.captured_ns;
        let mut s = self.lock();
        if s.frames == 0 {
            s.first_ns = t;
        } else {
            s.max_interval_ns = s.max_interval_ns.max(t.saturating_sub(s.last_ns));
        }
        s.frames += 1;
        s.last_ns = t;
        s.latest = Some(frame);
        drop(s);
        self.changed.notify_all();
    }

    pub(crate) fn count_error(&self) {
        self.lock().errors += 1;
    }

    /// Records the terminal state of the reader thread.
    pub(crate) fn finish(&self, error: Option<String>) {
        let mut s = self.lock();
        if let Some(e) = error {
            s.errors += 1;
            s.error = Some(e);
        }
        s.done = true;
        drop(s);
        self.changed.notify_all();
    }
}

/// A camera being read on its own thread into a latest-frame slot.
pub struct Camera {
    spec: CameraSpec,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera")
            .field("spec", &self.spec)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Camera {
    /// Opens the input (lavfi / v4l2 / file), starts the reader thread and waits up to `timeout`
    /// for the first frame. Fails with e.g. `camera 'front': cannot open /dev/video9: No such
    /// file or directory`.
    pub fn open(spec: &CameraSpec, timeout: Duration) -> Result<Camera> {
        spec.validate()?;
        let shared = Arc::new(Shared::default());
        let thread = {
            let thread_spec = spec.clone();
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("camera-{}", spec.name))
                .spawn(move || reader::run(&thread_spec, &shared))
                .map_err(|e| {
                    Error::media(
                        format!("camera '{}'", spec.name),
                        format!("cannot start reader thread: {e}"),
                    )
                })?
        };
        let camera = Camera {
            spec: spec.clone(),
            shared,
            thread: Some(thread),
        };
        let deadline = Instant::now() + timeout;
        let mut s = camera.shared.lock();
        loop {
            if s.latest.is_some() {
                break;
            }
            if s.done {
                let msg = s
                    .error
                    .clone()
                    .unwrap_or_else(|| "reader stopped before the first frame".into());
                drop(s);
                return Err(Error::media(format!("camera '{}'", spec.name), msg));
            }
            let now = Instant::now();
            if now >= deadline {
                drop(s);
                return Err(Error::media(
                    format!("camera '{}'", spec.name),
                    format!(
                        "no frame from {} within {:.1} s",
                        spec.kind().describe(),
                        timeout.as_secs_f64()
                    ),
                ));
            }
            s = match camera.shared.changed.wait_timeout(s, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        drop(s);
        Ok(camera)
    }

    /// The camera name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The spec it was opened with.
    pub fn spec(&self) -> &CameraSpec {
        &self.spec
    }

    /// The latest frame (an `Arc` clone: no copy, no waiting on decode). `None` before the first.
    pub fn latest(&self) -> Option<SharedFrame> {
        self.note_read();
        self.shared.lock().latest.clone()
    }

    /// Starts the fault clock at the first read (see `Shared::first_read_ns`).
    fn note_read(&self) {
        if self.shared.first_read_ns.load(Ordering::Relaxed) == 0 {
            let _ = self.shared.first_read_ns.compare_exchange(
                0,
                reel_core::monotonic_ns().max(1),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// Waits up to `timeout` for a frame with `seq > after_seq` (any frame for `None`). Returns
    /// `None` on timeout, or at once when the reader has ended and no such frame exists.
    pub fn wait_newer(&self, after_seq: Option<u64>, timeout: Duration) -> Option<SharedFrame> {
        self.note_read();
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.lock();
        loop {
            if let Some(f) = &s.latest {
                if after_seq.is_none_or(|a| f.seq > a) {
                    return Some(Arc::clone(f));
                }
            }
            let now = Instant::now();
            if s.done || now >= deadline {
                return None;
            }
            s = match self.shared.changed.wait_timeout(s, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Capture statistics so far.
    pub fn stats(&self) -> CaptureStats {
        let s = self.shared.lock();
        let mean_interval_ms = if s.frames > 1 {
            (s.last_ns - s.first_ns) as f64 / 1e6 / (s.frames - 1) as f64
        } else {
            0.0
        };
        CaptureStats {
            frames: s.frames,
            errors: s.errors,
            last_capture_ns: s.last_ns,
            mean_interval_ms,
            max_interval_ms: s.max_interval_ns as f64 / 1e6,
        }
    }

    /// The format, size and measured rate the camera delivers (after its first second).
    pub fn negotiated(&self) -> Option<crate::negotiate::Negotiated> {
        self.shared.lock().negotiated.clone()
    }

    /// What the input delivers as negotiated with it: decoder, pixel format, size and rate,
    /// e.g. `mjpeg yuvj422p 640x480 @ 30.00 fps` or `rawvideo yuyv422 640x480 @ 30.00 fps`.
    pub fn format(&self) -> Option<String> {
        self.shared.lock().format.clone()
    }

    /// The reader thread's terminal error (device gone, end of file without loop...), if it died.
    pub fn error(&self) -> Option<String> {
        self.shared.lock().error.clone()
    }

    /// Stops the reader thread and joins it (also done on drop).
    pub fn stop(self) {
        drop(self);
    }

    /// Asks the reader thread to stop, without waiting (for a camera shared behind an `Arc`):
    /// it ends at its next frame or blocking read; the latest frame stays readable, and
    /// [`wait_newer`](Self::wait_newer) returns at once once it has ended.
    pub fn request_stop(&self) {
        self.shared.request_stop();
    }

    fn shutdown(&mut self) {
        self.shared.request_stop();
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = Instant::now() + STOP_WAIT;
        let mut s = self.shared.lock();
        while !s.done {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = match self.shared.changed.wait_timeout(s, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        let done = s.done;
        drop(s);
        if done {
            if thread.join().is_err() {
                tracing::error!(camera = %self.spec.name, "camera reader thread panicked");
            }
        } else {
            // Blocked inside a device read that ignores interrupts: leave it; it owns its state
            // and exits on its next return from FFmpeg.
            tracing::warn!(camera = %self.spec.name, "camera reader did not stop within {:?}; detached", STOP_WAIT);
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.shutdown();
    }
}
