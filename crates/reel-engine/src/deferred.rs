//! The final codec of a deferred session: every committed episode ends up converted, whichever
//! route its frames took.
//!
//! When the final codec (AV1) cannot keep up live, the cameras record with a fast live encoder
//! (libx264) whose segments are committed, and each camera also feeds the same frames to a
//! **final lane** ([`crate::camera`]): a final-codec encoder at idle priority that starts with
//! the episode, not after its commit, and uses every cycle the control loop (SCHED_FIFO), the
//! capture threads and the live encoders (nice 10) leave. Two routes meet here, per camera and
//! per episode (`seq` = the writer's save sequence number):
//!
//! * **lane**: the final lane encoded the episode from the raw frames ([`FinalSink::lane_done`]);
//!   once the committer reports the episode committed ([`DeferredQueue::submit`]) its file
//!   becomes the converted part and the live parts are deleted;
//! * **transcode**: the lane gave the episode up (backlog too long: see `camera::queue`),
//!   failed, or the camera has no lane; the committed live parts are converted
//!   (`reel_media::transcode`) by a pool of workers, one per camera at most, in parallel.
//!
//! Everything runs at `SCHED_IDLE` (nice 19 if refused) while the session records; libraries
//! that make their own threads real-time (SVT-AV1 as root) get the opener's policy back
//! (`reel_core::sched::demote_realtime_threads`). Once the control loop has stopped there is
//! nothing real-time left to protect: [`DeferredTranscoder::raise`] moves every converter thread
//! to normal priority, and [`DeferredTranscoder::finish`] waits for the last episode with a
//! progress line and an ETA every 2 s, or stops within a fraction of a second on a stop request.
//!
//! Files: `<root>/.reel/deferred/<key>/ep-<E>-<i>.mp4` (committed live part `i` of episode
//! `E`) becomes `ep-<E>-<i>.av1.mp4`; a lane's file becomes `ep-<E>-0.av1.mp4`. The writer's
//! `finish` swaps them into the dataset in one journaled transaction (`writer::swap`).

use crossbeam_channel::{Receiver, Sender};
use reel_core::sched::Policy;
use reel_core::{Error, Result, StopMark, StopToken};
use reel_dataset::paths;
use reel_media::transcode::{transcode_file, TranscodeOptions};
use reel_media::EncoderSettings;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The transcode workers' name prefix; threads they create (the encoders') inherit it.
const WORKER_NAME: &str = "reel-deferred";

/// `<root>/.reel/deferred`: everything the deferred conversion keeps until it is swapped in.
pub fn deferred_dir(root: &Path) -> PathBuf {
    paths::reel_dir(root).join("deferred")
}

/// Where a committed episode's live-codec part waits for conversion.
pub fn part_path(root: &Path, key: &str, episode_index: u64, i: usize) -> PathBuf {
    deferred_dir(root)
        .join(key)
        .join(format!("ep-{episode_index}-{i}.mp4"))
}

/// The converted part (final codec) of [`part_path`].
pub fn converted_path(root: &Path, key: &str, episode_index: u64, i: usize) -> PathBuf {
    deferred_dir(root)
        .join(key)
        .join(format!("ep-{episode_index}-{i}.av1.mp4"))
}

/// Deletes a leftover `.reel/deferred` (a session killed before its conversion was swapped
/// in, or after, before the tidy-up). Call only after the journal is recovered: an unfinished
/// swap needs the files there. Returns what happened, for the log / repair report.
pub fn remove_leftovers(root: &Path) -> Result<Option<String>> {
    let dir = deferred_dir(root);
    if !dir.exists() {
        return Ok(None);
    }
    let finished = has_files(&dir.join("old"));
    std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
    Ok(Some(if finished {
        "removed the leftovers of a finished deferred conversion (.reel/deferred)".to_string()
    } else {
        format!(
            "the deferred conversion to the final codec was not finished: the dataset keeps its live codec (info.json says which); `reel reencode {} --vcodec libsvtav1` completes it",
            root.display()
        )
    }))
}

fn has_files(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            has_files(&p)
        } else {
            true
        }
    })
}

