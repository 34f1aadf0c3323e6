//! `reel.DemoRecorder`'s native half: `reel demo`'s wall-clock recorder (cameras composited
//! picture-in-picture, side by side or in a grid, with audio, into one MP4) fed from Python.
//! Cameras are either FFmpeg inputs reel reads itself (`"lavfi:testsrc2@640x480@30"`,
//! `"/dev/video0@640x480@30"`, a file) or slots the caller pushes frames into (`push`).

use crate::errors::{reel_error, to_py, value_error};
use crate::frames;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::PyDict;
use reel_capture::{Camera, CameraSpec};
use reel_core::{monotonic_ns, FramePool};
use reel_demo::{AudioInput, DemoConfig, DemoRecorder as Recorder, FrameSlot, FrameSource, Layout};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Pushed {
    slot: Arc<FrameSlot>,
    pool: FramePool,
    seq: u64,
}

struct State {
    recorder: Option<Recorder>,
    /// Cameras reel reads itself: kept open until stop.
    cameras: Vec<Arc<Camera>>,
    pushed: Vec<(String, Pushed)>,
}

/// A demo video being recorded (see `reel.DemoRecorder`).
#[pyclass(frozen, module = "reel._reel")]
pub struct DemoRecorder {
    state: Mutex<State>,
    output: PathBuf,
}

fn stats_dict<'py>(py: Python<'py>, s: &reel_demo::DemoStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("frames_written", s.frames_written)?;
    d.set_item("video_seconds", s.video_seconds)?;
    d.set_item("audio_seconds", s.audio_seconds)?;
    d.set_item("wall_seconds", s.wall_seconds)?;
    d.set_item("frames_cut", s.frames_cut)?;
    let cams = PyDict::new(py);
    for c in &s.cameras {
        cams.set_item(&c.name, (c.new_frames, c.repeated_frames))?;
    }
    d.set_item("cameras", cams)?;
    d.set_item("errors", s.errors.clone())?;
    Ok(d)
}

#[pymethods]
impl DemoRecorder {
    /// Starts recording `output`. `cameras`: a list of `(name, input)`, where `input` is an
    /// FFmpeg camera (`"lavfi:testsrc2@640x480@30"`, `"/dev/video2@640x480@30"`, a file) or
    /// None for a camera the caller feeds with `push(name, image)`. The first camera is the
    /// main one. `audio`: `"pulse:default"`, `"alsa:hw:0"`, `"lavfi:sine=frequency=440"`, a
    /// file, or None for a silent video. `layout`: "pip" | "side-by-side" | "grid".
    #[staticmethod]
    #[pyo3(signature = (output, cameras, *, audio=None, layout="pip".to_string(), size=(960, 540),
        fps=30, main_camera=0, inset_camera=None, preset="ultrafast".to_string(), crf=23))]
    #[allow(clippy::too_many_arguments)]
    fn start(
        py: Python<'_>,
        output: PathBuf,
        cameras: Vec<(String, Option<String>)>,
        audio: Option<String>,
        layout: String,
        size: (u32, u32),
        fps: u32,
        main_camera: usize,
        inset_camera: Option<usize>,
        preset: String,
        crf: u32,
    ) -> PyResult<DemoRecorder> {
        let mut cfg = DemoConfig::new(&output);
        cfg.width = size.0;
        cfg.height = size.1;
        cfg.fps = fps;
        cfg.layout = layout.parse::<Layout>().map_err(to_py)?;
        cfg.main_camera = main_camera;
        cfg.inset_camera = match inset_camera {
            Some(i) => Some(i),
            None if cameras.len() > 1 => Some(if main_camera == 0 { 1 } else { 0 }),
            None => None,
        };
        cfg.preset = preset;
        cfg.crf = crf;
        cfg.audio = audio.map(AudioInput::new);
        let mut sources: Vec<Arc<dyn FrameSource>> = Vec::new();
        let mut opened = Vec::new();
        let mut pushed = Vec::new();
        for (name, input) in cameras {
            match input {
                Some(input) => {
                    let spec = CameraSpec::parse(&format!("{name}={input}"))
                        .map_err(|e| to_py(e.context(format!("camera '{name}'"))))?;
                    let cam = py
                        .detach(|| Camera::open(&spec, Duration::from_secs(5)))
                        .map_err(|e| to_py(e.context(format!("camera '{name}' ({input})"))))?;
                    let cam = Arc::new(cam);
                    sources.push(cam.clone());
                    opened.push(cam);
                }
                None => {
                    let slot = FrameSlot::new(name.clone());
                    sources.push(slot.clone());
                    pushed.push((
                        name,
                        Pushed {
                            slot,
                            pool: FramePool::new(4),
                            seq: 0,
                        },
                    ));
                }
            }
        }
        let rec = py.detach(|| Recorder::start(sources, cfg)).map_err(|e| {
            to_py(e.context(format!("starting the demo video {}", output.display())))
        })?;
        Ok(DemoRecorder {
            state: Mutex::new(State {
                recorder: Some(rec),
                cameras: opened,
                pushed,
            }),
            output,
        })
    }

    /// Makes `image` (HWC or CHW, uint8 or float in [0, 1]) the latest frame of the pushed
    /// camera `name`; `captured_ns` (`time.monotonic_ns()`) places it in time (default now).
    #[pyo3(signature = (name, image, captured_ns=None))]
    fn push(
        &self,
        py: Python<'_>,
        name: &str,
        image: &Bound<'_, PyAny>,
        captured_ns: Option<u64>,
    ) -> PyResult<()> {
        let (h, w) = frames::image_hw(image)?;
        let mut st = self
            .state
            .lock_py_attached(py)
            .unwrap_or_else(|p| p.into_inner());
        if st.recorder.is_none() {
            return Err(reel_error("the demo recorder is stopped"));
        }
        let names: Vec<String> = st.pushed.iter().map(|(n, _)| n.clone()).collect();
        let Some((_, p)) = st.pushed.iter_mut().find(|(n, _)| n == name) else {
            return Err(value_error(format!(
                "'{name}' is not a pushed camera of this recorder (pushed cameras: {names:?})"
            )));
        };
        p.seq += 1;
        let f = frames::image(
            name,
            h,
            w,
            image,
            &mut p.pool,
            captured_ns.unwrap_or_else(monotonic_ns),
            p.seq,
        )?;
        p.slot.push(f);
        Ok(())
    }

    /// Figures so far; `failed` says why the recorder stopped on its own, if it did.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self
            .state
            .lock_py_attached(py)
            .unwrap_or_else(|p| p.into_inner());
        let rec = st
            .recorder
            .as_ref()
            .ok_or_else(|| reel_error("the demo recorder is stopped"))?;
        let d = stats_dict(py, &rec.stats())?;
        d.set_item("failed", rec.failed())?;
        Ok(d)
    }

    /// Stops and finalizes the MP4 (renamed into place once complete); returns its figures.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (rec, cams) = {
            let mut st = self
                .state
                .lock_py_attached(py)
                .unwrap_or_else(|p| p.into_inner());
            (st.recorder.take(), std::mem::take(&mut st.cameras))
        };
        let rec = rec.ok_or_else(|| reel_error("the demo recorder is already stopped"))?;
        let stats = py.detach(|| {
            let s = rec.stop();
            for c in cams {
                if let Ok(c) = Arc::try_unwrap(c) {
                    c.stop();
                }
            }
            s
        });
        let stats =
            stats.map_err(|e| to_py(e.context(format!("demo video {}", self.output.display()))))?;
        stats_dict(py, &stats)
    }

    #[getter]
    fn output(&self) -> PathBuf {
        self.output.clone()
    }
}
