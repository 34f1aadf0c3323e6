//! The dataset writer: what a recording session talks to.
//!
//! [`DatasetWriter::add_frame`] runs on the control loop's thread and never waits: numeric
//! values are appended to column buffers and each camera frame (an `Arc`) is handed to that
//! camera's [`CameraPipeline`]. [`DatasetWriter::save_episode`] is just as quick: it marks the
//! end of the episode in every pipeline and queues a commit job. The **committer thread**
//! then waits for the cameras' segments and saves the episode as one journaled transaction:
//!
//! 1. append the episode's rows as one row group to the data parquet (in place);
//! 2. append each camera's segment to that camera's MP4 (in place);
//! 3. append the episode's row to the episodes parquet, rewrite tasks/info/stats;
//! 4. commit (delete the journal).
//!
//! A crash at any point before 4 is rolled back on the next open; after 4 the episode is
//! saved. Episodes are committed strictly in order.
//!
//! With [`WriterConfig::deferred`] the cameras record in a fast live codec and each camera's
//! final lane encodes the same frames in the final codec at idle priority from the start of
//! the episode; after each commit the episode goes to the [`deferred`](crate::deferred)
//! coordinator (lane result, or a transcode of the live parts), and `finalize` raises the
//! conversion to normal priority, waits for it (progress and ETA), and swaps the converted
//! files of this session in, with info.json, in one more journaled transaction.

mod committer;
mod resume;
mod swap;
mod validate;

pub use resume::{read_schema, DatasetSchema};

use crate::camera::{segment_dir, CameraPipeline, PipelineConfig, QueueLimits, Watchdog};
use crate::deferred::{self, DeferredTranscoder};
use committer::{CommitState, Job, Shared, Status};
use crossbeam_channel::Sender;
use reel_core::extra::ExtraValue;
use reel_core::journal;
use reel_core::{Dtype, Error, Features, Result, RowValues, StopMark, Value};
use reel_dataset::data::ColumnBuffers;
use reel_dataset::episodes::VideoRef;
use reel_dataset::info::Info;
use reel_dataset::lock::{DatasetLock, LockMode};
use reel_dataset::paths::{self, FileIndex};
use reel_media::EncoderSettings;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use validate::{encoder_chain, probe_writable, validate_config};

/// How to create or resume a dataset.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub root: PathBuf,
    pub fps: u32,
    pub robot_type: Option<String>,
    /// User features (cameras as `Dtype::Video` with shape `[h, w, 3]`, depth cameras
    /// `[h, w, 1]`).
    pub features: Features,
    /// The RGB cameras' encoder.
    pub encoder: EncoderSettings,
    /// How depth cameras are encoded (LeRobot's `depth_encoder`): always live, never
    /// deferred, never replaced by `encoder`'s fallbacks. A resumed dataset's own depth
    /// settings replace these.
    pub depth: reel_media::depth::DepthEncoding,
    /// The final codec when `encoder` is only a fast live one: committed episodes are
    /// converted to it in the background and swapped in at `finalize`. None: `encoder` is final.
    pub deferred: Option<EncoderSettings>,
    /// Encoders tried in order when the primary fails or hangs mid-episode (the frames it
    /// had not finished go to the next one). By default a fresh instance of the primary.
    pub fallbacks: Vec<EncoderSettings>,
    /// When an encoder counts as hung.
    pub watchdog: Watchdog,
    /// Data and episodes-metadata parquet file size limit (MB). None: LeRobot's 100 for a new
    /// dataset, the dataset's own (info.json) when resuming.
    pub data_files_size_mb: Option<f64>,
    /// Video file size limit (MB). None: LeRobot's 200 new, the dataset's own when resuming.
    pub video_files_size_mb: Option<f64>,
    /// Files per chunk folder of a new dataset (a resumed one keeps its own).
    pub chunks_size: u32,
    pub queue: QueueLimits,
    /// fsync every commit (survives power loss). Without it a commit survives `kill -9`.
    pub durable: bool,
    /// Stop requests (signals, or the caller): a request that arrives while `finalize` waits
    /// ends the wait promptly with valid files (see [`reel_core::stop`]).
    pub stop: reel_core::StopToken,
    /// Who writes, as named to a second writer that is refused ("reel record", ...).
    pub owner: String,
}

/// How [`DatasetWriter::open`] treats what is at the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenMode {
    /// A new dataset: the root must not exist or be an empty directory.
    #[default]
    Create,
    /// Add episodes to the dataset at the root.
    Resume,
    /// Replace the LeRobot dataset at the root (only after every option and encoder has been
    /// validated, and only if it really is a LeRobot dataset: see [`reel_dataset::overwrite`]).
    Overwrite,
}

impl WriterConfig {
    /// Takes the encoders, fallbacks and watchdog of an [`EncoderPlan`](crate::plan::EncoderPlan).
    pub fn with_plan(mut self, plan: &crate::plan::EncoderPlan) -> WriterConfig {
        self.encoder = plan.live.clone();
        self.deferred = plan.final_codec.clone();
        self.fallbacks = plan.fallbacks.clone();
        self.watchdog = plan.watchdog;
        self
    }

