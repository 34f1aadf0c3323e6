//! The 60 s must-show, as a program the lead runs and reports: two `lavfi` cameras
//! through reel-capture (one stalls 2 s at a random moment, one delivers 25 fps instead of 30)
//! and a 1 kHz `sine`, recorded for 60 s; prints what ffprobe sees and whether video duration,
//! audio duration and wall time agree within one frame. Exit status 1 when a check fails.
//!
//! `cargo run --release -p reel-demo --example demo_check -- [SECONDS] [OUTPUT.mp4]`
// A test crate sees every dependency of its package and uses few of them.
#![allow(unused_crate_dependencies)]
// A check program like the tests: a panic is its failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{num, probe_streams, stream};
use reel_capture::{Camera, CameraSpec};
use reel_demo::{AudioInput, DemoConfig, DemoRecorder, FrameSource};

fn main() {
    ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Error);
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let out = std::path::PathBuf::from(
        args.get(2)
            .cloned()
            .unwrap_or_else(|| "demo_check.mp4".into()),
    );
    let stall_at = 5.0 + (reel_core::wall_ns() % 1_000_000) as f64 / 1e6 * (secs - 10.0).max(1.0);
    let mut main = CameraSpec::synthetic("main", 0, 640, 480, 30);
    main.stall = Some((Duration::from_secs_f64(stall_at), Duration::from_secs(2)));
    let mut wrist = CameraSpec::synthetic("wrist", 1, 320, 240, 30);
    wrist.deliver_fps = Some(25.0);
    let open = |s: &CameraSpec| match Camera::open(s, Duration::from_secs(10)) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("camera {}: {e}", s.name);
            std::process::exit(1)
        }
    };
    let cams: Vec<Arc<dyn FrameSource>> = vec![open(&main), open(&wrist)];
    let mut cfg = DemoConfig::new(&out);
    cfg.audio = Some(AudioInput::new(
        "lavfi:sine=frequency=1000:sample_rate=48000",
    ));
    println!("recording {secs} s to {} (main camera stalls 2 s at {stall_at:.2} s; wrist delivers 25 fps)", out.display());
    let began = Instant::now();
    let rec = match DemoRecorder::start(cams, cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("start: {e}");
            std::process::exit(1)
        }
    };
    std::thread::sleep(Duration::from_secs_f64(secs));
    let stop_t = Instant::now();
    let stats = match rec.stop() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stop: {e}");
            std::process::exit(1)
        }
    };
    let wall = began.elapsed().as_secs_f64();
    println!("stop took {:?}", stop_t.elapsed());
    println!("{stats:#?}");
    let streams = probe_streams(&out);
    let v = stream(&streams, "video");
    let a = stream(&streams, "audio");
    let (vdur, adur) = (num(v, "duration"), num(a, "duration"));
    println!(
        "ffprobe: video {} {}x{} {} frames {vdur:.4} s; audio {} {} Hz {} b/s {adur:.4} s; wall (start..stop) {:.4} s, measured {wall:.4} s",
        v["codec_name"], v["width"], v["height"], v["nb_frames"], a["codec_name"], a["sample_rate"], a["bit_rate"], stats.wall_seconds
    );
    let frame = 1.0 / 30.0;
    let checks = [
        ("h264 video", v["codec_name"] == "h264"),
        ("960x540", v["width"] == "960" && v["height"] == "540"),
        ("aac audio", a["codec_name"] == "aac"),
        (
            "video ~ wall within 1 frame",
            (vdur - stats.wall_seconds).abs() <= frame,
        ),
        (
            "audio ~ wall within 1 frame",
            (adur - stats.wall_seconds).abs() <= frame,
        ),
        ("video ~ audio within 1 frame", (vdur - adur).abs() <= frame),
        (
            "stalled camera repeats >= 45",
            stats.cameras[0].repeated_frames >= 45,
        ),
        (
            "25 fps camera repeats > 0",
            stats.cameras[1].repeated_frames > 0,
        ),
    ];
    let mut ok = true;
    for (name, pass) in checks {
        println!("{} {name}", if pass { "PASS" } else { "FAIL" });
        ok &= pass;
    }
    std::process::exit(if ok { 0 } else { 1 });
}
