//! Capture-only trials: cameras opened exactly as `reel record` opens them, read by one
//! watcher thread each (`Camera::wait_newer`) for the trial's length: delivered fps (by
//! sequence numbers, so frames the slot overwrote still count), frame-interval jitter, read
//! latency (capture → available to the loop), and the format negotiated with the input.

use super::DoctorConfig;
use reel_capture::{Camera, CameraSpec};
use reel_core::monotonic_ns;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One camera in one capture trial.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CaptureResult {
    pub name: String,
    /// The rate the camera was asked for.
    pub requested_fps: u32,
    /// Frames per second it delivered.
    pub delivered_fps: f64,
    pub interval_p50_ms: f64,
    pub interval_p99_ms: f64,
    pub interval_max_ms: f64,
    /// Standard deviation of the frame interval.
    pub jitter_ms: f64,
    /// Capture time → frame available in the slot, as seen by a waiting reader.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// What the input delivers as negotiated (decoder, pixel format, size, rate).
    pub format: String,
    /// The V4L2 pixel format asked for (`mjpeg`, `yuyv422`), if one was.
    pub input_format: Option<String>,
    /// Why the camera could not be measured.
    pub error: Option<String>,
}

/// Cameras measured together.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CaptureTrial {
    /// "front alone", "all 3 cameras together", "wrist alone (mjpeg)".
    pub name: String,
    pub seconds: f64,
    pub results: Vec<CaptureResult>,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Reads one open camera for `seconds`.
fn watch(cam: &Camera, seconds: f64) -> CaptureResult {
    let spec = cam.spec();
    let mut r = CaptureResult {
        name: spec.name.clone(),
        requested_fps: spec.fps,
        format: cam.format().unwrap_or_default(),
        input_format: spec.input_format.clone(),
        ..Default::default()
    };
    let end = monotonic_ns() + (seconds * 1e9) as u64;
    let mut last: Option<(u64, u64)> = None; // (seq, captured_ns)
    let mut first: Option<(u64, u64)> = None;
    let mut intervals = Vec::new();
    let mut latencies = Vec::new();
    while monotonic_ns() < end {
        let Some(f) = cam.wait_newer(last.map(|l| l.0), Duration::from_millis(500)) else {
            if let Some(e) = cam.error() {
                r.error = Some(e);
                break;
            }
            continue;
        };
        latencies.push(monotonic_ns().saturating_sub(f.captured_ns) as f64 / 1e6);
        if let Some((seq, t)) = last {
            let n = f.seq.saturating_sub(seq).max(1);
            let dt = f.captured_ns.saturating_sub(t) as f64 / 1e6 / n as f64;
            for _ in 0..n {
                intervals.push(dt);
            }
        }
        first.get_or_insert((f.seq, f.captured_ns));
        last = Some((f.seq, f.captured_ns));
    }
    if let (Some((s0, t0)), Some((s1, t1))) = (first, last) {
        if s1 > s0 && t1 > t0 {
            r.delivered_fps = (s1 - s0) as f64 / ((t1 - t0) as f64 / 1e9);
        }
    }
    let mean = if intervals.is_empty() {
        0.0
    } else {
        intervals.iter().sum::<f64>() / intervals.len() as f64
    };
    r.jitter_ms = if intervals.len() > 1 {
        (intervals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (intervals.len() - 1) as f64)
            .sqrt()
    } else {
        0.0
    };
    intervals.sort_by(f64::total_cmp);
    latencies.sort_by(f64::total_cmp);
    r.interval_p50_ms = quantile(&intervals, 0.5);
    r.interval_p99_ms = quantile(&intervals, 0.99);
    r.interval_max_ms = intervals.last().copied().unwrap_or(0.0);
    r.latency_p50_ms = quantile(&latencies, 0.5);
    r.latency_p99_ms = quantile(&latencies, 0.99);
    if r.format.is_empty() {
        r.format = cam.format().unwrap_or_default();
    }
    r
}

