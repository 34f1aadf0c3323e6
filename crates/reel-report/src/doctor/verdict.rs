//! The verdict: causes ranked with their evidence, the highest rate that held, and the
//! settings that held it.
//!
//! Ranking: first what changes the recorded data (missed deadlines; cameras that deliver
//! fewer frames than the loop takes, so frames repeat), then what the recording survives
//! only with help (an encoder whose backlog grows: frames wait in memory and on disk, and
//! saving waits at the end), then context (another program holding a core, a saturated
//! machine, the effect of real-time priority), and last what is fine. Within a class, the
//! larger share of the requested rate lost comes first.

use super::trial::{LoopTrial, TrialMode, DELIVERY_TOLERANCE};
use super::{CaptureTrial, DoctorConfig, DoctorReport};
use crate::page::DoctorView;
use serde::{Deserialize, Serialize};

/// One cause (or one thing found fine), with its evidence.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    /// "camera", "encoder", "loop", "cpu", "priority", "ok".
    pub kind: String,
    /// The cause in a few words ("camera `wrist` is slow").
    pub cause: String,
    /// The numbers behind it.
    pub evidence: String,
    /// What to do.
    pub advice: String,
    /// 0 = the recorded data is affected, 1 = keeps up only with help, 2 = context, 3 = fine.
    pub class: u8,
    /// Share of the requested rate lost (0..1), for ordering within a class.
    pub severity: f64,
}

/// The highest rate that held, and how.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Recommendation {
    pub fps: u32,
    /// `--deferred` value: "never" (the chosen encoder live) or "always".
    pub deferred: String,
    /// Ask for real-time priority (false: `--no-realtime`).
    pub realtime: bool,
    /// The trial that held, by name.
    pub trial: String,
    /// Cameras whose V4L2 format should be set (name, format), when another format delivered.
    pub camera_formats: Vec<(String, String)>,
}

/// The stable trial with the highest rate (live preferred over deferred at equal rates,
/// the configured real-time setting preferred).
pub fn best_stable(rep: &DoctorReport, realtime: bool) -> Option<&LoopTrial> {
    rep.loops
        .iter()
        .filter(|t| t.stable() && t.mode != Some(TrialMode::EncodingOff))
        .max_by_key(|t| {
            (
                t.fps,
                t.mode == Some(TrialMode::Live),
                t.realtime == realtime,
            )
        })
}

/// The slowest camera's delivered rate with all cameras together (capture trials).
fn slowest_camera(rep: &DoctorReport) -> Option<(String, f64)> {
    let together = rep
        .capture
        .iter()
        .rev()
        .find(|t| t.name.starts_with("all "))
        .or_else(|| rep.capture.first())?;
    together
        .results
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| (r.name.clone(), r.delivered_fps))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// Lower rates worth a trial, highest first: the configured ones below the requested rate,
/// plus the slowest camera's own rate; rates a camera cannot deliver are skipped.
pub fn lower_rates(cfg: &DoctorConfig, rep: &DoctorReport) -> Vec<u32> {
    let cam = slowest_camera(rep).map(|c| c.1);
    let mut v: Vec<u32> = cfg
        .rates
        .iter()
        .copied()
        .filter(|&r| r < cfg.fps && r > 0)
        .collect();
    if let Some(c) = cam {
        let r = (c / DELIVERY_TOLERANCE).floor().min(c.floor()) as u32;
        if r > 0 && r < cfg.fps && !v.contains(&r) {
            v.push(r);
        }
    }
    v.sort_unstable_by(|a, b| b.cmp(a));
    v.into_iter()
        .filter(|&r| cam.is_none_or(|c| c >= r as f64 * DELIVERY_TOLERANCE))
        .take(4)
        .collect()
}

/// Which modes to try at `rate`: live first unless a faster live trial showed its encoder
/// cannot reach this rate, then deferred.
pub fn modes_worth_trying(
    _cfg: &DoctorConfig,
    rep: &DoctorReport,
    rate: u32,
    deferred_useful: bool,
) -> Vec<TrialMode> {
    let live_reach = rep
        .loops
        .iter()
        .filter(|t| t.mode == Some(TrialMode::Live) && t.error.is_none() && t.fps > rate)
        .map(|t| {
            t.cameras
                .iter()
                .map(|c| c.encoder_fps)
                .fold(f64::INFINITY, f64::min)
        })
        .fold(f64::INFINITY, f64::min);
    let mut v = Vec::new();
    if live_reach >= rate as f64 * 0.95 {
        v.push(TrialMode::Live);
    }
    if deferred_useful {
        v.push(TrialMode::Deferred);
    }
    if v.is_empty() {
        v.push(TrialMode::Live);
    }
    v
}

