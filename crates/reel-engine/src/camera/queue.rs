//! The per-camera queues between the loop and the encoders: frames wait in memory up to
//! [`QueueLimits::max_frames_in_memory`], then in a raw spill file on disk, in order.
//!
//! The **intake** thread drains the loop's unbounded channel at once and offers every frame to
//! each **lane** of the camera: the live lane (the encoder whose segment is committed) and,
//! with a deferred final codec, the final lane (the idle-priority final-codec encoder, see
//! [`super::final_lane`]). Each lane has its own queue and spill file; the consumer takes
//! entries in order with [`Queue::take`] and reads spilled frames back with [`SpillReader`].
//!
//! The spill file is a ring ([`SpillRing`]): frames are written at the end of the unread region
//! and read back in the same order, so space is reused as soon as the oldest frame is read,
//! even when the queue never drains completely.
//!
//! * Live lane: a frame that cannot be spilled (full disk, spill limit) stays in memory beyond
//!   the limit and is counted: it is never dropped.
//! * Final lane: the committed live file holds every frame anyway, so the final lane gives up
//!   an episode instead ([`Entry::Abandon`]): when its spill is full, or when the episode starts
//!   with more than [`LaneKind::Final::skip_above`] bytes already spilled. That episode is
//!   converted from the live file after its commit instead; the next episode is taken again
//!   once the backlog has shrunk.

use super::CameraCounters;
use crossbeam_channel::Receiver;
use reel_core::{Error, Result, SharedFrame, VideoFrame};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
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
        /// Bytes of the frame (RGB24 or a depth camera's uint16 millimetres).
        len: usize,
        captured_ns: u64,
        seq: u64,
    },
    End(u64),
    Discard,
    /// Final lane only: the frames of the episode in progress are not coming (queue full or
    /// backlog too long); drop its encoder and report the episode as skipped at its `End`.
    Abandon,
    Shutdown,
}

/// Byte ranges of the spill file in use, oldest first: a ring over `[0, limit)`.
#[derive(Debug, Default)]
pub(crate) struct SpillRing {
    /// (offset, length) of each frame on disk not yet read back, in write order.
    used: VecDeque<(u64, u64)>,
}

impl SpillRing {
    /// Where a frame of `len` bytes can be written without touching unread frames, within
    /// `limit` bytes; None when the ring is full.
    pub(crate) fn alloc(&mut self, len: u64, limit: u64) -> Option<u64> {
        if len > limit {
            return None;
        }
        let at = match (self.used.front(), self.used.back()) {
            (Some(&(head, _)), Some(&(last, last_len))) => {
                let tail = last + last_len;
                if last >= head {
                    // Unread region [head, tail): free space after it, then before it.
                    if tail + len <= limit {
                        tail
                    } else if len <= head {
                        0
                    } else {
                        return None;
                    }
                } else if tail + len <= head {
                    // Wrapped: unread [head, end) and [0, tail); free space between them.
                    tail
                } else {
                    return None;
                }
            }
            _ => 0,
        };
        self.used.push_back((at, len));
        Some(at)
    }

    /// The oldest frame was read back: its bytes may be reused.
    pub(crate) fn release_oldest(&mut self) {
        self.used.pop_front();
    }

    /// The newest frame was dropped before being read (a purged episode).
    pub(crate) fn release_newest(&mut self) {
        self.used.pop_back();
    }

    /// Bytes of unread frames.
    pub(crate) fn bytes(&self) -> u64 {
        self.used.iter().map(|(_, l)| l).sum()
    }

    /// Frames on disk not yet read back.
    #[cfg(test)]
    pub(crate) fn frames(&self) -> u64 {
        self.used.len() as u64
    }
}

#[derive(Default)]
pub(crate) struct QueueState {
    entries: VecDeque<Entry>,
    mem_frames: usize,
    /// Frames on disk, counted until the encoder has read them back.
    ring: SpillRing,
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
        self.lock().ring.release_oldest();
    }

    /// Bytes of spilled frames not yet read back.
    pub(crate) fn spilled_bytes(&self) -> u64 {
        self.lock().ring.bytes()
    }

    /// Drops the frames queued since the last marker (the episode in progress, as far as it
    /// is still queued) and queues [`Entry::Abandon`]. Returns (frames dropped, of which on
    /// disk).
    pub(crate) fn abandon_episode(&self) -> (u64, u64) {
        let (mut n, mut disk) = (0, 0);
        {
            let mut q = self.lock();
            while matches!(q.entries.back(), Some(Entry::Mem(_) | Entry::Disk { .. })) {
                match q.entries.pop_back() {
                    Some(Entry::Mem(_)) => q.mem_frames -= 1,
                    Some(Entry::Disk { .. }) => {
                        q.ring.release_newest();
                        disk += 1;
                    }
                    _ => {}
                }
                q.depth -= 1;
                n += 1;
            }
            q.entries.push_back(Entry::Abandon);
        }
        self.cv.notify_all();
        (n, disk)
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

/// What a lane does with a frame it cannot keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum LaneKind {
    /// The committed encoder: a frame is never dropped (kept in memory beyond the limit).
    Live,
    /// The final-codec encoder: gives an episode up instead (see the module doc); an episode
    /// that starts with more than `skip_above` bytes spilled is not taken at all.
    Final { skip_above: u64 },
}

