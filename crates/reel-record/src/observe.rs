//! Reading reel's cameras from a loop reel does not run (LeRobot's `get_observation`, a
//! user's own loop): the decisions behind the Python module's LeRobot camera.
//!
//! LeRobot's own cameras make its loop wait: `async_read` blocks until a frame newer than the
//! last one arrives (up to 200 ms), camera after camera, so three free-running cameras can cost
//! the loop up to a frame interval each per tick. Here a read never waits for the camera's
//! next frame unless the tick can afford it:
//!
//! * a frame captured since the previous read is returned at once;
//! * otherwise the read waits for the next one until the **tick's observation budget** runs
//!   out, and then returns the previous frame again, counted and flagged as a repeat. The
//!   budget is shared by every camera of the loop ([`ObserveClock`]): the first read of a tick
//!   opens a round, and all reads of that round wait at most until `round start + budget`, so
//!   three cameras cost the loop at most one budget per tick, not three;
//! * a camera whose reader has died (file ended, device gone) or whose newest frame is older
//!   than the loss deadline is **lost**, decided by the same [`CameraWatch`] as `reel record`'s
//!   loop and handled as its `--on-camera-loss` says: end (the read fails with an error naming
//!   the camera and why) or continue (its frames are flagged stale and the loop goes on).

use crate::watch::{CameraWatch, CameraWatchConfig, Verdict};
use reel_capture::Camera;
use reel_core::{monotonic_ns, Error, Result, SharedFrame};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The observation budget of one tick, shared by the cameras of a loop (see the module doc).
#[derive(Debug)]
pub struct ObserveClock {
    /// Reads more than half a period after a round's first read open a new round.
    half_period_ns: u64,
    budget_ns: u64,
    round_start_ns: AtomicU64,
}

impl ObserveClock {
    /// A clock for a loop at `fps` whose cameras together may wait at most `budget` per tick.
    pub fn new(fps: u32, budget: Duration) -> ObserveClock {
        ObserveClock {
            half_period_ns: 500_000_000 / u64::from(fps.max(1)),
            budget_ns: budget.as_nanos() as u64,
            round_start_ns: AtomicU64::new(0),
        }
    }

    /// The budget per tick.
    pub fn budget(&self) -> Duration {
        Duration::from_nanos(self.budget_ns)
    }

    /// The moment a read made at `now_ns` may wait until: the end of its round's budget.
    pub fn deadline(&self, now_ns: u64) -> u64 {
        let start = self.round_start_ns.load(Ordering::Acquire);
        if start == 0 || now_ns.saturating_sub(start) > self.half_period_ns {
            // A new tick: this read opens its round (a racing read of the same tick may open
            // it a few microseconds later; either start is the tick's).
            self.round_start_ns.store(now_ns, Ordering::Release);
            return now_ns.saturating_add(self.budget_ns);
        }
        start.saturating_add(self.budget_ns)
    }
}

/// What one read returned.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The frame (the camera's own allocation: no copy).
    pub frame: SharedFrame,
    /// The same frame as the previous read's (no new capture within the budget).
    pub repeated: bool,
    /// The camera is lost and the policy says go on: the frame is stale.
    pub stale: bool,
    /// How long this read waited for the camera.
    pub waited_ns: u64,
}

/// Counts of a [`TickReader`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Reads that returned a frame.
    pub reads: u64,
    /// Of those, repeats of the previous read's frame.
    pub repeats: u64,
    /// Reads that waited for the camera (within the budget).
    pub waits: u64,
    /// Total time waited, nanoseconds.
    pub waited_ns: u64,
    /// Times the camera was found lost.
    pub losses: u64,
}

/// One camera's reads for a loop reel does not run (see the module doc).
#[derive(Debug)]
pub struct TickReader {
    name: String,
    last_seq: Option<u64>,
    watch: CameraWatch,
    counts: ReadCounts,
    lost: bool,
}

impl TickReader {
    /// A reader of camera `name`, watched with `watch` (loss deadline and policy).
    pub fn new(name: &str, watch: CameraWatchConfig) -> TickReader {
        TickReader {
            name: name.to_string(),
            last_seq: None,
            watch: CameraWatch::new(watch, &[name.to_string()]),
            counts: ReadCounts::default(),
            lost: false,
        }
    }

