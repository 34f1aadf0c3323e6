//! `reel doctor`: the lag investigation, run for you on the real setup.
//!
//! Short trials (each [`DoctorConfig::trial_s`] long):
//! 1. **capture only** ([`capture`]): every camera alone, then all together — delivered fps,
//!    frame-interval jitter, read latency, the format negotiated with the input; for V4L2
//!    devices MJPG and YUYV each, where the device offers both;
//! 2. **the full loop** ([`trial`]) at the requested rate: the chosen encoder live, the
//!    deferred path, encoding off; the best of those with the other real-time setting;
//! 3. **lower rates** (25, 20, 15, 10 Hz, and the slowest camera's own rate) until one holds.
//!
//! Every loop trial is a real recording session — the same `front::plan`,
//! `front::open_planned`, `Session::run` and cameras `reel record` uses — into a scratch
//! dataset that is deleted afterwards, while a sampler reads per-thread CPU and per-core load
//! from /proc. [`verdict`] then ranks the causes with their evidence, names the highest rate
//! that held (0 missed deadlines, every camera delivering, every encoder keeping up) and the
//! settings `reel record` should use.

pub mod capture;
pub mod proc;
pub mod trial;
pub mod verdict;

use reel_capture::CameraSpec;
use reel_core::{Error, Result, StopToken};
use reel_engine::plan::{DeferredMode, EncoderRequest};
use reel_record::robot::{Robot, Teleop};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use capture::{CaptureResult, CaptureTrial};
pub use trial::{LoopCamera, LoopTrial, TrialMode};
pub use verdict::{Finding, Recommendation};

/// What to examine.
#[derive(Debug, Clone)]
pub struct DoctorConfig {
    /// The cameras, as `reel record` would open them at the requested rate.
    pub cameras: Vec<CameraSpec>,
    /// Synthetic cameras (no `--camera` given) follow the loop rate, as in `reel record`.
    pub synthetic: bool,
    /// The requested control-loop rate.
    pub fps: u32,
    /// The encoder request as `reel record` would make it (codec, quality, deferral, ...);
    /// size, camera count and rate are set per trial.
    pub encoder: EncoderRequest,
    /// Seconds per trial (default 10).
    pub trial_s: f64,
    /// Ask for real-time priority (as `reel record` does unless `--no-realtime`).
    pub realtime: bool,
    /// Lower rates to try, highest first (default 25, 20, 15, 10 below the requested one).
    pub rates: Vec<u32>,
    /// Frames per camera kept in memory before spilling (as `--max-queue-frames`).
    pub max_queue_frames: usize,
    /// Scratch directory for the trial datasets (default: a new temporary directory).
    pub workdir: Option<PathBuf>,
    /// Stop requests (Ctrl-C): the trial in progress ends and the doctor reports what it has.
    pub stop: StopToken,
    /// Task text of the trial episodes.
    pub task: String,
}

impl DoctorConfig {
    pub fn new(cameras: Vec<CameraSpec>, fps: u32, encoder: EncoderRequest) -> DoctorConfig {
        DoctorConfig {
            cameras,
            synthetic: false,
            fps,
            encoder,
            trial_s: 10.0,
            realtime: true,
            rates: vec![25, 20, 15, 10],
            max_queue_frames: 60,
            workdir: None,
            stop: StopToken::new(),
            task: "reel doctor trial".into(),
        }
    }

    /// Checks the options; errors name the option.
    pub fn validate(&self) -> Result<()> {
        if !(self.trial_s.is_finite() && self.trial_s >= 0.5 && self.trial_s <= 600.0) {
            return Err(Error::invalid(format!(
                "trial length {} s is out of range: it must be between 0.5 and 600 seconds",
                self.trial_s
            )));
        }
        if self.fps == 0 || self.fps > reel_engine::plan::MAX_FPS {
            return Err(Error::invalid(format!(
                "fps {} is out of range: it must be between 1 and {}",
                self.fps,
                reel_engine::plan::MAX_FPS
            )));
        }
        if (self.trial_s * self.fps as f64).round() < 2.0 {
            return Err(Error::invalid(format!(
                "a {} s trial at {} Hz holds fewer than 2 ticks",
                self.trial_s, self.fps
            )));
        }
        for s in &self.cameras {
            s.validate()?;
        }
        self.encoder.validate()
    }

    /// The cameras as opened for a loop at `rate` Hz.
    pub fn specs_at(&self, rate: u32) -> Vec<CameraSpec> {
        if !self.synthetic {
            return self.cameras.clone();
        }
        self.cameras
            .iter()
            .enumerate()
            .map(|(i, s)| CameraSpec::synthetic(&s.name, i, s.width, s.height, rate))
            .collect()
    }
}

