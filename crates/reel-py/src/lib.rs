//! `reel._reel`: reel's dataset writer as a Python extension module (PyO3, abi3, Python ≥ 3.10).
//!
//! This crate only translates: Python objects into the library's types (`features.rs`,
//! `frames.rs`), options into the same `EncoderRequest` / `WriterConfig` the CLI builds
//! (`writer.rs`), library errors into Python exceptions (`errors.rs`). Every decision (which
//! encoder, deferral, queue limits, validation, timing figures) is the library's. The Python
//! half of the package (`python/reel/`) holds LeRobot's drop-in dataset, the plugin that puts
//! it into `lerobot-record`, `lerobot-rollout` and `lerobot-eval`, and the test robot.
//!
//! Threads: every method may be called from any Python thread. A `Writer` is a frozen class
//! holding a `Mutex`; the mutex is taken with the GIL released while waiting, and anything
//! longer than a few microseconds (frame copies, hand-over to the pipelines, waiting for
//! commits, finalize) runs with the GIL released.

mod camera;
mod demo;
mod errors;
mod features;
mod frames;
mod tools;
mod writer;

use pyo3::prelude::*;

/// Nanoseconds on reel's clock (CLOCK_MONOTONIC; the clock of Python's `time.monotonic_ns()`
/// on Linux). Capture times given to `Writer.add_frame` are on this clock.
#[pyfunction]
fn now_ns() -> u64 {
    reel_core::monotonic_ns()
}

/// Every encoder candidate of `vcodec auto` at this size: compiled in, opened or rejected (why),
/// frames per second (as `reel encoders` prints). Cached per machine.
#[pyfunction]
#[pyo3(signature = (width=640, height=480, fps=30))]
fn encoders(py: Python<'_>, width: u32, height: u32, fps: u32) -> PyResult<Vec<(String, String)>> {
    let list = py.detach(|| {
        reel_media::init();
        let req =
            reel_media::encoders::ProbeRequest::new(width, height, fps, &["av1", "hevc", "h264"]);
        let cache = reel_media::encoders::default_cache_path();
        reel_media::encoders::probe(&req, std::time::Duration::from_secs(2), Some(&cache))
    });
    Ok(list
        .into_iter()
        .map(|c| {
            let v = match c.verdict {
                reel_media::encoders::Verdict::Works { fps } => {
                    format!("works ({fps:.0} frames/s)")
                }
                reel_media::encoders::Verdict::Rejected(r) => format!("rejected: {r}"),
                reel_media::encoders::Verdict::NotCompiled => "not compiled in".to_string(),
            };
            (c.name, v)
        })
        .collect())
}

/// Makes the calling thread the control loop, as `reel record` does for its own loop:
/// SCHED_FIFO priority 10 when `realtime` (falling back to nice -10, then to the default
/// priority). Returns what it got. Call it from the thread that runs the loop.
#[pyfunction]
#[pyo3(signature = (realtime=true))]
fn raise_loop_priority(realtime: bool) -> String {
    reel_record::pacing::raise_priority(realtime)
}

/// Merges the v3.0 datasets `sources` into `output` (created, or extended with `append`),
/// as `reel merge` does; returns its `--json` summary as a dict. Refusals and failures raise
/// `reel.ReelError` with the message.
#[pyfunction]
#[pyo3(signature = (sources, output, append=false))]
fn merge(
    py: Python<'_>,
    sources: Vec<std::path::PathBuf>,
    output: std::path::PathBuf,
    append: bool,
) -> PyResult<Py<PyAny>> {
    let r = py.detach(|| {
        reel_engine::merge::merge(
            &sources,
            &output,
            &reel_engine::merge::MergeOptions { append },
            &mut |_| {},
        )
    });
    let summary = r.map_err(|e| errors::reel_error(e.to_string()))?;
    let text = summary.to_json().to_string();
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// reel's log lines (encoder plan, saved episodes, slow ticks) go to stderr; `REEL_LOG` sets
/// the level (default info), as for the CLI.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A host that already installed a subscriber keeps it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

#[pymodule]
fn _reel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    m.add("ReelError", m.py().get_type::<errors::ReelError>())?;
    m.add_class::<writer::Writer>()?;
    m.add_class::<writer::CommitGate>()?;
    m.add_class::<demo::DemoRecorder>()?;
    m.add_class::<camera::Camera>()?;
    m.add_class::<camera::CapturedFrame>()?;
    m.add_class::<camera::ObserveClock>()?;
    m.add_function(wrap_pyfunction!(now_ns, m)?)?;
    m.add_function(wrap_pyfunction!(encoders, m)?)?;
    m.add_function(wrap_pyfunction!(raise_loop_priority, m)?)?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(tools::check, m)?)?;
    m.add_function(wrap_pyfunction!(tools::reencode, m)?)?;
    m.add_function(wrap_pyfunction!(tools::lock_holder, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
