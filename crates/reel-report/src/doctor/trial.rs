//! One loop trial: a real recording session of one episode, exactly as `reel record` runs it
//! (`front::plan` → cameras → `front::open_planned` → `Session::run` over the cameras), into a scratch
//! dataset. Each trial runs on a thread of its own, so the priority it asks for never leaks
//! into the next trial. The doctor watches through the session's [`Observer`] hooks: every
//! tick's [`TickRecord`] (sections, frame ages, repeats, encoder queue depths), and the
//! cameras' delivered frames between the episode's start and end. Once the episode ended it
//! stops the writer as a second Ctrl-C would (queued frames are dropped, not waited for: the
//! backlog's growth was measured already).

use super::proc::{CpuUse, Sampler};
use super::{deferred_of, DoctorConfig};
use reel_capture::Camera;
use reel_core::tick::{TickRecord, SECTIONS};
use reel_core::{monotonic_ns, Result, StopToken};
use reel_engine::camera::QueueLimits;
use reel_engine::front;
use reel_engine::writer::{DatasetWriter, OpenMode, WriterConfig};
use reel_record::events::Events;
use reel_record::robot::{Robot, Teleop};
use reel_record::session::{features_for, FrameSource, Observer, Session, SessionConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a loop trial records with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrialMode {
    /// The chosen encoder, live (`--deferred never`).
    Live,
    /// Live libx264, converted to the chosen encoder afterwards (`--deferred always`).
    Deferred,
    /// Cameras read and timed, nothing encoded.
    EncodingOff,
}

impl TrialMode {
    pub fn label(self) -> &'static str {
        match self {
            TrialMode::Live => "live",
            TrialMode::Deferred => "deferred",
            TrialMode::EncodingOff => "encoding off",
        }
    }
}

/// One camera in a loop trial.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoopCamera {
    pub name: String,
    /// Frames per second the camera delivered during the episode.
    pub delivered_fps: f64,
    /// Ticks that reused the previous tick's frame.
    pub repeats: u64,
    pub age_p50_ms: f64,
    pub age_max_ms: f64,
    /// How fast the encoder's backlog grew (frames/s, least squares over the episode after
    /// its first quarter); 0 with encoding off.
    pub queue_growth_fps: f64,
    /// Backlog at the episode's end (frames).
    pub queue_end: u32,
    /// Frames per second the encoder kept up with: the rate minus the backlog's growth.
    pub encoder_fps: f64,
}

/// One loop trial's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoopTrial {
    /// e.g. "live libsvtav1 @ 30 Hz, SCHED_FIFO".
    pub name: String,
    pub mode: Option<TrialMode>,
    pub fps: u32,
    /// Real-time priority was asked for.
    pub realtime: bool,
    /// What the loop thread got.
    pub priority: String,
    /// The encoder the cameras recorded with ("" with encoding off).
    pub vcodec: String,
    /// The codec a deferred trial converts to.
    pub final_codec: Option<String>,
    pub seconds: f64,
    pub ticks: u64,
    pub missed: u64,
    pub rate_hz: f64,
    pub work_p50_ms: f64,
    pub work_p99_ms: f64,
    pub work_max_ms: f64,
    pub late_p99_ms: f64,
    /// (section, p99 ms)
    pub sections_p99_ms: Vec<(String, f64)>,
    pub cameras: Vec<LoopCamera>,
    /// The rate each camera was opened at (its spec), by name.
    pub camera_fps: Vec<(String, u32)>,
    pub cpu: CpuUse,
    pub error: Option<String>,
}

/// Backlog growth (frames/s) below which an encoder counts as keeping up.
pub fn growth_tolerance(fps: u32) -> f64 {
    (0.03 * fps as f64).max(0.5)
}

/// Delivered share of the loop rate a camera needs to count as delivering.
pub const DELIVERY_TOLERANCE: f64 = 0.97;

