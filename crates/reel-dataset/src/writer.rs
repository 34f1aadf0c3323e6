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
//! With [`WriterConfig::deferred`] the cameras record in a fast live codec; after each
//! commit the episode's segment parts go to the [`deferred`](crate::deferred) transcoder
//! (idle priority), and `finalize` swaps the converted files of this session in, with
//! info.json, in one more journaled transaction.

use crate::camera::{
    segment_dir, CameraPipeline, PipelineConfig, QueueLimits, SegmentResult, Watchdog,
};
use crate::data::{self, ColumnBuffers};
use crate::deferred::{self, DeferredJob, DeferredQueue, DeferredTranscoder};
use crate::episodes::{self, EpisodeRecord, ExtraValue, VideoRef};
use crate::info::{Info, VideoInfo};
use crate::parquet_append;
use crate::paths::{self, FileIndex};
use crate::{stats_json, tasks};
use crossbeam_channel::{Receiver, Sender};
use reel_core::journal::{self, Journal};
use reel_core::{Dtype, Error, Features, Result, RowValues, Value};
use reel_media::EncoderSettings;
use reel_stats::FeatureStats;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// How to create or resume a dataset.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub root: PathBuf,
    pub fps: u32,
    pub robot_type: Option<String>,
    /// User features (cameras as `Dtype::Video` with shape `[h, w, 3]`).
    pub features: Features,
    pub encoder: EncoderSettings,
    /// The final codec when `encoder` is only a fast live one: committed episodes are
    /// converted to it in the background and swapped in at `finalize`. None: `encoder` is final.
    pub deferred: Option<EncoderSettings>,
    /// Encoders tried in order when the primary fails or hangs mid-episode (the frames it
    /// had not finished go to the next one). By default a fresh instance of the primary.
    pub fallbacks: Vec<EncoderSettings>,
    /// When an encoder counts as hung.
    pub watchdog: Watchdog,
    pub data_files_size_mb: f64,
    pub video_files_size_mb: f64,
    pub chunks_size: u32,
    pub queue: QueueLimits,
    /// fsync every commit (survives power loss). Without it a commit survives `kill -9`.
    pub durable: bool,
}

