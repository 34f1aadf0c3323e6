//! The recording session: a fixed-rate loop through episodes and resets.
//!
//! ```text
//!  for each episode:  record phase (episode_time_s)  →  save (queued, non-blocking)  →  reset phase (reset_time_s)
//!  every tick:        observe robot + latest camera frames │ teleop action │ send │ writer.add_frame
//! ```
//! The loop thread only ever sleeps until its next slot; encoding, disk writes and commits
//! happen on other threads (see `reel-dataset`). Keys and signals end phases early.

use crate::events::{self, Events};
use crate::pacing::{raise_priority, sleep_until};
use crate::robot::{Robot, Teleop};
use crate::timing::{Summary, TickRecord, TickTimer};
use crate::watch::{CameraWatch, CameraWatchConfig, Verdict};
use reel_core::{monotonic_ns, Error, Feature, Features, Result, RowValues, SharedFrame, Value};
use reel_engine::writer::{DatasetWriter, EpisodeSaved};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Anything that delivers the latest camera frame without waiting.
pub trait FrameSource: Send + Sync {
    fn name(&self) -> &str;
    fn latest(&self) -> Option<SharedFrame>;
    /// The source's terminal error, if it stopped.
    fn error(&self) -> Option<String>;
    /// The session no longer needs frames (its control loop ended): stop producing them, so
    /// that finishing the dataset gets the CPU. Frames already handed out stay valid.
    fn stop(&self) {}
}

impl FrameSource for reel_capture::Camera {
    fn name(&self) -> &str {
        reel_capture::Camera::name(self)
    }
    fn latest(&self) -> Option<SharedFrame> {
        reel_capture::Camera::latest(self)
    }
    fn error(&self) -> Option<String> {
        reel_capture::Camera::error(self)
    }
    fn stop(&self) {
        reel_capture::Camera::request_stop(self)
    }
}

/// The dataset key of a camera called `name`.
pub fn camera_key(name: &str) -> String {
    format!("observation.images.{name}")
}

/// The features LeRobot's recorder would declare for this robot and these cameras
/// (`action`, `observation.state`, then one video per camera).
pub fn features_for(joint_names: &[String], cameras: &[(String, u32, u32)]) -> Result<Features> {
    let cams: Vec<(String, u32, u32, bool)> = cameras
        .iter()
        .map(|(n, w, h)| (n.clone(), *w, *h, false))
        .collect();
    features_with_depth(joint_names, &cams)
}

/// [`features_for`] with depth cameras: `(name, width, height, depth)`, a depth camera
/// declared as LeRobot declares one (`[height, width, 1]`, `is_depth_map`).
pub fn features_with_depth(
    joint_names: &[String],
    cameras: &[(String, u32, u32, bool)],
) -> Result<Features> {
    let names: Vec<&str> = joint_names.iter().map(String::as_str).collect();
    let mut f = Features::new();
    f.push("action", Feature::vector_f32(&names))?;
    f.push("observation.state", Feature::vector_f32(&names))?;
    for (name, w, h, depth) in cameras {
        let feature = if *depth {
            Feature::depth(*h, *w)
        } else {
            Feature::video(*h, *w)
        };
        f.push(camera_key(name), feature)?;
    }
    Ok(f)
}

/// How the session runs.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub fps: u32,
    pub num_episodes: u32,
    pub episode_time_s: f64,
    pub reset_time_s: f64,
    pub task: String,
    /// Read keys from the terminal.
    pub interactive: bool,
    /// Ask for SCHED_FIFO (falls back to nice).
    pub realtime: bool,
    /// Skip pacing: run ticks back to back (benchmarks).
    pub flat_out: bool,
    /// Camera disconnect detection (deadline, end the episode or go on flagged).
    pub camera_watch: CameraWatchConfig,
}

/// Longest episode or reset reel accepts (seconds): a day.
pub const MAX_PHASE_S: f64 = 86_400.0;

