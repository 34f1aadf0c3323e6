//! One camera's encoding pipeline: the loop hands frames over without waiting, they queue in
//! memory up to a limit, then spill to disk, and an encoder thread turns them into the
//! episode's MP4 segment while computing the camera's image statistics.
//!
//! ```text
//!  add_frame ──(unbounded channel of Arc<VideoFrame>, O(1))──► intake thread
//!                                                                │ memory queue (≤ max_frames_in_memory)
//!                                                                │ or spill file (raw RGB, in order)
//!                                                                ▼
//!                                                           encoder thread ──► .reel/segments/<cam>/seg-N.mp4
//!                                                                │                 + ImageStats
//!                                                                ▼
//!                                                         SegmentResult (per episode) ──► committer
//! ```
//!
//! Frames are never dropped: the only way a frame does not reach its segment is an encoder
//! error, which fails that episode loudly (the result carries the error).

use crate::paths;
use crossbeam_channel::{Receiver, Sender};
use reel_core::{Error, Result, SharedFrame, VideoFrame};
use reel_media::{EncoderSettings, EpisodeEncoder};
use reel_stats::{FeatureStats, ImageStats};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Limits of the per-camera queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueLimits {
    /// Frames kept in memory before spilling to disk (per camera).
    pub max_frames_in_memory: usize,
    /// Bytes of raw frames allowed on disk (per camera); beyond it the episode fails loudly.
    pub max_spill_bytes: u64,
}

impl Default for QueueLimits {
    fn default() -> Self {
        // 2 s of 640x480 at 30 Hz in memory (~55 MB per camera), then up to 8 GiB on disk.
        QueueLimits {
            max_frames_in_memory: 60,
            max_spill_bytes: 8 << 30,
        }
    }
}

/// How one camera's pipeline encodes.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// The primary encoder followed by its fallbacks.
    pub chain: Vec<EncoderSettings>,
    pub limits: QueueLimits,
    pub watchdog: Watchdog,
}

/// What the encoder thread reports for one episode of this camera.
#[derive(Debug)]
pub struct SegmentResult {
    pub seq: u64,
    /// The episode's video, in order: one MP4 normally; after an encoder switch, what the
    /// failed encoder completed followed by what its replacement encoded. Each part appends
    /// to the dataset's MP4 like a whole segment (same encoder settings, same sample entry).
    pub parts: Vec<PathBuf>,
    pub frames: u64,
    pub bytes: u64,
    pub stats: Option<FeatureStats>,
    pub spilled_frames: u64,
    pub max_queue_depth: u64,
    /// Wall seconds from the episode's first frame to its finished segment.
    pub encode_seconds: f64,
    /// The encoder that produced the end of the segment.
    pub encoder: String,
    /// Encoder switches during this episode ("" when none), for the episode's metadata.
    pub switches: String,
}

/// Live counters, readable from any thread.
#[derive(Debug, Default)]
pub struct CameraCounters {
    /// Frames handed over by the loop and not yet encoded.
    pub queued: AtomicU64,
    /// Frames currently on disk.
    pub spilled_now: AtomicU64,
    /// Frames spilled since the writer opened.
    pub spilled_total: AtomicU64,
    /// Frames encoded since the writer opened.
    pub encoded_total: AtomicU64,
    /// Frames that could not be spilled (disk full, limit) and stayed in memory instead.
    pub spill_failures: AtomicU64,
}

enum Msg {
    Frame(SharedFrame),
    /// End of episode `seq`: finish the segment and report it.
    End(u64),
    /// Drop the current episode's frames and segment.
    Discard,
    Shutdown,
}

enum Entry {
    Mem(SharedFrame),
    Disk {
        offset: u64,
        width: u32,
        height: u32,
        captured_ns: u64,
        seq: u64,
    },
    End(u64),
    Discard,
    Shutdown,
}

struct Queue {
    entries: VecDeque<Entry>,
    mem_frames: usize,
    /// Frames on disk, counted until the encoder has read them back.
    disk_frames: u64,
    depth: u64,
    max_depth: u64,
    spilled_episode: u64,
}

struct Shared {
    q: Mutex<Queue>,
    cv: Condvar,
}

/// The pipeline of one camera: two threads that live as long as the writer.
pub struct CameraPipeline {
    key: String,
    tx: Sender<Msg>,
    results: Receiver<std::result::Result<SegmentResult, String>>,
    counters: Arc<CameraCounters>,
    intake: Option<JoinHandle<()>>,
    encoder: Option<JoinHandle<()>>,
}

