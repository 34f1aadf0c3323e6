//! `reel report`: one self-contained HTML page of a dataset's timing. Read-only: it opens
//! `meta/info.json`, the episodes table, reel's per-episode figures
//! (`meta/reel/episodes.jsonl`, or the `reel/*` columns of older datasets) and the stored
//! ticks (`meta/reel/ticks/`), and writes nothing into the dataset.

use crate::charts::{self, Extras, Series};
use crate::page::{Card, DoctorView, EpisodeView, Figure, Page};
use reel_core::extra::ExtraValue;
use reel_core::tick::SECTIONS;
use reel_core::{Error, Result};
use reel_dataset::episodes::{self, EpisodeRecord};
use reel_dataset::info::Info;
use reel_dataset::ticks::{self, EpisodeTicks};
use std::path::Path;

/// What goes into the report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Most episodes drawn tick by tick (the worst ones — most missed deadlines, then highest
    /// tick p99 — are kept); every episode is in the trends either way.
    pub max_episode_sections: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            max_episode_sections: 200,
        }
    }
}

/// A `reel/<name>` figure of an episode as a number.
fn num(rec: &EpisodeRecord, name: &str) -> Option<f64> {
    rec.extra
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| match v {
            ExtraValue::I64(i) => Some(*i as f64),
            ExtraValue::F64(f) => Some(*f),
            ExtraValue::Str(_) => None,
        })
}

fn text(rec: &EpisodeRecord, name: &str) -> Option<String> {
    rec.extra
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| match v {
            ExtraValue::Str(s) => Some(s.clone()),
            _ => None,
        })
}

/// Switches recorded in an `encoder_switches` value ("" when none; entries separated by ';').
pub fn switch_count(s: &str) -> usize {
    s.split(';').filter(|p| !p.trim().is_empty()).count()
}

/// The camera name of a video key (`observation.images.front` → `front`).
fn cam_name(key: &str) -> &str {
    key.strip_prefix("observation.images.").unwrap_or(key)
}

