//! The 5-minute A/V sync must-show: a camera that flashes white during the first 0.1 s of
//! every second (its frames delivered 100 ms late, like a real camera) and a `lavfi` `aevalsrc`
//! that beeps in the same windows, both generated from the recorder's clock. Prints the offset
//! (flash - beep) of every flash in the output, and checks the first and last three are within
//! one frame. Exit status 1 when a check fails.
//!
//! `cargo run --release -p reel-demo --example av_sync -- [SECONDS] [OUTPUT.mp4]`
// A test crate sees every dependency of its package and uses few of them.
#![allow(unused_crate_dependencies)]
// A check program like the tests: a panic is its failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{av_offsets, beep_onsets, flash_onsets, FlashSource, BEEP_AUDIO};
use reel_demo::{AudioInput, DemoConfig, DemoRecorder, FrameSource};

fn main() {
    ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Error);
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(300.0);
    let out =
        std::path::PathBuf::from(args.get(2).cloned().unwrap_or_else(|| "av_sync.mp4".into()));
    let src = FlashSource::new(30, 100_000_000);
    let mut cfg = DemoConfig::new(&out);
    cfg.inset_camera = None;
    cfg.audio = Some(AudioInput::new(BEEP_AUDIO));
    println!("recording {secs} s to {}", out.display());
    let rec = match DemoRecorder::start(vec![src.clone() as Arc<dyn FrameSource>], cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("start: {e}");
            std::process::exit(1)
        }
    };
    src.epoch.store(rec.t0_ns(), Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs_f64(secs));
    match rec.stop() {
        Ok(s) => println!(
            "video {:.4} s, audio {:.4} s, wall {:.4} s",
            s.video_seconds, s.audio_seconds, s.wall_seconds
        ),
        Err(e) => {
            eprintln!("stop: {e}");
            std::process::exit(1)
        }
    }
    let offsets = av_offsets(&flash_onsets(&out, 30.0), &beep_onsets(&out));
    for (t, d) in &offsets {
        println!("flash at {t:8.3} s: flash - beep = {:+7.2} ms", d * 1000.0);
    }
    let frame = 1.0 / 30.0 + 1e-6;
    let n = offsets.len();
    let ok = n as f64 >= secs - 2.0
        && offsets
            .iter()
            .take(3)
            .chain(offsets.iter().skip(n.saturating_sub(3)))
            .all(|(_, d)| d.abs() <= frame);
    let worst = offsets.iter().map(|(_, d)| d.abs()).fold(0.0, f64::max);
    println!(
        "{} flashes, worst |offset| {:.2} ms: {}",
        n,
        worst * 1000.0,
        if ok { "PASS" } else { "FAIL" }
    );
    std::process::exit(if ok { 0 } else { 1 });
}
