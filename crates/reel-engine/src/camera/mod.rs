//! One camera's encoding pipeline: the loop hands frames over without waiting, they queue in
//! memory up to a limit, then spill to disk, and an encoder thread turns them into the
//! episode's MP4 segment while computing the camera's image statistics.
//!
//! ```text
//!  add_frame ──(unbounded channel of Arc<VideoFrame>, O(1))──► intake thread
//!                                          live lane │                      │ final lane (deferred final codec only)
//!         memory queue (≤ max_frames_in_memory)      │                      │ its own memory queue + spill ring
//!         or spill ring (raw RGB, in order)          ▼                      ▼
//!                                         encoder thread (nice 10)     final-codec thread (idle; normal after the loop)
//!                                  .reel/segments/<cam>/seg-N.mp4       .reel/segments/<cam>/final-N.mp4
//!                                          + ImageStats                     │
//!                                                    ▼                      ▼
//!                       SegmentResult (per episode) ──► committer      deferred::FinalSink ──► converted part
//! ```
//!
//! Frames are never dropped: the only way a frame does not reach its segment is an encoder
//! error, which fails that episode loudly (the result carries the error).
//!
//! The pieces, one file each: [`queue`] (memory queue, spill ring, intake thread and lanes),
//! [`worker`] (one encoder instance on its own thread), [`supervisor`] (watchdog, fallback
//! without loss, image statistics), [`encode_loop`] (the encoder thread that ties them),
//! [`final_lane`] (the final-codec encoder of a deferred session).

mod encode_loop;
mod final_lane;
mod queue;
mod supervisor;
mod worker;

pub use supervisor::Watchdog;

use crate::deferred::FinalSink;
use crossbeam_channel::{Receiver, Sender};
use queue::{Lane, LaneKind, Msg, Queue, SpillReader};
use reel_core::{Error, Result, SharedFrame};
use reel_dataset::paths;
use reel_media::EncoderSettings;
use reel_stats::FeatureStats;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Limits of the per-camera queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueLimits {
    /// Frames kept in memory before spilling to disk (per camera).
    pub max_frames_in_memory: usize,
    /// Bytes of raw frames allowed on disk (per camera); beyond it the episode fails loudly.
    pub max_spill_bytes: u64,
    /// Deferred final codec: bytes of raw frames the final lane may keep on disk (per camera).
    /// When full, the lane gives the episode up (it is converted from the committed live file
    /// instead), and it skips an episode that starts with more than half of it in use. 0: no
    /// final lane at all (every episode is converted from its live file after its commit).
    pub max_final_spill_bytes: u64,
}

impl Default for QueueLimits {
    fn default() -> Self {
        // 2 s of 640x480 at 30 Hz in memory (~55 MB per camera), then up to 8 GiB on disk;
        // the final lane: up to 2 GiB (~75 s of 640x480 at 30 Hz), a backlog that the
        // committed live file holds more compactly beyond that.
        QueueLimits {
            max_frames_in_memory: 60,
            max_spill_bytes: 8 << 30,
            max_final_spill_bytes: 2 << 30,
        }
    }
}

/// What a final lane keeps in memory per camera before spilling to its ring: the lane runs at
/// idle priority and lags by design, so a deep memory queue only holds the first second of
/// its backlog (the rest spills anyway) at the cost of RSS (3 cameras 640x480: 30 frames
/// each are 83 MB).
pub const FINAL_LANE_MEMORY_BYTES: usize = 8 << 20;

