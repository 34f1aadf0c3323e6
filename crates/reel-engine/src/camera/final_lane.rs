//! The final lane of one camera (deferred final codec): a final-codec encoder fed the same
//! frames as the live encoder, from its own queue ([`super::queue`], memory then a spill ring),
//! on a thread at idle priority while the control loop runs and at normal priority after it
//! (`deferred::FinalControl`). Each episode becomes `final-N.mp4` in the segment directory and
//! is reported to the coordinator (`deferred::FinalSink`), which makes it the episode's
//! converted part once the episode is committed.
//!
//! The lane never fails an episode: when it gives one up (its queue was full: `Abandon`), or
//! its encoder fails, the episode is reported `Skipped` and the coordinator converts the
//! committed live file instead. No watchdog either: a lane episode is never waited for by the
//! loop or the committer, and a stop request aborts the lane.

use super::queue::{Entry, Queue, SpillReader};
use super::CameraCounters;
use crate::deferred::{FinalSink, LaneOutcome};
use reel_core::{Error, SharedFrame};
use reel_media::{EncoderSettings, EpisodeEncoder};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// What the lane thread needs.
pub(crate) struct FinalLane {
    pub(crate) key: String,
    pub(crate) dir: PathBuf,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) fps: u32,
    pub(crate) settings: EncoderSettings,
    pub(crate) queue: Arc<Queue>,
    pub(crate) counters: Arc<CameraCounters>,
    pub(crate) spill_path: PathBuf,
    pub(crate) sink: FinalSink,
}

/// The episode in progress.
enum State {
    /// No frame yet.
    Idle,
    Encoding {
        enc: Box<EpisodeEncoder>,
        path: PathBuf,
        frames: u64,
    },
    /// Given up (why); its frames are dropped until the episode ends.
    Skipped(String),
}

/// Reports the lane's end even if the thread unwinds, so the coordinator never waits for it.
struct EndGuard<'a>(&'a FinalSink);

impl Drop for EndGuard<'_> {
    fn drop(&mut self) {
        self.0.lane_ended();
    }
}

impl FinalLane {
    /// The thread body: runs until `Shutdown` or an abort.
    pub(crate) fn run(self) {
        let _end = EndGuard(&self.sink);
        let control = self.sink.control().clone();
        let mut applied = None;
        control.apply(&mut applied);
        let mut spill = SpillReader::new(&self.spill_path);
        let mut state = State::Idle;
        let mut counter = 0u64;
        loop {
            if control.aborted() {
                self.drop_episode(&mut state);
                break;
            }
            let Some(entry) = self.queue.take(Duration::from_millis(50)) else {
                continue;
            };
            let entry = match spill.frame_of(entry, &self.queue, &self.counters) {
                Ok(frame) => {
                    self.frame(&mut state, &mut counter, &mut applied, frame);
                    continue;
                }
                Err(marker) => marker,
            };
            match entry {
                // Frames were handled above.
                Entry::Mem(_) | Entry::Disk { .. } => {}
                Entry::End(seq) => {
                    let outcome = match std::mem::replace(&mut state, State::Idle) {
                        State::Idle => LaneOutcome::Skipped("no frames".into()),
                        State::Skipped(why) => LaneOutcome::Skipped(why),
                        State::Encoding { enc, path, frames } => match enc.finish() {
                            Ok(seg) if seg.frames == frames => LaneOutcome::Done {
                                path: seg.path,
                                frames: seg.frames,
                            },
                            Ok(seg) => {
                                remove(&path);
                                LaneOutcome::Skipped(format!(
                                    "{frames} frames sent to the final encoder, {} in its file",
                                    seg.frames
                                ))
                            }
                            Err(e) => {
                                remove(&path);
                                LaneOutcome::Skipped(format!("the final encoder failed: {e}"))
                            }
                        },
                    };
                    self.sink.lane_done(seq, outcome);
                }
                Entry::Abandon => {
                    self.drop_episode(&mut state);
                    self.sink.progress().store(0, Ordering::Relaxed);
                    state = State::Skipped("its backlog was too long (spill limit)".into());
                }
                Entry::Discard => {
                    self.drop_episode(&mut state);
                    state = State::Idle;
                    self.sink.progress().store(0, Ordering::Relaxed);
                }
                Entry::Shutdown => {
                    self.drop_episode(&mut state);
                    break;
                }
            }
        }
        let _ = fs::remove_file(&self.spill_path);
    }

    fn frame(
        &self,
        state: &mut State,
        counter: &mut u64,
        applied: &mut Option<reel_core::sched::Policy>,
        f: reel_core::Result<SharedFrame>,
    ) {
        let f = match f {
            Ok(f) => f,
            Err(e) => {
                self.drop_episode(state);
                *state = State::Skipped(format!("reading a spilled frame back: {e}"));
                return;
            }
        };
        if let State::Idle = state {
            // Open at the priority of the moment: idle while the loop runs, normal after.
            self.sink.control().apply(applied);
            *counter += 1;
            let path = self.dir.join(format!("final-{counter}.mp4"));
            remove(&path);
            match EpisodeEncoder::create(&path, self.width, self.height, self.fps, &self.settings) {
                Ok(enc) => {
                    *state = State::Encoding {
                        enc: Box::new(enc),
                        path,
                        frames: 0,
                    }
                }
                Err(e) => {
                    *state = State::Skipped(format!("the final encoder did not open: {e}"));
                    return;
                }
            }
        }
        let failed: Option<Error> = match state {
            State::Encoding { enc, frames, .. } => match enc.push(&f) {
                Ok(()) => {
                    *frames += 1;
                    self.sink.progress().fetch_add(1, Ordering::Relaxed);
                    self.sink.control().encoded.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(e) => Some(e),
            },
            _ => None,
        };
        if let Some(e) = failed {
            tracing::warn!(
                "camera {}: the final-codec encoder failed ({e}); the episode will be converted from the live file",
                self.key
            );
            self.drop_episode(state);
            *state = State::Skipped(format!("the final encoder failed: {e}"));
        }
    }

    /// Drops the episode in progress and its files.
    fn drop_episode(&self, state: &mut State) {
        if let State::Encoding { enc, path, .. } = std::mem::replace(state, State::Idle) {
            drop(enc);
            remove(&path);
        }
    }
}

fn remove(path: &Path) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(reel_media::partial_path(path));
}