/// One consumer of a camera's frames, as the intake thread feeds it.
pub(crate) struct Lane {
    pub(crate) queue: Arc<Queue>,
    pub(crate) counters: Arc<CameraCounters>,
    pub(crate) spill_path: PathBuf,
    pub(crate) max_frames_in_memory: usize,
    pub(crate) max_spill_bytes: u64,
    pub(crate) kind: LaneKind,
    spill: Option<File>,
    /// A frame of the current episode has been offered.
    in_episode: bool,
    /// Final lane: the current episode is given up.
    skipping: bool,
}

impl Lane {
    pub(crate) fn new(
        queue: Arc<Queue>,
        counters: Arc<CameraCounters>,
        spill_path: PathBuf,
        max_frames_in_memory: usize,
        max_spill_bytes: u64,
        kind: LaneKind,
    ) -> Lane {
        Lane {
            queue,
            counters,
            spill_path,
            max_frames_in_memory,
            max_spill_bytes,
            kind,
            spill: None,
            in_episode: false,
            skipping: false,
        }
    }

    fn offer(&mut self, f: &SharedFrame) {
        if let (LaneKind::Final { skip_above }, false) = (self.kind, self.in_episode) {
            let backlog = self.queue.spilled_bytes();
            if backlog > skip_above {
                tracing::info!(
                    "final-codec lane {}: {} MiB of frames still spilled; this episode will be converted from the live file after its commit",
                    self.spill_path.display(),
                    backlog >> 20
                );
                self.skipping = true;
                self.queue.abandon_episode();
            }
        }
        self.in_episode = true;
        if self.skipping {
            return;
        }
        let must_spill = self.queue.lock().mem_frames >= self.max_frames_in_memory;
        let entry = if must_spill {
            match self.spill_frame(f) {
                Ok(offset) => {
                    self.counters.spilled_now.fetch_add(1, Ordering::Relaxed);
                    self.counters.spilled_total.fetch_add(1, Ordering::Relaxed);
                    Entry::Disk {
                        offset,
                        width: f.width,
                        height: f.height,
                        len: f.data.len(),
                        captured_ns: f.captured_ns,
                        seq: f.seq,
                    }
                }
                Err(e) => match self.kind {
                    LaneKind::Live => {
                        // Never lose the frame: keep it in memory beyond the limit and say so.
                        let n = self.counters.spill_failures.fetch_add(1, Ordering::Relaxed);
                        if n == 0 || (n + 1).is_power_of_two() {
                            tracing::warn!(
                                "cannot spill a frame to disk ({e}); keeping it in memory ({} so far)",
                                n + 1
                            );
                        }
                        Entry::Mem(f.clone())
                    }
                    LaneKind::Final { .. } => {
                        tracing::info!(
                            "final-codec lane: {e}; this episode will be converted from the live file after its commit"
                        );
                        let (n, disk) = self.queue.abandon_episode();
                        self.counters.queued.fetch_sub(n, Ordering::Relaxed);
                        self.counters.spilled_now.fetch_sub(disk, Ordering::Relaxed);
                        self.skipping = true;
                        return;
                    }
                },
            }
        } else {
            Entry::Mem(f.clone())
        };
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        self.queue.push(entry);
    }

    fn marker(&mut self, entry: Entry) {
        if matches!(
            (self.kind, &entry),
            (LaneKind::Final { .. }, Entry::Discard)
        ) && !self.skipping
        {
            // A discarded episode's frames are not worth encoding: drop what is still queued.
            let (n, disk) = self.queue.abandon_episode();
            self.counters.queued.fetch_sub(n, Ordering::Relaxed);
            self.counters.spilled_now.fetch_sub(disk, Ordering::Relaxed);
        }
        self.in_episode = false;
        self.skipping = false;
        self.queue.push(entry);
    }