fn fig(id: String, title: &str, svg: std::result::Result<String, String>) -> Figure {
    Figure {
        id,
        title: title.to_string(),
        svg: svg.unwrap_or_else(|e| format!("<p class=\"note\">{}</p>", crate::page::escape(&e))),
    }
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

/// The per-episode figures drawn from its stored ticks.
fn episode_figures(t: &EpisodeTicks, fps: u32) -> Vec<Figure> {
    let period_ms = 1000.0 / fps.max(1) as f64;
    let id = t.episode_index;
    let x: Vec<f64> = t.t_s.clone();
    let layers: Vec<(String, Vec<f64>)> = SECTIONS
        .iter()
        .zip(&t.sections_ms)
        .map(|(n, v)| (n.to_string(), v.iter().map(|&y| y as f64).collect()))
        .collect();
    let missed: Vec<(f64, f64)> = (0..t.len())
        .filter(|&i| t.missed[i])
        .map(|i| (t.t_s[i], t.work_ms(i) as f64))
        .collect();
    let mut out = vec![fig(
        format!("ep{id}-ticks"),
        "tick time by section",
        charts::stacked(
            &format!(
                "Tick time by section (ms) · budget {period_ms:.1} ms · {} missed",
                missed.len()
            ),
            "seconds into the episode",
            "ms",
            &x,
            &layers,
            &Extras {
                markers: Some(Series::new("missed deadline", missed)),
                limit: Some((period_ms, format!("budget {period_ms:.1} ms"))),
                dots: false,
            },
        ),
    )];
    out.push(fig(
        format!("ep{id}-late"),
        "start lateness",
        charts::lines(
            "Start lateness (ms): how late each tick began",
            "seconds into the episode",
            "ms",
            &[Series::new(
                "start lateness",
                x.iter()
                    .zip(&t.late_ms)
                    .map(|(&a, &b)| (a, b as f64))
                    .collect(),
            )],
            &Extras::default(),
        ),
    ));
    if !t.cameras.is_empty() {
        let ages: Vec<Series> = t
            .cameras
            .iter()
            .map(|c| {
                Series::new(
                    cam_name(&c.key),
                    x.iter()
                        .zip(&c.age_ms)
                        .map(|(&a, &b)| (a, b as f64))
                        .collect(),
                )
            })
            .collect();
        let repeats: Vec<(f64, f64)> = t
            .cameras
            .iter()
            .flat_map(|c| {
                (0..c.repeated.len())
                    .filter(|&i| c.repeated[i])
                    .map(|i| (x[i], c.age_ms[i] as f64))
            })
            .collect();
        let n_rep = repeats.len();
        out.push(fig(
            format!("ep{id}-age"),
            "frame age per camera",
            charts::lines(
                &format!("Frame age per camera (ms) · {n_rep} repeated frames"),
                "seconds into the episode",
                "ms",
                &ages,
                &Extras {
                    markers: Some(Series::new("repeated frame", repeats)),
                    ..Default::default()
                },
            ),
        ));
        let queues: Vec<Series> = t
            .cameras
            .iter()
            .map(|c| {
                Series::new(
                    cam_name(&c.key),
                    x.iter()
                        .zip(&c.queued)
                        .map(|(&a, &b)| (a, b as f64))
                        .collect(),
                )
            })
            .collect();
        out.push(fig(
            format!("ep{id}-queue"),
            "encoder queue per camera",
            charts::lines(
                "Encoder queue per camera (frames handed over, not yet encoded)",
                "seconds into the episode",
                "frames",
                &queues,
                &Extras::default(),
            ),
        ));
    }
    out
}

/// Names a side stream's columns: `servo` by the robot's joints when it has 6, `audio`'s
/// 2 as left/right, else `name[i]`.
fn column_names(stream: &str, width: usize) -> Vec<String> {
    match (stream, width) {
        ("servo", 6) => reel_record::robot::SO_JOINTS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ("audio", 2) => vec!["left".into(), "right".into()],
        _ => (0..width).map(|i| format!("{stream}[{i}]")).collect(),
    }
}

/// One figure per side stream of the episode (`meta/reel/streams/`), on the tick figures'
/// time axis (seconds since the episode's first scheduled tick, from the ticks' `start_ns`),
/// each sample at its own capture time; the caption gives the sample count and mean rate.
fn stream_figures(root: &Path, t: &EpisodeTicks) -> Vec<Figure> {
    let (Some(&s0), Some(&x0)) = (t.start_ns.first(), t.t_s.first()) else {
        return Vec::new();
    };
    let origin = s0 as f64 - x0 * 1e9;
    let names = reel_dataset::streams::names(root).unwrap_or_default();
    let mut out = Vec::new();
    for name in names {
        let id = format!("ep{}-stream-{name}", t.episode_index);
        let s = match reel_dataset::streams::read_episode(root, &name, t.episode_index) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                out.push(fig(id, &name, Err(format!("stream '{name}': {e}"))));
                continue;
            }
        };
        let n = s.t_ns.len();
        let secs = match (s.t_ns.first(), s.t_ns.last()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
            _ => 0.0,
        };
        let rate = if secs > 0.0 {
            format!("{:.0} Hz", (n.saturating_sub(1)) as f64 / secs)
        } else {
            "–".into()
        };
        let x: Vec<f64> = s.t_ns.iter().map(|&v| (v as f64 - origin) / 1e9).collect();
        let series: Vec<Series> = column_names(&name, s.width)
            .into_iter()
            .enumerate()
            .map(|(c, col)| {
                Series::new(
                    col,
                    x.iter()
                        .enumerate()
                        .map(|(i, &xi)| (xi, s.values[i * s.width + c]))
                        .collect(),
                )
            })
            .collect();
        out.push(fig(
            id,
            &format!("stream {name}"),
            charts::signed_lines(
                &format!(
                    "Side stream '{name}' · {n} samples of {} x {} · {rate}",
                    s.width, s.dtype
                ),
                "seconds into the episode",
                &name,
                &series,
            ),
        ));
    }
    out
}