impl SessionConfig {
    /// Every option in range, before anything is opened; errors name the option.
    pub fn validate(&self) -> Result<()> {
        if self.fps == 0 || self.fps > reel_engine::plan::MAX_FPS {
            return Err(Error::invalid(format!(
                "fps {} is out of range: it must be between 1 and {}",
                self.fps,
                reel_engine::plan::MAX_FPS
            )));
        }
        let e = self.episode_time_s;
        if !(e.is_finite() && e > 0.0 && e <= MAX_PHASE_S) {
            return Err(Error::invalid(format!(
                "episode time {e} s is out of range: it must be a positive number of seconds up to {MAX_PHASE_S}"
            )));
        }
        if (e * self.fps as f64).round() < 2.0 {
            return Err(Error::invalid(format!(
                "episode time {e} s holds fewer than 2 frames at {} Hz (LeRobot needs at least 2 per episode)",
                self.fps
            )));
        }
        let r = self.reset_time_s;
        if !(r.is_finite() && (0.0..=MAX_PHASE_S).contains(&r)) {
            return Err(Error::invalid(format!(
                "reset time {r} s is out of range: it must be between 0 and {MAX_PHASE_S} seconds"
            )));
        }
        if self.num_episodes == 0 {
            return Err(Error::invalid("the number of episodes must be at least 1"));
        }
        if self.task.trim().is_empty() {
            return Err(Error::invalid(
                "the task (--single-task) is empty: LeRobot stores a task with every frame",
            ));
        }
        Ok(())
    }
}

/// Episodes in a row that may end with fewer than 2 frames (discarded) before the session
/// gives up: the loop cannot deliver frames, and recording again would never end.
const MAX_SHORT_EPISODES_IN_A_ROW: u32 = 3;

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PhaseEnd {
    Elapsed,
    Next,
    Rerecord,
    Stop,
    Interrupted,
    /// A camera stopped delivering (see [`crate::watch`]).
    CameraLost,
}

/// What the session did.
#[derive(Debug, Default)]
pub struct SessionReport {
    pub episodes: Vec<(u64, Summary)>,
    pub saved: Vec<EpisodeSaved>,
    pub discarded: u32,
    pub interrupted: bool,
    pub priority: String,
    /// Seconds `finalize` waited for queued episodes (encoder backlog).
    pub finalize_wait_s: f64,
    /// Of which: seconds waiting for the deferred conversion to the final codec.
    pub deferred_wait_s: f64,
    /// How long each `save_episode` call kept the loop thread (milliseconds).
    pub save_call_ms: Vec<f64>,
    /// Seconds from the last `save_episode` call to a complete dataset (every episode
    /// committed and, with a deferred final codec, converted and swapped in).
    pub last_save_to_complete_s: f64,
    /// A stop request ended the conversion to the final codec early.
    pub conversion_stopped: bool,
    /// Cameras left in the live codec (conversion stopped or failed).
    pub live_codec_cameras: Vec<String>,
    /// Episodes converted per camera: (camera, by its final lane, by transcoding).
    pub final_routes: Vec<(String, u64, u64)>,
    /// Side streams: samples stored, between episodes, late (see [`crate::samples`]).
    pub streams: Vec<crate::samples::StreamCounts>,
}

/// Hooks the session calls (demo-video announcements, progress lines, the live page, the
/// doctor). They run on the loop thread: an implementation must return at once (publish into
/// a slot or a bounded channel with `try_send`, never wait).
pub trait Observer {
    /// A phase starts or ends ("Recording episode 3", "Resetting", "Episode ended", ...).
    fn phase(&mut self, _what: &str) {}
    /// A tick ended (`recording`: its frame was added to the dataset). The record carries the
    /// section times, each camera's frame age and repeat, and each encoder's queue depth.
    fn tick(&mut self, _tick: &TickRecord, _recording: bool) {}
    /// An episode was committed to the dataset.
    fn saved(&mut self, _saved: &EpisodeSaved) {}
}

/// A no-op observer.
pub struct Quiet;
impl Observer for Quiet {}

/// A recording session over a robot, a teleop, cameras and a dataset writer.
pub struct Session<'a> {
    pub robot: &'a mut dyn Robot,
    pub teleop: &'a mut dyn Teleop,
    pub cameras: Vec<Arc<dyn FrameSource>>,
    pub writer: DatasetWriter,
    pub cfg: SessionConfig,
    pub events: Arc<Events>,
    /// Side streams (the bus thread's servo reads, audio), cut into episodes by time and
    /// handed to the writer every tick; `None` without.
    pub streams: Option<crate::samples::StreamCutter>,
}

