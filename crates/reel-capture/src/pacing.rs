//! When each decoded frame becomes available. Synthetic and file inputs are decoded faster than
//! real time, so their frames are released at the times their pts say; devices deliver in real
//! time and are released at once. The fault-injection knobs (stall, deliver_fps) act here, so
//! they go through the same reader thread as real frames. Pure logic on nanosecond clocks: the
//! reader thread does the sleeping.

/// A source more than this far behind its schedule is re-anchored to "now" instead of bursting.
const MAX_LAG_NS: u64 = 250_000_000;

/// What to do with one decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Publish it at this monotonic time (at once if it has passed).
    At(u64),
    /// Drop it (stall window, or decimated by `deliver_fps` on a device).
    Drop,
}

/// Frame scheduler of one camera.
#[derive(Debug)]
pub(crate) struct Pacer {
    /// Release frames from their pts (synthetic, files) instead of at once (devices).
    paced: bool,
    /// Nominal frame period (1/fps).
    period_ns: u64,
    /// Fault injection: period of the forced delivery rate.
    deliver_period_ns: Option<u64>,
    /// Fault injection: stall window `[start, end)` in absolute monotonic ns.
    stall_ns: Option<(u64, u64)>,
    /// Paced mode: monotonic time of the segment's first frame.
    base_ns: Option<u64>,
    /// Paced mode: pts (seconds) of the segment's first frame.
    pts0: Option<f64>,
    /// Paced mode: pts of the previous frame, to notice jumps backwards.
    last_pts: Option<f64>,
    /// Frames scheduled in this segment (deliver_fps timeline).
    index: u64,
    /// Due time of the previous scheduled frame (kept or dropped).
    last_due: Option<u64>,
    /// Device mode with deliver_fps: the next delivery slot.
    next_slot: Option<u64>,
}

impl Pacer {
    /// `start_ns` is when the camera was opened, `fps` the nominal rate; `stall` is `(at, len)`
    /// after `start_ns`.
    pub(crate) fn new(
        paced: bool,
        start_ns: u64,
        fps: u32,
        deliver_fps: Option<f64>,
        stall: Option<(u64, u64)>,
    ) -> Self {
        Pacer {
            paced,
            period_ns: 1_000_000_000 / u64::from(fps.max(1)),
            deliver_period_ns: deliver_fps
                .filter(|f| *f > 0.0)
                .map(|f| (1e9 / f).round() as u64),
            stall_ns: stall.map(|(at, len)| {
                (
                    start_ns.saturating_add(at),
                    start_ns.saturating_add(at).saturating_add(len),
                )
            }),
            base_ns: None,
            pts0: None,
            last_pts: None,
            index: 0,
            last_due: None,
            next_slot: None,
        }
    }

    /// A file restarts at its beginning: continue the timeline one period after the last frame.
    pub(crate) fn restart_segment(&mut self) {
        if let Some(last) = self.last_due {
            self.base_ns = Some(last + self.period_ns);
        }
        self.pts0 = None;
        self.last_pts = None;
        self.index = 0;
    }

    /// Schedules one decoded frame with presentation time `pts` (seconds), decoded at `now`.
    pub(crate) fn schedule(&mut self, pts: Option<f64>, now: u64) -> Decision {
        let due = if self.paced {
            self.paced_due(pts, now)
        } else {
            self.device_due(now)
        };
        let Some(due) = due else {
            return Decision::Drop;
        };
        self.last_due = Some(due);
        if let Some((from, to)) = self.stall_ns {
            if due >= from && due < to {
                return Decision::Drop;
            }
        }
        Decision::At(due)
    }

    fn paced_due(&mut self, pts: Option<f64>, now: u64) -> Option<u64> {
        let base = *self.base_ns.get_or_insert(now);
        let offset = match self.deliver_period_ns {
            Some(p) => self.index.saturating_mul(p),
            None => {
                let backwards = matches!((pts, self.last_pts), (Some(p), Some(l)) if p <= l);
                match (pts, self.pts0) {
                    (Some(p), Some(p0)) if !backwards => ((p - p0).max(0.0) * 1e9) as u64,
                    (Some(p), _) => {
                        // First frame of a segment, or pts jumped back: anchor here.
                        let anchor = self.last_due.map_or(base, |l| l + self.period_ns);
                        self.base_ns = Some(anchor);
                        self.pts0 = Some(p);
                        self.last_pts = Some(p);
                        self.index += 1;
                        return Some(self.catch_up(anchor, now));
                    }
                    (None, _) => self
                        .last_due
                        .map_or(0, |l| (l + self.period_ns).saturating_sub(base)),
                }
            }
        };
        if pts.is_some() {
            self.last_pts = pts;
        }
        self.index += 1;
        let due = base.saturating_add(offset);
        Some(self.catch_up(due, now))
    }