    /// LeRobot's defaults for everything but the root, fps and features.
    pub fn new(root: impl Into<PathBuf>, fps: u32, features: Features) -> WriterConfig {
        WriterConfig {
            root: root.into(),
            fps,
            robot_type: None,
            features,
            encoder: EncoderSettings::lerobot_default(),
            depth: Default::default(),
            deferred: None,
            fallbacks: Vec::new(),
            watchdog: Watchdog::default(),
            data_files_size_mb: None,
            video_files_size_mb: None,
            chunks_size: paths::DEFAULT_CHUNKS_SIZE,
            queue: QueueLimits::default(),
            durable: true,
            stop: reel_core::StopToken::new(),
            owner: "a reel writer".into(),
        }
    }
}

/// What happened to one saved episode.
#[derive(Debug, Clone)]
pub struct EpisodeSaved {
    pub episode_index: u64,
    pub frames: u64,
    pub data_file: FileIndex,
    pub videos: Vec<VideoRef>,
    /// Frames of this episode that went through the disk spill, per camera.
    pub spilled: Vec<(String, u64)>,
    /// Deepest queue seen during this episode, per camera (frames).
    pub max_queue_depth: Vec<(String, u64)>,
    /// Encoder switches during this episode, per camera ("" when none).
    pub switches: Vec<(String, String)>,
    /// Frames per second the encoder achieved on this episode, per camera (CPU time of encoding).
    pub encode_fps: Vec<(String, f64)>,
    /// Seconds from `save_episode` to the commit (waiting for encoders included).
    pub latency_s: f64,
    /// Seconds spent writing the transaction itself.
    pub commit_s: f64,
}

impl EpisodeSaved {
    /// "episode 3 saved: 300 frames, data file 000/000, 0 spilled frames, committed 64 ms
    /// after the save request (transaction 12.1 ms)".
    pub fn line(&self) -> String {
        let spilled: u64 = self.spilled.iter().map(|(_, n)| n).sum();
        format!(
            "episode {} saved: {} frames, data file {:03}/{:03}, {} spilled frames, committed {:.0} ms after the save request (transaction {:.1} ms)",
            self.episode_index,
            self.frames,
            self.data_file.chunk,
            self.data_file.file,
            spilled,
            self.latency_s * 1e3,
            self.commit_s * 1e3
        )
    }
}

/// Live view of the writer's queues, for progress lines.
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    /// Frames handed over and not yet encoded, per camera.
    pub queued: Vec<(String, u64)>,
    /// Frames currently spilled to disk, per camera.
    pub spilled_now: Vec<(String, u64)>,
    /// Frames spilled since the writer opened (all cameras).
    pub spilled_total: u64,
    /// Episodes saved by the caller and not yet committed.
    pub pending_saves: usize,
    /// Committed episodes waiting for (or in) the deferred conversion to the final codec.
    pub deferred_episodes: usize,
    /// Their frames (all cameras).
    pub deferred_frames: u64,
    /// Frames waiting in each camera's final lane (deferred final codec).
    pub final_queued: Vec<(String, u64)>,
}

/// What [`DatasetWriter::finalize_report`] did.
#[derive(Debug, Clone, Default)]
pub struct Finalized {
    /// Episodes committed since the last poll.
    pub saved: Vec<EpisodeSaved>,
    /// Seconds spent waiting for the deferred conversion's backlog (0 without one).
    pub deferred_wait_s: f64,
    /// Video files swapped to the final codec.
    pub converted_files: usize,
    /// A stop request ended the conversion to the final codec early.
    pub conversion_stopped: bool,
    /// Cameras whose files of this session stay in the live codec (conversion stopped or
    /// failed); `reel reencode` converts them.
    pub live_codec_cameras: Vec<String>,
    /// Episodes converted per camera: (camera, by its final lane, by transcoding the live file).
    pub final_routes: Vec<(String, u64, u64)>,
}

/// While held, no episode starts committing: the dataset's files stay exactly as they are
/// (an upload reads a consistent dataset), while `add_frame` and `save_episode` go on and
/// saves queue up. Taken with [`DatasetWriter::commit_gate`]; dropping it opens the gate.
/// It may be held on any thread.
#[must_use = "the gate opens when this is dropped"]
pub struct CommitGate {
    shared: Arc<Shared>,
}

impl Drop for CommitGate {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.gate_holders = st.gate_holders.saturating_sub(1);
        drop(st);
        self.shared.cv.notify_all();
    }
}

/// Closes the commit gate of one writer from anywhere ([`DatasetWriter::gates`]).
#[derive(Clone)]
pub struct CommitGates {
    shared: Arc<Shared>,
}

