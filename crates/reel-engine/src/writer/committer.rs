//! The committer thread: saves each episode as one journaled transaction, strictly in order.
//!
//! It waits for every camera's segment of the episode, then, inside one undo journal:
//! appends the rows as one row group to the data parquet, each camera's segment to its MP4,
//! the episode's row to the episodes parquet, and rewrites tasks, info.json and stats.json;
//! deleting the journal is the commit point. With a deferred final codec, the committed
//! episode's parts then go to the background converter.
//!
//! A stop request while episodes are still queued ([`Shared::abort`]) ends the wait for their
//! segments: the transaction in progress completes, queued episodes are dropped (and counted),
//! and every file stays valid.

use super::{journal_path, EpisodeSaved, WriterConfig, EPISODES_PER_ROW_GROUP};
use crate::camera::SegmentResult;
use crate::deferred::{self, DeferredJob, DeferredQueue};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use reel_core::extra::ExtraValue;
use reel_core::faultpoint;
use reel_core::journal::{self, Journal};
use reel_core::{Error, Features, Result};
use reel_dataset::data::{self, ColumnBuffers};
use reel_dataset::episodes::{self, EpisodeRecord, VideoRef};
use reel_dataset::info::{Info, VideoInfo};
use reel_dataset::parquet_append;
use reel_dataset::paths::{self, FileIndex};
use reel_dataset::{stats_json, tasks};
use reel_stats::FeatureStats;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the loop-facing API and the committer share.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) status: Mutex<Status>,
    pub(super) cv: Condvar,
    /// Stop now: drop queued episodes once the transaction in progress is done.
    pub(super) abort: AtomicBool,
    /// The committer thread has ended (normally or by a panic).
    pub(super) committer_done: AtomicBool,
}

/// Marks the committer as ended when its thread leaves, whichever way.
struct DoneOnExit<'a>(&'a Shared);

