//! Side-stream sources feeding the loop: threads that produce samples at their own rate (the
//! servo bus thread of [`crate::bus`], an audio input) send them in blocks, each sample with
//! its capture time on the camera frames' clock (`reel_core::monotonic_ns`), and the session
//! hands them to the writer once per tick.
//!
//! ```text
//!  bus thread (500 Hz) ─┐ StreamSender        StreamCutter (loop thread, every tick:
//!  audio thread (48 kHz) ┴ (mpsc, unbounded) ─► try_recv only, never waits) ─► DatasetWriter::add_samples
//! ```
//!
//! **Which episode a sample belongs to is decided by its time**, never by when it arrived: an
//! episode holds, of every stream, the samples with `from <= t_ns <= to`, `from` the start of
//! its first tick and `to` the end of its record phase minus [`CUT_GUARD_NS`]; samples between
//! episodes (the reset) are dropped, counted. A sample stamped in the future (a paced file
//! input released ahead of the clock) waits in the cutter until its time has come. The guard
//! gives a sample stamped just before the cut the time to arrive (a bus read in flight); one
//! that still arrives after its episode was saved is dropped and counted as late (logged), never
//! put into the next episode. The interval is stored in every stream file (`reel.from_ns`,
//! `reel.to_ns`), so a reader knows what "every sample" means for that episode.

use reel_core::{Error, Result};
use reel_dataset::streams::{check_name, SampleValues};
use reel_engine::writer::DatasetWriter;
use std::collections::VecDeque;
use std::sync::mpsc;

/// How long before the end of an episode its streams are cut (see the module doc).
pub const CUT_GUARD_NS: i64 = 20_000_000;

/// Owned sample values, `width` per sample, row after row.
#[derive(Debug, Clone)]
pub enum SampleData {
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl SampleData {
    fn len(&self) -> usize {
        match self {
            SampleData::I16(v) => v.len(),
            SampleData::I32(v) => v.len(),
            SampleData::I64(v) => v.len(),
            SampleData::F32(v) => v.len(),
            SampleData::F64(v) => v.len(),
        }
    }

    /// Values `lo..hi` (indices of values, not samples).
    fn slice(&self, lo: usize, hi: usize) -> SampleValues<'_> {
        match self {
            SampleData::I16(v) => SampleValues::I16(&v[lo..hi]),
            SampleData::I32(v) => SampleValues::I32(&v[lo..hi]),
            SampleData::I64(v) => SampleValues::I64(&v[lo..hi]),
            SampleData::F32(v) => SampleValues::F32(&v[lo..hi]),
            SampleData::F64(v) => SampleValues::F64(&v[lo..hi]),
        }
    }
}

/// Samples of one stream: `t_ns.len()` samples, `data` holding the same number of values for
/// each, times non-decreasing.
#[derive(Debug, Clone)]
pub struct SampleBlock {
    pub t_ns: Vec<i64>,
    pub data: SampleData,
}

type Msg = (usize, SampleBlock);

/// The producing end of one named stream (cheap to clone, any thread).
#[derive(Clone)]
pub struct StreamSender {
    stream: usize,
    tx: mpsc::Sender<Msg>,
}

impl StreamSender {
    /// Hands a block over; false when the session is gone (the producer should stop). A block
    /// whose values do not fill its samples is refused here (false is not returned for it: it
    /// is a programming error of the producer, logged and dropped).
    pub fn send(&self, block: SampleBlock) -> bool {
        let n = block.t_ns.len();
        if n == 0 {
            return true;
        }
        let v = block.data.len();
        if v == 0 || !v.is_multiple_of(n) {
            tracing::error!("a stream block of {n} samples with {v} values was dropped");
            return true;
        }
        self.tx.send((self.stream, block)).is_ok()
    }
}

/// Per-stream figures of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamCounts {
    pub name: String,
    /// Samples stored in episodes.
    pub stored: u64,
    /// Samples whose time fell between episodes (resets, before the first episode).
    pub between_episodes: u64,
    /// Samples whose time fell inside an episode that had been saved before they arrived.
    pub late: u64,
}

/// The loop's end of the session's streams: cuts them into episodes by time (see the module
/// doc). Every method returns without waiting (`try_recv`, a copy into the writer's buffer).
pub struct StreamCutter {
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    counts: Vec<StreamCounts>,
    /// Blocks received, not yet consumed, with the index of their first unconsumed sample.
    pending: VecDeque<(usize, SampleBlock, usize)>,
    /// The episode being recorded: its start.
    from: Option<i64>,
    /// The last saved episode's cut (samples at or before it arriving later are late).
    last_to: i64,
    /// Samples stored per stream in the episode in progress.
    episode: Vec<u64>,
}