/// One camera's video of one committed episode, waiting for its final codec.
#[derive(Debug, Clone)]
pub struct DeferredJob {
    /// The writer's save sequence number (matches the final lane's episode).
    pub seq: u64,
    pub episode_index: u64,
    pub key: String,
    /// The committed live parts, in order, already moved to [`part_path`].
    pub parts: Vec<PathBuf>,
    pub frames: u64,
}

/// What a final lane made of one episode.
#[derive(Debug, Clone)]
pub enum LaneOutcome {
    /// The episode in the final codec (`frames` frames) at `path`.
    Done { path: PathBuf, frames: u64 },
    /// Not encoded by the lane (why): the committed live parts are transcoded instead.
    Skipped(String),
}

/// Shared by the writer, the final lanes and the transcode workers: stop, priority, speed.
#[derive(Debug, Default)]
pub struct FinalControl {
    /// Stop now: lanes and workers drop what they are doing.
    pub(crate) abort: Arc<AtomicBool>,
    /// The control loop is over: open new encoders at normal priority.
    pub(crate) raised: AtomicBool,
    /// Frames encoded in the final codec (lanes and transcodes), for the speed and the ETA.
    pub(crate) encoded: Arc<AtomicU64>,
}

impl FinalControl {
    /// The priority a converter thread should run at now.
    pub(crate) fn policy(&self) -> Policy {
        if self.raised.load(Ordering::SeqCst) {
            Policy::Normal { nice: 0 }
        } else {
            Policy::Idle
        }
    }

    /// Puts the calling thread at [`policy`](Self::policy) when it changed since `applied`.
    pub(crate) fn apply(&self, applied: &mut Option<Policy>) {
        let want = self.policy();
        if *applied != Some(want) {
            let got = reel_core::sched::set_current(want);
            if applied.is_none() {
                tracing::debug!("final-codec thread runs at {got}");
            }
            *applied = Some(want);
        }
    }

    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
}

/// One (camera, episode) on its way to the final codec.
#[derive(Debug, Default)]
struct Item {
    /// Set when committed.
    job: Option<DeferredJob>,
    lane: Option<LaneOutcome>,
    /// A transcode of the live parts is queued or running (its frame counter).
    transcoding: Option<Arc<AtomicU64>>,
}

#[derive(Default)]
struct Progress {
    /// (camera key, seq) → its state; an entry leaves when its final-codec part is in place.
    items: BTreeMap<(String, u64), Item>,
    /// Cameras with a final lane, and the frames their lane encoded of its current episode.
    lanes: Vec<(String, Arc<AtomicU64>)>,
    /// Cameras whose lane ended (no more lane results will come).
    lanes_ended: Vec<String>,
    /// (camera key, episode, error) of every episode whose conversion failed.
    failed: Vec<(String, u64, String)>,
    /// Episodes converted (committed and in the final codec), per camera.
    converted: Vec<(String, u64)>,
    /// The committer's queue closed (no more jobs).
    closed: bool,
}

impl Progress {
    fn committed_open(&self) -> impl Iterator<Item = (&(String, u64), &Item)> {
        self.items.iter().filter(|(_, it)| it.job.is_some())
    }

    fn has_lane(&self, key: &str) -> bool {
        self.lanes.iter().any(|(k, _)| k == key) && !self.lanes_ended.iter().any(|k| k == key)
    }
}

struct Shared {
    root: PathBuf,
    progress: Mutex<Progress>,
    cv: Condvar,
    control: Arc<FinalControl>,
    /// Transcode jobs for the worker pool.
    transcode_tx: Mutex<Option<Sender<(String, u64)>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves (key, seq) forward when it can: a lane result and a commit make a converted
    /// part; a commit without a lane (or with a skipped lane) makes a transcode job.
    fn advance(&self, p: &mut Progress, key: &str, seq: u64) {
        let id = (key.to_string(), seq);
        let Some(it) = p.items.get(&id) else { return };
        let Some(job) = it.job.clone() else { return };
        if it.transcoding.is_some() {
            return;
        }
        let lane_alive = p.has_lane(key);
        match it.lane.clone() {
            Some(LaneOutcome::Done { path, frames }) if frames == job.frames => {
                match place_lane_file(&self.root, &job, &path) {
                    Ok(()) => {
                        p.items.remove(&id);
                        p.converted.push((key.to_string(), job.episode_index));
                    }
                    Err(e) => self.transcode(p, &id, &format!("{e}")),
                }
            }
            Some(LaneOutcome::Done { path, frames }) => {
                let _ = fs::remove_file(&path);
                self.transcode(
                    p,
                    &id,
                    &format!(
                        "the lane encoded {frames} frames, the episode has {}",
                        job.frames
                    ),
                );
            }
            Some(LaneOutcome::Skipped(why)) => self.transcode(p, &id, &why),
            None if !lane_alive => self.transcode(p, &id, "no final-codec lane"),
            None => {}
        }
    }