fn trial(rep: &DoctorReport, fps: u32, mode: TrialMode, realtime: bool) -> Option<&LoopTrial> {
    rep.loops.iter().find(|t| {
        t.fps == fps && t.mode == Some(mode) && t.realtime == realtime && t.error.is_none()
    })
}

fn capture_of<'a>(rep: &'a DoctorReport, name: &str) -> Vec<&'a CaptureTrial> {
    rep.capture
        .iter()
        .filter(|t| t.results.iter().any(|r| r.name == name))
        .collect()
}

/// The cameras' findings: a camera that could not be read, or one slower than the loop (with
/// the format that would fix it, recorded in `formats`).
fn camera_findings(
    cfg: &DoctorConfig,
    rep: &DoctorReport,
    f: &mut Vec<Finding>,
    formats: &mut Vec<(String, String)>,
) {
    let fps = cfg.fps;
    for spec in &cfg.cameras {
        let trials = capture_of(rep, &spec.name);
        let get = |name_has: &dyn Fn(&str) -> bool| {
            trials
                .iter()
                .filter(|t| name_has(&t.name))
                .flat_map(|t| {
                    t.results
                        .iter()
                        .filter(|r| r.name == spec.name && r.error.is_none())
                })
                .map(|r| (r.delivered_fps, r.format.clone(), r.input_format.clone()))
                .next()
        };
        let alone = get(&|n: &str| n == format!("{} alone", spec.name));
        let together = get(&|n: &str| n.starts_with("all "));
        let alts: Vec<(f64, String, Option<String>)> = trials
            .iter()
            .filter(|t| t.name.starts_with(&format!("{} alone (", spec.name)))
            .flat_map(|t| t.results.iter().filter(|r| r.error.is_none()))
            .map(|r| (r.delivered_fps, r.format.clone(), r.input_format.clone()))
            .collect();
        let Some((main_fps, main_fmt, _)) = together.clone().or(alone.clone()) else {
            if let Some(e) = trials
                .iter()
                .flat_map(|t| t.results.iter())
                .find(|r| r.name == spec.name)
                .and_then(|r| r.error.clone())
            {
                f.push(Finding {
                    kind: "camera".into(),
                    cause: format!("camera `{}` could not be read", spec.name),
                    evidence: e,
                    advice: "check the device and its --camera spec".into(),
                    class: 0,
                    severity: 1.0,
                });
            }
            continue;
        };
        let need = fps as f64 * DELIVERY_TOLERANCE;
        if main_fps < need {
            let mut evidence = format!(
                "camera `{}` delivers {main_fps:.1} fps of {fps} requested ({main_fmt})",
                spec.name
            );
            if let (Some((a, _, _)), Some(_)) = (&alone, &together) {
                evidence.push_str(&format!("; alone {a:.1} fps"));
            }
            let mut advice = format!(
                "lower the rate to {} Hz or fix the camera: {:.0}% of the frames would be repeats",
                main_fps.floor() as u32,
                (1.0 - main_fps / fps as f64) * 100.0
            );
            if let Some((best_fps, _, Some(fmt))) = alts.iter().max_by(|a, b| a.0.total_cmp(&b.0)) {
                for (afps, _, afmt) in &alts {
                    evidence.push_str(&format!(
                        "; {afps:.1} fps in {}",
                        afmt.as_deref().unwrap_or("?").to_uppercase()
                    ));
                }
                if *best_fps >= need && *best_fps > main_fps {
                    advice = format!(
                        "ask it for {} (`@{fmt}` in its --camera spec)",
                        fmt.to_uppercase()
                    );
                    formats.push((spec.name.clone(), fmt.clone()));
                }
            }
            if let Some((a, _, _)) = &alone {
                if *a >= need {
                    advice = "it delivers alone but not with the others: USB bandwidth or CPU; try MJPG or a lower resolution".into();
                }
            }
            f.push(Finding {
                kind: "camera".into(),
                cause: format!("camera `{}` is slower than the loop", spec.name),
                evidence,
                advice,
                class: 0,
                severity: 1.0 - main_fps / fps as f64,
            });
        }
    }
}

