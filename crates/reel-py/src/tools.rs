//! `reel.check(...)` and `reel.reencode(...)`: the dataset tools of `reel check` and
//! `reel reencode` (crates/reel) as Python functions, for pipeline engines (reel.datatrove)
//! that call the module instead of spawning the CLI. Options are translated into the same
//! `CheckOptions` / `ReencodeOptions` the CLI builds; the work runs with the GIL released.

use crate::errors::{reel_error, to_py, value_error};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use reel_media::EncoderSettings;
use reel_reencode::{CommitMode, NoProgress, ReencodeOptions};
use std::path::PathBuf;
use std::time::Duration;

/// Validates a dataset as `reel check` does (optionally repairing what a crash left, or
/// decoding every frame). Returns `{"dataset", "ok", "episodes", "frames", "problems",
/// "repaired", "verified"}` — the fields of `reel check --json`. A dataset with problems is
/// not an exception (`ok` is False); an unreadable one raises.
#[pyfunction]
#[pyo3(signature = (dataset, repair=false, decode=false))]
pub(crate) fn check<'py>(
    py: Python<'py>,
    dataset: PathBuf,
    repair: bool,
    decode: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let root = dataset.clone();
    let r = py
        .detach(move || {
            reel_media::init();
            reel_engine::check::check(&root, reel_engine::check::CheckOptions { repair, decode })
        })
        .map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("dataset", dataset.display().to_string())?;
    d.set_item("ok", r.ok())?;
    d.set_item("episodes", r.episodes)?;
    d.set_item("frames", r.frames)?;
    d.set_item("problems", r.problems)?;
    d.set_item("repaired", r.repaired)?;
    d.set_item("verified", r.verified)?;
    Ok(d)
}

fn settings_for(
    vcodec: &str,
    crf: Option<f64>,
    preset: Option<&str>,
    gop: Option<u32>,
) -> PyResult<EncoderSettings> {
    Ok(EncoderSettings::lerobot_default()
        .with_codec(vcodec)
        .with_overrides(crf, preset, gop)
        .map_err(to_py)?
        .resolved())
}

/// What `reencode` is asked to do, gathered from its keyword arguments.
struct Request {
    vcodec: String,
    crf: Option<f64>,
    preset: Option<String>,
    gop: Option<u32>,
    fallback: Vec<String>,
    timeout_s: f64,
    shard: Option<(usize, usize)>,
    commit: bool,
    no_swap: bool,
}

fn options(q: Request) -> PyResult<ReencodeOptions> {
    let settings = settings_for(&q.vcodec, q.crf, q.preset.as_deref(), q.gop)?;
    let mut fallback = Vec::new();
    for name in q
        .fallback
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        // As the CLI: a fallback of another codec keeps crf/g but not a codec-specific preset.
        let mut s = settings_for(name, q.crf, q.preset.as_deref(), q.gop)?;
        if name != q.vcodec {
            s.preset = None;
            s = s.resolved();
        }
        fallback.push(s);
    }
    if !q.timeout_s.is_finite() || q.timeout_s <= 0.0 {
        return Err(value_error(
            "timeout_s must be a positive number of seconds",
        ));
    }
    if let Some((i, n)) = q.shard {
        if n == 0 || i >= n {
            return Err(value_error(format!(
                "shard ({i}, {n}): need 0 <= index < count"
            )));
        }
    }
    if q.commit && q.no_swap {
        return Err(value_error("commit and no_swap exclude each other"));
    }
    let mut o = ReencodeOptions::new(settings);
    o.fallback = fallback;
    o.task_timeout = Duration::from_secs_f64(q.timeout_s);
    o.shard = q.shard;
    o.commit = if q.commit {
        CommitMode::CommitOnly
    } else if q.no_swap {
        CommitMode::Defer
    } else {
        CommitMode::Auto
    };
    Ok(o)
}

/// Re-encodes a dataset's videos in place as `reel reencode` does (worker pool, timeouts
/// with fallback encoders, resumable, atomic swap; `shard=(i, n)` for one of n machines, then
/// `commit=True` once). Returns `{"files", "resumed", "skipped", "failed", "frames_encoded",
/// "encode_seconds", "swapped", "warnings", "fallbacks"}`. Raises `reel.ReelError` when a file
/// could not be re-encoded (finished files are kept: a rerun retries only the rest).
#[pyfunction]
#[pyo3(signature = (dataset, vcodec="libsvtav1", crf=None, preset=None, gop=None,
    fallback=vec!["libsvtav1".to_string()], episodes=None, cameras=None, jobs=0,
    timeout_s=120.0, shard=None, commit=false, no_swap=false, force=false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn reencode<'py>(
    py: Python<'py>,
    dataset: PathBuf,
    vcodec: &str,
    crf: Option<f64>,
    preset: Option<String>,
    gop: Option<u32>,
    fallback: Vec<String>,
    episodes: Option<Vec<u64>>,
    cameras: Option<Vec<String>>,
    jobs: usize,
    timeout_s: f64,
    shard: Option<(usize, usize)>,
    commit: bool,
    no_swap: bool,
    force: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let mut opts = options(Request {
        vcodec: vcodec.to_string(),
        crf,
        preset,
        gop,
        fallback,
        timeout_s,
        shard,
        commit,
        no_swap,
    })?;
    if episodes.as_ref().is_some_and(|e| e.is_empty()) {
        return Err(value_error("episodes=[] selects no episode"));
    }
    opts.episodes = episodes;
    opts.cameras = cameras;
    opts.jobs = jobs;
    opts.force = force;
    let root = dataset.clone();
    let r = py
        .detach(move || {
            reel_media::init();
            reel_reencode::reencode(&root, &opts, &NoProgress)
        })
        .map_err(to_py)?;
    if !r.failed.is_empty() {
        let list: Vec<String> = r.failed.iter().map(|(p, w)| format!("{p}: {w}")).collect();
        return Err(reel_error(format!(
            "re-encode {}: {} file(s) could not be re-encoded (rerun to retry; finished files are kept): {}",
            dataset.display(),
            r.failed.len(),
            list.join("; ")
        )));
    }
    let d = PyDict::new(py);
    d.set_item("files", r.files.len())?;
    d.set_item("resumed", r.files.iter().filter(|f| f.resumed).count())?;
    d.set_item("skipped", r.skipped.len())?;
    d.set_item("failed", r.failed.len())?;
    d.set_item("frames_encoded", r.frames_encoded)?;
    d.set_item("encode_seconds", r.encode_seconds)?;
    d.set_item("swapped", r.swapped)?;
    d.set_item("warnings", r.warnings.clone())?;
    let fell: Vec<(String, String)> = r
        .fell_back()
        .iter()
        .map(|f| (f.path.clone(), f.encoder.clone()))
        .collect();
    d.set_item("fallbacks", fell)?;
    Ok(d)
}

/// Who is writing the dataset now (the text of its writer lock: "COMMAND (pid P on HOST,
/// since TIME)"), or None. Reads the kernel's lock table: it never takes the lock itself, so
/// it cannot make a writer's attempt fail.
#[pyfunction]
pub(crate) fn lock_holder(py: Python<'_>, dataset: PathBuf) -> Option<String> {
    py.detach(move || reel_dataset::lock::holder(&dataset))
}