/// The final lane's memory queue for frames of `width`x`height`: [`FINAL_LANE_MEMORY_BYTES`]
/// worth, at least 2 frames, never more than the live lane's `max_frames_in_memory`.
pub fn final_lane_memory_frames(width: u32, height: u32, max_frames_in_memory: usize) -> usize {
    let frame = (width as usize * height as usize * 3).max(1);
    (FINAL_LANE_MEMORY_BYTES / frame)
        .max(2)
        .min(max_frames_in_memory.max(1))
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
    /// Deferred final codec: the final-codec encoder fed the same frames, and where its
    /// episodes go.
    pub final_lane: Option<(EncoderSettings, FinalSink)>,
    /// A depth camera: frames are uint16 millimetres, quantised by this table into 12-bit
    /// codes for a `gray12le` encoder (the chain's settings); statistics in millimetres.
    pub depth: Option<Arc<reel_media::depth::DepthTable>>,
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
    final_lane: Option<JoinHandle<()>>,
    /// The final lane's queue counters.
    final_counters: Option<Arc<CameraCounters>>,
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
            final_lane,
            depth,
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
        let mut lanes = vec![Lane::new(
            queue.clone(),
            counters.clone(),
            spill_path.clone(),
            limits.max_frames_in_memory,
            limits.max_spill_bytes,
            LaneKind::Live,
        )];
        let mut final_counters = None;
        let final_thread = match final_lane {
            Some((settings, sink)) => {
                let fq = Arc::new(Queue::default());
                let fc = Arc::new(CameraCounters::default());
                let fspill = dir.join("final-spill.raw");
                lanes.push(Lane::new(
                    fq.clone(),
                    fc.clone(),
                    fspill.clone(),
                    final_lane_memory_frames(width, height, limits.max_frames_in_memory),
                    limits.max_final_spill_bytes,
                    LaneKind::Final {
                        skip_above: limits.max_final_spill_bytes / 2,
                    },
                ));
                final_counters = Some(fc.clone());
                let lane = final_lane::FinalLane {
                    key: key.to_string(),
                    dir: dir.to_path_buf(),
                    width,
                    height,
                    fps,
                    settings,
                    queue: fq,
                    counters: fc,
                    spill_path: fspill,
                    sink,
                };
                Some(
                    std::thread::Builder::new()
                        .name(format!("final-{key}"))
                        .spawn(move || lane.run())
                        .map_err(|e| Error::io("spawn final-codec thread", dir, e))?,
                )
            }
            None => None,
        };
        let intake = std::thread::Builder::new()
            .name(format!("intake-{key}"))
            .spawn(move || queue::intake_loop(rx, lanes))
            .map_err(|e| Error::io("spawn intake thread", dir, e))?;
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
                        depth,
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
            final_lane: final_thread,
            final_counters,
        })
    }

    /// The camera's feature key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Hands a frame over. Never blocks: the channel is unbounded and drained at once by the
    /// intake thread, which decides between memory and disk.
    pub fn push(&self, frame: SharedFrame) -> Result<()> {
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

    /// The final lane's counters (deferred final codec only).
    pub fn final_counters(&self) -> Option<&Arc<CameraCounters>> {
        self.final_counters.as_ref()
    }

    /// Stop now: the encoder drops the queued frames and the episode in progress, and ends
    /// (no result is sent for them). Follow with [`shutdown`](Self::shutdown).
    pub fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
    }

    /// Ends the camera's input: the live encoder finishes what is queued (or stops at once
    /// after [`abort`](Self::abort)) and its threads are joined. The final lane keeps working
    /// through its queue; see [`join_final_lane`](Self::join_final_lane).
    pub fn close(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(h) = self.intake.take() {
            let _ = h.join();
        }
        if let Some(h) = self.encoder.take() {
            let _ = h.join();
        }
    }

    /// Waits until `until` for the final lane's thread (after its queue is done, or after
    /// the conversion was cancelled); a thread still running then is left to end by itself
    /// (an aborted encoder may still be flushing; it touches no file of the dataset).
    pub fn join_final_lane(&mut self, until: Instant) {
        let Some(h) = self.final_lane.take() else {
            return;
        };
        while !h.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            tracing::warn!(
                "camera {}: the final-codec thread did not stop in time; leaving it",
                self.key
            );
        }
    }

    /// [`close`](Self::close), then [`join_final_lane`](Self::join_final_lane) for up to 2 s.
    pub fn shutdown(&mut self) {
        self.close();
        self.join_final_lane(Instant::now() + Duration::from_secs(2));
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