impl Drop for DoneOnExit<'_> {
    fn drop(&mut self) {
        self.0.committer_done.store(true, Ordering::SeqCst);
        self.0.lock().in_transaction = false;
        self.0.cv.notify_all();
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
pub(super) struct Status {
    /// Episodes saved by the caller and not yet committed (or failed, or dropped).
    pub(super) pending: usize,
    pub(super) committed: Vec<EpisodeSaved>,
    pub(super) errors: Vec<Error>,
    pub(super) total_episodes: u64,
    pub(super) total_frames: u64,
    /// Every video reference committed by this session, with its episode index.
    pub(super) session_videos: Vec<(u64, VideoRef)>,
    /// Queued episodes dropped by a stop request before their commit.
    pub(super) dropped: u64,
    /// Holders of the commit gate ([`super::CommitGate`]): while any, no transaction starts.
    pub(super) gate_holders: usize,
    /// A transaction is being written (the files are between two consistent states).
    pub(super) in_transaction: bool,
}

/// One saved episode on its way to the committer.
pub(super) struct Job {
    pub(super) seq: u64,
    pub(super) columns: ColumnBuffers,
    pub(super) tasks: Vec<String>,
    pub(super) episode_tasks: Vec<String>,
    pub(super) frames: u64,
    pub(super) extra: Vec<(String, ExtraValue)>,
    /// Per-tick timing of the episode (may be empty: a loop that gives none).
    pub(super) ticks: Vec<reel_core::tick::TickRecord>,
    /// Side-stream samples of the episode (see [`reel_dataset::streams`]).
    pub(super) streams: reel_dataset::streams::StreamBuffers,
    pub(super) queued_at: Instant,
}

pub(super) struct VideoCursor {
    file: FileIndex,
    to_timestamp: f64,
    frames: u64,
}

/// What the committer knows of the dataset between transactions.
pub(super) struct CommitState {
    pub(super) root: PathBuf,
    pub(super) info: Info,
    pub(super) tasks_written: usize,
    pub(super) fps: u32,
    pub(super) durable: bool,
    pub(super) data_limit_mb: f64,
    pub(super) video_limit_mb: f64,
    pub(super) chunks_size: u32,
    /// (file, first global frame index in it); None: the next episode opens a new file.
    pub(super) data: Option<(FileIndex, u64)>,
    /// Where the next new data file goes.
    pub(super) next_data: FileIndex,
    pub(super) videos: Vec<(String, Option<VideoCursor>, FileIndex)>,
    pub(super) meta: Option<(FileIndex, u64)>,
    pub(super) next_meta: FileIndex,
    /// The rows of the last row group of the current episodes file, written by this session:
    /// new rows are merged into it (up to [`EPISODES_PER_ROW_GROUP`]) so the footer stays small.
    pub(super) meta_tail: Option<arrow_array::RecordBatch>,
    pub(super) stats: Option<Vec<(String, FeatureStats, bool)>>,
    /// The encoder's `video.*` fields for info.json.
    pub(super) encoder_fields: Vec<(String, serde_json::Value)>,
    /// The depth cameras' `video.*` fields (encoder, then quantiser).
    pub(super) depth_fields: Vec<(String, serde_json::Value)>,
    /// Per camera: whether this session already verified info.json's block against a file.
    pub(super) video_info_checked: Vec<bool>,
    /// The dataset held episodes before this session (resume).
    pub(super) had_episodes: bool,
    /// Ticks files this session has written to (see [`reel_dataset::ticks::append`]).
    pub(super) ticks_written: Vec<FileIndex>,
}

impl CommitState {
    pub(super) fn fresh(cfg: &WriterConfig, info: Info) -> CommitState {
        CommitState {
            root: cfg.root.clone(),
            tasks_written: 0,
            fps: cfg.fps,
            durable: cfg.durable,
            data_limit_mb: info.data_files_size_in_mb,
            video_limit_mb: info.video_files_size_in_mb,
            chunks_size: info.chunks_size,
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
            encoder_fields: cfg.encoder.info_fields(),
            depth_fields: cfg.depth.info_fields(),
            video_info_checked: vec![false; cfg.features.video_keys().len()],
            had_episodes: info.total_episodes > 0,
            ticks_written: Vec::new(),
            info,
        }
    }

    /// A resumed session always starts new files (as LeRobot does), after the last episode's.
    /// It keeps the dataset's chunk size, and its file-size limits unless the caller set them.
    pub(super) fn resumed(
        cfg: &WriterConfig,
        mut info: Info,
        tasks_written: usize,
        last: Option<&EpisodeRecord>,
        stats: Option<Vec<(String, FeatureStats, bool)>>,
    ) -> CommitState {
        if let Some(v) = cfg.data_files_size_mb {
            info.data_files_size_in_mb = v;
        }
        if let Some(v) = cfg.video_files_size_mb {
            info.video_files_size_in_mb = v;
        }
        let chunks = info.chunks_size.max(1);
        let mut s = CommitState::fresh(cfg, info);
        s.tasks_written = tasks_written;
        s.stats = stats;
        if let Some(last) = last {
            s.next_data = last.data_file.next(chunks);
            s.next_meta = last.meta_file.next(chunks);
            for (key, _, next) in &mut s.videos {
                if let Some(v) = last.videos.iter().find(|v| v.key == *key) {
                    *next = v.file.next(chunks);
                }
            }
        }
        s
    }
}

/// Waits for one camera's segment of save `seq`, giving up when a stop request aborts.
fn wait_segment(
    key: &str,
    rx: &Receiver<Result<SegmentResult>>,
    seq: u64,
    shared: &Shared,
) -> Option<Result<SegmentResult>> {
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(r)) if r.seq == seq => return Some(Ok(r)),
            Ok(Ok(r)) => {
                return Some(Err(Error::encoder(
                    key,
                    format!("got the segment of save {} while saving {seq}", r.seq),
                )))
            }
            Ok(Err(e)) => return Some(Err(e)),
            Err(RecvTimeoutError::Disconnected) => {
                return Some(Err(Error::ThreadDied {
                    what: format!("the encoder thread of {key}"),
                    msg: "it ended before the episode's segment was done".into(),
                }))
            }
            Err(RecvTimeoutError::Timeout) => {
                if shared.abort.load(Ordering::SeqCst) {
                    return None;
                }
            }
        }
    }
}

/// Waits while the commit gate is held, then marks a transaction as started. False when a
/// stop request aborts the wait (the episode is then dropped like any queued one).
/// Counts an episode the committer drops without committing (its job is no longer pending)
/// and wakes whoever waits on the pending count.
fn count_dropped(shared: &Shared) {
    let mut st = shared.lock();
    st.pending = st.pending.saturating_sub(1);
    st.dropped += 1;
    drop(st);
    shared.cv.notify_all();
}