/// The live encoder's findings: a backlog that grows (with what deferring would give), or
/// frames spilled to disk by a backlog that did not keep growing.
fn encoder_findings(
    cfg: &DoctorConfig,
    l: &LoopTrial,
    deferred: Option<&LoopTrial>,
    f: &mut Vec<Finding>,
) {
    let fps = cfg.fps;
    let g = l.total_growth();
    if !l.encoders_keep_up() {
        let n = l.cameras.len();
        let need = (fps as usize * n) as f64;
        let mut evidence = format!(
            "{} backlog grows {g:.1} frames/s with {n} camera(s) at {fps} Hz ({need:.0} frames/s needed, {:.0} encoded)",
            l.vcodec,
            (need - g).max(0.0)
        );
        let mut advice = "lower the rate".to_string();
        if let Some(d) = deferred {
            evidence.push_str(&format!(
                "; deferred (live {}): backlog {:+.1} frames/s",
                d.vcodec,
                d.total_growth()
            ));
            if d.encoders_keep_up() {
                advice = format!(
                    "defer the final codec (--deferred always: record in {}, convert to {} in the background) or lower the rate",
                    d.vcodec, l.vcodec
                );
            }
        }
        let encoding: f64 = l
            .cpu
            .threads
            .iter()
            .filter(|t| t.own && !t.name.starts_with("camera") && t.name != "doctor-cpu")
            .map(|t| t.cpu_pct)
            .sum();
        if encoding > 0.0 {
            evidence.push_str(&format!(
                "; reel's other threads (encoders, queues) used {:.1} cores",
                encoding / 100.0
            ));
        }
        let cores: Vec<String> = l.cpu.cores.iter().map(|c| format!("{c:.0} %")).collect();
        if !cores.is_empty() {
            evidence.push_str(&format!("; cores busy {}", cores.join(", ")));
        }
        f.push(Finding {
            kind: "encoder".into(),
            cause: format!("{} cannot keep up live", l.vcodec),
            evidence,
            advice,
            class: 1,
            severity: (g / need.max(1.0)).min(1.0),
        });
    } else if l
        .cameras
        .iter()
        .any(|c| c.queue_end > cfg.max_queue_frames as u32)
    {
        f.push(Finding {
            kind: "encoder".into(),
            cause: format!("{} spilled frames to disk", l.vcodec),
            evidence: format!(
                "backlog reached {} frames (memory holds {} per camera) though it did not keep growing",
                l.cameras.iter().map(|c| c.queue_end).max().unwrap_or(0),
                cfg.max_queue_frames
            ),
            advice: "raise --max-queue-frames or defer".into(),
            class: 1,
            severity: 0.05,
        });
    }
}