impl CameraPipeline {
    /// Starts the threads of camera `key`; segments go to `dir`. `chain` is the primary
    /// encoder followed by its fallbacks, tried in order when one fails or hangs.
    pub fn start(key: &str, dir: &Path, cfg: PipelineConfig) -> Result<CameraPipeline> {
        let PipelineConfig {
            width,
            height,
            fps,
            chain,
            limits,
            watchdog,
        } = cfg;
        if chain.is_empty() {
            return Err(Error::invalid(format!(
                "camera {key}: no encoder configured"
            )));
        }
        fs::create_dir_all(dir).map_err(|e| Error::io("create segment dir", dir, e))?;
        let spill_path = dir.join("spill.raw");
        let shared = Arc::new(Shared {
            q: Mutex::new(Queue {
                entries: VecDeque::new(),
                mem_frames: 0,
                disk_frames: 0,
                depth: 0,
                max_depth: 0,
                spilled_episode: 0,
            }),
            cv: Condvar::new(),
        });
        let counters = Arc::new(CameraCounters::default());
        let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
        let (rtx, rrx) = crossbeam_channel::unbounded();
        let intake = {
            let shared = shared.clone();
            let counters = counters.clone();
            let spill_path = spill_path.clone();
            let key = key.to_string();
            std::thread::Builder::new()
                .name(format!("intake-{key}"))
                .spawn(move || intake_loop(rx, shared, counters, spill_path, limits))
                .map_err(|e| Error::io("spawn intake thread", dir, e))?
        };
        let encoder = {
            let shared = shared.clone();
            let counters = counters.clone();
            let seg_dir = dir.to_path_buf();
            let key = key.to_string();
            std::thread::Builder::new()
                .name(format!("encode-{key}"))
                .spawn(move || {
                    lower_thread_priority();
                    encoder_loop(
                        &key,
                        &seg_dir,
                        &spill_path,
                        width,
                        height,
                        fps,
                        chain,
                        watchdog,
                        shared,
                        counters,
                        rtx,
                    )
                })
                .map_err(|e| Error::io("spawn encoder thread", dir, e))?
        };
        Ok(CameraPipeline {
            key: key.to_string(),
            tx,
            results: rrx,
            counters,
            intake: Some(intake),
            encoder: Some(encoder),
        })
    }

    /// The camera's feature key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Hands a frame over. Never blocks: the channel is unbounded and drained at once by the
    /// intake thread, which decides between memory and disk.
    pub fn push(&self, frame: SharedFrame) -> Result<()> {
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.send(Msg::Frame(frame)).map_err(|_| Error::Encoder {
            camera: self.key.clone(),
            msg: "encoder pipeline stopped".into(),
        })
    }

    /// Marks the end of episode `seq` (its result arrives later on [`results`](Self::results)).
    pub fn end_episode(&self, seq: u64) -> Result<()> {
        self.tx.send(Msg::End(seq)).map_err(|_| Error::Encoder {
            camera: self.key.clone(),
            msg: "encoder pipeline stopped".into(),
        })
    }

    /// Drops the frames of the episode in progress.
    pub fn discard_episode(&self) -> Result<()> {
        self.tx.send(Msg::Discard).map_err(|_| Error::Encoder {
            camera: self.key.clone(),
            msg: "encoder pipeline stopped".into(),
        })
    }

    /// Receiver of per-episode results, in episode order.
    pub fn results(&self) -> &Receiver<std::result::Result<SegmentResult, String>> {
        &self.results
    }

    /// Live counters.
    pub fn counters(&self) -> &Arc<CameraCounters> {
        &self.counters
    }

    /// Stops both threads after the queued work is done.
    pub fn shutdown(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(h) = self.intake.take() {
            let _ = h.join();
        }
        if let Some(h) = self.encoder.take() {
            let _ = h.join();
        }
    }
}