    fn transcode(&self, p: &mut Progress, id: &(String, u64), why: &str) {
        let Some(it) = p.items.get_mut(id) else {
            return;
        };
        tracing::debug!(
            "camera {} episode save {}: converting the live file ({why})",
            id.0,
            id.1
        );
        it.transcoding = Some(Arc::new(AtomicU64::new(0)));
        let sent = self
            .transcode_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.send(id.clone()).is_ok());
        if !sent {
            let ep = it.job.as_ref().map(|j| j.episode_index).unwrap_or(0);
            p.items.remove(id);
            p.failed.push((
                id.0.clone(),
                ep,
                "the transcode workers have stopped".into(),
            ));
        }
    }

    /// (episodes, frames) committed and not yet in the final codec; frames left to encode.
    fn backlog(&self, p: &Progress) -> (usize, u64, u64) {
        let mut eps: Vec<u64> = Vec::new();
        let (mut frames, mut left) = (0u64, 0u64);
        let mut lane_counted: Vec<&str> = Vec::new();
        for ((key, _), it) in p.committed_open() {
            let Some(job) = &it.job else { continue };
            if !eps.contains(&job.episode_index) {
                eps.push(job.episode_index);
            }
            frames += job.frames;
            let done = match (&it.transcoding, &it.lane) {
                (Some(c), _) => c.load(Ordering::Relaxed),
                (None, Some(LaneOutcome::Done { .. })) => job.frames,
                (None, None) if !lane_counted.contains(&key.as_str()) => {
                    // The lane works on its oldest pending episode: this one.
                    lane_counted.push(key);
                    p.lanes
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, c)| c.load(Ordering::Relaxed))
                        .unwrap_or(0)
                }
                _ => 0,
            };
            left += job.frames.saturating_sub(done);
        }
        (eps.len(), frames, left)
    }
}

/// The final lane's handle on the coordinator (one per camera with a lane).
#[derive(Clone)]
pub struct FinalSink {
    shared: Arc<Shared>,
    key: String,
    progress: Arc<AtomicU64>,
}

impl std::fmt::Debug for FinalSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinalSink").field("key", &self.key).finish()
    }
}

impl FinalSink {
    /// Frames the lane encoded of its current episode (reset at each episode end).
    pub(crate) fn progress(&self) -> &Arc<AtomicU64> {
        &self.progress
    }

    pub(crate) fn control(&self) -> &Arc<FinalControl> {
        &self.shared.control
    }

    /// The lane finished (or gave up) episode save `seq`.
    pub(crate) fn lane_done(&self, seq: u64, outcome: LaneOutcome) {
        self.progress.store(0, Ordering::Relaxed);
        {
            let mut p = self.shared.lock();
            p.items.entry((self.key.clone(), seq)).or_default().lane = Some(outcome);
            self.shared.advance(&mut p, &self.key, seq);
        }
        self.shared.cv.notify_all();
    }

    /// The lane thread ended: its committed episodes without a result are transcoded.
    pub(crate) fn lane_ended(&self) {
        {
            let mut p = self.shared.lock();
            p.lanes_ended.push(self.key.clone());
            let seqs: Vec<u64> = p
                .items
                .keys()
                .filter(|(k, _)| *k == self.key)
                .map(|(_, s)| *s)
                .collect();
            for s in seqs {
                self.shared.advance(&mut p, &self.key, s);
            }
        }
        self.shared.cv.notify_all();
    }
}

/// The sending end, owned by the committer.
#[derive(Clone)]
pub struct DeferredQueue {
    shared: Arc<Shared>,
}

