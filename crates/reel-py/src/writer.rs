//! `reel.Writer`: the library's [`DatasetWriter`] (through [`ExternalSession`], which times
//! each `add_frame`) for one's own loop and for LeRobot's.
//!
//! Options become the same [`EncoderRequest`] and [`WriterConfig`] the CLI builds; the library
//! decides and validates. Thread-safe: a frozen class around a `Mutex`, taken with the GIL
//! released while waiting; copies, hand-overs, waits and finalize run with the GIL released.
//! Waiting for commits never holds the mutex for more than a poll, so a loop on another
//! thread keeps adding frames meanwhile.

use crate::errors::{reel_error, to_py, value_error};
use crate::{features, frames};
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyDict, PyInt, PyString};
use reel_core::{monotonic_ns, Features, FramePool, RowValues, StopToken};
use reel_engine::camera::QueueLimits;
use reel_engine::front;
use reel_engine::plan::{DeferredMode, EncoderPlan, EncoderRequest};
use reel_engine::writer::{read_schema, CommitGates, EpisodeSaved, OpenMode, WriterConfig};
use reel_record::external::{ExternalSession, FrameStamp};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Frames each camera's pool keeps beyond the memory queue (in flight to the encoder).
const POOL_SLACK: usize = 8;

struct State {
    session: Option<ExternalSession>,
    /// One pool per camera, in the features' order of video keys.
    pools: Vec<FramePool>,
    seq: u64,
    /// Camera images handed on as they were (frames of reel cameras) and images copied.
    zero_copy: u64,
    copied: u64,
}

/// A LeRobot v3.0 dataset being recorded (see `help(reel.Writer)` in Python).
#[pyclass(frozen, module = "reel._reel")]
pub struct Writer {
    state: Mutex<State>,
    features: Features,
    video_keys: Vec<String>,
    gates: CommitGates,
    stop: StopToken,
    root: PathBuf,
    fps: u32,
    robot_type: Option<String>,
    plan: EncoderPlan,
    /// Set by `finalize` (checked first by `add_frame`, without the mutex).
    closed: AtomicBool,
}

/// The tick time and per-camera capture times of one `add_frame` (see `Writer::captured`).
type Captured = (Option<u64>, Vec<(String, u64)>);

/// The options every open takes (see `Writer.create`).
struct Options {
    robot_type: Option<String>,
    vcodec: Option<String>,
    crf: Option<f64>,
    preset: Option<String>,
    gop: Option<u32>,
    encoder_threads: Option<u32>,
    deferred: String,
    max_frames_in_memory: usize,
    durable: bool,
    data_files_size_in_mb: Option<f64>,
    video_files_size_in_mb: Option<f64>,
    encoder_timeout_s: f64,
    /// Testing aid, as `reel record --inject-fault`.
    inject_fault: Option<String>,
    /// Depth cameras' encoding (LeRobot's `depth_encoder`); None: LeRobot's defaults.
    depth: Option<reel_media::depth::DepthEncoding>,
}