impl CommitGates {
    /// See [`DatasetWriter::commit_gate`].
    pub fn close(&self) -> CommitGate {
        let mut st = self.shared.lock();
        st.gate_holders += 1;
        while st.in_transaction && !self.shared.committer_done.load(Ordering::SeqCst) {
            st = self
                .shared
                .cv
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(st);
        CommitGate {
            shared: self.shared.clone(),
        }
    }
}

/// Writes a LeRobot v3.0 dataset. See the module doc.
pub struct DatasetWriter {
    root: PathBuf,
    features: Features,
    columns: ColumnBuffers,
    tasks: Vec<String>,
    tasks_at_episode_start: usize,
    episode_tasks: Vec<String>,
    frames_in_episode: u64,
    cameras: Vec<CameraPipeline>,
    next_seq: u64,
    jobs: Option<Sender<Job>>,
    committer: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    finalized: bool,
    deferred: Option<DeferredTranscoder>,
    final_settings: Option<EncoderSettings>,
    durable: bool,
    stop: reel_core::StopToken,
    /// The dataset's codec per camera when this session opened it (resume only).
    codecs_before: Vec<(String, String)>,
    /// Held from open to the end of `finalize`: one writer per dataset.
    lock: Option<DatasetLock>,
    /// Per-tick timing of the episode in progress (at most one per frame added).
    ticks: Vec<reel_core::tick::TickRecord>,
    /// Side-stream samples of the episode in progress (see [`reel_dataset::streams`]).
    streams: reel_dataset::streams::StreamBuffers,
}

/// Episodes per row group of the episodes table. LeRobot buffers 10 rows in memory until
/// `finalize`; reel writes every row at save time and merges it into the file's last row
/// group, so a group holds up to this many episodes and the footer grows 50x slower.
pub const EPISODES_PER_ROW_GROUP: usize = 50;

fn journal_path(root: &Path) -> PathBuf {
    paths::reel_dir(root).join("journal")
}

/// True when an unfinished save (a crash) waits to be rolled back.
pub fn journal_pending(root: &Path) -> bool {
    journal::pending(&journal_path(root))
}

/// Rolls back an unfinished save left by a crash. Returns true if there was one.
pub fn recover(root: &Path) -> Result<bool> {
    let jp = journal_path(root);
    if journal::pending(&jp) {
        let n = journal::recover(&jp, root)?;
        tracing::warn!(
            "rolled back an unfinished episode save ({n} file changes undone) in {}",
            root.display()
        );
        return Ok(true);
    }
    Ok(false)
}

/// A new dataset's info.json: the configured file-size limits, and for every camera the block
/// its files will have (the live encoder's codec at the camera's size), so that info.json
/// describes the files even if the process dies before the first episode is committed. The
/// first commit checks the block against the real file (and the deferred swap rewrites it).
fn new_info(cfg: &WriterConfig) -> Result<Info> {
    let mut info = Info::new(cfg.fps, cfg.features.clone(), cfg.robot_type.clone());
    info.data_files_size_in_mb = cfg
        .data_files_size_mb
        .unwrap_or(paths::DEFAULT_DATA_FILE_SIZE_MB);
    info.video_files_size_in_mb = cfg
        .video_files_size_mb
        .unwrap_or(paths::DEFAULT_VIDEO_FILE_SIZE_MB);
    info.chunks_size = cfg.chunks_size;
    for (key, f) in cfg.features.iter() {
        if let Some((h, w)) = f.video_hw() {
            let (enc, fields) = if f.is_depth() {
                (&cfg.depth.encoder, cfg.depth.info_fields())
            } else {
                (&cfg.encoder, cfg.encoder.info_fields())
            };
            let codec = enc.codec_family()?;
            info.video_info.push((
                key.to_string(),
                reel_dataset::info::VideoInfo::for_stream(
                    &codec,
                    w,
                    h,
                    cfg.fps,
                    &enc.pix_fmt,
                    &fields,
                ),
            ));
        }
    }
    Ok(info)
}

/// True when `root` holds entries other than reel's own `.reel` folder.
fn has_foreign_entries(root: &Path) -> Result<bool> {
    match fs::read_dir(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("read", root, e)),
        Ok(rd) => Ok(rd.flatten().any(|e| e.file_name() != ".reel")),
    }
}

impl DatasetWriter {
    /// Fails at once with [`Error::Locked`] (naming the holder) when another writer holds the
    /// dataset at `root`. Front ends call it before slow preparations (probing encoders,
    /// opening cameras) so a second writer is refused within milliseconds; [`open`](Self::open)
    /// takes the lock itself either way.
    pub fn check_available(root: &Path) -> Result<()> {
        match reel_dataset::lock::holder(root) {
            Some(holder) => Err(Error::Locked {
                path: root.to_path_buf(),
                holder,
            }),
            None => Ok(()),
        }
    }

    /// Creates, resumes or overwrites the dataset at `cfg.root` (see [`OpenMode`]). Every
    /// option and encoder is validated before anything on disk changes; the dataset's lock
    /// ([`reel_dataset::lock`]) is taken before anything is read for writing, so a second writer is
    /// refused at once with the holder named.
    pub fn open(cfg: WriterConfig, mode: OpenMode) -> Result<DatasetWriter> {
        match mode {
            OpenMode::Create => Self::create(cfg),
            OpenMode::Resume => Self::resume(cfg),
            OpenMode::Overwrite => {
                validate_config(&cfg)?;
                let root = cfg.root.clone();
                if has_foreign_entries(&root)? {
                    reel_dataset::overwrite::check_is_dataset(&root)?;
                }
                let lock = if root.is_dir() {
                    Some(DatasetLock::acquire(
                        &root,
                        LockMode::Exclusive,
                        &cfg.owner,
                    )?)
                } else {
                    None
                };
                reel_dataset::overwrite::remove_dataset(&root, lock.is_some())?;
                Self::create_validated(cfg, lock)
            }
        }
    }

