//! The per-camera queue between the loop and the encoder: frames wait in memory up to
//! [`QueueLimits::max_frames_in_memory`], then in a raw spill file on disk, in order.
//!
//! The **intake** thread drains the loop's unbounded channel at once and decides, frame by
//! frame, between memory and disk; the encoder side takes entries in order with [`Queue::take`]
//! and reads spilled frames back with [`SpillReader`]. A frame that cannot be spilled (full
//! disk, spill limit) stays in memory beyond the limit and is counted: it is never dropped.

use super::{CameraCounters, QueueLimits};
use crossbeam_channel::Receiver;
use reel_core::{Error, Result, SharedFrame, VideoFrame};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// What the loop sends down a camera's channel.
pub(crate) enum Msg {
    Frame(SharedFrame),
    /// End of episode `seq`: finish the segment and report it.
    End(u64),
    /// Drop the current episode's frames and segment.
    Discard,
    Shutdown,
}

/// One queued item, as the encoder side takes it.
pub(crate) enum Entry {
    Mem(SharedFrame),
    Disk {
        offset: u64,
        width: u32,
        height: u32,
        captured_ns: u64,
        seq: u64,
    },
    End(u64),
    Discard,
    Shutdown,
}

#[derive(Default)]
pub(crate) struct QueueState {
    entries: VecDeque<Entry>,
    mem_frames: usize,
    /// Frames on disk, counted until the encoder has read them back.
    disk_frames: u64,
    depth: u64,
    max_depth: u64,
    spilled_episode: u64,
}

/// The queue shared by the intake thread and the encoder thread.
#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    cv: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next entry in order, waiting up to `wait` for one.
    pub(crate) fn take(&self, wait: Duration) -> Option<Entry> {
        let mut q = self.lock();
        loop {
            if let Some(e) = q.entries.pop_front() {
                match &e {
                    Entry::Mem(_) => {
                        q.mem_frames -= 1;
                        q.depth -= 1;
                    }
                    // A spilled frame stays counted on disk until it has been read back, so
                    // the intake never reuses its bytes too early (see `spill_read_back`).
                    Entry::Disk { .. } => q.depth -= 1,
                    _ => {}
                }
                return Some(e);
            }
            let (g, t) = self
                .cv
                .wait_timeout(q, wait)
                .unwrap_or_else(|p| p.into_inner());
            q = g;
            if t.timed_out() {
                return None;
            }
        }
    }

    /// A spilled frame has been read back: its bytes may be reused.
    pub(crate) fn spill_read_back(&self) {
        let mut q = self.lock();
        q.disk_frames = q.disk_frames.saturating_sub(1);
    }

    /// (frames spilled during the episode, deepest queue during it); starts the next episode's.
    pub(crate) fn take_episode_figures(&self) -> (u64, u64) {
        let mut q = self.lock();
        let r = (q.spilled_episode, q.max_depth);
        q.spilled_episode = 0;
        q.max_depth = q.depth;
        r
    }

    /// Forgets the spill count of a discarded episode.
    pub(crate) fn reset_episode_spill(&self) {
        self.lock().spilled_episode = 0;
    }

    fn push(&self, entry: Entry) {
        {
            let mut q = self.lock();
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
        self.cv.notify_all();
    }
}

/// The intake thread: drains `rx`, keeps frames in memory up to the limit, spills the rest.
pub(crate) fn intake_loop(
    rx: Receiver<Msg>,
    queue: Arc<Queue>,
    counters: Arc<CameraCounters>,
    spill_path: PathBuf,
    limits: QueueLimits,
) {
    let mut spill: Option<File> = None;
    let mut spill_end: u64 = 0;
    for msg in rx.iter() {
        let entry = match msg {
            Msg::Frame(f) => {
                let must_spill = {
                    let q = queue.lock();
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
                            Entry::Disk {
                                offset,
                                width: f.width,
                                height: f.height,
                                captured_ns: f.captured_ns,
                                seq: f.seq,
                            }
                        }
                        Err(e) => {
                            // Never lose the frame: keep it in memory beyond the limit and say so.
                            let n = counters.spill_failures.fetch_add(1, Ordering::Relaxed);
                            if n == 0 || (n + 1).is_power_of_two() {
                                tracing::warn!(
                                    "cannot spill a frame to disk ({e}); keeping it in memory ({} so far)",
                                    n + 1
                                );
                            }
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
        queue.push(entry);
        if stop {
            break;
        }
    }
    let _ = fs::remove_file(&spill_path);
}

fn spill_frame(
    spill: &mut Option<File>,
    path: &Path,
    at: u64,
    f: &VideoFrame,
    limits: QueueLimits,
) -> Result<u64> {
    if at + f.data.len() as u64 > limits.max_spill_bytes {
        return Err(Error::invalid(format!(
            "spill limit of {} MiB reached in {}: the encoder cannot keep up",
            limits.max_spill_bytes >> 20,
            path.display()
        )));
    }
    if spill.is_none() {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io("create spill file", path, e))?;
        *spill = Some(file);
    }
    let file = spill
        .as_mut()
        .ok_or_else(|| Error::invalid("spill file missing"))?;
    file.seek(SeekFrom::Start(at))
        .map_err(|e| Error::io("seek spill file", path, e))?;
    file.write_all(&f.data)
        .map_err(|e| Error::io("write spill file", path, e))?;
    Ok(at)
}

/// Reads spilled frames back (the encoder thread's side of the spill file).
pub(crate) struct SpillReader {
    path: PathBuf,
    file: Option<File>,
}

impl SpillReader {
    pub(crate) fn new(path: &Path) -> SpillReader {
        SpillReader {
            path: path.to_path_buf(),
            file: None,
        }
    }

    /// The `w`x`h` RGB frame spilled at `offset`.
    pub(crate) fn read(&mut self, offset: u64, w: u32, h: u32) -> Result<VideoFrame> {
        if self.file.is_none() {
            self.file = Some(
                File::open(&self.path).map_err(|e| Error::io("open spill file", &self.path, e))?,
            );
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::invalid("spill reader missing"))?;
        let mut data = vec![0u8; w as usize * h as usize * 3];
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io("seek spill file", &self.path, e))?;
        file.read_exact(&mut data)
            .map_err(|e| Error::io("read spill file", &self.path, e))?;
        VideoFrame::new(w, h, data)
    }
}