impl LoopTrial {
    /// Every camera's encoder keeps up (trivially with encoding off): its backlog does not
    /// grow, or stays within a few frames (what is in flight).
    pub fn encoders_keep_up(&self) -> bool {
        self.error.is_none() && self.cameras.iter().all(|c| !self.falls_behind(c))
    }

    /// This camera's encoder falls behind: its backlog grows and holds more than a quarter
    /// second of frames at the end.
    pub fn falls_behind(&self, c: &LoopCamera) -> bool {
        c.queue_growth_fps > growth_tolerance(self.fps)
            && c.queue_end as f64 > (self.fps as f64 / 4.0).max(8.0)
    }

    /// Every camera delivers at least the loop rate.
    pub fn cameras_deliver(&self) -> bool {
        self.cameras
            .iter()
            .all(|c| c.delivered_fps >= self.fps as f64 * DELIVERY_TOLERANCE)
    }

    /// 0 missed deadlines, every camera delivering, every encoder keeping up.
    pub fn stable(&self) -> bool {
        self.error.is_none()
            && self.ticks > 1
            && self.missed == 0
            && self.cameras_deliver()
            && self.encoders_keep_up()
    }

    /// What kept it from being stable, in words.
    pub fn problems(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(e) = &self.error {
            v.push(format!("failed: {e}"));
            return v;
        }
        if self.missed > 0 {
            v.push(format!("{} missed deadlines", self.missed));
        }
        for c in &self.cameras {
            if c.delivered_fps < self.fps as f64 * DELIVERY_TOLERANCE {
                v.push(format!("{} delivers {:.1} fps", c.name, c.delivered_fps));
            }
            if self.falls_behind(c) {
                v.push(format!(
                    "{} backlog +{:.1} frames/s",
                    c.name, c.queue_growth_fps
                ));
            }
        }
        v
    }

    /// Backlog growth over all cameras (frames/s).
    pub fn total_growth(&self) -> f64 {
        self.cameras
            .iter()
            .map(|c| c.queue_growth_fps.max(0.0))
            .sum()
    }

    /// One line for progress output.
    pub fn line(&self) -> String {
        if let Some(e) = &self.error {
            return format!("{}: failed: {e}", self.name);
        }
        let p = self.problems();
        format!(
            "{}: {} ticks at {:.2} Hz, {} missed, tick p99 {:.2} ms, start lateness p99 {:.2} ms; {}",
            self.name,
            self.ticks,
            self.rate_hz,
            self.missed,
            self.work_p99_ms,
            self.late_p99_ms,
            if p.is_empty() {
                "stable".to_string()
            } else {
                p.join(", ")
            }
        )
    }
}

/// Watches the trial's session from the loop thread (never waits: pushes into a buffer
/// reserved beforehand, reads the cameras' counters at the episode's start and end).
struct Watcher {
    ticks: Vec<TickRecord>,
    cams: Vec<Arc<Camera>>,
    start: Option<(u64, Vec<u64>)>,
    end: Option<(u64, Vec<u64>)>,
    ended: Arc<AtomicBool>,
    priority: String,
}

fn frames(cams: &[Arc<Camera>]) -> Vec<u64> {
    cams.iter().map(|c| c.stats().frames).collect()
}

fn loop_priority() -> String {
    // SAFETY: querying the calling thread's own scheduling policy and nice value.
    unsafe {
        let policy = libc::sched_getscheduler(0);
        if policy == libc::SCHED_FIFO || policy == libc::SCHED_RR {
            let mut p = libc::sched_param { sched_priority: 0 };
            libc::sched_getparam(0, &mut p);
            format!("SCHED_FIFO {}", p.sched_priority)
        } else {
            format!("nice {}", libc::getpriority(libc::PRIO_PROCESS, 0))
        }
    }
}