impl<'a> Session<'a> {
    /// Runs every episode, then finalizes the writer (waiting for the encoder backlog).
    pub fn run(mut self, observer: &mut dyn Observer) -> Result<SessionReport> {
        let mut report = SessionReport {
            priority: raise_priority(self.cfg.realtime),
            ..Default::default()
        };
        tracing::info!("control loop at {} Hz, {}", self.cfg.fps, report.priority);
        let _keys = self
            .cfg
            .interactive
            .then(|| events::KeyListener::start(self.events.clone()));
        let names: Vec<String> = self.cameras.iter().map(|c| c.name().to_string()).collect();
        let mut watch = CameraWatch::new(self.cfg.camera_watch, &names);
        let t0 = monotonic_ns();
        let mut recorded = 0u32;
        let mut short_in_a_row = 0u32;
        let mut outcome: Result<()> = Ok(());
        let mut last_save = std::time::Instant::now();
        while recorded < self.cfg.num_episodes {
            let (ep_total, _) = self.writer.totals();
            let index = ep_total + self.writer.backlog().pending_saves as u64;
            observer.phase(&format!("Recording episode {index}"));
            tracing::info!("recording episode {index} ({} s)", self.cfg.episode_time_s);
            if let Some(why) = watch.unusable() {
                tracing::warn!(
                    "not recording episode {index}: {why}; every saved episode is complete"
                );
                break;
            }
            let _ = self.robot.take_episode_extras();
            let _ = self.teleop.take_episode_extras();
            watch.begin_episode();
            let mut timer = TickTimer::new(self.cfg.fps, &names);
            self.writer
                .reserve_ticks((self.cfg.episode_time_s * self.cfg.fps as f64).ceil() as usize + 1);
            if let Some(s) = &mut self.streams {
                s.begin_episode(monotonic_ns() as i64);
            }
            let end = match self.phase(
                true,
                self.cfg.episode_time_s,
                t0,
                &mut timer,
                &mut watch,
                observer,
            ) {
                Ok(e) => e,
                Err(e) => {
                    self.discard_streams();
                    let _ = self.writer.discard_episode();
                    outcome = Err(e);
                    break;
                }
            };
            let summary = timer.summary();
            match end {
                PhaseEnd::Interrupted => {
                    let n = self.writer.frames_in_episode();
                    self.discard_streams();
                    self.writer.discard_episode()?;
                    tracing::warn!("interrupted: discarded the unfinished episode {index} ({n} frames); saved episodes are safe");
                    report.interrupted = true;
                    report.discarded += 1;
                    break;
                }
                PhaseEnd::Rerecord => {
                    self.discard_streams();
                    self.writer.discard_episode()?;
                    report.discarded += 1;
                    self.events.rerecord.store(false, Ordering::SeqCst);
                    tracing::info!("episode {index} discarded, recording it again after the reset");
                    observer.phase("Re-record episode");
                }
                _ => {
                    if self.writer.frames_in_episode() >= 2 {
                        let t = std::time::Instant::now();
                        last_save = t;
                        let mut extras = summary.extras();
                        extras.extend(self.robot.take_episode_extras());
                        extras.extend(self.teleop.take_episode_extras());
                        extras.extend(watch.extras());
                        if let Some(s) = &mut self.streams {
                            for (name, n) in
                                s.end_episode(&mut self.writer, monotonic_ns() as i64)?
                            {
                                extras.push((
                                    format!("stream/{name}/samples"),
                                    reel_core::extra::ExtraValue::I64(n),
                                ));
                            }
                        }
                        self.writer.save_episode(extras)?;
                        report.save_call_ms.push(t.elapsed().as_secs_f64() * 1e3);
                        tracing::info!("episode {index}: {}", summary.line());
                        report.episodes.push((index, summary));
                        recorded += 1;
                        short_in_a_row = 0;
                    } else {
                        self.discard_streams();
                        self.writer.discard_episode()?;
                        tracing::warn!("episode {index} has fewer than 2 frames: discarded");
                        if end == PhaseEnd::Elapsed {
                            short_in_a_row += 1;
                            if short_in_a_row >= MAX_SHORT_EPISODES_IN_A_ROW {
                                outcome = Err(Error::invalid(format!(
                                    "{short_in_a_row} episodes in a row ended with fewer than 2 frames: the loop cannot deliver frames at {} Hz; stopping",
                                    self.cfg.fps
                                )));
                                break;
                            }
                        }
                    }
                    observer.phase("Episode ended");
                }
            }
            self.report_saved(&mut report, observer);
            if end == PhaseEnd::Stop || self.events.stop.load(Ordering::SeqCst) {
                break;
            }
            if let Some(why) = watch.unusable().filter(|_| end == PhaseEnd::CameraLost) {
                tracing::warn!("stopping: {why}; every saved episode is complete");
                break;
            }
            if recorded < self.cfg.num_episodes || end == PhaseEnd::Rerecord {
                observer.phase("Resetting");
                tracing::info!("reset ({} s)", self.cfg.reset_time_s);
                let mut reset_timer = TickTimer::new(self.cfg.fps, &names);
                match self.phase(
                    false,
                    self.cfg.reset_time_s,
                    t0,
                    &mut reset_timer,
                    &mut watch,
                    observer,
                ) {
                    Ok(PhaseEnd::Interrupted) => {
                        report.interrupted = true;
                        break;
                    }
                    Ok(PhaseEnd::Stop) => break,
                    Ok(PhaseEnd::CameraLost) => {
                        let why = watch.unusable().unwrap_or_default();
                        tracing::warn!(
                            "stopping during the reset: {why}; every saved episode is complete"
                        );
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
                self.report_saved(&mut report, observer);
            }
        }
        // The control loop is over: the cameras' frames are no longer needed, and their
        // capture threads would compete with finishing the dataset.
        for cam in &self.cameras {
            cam.stop();
        }
        let backlog = self.writer.backlog();
        if backlog.pending_saves > 0 {
            tracing::info!(
                "waiting for {} episode(s) still being encoded ({:?} frames queued)",
                backlog.pending_saves,
                backlog.queued
            );
        }
        let w0 = std::time::Instant::now();
        if backlog.deferred_episodes > 0 {
            tracing::info!(
                "finishing the conversion to the final codec: {} episode(s), {} frame(s) left",
                backlog.deferred_episodes,
                backlog.deferred_frames
            );
        }
        if let Some(s) = &self.streams {
            report.streams = s.counts().to_vec();
            for c in s.counts() {
                tracing::info!(
                    "stream '{}': {} sample(s) stored, {} between episodes, {} late",
                    c.name,
                    c.stored,
                    c.between_episodes,
                    c.late
                );
            }
        }
        let fin = self.writer.finalize_report();
        report.finalize_wait_s = w0.elapsed().as_secs_f64();
        report.last_save_to_complete_s = last_save.elapsed().as_secs_f64();
        match fin {
            Ok(fin) => {
                report.deferred_wait_s = fin.deferred_wait_s;
                report.conversion_stopped = fin.conversion_stopped;
                report.live_codec_cameras = fin.live_codec_cameras.clone();
                report.final_routes = fin.final_routes.clone();
                let saved = fin.saved;
                for s in &saved {
                    log_saved(s);
                    observer.saved(s);
                }
                report.saved.extend(saved);
            }
            Err(e) => outcome = outcome.and(Err(e)),
        }
        outcome.map(|_| report)
    }

    fn discard_streams(&mut self) {
        if let Some(s) = &mut self.streams {
            s.discard_episode();
        }
    }

    fn report_saved(&mut self, report: &mut SessionReport, observer: &mut dyn Observer) {
        for s in self.writer.poll_saved() {
            log_saved(&s);
            observer.saved(&s);
            report.saved.push(s);
        }
    }

    /// One phase: ticks at the fixed rate for `seconds` (or until an event).
    ///
    /// Cameras whose key is not a video feature of the dataset are read and timed but not
    /// recorded (`reel doctor` measures the loop with encoding off that way).
    fn phase(
        &mut self,
        record: bool,
        seconds: f64,
        t0: u64,
        timer: &mut TickTimer,
        watch: &mut CameraWatch,
        observer: &mut dyn Observer,
    ) -> Result<PhaseEnd> {
        let stored: Vec<Option<String>> = self
            .cameras
            .iter()
            .map(|c| {
                let key = camera_key(c.name());
                self.writer.features().get(&key).map(|_| key)
            })
            .collect();
        let period = 1_000_000_000 / self.cfg.fps as u64;
        let ticks = (seconds * self.cfg.fps as f64).round() as u64;
        let mut anchor = monotonic_ns();
        let mut k: u64 = 0;
        let mut done: u64 = 0;
        let mut last_backlog_log = anchor;
        while done < ticks {
            if self.events.interrupted() {
                return Ok(PhaseEnd::Interrupted);
            }
            if self.events.take_exit_early() {
                return Ok(if self.events.rerecord.load(Ordering::SeqCst) {
                    PhaseEnd::Rerecord
                } else if self.events.stop.load(Ordering::SeqCst) {
                    PhaseEnd::Stop
                } else {
                    PhaseEnd::Next
                });
            }
            let scheduled = anchor + k * period;
            if !self.cfg.flat_out {
                sleep_until(scheduled);
            }
            let mut tick = timer.begin(if self.cfg.flat_out {
                monotonic_ns()
            } else {
                scheduled
            });
            let state = self.robot.observe()?;
            let mut frames = Vec::with_capacity(self.cameras.len());
            let mut lost = false;
            for (i, cam) in self.cameras.iter().enumerate() {
                match cam.latest() {
                    Some(f) => {
                        timer.camera_frame(i, f.captured_ns, f.seq);
                        lost |= watch.check(i, &f, cam.error()) == Verdict::End;
                        frames.push(f);
                    }
                    None => {
                        let why = cam.error().unwrap_or_else(|| "no frame yet".into());
                        return Err(Error::Source {
                            name: cam.name().to_string(),
                            msg: format!("camera stopped delivering frames: {why}"),
                        });
                    }
                }
            }
            if lost {
                return Ok(PhaseEnd::CameraLost);
            }
            tick.mark();
            let t = (monotonic_ns() - t0) as f64 / 1e9;
            let action = self.teleop.action(t, &state)?;
            tick.mark();
            self.robot.send_action(&action)?;
            tick.mark();
            if record {
                let mut row = RowValues::new(self.cfg.task.clone());
                row.set("action", Value::F32(action));
                row.set("observation.state", Value::F32(state));
                for (key, f) in stored.iter().zip(frames) {
                    if let Some(key) = key {
                        row.set(key.clone(), Value::Video(f));
                    }
                }
                self.writer.add_frame(row)?;
            }
            // The side streams' samples that arrived (in the write section of the tick).
            if let Some(s) = &mut self.streams {
                s.drain(&mut self.writer, monotonic_ns() as i64)?;
            }
            tick.mark();
            let mut rec = timer.end(tick).record;
            self.writer.fill_queue_depths(&mut rec);
            if record {
                self.writer.add_tick(rec);
            }
            observer.tick(&rec, record);
            done += 1;
            k += 1;
            let now = monotonic_ns();
            if !self.cfg.flat_out && now > anchor + k * period + period {
                // More than a whole slot behind: re-anchor instead of bursting to catch up.
                anchor = now;
                k = 0;
            }
            if !record && now - last_backlog_log > 2_000_000_000 {
                last_backlog_log = now;
                let b = self.writer.backlog();
                if b.pending_saves > 0
                    || b.queued.iter().any(|(_, q)| *q > 0)
                    || b.deferred_episodes > 0
                {
                    tracing::info!(
                        "encoder backlog: {} episode(s) to commit, queued frames {:?}, on disk {:?}; deferred conversion: {} episode(s), {} frame(s)",
                        b.pending_saves,
                        b.queued,
                        b.spilled_now,
                        b.deferred_episodes,
                        b.deferred_frames
                    );
                }
            }
        }
        Ok(PhaseEnd::Elapsed)
    }
}

fn log_saved(s: &EpisodeSaved) {
    tracing::info!("{}", s.line());
}