impl Drop for CameraPipeline {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Encoder threads run below the control loop: they must never take its CPU when it needs it.
fn lower_thread_priority() {
    // SAFETY: setpriority on the calling thread (who = 0 means this thread on Linux).
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

fn intake_loop(
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    counters: Arc<CameraCounters>,
    spill_path: PathBuf,
    limits: QueueLimits,
) {
    let mut spill: Option<File> = None;
    let mut spill_end: u64 = 0;
    for msg in rx.iter() {
        let entry = match msg {
            Msg::Frame(f) => {
                let must_spill = {
                    let q = shared.q.lock().unwrap_or_else(|p| p.into_inner());
                    if q.mem_frames == 0 && q.disk_frames == 0 {
                        spill_end = 0; // queue drained: reuse the spill file from the start
                    }
                    q.mem_frames >= limits.max_frames_in_memory
                };
                if must_spill {
                    match spill_frame(&mut spill, &spill_path, spill_end, &f, limits) {
                        Ok(offset) => {
                            spill_end = offset + f.data.len() as u64;
                            counters.spilled_now.fetch_add(1, Ordering::Relaxed);
                            counters.spilled_total.fetch_add(1, Ordering::Relaxed);
                            Entry::Disk {
                                offset,
                                width: f.width,
                                height: f.height,
                                captured_ns: f.captured_ns,
                                seq: f.seq,
                            }
                        }
                        Err(e) => {
                            // Never lose the frame: keep it in memory beyond the limit and say so.
                            counters.spill_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                "cannot spill a frame to disk ({e}); keeping it in memory"
                            );
                            Entry::Mem(f)
                        }
                    }
                } else {
                    Entry::Mem(f)
                }
            }
            Msg::End(seq) => Entry::End(seq),
            Msg::Discard => Entry::Discard,
            Msg::Shutdown => Entry::Shutdown,
        };
        let stop = matches!(entry, Entry::Shutdown);
        {
            let mut q = shared.q.lock().unwrap_or_else(|p| p.into_inner());
            match &entry {
                Entry::Mem(_) => {
                    q.mem_frames += 1;
                    q.depth += 1;
                }
                Entry::Disk { .. } => {
                    q.disk_frames += 1;
                    q.spilled_episode += 1;
                    q.depth += 1;
                }
                _ => {}
            }
            q.max_depth = q.max_depth.max(q.depth);
            q.entries.push_back(entry);
        }
        shared.cv.notify_all();
        if stop {
            break;
        }
    }
    let _ = fs::remove_file(&spill_path);
}

fn spill_frame(
    spill: &mut Option<File>,
    path: &Path,
    at: u64,
    f: &VideoFrame,
    limits: QueueLimits,
) -> Result<u64> {
    if at + f.data.len() as u64 > limits.max_spill_bytes {
        return Err(Error::Encoder {
            camera: path.display().to_string(),
            msg: format!(
                "spill limit of {} MiB reached: the encoder cannot keep up",
                limits.max_spill_bytes >> 20
            ),
        });
    }
    if spill.is_none() {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io("create spill file", path, e))?;
        *spill = Some(file);
    }
    let file = spill
        .as_mut()
        .ok_or_else(|| Error::invalid("spill file missing"))?;
    file.seek(SeekFrom::Start(at))
        .map_err(|e| Error::io("seek spill file", path, e))?;
    file.write_all(&f.data)
        .map_err(|e| Error::io("write spill file", path, e))?;
    Ok(at)
}

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

/// Frames handed to an encoder worker and not yet accepted by it.
const IN_FLIGHT: u64 = 4;

enum ToWorker {
    Frame(SharedFrame),
    Finish,
}

enum FromWorker {
    Opened(Arc<AtomicU64>),
    Pushed(u64),
    Failed(String),
    Finished(std::result::Result<reel_media::EncodedSegment, String>),
}

/// One encoder instance on its own thread, so that a hang can be abandoned.
struct Worker {
    name: String,
    path: PathBuf,
    tx: Sender<ToWorker>,
    rx: Receiver<FromWorker>,
    /// Index (within the episode) of the first frame given to this worker.
    base: u64,
    sent: u64,
    pushed: u64,
    confirmed: Option<Arc<AtomicU64>>,
    last_progress: Instant,
    finishing: Option<Instant>,
}

