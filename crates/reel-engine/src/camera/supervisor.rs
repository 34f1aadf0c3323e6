//! The encoder supervisor of one camera: feeds each episode's frames to an encoder
//! [`worker`](super::worker), computes the image statistics, keeps every frame the encoder has
//! not yet written as a complete fragment, and runs the watchdog. A worker that fails or stays
//! silent too long is abandoned: what it completed is salvaged (`reel_media::salvage`), the
//! retained frames go to the next encoder of the chain, and the episode's segment becomes the
//! parts in order (one stream, one frame per row).

use super::worker::{spawn_worker, FromWorker, ToWorker, Worker};
use super::SegmentResult;
use reel_core::{Error, Result, SharedFrame};
use reel_media::EncoderSettings;
use reel_stats::ImageStats;
use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long an encoder may stay silent before the supervisor replaces it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Watchdog {
    /// Opening the encoder (the first frame's open).
    pub open: Duration,
    /// No frame accepted while frames are waiting for it.
    pub stall: Duration,
    /// Flushing at the end of an episode.
    pub flush: Duration,
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog {
            open: Duration::from_secs(5),
            stall: Duration::from_secs(5),
            flush: Duration::from_secs(20),
        }
    }
}

/// One episode of one camera, as the supervisor sees it.
pub(crate) struct Episode {
    pub(crate) frames: u64,
    stats: ImageStats,
    /// Frames given to the current worker and not yet confirmed on disk, with their index.
    ring: VecDeque<(u64, SharedFrame)>,
    /// Finished or salvaged pieces of the segment, in order, and how many frames they hold.
    parts: Vec<PathBuf>,
    part_frames: u64,
    pub(crate) worker: Option<Worker>,
    switches: Vec<String>,
    pub(crate) error: Option<Error>,
    encode_started: Instant,
}

impl Episode {
    /// True when the current worker holds as many unaccepted frames as it may.
    pub(crate) fn worker_busy(&self) -> bool {
        self.worker
            .as_ref()
            .is_some_and(|w| w.sent >= w.pushed + super::worker::IN_FLIGHT)
    }

    /// Counts a frame that could not be read back, failing the episode with `e`.
    pub(crate) fn lost_frame(&mut self, e: Error) {
        self.frames += 1;
        self.error.get_or_insert(e);
    }
}

/// The supervisor of one camera's encoders (lives as long as the pipeline).
pub(crate) struct Supervisor<'a> {
    pub(crate) key: &'a str,
    pub(crate) dir: &'a Path,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) fps: u32,
    /// The primary encoder followed by its fallbacks.
    pub(crate) chain: Vec<EncoderSettings>,
    /// The encoder of the chain in use (a switch is permanent for the session).
    pub(crate) current: usize,
    pub(crate) watchdog: Watchdog,
    /// Numbers the segment files.
    pub(crate) counter: u64,
    /// A depth camera's quantiser (see [`super::PipelineConfig::depth`]).
    pub(crate) depth: Option<std::sync::Arc<reel_media::depth::DepthTable>>,
}

