//! Tick timing: every tick of the control loop is timed by section, with per-camera frame
//! age; an episode ends with one line (rate, p50/p90/p99/max tick time, missed deadlines)
//! and the same figures are stored in the dataset's episode metadata.

use hdrhistogram::Histogram;
use reel_core::extra::ExtraValue;
use reel_core::monotonic_ns;
pub use reel_core::tick::{TickRecord, SECTIONS};

// 1 µs .. 60 s, 3 significant digits: constant bounds that hdrhistogram accepts, so the
// constructor cannot fail (no input reaches it).
#[allow(clippy::expect_used)]
fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3)
        .expect("constant histogram bounds are valid")
}

fn rec(h: &mut Histogram<u64>, ns: u64) {
    let _ = h.record(ns.clamp(1_000, 60_000_000_000));
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// A tick in progress.
pub struct Tick {
    scheduled_ns: u64,
    start_ns: u64,
    marks: [u64; 4],
    next: usize,
}

impl Tick {
    /// Marks the end of the next section.
    pub fn mark(&mut self) {
        if self.next < SECTIONS.len() {
            self.marks[self.next] = monotonic_ns();
            self.next += 1;
        }
    }
}

/// What one finished tick looked like.
#[derive(Debug, Clone)]
pub struct TickReport {
    pub work_ns: u64,
    pub late_start_ns: u64,
    pub missed: bool,
    pub sections_ns: [u64; 4],
    /// The same tick as the fixed-size record stored per tick in the dataset
    /// ([`reel_engine::writer::DatasetWriter::add_tick`]) and shown live.
    pub record: TickRecord,
}

/// Accumulates tick timings over an episode (or a reset phase).
pub struct TickTimer {
    period_ns: u64,
    work: Histogram<u64>,
    late: Histogram<u64>,
    sections: Vec<Histogram<u64>>,
    cam_names: Vec<String>,
    cam_age: Vec<Histogram<u64>>,
    cam_stale: Vec<u64>,
    cam_last_seq: Vec<Option<u64>>,
    /// This tick's camera figures (age ns, repeated), reset by `begin`.
    cam_now: Vec<(u64, bool, Option<u64>)>,
    ticks: u64,
    missed: u64,
    first_ns: Option<u64>,
    last_ns: u64,
    last_warn_ns: u64,
}

/// The per-episode summary.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub ticks: u64,
    pub seconds: f64,
    pub rate_hz: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub missed: u64,
    pub late_start_p99_ms: f64,
    pub late_start_max_ms: f64,
    /// (section, p50 ms, p99 ms, max ms)
    pub sections: Vec<(String, f64, f64, f64)>,
    /// (camera, frame age p50 ms, max ms, ticks that reused the previous frame)
    pub cameras: Vec<(String, f64, f64, u64)>,
}

impl TickTimer {
    pub fn new(fps: u32, cameras: &[String]) -> TickTimer {
        TickTimer {
            period_ns: 1_000_000_000 / fps.max(1) as u64,
            work: hist(),
            late: hist(),
            sections: SECTIONS.iter().map(|_| hist()).collect(),
            cam_names: cameras.to_vec(),
            cam_age: cameras.iter().map(|_| hist()).collect(),
            cam_stale: vec![0; cameras.len()],
            cam_last_seq: vec![None; cameras.len()],
            cam_now: vec![(0, false, None); cameras.len()],
            ticks: 0,
            missed: 0,
            first_ns: None,
            last_ns: 0,
            last_warn_ns: 0,
        }
    }

    /// Starts a tick that was scheduled for `scheduled_ns`.
    pub fn begin(&mut self, scheduled_ns: u64) -> Tick {
        let now = monotonic_ns();
        self.first_ns.get_or_insert(now);
        self.cam_now.iter_mut().for_each(|c| *c = (0, false, None));
        Tick {
            scheduled_ns,
            start_ns: now,
            marks: [now; 4],
            next: 0,
        }
    }

    /// Records the frame a camera delivered this tick (its age and whether it is a repeat).
    pub fn camera_frame(&mut self, cam: usize, captured_ns: u64, seq: u64) {
        self.camera_frame_at(cam, captured_ns, seq, monotonic_ns());
    }

    fn camera_frame_at(&mut self, cam: usize, captured_ns: u64, seq: u64, now_ns: u64) {
        if cam >= self.cam_names.len() {
            return;
        }
        let age = now_ns.saturating_sub(captured_ns);
        rec(&mut self.cam_age[cam], age);
        let repeated = self.cam_last_seq[cam] == Some(seq);
        if repeated {
            self.cam_stale[cam] += 1;
        }
        self.cam_now[cam] = (age, repeated, Some(captured_ns));
        self.cam_last_seq[cam] = Some(seq);
    }

