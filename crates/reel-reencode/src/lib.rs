//! reel-reencode: re-encodes the videos of an existing LeRobot v3.0 dataset (reel's or
//! LeRobot's) — and nothing else.
//!
//! The unit of work is one video file (`videos/<key>/chunk-CCC/file-FFF.mp4`). A worker
//! [`pool`] fed by a priority queue transcodes each selected file under a watchdog (no frame
//! for `task_timeout` → cancel, retry with the next fallback encoder), writing the new file
//! beside the old one under `<root>/.reel/reencode/new/`. Finished files are recorded in a
//! [`state`] file, so an interrupted run resumes where it stopped. At the end the new files
//! are [`swap`]ped in together with `info.json`, roll-forward crash-safe. With
//! `shard: Some((i, N))` a run only produces its share of the files; a final
//! [`CommitMode::CommitOnly`] run checks that every shard finished and swaps everything.
// Unit tests build with the dev-dependencies, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod pool;
pub mod progress;
pub mod state;
pub mod swap;
pub mod transcode;

pub use progress::{ConsoleProgress, NoProgress, Progress};
pub use transcode::{FfmpegTranscoder, Transcoder};

use reel_core::{Error, Result};
use reel_dataset::info::Info;
use reel_dataset::lock::{DatasetLock, LockMode};
use reel_dataset::paths;
use reel_media::EncoderSettings;
use state::{DoneFile, State, Target};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When the new files replace the old ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Swap at the end of an unsharded run; a sharded run never swaps by itself.
    #[default]
    Auto,
    /// Only produce the new files (swap later with `CommitOnly`).
    Defer,
    /// Encode nothing: check that every shard (or the deferred run) finished, then swap.
    CommitOnly,
}

/// What to re-encode and how.
#[derive(Debug, Clone)]
pub struct ReencodeOptions {
    /// The target encoder.
    pub settings: EncoderSettings,
    /// Tried in order when an attempt with the previous encoder fails or hangs.
    pub fallback: Vec<EncoderSettings>,
    /// Only files holding at least one of these episodes (None = all).
    pub episodes: Option<Vec<u64>>,
    /// Only these cameras: full video keys or their last component ("front"). None = all.
    pub cameras: Option<Vec<String>>,
    /// Worker threads (0 = available cores).
    pub jobs: usize,
    /// An attempt that writes no frame for this long is cancelled and retried with a fallback.
    pub task_timeout: Duration,
    /// (i, N): only files whose index in sorted path order is ≡ i (mod N); never swaps.
    pub shard: Option<(usize, usize)>,
    pub commit: CommitMode,
    /// Re-encode files even when they already have the target codec and settings.
    pub force: bool,
    /// Stop requests (signals): running attempts are cancelled, finished files are kept (a
    /// rerun resumes), nothing is swapped.
    pub stop: reel_core::StopToken,
}

impl ReencodeOptions {
    /// All files and cameras, one worker per core, 120 s timeout, no fallback, swap at the end.
    pub fn new(settings: EncoderSettings) -> Self {
        ReencodeOptions {
            settings,
            fallback: Vec::new(),
            episodes: None,
            cameras: None,
            jobs: 0,
            task_timeout: Duration::from_secs(120),
            shard: None,
            commit: CommitMode::Auto,
            force: false,
            stop: reel_core::StopToken::new(),
        }
    }
}

