//! `reel bench record`: records the simulated robot with synthetic cameras (or any camera
//! inputs: footage files, looped, with an optional filter) and prints the figures that matter
//! (add_frame latency, missed deadlines, save latency, encoder speed, queued/spilled frames,
//! time from the last save to a complete final-codec dataset, CPU per thread group, peak
//! memory), as a table or JSON.

use crate::record::{self, RecordArgs, SetupArgs};
use anyhow::Result;
use clap::{Args, Subcommand};
use reel_record::robot::SimRobot;
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Record synthetic cameras and report loop and encoder figures.
    Record(BenchRecordArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BenchRecordArgs {
    /// Number of synthetic cameras (when no --camera is given).
    #[arg(long, default_value_t = 3)]
    pub cameras: usize,
    /// A camera input instead of the synthetic ones, as `reel record --camera`:
    /// NAME=INPUT[@WxH[@FPS]][@vf=FILTERS], e.g. top=../shared/footage/aloha_top.mkv (looped).
    /// Repeatable.
    #[arg(long = "camera")]
    pub camera: Vec<String>,
    /// Seconds per episode.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Episodes to record.
    #[arg(long, default_value_t = 1)]
    pub episodes: u32,
    /// Seconds of reset between episodes.
    #[arg(long, default_value_t = 0.0)]
    pub reset_s: f64,
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// No pacing: ticks back to back (measures throughput, not real time).
    #[arg(long)]
    pub flat_out: bool,
    #[arg(long, default_value = "auto")]
    pub vcodec: String,
    #[arg(long)]
    pub crf: Option<f64>,
    #[arg(long)]
    pub preset: Option<String>,
    /// Deferred final codec (see `reel record --deferred`; the same default).
    #[arg(long, value_enum, default_value = "auto")]
    pub deferred: record::DeferredMode,
    /// MiB per camera for the final-codec lane's spill (see `reel record --final-spill-mb`);
    /// 0 turns the lane off (conversion of each committed episode only).
    #[arg(long, default_value_t = 2048)]
    pub final_spill_mb: u64,
    /// Keep the dataset here (default: a temporary directory, deleted afterwards).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Run the live page too (as `reel record --display`), to measure what it costs the loop.
    #[arg(long)]
    pub display: bool,
    /// Port of the live page (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub display_port: u16,
    /// Side stream `servo`: the simulated arm read on a bus thread at this rate (as `reel
    /// record --servo-stream-hz`), to measure what it costs the loop.
    #[arg(long)]
    pub servo_stream_hz: Option<u32>,
    /// Side stream `audio` from this input (as `reel record --audio-stream`).
    #[arg(long)]
    pub audio_stream: Option<String>,
}

/// The codec of every video file of the dataset at `root` (distinct, sorted).
fn video_codecs(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("videos")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "mp4") {
                let c = reel_media::probe::probe_video(&p)
                    .map(|i| i.codec)
                    .unwrap_or_else(|e| format!("unreadable ({e})"));
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    out.sort();
    out
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Record(b) => bench_record(b),
    }
}

/// The loop's tick p99/max and the side streams' counts, added to the bench's JSON.
fn with_stream_figures(
    mut out: serde_json::Value,
    report: &reel_record::session::SessionReport,
) -> serde_json::Value {
    let worst = |f: fn(&reel_record::timing::Summary) -> f64| {
        report
            .episodes
            .iter()
            .map(|(_, s)| f(s))
            .fold(0.0, f64::max)
    };
    out["tick_p99_ms"] = json!(worst(|s| s.p99_ms));
    out["tick_max_ms"] = json!(worst(|s| s.max_ms));
    out["streams"] = report
        .streams
        .iter()
        .map(|c| json!({"name": c.name, "stored": c.stored, "between_episodes": c.between_episodes, "late": c.late}))
        .collect::<Vec<_>>()
        .into();
    out
}