    /// Ends a tick; warns (at most once a second) when it overran its slot, naming the slowest section.
    pub fn end(&mut self, mut t: Tick) -> TickReport {
        let end = monotonic_ns();
        while t.next < SECTIONS.len() {
            t.marks[t.next] = end;
            t.next += 1;
        }
        let mut prev = t.start_ns;
        let mut sections_ns = [0u64; 4];
        for (i, m) in t.marks.iter().enumerate() {
            sections_ns[i] = m.saturating_sub(prev);
            prev = *m;
        }
        let work_ns = end - t.start_ns;
        let late_start_ns = t.start_ns.saturating_sub(t.scheduled_ns);
        let missed = end > t.scheduled_ns + self.period_ns;
        let record = self.tick_record(t.scheduled_ns, t.start_ns, &sections_ns, missed);
        let r = TickReport {
            work_ns,
            late_start_ns,
            missed,
            sections_ns,
            record,
        };
        self.record(&r, end);
        r
    }

    /// The stored per-tick record of a finished tick (frame ages from this tick's
    /// [`camera_frame`](Self::camera_frame) calls).
    fn tick_record(
        &self,
        scheduled_ns: u64,
        start_ns: u64,
        sections_ns: &[u64; 4],
        missed: bool,
    ) -> TickRecord {
        let mut record = TickRecord::new(scheduled_ns, start_ns);
        for (i, s) in sections_ns.iter().enumerate() {
            record.set_section(i, *s);
        }
        record.missed = missed;
        for (i, (age, repeated, captured)) in self.cam_now.iter().enumerate() {
            record.set_camera(i, *age, *repeated);
            if let Some(c) = captured {
                record.set_capture(i, *c);
            }
        }
        record
    }

    /// Adds a finished tick to the figures; warns (at most once a second) about a missed one,
    /// naming the slowest section.
    fn record(&mut self, r: &TickReport, end_ns: u64) {
        for (h, v) in self.sections.iter_mut().zip(r.sections_ns) {
            rec(h, v);
        }
        rec(&mut self.work, r.work_ns);
        rec(&mut self.late, r.late_start_ns);
        self.ticks += 1;
        self.last_ns = end_ns;
        if r.missed {
            self.missed += 1;
            if end_ns.saturating_sub(self.last_warn_ns) > 1_000_000_000 {
                self.last_warn_ns = end_ns;
                let (i, worst) = r
                    .sections_ns
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, v)| **v)
                    .map(|(i, v)| (i, *v))
                    .unwrap_or((0, 0));
                tracing::warn!(
                    "slow tick: {:.1} ms of work, started {:.1} ms late (budget {:.1} ms); slowest section: {} {:.1} ms",
                    ms(r.work_ns),
                    ms(r.late_start_ns),
                    ms(self.period_ns),
                    SECTIONS[i],
                    ms(worst)
                );
            }
        }
    }

    /// Figures so far.
    pub fn summary(&self) -> Summary {
        let q = |h: &Histogram<u64>, p: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(p))
            }
        };
        let seconds = self
            .first_ns
            .map(|f| (self.last_ns.saturating_sub(f)) as f64 / 1e9)
            .unwrap_or(0.0);
        Summary {
            ticks: self.ticks,
            seconds,
            rate_hz: if seconds > 0.0 && self.ticks > 1 {
                (self.ticks - 1) as f64 / seconds
            } else {
                0.0
            },
            p50_ms: q(&self.work, 0.5),
            p90_ms: q(&self.work, 0.9),
            p99_ms: q(&self.work, 0.99),
            max_ms: if self.work.is_empty() {
                0.0
            } else {
                ms(self.work.max())
            },
            missed: self.missed,
            late_start_p99_ms: q(&self.late, 0.99),
            late_start_max_ms: if self.late.is_empty() {
                0.0
            } else {
                ms(self.late.max())
            },
            sections: SECTIONS
                .iter()
                .zip(&self.sections)
                .map(|(n, h)| {
                    (
                        n.to_string(),
                        q(h, 0.5),
                        q(h, 0.99),
                        if h.is_empty() { 0.0 } else { ms(h.max()) },
                    )
                })
                .collect(),
            cameras: self
                .cam_names
                .iter()
                .zip(self.cam_age.iter().zip(&self.cam_stale))
                .map(|(n, (h, s))| {
                    (
                        n.clone(),
                        q(h, 0.5),
                        if h.is_empty() { 0.0 } else { ms(h.max()) },
                        *s,
                    )
                })
                .collect(),
        }
    }
}

/// One `add_frame` of a loop reel does not run (LeRobot's `record_loop`, a user's own loop):
/// the moments reel is told or sees. All on the [`monotonic_ns`] clock.
#[derive(Debug, Clone, Default)]
pub struct ExternalTick {
    /// When the tick began: the capture time the caller gave, else the call itself.
    pub tick_ns: u64,
    /// When `add_frame` was called.
    pub call_ns: u64,
    /// When `add_frame` returned.
    pub end_ns: u64,
    /// Per camera (in the timer's camera order): the capture time of its frame, when given.
    pub captured_ns: Vec<Option<u64>>,
}