impl WriterConfig {
    /// LeRobot's defaults for everything but the root, fps and features.
    pub fn new(root: impl Into<PathBuf>, fps: u32, features: Features) -> WriterConfig {
        WriterConfig {
            root: root.into(),
            fps,
            robot_type: None,
            features,
            encoder: EncoderSettings::lerobot_default(),
            deferred: None,
            fallbacks: Vec::new(),
            watchdog: Watchdog::default(),
            data_files_size_mb: paths::DEFAULT_DATA_FILE_SIZE_MB,
            video_files_size_mb: paths::DEFAULT_VIDEO_FILE_SIZE_MB,
            chunks_size: paths::DEFAULT_CHUNKS_SIZE,
            queue: QueueLimits::default(),
            durable: true,
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
}

#[derive(Default)]
struct Status {
    pending: usize,
    committed: Vec<EpisodeSaved>,
    errors: Vec<String>,
    total_episodes: u64,
    total_frames: u64,
    /// Every video reference committed by this session, with its episode index.
    session_videos: Vec<(u64, VideoRef)>,
}

struct Job {
    seq: u64,
    columns: ColumnBuffers,
    tasks: Vec<String>,
    episode_tasks: Vec<String>,
    frames: u64,
    extra: Vec<(String, ExtraValue)>,
    queued_at: Instant,
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
    status: Arc<(Mutex<Status>, Condvar)>,
    finalized: bool,
    deferred: Option<DeferredTranscoder>,
    final_settings: Option<EncoderSettings>,
    durable: bool,
    /// The dataset's codec per camera when this session opened it (resume only).
    codecs_before: Vec<(String, String)>,
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

impl DatasetWriter {
    /// Creates a new dataset at `cfg.root` (which must not exist, or be an empty directory).
    pub fn create(cfg: WriterConfig) -> Result<DatasetWriter> {
        validate_config(&cfg)?;
        let root = cfg.root.clone();
        if root.exists() {
            let empty = fs::read_dir(&root)
                .map_err(|e| Error::io("read", &root, e))?
                .next()
                .is_none();
            if !empty {
                return Err(Error::invalid(format!(
                    "{} already exists and is not empty: use --resume to add episodes to it, or choose another --root",
                    root.display()
                )));
            }
        }
        fs::create_dir_all(&root).map_err(|e| Error::io("create dataset root", &root, e))?;
        probe_writable(&root)?;
        let info = Info::new(cfg.fps, cfg.features.clone(), cfg.robot_type.clone());
        let mut j = Journal::begin(&journal_path(&root), &root, cfg.durable)?;
        info.write(&root, &mut j)?;
        j.commit()?;
        let state = CommitState::fresh(&cfg, info);
        Self::start(cfg, state, Vec::new())
    }

    /// Opens an existing dataset to add episodes. Rolls back an unfinished save first, then
    /// checks that fps, features and robot type match `cfg` (error listing every mismatch).
    pub fn resume(cfg: WriterConfig) -> Result<DatasetWriter> {
        validate_config(&cfg)?;
        let root = cfg.root.clone();
        if !paths::info_file(&root).exists() {
            return Err(Error::invalid(format!(
                "cannot resume {}: no meta/info.json there",
                root.display()
            )));
        }
        probe_writable(&root)?;
        recover(&root)?;
        let info = Info::read(&root)?;
        let mut problems = Vec::new();
        if info.fps != cfg.fps {
            problems.push(format!(
                "fps is {} in the dataset, {} requested",
                info.fps, cfg.fps
            ));
        }
        if info.robot_type != cfg.robot_type {
            problems.push(format!(
                "robot_type is {:?} in the dataset, {:?} requested",
                info.robot_type, cfg.robot_type
            ));
        }
        for (name, f) in cfg.features.iter() {
            match info.features.get(name) {
                None => problems.push(format!("feature '{name}' is not in the dataset")),
                Some(g) if g.dtype != f.dtype || g.shape != f.shape => problems.push(format!(
                    "feature '{name}' is {} {:?} in the dataset, {} {:?} requested",
                    g.dtype.as_str(),
                    g.shape,
                    f.dtype.as_str(),
                    f.shape
                )),
                Some(g) if g.names != f.names && f.names.is_some() => problems.push(format!(
                    "feature '{name}' has names {:?} in the dataset, {:?} requested",
                    g.names, f.names
                )),
                _ => {}
            }
        }
        for (name, _) in info.features.iter() {
            if cfg.features.get(name).is_none() {
                problems.push(format!(
                    "the dataset has feature '{name}', which this session does not record"
                ));
            }
        }
        let mut codecs_before = Vec::new();
        for (key, vi) in &info.video_info {
            if let Some(codec) = vi
                .fields
                .iter()
                .find(|(k, _)| k == "video.codec")
                .and_then(|(_, v)| v.as_str())
            {
                let live = cfg.encoder.codec_family()?;
                let fin = match &cfg.deferred {
                    Some(d) => Some(d.codec_family()?),
                    None => None,
                };
                // With a deferred final codec, a dataset in either codec is fine: still in the
                // live codec (an earlier conversion was not finished) or already in the final one.
                if codec != live && fin.as_deref() != Some(codec) {
                    let want = fin.unwrap_or(live);
                    problems.push(format!("camera '{key}' is encoded as {codec} in the dataset, {want} requested (--vcodec)"));
                }
                codecs_before.push((key.clone(), codec.to_string()));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Mismatch(format!(
                "cannot resume {}: {}",
                root.display(),
                problems.join("; ")
            )));
        }
        let task_list = tasks::read(&root).or_else(|e| {
            if info.total_tasks == 0 {
                Ok(Vec::new())
            } else {
                Err(e)
            }
        })?;
        let records = if info.total_episodes > 0 {
            episodes::read_all(&root, &info.features)?
        } else {
            Vec::new()
        };
        let total: u64 = records.iter().map(|r| r.length).sum();
        let contiguous = records
            .iter()
            .enumerate()
            .all(|(i, r)| r.episode_index == i as u64);
        if records.len() as u64 != info.total_episodes || total != info.total_frames || !contiguous
        {
            return Err(Error::corrupt(
                paths::info_file(&root),
                format!(
                    "info.json says {} episodes / {} frames but meta/episodes holds {} episodes / {} frames{}; run `reel check --repair {}`",
                    info.total_episodes,
                    info.total_frames,
                    records.len(),
                    total,
                    if contiguous { "" } else { " (episode indices not contiguous)" },
                    root.display()
                ),
            ));
        }
        let stats = if info.total_episodes > 0 {
            Some(read_stats_with_flags(&root, &info.features)?)
        } else {
            None
        };
        let state = CommitState::resumed(&cfg, info, task_list.len(), records.last(), stats);
        let mut w = Self::start(cfg, state, task_list)?;
        w.codecs_before = codecs_before;
        Ok(w)
    }

    fn start(
        cfg: WriterConfig,
        state: CommitState,
        task_list: Vec<String>,
    ) -> Result<DatasetWriter> {
        reel_media::init();
        let root = cfg.root.clone();
        // The journal was recovered by now (resume), so a leftover conversion can go.
        if let Some(msg) = deferred::remove_leftovers(&root)? {
            tracing::warn!("{}: {msg}", root.display());
        }
        let mut transcoder = match &cfg.deferred {
            Some(fin) => Some(DeferredTranscoder::start(&root, fin.clone())?),
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
                cameras.push(CameraPipeline::start(
                    key,
                    &dir,
                    PipelineConfig {
                        width: w,
                        height: h,
                        fps: cfg.fps,
                        chain: encoder_chain(&cfg),
                        limits: cfg.queue,
                        watchdog: cfg.watchdog,
                    },
                )?);
            }
        }
        let status = Arc::new((
            Mutex::new(Status {
                total_episodes: state.info.total_episodes,
                total_frames: state.info.total_frames,
                ..Default::default()
            }),
            Condvar::new(),
        ));
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let receivers: Vec<(String, Receiver<std::result::Result<SegmentResult, String>>)> =
            cameras
                .iter()
                .map(|c| (c.key().to_string(), c.results().clone()))
                .collect();
        let committer = {
            let status = status.clone();
            std::thread::Builder::new()
                .name("committer".into())
                .spawn(move || committer_loop(state, rx, receivers, status, queue))
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
            status,
            finalized: false,
            deferred: transcoder,
            final_settings: cfg.deferred,
            durable: cfg.durable,
            codecs_before: Vec::new(),
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
            queued_at: Instant::now(),
        };
        self.status
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pending += 1;
        self.jobs
            .as_ref()
            .ok_or_else(|| Error::invalid("writer already finalized"))?
            .send(job)
            .map_err(|_| Error::invalid("the committer thread has stopped"))?;
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
        self.tasks.truncate(self.tasks_at_episode_start);
        self.episode_tasks.clear();
        self.frames_in_episode = 0;
        Ok(())
    }

    /// Episodes committed since the last call (non-blocking).
    pub fn poll_saved(&self) -> Vec<EpisodeSaved> {
        std::mem::take(
            &mut self
                .status
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .committed,
        )
    }

    /// Waits until every queued save is committed; returns them, or the first save error.
    pub fn wait_saved(&self) -> Result<Vec<EpisodeSaved>> {
        let (m, cv) = &*self.status;
        let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
        while st.pending > 0 && self.committer.as_ref().is_some_and(|h| !h.is_finished()) {
            st = cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if let Some(e) = st.errors.first() {
            return Err(Error::invalid(e.clone()));
        }
        Ok(std::mem::take(&mut st.committed))
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
        }
        b.pending_saves = self
            .status
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pending;
        if let Some(t) = &self.deferred {
            (b.deferred_episodes, b.deferred_frames) = t.backlog();
        }
        b
    }

    /// Committed totals (episodes, frames).
    pub fn totals(&self) -> (u64, u64) {
        let st = self.status.0.lock().unwrap_or_else(|p| p.into_inner());
        (st.total_episodes, st.total_frames)
    }

    fn check_failed(&self) -> Result<()> {
        let st = self.status.0.lock().unwrap_or_else(|p| p.into_inner());
        match st.errors.first() {
            Some(e) => Err(Error::invalid(format!(
                "an earlier episode save failed: {e}"
            ))),
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
    pub fn finalize_report(mut self) -> Result<Finalized> {
        self.finish()
    }

    fn finish(&mut self) -> Result<Finalized> {
        if self.finalized {
            return Ok(Finalized::default());
        }
        self.finalized = true;
        if self.frames_in_episode > 0 {
            self.discard_episode()?;
        }
        let result = self.wait_saved();
        self.jobs = None;
        if let Some(h) = self.committer.take() {
            let _ = h.join();
        }
        for c in &mut self.cameras {
            c.shutdown();
        }
        let mut out = Finalized::default();
        if let Some(mut t) = self.deferred.take() {
            let conv = t.finish().and_then(|o| {
                out.deferred_wait_s = o.wait_s;
                self.swap_in_final_codec(&o.failed)
            });
            match conv {
                Ok(n) => {
                    out.converted_files = n;
                    let dir = deferred::deferred_dir(&self.root);
                    if dir.exists() {
                        fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
                    }
                }
                Err(e) => {
                    let _ = recover(&self.root);
                    let _ = deferred::remove_leftovers(&self.root);
                    tracing::error!(
                        "the deferred conversion failed, the dataset keeps its live codec: {e}; `reel reencode {} --vcodec {}` converts it",
                        self.root.display(),
                        self.final_settings.as_ref().map(|s| s.vcodec.as_str()).unwrap_or("libsvtav1")
                    );
                }
            }
        }
        let scratch = paths::reel_dir(&self.root);
        let _ = fs::remove_dir_all(scratch.join("segments"));
        if !journal::pending(&journal_path(&self.root)) {
            let _ = fs::remove_dir(&scratch); // only if empty
        }
        out.saved = result?;
        Ok(out)
    }

    /// Builds the final-codec version of every video file this session wrote and swaps them
    /// all in, with info.json, in one transaction. Cameras with a failed conversion, or whose
    /// earlier files (a resumed dataset) are not in the final codec, keep the live codec.
    /// Returns the number of files swapped.
    fn swap_in_final_codec(&self, failed: &[(String, u64, String)]) -> Result<usize> {
        let Some(fin) = &self.final_settings else {
            return Ok(0);
        };
        let root = &self.root;
        let family = fin.codec_family()?;
        let videos = std::mem::take(
            &mut self
                .status
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .session_videos,
        );
        // (key, file) -> episodes in order
        let mut files: Vec<(String, FileIndex, Vec<u64>)> = Vec::new();
        for (ep, v) in &videos {
            match files
                .iter_mut()
                .find(|(k, f, _)| *k == v.key && *f == v.file)
            {
                Some((_, _, eps)) => eps.push(*ep),
                None => files.push((v.key.clone(), v.file, vec![*ep])),
            }
        }
        let mut skip: Vec<String> = Vec::new();
        for (key, ep, e) in failed {
            if !skip.contains(key) {
                tracing::warn!(
                    "camera {key} keeps its live codec: converting episode {ep} failed ({e})"
                );
                skip.push(key.clone());
            }
        }
        for (key, codec) in &self.codecs_before {
            if *codec != family && !skip.contains(key) {
                tracing::warn!(
                    "camera {key} keeps its live codec: the dataset's earlier files are {codec}; `reel reencode {} --vcodec {}` converts them all",
                    root.display(),
                    fin.vcodec
                );
                skip.push(key.clone());
            }
        }
        files.retain(|(k, _, _)| !skip.contains(k));
        if files.is_empty() {
            return Ok(0);
        }
        let dir = deferred::deferred_dir(root);
        // 1. Build each new file from the converted parts (scratch files: a throwaway journal).
        let mut built = Vec::new();
        for (key, file, eps) in &files {
            let old = paths::video_file(root, key, *file);
            let rel = old
                .strip_prefix(root)
                .map_err(|_| Error::invalid(format!("{} is outside the dataset", old.display())))?
                .to_path_buf();
            let new = dir.join("new").join(&rel);
            if let Some(d) = new.parent() {
                fs::create_dir_all(d).map_err(|e| Error::io("create dir", d, e))?;
            }
            if new.exists() {
                fs::remove_file(&new).map_err(|e| Error::io("remove", &new, e))?;
            }
            let mut j = Journal::begin(&dir.join("scratch-journal"), root, false)?;
            for ep in eps {
                let mut i = 0;
                loop {
                    let part = deferred::converted_path(root, key, *ep, i);
                    if !part.exists() {
                        break;
                    }
                    reel_media::mp4::append_segment(&new, &part, &mut j)?;
                    i += 1;
                }
                if i == 0 {
                    return Err(Error::invalid(format!(
                        "camera {key}: episode {ep} has no converted video"
                    )));
                }
            }
            j.commit()?;
            let (a, b) = (
                reel_media::mp4::read_index(&old)?,
                reel_media::mp4::read_index(&new)?,
            );
            if a.frames != b.frames {
                return Err(Error::corrupt(
                    &new,
                    format!(
                        "{} frames after conversion, {} in {}",
                        b.frames,
                        a.frames,
                        old.display()
                    ),
                ));
            }
            let (da, db) = (
                a.duration_ticks as f64 / a.timescale.max(1) as f64,
                b.duration_ticks as f64 / b.timescale.max(1) as f64,
            );
            if a.frames > 0 && (da - db).abs() > 0.5 * da / a.frames as f64 {
                return Err(Error::corrupt(
                    &new,
                    format!("lasts {db:.4} s after conversion, {da:.4} s before"),
                ));
            }
            built.push((key.clone(), old, new, dir.join("old").join(rel)));
        }
        // 2. Swap every file and info.json in one transaction of the dataset journal.
        let mut info = Info::read(root)?;
        let fields = fin.info_fields();
        let mut j = Journal::begin(&journal_path(root), root, self.durable)?;
        let swapped = (|| -> Result<()> {
            for (_, old, new, stash) in &built {
                if let Some(d) = stash.parent() {
                    fs::create_dir_all(d).map_err(|e| Error::io("create dir", d, e))?;
                }
                j.record_rename(old, stash)?;
                fs::rename(old, stash).map_err(|e| Error::io("move aside", old, e))?;
                j.record_create(old)?;
                fs::rename(new, old).map_err(|e| Error::io("move into place", new, e))?;
            }
            for (key, old, _, _) in &built {
                if let Some((_, vi)) = info.video_info.iter_mut().find(|(k, _)| k == key) {
                    *vi = video_info_block(&reel_media::probe::probe_video(old)?, &fields);
                }
            }
            info.write(root, &mut j)
        })();
        match swapped {
            Ok(()) => j.commit()?,
            Err(e) => {
                j.rollback()?;
                return Err(e);
            }
        }
        tracing::info!(
            "converted {} video file(s) to {family} ({})",
            built.len(),
            fin.vcodec
        );
        Ok(built.len())
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

/// The primary encoder followed by its fallbacks (a clean instance of the primary when none
/// are given: it replaces a hung or failing instance without changing the stream's format).
fn encoder_chain(cfg: &WriterConfig) -> Vec<EncoderSettings> {
    let mut chain = vec![cfg.encoder.clone()];
    if cfg.fallbacks.is_empty() {
        let mut clean = cfg.encoder.clone();
        clean.fault = None;
        chain.push(clean);
    } else {
        chain.extend(cfg.fallbacks.iter().cloned());
    }
    chain
}

fn validate_config(cfg: &WriterConfig) -> Result<()> {
    if cfg.fps == 0 {
        return Err(Error::invalid("fps must be positive"));
    }
    if !(cfg.data_files_size_mb > 0.0 && cfg.video_files_size_mb > 0.0) || cfg.chunks_size == 0 {
        return Err(Error::invalid(
            "file size limits and chunks_size must be positive",
        ));
    }
    if cfg.features.is_empty() {
        return Err(Error::invalid("a dataset needs at least one feature"));
    }
    if !cfg.features.video_keys().is_empty() {
        cfg.encoder.validate()?;
        if let Some(fin) = &cfg.deferred {
            fin.validate()?;
        }
        reel_media::init();
        let mut opened: Vec<(u32, u32)> = Vec::new();
        for (key, f) in cfg.features.iter() {
            if let Some((h, w)) = f.video_hw() {
                if !opened.contains(&(w, h)) {
                    let mut clean = cfg.encoder.clone();
                    clean.fault = None; // injected faults are for the recording, not this check
                    trial_open(key, w, h, cfg.fps, &clean)?;
                    if let Some(fin) = &cfg.deferred {
                        trial_open(key, w, h, cfg.fps, fin)?;
                    }
                    opened.push((w, h));
                }
            }
        }
    }
    Ok(())
}

/// Opens (and closes) the encoder once at a camera's size, so that a size or option the
/// encoder refuses is reported now, naming the camera, rather than at the first save.
fn trial_open(key: &str, w: u32, h: u32, fps: u32, settings: &EncoderSettings) -> Result<()> {
    let path = std::env::temp_dir().join(format!(
        "reel-trial-open-{}-{w}x{h}.mp4",
        std::process::id()
    ));
    let res = reel_media::EpisodeEncoder::create(&path, w, h, fps, settings);
    let out = match res {
        Ok(enc) => {
            drop(enc);
            Ok(())
        }
        Err(e) => {
            let hint = if settings.vcodec == "libsvtav1" && (w < 64 || h < 64) {
                "; SVT-AV1 needs at least 64x64"
            } else {
                ""
            };
            Err(Error::invalid(format!(
                "camera '{key}' ({w}x{h} at {fps} fps): the {} encoder cannot open ({e}){hint}",
                settings.vcodec
            )))
        }
    };
    let _ = fs::remove_file(&path);
    out
}

fn probe_writable(root: &Path) -> Result<()> {
    let p = root.join(".reel-write-test");
    fs::write(&p, b"x").map_err(|e| Error::io("cannot write into the dataset root", root, e))?;
    let _ = fs::remove_file(&p);
    Ok(())
}

fn read_stats_with_flags(
    root: &Path,
    features: &Features,
) -> Result<Vec<(String, FeatureStats, bool)>> {
    Ok(stats_json::read(root)?
        .into_iter()
        .map(|(k, s)| {
            let visual = features.get(&k).is_some_and(|f| f.dtype == Dtype::Video);
            (k, s, visual)
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// committer

struct VideoCursor {
    file: FileIndex,
    to_timestamp: f64,
    frames: u64,
}

struct CommitState {
    root: PathBuf,
    info: Info,
    tasks_written: usize,
    fps: u32,
    durable: bool,
    data_limit_mb: f64,
    video_limit_mb: f64,
    chunks_size: u32,
    /// (file, first global frame index in it); None: the next episode opens a new file.
    data: Option<(FileIndex, u64)>,
    /// Where the next new data file goes.
    next_data: FileIndex,
    videos: Vec<(String, Option<VideoCursor>, FileIndex)>,
    meta: Option<(FileIndex, u64)>,
    next_meta: FileIndex,
    /// The rows of the last row group of the current episodes file, written by this session:
    /// new rows are merged into it (up to [`EPISODES_PER_ROW_GROUP`]) so the footer stays small.
    meta_tail: Option<arrow_array::RecordBatch>,
    stats: Option<Vec<(String, FeatureStats, bool)>>,
    extras_allowed: bool,
    /// The encoder's `video.*` fields for info.json.
    encoder_fields: Vec<(String, serde_json::Value)>,
}

impl CommitState {
    fn fresh(cfg: &WriterConfig, info: Info) -> CommitState {
        CommitState {
            root: cfg.root.clone(),
            tasks_written: 0,
            fps: cfg.fps,
            durable: cfg.durable,
            data_limit_mb: cfg.data_files_size_mb,
            video_limit_mb: cfg.video_files_size_mb,
            chunks_size: cfg.chunks_size,
            data: None,
            next_data: FileIndex::default(),
            videos: cfg
                .features
                .video_keys()
                .into_iter()
                .map(|k| (k, None, FileIndex::default()))
                .collect(),
            meta: None,
            next_meta: FileIndex::default(),
            meta_tail: None,
            stats: None,
            extras_allowed: true,
            encoder_fields: cfg.encoder.info_fields(),
            info,
        }
    }

    /// A resumed session always starts new files (as LeRobot does), after the last episode's.
    fn resumed(
        cfg: &WriterConfig,
        mut info: Info,
        tasks_written: usize,
        last: Option<&EpisodeRecord>,
        stats: Option<Vec<(String, FeatureStats, bool)>>,
    ) -> CommitState {
        info.chunks_size = cfg.chunks_size;
        info.data_files_size_in_mb = cfg.data_files_size_mb;
        info.video_files_size_in_mb = cfg.video_files_size_mb;
        let mut s = CommitState::fresh(cfg, info);
        s.tasks_written = tasks_written;
        s.stats = stats;
        if let Some(last) = last {
            s.next_data = last.data_file.next(cfg.chunks_size);
            s.next_meta = last.meta_file.next(cfg.chunks_size);
            for (key, _, next) in &mut s.videos {
                if let Some(v) = last.videos.iter().find(|v| v.key == *key) {
                    *next = v.file.next(cfg.chunks_size);
                }
            }
            s.extras_allowed = !last.extra.is_empty();
        }
        s
    }
}

fn committer_loop(
    mut state: CommitState,
    jobs: Receiver<Job>,
    cams: Vec<(String, Receiver<std::result::Result<SegmentResult, String>>)>,
    status: Arc<(Mutex<Status>, Condvar)>,
    deferred: Option<DeferredQueue>,
) {
    for job in jobs.iter() {
        let seq = job.seq;
        let queued_at = job.queued_at;
        // Collect every camera's segment first, even after a failure, so the pipelines stay in step.
        let mut segments = Vec::new();
        let mut failure: Option<String> = None;
        for (key, rx) in &cams {
            match rx.recv() {
                Ok(Ok(r)) if r.seq == seq => segments.push(r),
                Ok(Ok(r)) => {
                    failure = Some(format!(
                        "camera {key}: got the segment of save {} while saving {seq}",
                        r.seq
                    ))
                }
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => {
                    failure = failure.or(Some(format!("camera {key}: encoder thread is gone")))
                }
            }
        }
        let outcome = match failure {
            Some(e) => Err(Error::Encoder {
                camera: "episode".into(),
                msg: e,
            }),
            None => commit_episode(&mut state, job, &segments),
        };
        if let (Some(q), Ok(saved)) = (&deferred, &outcome) {
            for (v, s) in saved.videos.iter().zip(&segments) {
                if let Err(e) = defer_parts(&state.root, q, saved.episode_index, &v.key, s) {
                    tracing::warn!(
                        "episode {} ({}) stays in the live codec: {e}",
                        saved.episode_index,
                        v.key
                    );
                }
            }
        }
        for s in &segments {
            for p in &s.parts {
                let _ = fs::remove_file(p);
            }
        }
        let (m, cv) = &*status;
        let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
        st.pending = st.pending.saturating_sub(1);
        match outcome {
            Ok(mut saved) => {
                saved.latency_s = queued_at.elapsed().as_secs_f64();
                st.total_episodes = state.info.total_episodes;
                st.total_frames = state.info.total_frames;
                st.session_videos.extend(
                    saved
                        .videos
                        .iter()
                        .map(|v| (saved.episode_index, v.clone())),
                );
                st.committed.push(saved);
            }
            Err(e) => {
                tracing::error!("episode save failed, the dataset keeps its earlier episodes: {e}");
                st.errors.push(e.to_string());
            }
        }
        cv.notify_all();
    }
    let (_, cv) = &*status;
    cv.notify_all();
}

/// Moves a committed episode's parts to the deferred area and queues their conversion.
fn defer_parts(
    root: &Path,
    q: &DeferredQueue,
    episode_index: u64,
    key: &str,
    seg: &SegmentResult,
) -> Result<()> {
    let mut parts = Vec::new();
    for (i, p) in seg.parts.iter().enumerate() {
        let dst = deferred::part_path(root, key, episode_index, i);
        if let Some(d) = dst.parent() {
            fs::create_dir_all(d).map_err(|e| Error::io("create dir", d, e))?;
        }
        fs::rename(p, &dst).map_err(|e| Error::io("move segment for deferred conversion", p, e))?;
        parts.push(dst);
    }
    q.submit(DeferredJob {
        episode_index,
        key: key.to_string(),
        parts,
        frames: seg.frames,
    })
}

fn commit_episode(
    state: &mut CommitState,
    job: Job,
    segments: &[SegmentResult],
) -> Result<EpisodeSaved> {
    let t0 = Instant::now();
    let root = state.root.clone();
    let features = state.info.features.clone();
    let len = job.frames;
    if job.columns.len() as u64 != len {
        return Err(Error::invalid(format!(
            "episode has {} rows but {len} frames were added",
            job.columns.len()
        )));
    }
    for s in segments {
        if s.frames != len {
            return Err(Error::Encoder {
                camera: format!("{:?}", s.parts),
                msg: format!("video has {} frames, the episode has {len} rows", s.frames),
            });
        }
    }
    let episode_index = state.info.total_episodes;
    let first_index = state.info.total_frames;
    let mut j = Journal::begin(&journal_path(&root), &root, state.durable)?;
    // After a failure the files are rolled back; the writer then refuses further work
    // (the session reports the error), so the in-memory state need not be restored.
    match write_episode(
        state,
        &mut j,
        &job,
        segments,
        episode_index,
        first_index,
        &features,
    ) {
        Ok(mut saved) => match j.commit() {
            Ok(()) => {
                saved.commit_s = t0.elapsed().as_secs_f64();
                Ok(saved)
            }
            Err(e) => {
                let _ = journal::recover(&journal_path(&root), &root);
                Err(e)
            }
        },
        Err(e) => {
            j.rollback()?;
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_episode(
    state: &mut CommitState,
    j: &mut Journal,
    job: &Job,
    segments: &[SegmentResult],
    episode_index: u64,
    first_index: u64,
    features: &Features,
) -> Result<EpisodeSaved> {
    let root = state.root.clone();
    let len = job.frames;
    let fps = state.fps;

    let mut marks: Vec<(&str, Instant)> = vec![("start", Instant::now())];
    // 1. data rows
    let batch = job
        .columns
        .to_batch(features, episode_index as i64, first_index as i64, fps)?;
    let (data_file, data_start) = match state.data {
        Some((file, start)) => {
            let path = paths::data_file(&root, file);
            let size = paths::size_mb(fs::metadata(&path).map(|m| m.len()).unwrap_or(0));
            let in_file = first_index - start;
            let avg = if in_file > 0 {
                size / in_file as f64
            } else {
                0.0
            };
            if size + avg * len as f64 >= state.data_limit_mb {
                (file.next(state.chunks_size), first_index)
            } else {
                (file, start)
            }
        }
        None => (state.next_data, first_index),
    };
    let kv = vec![("huggingface".to_string(), data::hf_metadata(features))];
    parquet_append::append_batch(&paths::data_file(&root, data_file), &batch, &kv, j)?;
    marks.push(("data", Instant::now()));

    // 2. videos
    let mut videos = Vec::new();
    for ((key, cursor, next), seg) in state.videos.iter().zip(segments) {
        let ep_mb = paths::size_mb(seg.bytes);
        let (file, from, frames_before) = match cursor {
            Some(c) => {
                let cur = paths::video_file(&root, key, c.file);
                let size = paths::size_mb(fs::metadata(&cur).map(|m| m.len()).unwrap_or(0));
                if size + ep_mb >= state.video_limit_mb {
                    (c.file.next(state.chunks_size), 0.0, 0)
                } else {
                    (c.file, c.to_timestamp, c.frames)
                }
            }
            None => (*next, 0.0, 0),
        };
        let target = paths::video_file(&root, key, file);
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io("create video dir", dir, e))?;
        }
        let mut duration_s = 0.0;
        let mut appended = None;
        for (i, part) in seg.parts.iter().enumerate() {
            let a = reel_media::mp4::append_segment(&target, part, j)?;
            if i == 0 {
                let start_s = a.start_ticks as f64 / a.timescale as f64;
                if (start_s - from).abs() > 1e-4 {
                    return Err(Error::corrupt(&target, format!("segment lands at {start_s:.6}s but the previous episode ends at {from:.6}s")));
                }
            }
            duration_s += a.duration_s();
            appended = Some(a);
        }
        let appended = appended.ok_or_else(|| {
            Error::invalid(format!("camera {key}: the episode has no video segment"))
        })?;
        if appended.frames_total != frames_before + len {
            return Err(Error::corrupt(
                &target,
                format!(
                    "{} frames after appending {len} to {frames_before}",
                    appended.frames_total
                ),
            ));
        }
        videos.push((
            VideoRef {
                key: key.clone(),
                file,
                from_timestamp: from,
                to_timestamp: from + duration_s,
            },
            appended.frames_total,
        ));
    }

    marks.push(("videos", Instant::now()));
    // 3. statistics
    let mut ep_stats: Vec<(String, FeatureStats, bool)> = job
        .columns
        .stats(features, episode_index as i64, first_index as i64, fps)?
        .into_iter()
        .map(|(k, s)| (k, s, false))
        .collect();
    for ((key, _, _), seg) in state.videos.iter().zip(segments) {
        match &seg.stats {
            Some(s) => ep_stats.push((key.clone(), s.clone(), true)),
            None => return Err(Error::invalid(format!("episode of {len} frame(s) is too short for image statistics of {key} (LeRobot needs at least 2 frames)"))),
        }
    }
    let aggregated: Vec<(String, FeatureStats, bool)> = match &state.stats {
        None => ep_stats.clone(),
        Some(old) => ep_stats
            .iter()
            .map(|(k, s, v)| match old.iter().find(|(ok, _, _)| ok == k) {
                Some((_, o, _)) => (k.clone(), reel_stats::aggregate(o, s), *v),
                None => (k.clone(), s.clone(), *v),
            })
            .collect(),
    };

    marks.push(("stats", Instant::now()));
    // 4. episodes row
    let meta_file = match state.meta {
        Some((file, n)) => {
            let path = paths::episodes_file(&root, file);
            let size = paths::size_mb(fs::metadata(&path).map(|m| m.len()).unwrap_or(0));
            // LeRobot divides by the episode index here (spec §9.3); reel uses the real per-episode average.
            let avg = if n > 0 { size / n as f64 } else { 0.0 };
            if size + avg >= state.data_limit_mb {
                file.next(state.chunks_size)
            } else {
                file
            }
        }
        None => state.next_meta,
    };
    let mut extra = Vec::new();
    if state.extras_allowed {
        extra = job.extra.clone();
        for ((key, _, _), seg) in state.videos.iter().zip(segments) {
            extra.push((
                format!("videos/{key}/spilled_frames"),
                ExtraValue::I64(seg.spilled_frames as i64),
            ));
            extra.push((
                format!("videos/{key}/max_queue_depth"),
                ExtraValue::I64(seg.max_queue_depth as i64),
            ));
            let fps_enc = if seg.encode_seconds > 0.0 {
                seg.frames as f64 / seg.encode_seconds
            } else {
                0.0
            };
            extra.push((format!("videos/{key}/encode_fps"), ExtraValue::F64(fps_enc)));
            extra.push((
                format!("videos/{key}/encoder"),
                ExtraValue::Str(seg.encoder.clone()),
            ));
            extra.push((
                format!("videos/{key}/encoder_switches"),
                ExtraValue::Str(seg.switches.clone()),
            ));
        }
    }
    let rec = EpisodeRecord {
        episode_index,
        tasks: job.episode_tasks.clone(),
        length: len,
        data_file,
        dataset_from_index: first_index,
        dataset_to_index: first_index + len,
        videos: videos.iter().map(|(v, _)| v.clone()).collect(),
        stats: ep_stats,
        meta_file,
        extra,
    };
    let row = episodes::episode_batch(&rec)?;
    let meta_path = paths::episodes_file(&root, meta_file);
    let same_file = matches!(state.meta, Some((f, _)) if f == meta_file);
    let new_tail = match (&state.meta_tail, same_file) {
        (Some(tail), true) if tail.num_rows() < EPISODES_PER_ROW_GROUP => {
            parquet_append::append_batch_merging_last(&meta_path, tail, &row, &[], j)?;
            arrow_select::concat::concat_batches(&row.schema(), [tail, &row])
                .map_err(|e| Error::invalid(e.to_string()))?
        }
        _ => {
            parquet_append::append_batch(&meta_path, &row, &[], j)?;
            row
        }
    };

    marks.push(("episodes", Instant::now()));
    // 5. tasks, info, stats
    if job.tasks.len() > state.tasks_written {
        tasks::write(&root, &job.tasks, j)?;
    }
    let mut info = state.info.clone();
    if info.video_info.is_empty() && !state.videos.is_empty() {
        for (key, _, _) in &state.videos {
            let (v, _) = videos
                .iter()
                .find(|(v, _)| v.key == *key)
                .ok_or_else(|| Error::invalid("video missing"))?;
            let probe = reel_media::probe::probe_video(&paths::video_file(&root, key, v.file))?;
            info.video_info
                .push((key.clone(), video_info_block(&probe, &state.encoder_fields)));
        }
    }
    info.total_episodes += 1;
    info.total_frames += len;
    info.total_tasks = job.tasks.len() as u64;
    info.write(&root, j)?;
    stats_json::write(&root, &aggregated, j)?;

    marks.push(("meta", Instant::now()));
    let steps: Vec<String> = marks
        .windows(2)
        .map(|w| format!("{} {:.2} ms", w[1].0, (w[1].1 - w[0].1).as_secs_f64() * 1e3))
        .collect();
    tracing::debug!("episode {episode_index} transaction: {}", steps.join(", "));
    // Only now update the in-memory view (the journal commit follows).
    state.info = info;
    state.tasks_written = job.tasks.len();
    state.data = Some((data_file, data_start));
    for ((_, cursor, _), (v, frames)) in state.videos.iter_mut().zip(&videos) {
        *cursor = Some(VideoCursor {
            file: v.file,
            to_timestamp: v.to_timestamp,
            frames: *frames,
        });
    }
    let in_meta = match state.meta {
        Some((f, n)) if f == meta_file => n + 1,
        _ => 1,
    };
    state.meta = Some((meta_file, in_meta));
    state.meta_tail = Some(new_tail);
    state.stats = Some(aggregated);
    Ok(EpisodeSaved {
        episode_index,
        frames: len,
        data_file,
        videos: videos.into_iter().map(|(v, _)| v).collect(),
        spilled: state
            .videos
            .iter()
            .zip(segments)
            .map(|((k, _, _), s)| (k.clone(), s.spilled_frames))
            .collect(),
        max_queue_depth: state
            .videos
            .iter()
            .zip(segments)
            .map(|((k, _, _), s)| (k.clone(), s.max_queue_depth))
            .collect(),
        switches: state
            .videos
            .iter()
            .zip(segments)
            .map(|((k, _, _), s)| (k.clone(), s.switches.clone()))
            .collect(),
        encode_fps: state
            .videos
            .iter()
            .zip(segments)
            .map(|((k, _, _), s)| {
                (
                    k.clone(),
                    if s.encode_seconds > 0.0 {
                        s.frames as f64 / s.encode_seconds
                    } else {
                        0.0
                    },
                )
            })
            .collect(),
        latency_s: 0.0,
        commit_s: 0.0,
    })
}

fn video_info_block(
    p: &reel_media::probe::StreamInfo,
    encoder_fields: &[(String, serde_json::Value)],
) -> VideoInfo {
    let mut fields: Vec<(String, serde_json::Value)> = vec![
        ("is_depth_map".into(), false.into()),
        ("video.height".into(), p.height.into()),
        ("video.width".into(), p.width.into()),
        ("video.codec".into(), p.codec.clone().into()),
        ("video.pix_fmt".into(), p.pix_fmt.clone().into()),
        ("video.fps".into(), p.fps.into()),
        ("video.channels".into(), p.channels.into()),
        ("has_audio".into(), p.has_audio.into()),
    ];
    fields.extend(encoder_fields.iter().cloned());
    VideoInfo { fields }
}