/// Opens `specs`, reads them all at once for `seconds`, closes them.
pub fn measure(name: &str, specs: &[CameraSpec], seconds: f64) -> CaptureTrial {
    let mut results: Vec<Option<CaptureResult>> = vec![None; specs.len()];
    let mut cams = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        match Camera::open(s, Duration::from_secs(5)) {
            Ok(c) => cams.push((i, c)),
            Err(e) => {
                results[i] = Some(CaptureResult {
                    name: s.name.clone(),
                    requested_fps: s.fps,
                    input_format: s.input_format.clone(),
                    error: Some(e.to_string()),
                    ..Default::default()
                })
            }
        }
    }
    let measured: Vec<(usize, CaptureResult)> = std::thread::scope(|sc| {
        let hs: Vec<_> = cams
            .iter()
            .map(|(i, c)| (*i, sc.spawn(move || watch(c, seconds))))
            .collect();
        hs.into_iter()
            .filter_map(|(i, h)| h.join().ok().map(|r| (i, r)))
            .collect()
    });
    for (i, r) in measured {
        results[i] = Some(r);
    }
    CaptureTrial {
        name: name.to_string(),
        seconds,
        results: results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| CaptureResult {
                    name: specs[i].name.clone(),
                    error: Some("the watcher thread failed".into()),
                    ..Default::default()
                })
            })
            .collect(),
    }
}

/// Every camera alone, then all together; V4L2 devices also in MJPG and YUYV each.
pub fn run_all(cfg: &DoctorConfig, progress: &mut dyn FnMut(&str)) -> Vec<CaptureTrial> {
    let specs = cfg.specs_at(cfg.fps);
    let mut out = Vec::new();
    let s = cfg.trial_s;
    for spec in &specs {
        if cfg.stop.requested() {
            return out;
        }
        let name = format!("{} alone", spec.name);
        progress(&format!("capture: {name} ({s:.0} s)"));
        let t = measure(&name, std::slice::from_ref(spec), s);
        progress(&format!("  → {}", line(&t)));
        out.push(t);
        if spec.input.starts_with("/dev/") {
            for fmt in reel_capture::V4L2_INPUT_FORMATS {
                if spec.input_format.as_deref() == Some(fmt) || cfg.stop.requested() {
                    continue;
                }
                let mut alt = spec.clone();
                alt.input_format = Some(fmt.to_string());
                let name = format!("{} alone ({fmt})", spec.name);
                progress(&format!("capture: {name} ({s:.0} s)"));
                let t = measure(&name, &[alt], s);
                progress(&format!("  → {}", line(&t)));
                out.push(t);
            }
        }
    }
    if specs.len() > 1 && !cfg.stop.requested() {
        let name = format!("all {} cameras together", specs.len());
        progress(&format!("capture: {name} ({s:.0} s)"));
        let t = measure(&name, &specs, s);
        progress(&format!("  → {}", line(&t)));
        out.push(t);
    }
    out
}

/// One line per trial for progress output.
pub fn line(t: &CaptureTrial) -> String {
    t.results
        .iter()
        .map(|r| match &r.error {
            Some(e) => format!("{}: {e}", r.name),
            None => format!(
                "{}: {:.1} of {} fps, interval p99 {:.1} ms, jitter {:.2} ms, latency p50 {:.1} ms ({})",
                r.name, r.delivered_fps, r.requested_fps, r.interval_p99_ms, r.jitter_ms, r.latency_p50_ms, r.format
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_slow_synthetic_camera() {
        let fast = CameraSpec::parse("fast=lavfi:testsrc2=size=64x48:rate=30@64x48@30").unwrap();
        let slow = CameraSpec::parse("slow=lavfi:testsrc2=size=64x48:rate=10@64x48@30").unwrap();
        let bad = CameraSpec::parse("gone=/nonexistent/clip.mp4@64x48@30").unwrap();
        let t = measure("all", &[fast, slow, bad], 1.0);
        assert_eq!(t.results.len(), 3);
        let (f, s, b) = (&t.results[0], &t.results[1], &t.results[2]);
        assert!(f.error.is_none() && s.error.is_none(), "{t:?}");
        assert!(b.error.is_some());
        // Rates come from capture timestamps (paced to pts), not from the watcher's wakeups.
        assert!(f.delivered_fps > 2.0 * s.delivered_fps, "{f:?} {s:?}");
        assert!((7.0..=12.0).contains(&s.delivered_fps), "{s:?}");
        assert!(s.interval_p50_ms > 80.0, "{s:?}");
        assert!(f.format.contains("64x48"), "{f:?}");
        assert!(line(&t).contains("slow: "));
    }
}
