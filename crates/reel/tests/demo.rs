//! `reel demo` and `reel record --demo-video` from the command line: the README's one-liner
//! works with no hardware, SIGTERM finalizes a playable MP4 quickly.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn probe(path: &std::path::Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn durations(p: &str) -> Vec<f64> {
    p.lines()
        .filter_map(|l| l.rsplit(',').next()?.parse().ok())
        .collect()
}

#[test]
fn readme_demo_one_liner_writes_h264_aac() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("demo.mp4");
    run_ok(
        reel()
            .args([
                "demo",
                "--camera",
                "main=lavfi:testsrc2@640x480@30",
                "--camera",
                "wrist=lavfi:testsrc@320x240@30",
                "--audio",
                "lavfi:sine=frequency=1000:sample_rate=48000",
                "--duration",
                "3",
                "--output",
            ])
            .arg(&out),
    );
    let p = probe(&out);
    assert!(p.contains("h264,960,540"), "{p}");
    assert!(p.contains("aac"), "{p}");
    let ds = durations(&p);
    assert_eq!(ds.len(), 2, "{p}");
    assert!(
        (ds[0] - ds[1]).abs() <= 1.0 / 30.0 + 1e-3,
        "video and audio durations agree within a frame: {p}"
    );
    assert!(
        (ds[0] - 3.0).abs() < 0.2,
        "duration follows the wall clock: {p}"
    );
}

#[test]
fn sigterm_finalizes_a_playable_mp4_within_two_seconds() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("live.mp4");
    let mut child = reel()
        .args([
            "demo",
            "--camera",
            "main=lavfi:testsrc2@320x240@30",
            "--audio",
            "lavfi:sine=frequency=440:sample_rate=48000",
            "--output",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let t0 = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let took = t0.elapsed();
    assert!(status.success(), "demo exits cleanly on SIGTERM");
    assert!(took < Duration::from_secs(2), "stopped in {took:?}");
    let p = probe(&out);
    assert!(p.contains("h264") && p.contains("aac"), "{p}");
    assert!(durations(&p).iter().all(|x| *x > 2.0), "{p}");
    assert!(!d.path().join("live.mp4.partial").exists());
}

#[test]
fn record_with_demo_video_writes_both() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    let video = d.path().join("rollout.mp4");
    let mut c = sim(&root, 2, 1, 1.5);
    c.arg("--demo-video").arg(&video).args([
        "--demo-audio",
        "lavfi:sine=frequency=1000:sample_rate=48000",
    ]);
    let out = run_ok(&mut c);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("demo video"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let p = probe(&video);
    assert!(p.contains("h264,960,540") && p.contains("aac"), "{p}");
    assert_eq!(info(&root)["total_episodes"], 1);
    assert_lerobot_loads(&root);
}
