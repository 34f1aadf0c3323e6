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
//!
//! The pieces, one file each: [`queue`] (memory queue, disk spill, intake thread),
//! [`worker`] (one encoder instance on its own thread), [`supervisor`] (watchdog, fallback
//! without loss, image statistics), [`encode_loop`] (the encoder thread that ties them).

mod encode_loop;
mod queue;
mod supervisor;
mod worker;

pub use supervisor::Watchdog;

use crate::paths;
use crossbeam_channel::{Receiver, Sender};
use queue::{Msg, Queue, SpillReader};
use reel_core::{Error, Result, SharedFrame};
use reel_media::EncoderSettings;
use reel_stats::FeatureStats;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
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

/// The pipeline of one camera: two threads that live as long as the writer.
pub struct CameraPipeline {
    key: String,
    tx: Sender<Msg>,
    results: Receiver<Result<SegmentResult>>,
    counters: Arc<CameraCounters>,
    /// Stop now: the encoder thread drops what is queued and ends.
    abort: Arc<AtomicBool>,
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
        let queue = Arc::new(Queue::default());
        let counters = Arc::new(CameraCounters::default());
        let abort = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
        let (rtx, rrx): (Sender<Result<SegmentResult>>, _) = crossbeam_channel::unbounded();
        let intake = {
            let queue = queue.clone();
            let counters = counters.clone();
            let spill_path = spill_path.clone();
            std::thread::Builder::new()
                .name(format!("intake-{key}"))
                .spawn(move || queue::intake_loop(rx, queue, counters, spill_path, limits))
                .map_err(|e| Error::io("spawn intake thread", dir, e))?
        };
        let encoder = {
            let counters = counters.clone();
            let abort = abort.clone();
            let seg_dir = dir.to_path_buf();
            let key = key.to_string();
            std::thread::Builder::new()
                .name(format!("encode-{key}"))
                .spawn(move || {
                    reel_core::sched::set_current(reel_core::sched::ENCODER);
                    let sup = supervisor::Supervisor {
                        key: &key,
                        dir: &seg_dir,
                        width,
                        height,
                        fps,
                        chain,
                        current: 0,
                        watchdog,
                        counter: 0,
                    };
                    encode_loop::encoder_loop(
                        sup,
                        SpillReader::new(&spill_path),
                        queue,
                        counters,
                        abort,
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
            abort,
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
        self.tx
            .send(Msg::Frame(frame))
            .map_err(|_| Error::encoder(self.key.as_str(), "encoder pipeline stopped"))
    }

    /// Marks the end of episode `seq` (its result arrives later on [`results`](Self::results)).
    pub fn end_episode(&self, seq: u64) -> Result<()> {
        self.tx
            .send(Msg::End(seq))
            .map_err(|_| Error::encoder(self.key.as_str(), "encoder pipeline stopped"))
    }

    /// Drops the frames of the episode in progress.
    pub fn discard_episode(&self) -> Result<()> {
        self.tx
            .send(Msg::Discard)
            .map_err(|_| Error::encoder(self.key.as_str(), "encoder pipeline stopped"))
    }

    /// Receiver of per-episode results, in episode order.
    pub fn results(&self) -> &Receiver<Result<SegmentResult>> {
        &self.results
    }

    /// Live counters.
    pub fn counters(&self) -> &Arc<CameraCounters> {
        &self.counters
    }

    /// Stop now: the encoder drops the queued frames and the episode in progress, and ends
    /// (no result is sent for them). Follow with [`shutdown`](Self::shutdown).
    pub fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
    }

    /// Stops both threads after the queued work is done (or at once after [`abort`](Self::abort)).
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

/// Where the temporary segments of camera `key` live.
pub fn segment_dir(root: &Path, key: &str) -> PathBuf {
    paths::reel_dir(root).join("segments").join(key)
}