/// LeRobot's `DepthEncoderConfig` fields (a dict: `vcodec`, `pix_fmt`, `g`, `crf`, `preset`,
/// `extra_options`, `depth_min`, `depth_max`, `shift`, `use_log`; missing keys keep LeRobot's
/// defaults) as the library's depth encoding. `vcodec` `hevc` is PyAV's name for libx265;
/// the library refuses codecs and pixel formats LeRobot's depth path would not store as
/// 12-bit codes.
fn depth_encoding(d: &Bound<'_, PyDict>) -> PyResult<reel_media::depth::DepthEncoding> {
    let mut e = reel_media::depth::DepthEncoding::default();
    let bad =
        |k: &str, v: &Bound<'_, PyAny>| value_error(format!("depth_encoder.{k}: bad value {v}"));
    for (k, v) in d.iter() {
        let k: String = k.extract()?;
        if v.is_none() {
            if k == "preset" {
                e.encoder.preset = None;
            }
            continue;
        }
        match k.as_str() {
            "vcodec" => {
                let c: String = v.extract().map_err(|_| bad(&k, &v))?;
                e.encoder.vcodec = if c == "hevc" { "libx265".into() } else { c };
            }
            "pix_fmt" => e.encoder.pix_fmt = v.extract().map_err(|_| bad(&k, &v))?,
            "g" => e.encoder.g = Some(v.extract().map_err(|_| bad(&k, &v))?),
            "crf" => e.encoder.crf = Some(v.extract().map_err(|_| bad(&k, &v))?),
            "preset" => e.encoder.preset = Some(v.str()?.to_string()),
            "extra_options" => {
                let m = v.cast::<PyDict>().map_err(|_| bad(&k, &v))?;
                e.encoder.extra = m
                    .iter()
                    .map(|(a, b)| Ok((a.str()?.to_string(), b.str()?.to_string())))
                    .collect::<PyResult<_>>()?;
            }
            "depth_min" => e.quant.depth_min = v.extract().map_err(|_| bad(&k, &v))?,
            "depth_max" => e.quant.depth_max = v.extract().map_err(|_| bad(&k, &v))?,
            "shift" => e.quant.shift = v.extract().map_err(|_| bad(&k, &v))?,
            "use_log" => e.quant.use_log = v.extract().map_err(|_| bad(&k, &v))?,
            // Decoding hints LeRobot records, not encoder settings.
            "fast_decode" | "video_backend" => {}
            other => {
                return Err(value_error(format!(
                    "depth_encoder: unknown option '{other}'"
                )))
            }
        }
    }
    Ok(e)
}

fn lock<'a>(py: Python<'_>, m: &'a Mutex<State>) -> MutexGuard<'a, State> {
    m.lock_py_attached(py).unwrap_or_else(|p| p.into_inner())
}

fn open(
    py: Python<'_>,
    root: PathBuf,
    fps: u32,
    features: Features,
    o: Options,
    mode: OpenMode,
) -> PyResult<Writer> {
    let mut req = EncoderRequest::for_features(&features, fps);
    if let Some(v) = &o.vcodec {
        req.vcodec = v.clone();
    }
    req.crf = o.crf;
    req.preset = o.preset.clone();
    req.gop = o.gop;
    req.threads = o.encoder_threads;
    req.deferred = o.deferred.parse::<DeferredMode>().map_err(to_py)?;
    req.encoder_timeout_s = o.encoder_timeout_s;
    req.fault = o.inject_fault.clone();
    let stop = StopToken::new();
    let mut cfg = WriterConfig::new(&root, fps, features.clone());
    cfg.robot_type = o.robot_type.clone();
    cfg.data_files_size_mb = o.data_files_size_in_mb;
    cfg.video_files_size_mb = o.video_files_size_in_mb;
    cfg.owner = "reel.Writer (Python)".into();
    cfg.queue = QueueLimits {
        max_frames_in_memory: o.max_frames_in_memory,
        ..QueueLimits::default()
    };
    cfg.durable = o.durable;
    cfg.stop = stop.clone();
    if let Some(d) = o.depth {
        cfg.depth = d;
    }
    // The library's one builder, as `reel record` calls it: the plan, its check under the
    // load running now (LeRobot's cameras where they already capture), and the writer.
    let opened = py.detach(|| front::open_writer(cfg, &req, mode));
    let (writer, plan) = opened.map_err(|e| {
        to_py(e.context(match mode {
            OpenMode::Resume => format!("resuming {}", root.display()),
            _ => format!("creating {}", root.display()),
        }))
    })?;
    for line in plan.summary() {
        tracing::info!("{line}");
    }
    let video_keys = features.video_keys();
    let pools = video_keys
        .iter()
        .map(|_| FramePool::new(o.max_frames_in_memory + POOL_SLACK))
        .collect();
    let gates = writer.gates();
    Ok(Writer {
        state: Mutex::new(State {
            session: Some(ExternalSession::new(writer, fps)),
            pools,
            seq: 0,
            zero_copy: 0,
            copied: 0,
        }),
        features,
        video_keys,
        gates,
        stop,
        root,
        fps,
        robot_type: o.robot_type,
        plan,
        closed: AtomicBool::new(false),
    })
}

