//! End-to-end tests of cameras through the real FFmpeg path: lavfi sources, an mp4 file made
//! with the ffmpeg CLI, absent devices, bad graphs, and the stall / deliver_fps knobs.
// A test crate sees every dependency of its package and uses few of them.
#![allow(unused_crate_dependencies)]
// Tests unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use reel_capture::{Camera, CameraSpec};

const OPEN: Duration = Duration::from_secs(5);

fn assert_not_solid(f: &reel_core::VideoFrame) {
    let first = &f.data[..3];
    let differing = f.data.chunks_exact(3).filter(|p| p != &first).count();
    assert!(
        differing > f.data.len() / 3 / 10,
        "frame looks like a solid colour ({differing} pixels differ)"
    );
}

#[test]
fn lavfi_testsrc2_delivers_about_30_fps() {
    let spec = CameraSpec::parse("front=lavfi:testsrc2@640x480@30").unwrap();
    let cam = Camera::open(&spec, OPEN).unwrap();
    assert_eq!(cam.name(), "front");
    assert_eq!(cam.spec(), &spec);
    let first = cam.latest().expect("open waits for the first frame");
    let t0 = Instant::now();
    let mut last_seq = first.seq;
    let mut seen = 0u64;
    while t0.elapsed() < Duration::from_secs(1) {
        if let Some(f) = cam.wait_newer(Some(last_seq), Duration::from_millis(200)) {
            assert!(f.seq > last_seq, "seq must increase");
            assert_eq!((f.width, f.height), (640, 480));
            assert_eq!(f.data.len(), 640 * 480 * 3);
            seen += f.seq - last_seq;
            last_seq = f.seq;
        }
    }
    assert!((20..=40).contains(&seen), "{seen} frames in 1 s at 30 fps");
    let f = cam.latest().unwrap();
    assert_not_solid(&f);
    assert!(f.captured_ns >= first.captured_ns);
    let st = cam.stats();
    assert!(st.frames >= seen);
    assert!(
        (25.0..=45.0).contains(&st.mean_interval_ms),
        "mean interval {} ms",
        st.mean_interval_ms
    );
    assert_eq!(st.last_capture_ns, f.captured_ns);
    assert!(cam.error().is_none());
    let t = Instant::now();
    cam.stop();
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "stop took {:?}",
        t.elapsed()
    );
}

#[test]
fn synthetic_cameras_are_distinguishable_and_scaled() {
    // Lavfi graph with options not matching the spec size: the frames are scaled to the spec.
    let spec = CameraSpec::parse("a=lavfi:testsrc2=size=320x240:rate=30@160x120@30").unwrap();
    let a = Camera::open(&spec, OPEN).unwrap();
    let b = Camera::open(&CameraSpec::synthetic("b", 2, 160, 120, 30), OPEN).unwrap();
    let (fa, fb) = (a.latest().unwrap(), b.latest().unwrap());
    assert_eq!(
        (fa.width, fa.height, fa.data.len()),
        (160, 120, 160 * 120 * 3)
    );
    assert_eq!((fb.width, fb.height), (160, 120));
    assert_ne!(fa.data, fb.data);
    assert_not_solid(&fb);
}

#[test]
fn file_input_without_loop_ends_with_all_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let n = 24;
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=48",
        ])
        .args([
            "-frames:v",
            &n.to_string(),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "8",
        ])
        .arg(&path)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success());

    let mut spec = CameraSpec::parse(&format!("sim={}@320x240@48", path.display())).unwrap();
    spec.loop_file = false;
    let cam = Camera::open(&spec, OPEN).unwrap();
    let mut seqs = vec![];
    let mut last = None;
    let t0 = Instant::now();
    while cam.error().is_none() && t0.elapsed() < Duration::from_secs(5) {
        if let Some(f) = cam.wait_newer(last, Duration::from_millis(200)) {
            assert_eq!(f.data.len(), 320 * 240 * 3);
            assert_not_solid(&f);
            seqs.push(f.seq);
            last = Some(f.seq);
        }
    }
    let err = cam.error().expect("end of file is reported");
    assert!(
        err.contains("end of file") && err.contains(&n.to_string()),
        "{err}"
    );
    assert_eq!(cam.stats().frames, n);
    assert_eq!(seqs.last().copied(), Some(n - 1));
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    // 24 frames at 48 fps are paced over ~0.5 s, not dumped at once.
    let st = cam.stats();
    assert!(
        (15.0..=27.0).contains(&st.mean_interval_ms),
        "mean interval {}",
        st.mean_interval_ms
    );
    assert!(cam.wait_newer(last, Duration::from_secs(5)).is_none());
}