/// The per-episode table (one row per camera).
fn episode_table(rec: &EpisodeRecord, keys: &[String]) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "camera",
        "encoder",
        "encoder fps",
        "max queue",
        "spilled",
        "encoder switches",
        "frame age p50 / max (ms)",
        "repeated frames",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for k in keys {
        let c = cam_name(k);
        let v = |what: &str| num(rec, &format!("videos/{k}/{what}"));
        let sw = text(rec, &format!("videos/{k}/encoder_switches")).unwrap_or_default();
        rows.push(vec![
            c.to_string(),
            text(rec, &format!("videos/{k}/encoder")).unwrap_or_else(|| "–".into()),
            fmt(v("encode_fps"), 1),
            fmt(v("max_queue_depth"), 0),
            fmt(v("spilled_frames"), 0),
            if sw.is_empty() { "none".into() } else { sw },
            format!(
                "{} / {}",
                fmt(num(rec, &format!("camera/{c}/age_p50_ms")), 1),
                fmt(num(rec, &format!("camera/{c}/age_max_ms")), 1)
            ),
            fmt(num(rec, &format!("camera/{c}/repeated_frames")), 0),
        ]);
    }
    rows
}

/// The across-episodes figures.
fn trends(eps: &[EpisodeRecord], keys: &[String], fps: u32) -> Vec<Figure> {
    let x = |f: &dyn Fn(&EpisodeRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        eps.iter()
            .filter_map(|e| f(e).map(|v| (e.episode_index as f64, v)))
            .collect()
    };
    let dots = Extras {
        dots: true,
        ..Default::default()
    };
    let per_cam = |what: &dyn Fn(&EpisodeRecord, &str) -> Option<f64>| -> Vec<Series> {
        keys.iter()
            .map(|k| Series::new(cam_name(k), x(&|e| what(e, k))))
            .collect()
    };
    let mut out = Vec::new();
    out.push(fig(
        "trend-tick".into(),
        "tick time per episode",
        charts::lines(
            "Tick time per episode (ms)",
            "episode",
            "ms",
            &["p50", "p90", "p99", "max"]
                .iter()
                .map(|p| {
                    let name = if *p == "max" {
                        "tick_max_ms".to_string()
                    } else {
                        format!("tick_{p}_ms")
                    };
                    Series::new(*p, x(&|e| num(e, &name)))
                })
                .collect::<Vec<_>>(),
            &Extras {
                dots: true,
                limit: Some((1000.0 / fps.max(1) as f64, "budget".into())),
                ..Default::default()
            },
        ),
    ));
    out.push(fig(
        "trend-missed".into(),
        "missed deadlines per episode",
        charts::lines(
            "Missed deadlines per episode",
            "episode",
            "ticks",
            &[Series::new(
                "missed deadlines",
                x(&|e| num(e, "missed_deadlines")),
            )],
            &dots,
        ),
    ));
    out.push(fig(
        "trend-late".into(),
        "start lateness per episode",
        charts::lines(
            "Start lateness per episode (p99, ms)",
            "episode",
            "ms",
            &[Series::new(
                "start lateness p99",
                x(&|e| num(e, "late_start_p99_ms")),
            )],
            &dots,
        ),
    ));
    if !keys.is_empty() {
        out.push(fig(
            "trend-age".into(),
            "frame age per camera",
            charts::lines(
                "Frame age per camera (p50, ms)",
                "episode",
                "ms",
                &per_cam(&|e, k| num(e, &format!("camera/{}/age_p50_ms", cam_name(k)))),
                &dots,
            ),
        ));
        out.push(fig(
            "trend-repeats".into(),
            "repeated frames per camera",
            charts::lines(
                "Repeated frames per camera (ticks that reused the previous frame)",
                "episode",
                "frames",
                &per_cam(&|e, k| num(e, &format!("camera/{}/repeated_frames", cam_name(k)))),
                &dots,
            ),
        ));
        out.push(fig(
            "trend-encode-fps".into(),
            "encoder speed per camera",
            charts::lines(
                "Encoder speed per camera (frames/s of encoding time)",
                "episode",
                "frames/s",
                &per_cam(&|e, k| num(e, &format!("videos/{k}/encode_fps"))),
                &Extras {
                    dots: true,
                    limit: Some((fps as f64, format!("needed: {fps} fps"))),
                    ..Default::default()
                },
            ),
        ));
        out.push(fig(
            "trend-queue".into(),
            "encoder queue depth per camera",
            charts::lines(
                "Deepest encoder queue per camera (frames)",
                "episode",
                "frames",
                &per_cam(&|e, k| num(e, &format!("videos/{k}/max_queue_depth"))),
                &dots,
            ),
        ));
        out.push(fig(
            "trend-spilled".into(),
            "spilled frames per camera",
            charts::lines(
                "Frames spilled to disk per camera",
                "episode",
                "frames",
                &per_cam(&|e, k| num(e, &format!("videos/{k}/spilled_frames"))),
                &dots,
            ),
        ));
        out.push(fig(
            "trend-switches".into(),
            "encoder switches per camera",
            charts::lines(
                "Encoder switches per camera (a failed or hung encoder replaced)",
                "episode",
                "switches",
                &per_cam(&|e, k| {
                    text(e, &format!("videos/{k}/encoder_switches"))
                        .map(|s| switch_count(&s) as f64)
                }),
                &dots,
            ),
        ));
    }
    out
}