fn saved_dict<'py>(py: Python<'py>, s: &EpisodeSaved) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("episode_index", s.episode_index)?;
    d.set_item("frames", s.frames)?;
    d.set_item("data_file", (s.data_file.chunk, s.data_file.file))?;
    d.set_item("latency_s", s.latency_s)?;
    d.set_item("commit_s", s.commit_s)?;
    let per_cam = |v: &[(String, u64)]| -> PyResult<Bound<'py, PyDict>> {
        let x = PyDict::new(py);
        for (k, n) in v {
            x.set_item(k, n)?;
        }
        Ok(x)
    };
    d.set_item("spilled_frames", per_cam(&s.spilled)?)?;
    d.set_item("max_queue_depth", per_cam(&s.max_queue_depth)?)?;
    let fps = PyDict::new(py);
    for (k, v) in &s.encode_fps {
        fps.set_item(k, v)?;
    }
    d.set_item("encode_fps", fps)?;
    let sw = PyDict::new(py);
    for (k, v) in &s.switches {
        sw.set_item(k, v)?;
    }
    d.set_item("encoder_switches", sw)?;
    Ok(d)
}

fn saved_list<'py>(py: Python<'py>, v: &[EpisodeSaved]) -> PyResult<Vec<Bound<'py, PyDict>>> {
    v.iter().map(|s| saved_dict(py, s)).collect()
}

fn closed() -> PyErr {
    reel_error("the writer is closed (finalize was called)")
}

impl Writer {
    /// Runs `f` on the open session with the mutex held (the GIL released while waiting).
    fn with_session<T>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut ExternalSession) -> PyResult<T>,
    ) -> PyResult<T> {
        let mut st = lock(py, &self.state);
        let s = st.session.as_mut().ok_or_else(closed)?;
        f(s)
    }

    /// Per-camera capture times from `captured_ns` (an int for every camera, or a dict by
    /// feature key or short camera name).
    fn captured(&self, captured: Option<&Bound<'_, PyAny>>) -> PyResult<Captured> {
        let Some(c) = captured else {
            return Ok((None, Vec::new()));
        };
        if c.is_none() {
            return Ok((None, Vec::new()));
        }
        if c.is_instance_of::<PyInt>() {
            let t: u64 = c.extract().map_err(|_| {
                value_error("captured_ns must be a non-negative int (time.monotonic_ns())")
            })?;
            return Ok((
                Some(t),
                self.video_keys.iter().map(|k| (k.clone(), t)).collect(),
            ));
        }
        let d = c.cast::<PyDict>().map_err(|_| {
            value_error(
                "captured_ns must be an int or a dict {camera: int} (time.monotonic_ns() clock)",
            )
        })?;
        let mut out = Vec::new();
        for (k, v) in d.iter() {
            let k: String = k
                .extract()
                .map_err(|_| value_error("captured_ns keys must be camera names"))?;
            let key = if self.video_keys.contains(&k) {
                k
            } else {
                let full = format!("observation.images.{k}");
                if !self.video_keys.contains(&full) {
                    return Err(value_error(format!(
                        "captured_ns names camera '{k}', which is not one of {:?}",
                        self.video_keys
                    )));
                }
                full
            };
            let t: u64 = v.extract().map_err(|_| {
                value_error(format!("captured_ns['{key}'] must be a non-negative int"))
            })?;
            out.push((key, t));
        }
        let tick = out.iter().map(|(_, t)| *t).min();
        Ok((tick, out))
    }
}