/// Everything the doctor measured and concluded (`reel doctor --json` prints it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DoctorReport {
    /// The requested rate.
    pub fps: u32,
    /// The cameras (name = input).
    pub cameras: Vec<String>,
    pub trial_s: f64,
    /// The final codec the plan chose (what `--vcodec` resolved to).
    pub vcodec: String,
    pub capture: Vec<CaptureTrial>,
    pub loops: Vec<LoopTrial>,
    /// Causes, most important first.
    pub findings: Vec<Finding>,
    /// The highest rate that held, with the settings that held it.
    pub recommendation: Option<Recommendation>,
    /// One sentence.
    pub headline: String,
    /// The `reel record` command that follows (filled in by the front end, which knows its
    /// own option names), as one shell line and as its words.
    pub command: String,
    pub command_args: Vec<String>,
    /// Set when the run was stopped before it finished.
    pub interrupted: bool,
}

/// Runs every trial and the verdict. `progress` receives one line per step.
pub fn run(
    cfg: &DoctorConfig,
    robot: &mut dyn Robot,
    teleop: &mut dyn Teleop,
    progress: &mut dyn FnMut(&str),
) -> Result<DoctorReport> {
    cfg.validate()?;
    reel_media::init();
    let scratch;
    let workdir = match &cfg.workdir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| Error::io("create", d, e))?;
            d.clone()
        }
        None => {
            scratch = tempfile::Builder::new()
                .prefix("reel-doctor-")
                .tempdir()
                .map_err(|e| Error::io("create", std::env::temp_dir(), e))?;
            scratch.path().to_path_buf()
        }
    };
    let mut rep = DoctorReport {
        fps: cfg.fps,
        cameras: cfg
            .cameras
            .iter()
            .map(|c| format!("{}={}", c.name, c.input))
            .collect(),
        trial_s: cfg.trial_s,
        ..Default::default()
    };
    // 1. capture only
    rep.capture = capture::run_all(cfg, progress);
    if cfg.stop.requested() {
        rep.interrupted = true;
        verdict::conclude(cfg, &mut rep);
        return Ok(rep);
    }
    // 2. the loop at the requested rate
    let mut n = 0usize;
    let mut run_trial = |rep: &mut DoctorReport,
                         rate: u32,
                         mode: TrialMode,
                         realtime: bool,
                         progress: &mut dyn FnMut(&str)|
     -> Option<usize> {
        if cfg.stop.requested() {
            rep.interrupted = true;
            return None;
        }
        n += 1;
        let dir = workdir.join(format!("trial-{n}"));
        let t = trial::run(cfg, rate, mode, realtime, &dir, robot, teleop, progress);
        let _ = std::fs::remove_dir_all(&dir);
        progress(&format!("  → {}", t.line()));
        rep.loops.push(t);
        Some(rep.loops.len() - 1)
    };
    let live = run_trial(&mut rep, cfg.fps, TrialMode::Live, cfg.realtime, progress);
    if let Some(i) = live {
        rep.vcodec = rep.loops[i].vcodec.clone();
    }
    let deferred_useful = live.is_none_or(|i| rep.loops[i].vcodec != "libx264");
    let deferred = if deferred_useful {
        run_trial(
            &mut rep,
            cfg.fps,
            TrialMode::Deferred,
            cfg.realtime,
            progress,
        )
    } else {
        progress("  (no deferred trial: the final codec is already the live one, libx264)");
        None
    };
    run_trial(
        &mut rep,
        cfg.fps,
        TrialMode::EncodingOff,
        cfg.realtime,
        progress,
    );
    // The better of live/deferred, with the other real-time setting.
    let best_mode = match (live, deferred) {
        (Some(l), _) if rep.loops[l].encoders_keep_up() => TrialMode::Live,
        (_, Some(d)) if rep.loops[d].encoders_keep_up() => TrialMode::Deferred,
        _ => TrialMode::Live,
    };
    run_trial(&mut rep, cfg.fps, best_mode, !cfg.realtime, progress);
    // 3. lower rates until one holds
    if verdict::best_stable(&rep, cfg.realtime).is_none() {
        for rate in verdict::lower_rates(cfg, &rep) {
            for mode in verdict::modes_worth_trying(cfg, &rep, rate, deferred_useful) {
                if run_trial(&mut rep, rate, mode, cfg.realtime, progress).is_none() {
                    break;
                }
                if verdict::best_stable(&rep, cfg.realtime).is_some() {
                    break;
                }
            }
            if rep.interrupted || verdict::best_stable(&rep, cfg.realtime).is_some() {
                break;
            }
        }
    }
    verdict::conclude(cfg, &mut rep);
    Ok(rep)
}

/// The `--deferred` value of a trial mode.
pub fn deferred_of(mode: TrialMode) -> DeferredMode {
    match mode {
        TrialMode::Deferred => DeferredMode::Always,
        _ => DeferredMode::Never,
    }
}