fn wait_for_gate(shared: &Shared) -> bool {
    let mut st = shared.lock();
    let mut logged = false;
    while st.gate_holders > 0 {
        if shared.abort.load(Ordering::SeqCst) {
            return false;
        }
        if !logged {
            tracing::debug!("commit gate held: the next episode commits when it opens");
            logged = true;
        }
        st = shared
            .cv
            .wait_timeout(st, Duration::from_millis(100))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    st.in_transaction = true;
    true
}

/// The committer thread's body (see the module doc).
pub(super) fn committer_loop(
    mut state: CommitState,
    jobs: Receiver<Job>,
    cams: Vec<(String, Receiver<Result<SegmentResult>>)>,
    shared: std::sync::Arc<Shared>,
    deferred: Option<DeferredQueue>,
) {
    let _done = DoneOnExit(&shared);
    for job in jobs.iter() {
        faultpoint::hit("committer.job");
        let seq = job.seq;
        let queued_at = job.queued_at;
        // Collect every camera's segment first, even after a failure, so the pipelines stay in step.
        let mut segments = Vec::new();
        let mut failure: Option<Error> = None;
        let mut aborted = false;
        for (key, rx) in &cams {
            match wait_segment(key, rx, seq, &shared) {
                Some(Ok(r)) => segments.push(r),
                Some(Err(e)) => {
                    failure.get_or_insert(e);
                }
                None => {
                    aborted = true;
                    break;
                }
            }
        }
        // After a failed save nothing more is committed: the episodes queued behind it are
        // dropped (counted), the dataset keeps every episode before it.
        let after_failure = !shared.lock().errors.is_empty();
        if aborted || after_failure {
            for s in &segments {
                for p in &s.parts {
                    let _ = fs::remove_file(p);
                }
            }
            count_dropped(&shared);
            continue;
        }
        if !wait_for_gate(&shared) {
            count_dropped(&shared);
            continue;
        }
        faultpoint::hit("commit.begin");
        let outcome = match failure {
            Some(e) => Err(e.context(format!("episode save {seq}"))),
            None => commit_episode(&mut state, job, &segments),
        };
        if outcome.is_ok() {
            faultpoint::hit("commit.done");
        }
        if let (Some(q), Ok(saved)) = (&deferred, &outcome) {
            for (v, s) in saved.videos.iter().zip(&segments) {
                if state
                    .info
                    .features
                    .get(&v.key)
                    .is_some_and(|f| f.is_depth())
                {
                    continue; // recorded in its final codec (LeRobot's depth encoding)
                }
                if let Err(e) = defer_parts(&state.root, q, seq, saved.episode_index, &v.key, s) {
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
        let mut st = shared.lock();
        st.pending = st.pending.saturating_sub(1);
        st.in_transaction = false;
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
                st.errors.push(e);
            }
        }
        drop(st);
        shared.cv.notify_all();
    }
    shared.cv.notify_all();
}

/// Moves a committed episode's parts to the deferred area and queues their conversion.
fn defer_parts(
    root: &Path,
    q: &DeferredQueue,
    seq: u64,
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
        seq,
        episode_index,
        key: key.to_string(),
        parts,
        frames: seg.frames,
    })
}