    fn spill_frame(&mut self, f: &VideoFrame) -> Result<u64> {
        let len = f.data.len() as u64;
        let at = self
            .queue
            .lock()
            .ring
            .alloc(len, self.max_spill_bytes)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "spill limit of {} MiB reached in {}: the encoder cannot keep up",
                    self.max_spill_bytes >> 20,
                    self.spill_path.display()
                ))
            })?;
        let res = write_at(&mut self.spill, &self.spill_path, at, &f.data);
        if res.is_err() {
            self.queue.lock().ring.release_newest();
        }
        res.map(|_| at)
    }
}

/// The intake thread: drains `rx` and offers every frame to each lane (see the module doc).
pub(crate) fn intake_loop(rx: Receiver<Msg>, mut lanes: Vec<Lane>) {
    for msg in rx.iter() {
        match msg {
            Msg::Frame(f) => {
                for lane in lanes.iter_mut() {
                    lane.offer(&f);
                }
            }
            Msg::End(seq) => lanes.iter_mut().for_each(|l| l.marker(Entry::End(seq))),
            Msg::Discard => lanes.iter_mut().for_each(|l| l.marker(Entry::Discard)),
            Msg::Shutdown => {
                lanes.iter_mut().for_each(|l| l.marker(Entry::Shutdown));
                break;
            }
        }
    }
    // Each lane's consumer removes its spill file when it ends (it may still be reading it).
}

