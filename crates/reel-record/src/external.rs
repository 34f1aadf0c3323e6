//! A recording loop that reel does not run (LeRobot's `record_loop`, a policy rollout, a
//! user's own script): the caller paces its ticks and calls `add_frame`; this module feeds a
//! [`DatasetWriter`] and times those calls with an [`ExternalTimer`], so every episode gets the
//! same `reel/*` figures and slow-tick warnings as an episode of reel's own loop.
//!
//! This is what the Python module's `Writer` drives; it holds no Python.

use crate::timing::{ExternalTick, ExternalTimer, Summary, TickReport};
use reel_core::{monotonic_ns, Result, RowValues};
use reel_engine::writer::{DatasetWriter, Finalized};

/// When one `add_frame` happened, as the front end saw it (the [`monotonic_ns`] clock).
#[derive(Debug, Clone, Default)]
pub struct FrameStamp {
    /// When the caller's `add_frame` began (before its frames were converted or copied).
    pub call_ns: u64,
    /// The tick's time as the caller gave it (its observation's capture time). None: the call.
    pub tick_ns: Option<u64>,
    /// Capture time of each camera's frame, by feature key, when the caller gave it.
    pub captured_ns: Vec<(String, u64)>,
}

/// A [`DatasetWriter`] fed by a loop reel does not pace (see the module doc).
pub struct ExternalSession {
    writer: DatasetWriter,
    fps: u32,
    cameras: Vec<String>,
    timer: ExternalTimer,
}

/// The short camera name used in the `reel/camera/<name>/*` columns.
fn camera_name(key: &str) -> String {
    key.strip_prefix("observation.images.")
        .unwrap_or(key)
        .to_string()
}

impl ExternalSession {
    /// Wraps an opened writer; `fps` is the rate the caller's loop runs at (the dataset's).
    pub fn new(writer: DatasetWriter, fps: u32) -> ExternalSession {
        let cameras = writer.features().video_keys();
        let names: Vec<String> = cameras.iter().map(|k| camera_name(k)).collect();
        ExternalSession {
            timer: ExternalTimer::new(fps, &names),
            writer,
            fps,
            cameras,
        }
    }

    /// The writer (queues, totals, saved episodes).
    pub fn writer(&self) -> &DatasetWriter {
        &self.writer
    }

    /// Adds one row, then times the call (its end is taken here, after the hand-over).
    pub fn add_frame(&mut self, row: RowValues, stamp: FrameStamp) -> Result<TickReport> {
        self.writer.add_frame(row)?;
        let end_ns = monotonic_ns();
        let captured_ns = self
            .cameras
            .iter()
            .map(|k| {
                stamp
                    .captured_ns
                    .iter()
                    .find(|(c, _)| c == k)
                    .map(|(_, t)| *t)
            })
            .collect();
        let report = self.timer.frame(&ExternalTick {
            tick_ns: stamp.tick_ns.unwrap_or(stamp.call_ns),
            call_ns: stamp.call_ns,
            end_ns,
            captured_ns,
        });
        // The per-tick record, stored in `meta/reel/ticks/` like reel's own loop's.
        self.writer.add_tick(report.record);
        Ok(report)
    }

    /// Ends the episode: queues its commit with the episode's timing figures (returns at
    /// once) and logs the figures' one line. Returns the episode's index and its figures.
    pub fn save_episode(&mut self) -> Result<(u64, Summary)> {
        let summary = self.timer.summary();
        let (episodes, _) = self.writer.totals();
        let index = episodes + self.writer.backlog().pending_saves as u64;
        self.writer.save_episode(summary.extras())?;
        tracing::info!("episode {index}: {}", summary.line());
        self.restart_timer();
        Ok((index, summary))
    }

    /// Drops the episode in progress and its figures.
    pub fn discard_episode(&mut self) -> Result<()> {
        self.restart_timer();
        self.writer.discard_episode()
    }

    /// Adds side-stream samples to the episode in progress (see
    /// [`DatasetWriter::add_samples`]).
    pub fn add_samples(
        &mut self,
        stream: &str,
        t_ns: &[i64],
        values: reel_dataset::streams::SampleValues<'_>,
    ) -> Result<()> {
        self.writer.add_samples(stream, t_ns, values)
    }

    /// The figures of the episode in progress.
    pub fn summary(&self) -> Summary {
        self.timer.summary()
    }

    /// See [`DatasetWriter::finalize_report`].
    pub fn finalize(self) -> Result<Finalized> {
        self.writer.finalize_report()
    }

    fn restart_timer(&mut self) {
        let names: Vec<String> = self.cameras.iter().map(|k| camera_name(k)).collect();
        self.timer = ExternalTimer::new(self.fps, &names);
    }
}