/// Builds the report page of the dataset at `root` (read-only).
pub fn build(root: &Path, opts: &ReportOptions, doctor: Option<DoctorView>) -> Result<Page> {
    if reel_engine::writer::journal_pending(root) {
        return Err(Error::invalid(format!(
            "{} has an unfinished episode save (a crash): `reel check --repair {}` rolls it back; the report reads only consistent datasets",
            root.display(),
            root.display()
        )));
    }
    let info = Info::read(root)?;
    let mut eps = episodes::read_all(root, &info.features)?;
    // reel's per-episode figures live in meta/reel/episodes.jsonl; datasets recorded before
    // that kept them as reel/* columns of the episodes table (already in `extra`).
    let figures = reel_dataset::figures::read(root)?;
    for e in &mut eps {
        if let Some(f) = figures.get(&e.episode_index) {
            for (k, v) in f {
                match e.extra.iter_mut().find(|(kk, _)| kk == k) {
                    Some((_, old)) => *old = v.clone(),
                    None => e.extra.push((k.clone(), v.clone())),
                }
            }
        }
    }
    let ticks = ticks::read_all(root)?;
    let keys = info.features.video_keys();
    let fps = info.fps;
    let total_missed: f64 = eps.iter().filter_map(|e| num(e, "missed_deadlines")).sum();
    let worst_p99 = eps
        .iter()
        .filter_map(|e| num(e, "tick_p99_ms"))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let sum_over = |what: &dyn Fn(&EpisodeRecord, &str) -> Option<f64>| -> f64 {
        eps.iter()
            .flat_map(|e| keys.iter().filter_map(move |k| what(e, k)))
            .sum()
    };
    let repeats = sum_over(&|e, k| num(e, &format!("camera/{}/repeated_frames", cam_name(k))));
    let spilled = sum_over(&|e, k| num(e, &format!("videos/{k}/spilled_frames")));
    let switches = sum_over(&|e, k| {
        text(e, &format!("videos/{k}/encoder_switches")).map(|s| switch_count(&s) as f64)
    });
    let frames: u64 = eps.iter().map(|e| e.length).sum();
    let timed = eps
        .iter()
        .filter(|e| num(e, "tick_p99_ms").is_some())
        .count();
    let cards = vec![
        Card {
            label: "episodes".into(),
            value: eps.len().to_string(),
            bad: false,
        },
        Card {
            label: "frames".into(),
            value: frames.to_string(),
            bad: false,
        },
        Card {
            label: "rate".into(),
            value: format!("{fps} Hz"),
            bad: false,
        },
        Card {
            label: "missed deadlines".into(),
            value: format!("{total_missed:.0}"),
            bad: total_missed > 0.0,
        },
        Card {
            label: "worst tick p99".into(),
            value: worst_p99
                .map(|v| format!("{v:.2} ms"))
                .unwrap_or_else(|| "–".into()),
            bad: worst_p99.is_some_and(|v| v > 1000.0 / fps.max(1) as f64),
        },
        Card {
            label: "repeated frames".into(),
            value: format!("{repeats:.0}"),
            bad: repeats > 0.0,
        },
        Card {
            label: "spilled frames".into(),
            value: format!("{spilled:.0}"),
            bad: spilled > 0.0,
        },
        Card {
            label: "encoder switches".into(),
            value: format!("{switches:.0}"),
            bad: switches > 0.0,
        },
    ];
    // Which episodes get their tick-by-tick section: all, or the worst ones.
    let mut order: Vec<usize> = (0..eps.len()).collect();
    let drawn: Vec<bool> = if eps.len() <= opts.max_episode_sections {
        vec![true; eps.len()]
    } else {
        order.sort_by(|&a, &b| {
            let k = |e: &EpisodeRecord| {
                (
                    num(e, "missed_deadlines").unwrap_or(0.0),
                    num(e, "tick_p99_ms").unwrap_or(0.0),
                )
            };
            let (ma, pa) = k(&eps[a]);
            let (mb, pb) = k(&eps[b]);
            mb.total_cmp(&ma).then(pb.total_cmp(&pa))
        });
        let mut d = vec![false; eps.len()];
        for &i in order.iter().take(opts.max_episode_sections) {
            d[i] = true;
        }
        d
    };
    let mut views = Vec::new();
    for (rec, draw) in eps.iter().zip(&drawn) {
        if !draw {
            continue;
        }
        let t = ticks.iter().find(|t| t.episode_index == rec.episode_index);
        let mut v = EpisodeView {
            index: rec.episode_index,
            rows: rec.length,
            table: episode_table(rec, &keys),
            ..Default::default()
        };
        match t {
            Some(t) => {
                v.work_ms = (0..t.len())
                    .map(|i| (t.work_ms(i) * 1e4).round() / 1e4)
                    .collect();
                v.missed = (0..t.len())
                    .filter(|&i| t.missed[i])
                    .map(|i| i as u32)
                    .collect();
                v.figures = episode_figures(t, fps);
                v.figures.extend(stream_figures(root, t));
                if t.len() as u64 != rec.length {
                    v.note = Some(format!(
                        "{} ticks stored for {} frames (the loop that recorded it gave timing for only some frames)",
                        t.len(),
                        rec.length
                    ));
                }
            }
            None => {
                v.note = Some("no per-tick timing stored for this episode (recorded by another tool, or by a loop that gives none); its per-episode figures are in the trends".into());
            }
        }
        views.push(v);
    }
    let hidden = eps.len() - views.len();
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| root.display().to_string());
    let mut subtitle = format!(
        "{} · {} episodes · {} frames at {fps} Hz · cameras: {} · {timed} episode(s) timed by reel, {} with per-tick figures",
        root.display(),
        eps.len(),
        frames,
        if keys.is_empty() { "none".into() } else { keys.iter().map(|k| cam_name(k)).collect::<Vec<_>>().join(", ") },
        ticks.len()
    );
    if hidden > 0 {
        subtitle.push_str(&format!(
            " · tick-by-tick sections for the {} worst episodes ({hidden} more in the trends only)",
            views.len()
        ));
    }
    Ok(Page {
        title: format!("reel report · {name}"),
        subtitle,
        live: None,
        cards,
        doctor,
        trends: trends(&eps, &keys, fps),
        episodes: views,
    })
}

/// Writes the report page of `root` to `out` (never inside the dataset unless asked to).
pub fn write(
    root: &Path,
    out: &Path,
    opts: &ReportOptions,
    doctor: Option<DoctorView>,
) -> Result<()> {
    let page = build(root, opts, doctor)?;
    let html = crate::page::html(&page);
    std::fs::write(out, html).map_err(|e| Error::io("write report", out, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_switches() {
        assert_eq!(switch_count(""), 0);
        assert_eq!(switch_count("libsvtav1 → libx264 at frame 30"), 1);
        assert_eq!(switch_count("a → b at 3; b → c at 9"), 2);
    }
}