fn bench_record(b: BenchRecordArgs) -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("reel-bench-").tempdir()?;
    let root = b.root.clone().unwrap_or_else(|| tmp.path().join("dataset"));
    let args = RecordArgs {
        setup: SetupArgs {
            sim: true,
            fps: b.fps,
            cameras: b.camera.clone(),
            num_cameras: b.camera.is_empty().then_some(b.cameras),
            width: b.width,
            height: b.height,
            vcodec: b.vcodec.clone(),
            crf: b.crf,
            preset: b.preset.clone(),
            gop: None,
            deferred: b.deferred,
            max_queue_frames: 60,
            final_spill_mb: b.final_spill_mb,
            inject_fault: None,
            encoder_timeout_s: 5.0,
            no_realtime: false,
        },
        root: Some(root.clone()),
        repo_id: "bench/record".into(),
        num_episodes: Some(b.episodes),
        episode_time_s: Some(b.seconds),
        reset_time_s: Some(b.reset_s),
        single_task: "benchmark".into(),
        resume: false,
        overwrite: true,
        data_files_size_mb: None,
        video_files_size_mb: None,
        no_fsync: false,
        no_keys: true,
        demo_video: None,
        demo_audio: None,
        say: false,
        demo_layout: crate::demo::DemoLayoutArgs {
            layout: "pip".into(),
            main_camera: 0,
            inset_camera: None,
            size: "960x540".into(),
            demo_preset: "ultrafast".into(),
            demo_crf: 23,
        },
        display: b.display,
        display_port: b.display_port,
        servo_stream_hz: b.servo_stream_hz,
        audio_stream: b.audio_stream.clone(),
        lerobot: crate::robot_args::LeRobotArgs {
            camera_timeout_ms: 500,
            ..Default::default()
        },
    };
    let stop = reel_core::StopToken::new();
    let _signals = reel_core::stop::on_signals(&stop)?;
    let robot: Box<dyn reel_record::robot::Robot> = Box::new(SimRobot::new());
    let cpu = crate::cpu::CpuSampler::start();
    let started = record::start_streams(&args, robot)?;
    let (mut robot, streams, _audio) = (started.robot, started.cutter, started.audio);
    let mut p = record::prepare(&args, robot.as_ref(), &stop)?;
    for line in p.plan.summary() {
        tracing::info!("{line}");
    }
    p.session.flat_out = b.flat_out;
    let n_cams = p.cameras.len();
    let mut display = if b.display {
        Some(record::start_display(&p, b.display_port)?)
    } else {
        None
    };
    let t0 = std::time::Instant::now();
    let report = record::run_session(
        p,
        robot.as_mut(),
        &mut reel_record::robot::SimTeleop::default(),
        streams,
        false,
        display.as_mut(),
        &stop,
    )?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu.finish();
    let codecs = video_codecs(&root);
    let (display_dropped, thumbnails, requests) = display
        .map(|d| {
            let r = (d.dropped(), d.thumbnails_made(), d.requests());
            d.stop();
            r
        })
        .unwrap_or((0, 0, 0));
    let record_section = |i: usize| -> (f64, f64, f64) {
        report
            .episodes
            .iter()
            .fold((0.0f64, 0.0f64, 0.0f64), |acc, (_, s)| {
                let sec = s
                    .sections
                    .iter()
                    .find(|x| x.0 == "record")
                    .map(|x| (x.1, x.2, x.3))
                    .unwrap_or_default();
                let _ = i;
                (acc.0.max(sec.0), acc.1.max(sec.1), acc.2.max(sec.2))
            })
    };
    let (af_p50, af_p99, af_max) = record_section(0);
    let missed: u64 = report.episodes.iter().map(|(_, s)| s.missed).sum();
    let ticks: u64 = report.episodes.iter().map(|(_, s)| s.ticks).sum();
    let frames: u64 = report.saved.iter().map(|s| s.frames).sum();
    let save_latency: Vec<f64> = report.saved.iter().map(|s| s.latency_s * 1e3).collect();
    let commit_ms: Vec<f64> = report.saved.iter().map(|s| s.commit_s * 1e3).collect();
    let spilled: u64 = report
        .saved
        .iter()
        .flat_map(|s| s.spilled.iter().map(|(_, n)| *n))
        .sum();
    let mut enc: Vec<(String, f64)> = Vec::new();
    for s in &report.saved {
        for (k, f) in &s.encode_fps {
            match enc.iter_mut().find(|(n, _)| n == k) {
                Some(e) => e.1 = e.1.min(*f),
                None => enc.push((k.clone(), *f)),
            }
        }
    }
    let max_depth: u64 = report
        .saved
        .iter()
        .flat_map(|s| s.max_queue_depth.iter().map(|(_, n)| *n))
        .max()
        .unwrap_or(0);
    let rss = peak_rss_mb();
    let rate = report
        .episodes
        .iter()
        .map(|(_, s)| s.rate_hz)
        .fold(f64::INFINITY, f64::min);
    let late_p99 = report
        .episodes
        .iter()
        .map(|(_, s)| s.late_start_p99_ms)
        .fold(0.0, f64::max);
    let routes: Vec<serde_json::Value> = report
        .final_routes
        .iter()
        .map(|(k, lane, t)| json!({"camera": k, "lane": lane, "transcoded": t}))
        .collect();
    let out = json!({
        "cameras": n_cams, "camera_inputs": b.camera, "width": b.width, "height": b.height, "fps": b.fps, "seconds": b.seconds,
        "episodes": b.episodes, "vcodec": b.vcodec, "flat_out": b.flat_out,
        "ticks": ticks, "frames_saved": frames, "wall_s": wall,
        "loop_rate_hz_min": if rate.is_finite() { rate } else { 0.0 },
        "add_frame_ms": {"p50": af_p50, "p99": af_p99, "max": af_max},
        "missed_deadlines": missed,
        "tick_start_lateness_p99_ms": late_p99,
        "save_episode_call_ms": report.save_call_ms, "save_latency_ms": save_latency, "commit_ms": commit_ms,
        "encode_fps_min_per_camera": enc.iter().map(|(k, f)| json!({"camera": k, "fps": f})).collect::<Vec<_>>(),
        "max_queue_depth": max_depth, "spilled_frames": spilled,
        "finalize_wait_s": report.finalize_wait_s, "deferred_wait_s": report.deferred_wait_s,
        "last_save_to_complete_s": report.last_save_to_complete_s,
        "final_routes": routes, "video_codecs": codecs,
        "live_codec_cameras": report.live_codec_cameras,
        "cpu_s": {"capture": cpu.capture_s, "live_encoding": cpu.live_encoding_s,
                  "conversion": cpu.conversion_s, "other": cpu.other_s},
        "peak_rss_mb": rss,
        "loop_priority": report.priority,
        "display": b.display, "display_dropped_updates": display_dropped, "display_thumbnails": thumbnails, "display_requests": requests,
    });
    let out = with_stream_figures(out, &report);
    if b.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "reel bench record: {} camera(s) {}x{} @ {} Hz, {} x {:.0} s, {}{}",
            n_cams,
            b.width,
            b.height,
            b.fps,
            b.episodes,
            b.seconds,
            b.vcodec,
            if b.flat_out { ", flat out" } else { "" }
        );
        println!("  ticks / frames saved      {ticks} / {frames}");
        println!("  add_frame p50/p99/max     {af_p50:.3} / {af_p99:.3} / {af_max:.3} ms");
        println!("  missed deadlines          {missed}");
        println!("  tick start lateness p99   {late_p99:.3} ms");
        println!(
            "  save_episode call         {}",
            report
                .save_call_ms
                .iter()
                .map(|x| format!("{x:.3} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  save latency (to commit)  {}",
            save_latency
                .iter()
                .map(|x| format!("{x:.1} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  commit transaction        {}",
            commit_ms
                .iter()
                .map(|x| format!("{x:.1} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  encoder frames/wall s     {}",
            enc.iter()
                .map(|(k, f)| format!("{k}: {f:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("  max queue depth / spilled {max_depth} / {spilled}");
        println!(
            "  finalize waited           {:.2} s (deferred conversion {:.2} s)",
            report.finalize_wait_s, report.deferred_wait_s
        );
        println!(
            "  last save → complete      {:.2} s (final codec: {})",
            report.last_save_to_complete_s,
            codecs.join(", ")
        );
        println!(
            "  final codec per camera    {}",
            report
                .final_routes
                .iter()
                .map(|(k, l, t)| format!("{k}: {l} by its lane, {t} transcoded"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        println!(
            "  CPU s: capture / live / conversion / other   {:.1} / {:.1} / {:.1} / {:.1}",
            cpu.capture_s, cpu.live_encoding_s, cpu.conversion_s, cpu.other_s
        );
        println!("  peak RSS                  {rss:.0} MB");
        println!("  loop priority             {}", report.priority);
        if b.display {
            println!("  live page                 {thumbnails} thumbnails, {requests} requests answered, {display_dropped} updates dropped");
        }
    }
    Ok(())
}