impl Observer for Watcher {
    fn phase(&mut self, what: &str) {
        if what.starts_with("Recording episode") {
            self.priority = loop_priority();
            self.start = Some((monotonic_ns(), frames(&self.cams)));
        } else if what == "Episode ended" {
            self.end = Some((monotonic_ns(), frames(&self.cams)));
            self.ended.store(true, Ordering::SeqCst);
        }
    }
    fn tick(&mut self, tick: &TickRecord, recording: bool) {
        if recording && self.ticks.len() < self.ticks.capacity() {
            self.ticks.push(*tick);
        }
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Least-squares slope of y over x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Figures of a trial from its ticks.
fn figures(t: &mut LoopTrial, w: &Watcher, names: &[String]) {
    let ticks = &w.ticks;
    t.ticks = ticks.len() as u64;
    t.missed = ticks.iter().filter(|x| x.missed).count() as u64;
    if let (Some(a), Some(b)) = (ticks.first(), ticks.last()) {
        let span = b.start_ns.saturating_sub(a.start_ns) as f64 / 1e9;
        t.seconds = span;
        if span > 0.0 {
            t.rate_hz = (ticks.len() - 1) as f64 / span;
        }
    }
    let mut work: Vec<f64> = ticks.iter().map(|x| ms(x.work_ns())).collect();
    work.sort_by(f64::total_cmp);
    t.work_p50_ms = quantile(&work, 0.5);
    t.work_p99_ms = quantile(&work, 0.99);
    t.work_max_ms = work.last().copied().unwrap_or(0.0);
    let mut late: Vec<f64> = ticks.iter().map(|x| ms(x.late_ns())).collect();
    late.sort_by(f64::total_cmp);
    t.late_p99_ms = quantile(&late, 0.99);
    t.sections_p99_ms = SECTIONS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v: Vec<f64> = ticks.iter().map(|x| ms(x.sections_ns[i] as u64)).collect();
            v.sort_by(f64::total_cmp);
            (s.to_string(), quantile(&v, 0.99))
        })
        .collect();
    let t0 = ticks.first().map(|x| x.start_ns).unwrap_or(0);
    let skip = ticks.len() / 4;
    for (c, name) in names.iter().enumerate() {
        let mut lc = LoopCamera {
            name: name.clone(),
            ..Default::default()
        };
        if c < reel_core::tick::MAX_TICK_CAMERAS {
            let mut ages: Vec<f64> = ticks
                .iter()
                .map(|x| x.cameras[c].age_us as f64 / 1e3)
                .collect();
            ages.sort_by(f64::total_cmp);
            lc.age_p50_ms = quantile(&ages, 0.5);
            lc.age_max_ms = ages.last().copied().unwrap_or(0.0);
            lc.repeats = ticks.iter().filter(|x| x.cameras[c].repeated).count() as u64;
            let pts: Vec<(f64, f64)> = ticks[skip..]
                .iter()
                .map(|x| {
                    (
                        x.start_ns.saturating_sub(t0) as f64 / 1e9,
                        x.cameras[c].queued as f64,
                    )
                })
                .collect();
            if t.mode != Some(TrialMode::EncodingOff) {
                lc.queue_growth_fps = slope(&pts);
                lc.queue_end = ticks.last().map(|x| x.cameras[c].queued).unwrap_or(0);
                lc.encoder_fps = (t.fps as f64 - lc.queue_growth_fps.max(0.0)).max(0.0);
            }
        }
        if let (Some((s0, f0)), Some((s1, f1))) = (&w.start, &w.end) {
            let secs = s1.saturating_sub(*s0) as f64 / 1e9;
            if secs > 0.0 {
                lc.delivered_fps = f1[c].saturating_sub(f0[c]) as f64 / secs;
            }
        }
        t.cameras.push(lc);
    }
}