#[test]
fn file_input_loops_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=50",
        ])
        .args(["-frames:v", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success());
    let spec = CameraSpec::parse(&format!("loop={}@160x120@50", path.display())).unwrap();
    let cam = Camera::open(&spec, OPEN).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let st = cam.stats();
    assert!(cam.error().is_none(), "{:?}", cam.error());
    assert!(
        st.frames >= 20,
        "looping 10 frames at 50 fps for 0.6 s gave {} frames",
        st.frames
    );
    assert!(
        st.max_interval_ms < 80.0,
        "loop restart gap {} ms",
        st.max_interval_ms
    );
}

#[test]
fn absent_device_fails_naming_the_path() {
    let spec = CameraSpec::parse("wrist=/dev/video9@640x480@30").unwrap();
    let t = Instant::now();
    let err = Camera::open(&spec, Duration::from_secs(3))
        .unwrap_err()
        .to_string();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(
        err.starts_with("camera 'wrist': cannot open /dev/video9"),
        "{err}"
    );
    assert!(err.contains("No such file or directory"), "{err}");
}

#[test]
fn bad_lavfi_graph_fails_naming_the_graph() {
    let spec = CameraSpec::parse("x=lavfi:nosuchsource_xyz@64x64@30").unwrap();
    let err = Camera::open(&spec, Duration::from_secs(3))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("camera 'x'") && err.contains("nosuchsource_xyz"),
        "{err}"
    );

    let missing = CameraSpec::parse("y=/nonexistent/dir/clip.mp4").unwrap();
    let err = Camera::open(&missing, Duration::from_secs(3))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/dir/clip.mp4") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn deliver_fps_25_gives_about_50_frames_in_2_s() {
    let mut spec = CameraSpec::synthetic("slow", 0, 320, 240, 30);
    spec.deliver_fps = Some(25.0);
    let cam = Camera::open(&spec, OPEN).unwrap();
    let f0 = cam.stats().frames;
    std::thread::sleep(Duration::from_secs(2));
    let st = cam.stats();
    let got = st.frames - f0;
    assert!((45..=55).contains(&got), "{got} frames in 2 s at 25 fps");
    assert!(
        (36.0..=44.0).contains(&st.mean_interval_ms),
        "mean interval {}",
        st.mean_interval_ms
    );
}

#[test]
fn stall_shows_in_max_interval() {
    let mut spec = CameraSpec::synthetic("stally", 1, 320, 240, 30);
    spec.stall = Some((Duration::from_millis(300), Duration::from_millis(500)));
    let cam = Camera::open(&spec, OPEN).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Inside the stall: no new frame for a while.
    let during = cam.latest().unwrap().seq;
    assert!(
        cam.wait_newer(Some(during), Duration::from_millis(150))
            .is_none(),
        "frames during the stall"
    );
    std::thread::sleep(Duration::from_millis(500));
    let st = cam.stats();
    assert!(
        st.max_interval_ms >= 450.0 && st.max_interval_ms < 700.0,
        "max interval {}",
        st.max_interval_ms
    );
    // Frames resumed at the normal rate after the stall.
    let after = cam.latest().unwrap();
    assert!(after.seq > during + 5, "no frames after the stall");
}