/// One file re-encoded (in this run, or in an interrupted one and resumed).
#[derive(Debug, Clone, PartialEq)]
pub struct FileOutcome {
    /// Path relative to the dataset root.
    pub path: String,
    /// The FFmpeg encoder that produced the new file.
    pub encoder: String,
    pub frames: u64,
    /// Failed attempts before the one that worked (empty when the target encoder did it).
    pub failed_attempts: Vec<String>,
    /// True when an earlier, interrupted run had already finished it.
    pub resumed: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct ReencodeReport {
    pub files: Vec<FileOutcome>,
    /// (path, reason) of files left as they are.
    pub skipped: Vec<(String, String)>,
    /// (path, why every attempt failed).
    pub failed: Vec<(String, String)>,
    /// Frames encoded by this run (not counting resumed files).
    pub frames_encoded: u64,
    /// Wall time of the encode phase.
    pub encode_seconds: f64,
    /// True when new files were swapped into the dataset by this run.
    pub swapped: bool,
    /// True when an interrupted swap was found and finished first.
    pub recovered_swap: bool,
    pub warnings: Vec<String>,
}

impl ReencodeReport {
    /// Frames encoded per second of encode wall time.
    pub fn frames_per_second(&self) -> f64 {
        if self.encode_seconds > 0.0 {
            self.frames_encoded as f64 / self.encode_seconds
        } else {
            0.0
        }
    }