/// Waits (at most `limit`) until no thread of this process has one of these names.
fn wait_for_quiet(names: &[&str], limit: Duration) {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < limit {
        let busy = std::fs::read_dir("/proc/self/task")
            .map(|rd| {
                rd.flatten().any(|e| {
                    std::fs::read_to_string(e.path().join("comm"))
                        .map(|c| names.contains(&c.trim()))
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false);
        if !busy {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs one loop trial into `dir` (removed by the caller).
#[allow(clippy::too_many_arguments)]
pub fn run(
    cfg: &DoctorConfig,
    rate: u32,
    mode: TrialMode,
    realtime: bool,
    dir: &Path,
    robot: &mut dyn Robot,
    teleop: &mut dyn Teleop,
    progress: &mut dyn FnMut(&str),
) -> LoopTrial {
    let mut t = LoopTrial {
        mode: Some(mode),
        fps: rate,
        realtime,
        ..Default::default()
    };
    let specs = cfg.specs_at(rate);
    t.camera_fps = specs.iter().map(|s| (s.name.clone(), s.fps)).collect();
    let label = |t: &LoopTrial| {
        format!(
            "{}{} @ {rate} Hz{}",
            mode.label(),
            if t.vcodec.is_empty() {
                String::new()
            } else {
                format!(" {}", t.vcodec)
            },
            if realtime {
                ""
            } else {
                ", no real-time priority"
            }
        )
    };
    match run_inner(
        cfg, rate, mode, realtime, dir, robot, teleop, &mut t, progress, &label,
    ) {
        Ok(()) => {}
        Err(e) => t.error = Some(e.to_string()),
    }
    t.name = label(&t);
    t
}

#[allow(clippy::too_many_arguments)]
fn run_inner(
    cfg: &DoctorConfig,
    rate: u32,
    mode: TrialMode,
    realtime: bool,
    dir: &Path,
    robot: &mut dyn Robot,
    teleop: &mut dyn Teleop,
    t: &mut LoopTrial,
    progress: &mut dyn FnMut(&str),
    label: &dyn Fn(&LoopTrial) -> String,
) -> Result<()> {
    let specs = cfg.specs_at(rate);
    let dims: Vec<(String, u32, u32)> = specs
        .iter()
        .map(|s| (s.name.clone(), s.width, s.height))
        .collect();
    let wstop = StopToken::new();
    // The request is planned (options checked, the probe's choice) before any camera opens,
    // and confirmed under the cameras' load by the library's one builder, as `reel record` does.
    let (joint_dims, planned) = if mode == TrialMode::EncodingOff {
        (Vec::new(), None)
    } else {
        let (w, h) = specs
            .iter()
            .map(|s| (s.width, s.height))
            .max_by_key(|(w, h)| w * h)
            .unwrap_or((64, 64));
        let mut req = cfg.encoder.clone();
        req.width = w;
        req.height = h;
        req.cameras = specs.len() as u32;
        req.fps = rate;
        req.deferred = deferred_of(mode);
        let plan = front::plan(&req)?;
        t.vcodec = plan.live.vcodec.clone();
        t.final_codec = plan.final_codec.as_ref().map(|f| f.vcodec.clone());
        (dims, Some((req, plan)))
    };
    let mut wcfg = WriterConfig::new(dir, rate, features_for(robot.joint_names(), &joint_dims)?);
    progress(&format!("loop: {} ({:.0} s)", label(t), cfg.trial_s));
    let mut cams = Vec::new();
    for s in &specs {
        cams.push(Arc::new(Camera::open(s, Duration::from_secs(5))?));
    }
    wcfg.robot_type = Some(robot.name().to_string());
    wcfg.durable = false;
    wcfg.queue = QueueLimits {
        max_frames_in_memory: cfg.max_queue_frames,
        ..QueueLimits::default()
    };
    wcfg.stop = wstop.clone();
    let writer = match planned {
        Some((req, planned)) => {
            let (writer, plan) = front::open_planned(wcfg, &req, planned, OpenMode::Create)?;
            t.vcodec = plan.live.vcodec.clone();
            t.final_codec = plan.final_codec.as_ref().map(|f| f.vcodec.clone());
            writer
        }
        // Encoding off: no camera is recorded, so there is no encoder to plan.
        None => DatasetWriter::open(wcfg, OpenMode::Create)?,
    };
    let scfg = SessionConfig {
        fps: rate,
        num_episodes: 1,
        episode_time_s: cfg.trial_s,
        reset_time_s: 0.0,
        task: cfg.task.clone(),
        interactive: false,
        realtime,
        flat_out: false,
        // A trial measures a struggling camera; it never ends the trial early.
        camera_watch: reel_record::watch::CameraWatchConfig {
            on_loss: reel_record::watch::OnCameraLoss::Continue,
            ..Default::default()
        },
    };
    scfg.validate()?;
    let ended = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let mut watcher = Watcher {
        ticks: Vec::with_capacity((cfg.trial_s * rate as f64).ceil() as usize + 8),
        cams: cams.clone(),
        start: None,
        end: None,
        ended: ended.clone(),
        priority: String::new(),
    };
    let sources: Vec<Arc<dyn FrameSource>> = cams
        .iter()
        .map(|c| c.clone() as Arc<dyn FrameSource>)
        .collect();
    let sampler = Sampler::start();
    let outcome = std::thread::scope(|sc| {
        // Once the episode ended, stop the writer's wait for the backlog (a stop request
        // counts only after `finalize` began, so repeat it until the session returns).
        let helper = {
            let (ended, done, wstop) = (ended.clone(), done.clone(), wstop.clone());
            sc.spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    if ended.load(Ordering::SeqCst) {
                        wstop.request();
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let session = sc.spawn(|| {
            let s = Session {
                robot,
                teleop,
                cameras: sources,
                writer,
                cfg: scfg,
                events: Events::with_stop(cfg.stop.clone()),
                streams: None,
            };
            let r = s.run(&mut watcher);
            (r, watcher)
        });
        let r = session.join();
        done.store(true, Ordering::SeqCst);
        let _ = helper.join();
        r
    });
    let (result, watcher) = outcome.map_err(|_| reel_core::Error::ThreadDied {
        what: "the doctor's trial session".into(),
        msg: "it panicked".into(),
    })?;
    let (from, to) = (
        watcher.start.as_ref().map(|s| s.0).unwrap_or(0),
        watcher.end.as_ref().map(|s| s.0).unwrap_or(u64::MAX),
    );
    t.cpu = sampler.finish(from, to);
    // An aborted encoder finishes the frames it holds on its own thread: let it, so that the
    // next trial does not share the CPU with this one's leftovers.
    wait_for_quiet(
        &["encoder-worker", "reel-deferred"],
        Duration::from_secs(20),
    );
    t.priority = watcher.priority.clone();
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    figures(t, &watcher, &names);
    match result {
        Ok(_) => Ok(()),
        // The doctor's own stop request (the backlog is not waited for) is expected.
        Err(e) if e.is_interrupted() && !cfg.stop.requested() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_growing_backlog() {
        let pts: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64 / 30.0, i as f64 * 0.5))
            .collect();
        assert!((slope(&pts) - 15.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 1.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 5.0)]), 0.0);
    }

    #[test]
    fn stability_needs_every_condition() {
        let mut t = LoopTrial {
            fps: 30,
            ticks: 60,
            cameras: vec![LoopCamera {
                name: "front".into(),
                delivered_fps: 30.0,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(t.stable(), "{:?}", t.problems());
        t.cameras[0].delivered_fps = 20.0;
        assert!(!t.stable());
        assert!(t.problems()[0].contains("front delivers 20.0 fps"));
        t.cameras[0].delivered_fps = 30.0;
        t.cameras[0].queue_growth_fps = 10.0;
        t.cameras[0].queue_end = 3;
        assert!(
            t.encoders_keep_up(),
            "a few frames in flight are not a backlog"
        );
        t.cameras[0].queue_end = 20;
        assert!(!t.encoders_keep_up() && !t.stable());
        t.cameras[0].queue_growth_fps = 0.0;
        t.missed = 1;
        assert!(!t.stable());
    }
}