/// The figures of [`TickTimer`] for a loop reel does not pace, from its `add_frame` calls
/// alone. reel does not know the loop's schedule, only when each tick happened, so:
///
/// * a tick **misses its deadline** when it comes more than 1.1 periods after the previous
///   one (the previous tick overran its slot, or the loop stalled between ticks; the 10 %
///   absorbs sleep jitter). One overrun counts once;
/// * **lateness** (`late_start_*`) is how much later than one period after the previous tick
///   a tick came;
/// * **tick work** runs from the tick time to the end of `add_frame`. Of the sections,
///   `observe` holds everything the loop did between the tick time and its `add_frame` call
///   (reading, deciding, sending: reel cannot split it; 0 when no capture time is given),
///   `record` the `add_frame` call; `action` and `send` are not seen and stay 0. The names
///   are those of reel's own loop so that a dataset recorded by both has one set of columns;
/// * **frame age** per camera is the time from its capture to the `add_frame` call, when the
///   capture time is given; a camera handed the same capture time twice counts a repeat.
///
/// Slow ticks are logged as reel's loop logs them.
pub struct ExternalTimer {
    inner: TickTimer,
    prev_tick_ns: Option<u64>,
}

impl ExternalTimer {
    pub fn new(fps: u32, cameras: &[String]) -> ExternalTimer {
        ExternalTimer {
            inner: TickTimer::new(fps, cameras),
            prev_tick_ns: None,
        }
    }

    /// The loop's period (1/fps) in nanoseconds.
    pub fn period_ns(&self) -> u64 {
        self.inner.period_ns
    }

    /// Adds one `add_frame` call.
    pub fn frame(&mut self, t: &ExternalTick) -> TickReport {
        let period = self.inner.period_ns;
        self.inner.first_ns.get_or_insert(t.tick_ns);
        let interval = self.prev_tick_ns.map(|p| t.tick_ns.saturating_sub(p));
        // Its slot: one period after the previous tick (reel does not know the schedule).
        let scheduled_ns = self.prev_tick_ns.map_or(t.tick_ns, |p| p + period);
        self.prev_tick_ns = Some(t.tick_ns);
        let late_start_ns = interval.map_or(0, |i| i.saturating_sub(period));
        let missed = interval.is_some_and(|i| i > period + period / 10);
        self.inner
            .cam_now
            .iter_mut()
            .for_each(|c| *c = (0, false, None));
        for (cam, c) in t.captured_ns.iter().enumerate() {
            if let Some(c) = c {
                self.inner.camera_frame_at(cam, *c, *c, t.call_ns);
            }
        }
        let before_call = t.call_ns.saturating_sub(t.tick_ns);
        let call = t.end_ns.saturating_sub(t.call_ns);
        let sections_ns = [before_call, 0, 0, call];
        let record = self
            .inner
            .tick_record(scheduled_ns, t.tick_ns, &sections_ns, missed);
        let r = TickReport {
            work_ns: before_call + call,
            late_start_ns,
            missed,
            sections_ns,
            record,
        };
        self.inner.record(&r, t.end_ns);
        r
    }

    /// Figures so far (the same [`Summary`] as reel's own loop).
    pub fn summary(&self) -> Summary {
        self.inner.summary()
    }
}

impl Summary {
    /// The one line printed at the end of an episode.
    pub fn line(&self) -> String {
        let slowest = self
            .sections
            .iter()
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .map(|s| format!("{} p99 {:.2} ms", s.0, s.2))
            .unwrap_or_default();
        let cams: Vec<String> = self
            .cameras
            .iter()
            .map(|(n, p50, max, stale)| {
                format!("{n} age p50 {p50:.1}/max {max:.1} ms, {stale} repeats")
            })
            .collect();
        format!(
            "{:.2} Hz over {} ticks · tick p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} ms · {} missed deadlines · start lateness p99 {:.2} ms · slowest {}{}{}",
            self.rate_hz,
            self.ticks,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.missed,
            self.late_start_p99_ms,
            slowest,
            if cams.is_empty() { "" } else { " · " },
            cams.join(", ")
        )
    }

