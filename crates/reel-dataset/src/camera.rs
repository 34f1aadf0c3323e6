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
        QueueLimits { max_frames_in_memory: 60, max_spill_bytes: 8 << 30 }
    }
}

/// What the encoder thread reports for one episode of this camera.
#[derive(Debug)]
pub struct SegmentResult {
    pub seq: u64,
    pub path: PathBuf,
    pub frames: u64,
    pub bytes: u64,
    pub stats: Option<FeatureStats>,
    pub spilled_frames: u64,
    pub max_queue_depth: u64,
    pub encode_seconds: f64,
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
    Disk { offset: u64, width: u32, height: u32, captured_ns: u64, seq: u64 },
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
    /// Starts the threads of camera `key`; segments go to `dir`.
    pub fn start(key: &str, dir: &Path, width: u32, height: u32, fps: u32, settings: EncoderSettings, limits: QueueLimits) -> Result<CameraPipeline> {
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
                    encoder_loop(&key, &seg_dir, &spill_path, width, height, fps, &settings, shared, counters, rtx)
                })
                .map_err(|e| Error::io("spawn encoder thread", dir, e))?
        };
        Ok(CameraPipeline { key: key.to_string(), tx, results: rrx, counters, intake: Some(intake), encoder: Some(encoder) })
    }

    /// The camera's feature key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Hands a frame over. Never blocks: the channel is unbounded and drained at once by the
    /// intake thread, which decides between memory and disk.
    pub fn push(&self, frame: SharedFrame) -> Result<()> {
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        self.tx
            .send(Msg::Frame(frame))
            .map_err(|_| Error::Encoder { camera: self.key.clone(), msg: "encoder pipeline stopped".into() })
    }

    /// Marks the end of episode `seq` (its result arrives later on [`results`](Self::results)).
    pub fn end_episode(&self, seq: u64) -> Result<()> {
        self.tx.send(Msg::End(seq)).map_err(|_| Error::Encoder { camera: self.key.clone(), msg: "encoder pipeline stopped".into() })
    }

    /// Drops the frames of the episode in progress.
    pub fn discard_episode(&self) -> Result<()> {
        self.tx.send(Msg::Discard).map_err(|_| Error::Encoder { camera: self.key.clone(), msg: "encoder pipeline stopped".into() })
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

fn intake_loop(rx: Receiver<Msg>, shared: Arc<Shared>, counters: Arc<CameraCounters>, spill_path: PathBuf, limits: QueueLimits) {
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
                            Entry::Disk { offset, width: f.width, height: f.height, captured_ns: f.captured_ns, seq: f.seq }
                        }
                        Err(e) => {
                            // Never lose the frame: keep it in memory beyond the limit and say so.
                            counters.spill_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!("cannot spill a frame to disk ({e}); keeping it in memory");
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

fn spill_frame(spill: &mut Option<File>, path: &Path, at: u64, f: &VideoFrame, limits: QueueLimits) -> Result<u64> {
    if at + f.data.len() as u64 > limits.max_spill_bytes {
        return Err(Error::Encoder {
            camera: path.display().to_string(),
            msg: format!("spill limit of {} MiB reached: the encoder cannot keep up", limits.max_spill_bytes >> 20),
        });
    }
    if spill.is_none() {
        let file = OpenOptions::new().create(true).read(true).write(true).truncate(true).open(path).map_err(|e| Error::io("create spill file", path, e))?;
        *spill = Some(file);
    }
    let file = spill.as_mut().ok_or_else(|| Error::invalid("spill file missing"))?;
    file.seek(SeekFrom::Start(at)).map_err(|e| Error::io("seek spill file", path, e))?;
    file.write_all(&f.data).map_err(|e| Error::io("write spill file", path, e))?;
    Ok(at)
}

#[allow(clippy::too_many_arguments)]
fn encoder_loop(
    key: &str,
    dir: &Path,
    spill_path: &Path,
    width: u32,
    height: u32,
    fps: u32,
    settings: &EncoderSettings,
    shared: Arc<Shared>,
    counters: Arc<CameraCounters>,
    results: Sender<std::result::Result<SegmentResult, String>>,
) {
    let mut reader: Option<File> = None;
    let mut current: Option<EpisodeState> = None;
    let mut seg_counter: u64 = 0;
    loop {
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
                    break e;
                }
                q = shared.cv.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        match entry {
            Entry::Mem(f) => {
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                encode_one(&mut current, &mut seg_counter, key, dir, width, height, fps, settings, &f);
            }
            Entry::Disk { offset, width: w, height: h, captured_ns, seq } => {
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                counters.spilled_now.fetch_sub(1, Ordering::Relaxed);
                let read = read_spilled(&mut reader, spill_path, offset, w, h);
                shared.q.lock().unwrap_or_else(|p| p.into_inner()).disk_frames -= 1;
                match read {
                    Ok(mut f) => {
                        f.captured_ns = captured_ns;
                        f.seq = seq;
                        encode_one(&mut current, &mut seg_counter, key, dir, width, height, fps, settings, &f);
                    }
                    Err(e) => {
                        let st = current.get_or_insert_with(|| EpisodeState::failed(dir, &mut seg_counter));
                        st.error.get_or_insert(format!("reading spilled frame: {e}"));
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
                let st = current.take();
                let res = finish_episode(st, seq, spilled, max_depth, key);
                if let Ok(r) = &res {
                    counters.encoded_total.fetch_add(r.frames, Ordering::Relaxed);
                }
                if results.send(res).is_err() {
                    return;
                }
            }
            Entry::Discard => {
                if let Some(st) = current.take() {
                    st.abandon();
                }
                shared.q.lock().unwrap_or_else(|p| p.into_inner()).spilled_episode = 0;
            }
            Entry::Shutdown => {
                if let Some(st) = current.take() {
                    st.abandon();
                }
                return;
            }
        }
    }
}

struct EpisodeState {
    path: PathBuf,
    encoder: Option<EpisodeEncoder>,
    stats: ImageStats,
    frames: u64,
    error: Option<String>,
    encode_seconds: f64,
}

impl EpisodeState {
    fn failed(dir: &Path, counter: &mut u64) -> EpisodeState {
        *counter += 1;
        EpisodeState {
            path: dir.join(format!("seg-{counter}.mp4")),
            encoder: None,
            stats: ImageStats::new(),
            frames: 0,
            error: None,
            encode_seconds: 0.0,
        }
    }
    fn abandon(mut self) {
        self.encoder = None;
        let _ = fs::remove_file(&self.path);
    }
}

#[allow(clippy::too_many_arguments)]
fn encode_one(
    current: &mut Option<EpisodeState>,
    counter: &mut u64,
    key: &str,
    dir: &Path,
    width: u32,
    height: u32,
    fps: u32,
    settings: &EncoderSettings,
    f: &VideoFrame,
) {
    if current.is_none() {
        let mut st = EpisodeState::failed(dir, counter);
        let _ = fs::remove_file(&st.path);
        match EpisodeEncoder::create(&st.path, width, height, fps, settings) {
            Ok(enc) => {
                let n = reel_core::sched::demote_realtime_threads(10);
                if n > 0 {
                    tracing::debug!("{key}: {} started {n} real-time threads; demoted to normal priority so the control loop keeps its deadlines", settings.vcodec);
                }
                st.encoder = Some(enc);
            }
            Err(e) => st.error = Some(format!("opening {} for {key}: {e}", settings.vcodec)),
        }
        *current = Some(st);
    }
    let Some(st) = current.as_mut() else { return };
    st.frames += 1;
    if st.error.is_some() {
        return;
    }
    let t0 = std::time::Instant::now();
    if let Some(enc) = st.encoder.as_mut() {
        if let Err(e) = enc.push(f) {
            st.error = Some(format!("encoding frame {} of {key}: {e}", st.frames - 1));
        }
    }
    st.encode_seconds += t0.elapsed().as_secs_f64();
    if let Err(e) = st.stats.push_rgb(f.width, f.height, &f.data) {
        st.error.get_or_insert(format!("image stats of {key}: {e}"));
    }
}

fn finish_episode(st: Option<EpisodeState>, seq: u64, spilled: u64, max_depth: u64, key: &str) -> std::result::Result<SegmentResult, String> {
    let Some(mut st) = st else {
        return Err(format!("camera {key}: episode {seq} has no frames"));
    };
    if let Some(e) = st.error.take() {
        st.abandon();
        return Err(e);
    }
    let Some(enc) = st.encoder.take() else {
        return Err(format!("camera {key}: no encoder"));
    };
    let t0 = std::time::Instant::now();
    let seg = enc.finish().map_err(|e| format!("finishing the segment of {key}: {e}"))?;
    let encode_seconds = st.encode_seconds + t0.elapsed().as_secs_f64();
    if seg.frames != st.frames {
        let _ = fs::remove_file(&seg.path);
        return Err(format!("camera {key}: {} frames handed over but {} encoded", st.frames, seg.frames));
    }
    let stats = if st.frames >= 2 { Some(st.stats.finish().map_err(|e| format!("image stats of {key}: {e}"))?) } else { None };
    Ok(SegmentResult { seq, path: seg.path, frames: seg.frames, bytes: seg.bytes, stats, spilled_frames: spilled, max_queue_depth: max_depth, encode_seconds })
}

fn read_spilled(reader: &mut Option<File>, path: &Path, offset: u64, w: u32, h: u32) -> Result<VideoFrame> {
    if reader.is_none() {
        *reader = Some(File::open(path).map_err(|e| Error::io("open spill file", path, e))?);
    }
    let file = reader.as_mut().ok_or_else(|| Error::invalid("spill reader missing"))?;
    let mut data = vec![0u8; w as usize * h as usize * 3];
    file.seek(SeekFrom::Start(offset)).map_err(|e| Error::io("seek spill file", path, e))?;
    file.read_exact(&mut data).map_err(|e| Error::io("read spill file", path, e))?;
    VideoFrame::new(w, h, data)
}

/// Where the temporary segments of camera `key` live.
pub fn segment_dir(root: &Path, key: &str) -> PathBuf {
    paths::reel_dir(root).join("segments").join(key)
}