impl Default for StreamCutter {
    fn default() -> Self {
        StreamCutter::new()
    }
}

impl StreamCutter {
    pub fn new() -> StreamCutter {
        let (tx, rx) = mpsc::channel();
        StreamCutter {
            tx,
            rx,
            counts: Vec::new(),
            pending: VecDeque::new(),
            from: None,
            last_to: i64::MIN,
            episode: Vec::new(),
        }
    }

    /// A sender for the stream `name` (a valid, new stream name).
    pub fn sender(&mut self, name: &str) -> Result<StreamSender> {
        check_name(name)?;
        if self.counts.iter().any(|c| c.name == name) {
            return Err(Error::invalid(format!("stream '{name}' is declared twice")));
        }
        self.counts.push(StreamCounts {
            name: name.to_string(),
            ..Default::default()
        });
        self.episode.push(0);
        Ok(StreamSender {
            stream: self.counts.len() - 1,
            tx: self.tx.clone(),
        })
    }

    /// The streams' names, in declaration order.
    pub fn names(&self) -> Vec<String> {
        self.counts.iter().map(|c| c.name.clone()).collect()
    }

    /// The session's figures so far.
    pub fn counts(&self) -> &[StreamCounts] {
        &self.counts
    }

    /// An episode starts at `from_ns` (its first tick's start): samples from then on go to it.
    pub fn begin_episode(&mut self, from_ns: i64) {
        self.from = Some(from_ns);
        self.episode.iter_mut().for_each(|n| *n = 0);
    }

    /// Takes what arrived; during an episode, adds the samples up to `now_ns -
    /// CUT_GUARD_NS` to `writer` (the latest the episode's cut can be), between episodes drops
    /// them (counted). Later samples wait.
    pub fn drain(&mut self, writer: &mut DatasetWriter, now_ns: i64) -> Result<()> {
        self.take(writer, now_ns - CUT_GUARD_NS)
    }

    fn take(&mut self, writer: &mut DatasetWriter, upto_ns: i64) -> Result<()> {
        while let Ok(m) = self.rx.try_recv() {
            self.pending.push_back((m.0, m.1, 0));
        }
        self.consume(writer, upto_ns)
    }

    /// Ends the episode's streams: adds what arrived up to `end_ns - CUT_GUARD_NS` (the
    /// span), records the span in the writer, and returns the per-stream sample counts of the
    /// episode (`streams/<name>/samples`, stored with the episode's figures).
    pub fn end_episode(
        &mut self,
        writer: &mut DatasetWriter,
        end_ns: i64,
    ) -> Result<Vec<(String, i64)>> {
        let from = self.from.unwrap_or(end_ns);
        let to = (end_ns - CUT_GUARD_NS).max(from);
        self.take(writer, to)?;
        writer.set_stream_span(from, to);
        self.from = None;
        self.last_to = to;
        Ok(self
            .counts
            .iter()
            .zip(&self.episode)
            .map(|(c, n)| (c.name.clone(), *n as i64))
            .collect())
    }

    /// The episode in progress was discarded: its samples are gone with it (counted as
    /// between episodes), and samples of its interval arriving later are not late.
    pub fn discard_episode(&mut self) {
        for (c, n) in self.counts.iter_mut().zip(&mut self.episode) {
            c.stored -= *n;
            c.between_episodes += *n;
            *n = 0;
        }
        self.from = None;
    }

    fn consume(&mut self, writer: &mut DatasetWriter, now_ns: i64) -> Result<()> {
        let mut keep = VecDeque::new();
        while let Some((s, block, first)) = self.pending.pop_front() {
            let t = &block.t_ns;
            let width = block.data.len() / t.len();
            // Samples are in time order: [first, a) before the episode or between episodes,
            // [a, b) in it, [b, ..) not due yet.
            let b = first + t[first..].partition_point(|&x| x <= now_ns);
            let a = match self.from {
                Some(from) => first + t[first..b].partition_point(|&x| x < from),
                None => b,
            };
            let late = t[first..a].partition_point(|&x| x <= self.last_to) as u64;
            let c = &mut self.counts[s];
            c.late += late;
            c.between_episodes += (a - first) as u64 - late;
            if late > 0 {
                tracing::warn!(
                    "stream '{}': {late} sample(s) of an episode already saved arrived late; dropped",
                    c.name
                );
            }
            if b > a {
                writer.add_samples(&c.name, &t[a..b], block.data.slice(a * width, b * width))?;
                c.stored += (b - a) as u64;
                self.episode[s] += (b - a) as u64;
            }
            if b < t.len() {
                keep.push_back((s, block, b));
            }
        }
        self.pending = keep;
        Ok(())
    }
}
