//! The worker pool: `jobs` workers take files from a priority queue (largest first, so the
//! pool finishes together) and run each through a supervised transcode. Every attempt runs
//! on its own thread at lower OS priority (nice 10) while the worker watches its frame
//! counter: if no frame arrives for the task timeout, the attempt is cancelled and
//! abandoned (a truly hung encoder cannot block the pool) and the file is retried with the
//! next encoder of the fallback list. Each attempt writes its own `.part` file, so an
//! abandoned attempt can never corrupt a later one.

use crate::progress::Progress;
use crate::state::Target;
use crate::transcode::Transcoder;
use reel_core::Result;
use reel_media::EncoderSettings;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One file to re-encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Path relative to the dataset root.
    pub rel: String,
    pub key: String,
    pub src: PathBuf,
    /// Final location of the new file (under `.reel/reencode/new/`).
    pub dst: PathBuf,
    pub bytes: u64,
    /// Frames in the source (the new file must have exactly as many).
    pub frames: u64,
}

impl Ord for Task {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes
            .cmp(&other.bytes)
            .then_with(|| other.rel.cmp(&self.rel))
    }
}

impl PartialOrd for Task {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A file done: the `.part` file holding the result, the encoder that made it, and the
/// failed attempts before it.
#[derive(Debug, Clone)]
pub struct Finished {
    pub part: PathBuf,
    pub encoder: Target,
    pub frames: u64,
    pub failed_attempts: Vec<String>,
}

/// Re-encode workers run at the encoders' priority, below any control loop on the machine.
pub fn lower_priority() {
    reel_core::sched::set_current(reel_core::sched::ENCODER);
}

/// How the pool runs.
pub struct PoolConfig<'a> {
    pub attempts: &'a [EncoderSettings],
    pub jobs: usize,
    pub task_timeout: Duration,
    pub fps: u32,
    pub transcoder: Arc<dyn Transcoder>,
    pub progress: &'a dyn Progress,
    /// A request stops the pool: running attempts are cancelled, no task starts.
    pub stop: reel_core::StopToken,
}

/// The error of an attempt cancelled by a stop request.
pub const INTERRUPTED: &str = "interrupted by a stop request";

/// Runs every task; `on_done` is called (from the worker) for each finished file and may
/// refuse it (its error then counts as the file's failure). Returns per task the finished
/// result or why every attempt failed.
pub fn run(
    tasks: Vec<Task>,
    cfg: &PoolConfig<'_>,
    on_done: &(dyn Fn(&Task, &Finished) -> Result<()> + Sync),
) -> Vec<(Task, std::result::Result<Finished, String>)> {
    let queue = Mutex::new(tasks.into_iter().collect::<BinaryHeap<Task>>());
    let results = Mutex::new(Vec::new());
    let jobs = cfg.jobs.max(1);
    std::thread::scope(|s| {
        for w in 0..jobs {
            let queue = &queue;
            let results = &results;
            s.spawn(move || {
                lower_priority();
                loop {
                    if cfg.stop.requested() {
                        break;
                    }
                    let task = match queue.lock() {
                        Ok(mut q) => q.pop(),
                        Err(_) => None,
                    };
                    let Some(task) = task else { break };
                    let out = run_task(w, &task, cfg, on_done);
                    let shown = out
                        .as_ref()
                        .map(|f| f.encoder.vcodec.clone())
                        .map_err(|e| e.clone());
                    cfg.progress.task_end(w, &task.rel, &shown);
                    if let Ok(mut r) = results.lock() {
                        r.push((task, out));
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

fn part_path(dst: &std::path::Path, attempt: usize) -> PathBuf {
    let mut s = dst.as_os_str().to_owned();
    s.push(format!(".attempt-{attempt}.part.mp4"));
    PathBuf::from(s)
}

fn run_task(
    worker: usize,
    task: &Task,
    cfg: &PoolConfig<'_>,
    on_done: &(dyn Fn(&Task, &Finished) -> Result<()> + Sync),
) -> std::result::Result<Finished, String> {
    let mut failed: Vec<String> = Vec::new();
    if let Some(d) = task.dst.parent() {
        if let Err(e) = std::fs::create_dir_all(d) {
            return Err(format!("create {}: {e}", d.display()));
        }
    }
    for (i, settings) in cfg.attempts.iter().enumerate() {
        if cfg.stop.requested() {
            return Err(INTERRUPTED.into());
        }
        let name = settings.vcodec.clone();
        if i > 0 {
            cfg.progress.message(&format!(
                "{}: falling back to {name} after: {}",
                task.rel,
                failed.last().map(String::as_str).unwrap_or("")
            ));
        }
        cfg.progress
            .task_begin(worker, &task.rel, &name, task.frames);
        let part = part_path(&task.dst, i);
        match attempt(worker, task, &part, settings, cfg) {
            Ok(frames) => {
                let fin = Finished {
                    part: part.clone(),
                    encoder: Target::of(settings),
                    frames,
                    failed_attempts: failed.clone(),
                };
                match on_done(task, &fin) {
                    Ok(()) => return Ok(fin),
                    Err(e) => failed.push(format!("{name}: {e}")),
                }
            }
            Err(e) => failed.push(format!("{name}: {e}")),
        }
        let _ = std::fs::remove_file(&part);
    }
    Err(if failed.is_empty() {
        "no encoder to try".to_string()
    } else {
        failed.join("; ")
    })
}

fn attempt(
    worker: usize,
    task: &Task,
    part: &std::path::Path,
    settings: &EncoderSettings,
    cfg: &PoolConfig<'_>,
) -> std::result::Result<u64, String> {
    let progress = Arc::new(AtomicU64::new(0));
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = crossbeam_channel::bounded::<Result<u64>>(1);
    {
        let (progress, cancel) = (progress.clone(), cancel.clone());
        let (src, dst, settings, fps) = (
            task.src.clone(),
            part.to_path_buf(),
            settings.clone(),
            cfg.fps,
        );
        let t = cfg.transcoder.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("reencode-w{worker}"))
            .spawn(move || {
                lower_priority();
                let r = t.transcode(&src, &dst, fps, &settings, &progress, &cancel);
                let _ = tx.send(r);
            });
        if let Err(e) = spawned {
            return Err(format!("spawn encoder thread: {e}"));
        }
    }
    let mut last = 0u64;
    let mut last_change = Instant::now();
    let tick = Duration::from_millis(50).min(cfg.task_timeout.max(Duration::from_millis(1)));
    loop {
        match rx.recv_timeout(tick) {
            Ok(Ok(frames)) => {
                cfg.progress
                    .task_frames(worker, progress.load(Ordering::Relaxed));
                if frames != task.frames {
                    return Err(format!(
                        "wrote {frames} frames, the source has {}",
                        task.frames
                    ));
                }
                return Ok(frames);
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err("encoder thread ended without a result (panicked)".into())
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if cfg.stop.requested() {
                    cancel.store(true, Ordering::Relaxed);
                    return Err(INTERRUPTED.into());
                }
                let now = progress.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    last_change = Instant::now();
                    cfg.progress.task_frames(worker, now);
                } else if last_change.elapsed() >= cfg.task_timeout {
                    cancel.store(true, Ordering::Relaxed);
                    return Err(format!(
                        "no frame progress for {:.1} s after frame {now} (hung); cancelled",
                        cfg.task_timeout.as_secs_f64()
                    ));
                }
            }
        }
    }
}