    /// Files a fallback encoder produced.
    pub fn fell_back(&self) -> Vec<&FileOutcome> {
        self.files
            .iter()
            .filter(|f| !f.failed_attempts.is_empty())
            .collect()
    }
}

/// Re-encodes `root`'s videos with the FFmpeg transcoder. See [`reencode_with`].
pub fn reencode(
    root: &Path,
    opts: &ReencodeOptions,
    progress: &dyn Progress,
) -> Result<ReencodeReport> {
    reencode_with(root, opts, progress, Arc::new(FfmpegTranscoder))
}

/// A video file of the dataset and the episodes it holds.
#[derive(Debug, Clone)]
struct VideoFile {
    rel: String,
    key: String,
    episodes: BTreeSet<u64>,
}

fn dataset_files(root: &Path, info: &Info) -> Result<Vec<VideoFile>> {
    let eps = reel_dataset::episodes::read_all(root, &info.features)?;
    let mut map: BTreeMap<String, VideoFile> = BTreeMap::new();
    for ep in &eps {
        for v in &ep.videos {
            let p = paths::video_file(root, &v.key, v.file);
            let rel = p
                .strip_prefix(root)
                .map_err(|_| {
                    Error::invalid(format!("video path {} outside the dataset", p.display()))
                })?
                .to_string_lossy()
                .into_owned();
            map.entry(rel.clone())
                .or_insert_with(|| VideoFile {
                    rel,
                    key: v.key.clone(),
                    episodes: BTreeSet::new(),
                })
                .episodes
                .insert(ep.episode_index);
        }
    }
    Ok(map.into_values().collect())
}

fn camera_selected(key: &str, cameras: &Option<Vec<String>>) -> bool {
    match cameras {
        None => true,
        Some(list) => list
            .iter()
            .any(|c| c == key || key.rsplit('.').next() == Some(c.as_str())),
    }
}

fn check_options(root: &Path, opts: &ReencodeOptions) -> Result<()> {
    if !paths::info_file(root).is_file() {
        return Err(Error::invalid(format!(
            "{} is not a LeRobot dataset (no meta/info.json)",
            root.display()
        )));
    }
    if paths::reel_dir(root).join("journal").exists() {
        return Err(Error::Mismatch(format!(
            "{} has an unfinished episode save; run `reel check --repair` first",
            root.display()
        )));
    }
    if let Some((i, n)) = opts.shard {
        if n == 0 || i >= n {
            return Err(Error::invalid(format!("shard {i}/{n}: need 0 <= i < N")));
        }
    }
    if opts.task_timeout.is_zero() {
        return Err(Error::invalid("task timeout must be positive"));
    }
    if opts.commit != CommitMode::CommitOnly {
        // An encoder FFmpeg does not know is a typo, not a reason to fall back.
        opts.settings.codec_family()?;
    }
    Ok(())
}

/// Re-encodes `root`'s videos with `transcoder` (tests inject faulty ones).
pub fn reencode_with(
    root: &Path,
    opts: &ReencodeOptions,
    progress: &dyn Progress,
    transcoder: Arc<dyn Transcoder>,
) -> Result<ReencodeReport> {
    reel_media::init();
    check_options(root, opts)?;
    // One writer per dataset: shards share the dataset (each holds its own part), everything
    // else (an unsharded run, --commit) holds it alone.
    let (mode, what) = match (opts.commit, opts.shard) {
        (CommitMode::CommitOnly, _) => (LockMode::Exclusive, "reel reencode --commit".to_string()),
        (_, Some((i, n))) => (
            LockMode::Shard { index: i, count: n },
            format!("reel reencode --shard {i}/{n}"),
        ),
        _ => (LockMode::Exclusive, "reel reencode".to_string()),
    };
    let _lock = DatasetLock::acquire(root, mode, &what)?;
    if mode != LockMode::Exclusive && swap::pending(root) {
        return Err(Error::Mismatch(format!(
            "{} has an interrupted swap; run `reel reencode --commit {}` (alone) first",
            root.display(),
            root.display()
        )));
    }
    let mut report = ReencodeReport {
        recovered_swap: swap::recover(root)?,
        ..Default::default()
    };
    if report.recovered_swap {
        progress.message("finished an interrupted swap");
    }
    if opts.commit == CommitMode::CommitOnly {
        commit_only(root, progress, &mut report)?;
        return Ok(report);
    }
    // Only a swap needs old/; after a finished (or recovered) swap it is garbage.
    let old = state::work_dir(root).join("old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io("remove", &old, e))?;
    }
    let settings = opts.settings.clone().resolved();
    let target = Target::of(&settings);
    let family = settings.codec_family().ok();
    let shard = opts.shard.unwrap_or((0, 1));
    let state_file = state::state_path(root, opts.shard);
    let mut st = match State::read(&state_file)? {
        Some(s) if s.target == target && s.shard == shard => s,
        Some(s) => {
            progress.message("settings changed since the interrupted run: starting over");
            for rel in s.files.keys() {
                if state::check_rel(root, rel).is_ok() {
                    let _ = std::fs::remove_file(state::new_path(root, rel));
                }
            }
            State::new(target.clone(), shard)
        }
        None => State::new(target.clone(), shard),
    };
    let info = Info::read(root)?;
    let block_matches = |key: &str| -> bool {
        let Some(vi) = info.video_info_of(key) else {
            return false;
        };
        target
            .info_fields
            .iter()
            .all(|(k, v)| vi.fields.iter().any(|(kk, vv)| kk == k && vv == v))
    };
    let all = dataset_files(root, &info)?;
    let mut tasks = Vec::new();
    let mut assigned = Vec::new();
    for (idx, f) in all.iter().enumerate() {
        if idx % shard.1 != shard.0 {
            continue;
        }
        if !camera_selected(&f.key, &opts.cameras) {
            report
                .skipped
                .push((f.rel.clone(), "camera not selected".into()));
            continue;
        }
        if info.features.get(&f.key).is_some_and(|ft| ft.is_depth()) {
            // A depth stream is LeRobot's lossless 12-bit HEVC of quantised millimetres: any
            // other codec would change what LeRobot's loader dequantises (or not decode).
            if opts.cameras.is_some() {
                return Err(Error::invalid(format!(
                    "camera '{}' is a depth stream (lossless 12-bit HEVC, LeRobot's depth encoding): reel reencode does not convert depth streams",
                    f.key
                )));
            }
            let note = format!(
                "{} is a depth stream: left as it is (LeRobot's lossless 12-bit HEVC)",
                f.key
            );
            if !report.warnings.contains(&note) {
                report.warnings.push(note);
            }
            report.skipped.push((
                f.rel.clone(),
                "depth stream (kept in LeRobot's depth encoding)".into(),
            ));
            continue;
        }
        if let Some(eps) = &opts.episodes {
            if !eps.iter().any(|e| f.episodes.contains(e)) {
                report
                    .skipped
                    .push((f.rel.clone(), "holds none of the selected episodes".into()));
                continue;
            }
        }
        if st.is_done(root, &f.rel) {
            assigned.push(f.rel.clone());
            if let Some(d) = st.files.get(&f.rel) {
                report.files.push(FileOutcome {
                    path: f.rel.clone(),
                    encoder: d.encoder.vcodec.clone(),
                    frames: d.frames,
                    failed_attempts: d.failed_attempts.clone(),
                    resumed: true,
                });
            }
            continue;
        }
        let src = root.join(&f.rel);
        let probe = reel_media::probe::probe_video(&src)?;
        if !opts.force && block_matches(&f.key) && family.as_deref() == Some(probe.codec.as_str()) {
            report.skipped.push((
                f.rel.clone(),
                format!("already {} with the target settings", probe.codec),
            ));
            continue;
        }
        let bytes = std::fs::metadata(&src)
            .map_err(|e| Error::io("stat", &src, e))?
            .len();
        st.files.remove(&f.rel);
        assigned.push(f.rel.clone());
        tasks.push(pool::Task {
            rel: f.rel.clone(),
            key: f.key.clone(),
            dst: state::new_path(root, &f.rel),
            src,
            bytes,
            frames: probe.frames,
        });
    }
    st.assigned = assigned;
    st.complete = false;
    if !st.assigned.is_empty() {
        st.write(&state_file)?;
    }
    let jobs = if opts.jobs == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.jobs
    }
    .min(tasks.len().max(1));
    let mut attempts = vec![settings.clone()];
    attempts.extend(opts.fallback.iter().map(|s| s.clone().resolved()));
    let total_frames: u64 = tasks.iter().map(|t| t.frames).sum();
    progress.begin(tasks.len(), total_frames, jobs);
    let started = Instant::now();
    let shared = Mutex::new(st);
    let on_done = |task: &pool::Task, fin: &pool::Finished| -> Result<()> {
        let probe = reel_media::probe::probe_video(&fin.part)?;
        if probe.frames != task.frames {
            return Err(Error::Mismatch(format!(
                "new file has {} frames, {} has {}: not swapping it",
                probe.frames, task.rel, task.frames
            )));
        }
        reel_core::journal::sync_path(&fin.part)?;
        std::fs::rename(&fin.part, &task.dst).map_err(|e| Error::io("rename", &fin.part, e))?;
        let bytes = std::fs::metadata(&task.dst)
            .map_err(|e| Error::io("stat", &task.dst, e))?
            .len();
        let mut st = shared
            .lock()
            .map_err(|_| Error::invalid("re-encode state lock poisoned"))?;
        st.files.insert(
            task.rel.clone(),
            DoneFile {
                key: task.key.clone(),
                encoder: fin.encoder.clone(),
                frames: fin.frames,
                bytes,
                failed_attempts: fin.failed_attempts.clone(),
            },
        );
        st.write(&state_file)
    };
    let cfg = pool::PoolConfig {
        attempts: &attempts,
        jobs,
        task_timeout: opts.task_timeout,
        fps: info.fps,
        transcoder,
        progress,
        stop: opts.stop.clone(),
    };
    let results = pool::run(tasks, &cfg, &on_done);
    progress.end();
    report.encode_seconds = started.elapsed().as_secs_f64();
    let mut st = shared
        .into_inner()
        .map_err(|_| Error::invalid("re-encode state lock poisoned"))?;
    for (task, r) in results {
        match r {
            Ok(fin) => {
                report.frames_encoded += fin.frames;
                report.files.push(FileOutcome {
                    path: task.rel,
                    encoder: fin.encoder.vcodec,
                    frames: fin.frames,
                    failed_attempts: fin.failed_attempts,
                    resumed: false,
                });
            }
            Err(why) => report.failed.push((task.rel, why)),
        }
    }
    report.files.sort_by(|a, b| a.path.cmp(&b.path));
    remove_stray_parts(root);
    if opts.stop.requested() {
        return Err(Error::Interrupted(format!(
            "{} file(s) finished and kept; rerun the same command to resume (nothing was swapped)",
            report.files.len()
        )));
    }
    if !report.failed.is_empty() {
        return Ok(report);
    }
    if st.assigned.is_empty() {
        if state_file.exists() {
            std::fs::remove_file(&state_file).map_err(|e| Error::io("remove", &state_file, e))?;
        }
        return Ok(report);
    }
    st.complete = true;
    st.write(&state_file)?;
    if opts.commit == CommitMode::Auto && opts.shard.is_none() {
        let files: BTreeMap<String, DoneFile> = st
            .files
            .iter()
            .filter(|(k, _)| st.assigned.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        report.warnings.extend(swap::swap_in(root, &files)?);
        report.swapped = true;
        progress.message(&format!(
            "swapped {} new file(s) into {}",
            files.len(),
            root.display()
        ));
    }
    Ok(report)
}

/// Deletes `.part` files of abandoned attempts (an abandoned thread may still hold one open;
/// unlinking it is harmless).
fn remove_stray_parts(root: &Path) {
    fn walk(dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for ent in rd.flatten() {
            let p = ent.path();
            if p.is_dir() {
                walk(&p);
            } else if p.to_string_lossy().ends_with(".part.mp4") {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    walk(&state::work_dir(root).join("new"));
}

fn commit_only(root: &Path, progress: &dyn Progress, report: &mut ReencodeReport) -> Result<()> {
    let states = state::all_states(root)?;
    if states.is_empty() {
        if report.recovered_swap {
            return Ok(());
        }
        return Err(Error::invalid(format!(
            "{}: no finished re-encode to commit",
            root.display()
        )));
    }
    let n = states[0].1.shard.1;
    let target = states[0].1.target.clone();
    let mut seen = vec![false; n];
    let mut files: BTreeMap<String, DoneFile> = BTreeMap::new();
    for (p, s) in &states {
        if s.shard.1 != n || s.target != target {
            return Err(Error::Mismatch(format!(
                "{} belongs to another re-encode (shard {}/{}, {}) than {} ({}/{n}, {})",
                p.display(),
                s.shard.0,
                s.shard.1,
                s.target.vcodec,
                states[0].0.display(),
                states[0].1.shard.0,
                target.vcodec
            )));
        }
        if !s.complete {
            return Err(Error::Mismatch(format!(
                "shard {}/{n} has not finished ({})",
                s.shard.0,
                p.display()
            )));
        }
        for rel in &s.assigned {
            if !s.is_done(root, rel) {
                return Err(Error::Mismatch(format!(
                    "shard {}/{n}: {rel} is not finished (missing or wrong size under .reel/reencode/new)",
                    s.shard.0
                )));
            }
            if let Some(d) = s.files.get(rel) {
                files.insert(rel.clone(), d.clone());
            }
        }
        if let Some(x) = seen.get_mut(s.shard.0) {
            *x = true;
        }
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| !**s)
        .map(|(i, _)| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Mismatch(format!(
            "shard(s) {} have not run (no state file)",
            missing.join(", ")
        )));
    }
    report.files = files
        .iter()
        .map(|(rel, d)| FileOutcome {
            path: rel.clone(),
            encoder: d.encoder.vcodec.clone(),
            frames: d.frames,
            failed_attempts: d.failed_attempts.clone(),
            resumed: true,
        })
        .collect();
    if files.is_empty() {
        swap::cleanup(root)?;
        return Ok(());
    }
    report.warnings.extend(swap::swap_in(root, &files)?);
    report.swapped = true;
    progress.message(&format!(
        "committed {} new file(s) from {n} shard(s)",
        files.len()
    ));
    Ok(())
}