/// Ranks the causes, picks the recommendation and writes the headline.
pub fn conclude(cfg: &DoctorConfig, rep: &mut DoctorReport) {
    let fps = cfg.fps;
    let mut f: Vec<Finding> = Vec::new();
    let live = trial(rep, fps, TrialMode::Live, cfg.realtime).cloned();
    let deferred = trial(rep, fps, TrialMode::Deferred, cfg.realtime).cloned();
    let off = trial(rep, fps, TrialMode::EncodingOff, cfg.realtime).cloned();
    let mut formats: Vec<(String, String)> = Vec::new();

    camera_findings(cfg, rep, &mut f, &mut formats);

    // Missed deadlines.
    let base = live.as_ref().or(deferred.as_ref());
    if let Some(t) = base {
        if t.missed > 0 {
            let mut evidence = format!(
                "{} of {} ticks missed their deadline at {fps} Hz ({}; tick p99 {:.2} ms, max {:.2} ms, start lateness p99 {:.2} ms)",
                t.missed, t.ticks, t.name, t.work_p99_ms, t.work_max_ms, t.late_p99_ms
            );
            let mut cause = "the loop misses deadlines".to_string();
            let mut advice = "see the slowest section".to_string();
            if let Some(o) = &off {
                evidence.push_str(&format!("; with encoding off: {} missed", o.missed));
                if o.missed == 0 {
                    cause = "encoding competes with the control loop".into();
                    advice = "defer the final codec (--deferred always) or lower the rate".into();
                } else if let Some((s, v)) =
                    o.sections_p99_ms.iter().max_by(|a, b| a.1.total_cmp(&b.1))
                {
                    cause = "the loop itself is too slow".into();
                    evidence.push_str(&format!(", slowest section {s} p99 {v:.2} ms"));
                    advice = format!("the {s} section takes too long for {fps} Hz");
                }
            }
            f.push(Finding {
                kind: "loop".into(),
                cause,
                evidence,
                advice,
                class: 0,
                severity: t.missed as f64 / t.ticks.max(1) as f64,
            });
        }
    }

    if let Some(l) = &live {
        encoder_findings(cfg, l, deferred.as_ref(), &mut f);
    }

    // Other programs, the machine, priority.
    let mut seen_other = std::collections::HashSet::new();
    for t in rep.loops.iter().filter(|t| t.error.is_none()) {
        for th in t
            .cpu
            .threads
            .iter()
            .filter(|th| !th.own && th.cpu_pct >= 50.0)
        {
            if seen_other.insert((th.pid, th.tid)) {
                let missed = t.missed > 0;
                f.push(Finding {
                    kind: "cpu".into(),
                    cause: "a thread of another program holds a core".into(),
                    evidence: format!(
                        "thread `{}` of `{}` (pid {}) used {:.0} % of a core during `{}`",
                        th.name, th.process, th.pid, th.cpu_pct, t.name
                    ),
                    advice: "stop it while recording, or pin it away from the loop's core".into(),
                    class: if missed { 0 } else { 2 },
                    severity: th.cpu_pct / 100.0 * if missed { 1.0 } else { 0.1 },
                });
            }
        }
    }
    if let Some(t) = base {
        if !t.cpu.cores.is_empty() && t.cpu.cores.iter().all(|c| *c >= 90.0) {
            let cores: Vec<String> = t.cpu.cores.iter().map(|c| format!("{c:.0} %")).collect();
            f.push(Finding {
                kind: "cpu".into(),
                cause: "every core is saturated".into(),
                evidence: format!("cores busy {} during `{}`", cores.join(", "), t.name),
                advice: "fewer or smaller cameras, a faster preset, or deferring".into(),
                class: 2,
                severity: 0.2,
            });
        }
    }
    let rt_pair = |mode: TrialMode| {
        let a = trial(rep, fps, mode, true)?;
        let b = trial(rep, fps, mode, false)?;
        Some((a.clone(), b.clone()))
    };
    if let Some((rt, nort)) = rt_pair(TrialMode::Live).or_else(|| rt_pair(TrialMode::Deferred)) {
        let evidence = format!(
            "with real-time priority ({}): {} missed, start lateness p99 {:.2} ms; without ({}): {} missed, p99 {:.2} ms",
            rt.priority, rt.missed, rt.late_p99_ms, nort.priority, nort.missed, nort.late_p99_ms
        );
        let (cause, class, advice) = if nort.missed > rt.missed {
            (
                "real-time priority keeps the loop on time",
                2,
                "keep it (run as root or give CAP_SYS_NICE)",
            )
        } else if rt.missed > nort.missed {
            (
                "real-time priority did not help here",
                2,
                "try --no-realtime",
            )
        } else {
            (
                "real-time priority made no difference in these trials",
                3,
                "either works",
            )
        };
        f.push(Finding {
            kind: "priority".into(),
            cause: cause.into(),
            evidence,
            advice: advice.into(),
            class,
            severity: (nort.missed as f64 - rt.missed as f64).abs() / rt.ticks.max(1) as f64,
        });
    }
    if let Some(o) = &off {
        if o.missed == 0 {
            f.push(Finding {
                kind: "ok".into(),
                cause: "the loop itself is fine".into(),
                evidence: format!(
                    "with encoding off: tick p99 {:.2} ms of a {:.1} ms budget, start lateness p99 {:.2} ms, 0 missed",
                    o.work_p99_ms,
                    1000.0 / fps as f64,
                    o.late_p99_ms
                ),
                advice: String::new(),
                class: 3,
                severity: 0.0,
            });
        }
    }
    f.sort_by(|a, b| {
        a.class
            .cmp(&b.class)
            .then(b.severity.total_cmp(&a.severity))
    });
    rep.findings = f;

    rep.recommendation = best_stable(rep, cfg.realtime).map(|t| Recommendation {
        fps: t.fps,
        deferred: if t.mode == Some(TrialMode::Deferred) {
            "always"
        } else {
            "never"
        }
        .into(),
        realtime: t.realtime,
        trial: t.name.clone(),
        camera_formats: formats.clone(),
    });
    let lowest = rep.loops.iter().map(|t| t.fps).min().unwrap_or(fps);
    rep.headline = match &rep.recommendation {
        Some(r) if r.fps == fps && rep.findings.iter().all(|f| f.class >= 2) => format!(
            "{fps} Hz holds: 0 missed deadlines, every camera delivers, every encoder keeps up ({})",
            r.trial
        ),
        Some(r) => format!(
            "Highest stable rate measured: {} Hz ({}: 0 missed deadlines, every camera delivers, every encoder keeps up){}",
            r.fps,
            r.trial,
            if r.fps < fps { format!("; {fps} Hz does not hold") } else { String::new() }
        ),
        None => format!(
            "No rate held down to {lowest} Hz in these trials{}",
            if rep.interrupted { " (stopped before the end)" } else { "" }
        ),
    };
}