fn write_at(spill: &mut Option<File>, path: &Path, at: u64, data: &[u8]) -> Result<()> {
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
    file.write_all(data)
        .map_err(|e| Error::io("write spill file", path, e))
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

    /// Counts a taken `Mem` or `Disk` entry out of `queue` and returns its frame (a spilled
    /// frame read back, with its capture time and sequence number); any other entry is handed
    /// back as it is.
    pub(crate) fn frame_of(
        &mut self,
        entry: Entry,
        queue: &Queue,
        counters: &CameraCounters,
    ) -> std::result::Result<Result<SharedFrame>, Entry> {
        match entry {
            Entry::Mem(f) => {
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                Ok(Ok(f))
            }
            Entry::Disk {
                offset,
                width,
                height,
                len,
                captured_ns,
                seq,
            } => {
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                counters.spilled_now.fetch_sub(1, Ordering::Relaxed);
                let read = self.read(offset, width, height, len).map(|mut f| {
                    f.captured_ns = captured_ns;
                    f.seq = seq;
                    Arc::new(f)
                });
                queue.spill_read_back();
                Ok(read)
            }
            other => Err(other),
        }
    }

    /// The spill file read.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The `w`x`h` frame of `len` bytes spilled at `offset` (RGB24, or uint16 millimetres).
    pub(crate) fn read(&mut self, offset: u64, w: u32, h: u32, len: usize) -> Result<VideoFrame> {
        if self.file.is_none() {
            self.file = Some(
                File::open(&self.path).map_err(|e| Error::io("open spill file", &self.path, e))?,
            );
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::invalid("spill reader missing"))?;
        let px = w as usize * h as usize;
        if len != px * 3 && len != px * 2 {
            return Err(Error::invalid(format!(
                "spilled frame {w}x{h} of {len} bytes is neither RGB24 nor uint16 depth"
            )));
        }
        let mut data = vec![0u8; len];
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io("seek spill file", &self.path, e))?;
        file.read_exact(&mut data)
            .map_err(|e| Error::io("read spill file", &self.path, e))?;
        Ok(VideoFrame {
            width: w,
            height: h,
            data,
            captured_ns: 0,
            seq: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_ring_reuses_space_as_soon_as_the_oldest_frame_is_read() {
        let mut r = SpillRing::default();
        // Three 10-byte frames in a 30-byte ring fill it.
        assert_eq!(r.alloc(10, 30), Some(0));
        assert_eq!(r.alloc(10, 30), Some(10));
        assert_eq!(r.alloc(10, 30), Some(20));
        assert_eq!(r.alloc(10, 30), None, "full");
        assert_eq!((r.frames(), r.bytes()), (3, 30));
        // Reading the oldest back frees its bytes at the start: the next write wraps there.
        r.release_oldest();
        assert_eq!(r.alloc(10, 30), Some(0));
        assert_eq!(r.alloc(10, 30), None, "wrapped and full again");
        r.release_oldest();
        assert_eq!(
            r.alloc(10, 30),
            Some(10),
            "wrapped: free space between tail and head"
        );
        // A purged newest frame gives its space back.
        r.release_newest();
        assert_eq!(r.alloc(10, 30), Some(10));
        // Draining everything starts over at 0.
        for _ in 0..3 {
            r.release_oldest();
        }
        assert_eq!(r.frames(), 0);
        assert_eq!(r.alloc(25, 30), Some(0));
        assert_eq!(r.alloc(10, 30), None, "a frame larger than the free space");
        assert_eq!(r.alloc(31, 30), None, "a frame larger than the ring");
    }

    fn frame(seq: u64) -> SharedFrame {
        let mut f = VideoFrame::new(4, 2, vec![seq as u8; 24]).unwrap();
        f.seq = seq;
        Arc::new(f)
    }

    fn lane(dir: &Path, name: &str, kind: LaneKind, mem: usize, spill: u64) -> Lane {
        Lane::new(
            Arc::new(Queue::default()),
            Arc::new(CameraCounters::default()),
            dir.join(name),
            mem,
            spill,
            kind,
        )
    }

    /// Takes every queued entry as (kind, seq) pairs; reads spilled frames back.
    fn drain(l: &Lane) -> Vec<(char, u64)> {
        let mut reader = SpillReader::new(&l.spill_path);
        let mut out = Vec::new();
        while let Some(e) = l.queue.take(Duration::ZERO) {
            out.push(match e {
                Entry::Mem(f) => ('m', f.seq),
                Entry::Disk { offset, seq, .. } => {
                    let f = reader.read(offset, 4, 2, 24).unwrap();
                    l.queue.spill_read_back();
                    assert_eq!(f.data[0], seq as u8, "the spilled bytes come back");
                    ('d', seq)
                }
                Entry::End(s) => ('E', s),
                Entry::Discard => ('D', 0),
                Entry::Abandon => ('A', 0),
                Entry::Shutdown => ('S', 0),
            });
        }
        out
    }

    #[test]
    fn live_lane_spills_in_order_and_never_drops_a_frame() {
        let d = tempfile::tempdir().unwrap();
        // 2 frames in memory, room for 2 on disk: the 5th stays in memory beyond the limit.
        let mut l = lane(d.path(), "live.raw", LaneKind::Live, 2, 48);
        for s in 0..5 {
            l.offer(&frame(s));
        }
        l.marker(Entry::End(0));
        assert_eq!(
            drain(&l),
            vec![('m', 0), ('m', 1), ('d', 2), ('d', 3), ('m', 4), ('E', 0)]
        );
        assert_eq!(l.counters.spill_failures.load(Ordering::Relaxed), 1);
        assert_eq!(l.counters.queued.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn final_lane_gives_up_an_episode_instead_of_growing_and_takes_the_next_again() {
        let d = tempfile::tempdir().unwrap();
        let mut l = lane(
            d.path(),
            "final.raw",
            LaneKind::Final { skip_above: 24 },
            1,
            48,
        );
        // Episode 0: 1 frame in memory, 2 on disk, the 4th does not fit: the episode is given up.
        for s in 0..4 {
            l.offer(&frame(s));
        }
        l.marker(Entry::End(0));
        assert_eq!(
            l.queue.spilled_bytes(),
            0,
            "its spilled frames were released"
        );
        assert_eq!(l.counters.queued.load(Ordering::Relaxed), 0);
        // Episode 1 fits.
        for s in 10..12 {
            l.offer(&frame(s));
        }
        l.marker(Entry::End(1));
        assert_eq!(
            drain(&l),
            vec![('A', 0), ('E', 0), ('m', 10), ('d', 11), ('E', 1)]
        );
        // Episode 2 fills the ring exactly (nothing read back meanwhile)...
        for s in 20..23 {
            l.offer(&frame(s));
        }
        l.marker(Entry::End(2));
        assert_eq!(l.queue.spilled_bytes(), 48);
        // ...so episode 3 starts with more than `skip_above` spilled: it is skipped whole.
        for s in 30..32 {
            l.offer(&frame(s));
        }
        l.marker(Entry::End(3));
        assert_eq!(
            drain(&l),
            vec![
                ('m', 20),
                ('d', 21),
                ('d', 22),
                ('E', 2),
                ('A', 0),
                ('E', 3)
            ]
        );
        // Once the backlog is read back, the next episode is taken again.
        l.offer(&frame(40));
        l.marker(Entry::End(4));
        assert_eq!(drain(&l), vec![('m', 40), ('E', 4)]);
        // A discarded episode's queued frames are dropped at once.
        let queued = l.counters.queued.load(Ordering::Relaxed);
        l.offer(&frame(50));
        l.offer(&frame(51));
        l.marker(Entry::Discard);
        assert_eq!(drain(&l), vec![('A', 0), ('D', 0)]);
        assert_eq!(l.counters.queued.load(Ordering::Relaxed), queued);
    }
}
