//! The deferred transcoder: converts committed episodes to the final codec in the background.
//!
//! When the final codec (AV1) cannot keep up live, reel records with a fast live encoder and
//! the committer hands every committed episode's segment parts to this thread. It runs at
//! the lowest CPU priority (`SCHED_IDLE`, else nice 19), so it only gets the CPU the control
//! loop (SCHED_FIFO) and the live encoders (nice 10) leave: during resets and idle time.
//! Each part `<root>/.reel/deferred/<key>/ep-<E>-<i>.mp4` becomes `ep-<E>-<i>.av1.mp4`; the
//! source part is deleted once converted. The writer's `finish` waits for the queue to drain
//! and then swaps the converted files into the dataset in one journaled transaction.
//!
//! Libraries may give their own worker threads another priority (SVT-AV1 run as root makes
//! them SCHED_FIFO 99): every encoder open gives them the opening thread's scheduling
//! (`reel_core::sched::demote_realtime_threads`), here SCHED_IDLE.

use crate::paths;
use crossbeam_channel::{Receiver, Sender};
use reel_core::{Error, Result, StopMark, StopToken};
use reel_media::transcode::{transcode_file, TranscodeOptions};
use reel_media::EncoderSettings;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The transcoder thread's name; threads it creates (encoder workers) inherit it.
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

/// One camera's video of one committed episode, waiting for conversion.
#[derive(Debug, Clone)]
pub struct DeferredJob {
    pub episode_index: u64,
    pub key: String,
    /// The parts, in order, already moved to [`part_path`].
    pub parts: Vec<PathBuf>,
    pub frames: u64,
}

#[derive(Default)]
struct Progress {
    /// Jobs waiting or running, per episode.
    episodes: BTreeMap<u64, usize>,
    frames_waiting: u64,
    /// (camera key, episode, error) of every job that failed.
    failed: Vec<(String, u64, String)>,
    done: bool,
}

struct Shared {
    progress: Mutex<Progress>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending end, owned by the committer.
#[derive(Clone)]
pub struct DeferredQueue {
    tx: Sender<DeferredJob>,
    shared: Arc<Shared>,
}

impl DeferredQueue {
    /// Queues one job (the parts must already be at their [`part_path`]).
    pub fn submit(&self, job: DeferredJob) -> Result<()> {
        {
            let mut p = self.shared.lock();
            *p.episodes.entry(job.episode_index).or_default() += 1;
            p.frames_waiting += job.frames;
        }
        let (ep, frames) = (job.episode_index, job.frames);
        if self.tx.send(job).is_err() {
            let mut p = self.shared.lock();
            release(&mut p, ep, frames);
            return Err(Error::invalid("the deferred transcoder thread has stopped"));
        }
        Ok(())
    }
}

fn release(p: &mut Progress, episode: u64, frames: u64) {
    p.frames_waiting = p.frames_waiting.saturating_sub(frames);
    if let Some(n) = p.episodes.get_mut(&episode) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            p.episodes.remove(&episode);
        }
    }
}

/// What the conversion left to do when its queue drained.
#[derive(Debug, Clone, Default)]
pub struct DeferredOutcome {
    /// Seconds spent waiting for the backlog.
    pub wait_s: f64,
    /// (camera key, episode, error) of the jobs that failed: those cameras keep the live codec.
    pub failed: Vec<(String, u64, String)>,
}