pub(super) fn commit_episode(
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
    for (s, (key, _, _)) in segments.iter().zip(&state.videos) {
        if s.frames != len {
            return Err(Error::encoder(
                key.as_str(),
                format!("video has {} frames, the episode has {len} rows", s.frames),
            ));
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

/// Step 2 of an episode's transaction: appends each camera's segment parts to its MP4 (a new
/// file when the current one would pass the size limit) and checks that the segment lands
/// where the previous episode ended and that no frame is missing. Returns each camera's video
/// reference and its file's frame count after the append.
fn append_videos(
    state: &CommitState,
    root: &Path,
    segments: &[SegmentResult],
    len: u64,
    j: &mut Journal,
) -> Result<Vec<(VideoRef, u64)>> {
    let root = root.to_path_buf();
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
            let a = reel_dataset::mp4::append_segment(&target, part, j)?;
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
    Ok(videos)
}

/// reel's own per-episode figures (the loop's, plus each camera's encoder figures): they go
/// to meta/reel/episodes.jsonl (reel_dataset::figures), never into LeRobot's tables.
fn episode_figures(
    job: &Job,
    state: &CommitState,
    segments: &[SegmentResult],
) -> Vec<(String, ExtraValue)> {
    let mut figures = job.extra.clone();
    {
        let extra = &mut figures;
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
    figures
}

/// The first commit of each camera in this session: the block info.json holds must describe
/// the file just written (a new dataset's predicted block, or a resumed one's); a file in
/// another format than the dataset's other files of that camera is refused.
fn check_video_info(
    state: &CommitState,
    root: &Path,
    videos: &[(VideoRef, u64)],
    info: &mut Info,
) -> Result<()> {
    for (i, (key, _, _)) in state.videos.iter().enumerate() {
        if state.video_info_checked.get(i).copied().unwrap_or(true) {
            continue;
        }
        let (v, _) = videos
            .iter()
            .find(|(v, _)| v.key == *key)
            .ok_or_else(|| Error::invalid(format!("camera {key}: no video reference")))?;
        let file = paths::video_file(root, key, v.file);
        let probe = reel_media::probe::probe_video(&file)?;
        let block = if state.info.features.get(key).is_some_and(|f| f.is_depth()) {
            video_info_block(&probe, &state.depth_fields)
        } else {
            video_info_block(&probe, &state.encoder_fields)
        };
        match info.video_info.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => {
                if state.had_episodes && !old.same_stream(&block) {
                    return Err(Error::Mismatch(format!(
                        "camera {key}: {} holds {} {}x{} {} but info.json describes the dataset's other files as {}; \
                         a camera's files must share one format",
                        file.display(),
                        probe.codec,
                        probe.width,
                        probe.height,
                        probe.pix_fmt,
                        old.describe()
                    )));
                }
                *old = block;
            }
            None => info.video_info.push((key.clone(), block)),
        }
    }
    Ok(())
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
    faultpoint::hit("commit.data");
    // 1b. per-tick timing, beside the data (a file LeRobot never reads)
    let first_ticks = !state.ticks_written.contains(&data_file);
    let cams: Vec<String> = state.videos.iter().map(|(k, _, _)| k.clone()).collect();
    reel_dataset::ticks::append(
        &root,
        data_file,
        episode_index,
        &job.ticks,
        &cams,
        first_ticks,
        j,
    )?;
    faultpoint::hit("commit.ticks");
    // 1c. side streams, one file per stream (files LeRobot never reads)
    reel_dataset::streams::write_episode(&root, episode_index, &job.streams, j)?;
    faultpoint::hit("commit.streams");
    marks.push(("data", Instant::now()));

    // 2. videos
    let videos = append_videos(state, &root, segments, len, j)?;

    faultpoint::hit("commit.videos");
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
    // reel's own figures go to meta/reel/episodes.jsonl (reel_dataset::figures), never into
    // LeRobot's tables.
    let figures = episode_figures(job, state, segments);
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
        extra: Vec::new(),
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

    reel_dataset::figures::append(&root, episode_index, &figures, j)?;
    marks.push(("episodes", Instant::now()));
    // 5. tasks, info, stats
    if job.tasks.len() > state.tasks_written {
        tasks::write(&root, &job.tasks, j)?;
    }
    let mut info = state.info.clone();
    check_video_info(state, &root, &videos, &mut info)?;
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
    state.video_info_checked.iter_mut().for_each(|c| *c = true);
    state.tasks_written = job.tasks.len();
    state.data = Some((data_file, data_start));
    if !job.ticks.is_empty() && !state.ticks_written.contains(&data_file) {
        state.ticks_written.push(data_file);
    }
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

pub(super) fn video_info_block(
    p: &reel_media::probe::StreamInfo,
    encoder_fields: &[(String, serde_json::Value)],
) -> VideoInfo {
    let mut fields = VideoInfo::head(p.pix_fmt == reel_media::depth::DEPTH_PIX_FMT);
    fields.extend::<[(String, serde_json::Value); 7]>([
        ("video.height".into(), p.height.into()),
        ("video.width".into(), p.width.into()),
        ("video.codec".into(), p.codec.clone().into()),
        ("video.pix_fmt".into(), p.pix_fmt.clone().into()),
        ("video.fps".into(), p.fps.into()),
        ("video.channels".into(), p.channels.into()),
        ("has_audio".into(), p.has_audio.into()),
    ]);
    fields.extend(encoder_fields.iter().cloned());
    VideoInfo { fields }
}
