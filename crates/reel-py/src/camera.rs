//! `reel._reel.Camera`: one of reel's cameras (reel-capture's native reader thread: V4L2,
//! files, lavfi, RTSP; decoding and colour conversion off the GIL) read from a loop reel does
//! not run, with the library's [`TickReader`] deciding when a read waits and when it repeats.
//!
//! Frames come out as **read-only numpy views of the camera's own buffer**: no copy into
//! Python, and [`crate::frames::camera_frame`] recognises such a view in `Writer.add_frame` and
//! hands the same buffer to the encoder (no copy either). The view's `base` is a
//! [`CapturedFrame`], which keeps the buffer alive as long as any array uses it.

use crate::errors::{reel_error, to_py, value_error};
use numpy::ndarray::ArrayView3;
use numpy::PyArray3;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use reel_capture::{Camera as Capture, CameraSpec};
use reel_core::SharedFrame;
use reel_record::observe::{ObserveClock as Clock, TickReader};
use reel_record::watch::{CameraWatchConfig, OnCameraLoss};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The owner of a camera frame's pixels, the `base` of the arrays `Camera` returns.
#[pyclass(frozen, module = "reel._reel")]
pub struct CapturedFrame {
    pub(crate) frame: SharedFrame,
}

#[pymethods]
impl CapturedFrame {
    /// The camera's sequence number of this frame (0, 1, 2, ... per camera).
    #[getter]
    fn seq(&self) -> u64 {
        self.frame.seq
    }

    /// When it was captured (`reel.now_ns()` clock).
    #[getter]
    fn captured_ns(&self) -> u64 {
        self.frame.captured_ns
    }
}

/// A read-only `(height, width, 3)` uint8 view of `frame`'s pixels, owned by a [`CapturedFrame`].
pub(crate) fn frame_array<'py>(py: Python<'py>, frame: SharedFrame) -> PyResult<Bound<'py, PyAny>> {
    let (h, w) = (frame.height as usize, frame.width as usize);
    let owner = Bound::new(
        py,
        CapturedFrame {
            frame: Arc::clone(&frame),
        },
    )?;
    let view = ArrayView3::from_shape((h, w, 3), frame.data.as_slice())
        .map_err(|e| reel_error(format!("camera frame {w}x{h}: {e}")))?;
    // SAFETY: the pixels live in the `Arc<VideoFrame>` that `owner` holds for as long as the
    // array exists (it is the array's base); a captured frame is never written after it is
    // published (the reader allocates each frame; pools reuse only frames nobody else holds).
    let arr = unsafe { PyArray3::<u8>::borrow_from_array(&view, owner.into_any()) };
    arr.getattr("flags")?.setattr("writeable", false)?;
    Ok(arr.into_any())
}

struct Inner {
    capture: Option<Capture>,
    reader: TickReader,
}

/// One reel camera (see the module doc and `reel.lerobot_camera.ReelCamera`).
#[pyclass(frozen, module = "reel._reel")]
pub struct Camera {
    inner: Mutex<Inner>,
    name: String,
    width: u32,
    height: u32,
    fps: u32,
}

/// The observation budget shared by a loop's cameras (`reel_record::observe::ObserveClock`).
#[pyclass(frozen, module = "reel._reel")]
pub struct ObserveClock {
    clock: Clock,
}

#[pymethods]
impl ObserveClock {
    /// A clock for a loop at `fps` whose cameras together wait at most `budget_ms` per tick.
    #[new]
    fn new(fps: u32, budget_ms: f64) -> PyResult<Self> {
        let budget = Duration::try_from_secs_f64(budget_ms / 1e3)
            .map_err(|_| value_error(format!("budget_ms must be >= 0, got {budget_ms}")))?;
        if fps == 0 {
            return Err(value_error("fps must be at least 1"));
        }
        Ok(ObserveClock {
            clock: Clock::new(fps, budget),
        })
    }