    /// Creates a new dataset at `cfg.root` (which must not exist, or be an empty directory).
    pub fn create(cfg: WriterConfig) -> Result<DatasetWriter> {
        validate_config(&cfg)?;
        Self::create_validated(cfg, None)
    }

    fn create_validated(cfg: WriterConfig, lock: Option<DatasetLock>) -> Result<DatasetWriter> {
        let root = cfg.root.clone();
        let not_empty = || {
            Error::invalid(format!(
                "{} already exists and is not empty: use --resume to add episodes to it, or choose another --root",
                root.display()
            ))
        };
        if lock.is_none() && has_foreign_entries(&root)? {
            return Err(not_empty());
        }
        fs::create_dir_all(&root).map_err(|e| Error::io("create dataset root", &root, e))?;
        let lock = match lock {
            Some(l) => l,
            None => DatasetLock::acquire(&root, LockMode::Exclusive, &cfg.owner)?,
        };
        // Another creator may have filled the folder between the check and the lock.
        if has_foreign_entries(&root)? {
            return Err(not_empty());
        }
        probe_writable(&root)?;
        let info = new_info(&cfg)?;
        info.write_new(&root, cfg.durable)?;
        reel_core::faultpoint::hit("create.info");
        let state = CommitState::fresh(&cfg, info);
        Self::start(cfg, state, Vec::new(), lock)
    }

    /// Opens an existing dataset to add episodes. Takes the dataset's lock, rolls back an
    /// unfinished save, then checks that fps, features and robot type match `cfg` (error
    /// listing every mismatch).
    pub fn resume(mut cfg: WriterConfig) -> Result<DatasetWriter> {
        validate_config(&cfg)?;
        if !paths::info_file(&cfg.root).is_file() {
            return Err(Error::invalid(format!(
                "cannot resume {}: no meta/info.json there",
                cfg.root.display()
            )));
        }
        let lock = DatasetLock::acquire(&cfg.root, LockMode::Exclusive, &cfg.owner)?;
        let r = resume::open_existing(&mut cfg)?;
        let mut w = Self::start(cfg, r.state, r.tasks, lock)?;
        w.codecs_before = r.codecs_before;
        Ok(w)
    }