fn spawn_worker(
    path: PathBuf,
    width: u32,
    height: u32,
    fps: u32,
    settings: EncoderSettings,
    base: u64,
) -> Worker {
    let (tx, wrx) = crossbeam_channel::unbounded::<ToWorker>();
    let (wtx, rx) = crossbeam_channel::unbounded::<FromWorker>();
    let name = match &settings.fault {
        Some(f) => format!("{} (injected fault {f:?})", settings.vcodec),
        None => settings.vcodec.clone(),
    };
    let p = path.clone();
    let spawned = std::thread::Builder::new()
        .name("encoder-worker".into())
        .spawn(move || {
            lower_thread_priority();
            let mut enc = match EpisodeEncoder::create(&p, width, height, fps, &settings) {
                Ok(e) => e,
                Err(e) => {
                    let _ = wtx.send(FromWorker::Failed(format!("open: {e}")));
                    return;
                }
            };
            let _ = wtx.send(FromWorker::Opened(enc.confirmed_frames()));
            let mut n = 0u64;
            for msg in wrx.iter() {
                match msg {
                    ToWorker::Frame(f) => match enc.push(&f) {
                        Ok(()) => {
                            n += 1;
                            let _ = wtx.send(FromWorker::Pushed(n));
                        }
                        Err(e) => {
                            let _ = wtx.send(FromWorker::Failed(format!("frame {n}: {e}")));
                            return;
                        }
                    },
                    ToWorker::Finish => {
                        let _ = wtx.send(FromWorker::Finished(
                            enc.finish().map_err(|e| e.to_string()),
                        ));
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot spawn an encoder worker: {e}");
    }
    Worker {
        name,
        path,
        tx,
        rx,
        base,
        sent: 0,
        pushed: 0,
        confirmed: None,
        last_progress: Instant::now(),
        finishing: None,
    }
}

/// One episode of one camera, as the supervisor sees it.
struct Episode {
    frames: u64,
    stats: ImageStats,
    /// Frames given to the current worker and not yet confirmed on disk, with their index.
    ring: VecDeque<(u64, SharedFrame)>,
    /// Finished or salvaged pieces of the segment, in order, and how many frames they hold.
    parts: Vec<PathBuf>,
    part_frames: u64,
    worker: Option<Worker>,
    switches: Vec<String>,
    error: Option<String>,
    encode_started: Instant,
}

struct Supervisor<'a> {
    key: &'a str,
    dir: &'a Path,
    width: u32,
    height: u32,
    fps: u32,
    chain: Vec<EncoderSettings>,
    current: usize,
    watchdog: Watchdog,
    counter: u64,
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
        );
        for (_, f) in &ep.ring {
            let _ = w.tx.send(ToWorker::Frame(f.clone()));
            w.sent += 1;
        }
        ep.worker = Some(w);
    }

    fn new_episode(&mut self) -> Episode {
        Episode {
            frames: 0,
            stats: ImageStats::new(),
            ring: VecDeque::new(),
            parts: Vec::new(),
            part_frames: 0,
            worker: None,
            switches: Vec::new(),
            error: None,
            encode_started: Instant::now(),
        }
    }

    fn add_frame(&mut self, ep: &mut Episode, f: SharedFrame) {
        if let Err(e) = ep.stats.push_rgb(f.width, f.height, &f.data) {
            ep.error
                .get_or_insert(format!("image stats of {}: {e}", self.key));
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
    fn poll(&mut self, ep: &mut Episode, wait: Duration) -> Option<reel_media::EncodedSegment> {
        let w = ep.worker.as_mut()?;
        let msg = w.rx.recv_timeout(wait);
        let mut failure = None;
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
            Ok(FromWorker::Failed(e)) => failure = Some(format!("error at {e}")),
            Ok(FromWorker::Finished(Ok(seg))) => finished = Some(seg),
            Ok(FromWorker::Finished(Err(e))) => failure = Some(format!("flush failed: {e}")),
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
                ep.error.get_or_insert(format!(
                    "{}: {} frames sent, {} in its segment",
                    w.name, w.sent, seg.frames
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
            ep.error.get_or_insert(format!(
                "{}: {} failed ({reason}) and frames {kept_to}..{} are neither on disk nor retained",
                self.key,
                w.name,
                ep.ring.front().map(|(i, _)| *i).unwrap_or(0)
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
            ep.error.get_or_insert(format!(
                "{}: {} failed ({reason}) and no fallback encoder is left",
                self.key, w.name
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
    fn finish(
        &mut self,
        mut ep: Episode,
        seq: u64,
        spilled: u64,
        max_depth: u64,
    ) -> std::result::Result<SegmentResult, String> {
        if ep.frames == 0 {
            return Err(format!("camera {}: episode {seq} has no frames", self.key));
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
            return Err(format!(
                "camera {}: {} frames handed over but {} encoded",
                self.key, ep.frames, ep.part_frames
            ));
        }
        let mut bytes = 0;
        for p in &ep.parts {
            bytes += fs::metadata(p)
                .map(|m| m.len())
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
        let stats = if ep.frames >= 2 {
            Some(
                ep.stats
                    .finish()
                    .map_err(|e| format!("image stats of {}: {e}", self.key))?,
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

    fn abandon(&mut self, ep: &mut Episode) {
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

#[allow(clippy::too_many_arguments)]
fn encoder_loop(
    key: &str,
    dir: &Path,
    spill_path: &Path,
    width: u32,
    height: u32,
    fps: u32,
    chain: Vec<EncoderSettings>,
    watchdog: Watchdog,
    shared: Arc<Shared>,
    counters: Arc<CameraCounters>,
    results: Sender<std::result::Result<SegmentResult, String>>,
) {
    let mut sup = Supervisor {
        key,
        dir,
        width,
        height,
        fps,
        chain,
        current: 0,
        watchdog,
        counter: 0,
    };
    let mut reader: Option<File> = None;
    let mut current: Option<Episode> = None;
    loop {
        // Back-pressure: take a new entry only when the worker has room; meanwhile frames
        // wait in the memory queue or the spill, and the watchdog keeps running.
        if let Some(ep) = current.as_mut() {
            let busy = ep
                .worker
                .as_ref()
                .is_some_and(|w| w.sent >= w.pushed + IN_FLIGHT);
            if busy {
                let _ = sup.poll(ep, Duration::from_millis(50));
                continue;
            }
            if ep.worker.is_some() {
                let _ = sup.poll(ep, Duration::ZERO);
            }
        }
        let entry = {
            let mut q = shared.q.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(e) = q.entries.pop_front() {
                    match &e {
                        Entry::Mem(_) => {
                            q.mem_frames -= 1;
                            q.depth -= 1;
                        }
                        // A spilled frame stays counted on disk until it has been read back,
                        // so the intake never reuses its bytes too early.
                        Entry::Disk { .. } => q.depth -= 1,
                        _ => {}
                    }
                    break Some(e);
                }
                let (g, t) = shared
                    .cv
                    .wait_timeout(q, Duration::from_millis(50))
                    .unwrap_or_else(|p| p.into_inner());
                q = g;
                if t.timed_out() {
                    break None;
                }
            }
        };
        let Some(entry) = entry else {
            if let Some(ep) = current.as_mut() {
                let _ = sup.poll(ep, Duration::ZERO);
            }
            continue;
        };
        match entry {
            Entry::Mem(f) => {
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                let ep = current.get_or_insert_with(|| sup.new_episode());
                sup.add_frame(ep, f);
            }
            Entry::Disk {
                offset,
                width: w,
                height: h,
                captured_ns,
                seq,
            } => {
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                counters.spilled_now.fetch_sub(1, Ordering::Relaxed);
                let read = read_spilled(&mut reader, spill_path, offset, w, h);
                shared
                    .q
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .disk_frames -= 1;
                let ep = current.get_or_insert_with(|| sup.new_episode());
                match read {
                    Ok(mut f) => {
                        f.captured_ns = captured_ns;
                        f.seq = seq;
                        sup.add_frame(ep, Arc::new(f));
                    }
                    Err(e) => {
                        ep.frames += 1;
                        ep.error
                            .get_or_insert(format!("reading spilled frame: {e}"));
                    }
                }
            }
            Entry::End(seq) => {
                let (spilled, max_depth) = {
                    let mut q = shared.q.lock().unwrap_or_else(|p| p.into_inner());
                    let r = (q.spilled_episode, q.max_depth);
                    q.spilled_episode = 0;
                    q.max_depth = q.depth;
                    r
                };
                let res = match current.take() {
                    Some(ep) => sup.finish(ep, seq, spilled, max_depth),
                    None => Err(format!("camera {key}: episode {seq} has no frames")),
                };
                if let Ok(r) = &res {
                    counters
                        .encoded_total
                        .fetch_add(r.frames, Ordering::Relaxed);
                }
                if results.send(res).is_err() {
                    return;
                }
            }
            Entry::Discard => {
                if let Some(mut ep) = current.take() {
                    sup.abandon(&mut ep);
                }
                shared
                    .q
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .spilled_episode = 0;
            }
            Entry::Shutdown => {
                if let Some(mut ep) = current.take() {
                    sup.abandon(&mut ep);
                }
                return;
            }
        }
    }
}

fn read_spilled(
    reader: &mut Option<File>,
    path: &Path,
    offset: u64,
    w: u32,
    h: u32,
) -> Result<VideoFrame> {
    if reader.is_none() {
        *reader = Some(File::open(path).map_err(|e| Error::io("open spill file", path, e))?);
    }
    let file = reader
        .as_mut()
        .ok_or_else(|| Error::invalid("spill reader missing"))?;
    let mut data = vec![0u8; w as usize * h as usize * 3];
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io("seek spill file", path, e))?;
    file.read_exact(&mut data)
        .map_err(|e| Error::io("read spill file", path, e))?;
    VideoFrame::new(w, h, data)
}

/// Where the temporary segments of camera `key` live.
pub fn segment_dir(root: &Path, key: &str) -> PathBuf {
    paths::reel_dir(root).join("segments").join(key)
}