    /// The budget per tick, in milliseconds.
    #[getter]
    fn budget_ms(&self) -> f64 {
        self.clock.budget().as_secs_f64() * 1e3
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn closed(name: &str) -> PyErr {
    reel_error(format!("camera '{name}' is closed"))
}

/// `(array, seq, captured_ns, repeated, stale, waited_ns)` of one read.
type Read<'py> = (Bound<'py, PyAny>, u64, u64, bool, bool, u64);

#[pymethods]
impl Camera {
    /// Opens `input` (`/dev/videoN`, a media file, `lavfi:GRAPH`, `rtsp://...`) delivering
    /// `width`x`height` RGB at `fps`, and waits up to `open_timeout_s` for its first frame.
    /// `input_format` (V4L2): `mjpeg` or `yuyv422`. `filter`: an FFmpeg filter chain applied
    /// before scaling. `loop`: a file starts again at its end. `fault`: a testing aid
    /// (`end-file`, `error-after=S`, `stall=AT:LEN`, `fps=F`). `lost_after_ms` and `on_loss`
    /// (`end` or `continue`) are `reel record`'s `--camera-timeout-ms` and `--on-camera-loss`.
    #[new]
    #[pyo3(signature = (name, input, width, height, fps, *, r#loop=true, input_format=None,
                        filter=None, fault=None, open_timeout_s=10.0, lost_after_ms=500.0,
                        on_loss="end"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: &str,
        input: &str,
        width: u32,
        height: u32,
        fps: u32,
        r#loop: bool,
        input_format: Option<String>,
        filter: Option<String>,
        fault: Option<String>,
        open_timeout_s: f64,
        lost_after_ms: f64,
        on_loss: &str,
    ) -> PyResult<Self> {
        let mut spec = CameraSpec {
            name: name.to_string(),
            input: input.to_string(),
            width,
            height,
            fps,
            loop_file: r#loop,
            input_format,
            filter,
            ..CameraSpec::default()
        };
        if let Some(f) = fault {
            spec.apply_fault(&f).map_err(to_py)?;
        }
        spec.validate().map_err(to_py)?;
        let on_loss = match on_loss {
            "end" => OnCameraLoss::EndEpisode,
            "continue" => OnCameraLoss::Continue,
            other => {
                return Err(value_error(format!(
                    "on_loss must be 'end' or 'continue', got '{other}'"
                )))
            }
        };
        let deadline = Duration::try_from_secs_f64(lost_after_ms / 1e3)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                value_error(format!("lost_after_ms must be > 0, got {lost_after_ms}"))
            })?;
        let timeout = Duration::try_from_secs_f64(open_timeout_s).map_err(|_| {
            value_error(format!("open_timeout_s must be >= 0, got {open_timeout_s}"))
        })?;
        let capture = py.detach(|| Capture::open(&spec, timeout)).map_err(to_py)?;
        Ok(Camera {
            inner: Mutex::new(Inner {
                capture: Some(capture),
                reader: TickReader::new(name, CameraWatchConfig { deadline, on_loss }),
            }),
            name: name.to_string(),
            width,
            height,
            fps,
        })
    }

    /// The newest frame for this tick (see `reel_record::observe`): one captured since the
    /// last read at once; else waiting within `clock`'s budget; else the last one again
    /// (`repeated`). Raises `ReelError` when the camera is lost and `on_loss` is `end`.
    fn read_for_tick<'py>(&self, py: Python<'py>, clock: &ObserveClock) -> PyResult<Read<'py>> {
        let d = py
            .detach(|| {
                let mut g = lock(&self.inner);
                let Inner { capture, reader } = &mut *g;
                let cam = capture.as_ref().ok_or(())?;
                Ok::<_, ()>(reader.read(cam, &clock.clock))
            })
            .map_err(|()| closed(&self.name))?
            .map_err(to_py)?;
        let (seq, cap) = (d.frame.seq, d.frame.captured_ns);
        Ok((
            frame_array(py, d.frame)?,
            seq,
            cap,
            d.repeated,
            d.stale,
            d.waited_ns,
        ))
    }

    /// A frame newer than the last one read, waiting up to `timeout_ms` (LeRobot's `read()`).
    fn read_new<'py>(&self, py: Python<'py>, timeout_ms: f64) -> PyResult<Bound<'py, PyAny>> {
        let timeout = Duration::try_from_secs_f64(timeout_ms / 1e3)
            .map_err(|_| value_error(format!("timeout_ms must be >= 0, got {timeout_ms}")))?;
        let f = py
            .detach(|| {
                let mut g = lock(&self.inner);
                let Inner { capture, reader } = &mut *g;
                let cam = capture.as_ref().ok_or(())?;
                Ok::<_, ()>(reader.read_new(cam, timeout))
            })
            .map_err(|()| closed(&self.name))?
            .map_err(to_py)?;
        frame_array(py, f)
    }

    /// The newest frame without waiting or counting: `(array, seq, captured_ns)`, or None
    /// before the first.
    fn latest<'py>(&self, py: Python<'py>) -> PyResult<Option<(Bound<'py, PyAny>, u64, u64)>> {
        let f = {
            let g = lock(&self.inner);
            g.capture
                .as_ref()
                .ok_or_else(|| closed(&self.name))?
                .latest()
        };
        f.map(|f| {
            let (s, c) = (f.seq, f.captured_ns);
            Ok((frame_array(py, f)?, s, c))
        })
        .transpose()
    }

    /// Reads, repeats, waits, time waited (ms) and losses so far, plus the reader's capture
    /// statistics (frames published, errors, mean and max interval).
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = lock(&self.inner);
        let c = g.reader.counts();
        let d = PyDict::new(py);
        d.set_item("reads", c.reads)?;
        d.set_item("repeats", c.repeats)?;
        d.set_item("waits", c.waits)?;
        d.set_item("waited_ms", c.waited_ns as f64 / 1e6)?;
        d.set_item("losses", c.losses)?;
        d.set_item("lost", g.reader.is_lost())?;
        if let Some(cam) = &g.capture {
            let s = cam.stats();
            d.set_item("captured", s.frames)?;
            d.set_item("capture_errors", s.errors)?;
            d.set_item("mean_interval_ms", s.mean_interval_ms)?;
            d.set_item("max_interval_ms", s.max_interval_ms)?;
        }
        Ok(d)
    }

    /// What the input delivers, as opened (decoder, pixel format, size, rate).
    fn format(&self) -> Option<String> {
        lock(&self.inner).capture.as_ref().and_then(Capture::format)
    }

    /// The format, size and measured rate after the camera's first second, as `reel record`
    /// logs it; None before.
    fn negotiated(&self) -> Option<String> {
        let g = lock(&self.inner);
        let cam = g.capture.as_ref()?;
        cam.negotiated()
            .map(|n| n.line(&self.name, &cam.spec().input))
    }

    /// The reader's terminal error (device gone, end of file), if it stopped.
    fn error(&self) -> Option<String> {
        lock(&self.inner).capture.as_ref().and_then(Capture::error)
    }

    /// Stops the reader thread (bounded wait). Frames already returned stay valid.
    fn close(&self, py: Python<'_>) {
        let cap = lock(&self.inner).capture.take();
        py.detach(move || drop(cap));
    }

    #[getter]
    fn is_open(&self) -> bool {
        lock(&self.inner).capture.is_some()
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn width(&self) -> u32 {
        self.width
    }

    #[getter]
    fn height(&self) -> u32 {
        self.height
    }

    #[getter]
    fn fps(&self) -> u32 {
        self.fps
    }

    fn __repr__(&self) -> String {
        format!(
            "reel.Camera({:?}, {}x{} @ {} fps{})",
            self.name,
            self.width,
            self.height,
            self.fps,
            if self.is_open() { "" } else { ", closed" }
        )
    }
}