#[pymethods]
impl Writer {
    /// Creates a dataset at `root` (which must not exist or be empty; `overwrite=True`
    /// replaces a LeRobot dataset there once every option and encoder has been checked).
    ///
    /// `features` is LeRobot's dict. `vcodec`: "auto" (the first AV1/HEVC/H.264 encoder that
    /// really opens here), a name (libsvtav1, libx264, h264_nvenc, ...) or av1/h264/hevc.
    /// `deferred`: "auto" | "always" | "never" (record live in x264 and convert to the final
    /// codec in the background). `max_frames_in_memory`: per camera, before frames spill to
    /// disk (never dropped). `durable`: fsync every commit. `inject_fault`: a testing aid, as
    /// `reel record --inject-fault` (`slow=MS` also makes the plan's encoder speed
    /// deterministic: see the `plan` property).
    #[staticmethod]
    #[pyo3(signature = (root, fps, features, *, robot_type=None, vcodec=None, crf=None, preset=None,
        gop=None, encoder_threads=None, deferred="auto".to_string(), max_frames_in_memory=60,
        durable=true, data_files_size_in_mb=None, video_files_size_in_mb=None,
        encoder_timeout_s=5.0, overwrite=false, inject_fault=None, depth_encoder=None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        root: PathBuf,
        fps: u32,
        features: &Bound<'_, PyAny>,
        robot_type: Option<String>,
        vcodec: Option<String>,
        crf: Option<f64>,
        preset: Option<String>,
        gop: Option<u32>,
        encoder_threads: Option<u32>,
        deferred: String,
        max_frames_in_memory: usize,
        durable: bool,
        data_files_size_in_mb: Option<f64>,
        video_files_size_in_mb: Option<f64>,
        encoder_timeout_s: f64,
        overwrite: bool,
        inject_fault: Option<String>,
        depth_encoder: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Writer> {
        let features = features::from_py(features)?;
        let depth = depth_encoder.map(depth_encoding).transpose()?;
        let o = Options {
            robot_type,
            vcodec,
            crf,
            preset,
            gop,
            encoder_threads,
            deferred,
            max_frames_in_memory,
            durable,
            data_files_size_in_mb,
            video_files_size_in_mb,
            encoder_timeout_s,
            inject_fault,
            depth,
        };
        let mode = if overwrite {
            OpenMode::Overwrite
        } else {
            OpenMode::Create
        };
        open(py, root, fps, features, o, mode)
    }