#[test]
fn measured_rate_and_format_are_reported_after_the_first_second() {
    let mut slow = CameraSpec::parse("slow=lavfi:testsrc2@96x64@30").unwrap();
    slow.apply_fault("fps=10").unwrap();
    let ok = CameraSpec::parse("ok=lavfi:testsrc2@96x64@30").unwrap();
    let (a, b) = (
        Camera::open(&slow, Duration::from_secs(5)).unwrap(),
        Camera::open(&ok, Duration::from_secs(5)).unwrap(),
    );
    let t = Instant::now();
    while (a.negotiated().is_none() || b.negotiated().is_none())
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (na, nb) = (
        a.negotiated().expect("slow reported"),
        b.negotiated().expect("ok reported"),
    );
    assert!(
        na.below_rate && (8.0..=12.0).contains(&na.measured_fps),
        "{na:?}"
    );
    assert!(
        !nb.below_rate && (27.0..=33.0).contains(&nb.measured_fps),
        "{nb:?}"
    );
    assert_eq!((nb.width, nb.height), (96, 64));
    // A device error: the reader stops with a message the loop reports.
    let mut gone = CameraSpec::parse("gone=lavfi:testsrc2@96x64@30").unwrap();
    gone.apply_fault("error-after=0.3").unwrap();
    let c = Camera::open(&gone, Duration::from_secs(5)).unwrap();
    // The fault's clock starts at the first read, not at open.
    std::thread::sleep(Duration::from_millis(500));
    assert!(c.error().is_none(), "failed before the first read");
    assert!(c.latest().is_some());
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        c.error()
            .unwrap_or_default()
            .contains("simulated device error"),
        "{:?}",
        c.error()
    );
    assert!(
        gone.clone().apply_fault("end-file").is_err(),
        "end-file is for files"
    );
    assert!(gone.apply_fault("explode").is_err());
}

/// A lossless 64x48 clip (FFV1, like the footage clips) of `frames` identical frames (colour
/// bars), so that any frame of one camera compares with any frame of another.
fn lossless_clip(dir: &std::path::Path, frames: u32) -> std::path::PathBuf {
    let path = dir.join("clip.mkv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("smptebars=size=64x48:rate=30")
        .args(["-frames:v", &frames.to_string(), "-c:v", "ffv1"])
        .args(["-pix_fmt", "bgr0"])
        .arg(&path)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success());
    path
}

#[test]
fn a_filter_applies_to_every_frame_of_a_looped_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = lossless_clip(dir.path(), 5);
    let plain = Camera::open(
        &CameraSpec::parse(&format!("p={}@64x48@30", path.display())).unwrap(),
        OPEN,
    )
    .unwrap();
    let spec = CameraSpec::parse(&format!("n={}@64x48@30@vf=negate", path.display())).unwrap();
    assert_eq!(spec.filter.as_deref(), Some("negate"));
    let negated = Camera::open(&spec, OPEN).unwrap();
    // Every byte of a filtered frame is 255 minus the plain one's (FFV1 is lossless, so the
    // conversion to RGB adds the same rounding to both).
    let a = plain.wait_newer(None, OPEN).unwrap();
    let b = negated.wait_newer(None, OPEN).unwrap();
    assert_not_solid(&a);
    let off = a
        .data
        .iter()
        .zip(&b.data)
        .filter(|(x, y)| (i32::from(**x) + i32::from(**y) - 255).abs() > 2)
        .count();
    assert_eq!(off, 0, "{off} bytes are not negated");
    // The clip loops through the filter: more frames than the file holds, still negated.
    let later = negated.wait_newer(Some(7), Duration::from_secs(3)).unwrap();
    assert!(later.seq > 7);
    assert!(negated.error().is_none(), "{:?}", negated.error());
}

#[test]
fn a_bad_filter_fails_at_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = lossless_clip(dir.path(), 3);
    let spec = CameraSpec::parse(&format!("x={}@vf=nosuchfilter=3", path.display())).unwrap();
    let e = Camera::open(&spec, OPEN).unwrap_err().to_string();
    assert!(e.contains("nosuchfilter"), "{e}");
    assert!(e.contains("'x'"), "{e}");
}

#[test]
fn request_stop_ends_the_reader_without_consuming_the_camera() {
    let spec = CameraSpec::parse("s=lavfi:testsrc2@64x48@30").unwrap();
    let cam = std::sync::Arc::new(Camera::open(&spec, OPEN).unwrap());
    let last = cam.latest().unwrap();
    cam.request_stop();
    // The reader ends: no newer frame comes, and waiting for one returns at once.
    let t = Instant::now();
    let mut newest = last.seq;
    while let Some(f) = cam.wait_newer(Some(newest), Duration::from_millis(500)) {
        newest = f.seq;
        assert!(t.elapsed() < Duration::from_secs(2), "frames keep coming");
    }
    assert!(cam.latest().is_some(), "the latest frame stays readable");
    assert!(cam.error().is_none(), "a requested stop is not an error");
}