    /// The figures stored per episode (as `reel/<name>` columns of the episodes table).
    pub fn extras(&self) -> Vec<(String, ExtraValue)> {
        let mut v = vec![
            ("rate_hz".to_string(), ExtraValue::F64(self.rate_hz)),
            ("tick_p50_ms".to_string(), ExtraValue::F64(self.p50_ms)),
            ("tick_p90_ms".to_string(), ExtraValue::F64(self.p90_ms)),
            ("tick_p99_ms".to_string(), ExtraValue::F64(self.p99_ms)),
            ("tick_max_ms".to_string(), ExtraValue::F64(self.max_ms)),
            (
                "missed_deadlines".to_string(),
                ExtraValue::I64(self.missed as i64),
            ),
            (
                "late_start_p99_ms".to_string(),
                ExtraValue::F64(self.late_start_p99_ms),
            ),
        ];
        for (n, p50, _p99, max) in &self.sections {
            v.push((format!("section/{n}/p50_ms"), ExtraValue::F64(*p50)));
            v.push((format!("section/{n}/max_ms"), ExtraValue::F64(*max)));
        }
        for (n, p50, max, stale) in &self.cameras {
            v.push((format!("camera/{n}/age_p50_ms"), ExtraValue::F64(*p50)));
            v.push((format!("camera/{n}/age_max_ms"), ExtraValue::F64(*max)));
            v.push((
                format!("camera/{n}/repeated_frames"),
                ExtraValue::I64(*stale as i64),
            ));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_missed_deadlines_and_repeats() {
        let mut t = TickTimer::new(100, &["front".to_string()]);
        let now = monotonic_ns();
        // A tick scheduled 20 ms ago overran its 10 ms slot.
        let tick = t.begin(now - 20_000_000);
        assert!(t.end(tick).missed);
        let mut tick = t.begin(monotonic_ns());
        t.camera_frame(0, monotonic_ns(), 7);
        tick.mark();
        t.camera_frame(0, monotonic_ns(), 7);
        let r = t.end(tick);
        assert!(!r.missed);
        assert_eq!(r.record.n_cameras, 1);
        assert!(r.record.cameras[0].repeated);
        assert_eq!(r.record.work_ns(), r.work_ns);
        let s = t.summary();
        assert_eq!(s.ticks, 2);
        assert_eq!(s.missed, 1);
        assert_eq!(s.cameras[0].3, 1, "second delivery of seq 7 is a repeat");
        assert!(s.line().contains("1 missed deadlines"));
        assert!(s.extras().iter().any(|(k, _)| k == "missed_deadlines"));
    }

    #[test]
    fn an_external_loop_is_timed_from_its_add_frame_calls() {
        let cams = vec!["front".to_string(), "wrist".to_string()];
        let mut t = ExternalTimer::new(100, &cams); // 10 ms period
        let ms = 1_000_000u64;
        let base = 1_000 * ms;
        let tick = |at: u64, captured: Vec<Option<u64>>| ExternalTick {
            tick_ns: at,
            call_ns: at + 2 * ms,
            end_ns: at + 2 * ms + ms / 2,
            captured_ns: captured,
        };
        // On time (10 ms apart), then a stall of 35 ms.
        let times = [0, 10, 20, 30, 40, 75, 85];
        let mut missed = Vec::new();
        for at in times {
            let captured = vec![Some(base + at * ms - 3 * ms), None];
            missed.push(t.frame(&tick(base + at * ms, captured)).missed);
        }
        assert_eq!(missed, [false, false, false, false, false, true, false]);
        // The same capture time handed twice is a repeated frame.
        t.frame(&tick(
            base + 95 * ms,
            vec![Some(base + 85 * ms - 3 * ms), None],
        ));
        let s = t.summary();
        assert_eq!(s.ticks, 8);
        assert_eq!(s.missed, 1);
        assert!(
            (s.late_start_max_ms - 25.0).abs() < 0.1,
            "{}",
            s.late_start_max_ms
        );
        assert!(
            (s.p50_ms - 2.5).abs() < 0.05,
            "work = tick time to end of add_frame"
        );
        let record = s.sections.iter().find(|x| x.0 == "record").unwrap();
        assert!((record.1 - 0.5).abs() < 0.01, "add_frame p50 {}", record.1);
        let observe = s.sections.iter().find(|x| x.0 == "observe").unwrap();
        assert!((observe.1 - 2.0).abs() < 0.01);
        assert_eq!(s.cameras[0].0, "front");
        assert!(
            (s.cameras[0].1 - 5.0).abs() < 0.05,
            "age = capture to call: {}",
            s.cameras[0].1
        );
        assert_eq!(s.cameras[0].3, 1, "one repeat");
        assert_eq!(s.cameras[1].1, 0.0, "no capture time given: no age");
        // 8 ticks from the first tick time to the end of the last add_frame (97.5 ms).
        assert!((s.rate_hz - 7.0 / 0.0975).abs() < 0.1, "{}", s.rate_hz);
        // The stored columns are those of reel's own loop.
        let keys: Vec<String> = s.extras().into_iter().map(|(k, _)| k).collect();
        let own: Vec<String> = TickTimer::new(100, &cams)
            .summary()
            .extras()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, own);
    }
}