    /// Opens the dataset at `root` to add episodes (an unfinished save left by a crash is
    /// rolled back first). `fps`, `features` and `robot_type` are read from its info.json
    /// when not given (when given they must match it); `vcodec` defaults to the dataset's
    /// own codec. Other options as `create`.
    #[staticmethod]
    #[pyo3(signature = (root, *, fps=None, features=None, robot_type=None, vcodec=None, crf=None,
        preset=None, gop=None, encoder_threads=None, deferred="auto".to_string(),
        max_frames_in_memory=60, durable=true, data_files_size_in_mb=None,
        video_files_size_in_mb=None, encoder_timeout_s=5.0, inject_fault=None))]
    #[allow(clippy::too_many_arguments)]
    fn resume(
        py: Python<'_>,
        root: PathBuf,
        fps: Option<u32>,
        features: Option<&Bound<'_, PyAny>>,
        robot_type: Option<String>,
        vcodec: Option<String>,
        crf: Option<f64>,
        preset: Option<String>,
        gop: Option<u32>,
        encoder_threads: Option<u32>,
        deferred: String,
        max_frames_in_memory: usize,
        durable: bool,
        data_files_size_in_mb: Option<f64>,
        video_files_size_in_mb: Option<f64>,
        encoder_timeout_s: f64,
        inject_fault: Option<String>,
    ) -> PyResult<Writer> {
        let schema = read_schema(&root).map_err(to_py)?;
        let features = match features {
            Some(f) if !f.is_none() => features::from_py(f)?,
            _ => schema.features.clone(),
        };
        let o = Options {
            robot_type: robot_type.or(schema.robot_type.clone()),
            vcodec: Some(schema.vcodec_for_resume(vcodec.as_deref())),
            crf,
            preset,
            gop,
            encoder_threads,
            deferred,
            max_frames_in_memory,
            durable,
            data_files_size_in_mb,
            video_files_size_in_mb,
            encoder_timeout_s,
            inject_fault,
            // A resumed dataset's depth cameras keep the settings its files were made with.
            depth: None,
        };
        open(
            py,
            root,
            fps.unwrap_or(schema.fps),
            features,
            o,
            OpenMode::Resume,
        )
    }

    /// Adds one row: `frame` maps every feature to its value (numpy arrays, torch CPU
    /// tensors; images HWC or CHW, uint8 or float in [0, 1]; strings). The task is
    /// `frame["task"]` or `task=`. Images are copied, so the arrays may be reused at once
    /// (except frames straight from a reel camera, read-only views passed on without a copy);
    /// nothing waits for encoding or disk.
    ///
    /// `captured_ns`: when the tick's observation was captured (`time.monotonic_ns()`), an int
    /// for every camera or a dict per camera; it times the tick and the frames' age (the
    /// `reel/*` figures of the episode). Without it the call's own time is used.
    #[pyo3(signature = (frame, *, task=None, captured_ns=None))]
    fn add_frame(
        &self,
        py: Python<'_>,
        frame: &Bound<'_, PyAny>,
        task: Option<&Bound<'_, PyAny>>,
        captured_ns: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let call_ns = monotonic_ns();
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let d = frame.cast::<PyDict>().map_err(|_| {
            value_error(format!(
                "frame must be a dict of feature values, got {}",
                frame.get_type()
            ))
        })?;
        let task_obj = match task {
            Some(t) if !t.is_none() => Some(t.clone()),
            _ => d.get_item("task")?,
        };
        let task: String = match task_obj {
            None => {
                return Err(value_error(
                    "Feature mismatch in `frame` dictionary:\nMissing features: {'task'}\n(the task is a string: frame[\"task\"] or task=...)",
                ))
            }
            Some(t) => t
                .cast::<PyString>()
                .map_err(|_| {
                    value_error(format!("the task must be a string, got {} ({t})", t.get_type()))
                })?
                .to_string(),
        };
        let mut keys: Vec<String> = Vec::with_capacity(d.len());
        for k in d.keys() {
            let k: String = k.extract().map_err(|_| {
                value_error(format!("frame keys must be feature names (str), got {k}"))
            })?;
            if k != "task" {
                keys.push(k);
            }
        }
        self.features
            .check_keys(keys.iter().map(String::as_str))
            .map_err(to_py)?;
        let (tick_ns, mut captured) = self.captured(captured_ns)?;
        let mut st = lock(py, &self.state);
        let State {
            session,
            pools,
            seq,
            zero_copy,
            copied,
        } = &mut *st;
        let session = session.as_mut().ok_or_else(closed)?;
        *seq += 1;
        let mut row = RowValues::new(task);
        for key in keys {
            let Some(f) = self.features.get(&key) else {
                continue;
            };
            let Some(obj) = d.get_item(&key)? else {
                continue;
            };
            let v = match f.video_hw() {
                Some((h, w)) => {
                    let given = captured.iter().find(|(k, _)| *k == key).map(|(_, t)| *t);
                    if f.is_depth() {
                        let cam = self.video_keys.iter().position(|k| *k == key).unwrap_or(0);
                        let pool = pools.get_mut(cam).ok_or_else(|| {
                            reel_error(format!("no frame pool for camera '{key}'"))
                        })?;
                        let cap = given.unwrap_or(call_ns);
                        *copied += 1;
                        let frame = frames::depth_image(&key, h, w, &obj, pool, cap, *seq)?;
                        row.set(key, reel_core::Value::Video(frame));
                        continue;
                    }
                    if let Some(f) = frames::camera_frame(&obj, h, w) {
                        // A reel camera's frame: its own buffer and its real capture time.
                        if given.is_none() {
                            captured.push((key.clone(), f.captured_ns));
                        }
                        *zero_copy += 1;
                        row.set(key, reel_core::Value::Video(f));
                        continue;
                    }
                    let cam = self.video_keys.iter().position(|k| *k == key).unwrap_or(0);
                    let pool = pools
                        .get_mut(cam)
                        .ok_or_else(|| reel_error(format!("no frame pool for camera '{key}'")))?;
                    let cap = given.unwrap_or(call_ns);
                    *copied += 1;
                    reel_core::Value::Video(frames::image(&key, h, w, &obj, pool, cap, *seq)?)
                }
                None => frames::value(&key, f, &obj)?,
            };
            row.set(key, v);
        }
        let stamp = FrameStamp {
            call_ns,
            tick_ns,
            captured_ns: captured,
        };
        py.detach(|| session.add_frame(row, stamp)).map_err(to_py)?;
        Ok(())
    }

    /// How the camera images given to `add_frame` were taken: `zero_copy` (frames of reel
    /// cameras, handed to the encoder as they are) and `copied` (any other array, copied once
    /// into a pooled buffer), with the pools' allocations so far.
    fn frame_copies<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = lock(py, &self.state);
        let d = PyDict::new(py);
        d.set_item("zero_copy", st.zero_copy)?;
        d.set_item("copied", st.copied)?;
        d.set_item(
            "pool_allocations",
            st.pools.iter().map(FramePool::allocations).sum::<u64>(),
        )?;
        Ok(d)
    }

    /// Adds samples of side stream `stream` to the episode in progress: one sample (`t_ns` an
    /// int, `values` a number or 1-D array) or a block (`t_ns` a 1-D array of n times,
    /// `values` n rows). `t_ns` is each sample's capture time on the frames' clock
    /// (`reel.now_ns()`, `time.monotonic_ns()`), non-decreasing per stream. The stream's
    /// dtype (int16, int32, int64, float32, float64: numpy's, floats of a list are float64)
    /// and width are fixed by its first sample in the episode. Copies into the episode's
    /// buffer and returns; the samples are written with the episode
    /// (`meta/reel/streams/<stream>/`, read with `reel.streams.read`).
    fn add_sample(
        &self,
        py: Python<'_>,
        stream: &str,
        t_ns: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let np = py.import("numpy")?;
        let times: Vec<i64> = if t_ns.is_instance_of::<PyInt>() {
            vec![t_ns.extract().map_err(|_| {
                value_error(format!("stream '{stream}': t_ns must be an int64 (ns)"))
            })?]
        } else {
            let a = np.call_method1("asarray", (t_ns, "int64"))?;
            let a = np.call_method1("ravel", (a,))?;
            a.call_method0("tolist")?.extract().map_err(|_| {
                value_error(format!("stream '{stream}': t_ns must be int64 times (ns)"))
            })?
        };
        let arr = np.call_method1("ascontiguousarray", (values,))?;
        let arr = np.call_method1("ravel", (arr,))?;
        let dtype: String = arr.getattr("dtype")?.getattr("name")?.extract()?;
        let bad = |e: PyErr| value_error(format!("stream '{stream}': values: {e}"));
        let mut st = lock(py, &self.state);
        let session = st.session.as_mut().ok_or_else(closed)?;
        use reel_dataset::streams::SampleValues as V;
        let r = match dtype.as_str() {
            "int16" => {
                let a = arr.extract::<numpy::PyReadonlyArray1<i16>>().map_err(bad)?;
                session.add_samples(stream, &times, V::I16(a.as_slice().map_err(|e| bad(e.into()))?))
            }
            "int32" => {
                let a = arr.extract::<numpy::PyReadonlyArray1<i32>>().map_err(bad)?;
                session.add_samples(stream, &times, V::I32(a.as_slice().map_err(|e| bad(e.into()))?))
            }
            "int64" => {
                let a = arr.extract::<numpy::PyReadonlyArray1<i64>>().map_err(bad)?;
                session.add_samples(stream, &times, V::I64(a.as_slice().map_err(|e| bad(e.into()))?))
            }
            "float32" => {
                let a = arr.extract::<numpy::PyReadonlyArray1<f32>>().map_err(bad)?;
                session.add_samples(stream, &times, V::F32(a.as_slice().map_err(|e| bad(e.into()))?))
            }
            "float64" => {
                let a = arr.extract::<numpy::PyReadonlyArray1<f64>>().map_err(bad)?;
                session.add_samples(stream, &times, V::F64(a.as_slice().map_err(|e| bad(e.into()))?))
            }
            other => {
                return Err(value_error(format!(
                    "stream '{stream}': values of dtype {other} are not supported (int16, int32, int64, float32, float64)"
                )))
            }
        };
        r.map_err(to_py)
    }

    /// Ends the episode and queues its commit; returns at once with the episode's index.
    /// `ValueError` when the episode has no frame. The episode is on disk when
    /// `poll_saved`/`wait_saved` report it.
    fn save_episode(&self, py: Python<'_>) -> PyResult<u64> {
        self.with_session(py, |s| {
            py.detach(|| s.save_episode())
                .map(|(i, _)| i)
                .map_err(to_py)
        })
    }

    /// Drops the episode in progress (its frames and the tasks it introduced).
    fn discard_episode(&self, py: Python<'_>) -> PyResult<()> {
        self.with_session(py, |s| py.detach(|| s.discard_episode()).map_err(to_py))
    }

    /// Episodes committed since the last call (dicts), without waiting. Raises the error of a
    /// failed save.
    fn poll_saved<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let saved = self.with_session(py, |s| {
            s.writer()
                .wait_saved_timeout(Some(Duration::ZERO))
                .map_err(to_py)
        })?;
        saved_list(py, &saved)
    }

    /// Waits until every save queued before this call is committed (at most `timeout`
    /// seconds; None: no limit) and returns the episodes committed meanwhile. Other threads
    /// keep adding frames and saving while it waits (their later saves are not waited for).
    /// Raises the error of a failed save.
    #[pyo3(signature = (timeout=None))]
    fn wait_saved<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        if let Some(t) = timeout {
            if !(t.is_finite() && t >= 0.0) {
                return Err(value_error(format!(
                    "timeout {t} must be a number of seconds >= 0"
                )));
            }
        }
        let t0 = Instant::now();
        let mut all = Vec::new();
        // Episodes commit in order: the saves queued now are done once this many are committed.
        let target = self.with_session(py, |s| {
            Ok(s.writer().totals().0 + s.writer().backlog().pending_saves as u64)
        })?;
        loop {
            let (done, saved) = self.with_session(py, |s| {
                let saved = s
                    .writer()
                    .wait_saved_timeout(Some(Duration::ZERO))
                    .map_err(to_py)?;
                Ok((s.writer().totals().0 >= target, saved))
            })?;
            all.extend(saved);
            if done || timeout.is_some_and(|t| t0.elapsed().as_secs_f64() >= t) {
                break;
            }
            py.detach(|| std::thread::sleep(Duration::from_millis(10)));
            py.check_signals()?;
        }
        saved_list(py, &all)
    }

    /// Queues right now: frames not yet encoded and frames on disk per camera, saves not yet
    /// committed, the deferred conversion's backlog.
    fn backlog<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let b = self.with_session(py, |s| Ok(s.writer().backlog()))?;
        let d = PyDict::new(py);
        let per = |v: &[(String, u64)]| -> PyResult<Bound<'py, PyDict>> {
            let x = PyDict::new(py);
            for (k, n) in v {
                x.set_item(k, n)?;
            }
            Ok(x)
        };
        d.set_item("queued_frames", per(&b.queued)?)?;
        d.set_item("spilled_frames_now", per(&b.spilled_now)?)?;
        d.set_item("spilled_frames_total", b.spilled_total)?;
        d.set_item("pending_saves", b.pending_saves)?;
        d.set_item("deferred_episodes", b.deferred_episodes)?;
        d.set_item("deferred_frames", b.deferred_frames)?;
        Ok(d)
    }

    /// (episodes, frames) committed so far.
    fn totals(&self, py: Python<'_>) -> PyResult<(u64, u64)> {
        self.with_session(py, |s| Ok(s.writer().totals()))
    }

    /// The per-episode timing figures of the episode in progress (what `save_episode` stores
    /// as `reel/*` columns), and its one-line summary.
    fn timing<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.with_session(py, |s| Ok(s.summary()))?;
        let d = PyDict::new(py);
        for (k, v) in s.extras() {
            match v {
                reel_core::extra::ExtraValue::F64(x) => d.set_item(k, x)?,
                reel_core::extra::ExtraValue::I64(x) => d.set_item(k, x)?,
                reel_core::extra::ExtraValue::Str(x) => d.set_item(k, x)?,
            }
        }
        d.set_item("ticks", s.ticks)?;
        d.set_item("line", s.line())?;
        Ok(d)
    }

    /// Closes the commit gate: no episode starts committing until the returned gate is
    /// released (`with writer.commit_gate(): upload(...)`), so the files stay consistent
    /// while something reads them; frames and saves keep being accepted meanwhile.
    fn commit_gate(&self, py: Python<'_>) -> CommitGate {
        let gates = self.gates.clone();
        let gate = py.detach(move || gates.close());
        CommitGate {
            gate: Mutex::new(Some(gate)),
        }
    }

    /// Drops an unsaved episode, waits for the queued saves (and a deferred conversion),
    /// stops the encoders and tidies up. Returns what it did. Idempotent. Ctrl-C while it
    /// waits stops the wait promptly with every file valid.
    fn finalize<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let session = lock(py, &self.state).session.take();
        self.closed.store(true, Ordering::Release);
        let d = PyDict::new(py);
        let Some(session) = session else {
            d.set_item("saved", Vec::<Bound<'py, PyDict>>::new())?;
            d.set_item("already_finalized", true)?;
            return Ok(d);
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("reel-finalize".into())
            .spawn(move || {
                let _ = tx.send(session.finalize());
            })
            .map_err(|e| reel_error(format!("cannot start the finalize thread: {e}")))?;
        let mut interrupted: Option<PyErr> = None;
        let result = loop {
            match py.detach(|| rx.recv_timeout(Duration::from_millis(50))) {
                Ok(r) => break r,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if let Err(e) = py.check_signals() {
                        // Ctrl-C: stop waiting (the library ends the wait with valid files).
                        self.stop.request();
                        interrupted.get_or_insert(e);
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(reel_error("the finalize thread ended without a result"))
                }
            }
        };
        if let Some(e) = interrupted {
            if let Err(fe) = &result {
                tracing::warn!("finalize stopped: {fe}");
            }
            return Err(e);
        }
        let fin = result.map_err(to_py)?;
        d.set_item("saved", saved_list(py, &fin.saved)?)?;
        d.set_item("deferred_wait_s", fin.deferred_wait_s)?;
        d.set_item("converted_files", fin.converted_files)?;
        d.set_item("already_finalized", false)?;
        Ok(d)
    }

    /// True once `finalize` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Frames added to the episode in progress.
    #[getter]
    fn frames_in_episode(&self, py: Python<'_>) -> PyResult<u64> {
        self.with_session(py, |s| Ok(s.writer().frames_in_episode()))
    }

    /// The user features (LeRobot's dict shape; shapes as tuples).
    #[getter]
    fn features<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        features::to_py_dict(py, &self.features)
    }

    #[getter]
    fn fps(&self) -> u32 {
        self.fps
    }

    #[getter]
    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    #[getter]
    fn robot_type(&self) -> Option<String> {
        self.robot_type.clone()
    }

    /// The encoder plan's decisions, in words (which encoder, deferred or not, why).
    #[getter]
    fn encoder_plan(&self) -> Vec<String> {
        self.plan.decisions.clone()
    }

    /// The encoder plan: `live` (the encoder recording now), `final` (the dataset's codec),
    /// `deferred` (converted in the background), `decisions` and `summary` (the lines
    /// `reel record` prints for the same plan).
    #[getter]
    fn plan<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("live", &self.plan.live.vcodec)?;
        d.set_item("final", &self.plan.final_settings().vcodec)?;
        d.set_item("deferred", self.plan.is_deferred())?;
        d.set_item("decisions", self.plan.decisions.clone())?;
        d.set_item("summary", self.plan.summary())?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "reel.Writer(root={:?}, fps={})",
            self.root.display().to_string(),
            self.fps
        )
    }
}

/// A closed commit gate (`Writer.commit_gate`): a context manager; `release()` opens it.
#[pyclass(frozen, module = "reel._reel")]
pub struct CommitGate {
    gate: Mutex<Option<reel_engine::writer::CommitGate>>,
}

#[pymethods]
impl CommitGate {
    /// Opens the gate (idempotent): queued episodes commit again.
    fn release(&self) {
        let g = self.gate.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(g);
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.release();
        false
    }
}