    /// Re-anchors the timeline when the source has fallen far behind it (slow decode, load).
    fn catch_up(&mut self, due: u64, now: u64) -> u64 {
        if now > due + MAX_LAG_NS {
            let shift = now - due;
            self.base_ns = self.base_ns.map(|b| b + shift);
            now
        } else {
            due
        }
    }

    fn device_due(&mut self, now: u64) -> Option<u64> {
        let Some(p) = self.deliver_period_ns else {
            return Some(now);
        };
        let slot = *self.next_slot.get_or_insert(now);
        // A frame within half a source period of the slot takes it.
        if now + self.period_ns / 2 < slot {
            return None;
        }
        let mut next = slot + p;
        if next + p < now {
            next = now + p;
        }
        self.next_slot = Some(next);
        Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn due(d: Decision) -> u64 {
        match d {
            Decision::At(t) => t,
            Decision::Drop => panic!("dropped"),
        }
    }

    #[test]
    fn paced_frames_follow_pts() {
        let mut p = Pacer::new(true, 1000 * MS, 30, None, None);
        let t0 = due(p.schedule(Some(10.0), 1000 * MS));
        assert_eq!(t0, 1000 * MS);
        // Decoded immediately, released 1/30 s apart.
        let t1 = due(p.schedule(Some(10.0 + 1.0 / 30.0), 1001 * MS));
        let t2 = due(p.schedule(Some(10.0 + 2.0 / 30.0), 1002 * MS));
        assert!((t1 - t0).abs_diff(33 * MS) < MS, "{}", t1 - t0);
        assert!((t2 - t0).abs_diff(67 * MS) < MS);
    }

    #[test]
    fn loop_restart_continues_one_period_later() {
        let mut p = Pacer::new(true, 0, 10, None, None);
        let a = due(p.schedule(Some(0.0), 0));
        let b = due(p.schedule(Some(0.1), 0));
        p.restart_segment();
        let c = due(p.schedule(Some(0.0), 0));
        assert_eq!(b - a, 100 * MS);
        assert_eq!(c - b, 100 * MS);
    }

    #[test]
    fn lagging_source_is_reanchored() {
        let mut p = Pacer::new(true, 0, 10, None, None);
        due(p.schedule(Some(0.0), 0));
        // One second late: released now, and the next frame one period later.
        let late = due(p.schedule(Some(0.1), 1100 * MS));
        assert_eq!(late, 1100 * MS);
        let next = due(p.schedule(Some(0.2), 1100 * MS));
        assert_eq!(next, 1200 * MS);
    }

    #[test]
    fn deliver_fps_retimes_paced_and_decimates_devices() {
        let mut p = Pacer::new(true, 0, 30, Some(25.0), None);
        let times: Vec<u64> = (0..5)
            .map(|i| due(p.schedule(Some(i as f64 / 30.0), 0)))
            .collect();
        assert_eq!(times, vec![0, 40 * MS, 80 * MS, 120 * MS, 160 * MS]);

        let mut d = Pacer::new(false, 0, 30, Some(25.0), None);
        let kept = (0..300u64)
            .filter(|i| d.schedule(None, i * 1_000_000_000 / 30) != Decision::Drop)
            .count();
        assert!(
            (245..=255).contains(&kept),
            "{kept} of 300 frames kept at 25/30"
        );
    }

    #[test]
    fn stall_drops_frames_in_window() {
        let mut p = Pacer::new(true, 0, 10, None, Some((300 * MS, 500 * MS)));
        let out: Vec<Decision> = (0..12)
            .map(|i| p.schedule(Some(i as f64 / 10.0), 0))
            .collect();
        let dropped: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, d)| **d == Decision::Drop)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(dropped, vec![3, 4, 5, 6, 7]);
    }
}
