//! Tick timing: every tick of the control loop is timed by section, with per-camera frame
//! age; an episode ends with one line (rate, p50/p90/p99/max tick time, missed deadlines)
//! and the same figures are stored in the dataset's episode metadata.

use hdrhistogram::Histogram;
use reel_core::monotonic_ns;
use reel_dataset::episodes::ExtraValue;
pub use reel_dataset::ticks::{TickRecord, SECTIONS};

fn hist() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits: constant, valid bounds, so this cannot fail.
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
    /// ([`reel_dataset::writer::DatasetWriter::add_tick`]) and shown live.
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
    cam_now: Vec<(u64, bool)>,
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
            cam_now: vec![(0, false); cameras.len()],
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
        self.cam_now.iter_mut().for_each(|c| *c = (0, false));
        Tick {
            scheduled_ns,
            start_ns: now,
            marks: [now; 4],
            next: 0,
        }
    }

    /// Records the frame a camera delivered this tick (its age and whether it is a repeat).
    pub fn camera_frame(&mut self, cam: usize, captured_ns: u64, seq: u64) {
        if cam >= self.cam_names.len() {
            return;
        }
        let age = monotonic_ns().saturating_sub(captured_ns);
        rec(&mut self.cam_age[cam], age);
        let repeated = self.cam_last_seq[cam] == Some(seq);
        if repeated {
            self.cam_stale[cam] += 1;
        }
        self.cam_now[cam] = (age, repeated);
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
            rec(&mut self.sections[i], sections_ns[i]);
            prev = *m;
        }
        let work_ns = end - t.start_ns;
        let late_start_ns = t.start_ns.saturating_sub(t.scheduled_ns);
        let missed = end > t.scheduled_ns + self.period_ns;
        rec(&mut self.work, work_ns);
        rec(&mut self.late, late_start_ns);
        self.ticks += 1;
        self.last_ns = end;
        if missed {
            self.missed += 1;
            if end.saturating_sub(self.last_warn_ns) > 1_000_000_000 {
                self.last_warn_ns = end;
                let (i, worst) = sections_ns
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, v)| **v)
                    .map(|(i, v)| (i, *v))
                    .unwrap_or((0, 0));
                tracing::warn!(
                    "slow tick: {:.1} ms of work, started {:.1} ms late (budget {:.1} ms); slowest section: {} {:.1} ms",
                    ms(work_ns),
                    ms(late_start_ns),
                    ms(self.period_ns),
                    SECTIONS[i],
                    ms(worst)
                );
            }
        }
        let mut record = TickRecord::new(t.scheduled_ns, t.start_ns);
        for (i, s) in sections_ns.iter().enumerate() {
            record.set_section(i, *s);
        }
        record.missed = missed;
        for (i, (age, repeated)) in self.cam_now.iter().enumerate() {
            record.set_camera(i, *age, *repeated);
        }
        TickReport {
            work_ns,
            late_start_ns,
            missed,
            sections_ns,
            record,
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
}