/// The background transcoder (a worker thread at idle priority).
pub struct DeferredTranscoder {
    queue: Option<DeferredQueue>,
    shared: Arc<Shared>,
    cancel: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl DeferredTranscoder {
    /// Starts the threads; jobs convert to `settings`.
    pub fn start(root: &Path, settings: EncoderSettings) -> Result<DeferredTranscoder> {
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress::default()),
            cv: Condvar::new(),
        });
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::unbounded::<DeferredJob>();
        let worker = {
            let (shared, cancel) = (shared.clone(), cancel.clone());
            std::thread::Builder::new()
                .name(WORKER_NAME.into())
                .spawn(move || worker_loop(rx, settings, shared, cancel))
                .map_err(|e| Error::io("spawn the deferred transcoder", root, e))?
        };
        Ok(DeferredTranscoder {
            queue: Some(DeferredQueue {
                tx,
                shared: shared.clone(),
            }),
            shared,
            cancel,
            worker: Some(worker),
        })
    }

    /// The sending end for the committer (once; the queue closes when it is dropped).
    pub fn take_queue(&mut self) -> Option<DeferredQueue> {
        self.queue.take()
    }

    /// (episodes, frames) waiting for conversion or being converted.
    pub fn backlog(&self) -> (usize, u64) {
        let p = self.shared.lock();
        (p.episodes.len(), p.frames_waiting)
    }

    /// Stops the conversion now: the part being converted is abandoned. Waits up to half a
    /// second for the thread (an encoder starved of CPU may take longer to notice); after that
    /// it is left to end on its own — it only ever writes under `.reel/deferred`, which the
    /// next open of the dataset removes.
    pub fn cancel(&mut self) {
        self.queue = None;
        self.cancel.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        while self.worker.as_ref().is_some_and(|h| !h.is_finished())
            && t0.elapsed() < Duration::from_millis(500)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.worker.as_ref().is_some_and(|h| !h.is_finished()) {
            tracing::debug!("the deferred converter is still stopping; not waiting for it");
            self.worker = None; // detached
            let mut p = self.shared.lock();
            p.done = true;
        } else {
            self.join();
        }
    }

    /// Waits until every queued job is done (the queue's sender must be dropped), logging the
    /// progress every 2 s, and joins the threads. A request on `stop` after `mark` cancels the
    /// conversion and returns [`Error::Interrupted`] within a fraction of a second.
    pub fn finish(&mut self, stop: &StopToken, mark: StopMark) -> Result<DeferredOutcome> {
        self.queue = None;
        let t0 = Instant::now();
        let mut last_log = Instant::now();
        {
            let mut p = self.shared.lock();
            while !p.done {
                if stop.requested_since(mark) {
                    drop(p);
                    self.cancel();
                    return Err(Error::Interrupted(
                        "the conversion to the final codec was stopped".into(),
                    ));
                }
                let (g, _) = self
                    .shared
                    .cv
                    .wait_timeout(p, Duration::from_millis(200))
                    .unwrap_or_else(|e| e.into_inner());
                p = g;
                if !p.done && last_log.elapsed() >= Duration::from_secs(2) {
                    last_log = Instant::now();
                    tracing::info!(
                        "finishing the deferred conversion: {} episode(s), {} frame(s) left ({:.0} s so far); Ctrl-C to stop now (the dataset keeps its live codec)",
                        p.episodes.len(),
                        p.frames_waiting,
                        t0.elapsed().as_secs_f64()
                    );
                }
                if self.worker.as_ref().is_some_and(|h| h.is_finished()) && !p.done {
                    return Err(Error::invalid(
                        "the deferred transcoder thread stopped unexpectedly",
                    ));
                }
            }
        }
        let wait_s = t0.elapsed().as_secs_f64();
        self.join();
        let failed = self.shared.lock().failed.clone();
        Ok(DeferredOutcome { wait_s, failed })
    }

    fn join(&mut self) {
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
        {
            let mut p = self.shared.lock();
            p.done = true;
        }
        self.shared.cv.notify_all();
    }
}

impl Drop for DeferredTranscoder {
    /// Without `finish` (an error path): stop the running conversion and leave the rest.
    fn drop(&mut self) {
        self.queue = None;
        if self.worker.is_some() {
            self.cancel.store(true, Ordering::Relaxed);
            self.join();
        }
    }
}

fn worker_loop(
    rx: Receiver<DeferredJob>,
    settings: EncoderSettings,
    shared: Arc<Shared>,
    cancel: Arc<AtomicBool>,
) {
    let got = reel_core::sched::set_current(reel_core::sched::Policy::Idle);
    tracing::debug!("deferred transcoder runs at {got}");
    let opts = TranscodeOptions {
        progress: None,
        cancel: Some(cancel.clone()),
    };
    for job in rx.iter() {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        let res = convert(&job, &settings, &opts);
        let mut p = shared.lock();
        release(&mut p, job.episode_index, job.frames);
        if let Err(e) = res {
            tracing::warn!("deferred conversion of episode {} ({}) failed, that camera keeps its live codec: {e}", job.episode_index, job.key);
            p.failed
                .push((job.key.clone(), job.episode_index, e.to_string()));
        }
        drop(p);
        shared.cv.notify_all();
    }
    shared.lock().done = true;
    shared.cv.notify_all();
}

fn convert(job: &DeferredJob, settings: &EncoderSettings, opts: &TranscodeOptions) -> Result<()> {
    let mut frames = 0;
    for part in &job.parts {
        let name = part
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".mp4"))
            .ok_or_else(|| Error::invalid(format!("unexpected part name {}", part.display())))?;
        let dst = part.with_file_name(format!("{name}.av1.mp4"));
        let seg = transcode_file(part, &dst, settings, opts)?;
        frames += seg.frames;
        std::fs::remove_file(part).map_err(|e| Error::io("remove converted part", part, e))?;
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
        let mut p = Progress::default();
        *p.episodes.entry(0).or_default() += 2;
        p.frames_waiting = 60;
        release(&mut p, 0, 30);
        assert_eq!((p.episodes.len(), p.frames_waiting), (1, 30));
        release(&mut p, 0, 30);
        assert_eq!((p.episodes.len(), p.frames_waiting), (0, 0));
    }

    #[test]
    fn transcoder_thread_runs_at_idle_priority_and_drains() {
        let d = tempfile::tempdir().unwrap();
        let mut t =
            DeferredTranscoder::start(d.path(), EncoderSettings::lerobot_default()).unwrap();
        let q = t.take_queue().unwrap();
        // A job whose part is missing fails and is reported, the queue still drains.
        q.submit(DeferredJob {
            episode_index: 0,
            key: "cam".into(),
            parts: vec![part_path(d.path(), "cam", 0, 0)],
            frames: 5,
        })
        .unwrap();
        drop(q);
        let stop = StopToken::new();
        let out = t.finish(&stop, stop.mark()).unwrap();
        assert_eq!(t.backlog(), (0, 0));
        assert_eq!(out.failed.len(), 1);
        assert_eq!(out.failed[0].0, "cam");
    }
}