impl DeferredQueue {
    /// An episode of camera `job.key` is committed (its live parts already at [`part_path`]).
    pub fn submit(&self, job: DeferredJob) -> Result<()> {
        let (key, seq) = (job.key.clone(), job.seq);
        {
            let mut p = self.shared.lock();
            if p.closed {
                return Err(Error::invalid("the deferred conversion has stopped"));
            }
            p.items.entry((key.clone(), seq)).or_default().job = Some(job);
            self.shared.advance(&mut p, &key, seq);
        }
        self.shared.cv.notify_all();
        Ok(())
    }
}

/// Puts a lane's finished file where the swap expects the episode's converted part, and
/// deletes the live parts it replaces.
fn place_lane_file(root: &Path, job: &DeferredJob, lane_file: &Path) -> Result<()> {
    let dst = converted_path(root, &job.key, job.episode_index, 0);
    if let Some(d) = dst.parent() {
        fs::create_dir_all(d).map_err(|e| Error::io("create dir", d, e))?;
    }
    fs::rename(lane_file, &dst)
        .map_err(|e| Error::io("move the final-codec file", lane_file, e))?;
    for part in &job.parts {
        fs::remove_file(part).map_err(|e| Error::io("remove converted part", part, e))?;
    }
    reel_core::faultpoint::hit("deferred.lane_placed");
    Ok(())
}

/// What the conversion left to do when its queue drained.
#[derive(Debug, Clone, Default)]
pub struct DeferredOutcome {
    /// Seconds spent waiting for the backlog.
    pub wait_s: f64,
    /// (camera key, episode, error) of the episodes that failed: those cameras keep the live codec.
    pub failed: Vec<(String, u64, String)>,
    /// Episodes converted per camera, by route: (lane, transcoded).
    pub routes: Vec<(String, u64, u64)>,
}

/// The final-codec coordinator and its transcode worker pool.
pub struct DeferredTranscoder {
    queue: Option<DeferredQueue>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Episodes converted through the transcode route, per camera.
    transcoded: Arc<Mutex<Vec<(String, u64)>>>,
}