/// The findings as the report page shows them.
pub fn view(rep: &DoctorReport) -> DoctorView {
    let mut trials = vec![[
        "trial",
        "ticks",
        "rate",
        "missed",
        "tick p99 ms",
        "start late p99 ms",
        "cameras (delivered fps)",
        "backlog growth (frames/s)",
        "verdict",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for t in &rep.loops {
        trials.push(vec![
            t.name.clone(),
            t.ticks.to_string(),
            format!("{:.2} Hz", t.rate_hz),
            t.missed.to_string(),
            format!("{:.2}", t.work_p99_ms),
            format!("{:.2}", t.late_p99_ms),
            t.cameras
                .iter()
                .map(|c| format!("{} {:.1}", c.name, c.delivered_fps))
                .collect::<Vec<_>>()
                .join(", "),
            format!("{:.1}", t.total_growth()),
            if t.stable() {
                "stable".into()
            } else {
                t.problems().join(", ")
            },
        ]);
    }
    DoctorView {
        headline: rep.headline.clone(),
        findings: rep
            .findings
            .iter()
            .map(|f| {
                (
                    f.cause.clone(),
                    if f.advice.is_empty() {
                        f.evidence.clone()
                    } else {
                        format!("{} → {}", f.evidence, f.advice)
                    },
                )
            })
            .collect(),
        command: rep.command.clone(),
        trials,
    }
}

/// The verdict as text (what `reel doctor` prints at the end).
pub fn text(rep: &DoctorReport) -> String {
    let mut s = String::from("\nVerdict\n");
    for (i, f) in rep.findings.iter().enumerate() {
        s.push_str(&format!("  {}. {}: {}\n", i + 1, f.cause, f.evidence));
        if !f.advice.is_empty() {
            s.push_str(&format!("     → {}\n", f.advice));
        }
    }
    s.push_str(&format!("\n{}\n", rep.headline));
    if !rep.command.is_empty() {
        s.push_str(&format!("\nRecord with:\n  {}\n", rep.command));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::proc::{CpuUse, ThreadCpu};
    use crate::doctor::{CaptureResult, LoopCamera};
    use reel_capture::CameraSpec;
    use reel_engine::plan::EncoderRequest;

    fn cam(name: &str, delivered: f64, growth: f64, end: u32) -> LoopCamera {
        LoopCamera {
            name: name.into(),
            delivered_fps: delivered,
            queue_growth_fps: growth,
            queue_end: end,
            encoder_fps: 30.0 - growth,
            ..Default::default()
        }
    }

    fn looptrial(
        fps: u32,
        mode: TrialMode,
        realtime: bool,
        cams: Vec<LoopCamera>,
        missed: u64,
    ) -> LoopTrial {
        LoopTrial {
            name: format!("{} @ {fps} Hz", mode.label()),
            mode: Some(mode),
            fps,
            realtime,
            vcodec: if mode == TrialMode::Deferred {
                "libx264"
            } else {
                "libsvtav1"
            }
            .into(),
            ticks: 60,
            missed,
            cameras: cams,
            ..Default::default()
        }
    }

    #[test]
    fn ranks_data_problems_before_backlogs_and_recommends_what_held() {
        let specs = vec![
            CameraSpec::parse("front=lavfi:testsrc2@64x48@30").unwrap(),
            CameraSpec::parse("slow=lavfi:testsrc2=size=64x48:rate=20@64x48@30").unwrap(),
        ];
        let cfg = DoctorConfig::new(specs, 30, EncoderRequest::new(64, 48, 2, 30));
        let res = |n: &str, f: f64| CaptureResult {
            name: n.into(),
            requested_fps: 30,
            delivered_fps: f,
            format: "rawvideo".into(),
            ..Default::default()
        };
        let mut rep = DoctorReport {
            fps: 30,
            capture: vec![
                CaptureTrial {
                    name: "front alone".into(),
                    seconds: 2.0,
                    results: vec![res("front", 30.0)],
                },
                CaptureTrial {
                    name: "slow alone".into(),
                    seconds: 2.0,
                    results: vec![res("slow", 20.0)],
                },
                CaptureTrial {
                    name: "all 2 cameras together".into(),
                    seconds: 2.0,
                    results: vec![res("front", 30.0), res("slow", 20.1)],
                },
            ],
            ..Default::default()
        };
        let mut live = looptrial(
            30,
            TrialMode::Live,
            true,
            vec![cam("front", 30.0, 15.0, 40), cam("slow", 20.0, 16.0, 42)],
            0,
        );
        live.cpu = CpuUse {
            threads: vec![ThreadCpu {
                name: "cc1plus".into(),
                process: "cc1plus".into(),
                pid: 1,
                tid: 1,
                own: false,
                cpu_pct: 85.0,
            }],
            cores: vec![100.0, 60.0],
            seconds: 2.0,
        };
        rep.loops = vec![
            live,
            looptrial(
                30,
                TrialMode::Deferred,
                true,
                vec![cam("front", 30.0, 0.0, 1), cam("slow", 20.0, 0.0, 1)],
                0,
            ),
            looptrial(
                30,
                TrialMode::EncodingOff,
                true,
                vec![cam("front", 30.0, 0.0, 0), cam("slow", 20.0, 0.0, 0)],
                0,
            ),
            looptrial(
                30,
                TrialMode::Deferred,
                false,
                vec![cam("front", 30.0, 0.0, 1), cam("slow", 20.0, 0.0, 1)],
                2,
            ),
        ];
        assert_eq!(
            lower_rates(&cfg, &rep),
            vec![20, 15, 10],
            "25 is above what the slow camera delivers"
        );
        let modes = modes_worth_trying(&cfg, &rep, 20, true);
        assert_eq!(
            modes,
            vec![TrialMode::Deferred],
            "live AV1 reached only ~14 fps per camera"
        );
        rep.loops.push(looptrial(
            20,
            TrialMode::Deferred,
            true,
            vec![cam("front", 30.0, 0.0, 1), cam("slow", 20.0, 0.0, 1)],
            0,
        ));
        conclude(&cfg, &mut rep);
        let kinds: Vec<&str> = rep.findings.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds[0], "camera", "{:#?}", rep.findings);
        assert!(rep.findings[0]
            .evidence
            .contains("delivers 20.1 fps of 30 requested"));
        let enc = kinds.iter().position(|k| *k == "encoder").unwrap();
        assert!(
            rep.findings[enc]
                .evidence
                .contains("backlog grows 31.0 frames/s"),
            "{}",
            rep.findings[enc].evidence
        );
        assert!(rep.findings[enc].advice.contains("--deferred always"));
        assert!(rep
            .findings
            .iter()
            .any(|f| f.cause.contains("another program") && f.evidence.contains("cc1plus")));
        assert!(rep
            .findings
            .iter()
            .any(|f| f.kind == "priority" && f.cause.contains("keeps the loop on time")));
        assert_eq!(
            rep.findings.last().unwrap().kind,
            "ok",
            "what is fine comes last"
        );
        let r = rep.recommendation.clone().unwrap();
        assert_eq!(
            (r.fps, r.deferred.as_str(), r.realtime),
            (20, "always", true)
        );
        assert!(rep.headline.contains("20 Hz"));
        let v = view(&rep);
        assert_eq!(v.trials.len(), rep.loops.len() + 1);
        assert!(text(&rep).contains("1. camera `slow`"));
    }
}