    /// The newest frame for this tick: a new one at once, else waiting within the tick's
    /// budget on `clock`, else a flagged repeat. Fails when the camera is lost and the policy
    /// ends recording. Blocks at most until the budget's end; call it without any lock held.
    pub fn read(&mut self, cam: &Camera, clock: &ObserveClock) -> Result<Delivery> {
        let now = monotonic_ns();
        let until = clock.deadline(now);
        let latest = cam.latest().ok_or_else(|| self.no_frame(cam))?;
        let mut waited_ns = 0;
        let frame = if Some(latest.seq) != self.last_seq {
            latest
        } else if until > now && cam.error().is_none() {
            let got = cam.wait_newer(self.last_seq, Duration::from_nanos(until - now));
            waited_ns = monotonic_ns().saturating_sub(now);
            self.counts.waits += 1;
            self.counts.waited_ns += waited_ns;
            got.unwrap_or(latest)
        } else {
            latest
        };
        self.deliver(cam, frame, waited_ns)
    }

    /// A frame newer than the previous read's, waiting up to `timeout` for it (LeRobot's
    /// blocking `read()`). Fails when none comes in time or the camera is lost.
    pub fn read_new(&mut self, cam: &Camera, timeout: Duration) -> Result<SharedFrame> {
        let started = monotonic_ns();
        match cam.wait_newer(self.last_seq, timeout) {
            Some(f) => {
                let waited = monotonic_ns().saturating_sub(started);
                Ok(self.deliver(cam, f, waited)?.frame)
            }
            None => {
                if let Some(latest) = cam.latest() {
                    // A dead reader or a frame past the loss deadline is a loss, said as such.
                    self.deliver(cam, latest, 0)?;
                }
                Err(Error::media(
                    format!("camera '{}'", self.name),
                    format!(
                        "no new frame within {:.0} ms (it delivers {})",
                        timeout.as_secs_f64() * 1e3,
                        cam.format().unwrap_or_else(|| "nothing yet".into())
                    ),
                ))
            }
        }
    }

    fn deliver(&mut self, cam: &Camera, frame: SharedFrame, waited_ns: u64) -> Result<Delivery> {
        let repeated = Some(frame.seq) == self.last_seq;
        let verdict = self.watch.check(0, &frame, cam.error());
        let stale = match verdict {
            Verdict::Fresh => {
                self.lost = false;
                false
            }
            Verdict::Stale => {
                self.note_loss();
                true
            }
            Verdict::End => {
                self.note_loss();
                return Err(self.lost_error(cam, &frame));
            }
        };
        self.last_seq = Some(frame.seq);
        self.counts.reads += 1;
        if repeated {
            self.counts.repeats += 1;
        }
        Ok(Delivery {
            frame,
            repeated,
            stale,
            waited_ns,
        })
    }

    fn note_loss(&mut self) {
        if !self.lost {
            self.lost = true;
            self.counts.losses += 1;
        }
    }

    fn lost_error(&self, cam: &Camera, frame: &SharedFrame) -> Error {
        let why = match cam.error() {
            Some(e) => format!("its reader stopped: {e}"),
            None => format!(
                "no new frame for {:.0} ms",
                monotonic_ns().saturating_sub(frame.captured_ns) as f64 / 1e6
            ),
        };
        Error::media(
            format!("camera '{}'", self.name),
            format!("lost ({why}); last frame #{}", frame.seq),
        )
    }

    fn no_frame(&self, cam: &Camera) -> Error {
        Error::media(
            format!("camera '{}'", self.name),
            cam.error()
                .unwrap_or_else(|| "has delivered no frame yet".into()),
        )
    }

    /// The reads so far.
    pub fn counts(&self) -> ReadCounts {
        self.counts
    }

    /// The camera is lost now (its last read found it so).
    pub fn is_lost(&self) -> bool {
        self.lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_one_tick_share_one_budget() {
        let clock = ObserveClock::new(30, Duration::from_millis(2));
        let t0 = 1_000_000_000;
        assert_eq!(clock.deadline(t0), t0 + 2_000_000);
        // Two more cameras a millisecond later: the same round, the same deadline.
        assert_eq!(clock.deadline(t0 + 1_000_000), t0 + 2_000_000);
        assert_eq!(clock.deadline(t0 + 3_000_000), t0 + 2_000_000);
        // The next tick (a period later) opens a new round.
        let t1 = t0 + 33_333_333;
        assert_eq!(clock.deadline(t1), t1 + 2_000_000);
    }

    #[test]
    fn a_zero_budget_never_waits() {
        let clock = ObserveClock::new(30, Duration::ZERO);
        assert_eq!(clock.deadline(5), 5);
        assert_eq!(clock.budget(), Duration::ZERO);
    }
}