impl DeferredTranscoder {
    /// Starts `workers` transcode workers (at least 1); conversions go to `settings`.
    pub fn start(
        root: &Path,
        settings: EncoderSettings,
        workers: usize,
    ) -> Result<DeferredTranscoder> {
        let control = Arc::new(FinalControl::default());
        let (tx, rx) = crossbeam_channel::unbounded::<(String, u64)>();
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            progress: Mutex::new(Progress::default()),
            cv: Condvar::new(),
            control,
            transcode_tx: Mutex::new(Some(tx)),
        });
        let transcoded = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for i in 0..workers.max(1) {
            let (shared, rx, settings, transcoded) = (
                shared.clone(),
                rx.clone(),
                settings.clone(),
                transcoded.clone(),
            );
            handles.push(
                std::thread::Builder::new()
                    .name(format!("{WORKER_NAME}-{i}"))
                    .spawn(move || worker_loop(rx, settings, shared, transcoded))
                    .map_err(|e| Error::io("spawn a deferred transcoder", root, e))?,
            );
        }
        Ok(DeferredTranscoder {
            queue: Some(DeferredQueue {
                shared: shared.clone(),
            }),
            shared,
            workers: handles,
            transcoded,
        })
    }

    /// The sending end for the committer (once).
    pub fn take_queue(&mut self) -> Option<DeferredQueue> {
        self.queue.take()
    }

    /// A handle for the final lane of camera `key`.
    pub fn sink(&self, key: &str) -> FinalSink {
        let progress = Arc::new(AtomicU64::new(0));
        self.shared
            .lock()
            .lanes
            .push((key.to_string(), progress.clone()));
        FinalSink {
            shared: self.shared.clone(),
            key: key.to_string(),
            progress,
        }
    }

    /// Stop, priority and speed shared with the lanes.
    pub fn control(&self) -> &Arc<FinalControl> {
        &self.shared.control
    }

    /// (episodes, frames) committed and not yet in the final codec.
    pub fn backlog(&self) -> (usize, u64) {
        let p = self.shared.lock();
        let (e, f, _) = self.shared.backlog(&p);
        (e, f)
    }

    /// The control loop is over: every converter thread (and the encoders' own threads) moves
    /// from idle to normal priority, and encoders opened from now on open there; so do the
    /// live encoders (nice 10), whose last segments the swap waits for.
    pub fn raise(&self) {
        self.shared.control.raised.store(true, Ordering::SeqCst);
        let n = reel_core::sched::raise_background_threads(Policy::Normal { nice: 0 }, true);
        tracing::debug!("finishing: {n} background thread(s) raised to normal priority");
    }

    /// Stops the conversion now (lanes and workers drop what they do) and joins the workers,
    /// waiting at most `deadline`.
    pub fn cancel(&mut self, deadline: Duration) {
        self.queue = None;
        // Threads starved at idle priority could not even notice the flag: raise them first.
        self.raise();
        self.shared.control.abort.store(true, Ordering::SeqCst);
        self.close();
        self.join(deadline);
    }

    fn close(&self) {
        self.shared.lock().closed = true;
        *self
            .shared
            .transcode_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.shared.cv.notify_all();
    }

    /// Waits until every committed episode is in the final codec (the committer must be done),
    /// with a progress line and ETA every 2 s, then stops the workers. A request on `stop`
    /// after `mark` cancels the conversion and returns [`Error::Interrupted`] within a fraction
    /// of a second. `lanes_alive` says whether a final lane thread still runs (a committed
    /// episode waiting for a lane that ended is transcoded instead).
    pub fn finish(&mut self, stop: &StopToken, mark: StopMark) -> Result<DeferredOutcome> {
        self.queue = None;
        let t0 = Instant::now();
        let mut last_log = Instant::now();
        let mut last_raise = Instant::now();
        let mut speed = Speed::new(self.shared.control.encoded.load(Ordering::Relaxed));
        loop {
            if stop.requested_since(mark) {
                self.cancel(Duration::from_millis(300));
                return Err(Error::Interrupted(
                    "the conversion to the final codec was stopped".into(),
                ));
            }
            {
                let p = self.shared.lock();
                let (eps, _, left) = self.shared.backlog(&p);
                if eps == 0 {
                    break;
                }
                let g = self
                    .shared
                    .cv
                    .wait_timeout(p, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                drop(g);
                speed.sample(self.shared.control.encoded.load(Ordering::Relaxed));
                if last_log.elapsed() >= Duration::from_secs(2) {
                    last_log = Instant::now();
                    let eta = match speed.fps() {
                        Some(f) if f > 0.0 => {
                            format!("about {:.0} s left at {f:.0} frames/s", left as f64 / f)
                        }
                        _ => "measuring the speed".into(),
                    };
                    tracing::info!(
                        "finishing the conversion to the final codec: {eps} episode(s), {left} frame(s) left, {eta} ({:.0} s so far); Ctrl-C to stop now (the dataset keeps its live codec)",
                        t0.elapsed().as_secs_f64()
                    );
                }
            }
            if last_raise.elapsed() >= Duration::from_millis(500) {
                // Threads an encoder started since (SVT's pools) inherit idle from old openers.
                last_raise = Instant::now();
                reel_core::sched::raise_background_threads(Policy::Normal { nice: 0 }, true);
            }
            if !self.workers.is_empty() && self.workers.iter().all(|h| h.is_finished()) {
                let p = self.shared.lock();
                if p.committed_open().any(|(_, it)| it.transcoding.is_some()) {
                    return Err(Error::ThreadDied {
                        what: "the deferred transcoder threads".into(),
                        msg: "they stopped with conversions queued".into(),
                    });
                }
            }
        }
        let wait_s = t0.elapsed().as_secs_f64();
        self.close();
        self.join(Duration::from_secs(5));
        let p = self.shared.lock();
        let transcoded = self
            .transcoded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut routes: Vec<(String, u64, u64)> = Vec::new();
        for (key, _) in &p.converted {
            let n_t = transcoded.iter().filter(|(k, _)| k == key).count() as u64;
            match routes.iter_mut().find(|(k, _, _)| k == key) {
                Some(r) => r.1 += 1,
                None => routes.push((key.clone(), 1, n_t)),
            }
        }
        for r in routes.iter_mut() {
            r.1 = r.1.saturating_sub(r.2);
        }
        Ok(DeferredOutcome {
            wait_s,
            failed: p.failed.clone(),
            routes,
        })
    }

    /// Cameras whose every committed episode is in the final codec (for a partial swap).
    pub fn complete_cameras(&self, keys: &[String]) -> Vec<String> {
        let p = self.shared.lock();
        keys.iter()
            .filter(|k| {
                !p.committed_open().any(|((key, _), _)| key == *k)
                    && !p.failed.iter().any(|(key, _, _)| key == *k)
            })
            .cloned()
            .collect()
    }

    fn join(&mut self, deadline: Duration) {
        let until = Instant::now() + deadline;
        while Instant::now() < until && self.workers.iter().any(|h| !h.is_finished()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        for h in self.workers.drain(..) {
            if h.is_finished() {
                let _ = h.join();
            } else {
                // An aborted encoder may still be flushing; it writes only under .reel/deferred.
                tracing::debug!("a deferred transcoder is still stopping; leaving it");
            }
        }
    }
}

impl Drop for DeferredTranscoder {
    /// Without `finish` (an error path): stop the running conversion and leave the rest.
    fn drop(&mut self) {
        if !self.workers.is_empty() {
            self.cancel(Duration::from_millis(300));
        }
    }
}

/// Frames per second over the last few seconds, from a growing counter.
struct Speed {
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl Speed {
    fn new(at: u64) -> Speed {
        let mut samples = std::collections::VecDeque::new();
        samples.push_back((Instant::now(), at));
        Speed { samples }
    }

    fn sample(&mut self, at: u64) {
        self.samples.push_back((Instant::now(), at));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| t.elapsed() > Duration::from_secs(5))
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
    }

    fn fps(&self) -> Option<f64> {
        let (t0, a) = self.samples.front()?;
        let (t1, b) = self.samples.back()?;
        let dt = t1.duration_since(*t0).as_secs_f64();
        (dt >= 1.0).then(|| (b - a) as f64 / dt)
    }
}

fn worker_loop(
    rx: Receiver<(String, u64)>,
    settings: EncoderSettings,
    shared: Arc<Shared>,
    transcoded: Arc<Mutex<Vec<(String, u64)>>>,
) {
    let control = shared.control.clone();
    let mut applied = None;
    for id in rx.iter() {
        if control.aborted() {
            break;
        }
        control.apply(&mut applied);
        let (job, counter) = {
            let p = shared.lock();
            match p.items.get(&id) {
                Some(Item {
                    job: Some(job),
                    transcoding: Some(c),
                    ..
                }) => (job.clone(), c.clone()),
                _ => continue,
            }
        };
        let opts = TranscodeOptions {
            progress: Some(counter),
            cancel: Some(control.abort.clone()),
        };
        let res = convert(&job, &settings, &opts, &control.encoded);
        {
            let mut p = shared.lock();
            p.items.remove(&id);
            match res {
                Ok(()) => {
                    p.converted.push((job.key.clone(), job.episode_index));
                    transcoded
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((job.key.clone(), job.episode_index));
                }
                Err(e) => {
                    if !control.aborted() {
                        tracing::warn!("deferred conversion of episode {} ({}) failed, that camera keeps its live codec: {e}", job.episode_index, job.key);
                    }
                    p.failed
                        .push((job.key.clone(), job.episode_index, e.to_string()));
                }
            }
        }
        shared.cv.notify_all();
    }
}

fn convert(
    job: &DeferredJob,
    settings: &EncoderSettings,
    opts: &TranscodeOptions,
    encoded: &AtomicU64,
) -> Result<()> {
    let mut frames = 0;
    for part in &job.parts {
        let name = part
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".mp4"))
            .ok_or_else(|| Error::invalid(format!("unexpected part name {}", part.display())))?;
        let dst = part.with_file_name(format!("{name}.av1.mp4"));
        let before = opts
            .progress
            .as_ref()
            .map(|p| p.load(Ordering::Relaxed))
            .unwrap_or(0);
        let seg = transcode_file(part, &dst, settings, opts)?;
        let after = opts
            .progress
            .as_ref()
            .map(|p| p.load(Ordering::Relaxed))
            .unwrap_or(0);
        encoded.fetch_add(after - before, Ordering::Relaxed);
        frames += seg.frames;
        fs::remove_file(part).map_err(|e| Error::io("remove converted part", part, e))?;
        reel_core::faultpoint::hit("deferred.converted");
    }
    if frames != job.frames {
        return Err(Error::invalid(format!(
            "converted {frames} frames, the episode has {}",
            job.frames
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_backlog_bookkeeping() {
        let root = Path::new("/data/ds");
        assert_eq!(
            part_path(root, "observation.images.front", 3, 1),
            Path::new("/data/ds/.reel/deferred/observation.images.front/ep-3-1.mp4")
        );
        assert_eq!(
            converted_path(root, "k", 3, 0),
            Path::new("/data/ds/.reel/deferred/k/ep-3-0.av1.mp4")
        );
    }

    fn job(root: &Path, seq: u64, frames: u64) -> DeferredJob {
        DeferredJob {
            seq,
            episode_index: seq,
            key: "cam".into(),
            parts: vec![part_path(root, "cam", seq, 0)],
            frames,
        }
    }

    #[test]
    fn lane_results_and_commits_meet_in_either_order_and_the_rest_is_transcoded() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let mut t = DeferredTranscoder::start(root, EncoderSettings::lerobot_default(), 2).unwrap();
        let sink = t.sink("cam");
        let q = t.take_queue().unwrap();
        let live = |seq: u64| {
            let p = part_path(root, "cam", seq, 0);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, b"live").unwrap();
        };
        let lane_file = |seq: u64| {
            let p = root.join(format!("lane-{seq}.mp4"));
            fs::write(&p, b"final").unwrap();
            p
        };
        // Save 0: the lane finishes before the commit; save 1: after it.
        let f0 = lane_file(0);
        sink.lane_done(
            0,
            LaneOutcome::Done {
                path: f0,
                frames: 5,
            },
        );
        live(0);
        q.submit(job(root, 0, 5)).unwrap();
        live(1);
        q.submit(job(root, 1, 5)).unwrap();
        assert_eq!(t.backlog(), (1, 5), "save 1 waits for its lane");
        let f1 = lane_file(1);
        sink.lane_done(
            1,
            LaneOutcome::Done {
                path: f1,
                frames: 5,
            },
        );
        assert_eq!(t.backlog(), (0, 0));
        for seq in [0, 1] {
            assert_eq!(
                fs::read(converted_path(root, "cam", seq, 0)).unwrap(),
                b"final"
            );
            assert!(
                !part_path(root, "cam", seq, 0).exists(),
                "the live part is gone"
            );
        }
        // Save 2: the lane gave it up; save 3: the lane ended without it. Both are transcoded
        // from the live parts (missing here, so they fail and are reported).
        sink.lane_done(2, LaneOutcome::Skipped("backlog".into()));
        q.submit(job(root, 2, 5)).unwrap();
        q.submit(job(root, 3, 5)).unwrap();
        sink.lane_ended();
        drop(q);
        let stop = StopToken::new();
        let out = t.finish(&stop, stop.mark()).unwrap();
        assert_eq!(t.backlog(), (0, 0));
        let mut failed: Vec<u64> = out.failed.iter().map(|f| f.1).collect();
        failed.sort();
        assert_eq!(failed, vec![2, 3]);
        assert_eq!(out.routes, vec![("cam".to_string(), 2, 0)]);
    }

    #[test]
    fn a_stop_request_cancels_the_wait() {
        let d = tempfile::tempdir().unwrap();
        let mut t =
            DeferredTranscoder::start(d.path(), EncoderSettings::lerobot_default(), 1).unwrap();
        let _sink = t.sink("cam");
        let q = t.take_queue().unwrap();
        q.submit(job(d.path(), 0, 5)).unwrap();
        let stop = StopToken::new();
        let mark = stop.mark();
        stop.request();
        let e = t.finish(&stop, mark).unwrap_err();
        assert!(e.is_interrupted(), "{e}");
        assert!(t.control().aborted());
    }
}
