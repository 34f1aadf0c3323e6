//! The bus thread: a robot's joint positions read at the bus's own rate (500 Hz and more) on a
//! thread of their own, every successful read sent as a sample of a side stream with its read
//! time on the frames' clock, the latest one given to the loop without waiting.
//!
//! ```text
//!  bus thread: every 1/rate s: t = mid-time of Robot::read_fresh ──► latest slot ──► loop's observe()
//!                                                                 └─► StreamSender ("servo")
//!              then the newest goal the loop posted ──► Robot::send_action
//! ```
//!
//! [`PolledRobot`] wraps any [`Robot`] (the simulated arm, a follower on its servo bus) and is
//! a [`Robot`] itself, so the session cannot tell the difference: its `observe` returns the
//! latest reading at once (a tick that finds no new reading since the previous tick is counted
//! stale, `robot/bus_stale_ticks`), its `send_action` posts the goal to the bus thread, which
//! writes it after its next read (one bus, one user: reads and writes never interleave
//! mid-packet). A read that fails (a corrupted status packet) is counted by the robot and
//! retried at the next slot; an error of the robot (a joint-limit violation, a bus gone) stops
//! the thread and is returned by the loop's next `observe` or `send_action`.

use crate::robot::Robot;
use crate::samples::{SampleBlock, SampleData, StreamSender};
use reel_core::extra::ExtraValue;
use reel_core::{monotonic_ns, Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Highest bus rate accepted (a Dynamixel/Feetech bus at 1 Mbps answers a 6-motor sync read
/// in well under a millisecond).
pub const MAX_BUS_HZ: u32 = 2000;

/// Checks a bus rate against the loop's: between the loop's rate (a slower bus would leave
/// ticks without a reading) and [`MAX_BUS_HZ`].
pub fn validate_rate(rate_hz: u32, loop_fps: u32) -> Result<()> {
    if rate_hz < loop_fps || rate_hz > MAX_BUS_HZ {
        return Err(Error::invalid(format!(
            "servo stream rate {rate_hz} Hz is out of range: it must be between the loop's rate ({loop_fps} Hz) and {MAX_BUS_HZ} Hz"
        )));
    }
    Ok(())
}

#[derive(Default)]
struct Latest {
    seq: u64,
    positions: Vec<f32>,
}

struct Shared {
    robot: Mutex<Box<dyn Robot>>,
    latest: Mutex<Latest>,
    goal: Mutex<Option<Vec<f32>>>,
    error: Mutex<Option<Error>>,
    stop: AtomicBool,
    reads: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic on the bus thread; its data (numbers) are still whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A robot read and driven by the bus thread (see the module doc).
pub struct PolledRobot {
    name: String,
    joints: Vec<String>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    seen: u64,
    stale: u64,
    stale_ticks: Vec<u64>,
    ticks: u64,
    reads_at_episode: u64,
}

impl PolledRobot {
    /// Reads the robot once here (so the loop always has a reading; an error if the robot
    /// cannot be read at all), then starts the bus thread at `rate_hz`, sending every
    /// successful read to `sender`.
    pub fn start(
        mut robot: Box<dyn Robot>,
        rate_hz: u32,
        sender: StreamSender,
    ) -> Result<PolledRobot> {
        if rate_hz == 0 || rate_hz > MAX_BUS_HZ {
            return Err(Error::invalid(format!(
                "servo stream rate {rate_hz} Hz is out of range (1 to {MAX_BUS_HZ})"
            )));
        }
        let first = robot.observe()?;
        let name = robot.name().to_string();
        let joints = robot.joint_names().to_vec();
        let shared = Arc::new(Shared {
            robot: Mutex::new(robot),
            latest: Mutex::new(Latest {
                seq: 0,
                positions: first,
            }),
            goal: Mutex::new(None),
            error: Mutex::new(None),
            stop: AtomicBool::new(false),
            reads: AtomicU64::new(0),
        });
        let s = shared.clone();
        let period = 1_000_000_000 / rate_hz as u64;
        let thread = std::thread::Builder::new()
            .name("reel-bus".into())
            .spawn(move || bus_loop(&s, period, &sender))
            .map_err(|e| Error::invalid(format!("cannot start the bus thread: {e}")))?;
        Ok(PolledRobot {
            name,
            joints,
            shared,
            thread: Some(thread),
            seen: 0,
            stale: 0,
            stale_ticks: Vec::new(),
            ticks: 0,
            reads_at_episode: 0,
        })
    }

    fn check(&self) -> Result<()> {
        match lock(&self.shared.error).clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn bus_loop(s: &Shared, period: u64, sender: &StreamSender) {
    let mut next = monotonic_ns();
    while !s.stop.load(Ordering::SeqCst) {
        let t0 = monotonic_ns();
        let read = lock(&s.robot).read_fresh();
        let t1 = monotonic_ns();
        match read {
            Ok(Some(v)) => {
                let t = (t0 / 2 + t1 / 2) as i64;
                {
                    let mut l = lock(&s.latest);
                    l.seq += 1;
                    l.positions.clone_from(&v);
                }
                s.reads.fetch_add(1, Ordering::Relaxed);
                let block = SampleBlock {
                    t_ns: vec![t],
                    data: SampleData::F32(v),
                };
                if !sender.send(block) {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("bus thread: {e}");
                *lock(&s.error) = Some(e);
                return;
            }
        }
        let goal = lock(&s.goal).take();
        if let Some(g) = goal {
            if let Err(e) = lock(&s.robot).send_action(&g) {
                tracing::error!("bus thread: {e}");
                *lock(&s.error) = Some(e);
                return;
            }
        }
        next += period;
        let now = monotonic_ns();
        if now + period < next || now > next + period {
            next = now; // more than a slot off: re-anchor instead of bursting
        } else if next > now {
            std::thread::sleep(Duration::from_nanos(next - now));
        }
    }
}

impl Robot for PolledRobot {
    fn name(&self) -> &str {
        &self.name
    }
    fn joint_names(&self) -> &[String] {
        &self.joints
    }
    /// The latest reading of the bus thread, at once.
    fn observe(&mut self) -> Result<Vec<f32>> {
        self.check()?;
        let l = lock(&self.shared.latest);
        if l.seq == self.seen {
            self.stale += 1;
            self.stale_ticks.push(self.ticks);
        }
        self.seen = l.seq;
        self.ticks += 1;
        Ok(l.positions.clone())
    }
    /// Posts the goal; the bus thread writes it after its next read. Returns the action as
    /// given (clipping happens on the bus thread; an error there is returned by the next call).
    fn send_action(&mut self, action: &[f32]) -> Result<Vec<f32>> {
        self.check()?;
        if action.len() != self.joints.len() {
            return Err(Error::invalid(format!(
                "action has {} values, the robot has {} joints",
                action.len(),
                self.joints.len()
            )));
        }
        *lock(&self.shared.goal) = Some(action.to_vec());
        Ok(action.to_vec())
    }
    fn take_episode_extras(&mut self) -> Vec<(String, ExtraValue)> {
        let mut out = lock(&self.shared.robot).take_episode_extras();
        let reads = self.shared.reads.load(Ordering::Relaxed);
        let ticks: Vec<String> = self.stale_ticks.iter().map(|t| t.to_string()).collect();
        out.push((
            "robot/bus_reads".into(),
            ExtraValue::I64((reads - self.reads_at_episode) as i64),
        ));
        out.push((
            "robot/bus_stale_ticks".into(),
            ExtraValue::I64(self.stale as i64),
        ));
        out.push((
            "robot/bus_stale_frames".into(),
            ExtraValue::Str(ticks.join(",")),
        ));
        self.reads_at_episode = reads;
        self.stale = 0;
        self.stale_ticks.clear();
        self.ticks = 0;
        out
    }
}

impl Drop for PolledRobot {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