    fn start(
        cfg: WriterConfig,
        state: CommitState,
        task_list: Vec<String>,
        lock: DatasetLock,
    ) -> Result<DatasetWriter> {
        reel_media::init();
        let root = cfg.root.clone();
        // The journal was recovered by now (resume), so a leftover conversion can go.
        if let Some(msg) = deferred::remove_leftovers(&root)? {
            tracing::warn!("{}: {msg}", root.display());
        }
        let n_cams = cfg
            .features
            .iter()
            .filter(|(_, f)| f.video_hw().is_some() && !f.is_depth())
            .count();
        let mut transcoder = match &cfg.deferred {
            Some(fin) => {
                // One transcode worker per camera, at most one per core.
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                Some(DeferredTranscoder::start(
                    &root,
                    fin.clone(),
                    n_cams.clamp(1, cores),
                )?)
            }
            None => None,
        };
        let queue = transcoder.as_mut().and_then(|t| t.take_queue());
        let mut cameras = Vec::new();
        for (key, f) in cfg.features.iter() {
            if let Some((h, w)) = f.video_hw() {
                let dir = segment_dir(&root, key);
                if dir.exists() {
                    let _ = fs::remove_dir_all(&dir); // leftovers of a crashed session: never part of the dataset
                }
                // A depth camera records LeRobot's depth codec live (lossless 12-bit HEVC:
                // no final codec to defer to); a second instance replaces a failed one.
                let (chain, depth) = if f.is_depth() {
                    let table = Arc::new(cfg.depth.quant.table()?);
                    (vec![cfg.depth.encoder.clone(); 2], Some(table))
                } else {
                    (encoder_chain(&cfg), None)
                };
                cameras.push(CameraPipeline::start(
                    key,
                    &dir,
                    PipelineConfig {
                        width: w,
                        height: h,
                        fps: cfg.fps,
                        final_lane: match (&cfg.deferred, &transcoder) {
                            // A zero final spill budget means no final lane: every episode
                            // is transcoded from its committed live file.
                            (Some(fin), Some(t))
                                if cfg.queue.max_final_spill_bytes > 0 && depth.is_none() =>
                            {
                                Some((fin.clone(), t.sink(key)))
                            }
                            _ => None,
                        },
                        chain,
                        depth,
                        limits: cfg.queue,
                        watchdog: cfg.watchdog,
                    },
                )?);
            }
        }
        let shared = Arc::new(Shared {
            status: std::sync::Mutex::new(Status {
                total_episodes: state.info.total_episodes,
                total_frames: state.info.total_frames,
                ..Default::default()
            }),
            ..Default::default()
        });
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let receivers = cameras
            .iter()
            .map(|c| (c.key().to_string(), c.results().clone()))
            .collect();
        let committer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("committer".into())
                .spawn(move || committer::committer_loop(state, rx, receivers, shared, queue))
                .map_err(|e| Error::io("spawn committer", &root, e))?
        };
        let n = task_list.len();
        Ok(DatasetWriter {
            columns: ColumnBuffers::new(&cfg.features),
            root: cfg.root,
            features: cfg.features,
            tasks: task_list,
            tasks_at_episode_start: n,
            episode_tasks: Vec::new(),
            frames_in_episode: 0,
            cameras,
            next_seq: 0,
            jobs: Some(tx),
            committer: Some(committer),
            shared,
            finalized: false,
            deferred: transcoder,
            final_settings: cfg.deferred,
            durable: cfg.durable,
            stop: cfg.stop,
            codecs_before: Vec::new(),
            lock: Some(lock),
            ticks: Vec::new(),
            streams: Default::default(),
        })
    }

    /// The dataset root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The user features.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Frames added to the episode in progress.
    pub fn frames_in_episode(&self) -> u64 {
        self.frames_in_episode
    }

    /// Adds one row. Cheap and non-blocking: validates, appends numbers to column buffers,
    /// hands camera frames to their pipelines.
    pub fn add_frame(&mut self, row: RowValues) -> Result<()> {
        self.check_failed()?;
        if self.finalized {
            return Err(Error::invalid(
                "add_frame after finalize: the writer is closed",
            ));
        }
        row.validate(&self.features)?;
        let task_index = match self.tasks.iter().position(|t| *t == row.task) {
            Some(i) => i,
            None => {
                self.tasks.push(row.task.clone());
                self.tasks.len() - 1
            }
        };
        if !self.episode_tasks.contains(&row.task) {
            self.episode_tasks.push(row.task.clone());
        }
        self.columns.push(&row, task_index as i64)?;
        let mut cam = 0;
        for (name, f) in self.features.iter() {
            if f.dtype == Dtype::Video {
                if let Some(Value::Video(frame)) = row.get(name) {
                    self.cameras[cam].push(frame.clone())?;
                }
                cam += 1;
            }
        }
        self.frames_in_episode += 1;
        Ok(())
    }

    /// Adds the timing of the tick that produced the last frame added (stored per tick in
    /// `meta/reel/ticks/`, see [`reel_dataset::ticks`]). O(1): copies the fixed-size record into the
    /// episode's buffer; the writer fills in each camera's encoder queue depth. Ticks beyond
    /// the frames added so far are ignored, so the buffer never outgrows the episode.
    pub fn add_tick(&mut self, mut tick: reel_core::tick::TickRecord) {
        if (self.ticks.len() as u64) < self.frames_in_episode {
            self.fill_queue_depths(&mut tick);
            self.ticks.push(tick);
        }
    }

    /// Adds samples of side stream `stream` to the episode in progress: `t_ns[i]` is sample
    /// `i`'s capture time (monotonic ns, the camera frames' clock), `values` holds the same
    /// number of values for each sample, row after row. The stream is declared by its first
    /// sample in the episode (dtype, width); see [`reel_dataset::streams`]. Appends to the episode's
    /// buffer only (chunked, no copy of earlier samples): the samples are written with the
    /// episode, in its transaction, on the committer's thread.
    pub fn add_samples(
        &mut self,
        stream: &str,
        t_ns: &[i64],
        values: reel_dataset::streams::SampleValues<'_>,
    ) -> Result<()> {
        self.check_failed()?;
        if self.finalized {
            return Err(Error::invalid(
                "add_samples after finalize: the writer is closed",
            ));
        }
        self.streams.add(stream, t_ns, values)
    }

    /// Records the interval of the clock `[from_ns, to_ns]` the episode's side streams were
    /// cut to by the loop that fed them (stored in each stream file's metadata).
    pub fn set_stream_span(&mut self, from_ns: i64, to_ns: i64) {
        self.streams.set_span(from_ns, to_ns);
    }

    /// Reserves room for `n` ticks in the episode's buffer, so that [`add_tick`](Self::add_tick)
    /// does not reallocate mid-episode (call it when an episode starts).
    pub fn reserve_ticks(&mut self, n: usize) {
        self.ticks.reserve(n.saturating_sub(self.ticks.len()));
    }

    /// Writes each camera's encoder backlog (frames handed over and not yet encoded) into
    /// `tick.cameras[i].queued`: a few atomic loads, no lock, no allocation.
    pub fn fill_queue_depths(&self, tick: &mut reel_core::tick::TickRecord) {
        for (slot, c) in tick.cameras.iter_mut().zip(&self.cameras) {
            slot.queued = c
                .counters()
                .queued
                .load(Ordering::Relaxed)
                .min(u32::MAX as u64) as u32;
        }
        let n = self.cameras.len().min(reel_core::tick::MAX_TICK_CAMERAS) as u8;
        tick.n_cameras = tick.n_cameras.max(n);
    }

    /// Ends the episode in progress and queues its commit. Returns at once; the episode is
    /// saved when [`wait_saved`](Self::wait_saved) says so (or [`poll_saved`](Self::poll_saved)).
    /// `extra` are per-episode figures stored as `reel/<name>` columns of the episodes table.
    pub fn save_episode(&mut self, extra: Vec<(String, ExtraValue)>) -> Result<u64> {
        self.check_failed()?;
        if self.frames_in_episode == 0 {
            return Err(Error::invalid(
                "cannot save an empty episode: add frames first",
            ));
        }
        if self.frames_in_episode < 2 && !self.cameras.is_empty() {
            // The commit would fail (image statistics need 2 frames) and stop the writer:
            // refuse now, keeping the frame, so the caller can add more or discard it.
            return Err(Error::invalid(
                "cannot save an episode of 1 frame: LeRobot needs at least 2 frames per episode with cameras; add frames or discard it",
            ));
        }
        let jobs = self
            .jobs
            .clone()
            .ok_or_else(|| Error::invalid("save_episode after finalize: the writer is closed"))?;
        let seq = self.next_seq;
        self.next_seq += 1;
        for c in &self.cameras {
            c.end_episode(seq)?;
        }
        let columns = std::mem::replace(&mut self.columns, ColumnBuffers::new(&self.features));
        let job = Job {
            seq,
            columns,
            tasks: self.tasks.clone(),
            episode_tasks: std::mem::take(&mut self.episode_tasks),
            frames: self.frames_in_episode,
            extra,
            ticks: std::mem::take(&mut self.ticks),
            streams: std::mem::take(&mut self.streams),
            queued_at: Instant::now(),
        };
        self.shared.lock().pending += 1;
        if jobs.send(job).is_err() {
            self.shared.lock().pending -= 1;
            return Err(self.committer_gone());
        }
        self.frames_in_episode = 0;
        self.tasks_at_episode_start = self.tasks.len();
        Ok(seq)
    }

    /// Drops the episode in progress (frames, segment, tasks it introduced).
    pub fn discard_episode(&mut self) -> Result<()> {
        for c in &self.cameras {
            c.discard_episode()?;
        }
        self.columns.clear();
        self.ticks.clear();
        self.streams.clear();
        self.tasks.truncate(self.tasks_at_episode_start);
        self.episode_tasks.clear();
        self.frames_in_episode = 0;
        Ok(())
    }

    /// Episodes committed since the last call (non-blocking).
    pub fn poll_saved(&self) -> Vec<EpisodeSaved> {
        std::mem::take(&mut self.shared.lock().committed)
    }

    /// Waits until every queued save is committed; returns them, or the first save error.
    /// Notices a committer that died (an error naming it, never a hang).
    pub fn wait_saved(&self) -> Result<Vec<EpisodeSaved>> {
        self.wait_saved_timeout(None)
    }

    /// [`wait_saved`](Self::wait_saved) for at most `timeout` (None: no limit). When the time
    /// is up the episodes committed so far are returned; [`backlog`](Self::backlog) says what
    /// is still pending.
    pub fn wait_saved_timeout(&self, timeout: Option<Duration>) -> Result<Vec<EpisodeSaved>> {
        let t0 = Instant::now();
        let mut st = self.shared.lock();
        while st.pending > 0 {
            if self.committer.as_ref().is_none_or(|h| h.is_finished()) {
                drop(st);
                return Err(self.committer_gone());
            }
            if timeout.is_some_and(|t| t0.elapsed() >= t) {
                break;
            }
            st = self
                .shared
                .cv
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if let Some(e) = st.errors.first() {
            return Err(e.clone());
        }
        Ok(std::mem::take(&mut st.committed))
    }

    /// The error for a committer thread that is no longer there.
    fn committer_gone(&self) -> Error {
        let st = self.shared.lock();
        if let Some(e) = st.errors.first() {
            return e.clone();
        }
        Error::ThreadDied {
            what: "the committer thread".into(),
            msg: format!(
                "{} queued episode(s) were not saved; every committed episode is on disk",
                st.pending
            ),
        }
    }

    /// Closes the commit gate (see [`CommitGate`]) and returns once no transaction is being
    /// written, so the files are consistent for as long as the gate is held. Episodes whose
    /// save was queued before stay queued: call [`wait_saved`](Self::wait_saved) first to
    /// have them on disk. A transaction takes milliseconds; this never waits on encoders.
    pub fn commit_gate(&self) -> CommitGate {
        self.gates().close()
    }

    /// A handle that closes the commit gate without borrowing the writer (from another
    /// thread, while the loop keeps the writer busy).
    pub fn gates(&self) -> CommitGates {
        CommitGates {
            shared: self.shared.clone(),
        }
    }

    /// Saves the episode in progress and waits for its commit.
    pub fn save_episode_and_wait(
        &mut self,
        extra: Vec<(String, ExtraValue)>,
    ) -> Result<EpisodeSaved> {
        self.save_episode(extra)?;
        let mut saved = self.wait_saved()?;
        saved
            .pop()
            .ok_or_else(|| Error::invalid("episode save produced no result"))
    }

    /// Queues, spill and pending saves right now.
    pub fn backlog(&self) -> Backlog {
        let mut b = Backlog::default();
        for c in &self.cameras {
            let k = c.counters();
            b.queued
                .push((c.key().to_string(), k.queued.load(Ordering::Relaxed)));
            b.spilled_now
                .push((c.key().to_string(), k.spilled_now.load(Ordering::Relaxed)));
            b.spilled_total += k.spilled_total.load(Ordering::Relaxed);
            if let Some(f) = c.final_counters() {
                b.final_queued
                    .push((c.key().to_string(), f.queued.load(Ordering::Relaxed)));
            }
        }
        b.pending_saves = self.shared.lock().pending;
        if let Some(t) = &self.deferred {
            (b.deferred_episodes, b.deferred_frames) = t.backlog();
        }
        b
    }

    /// Committed totals (episodes, frames).
    pub fn totals(&self) -> (u64, u64) {
        let st = self.shared.lock();
        (st.total_episodes, st.total_frames)
    }

    fn check_failed(&self) -> Result<()> {
        match self.shared.lock().errors.first() {
            Some(e) => Err(e.clone().context("an earlier episode save failed")),
            None => Ok(()),
        }
    }

    /// Discards an unsaved episode, waits for queued saves, stops the pipelines and removes
    /// reel's scratch files. The dataset is complete after each commit; this only tidies up.
    pub fn finalize(mut self) -> Result<Vec<EpisodeSaved>> {
        self.finish().map(|f| f.saved)
    }

    /// [`finalize`](Self::finalize), also saying how long the deferred conversion kept it.
    /// With [`WriterConfig::deferred`]: waits for the conversion backlog (progress logged
    /// every 2 s), then swaps this session's video files to the final codec (with info.json)
    /// in one journaled transaction.
    ///
    /// A stop request ([`WriterConfig::stop`]) that arrives during these waits ends them
    /// promptly: queued episodes not yet encoded are dropped (said in the error), the
    /// conversion stops and the dataset keeps its live codec. Every file stays valid.
    pub fn finalize_report(mut self) -> Result<Finalized> {
        self.finish()
    }

    /// Waits for the queued saves, logging progress every 2 s; a stop request since `mark`
    /// aborts the queue (the transaction in progress completes, the rest is dropped).
    fn wait_for_commits(&self, mark: StopMark) -> Result<Vec<EpisodeSaved>> {
        let t0 = Instant::now();
        let mut last_log = Instant::now();
        loop {
            let pending = {
                let st = self.shared.lock();
                if st.pending == 0 {
                    break;
                }
                let st = self
                    .shared
                    .cv
                    .wait_timeout(st, Duration::from_millis(100))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                st.pending
            };
            if pending == 0 {
                break;
            }
            if self.committer.as_ref().is_none_or(|h| h.is_finished()) {
                return Err(self.committer_gone());
            }
            if self.stop.requested_since(mark) {
                return Err(self.abort_queue(pending));
            }
            if last_log.elapsed() >= Duration::from_secs(2) {
                last_log = Instant::now();
                let b = self.backlog();
                tracing::info!(
                    "waiting for {} episode(s) still being encoded ({:.0} s so far; queued frames {:?}, on disk {:?}); Ctrl-C again to stop now",
                    b.pending_saves,
                    t0.elapsed().as_secs_f64(),
                    b.queued,
                    b.spilled_now
                );
            }
        }
        self.wait_saved()
    }

    /// Stop now: the committer finishes the transaction in progress (if any) and drops the
    /// queued episodes; the cameras stop encoding.
    fn abort_queue(&self, pending: usize) -> Error {
        self.shared.abort.store(true, Ordering::SeqCst);
        for c in &self.cameras {
            c.abort();
        }
        tracing::warn!(
            "stop requested: dropping {pending} episode(s) still being encoded; every committed episode is on disk"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.shared.lock().pending > 0
            && Instant::now() < deadline
            && self.committer.as_ref().is_some_and(|h| !h.is_finished())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let st = self.shared.lock();
        Error::Interrupted(format!(
            "{} saved episode(s) still being encoded were dropped; every committed episode is on disk",
            st.dropped + st.pending as u64
        ))
    }

    fn finish(&mut self) -> Result<Finalized> {
        if self.finalized {
            return Ok(Finalized::default());
        }
        self.finalized = true;
        let mark = self.stop.mark();
        if self.frames_in_episode > 0 {
            self.discard_episode()?;
        }
        // The control loop is over (finalize is called after it): nothing real-time is left
        // to protect, so the conversion to the final codec may use the whole machine.
        match &self.deferred {
            Some(t) => t.raise(),
            None => {
                // The live encoders' backlog (if any) is all that is left: let it use the machine.
                reel_core::sched::raise_background_threads(
                    reel_core::sched::Policy::Normal { nice: 0 },
                    true,
                );
            }
        }
        let result = self.wait_for_commits(mark);
        self.jobs = None;
        if let Some(h) = self.committer.take() {
            if self.shared.abort.load(Ordering::SeqCst) && !h.is_finished() {
                // Only reachable when a transaction outlived the abort deadline: leave it; its
                // journal makes the next open roll it back.
                tracing::warn!(
                    "the committer is still writing; leaving it (the journal protects the dataset)"
                );
            } else if let Err(p) = h.join() {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into());
                tracing::error!("the committer thread panicked: {msg}");
            }
        }
        // The live encoders are done; final lanes keep working through their queues.
        for c in &mut self.cameras {
            c.close();
        }
        let mut out = Finalized::default();
        if let Some(t) = self.deferred.take() {
            self.finish_conversion(t, result.is_ok(), mark, &mut out)?;
        }
        for c in &mut self.cameras {
            c.close();
        }
        if result.is_err() {
            // The caller gets the error, not the list: say here which episodes are saved.
            for s in self.poll_saved() {
                tracing::info!("{}", s.line());
            }
        }
        let scratch = paths::reel_dir(&self.root);
        let _ = fs::remove_dir_all(scratch.join("segments"));
        if let Some(mut l) = self.lock.take() {
            l.release();
        }
        if !journal::pending(&journal_path(&self.root)) {
            let _ = fs::remove_dir(&scratch); // only if empty
        }
        out.saved = result?;
        Ok(out)
    }

    /// Waits for the conversion to the final codec and swaps it in (see `finalize_report`).
    /// A stop request swaps in the cameras already complete and leaves the others in the live
    /// codec; a failed session swaps nothing.
    fn finish_conversion(
        &mut self,
        mut t: DeferredTranscoder,
        session_ok: bool,
        mark: StopMark,
        out: &mut Finalized,
    ) -> Result<()> {
        // Depth cameras record their final codec live: nothing of theirs is converted.
        let is_depth = |k: &str| self.features.get(k).is_some_and(|f| f.is_depth());
        let keys: Vec<String> = self
            .cameras
            .iter()
            .map(|c| c.key().to_string())
            .filter(|k| !is_depth(k))
            .collect();
        let videos: Vec<(u64, VideoRef)> = std::mem::take(&mut self.shared.lock().session_videos)
            .into_iter()
            .filter(|(_, v)| !is_depth(&v.key))
            .collect();
        let swap = |failed: &[(String, u64, String)]| -> Result<usize> {
            match &self.final_settings {
                Some(fin) => swap::swap_in_final_codec(
                    &self.root,
                    fin,
                    self.durable,
                    &videos,
                    failed,
                    &self.codecs_before,
                ),
                None => Ok(0),
            }
        };
        let conv: Result<usize> = if !session_ok {
            // Nothing is swapped after a failed or stopped session: the live codec stays.
            t.cancel(Duration::from_millis(300));
            Err(Error::Interrupted("the session did not finish".into()))
        } else {
            match t.finish(&self.stop, mark) {
                Ok(o) => {
                    out.deferred_wait_s = o.wait_s;
                    out.final_routes = o.routes;
                    out.live_codec_cameras = o.failed.iter().map(|f| f.0.clone()).collect();
                    out.live_codec_cameras.dedup();
                    swap(&o.failed)
                }
                Err(e) if e.is_interrupted() => {
                    out.conversion_stopped = true;
                    let done = t.complete_cameras(&keys);
                    let stopped: Vec<(String, u64, String)> = keys
                        .iter()
                        .filter(|k| !done.contains(k))
                        .map(|k| (k.clone(), 0, "the conversion was stopped".to_string()))
                        .collect();
                    out.live_codec_cameras = stopped.iter().map(|s| s.0.clone()).collect();
                    if done.is_empty() {
                        Err(e)
                    } else {
                        swap(&stopped)
                    }
                }
                Err(e) => Err(e),
            }
        };
        // After a stop, an aborted encoder may still be flushing: wait a little, then leave it.
        let until = Instant::now()
            + if conv.is_ok() && !out.conversion_stopped {
                Duration::from_secs(5)
            } else {
                Duration::from_millis(300)
            };
        for c in &mut self.cameras {
            c.join_final_lane(until);
        }
        let how = self
            .final_settings
            .as_ref()
            .map(|s| s.vcodec.as_str())
            .unwrap_or("libsvtav1");
        match conv {
            Ok(n) => {
                out.converted_files = n;
                let dir = deferred::deferred_dir(&self.root);
                if dir.exists() {
                    fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
                }
                if !out.live_codec_cameras.is_empty() {
                    tracing::warn!(
                        "cameras {:?} keep their live codec (info.json says which); `reel reencode {} --vcodec {how}` converts them",
                        out.live_codec_cameras,
                        self.root.display()
                    );
                }
            }
            Err(e) => {
                out.live_codec_cameras = keys;
                let _ = recover(&self.root);
                let _ = deferred::remove_leftovers(&self.root);
                if e.is_interrupted() {
                    out.conversion_stopped = session_ok;
                    tracing::warn!(
                        "the conversion to the final codec was stopped ({e}): the dataset keeps its live codec (info.json says which); `reel reencode {} --vcodec {how}` converts it",
                        self.root.display()
                    );
                } else {
                    tracing::error!(
                        "the deferred conversion failed, the dataset keeps its live codec: {e}; `reel reencode {} --vcodec {how}` converts it",
                        self.root.display()
                    );
                }
            }
        }
        Ok(())
    }
}

impl Drop for DatasetWriter {
    fn drop(&mut self) {
        if !self.finalized {
            if let Err(e) = self.finish() {
                tracing::error!("finishing the dataset writer: {e}");
            }
        }
    }
}