impl Supervisor<'_> {
    fn next_path(&mut self) -> PathBuf {
        self.counter += 1;
        let p = self.dir.join(format!("seg-{}.mp4", self.counter));
        let _ = fs::remove_file(&p);
        let _ = fs::remove_file(reel_media::partial_path(&p));
        p
    }

    fn start_worker(&mut self, ep: &mut Episode) {
        let path = self.next_path();
        let mut w = spawn_worker(
            path,
            self.width,
            self.height,
            self.fps,
            self.chain[self.current].clone(),
            ep.part_frames,
            self.depth.clone(),
        );
        for (_, f) in &ep.ring {
            let _ = w.tx.send(ToWorker::Frame(f.clone()));
            w.sent += 1;
        }
        ep.worker = Some(w);
    }

    pub(crate) fn new_episode(&mut self) -> Episode {
        Episode {
            frames: 0,
            stats: if self.depth.is_some() {
                ImageStats::new_depth()
            } else {
                ImageStats::new()
            },
            ring: VecDeque::new(),
            parts: Vec::new(),
            part_frames: 0,
            worker: None,
            switches: Vec::new(),
            error: None,
            encode_started: Instant::now(),
        }
    }

    pub(crate) fn add_frame(&mut self, ep: &mut Episode, f: SharedFrame) {
        let pushed = if self.depth.is_some() {
            ep.stats.push_depth(f.width, f.height, &f.data)
        } else {
            ep.stats.push_rgb(f.width, f.height, &f.data)
        };
        if let Err(e) = pushed {
            ep.error
                .get_or_insert(Error::encoder(self.key, format!("image statistics: {e}")));
        }
        let idx = ep.frames;
        ep.frames += 1;
        if ep.error.is_some() {
            return;
        }
        if ep.worker.is_none() {
            self.start_worker(ep);
        }
        ep.ring.push_back((idx, f.clone()));
        if let Some(w) = ep.worker.as_mut() {
            let _ = w.tx.send(ToWorker::Frame(f));
            w.sent += 1;
        }
    }

    /// Handles worker messages and the watchdog; returns a finished segment when the worker
    /// delivered one.
    pub(crate) fn poll(
        &mut self,
        ep: &mut Episode,
        wait: Duration,
    ) -> Option<reel_media::EncodedSegment> {
        let w = ep.worker.as_mut()?;
        let msg = w.rx.recv_timeout(wait);
        let mut failure: Option<String> = None;
        let mut finished = None;
        match msg {
            Ok(FromWorker::Opened(c)) => {
                w.confirmed = Some(c);
                w.last_progress = Instant::now();
            }
            Ok(FromWorker::Pushed(n)) => {
                w.pushed = n;
                w.last_progress = Instant::now();
            }
            Ok(FromWorker::Failed(e)) => {
                if e.is_disk_full() {
                    // Another encoder would hit the same full disk: fail the episode with the cause.
                    ep.error
                        .get_or_insert(e.context(format!("camera {}", self.key)));
                    return None;
                }
                failure = Some(format!("error at {e}"))
            }
            Ok(FromWorker::Finished(Ok(seg))) => finished = Some(seg),
            Ok(FromWorker::Finished(Err(e))) => {
                if e.is_disk_full() {
                    ep.error
                        .get_or_insert(e.context(format!("camera {}: flush", self.key)));
                    return None;
                }
                failure = Some(format!("flush failed: {e}"))
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                failure = Some("the encoder thread died".into())
            }
        }
        if let Some(c) = &w.confirmed {
            let confirmed_abs = w.base + c.load(Ordering::SeqCst);
            while ep.ring.front().is_some_and(|(i, _)| *i < confirmed_abs) {
                ep.ring.pop_front();
            }
        }
        if failure.is_none() && finished.is_none() {
            let silent = w.last_progress.elapsed();
            if w.confirmed.is_none() && silent > self.watchdog.open {
                failure = Some(format!(
                    "did not open within {:.1} s",
                    self.watchdog.open.as_secs_f64()
                ));
            } else if w
                .finishing
                .is_some_and(|t| t.elapsed() > self.watchdog.flush)
            {
                failure = Some(format!(
                    "did not flush within {:.1} s",
                    self.watchdog.flush.as_secs_f64()
                ));
            } else if w.finishing.is_none() && w.sent > w.pushed && silent > self.watchdog.stall {
                failure = Some(format!(
                    "accepted no frame for {:.1} s",
                    silent.as_secs_f64()
                ));
            }
        }
        if let Some(seg) = finished {
            let w = ep.worker.take()?;
            if seg.frames != w.sent {
                ep.error.get_or_insert(Error::encoder(
                    self.key,
                    format!(
                        "{}: {} frames sent, {} in its segment",
                        w.name, w.sent, seg.frames
                    ),
                ));
                return None;
            }
            return Some(seg);
        }
        if let Some(reason) = failure {
            self.replace(ep, &reason);
        }
        None
    }

    /// Abandons the current worker, keeps what it wrote completely, and hands every frame it
    /// had not confirmed to the next encoder of the chain.
    fn replace(&mut self, ep: &mut Episode, reason: &str) {
        let Some(w) = ep.worker.take() else { return };
        let failed_at = w.base + w.pushed;
        drop(w.tx); // a hung thread is abandoned; it can no longer be given frames
        let salvaged_path = self.next_path();
        let kept = match reel_media::salvage(&reel_media::partial_path(&w.path), &salvaged_path) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(
                    "{}: nothing salvaged from {}: {e}",
                    self.key,
                    w.path.display()
                );
                0
            }
        };
        let kept_to = w.base + kept;
        if ep.ring.front().is_some_and(|(i, _)| *i > kept_to) {
            ep.error.get_or_insert(Error::encoder(
                self.key,
                format!(
                    "{} failed ({reason}) and frames {kept_to}..{} are neither on disk nor retained",
                    w.name,
                    ep.ring.front().map(|(i, _)| *i).unwrap_or(0)
                ),
            ));
            return;
        }
        if kept > 0 {
            ep.parts.push(salvaged_path);
            ep.part_frames += kept;
        }
        while ep.ring.front().is_some_and(|(i, _)| *i < kept_to) {
            ep.ring.pop_front();
        }
        if self.current + 1 >= self.chain.len() {
            ep.error.get_or_insert(Error::encoder(
                self.key,
                format!(
                    "{} failed ({reason}) and no fallback encoder is left",
                    w.name
                ),
            ));
            return;
        }
        self.current += 1;
        let next = self.chain[self.current].vcodec.clone();
        let note = format!(
            "{} {reason} at frame {failed_at}; kept {kept} encoded frames, re-sent {} to {next}",
            w.name,
            ep.ring.len()
        );
        tracing::warn!("camera {}: encoder switch: {note}", self.key);
        ep.switches.push(note);
        self.start_worker(ep);
    }

    /// Flushes the episode (replacing encoders as needed) and joins its parts into one segment.
    pub(crate) fn finish(
        &mut self,
        mut ep: Episode,
        seq: u64,
        spilled: u64,
        max_depth: u64,
    ) -> Result<SegmentResult> {
        if ep.frames == 0 {
            return Err(Error::encoder(
                self.key,
                format!("episode {seq} has no frames"),
            ));
        }
        loop {
            if let Some(e) = ep.error.take() {
                self.abandon(&mut ep);
                return Err(e);
            }
            let Some(w) = ep.worker.as_mut() else { break };
            if w.finishing.is_none() && w.pushed == w.sent {
                let _ = w.tx.send(ToWorker::Finish);
                w.finishing = Some(Instant::now());
            }
            if let Some(seg) = self.poll(&mut ep, Duration::from_millis(50)) {
                ep.part_frames += seg.frames;
                ep.parts.push(seg.path);
                ep.ring.clear();
                break;
            }
        }
        if let Some(e) = ep.error.take() {
            self.abandon(&mut ep);
            return Err(e);
        }
        if ep.part_frames != ep.frames {
            self.abandon(&mut ep);
            return Err(Error::encoder(
                self.key,
                format!(
                    "{} frames handed over but {} encoded",
                    ep.frames, ep.part_frames
                ),
            ));
        }
        let mut bytes = 0;
        for p in &ep.parts {
            bytes += fs::metadata(p)
                .map(|m| m.len())
                .map_err(|e| Error::io("stat segment", p, e))?;
        }
        let stats = if ep.frames >= 2 {
            Some(
                ep.stats
                    .finish()
                    .map_err(|e| Error::encoder(self.key, format!("image statistics: {e}")))?,
            )
        } else {
            None
        };
        let encode_seconds = ep.encode_started.elapsed().as_secs_f64();
        Ok(SegmentResult {
            seq,
            parts: std::mem::take(&mut ep.parts),
            frames: ep.frames,
            bytes,
            stats,
            spilled_frames: spilled,
            max_queue_depth: max_depth,
            encode_seconds,
            encoder: self.chain[self.current].vcodec.clone(),
            switches: ep.switches.join("; "),
        })
    }

    /// Drops an episode: its worker, its partial and finished parts.
    pub(crate) fn abandon(&mut self, ep: &mut Episode) {
        if let Some(w) = ep.worker.take() {
            drop(w.tx);
            let _ = fs::remove_file(reel_media::partial_path(&w.path));
            let _ = fs::remove_file(&w.path);
        }
        for p in ep.parts.drain(..) {
            let _ = fs::remove_file(p);
        }
    }
}
