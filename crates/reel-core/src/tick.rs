//! The timing of one tick of a control loop ([`TickRecord`]): what the loop hands the writer
//! per frame and the page and the doctor read back.

/// The sections of a tick, in order (their durations add up to the tick's work time).
pub const SECTIONS: [&str; 4] = ["observe", "action", "send", "record"];

/// Cameras whose per-tick figures a [`TickRecord`] carries (further cameras are still timed
/// per episode, in the `reel/*` columns, but not per tick).
pub const MAX_TICK_CAMERAS: usize = 8;

/// One camera's part of a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraTick {
    /// Age of the frame the tick used (now − its capture time), microseconds.
    pub age_us: u32,
    /// The tick reused the frame of the previous tick (the camera had nothing newer).
    pub repeated: bool,
    /// Frames handed to this camera's encoder and not yet encoded (memory queue + spill),
    /// filled in by the writer.
    pub queued: u32,
    /// The frame's capture time minus the tick's start, microseconds
    /// ([`NO_CAPTURE`]: not given).
    pub capture_off_us: i32,
}

/// [`CameraTick::capture_off_us`] of a frame whose capture time the loop did not give.
pub const NO_CAPTURE: i32 = i32::MIN;

impl Default for CameraTick {
    fn default() -> CameraTick {
        CameraTick {
            age_us: 0,
            repeated: false,
            queued: 0,
            capture_off_us: NO_CAPTURE,
        }
    }
}

/// The timing of one tick of a control loop. Plain data, `Copy`, fixed size.
///
/// Times are monotonic nanoseconds (`reel_core::monotonic_ns`, CLOCK_MONOTONIC); an external
/// loop that has no schedule sets `scheduled_ns = start_ns`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickRecord {
    /// When the tick should have started.
    pub scheduled_ns: u64,
    /// When it started.
    pub start_ns: u64,
    /// Duration of each of [`SECTIONS`], nanoseconds (saturating at ~4.3 s).
    pub sections_ns: [u32; 4],
    /// The tick ended after its slot (scheduled start + period).
    pub missed: bool,
    /// Cameras filled in `cameras[..n_cameras]`, in the dataset's video feature order.
    pub n_cameras: u8,
    pub cameras: [CameraTick; MAX_TICK_CAMERAS],
}

impl TickRecord {
    /// A tick that started at `start_ns` and was due at `scheduled_ns`.
    pub fn new(scheduled_ns: u64, start_ns: u64) -> TickRecord {
        TickRecord {
            scheduled_ns,
            start_ns,
            ..Default::default()
        }
    }

    /// Sets section `i` (of [`SECTIONS`]) to `ns` nanoseconds.
    pub fn set_section(&mut self, i: usize, ns: u64) {
        if let Some(s) = self.sections_ns.get_mut(i) {
            *s = ns.min(u32::MAX as u64) as u32;
        }
    }

    /// Sets camera `i`'s frame age and whether the frame was a repeat (ignored past
    /// [`MAX_TICK_CAMERAS`]).
    pub fn set_camera(&mut self, i: usize, age_ns: u64, repeated: bool) {
        if let Some(c) = self.cameras.get_mut(i) {
            c.age_us = (age_ns / 1000).min(u32::MAX as u64) as u32;
            c.repeated = repeated;
            self.n_cameras = self.n_cameras.max(i as u8 + 1);
        }
    }

    /// Sets camera `i`'s frame capture time (monotonic ns; stored to the microsecond relative
    /// to the tick's start, within about ±35 minutes of it; ignored past [`MAX_TICK_CAMERAS`]).
    pub fn set_capture(&mut self, i: usize, captured_ns: u64) {
        if let Some(c) = self.cameras.get_mut(i) {
            let off = (captured_ns as i128 - self.start_ns as i128).div_euclid(1000);
            c.capture_off_us = off.clamp(i32::MIN as i128 + 1, i32::MAX as i128) as i32;
        }
    }

    /// Camera `i`'s frame capture time, monotonic ns (None: not given).
    pub fn captured_ns(&self, i: usize) -> Option<u64> {
        let c = self.cameras.get(i)?;
        if c.capture_off_us == NO_CAPTURE {
            return None;
        }
        let t = self.start_ns as i128 + c.capture_off_us as i128 * 1000;
        u64::try_from(t).ok()
    }

    /// Work time: the sum of the sections, nanoseconds.
    pub fn work_ns(&self) -> u64 {
        self.sections_ns.iter().map(|&s| s as u64).sum()
    }

    /// How late the tick started, nanoseconds.
    pub fn late_ns(&self) -> u64 {
        self.start_ns.saturating_sub(self.scheduled_ns)
    }
}
