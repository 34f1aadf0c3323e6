//! End-to-end checks of demo recordings: layout pixels, wall-clock lock with stalling and slow
//! cameras, A/V sync, stop with a never-ending audio input, an encoder behind at stop (cut, not
//! lost), and an injected failure. The tests
//! of this file run in parallel (one binary), so the long ones overlap.
// A test crate sees every dependency of its package and uses few of them.
#![allow(unused_crate_dependencies)]
// Tests unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use reel_capture::{Camera, CameraSpec};
use reel_demo::{AudioInput, DemoConfig, DemoRecorder, FrameSource, Layout};

fn px(frame: &[u8], w: u32, x: u32, y: u32) -> [u8; 3] {
    let i = ((y * w + x) * 3) as usize;
    [frame[i], frame[i + 1], frame[i + 2]]
}

fn close(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
    a.iter()
        .zip(b.iter())
        .all(|(&x, &y)| (x as i32 - y as i32).abs() <= tol)
}

#[test]
fn pip_layout_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pip.mp4");
    let red = [200, 30, 30];
    let blue = [30, 30, 200];
    let cams = vec![
        SolidSource::shared("main", 640, 480, red),
        SolidSource::shared("wrist", 320, 240, blue),
    ];
    let mut cfg = DemoConfig::new(&out);
    cfg.crf = 10;
    cfg.video_delay = Duration::from_millis(50);
    let rec = DemoRecorder::start(cams, cfg.clone()).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let stats = rec.stop().unwrap();
    assert!(stats.frames_written >= 15, "{stats:?}");
    let (w, h) = (960u32, 540u32);
    let frames = decode_rgb(&out, w, h);
    let f = &frames[frames.len() / 2];
    // Inset (with border) occupies [x0, x0+244) x [y0, y0+244) at the bottom-right, 16 px margin.
    let outer = cfg.inset_size + 2 * cfg.border_px;
    let (x0, y0) = (w - outer - cfg.inset_margin, h - outer - cfg.inset_margin);
    assert_eq!((x0, y0), (700, 280));
    let white = [255, 255, 255];
    // Inset interior is blue.
    for (x, y) in [
        (x0 + 4, y0 + 4),
        (x0 + 122, y0 + 122),
        (x0 + outer - 5, y0 + outer - 5),
    ] {
        assert!(
            close(px(f, w, x, y), blue, 12),
            "inset at ({x},{y}) = {:?}",
            px(f, w, x, y)
        );
    }
    // The 2 px border is white on all four sides (middle of each side; 1 px in from the edge).
    for (x, y) in [
        (x0 + 122, y0),
        (x0 + 122, y0 + 1),
        (x0, y0 + 122),
        (x0 + outer - 1, y0 + 122),
        (x0 + 122, y0 + outer - 1),
    ] {
        assert!(
            close(px(f, w, x, y), white, 40),
            "border at ({x},{y}) = {:?}",
            px(f, w, x, y)
        );
    }
    // Main camera everywhere else: corners, centre, the margin right/below the inset.
    for (x, y) in [
        (0, 0),
        (w - 1, 0),
        (0, h - 1),
        (w - 1, h - 1),
        (w / 2, h / 2),
        (x0 - 4, y0 + 122),
        (w - 6, y0 + 122),
        (x0 + 122, h - 6),
        (x0 + 122, y0 - 4),
    ] {
        assert!(
            close(px(f, w, x, y), red, 12),
            "main at ({x},{y}) = {:?}",
            px(f, w, x, y)
        );
    }
    // Exactly one colour per region: count pixels that are neither red, blue nor white-ish.
    let blue_count = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| close(px(f, w, x, y), blue, 12))
        .count();
    let side = cfg.inset_size as usize;
    assert!(
        (blue_count as i64 - (side * side) as i64).abs() < (4 * side) as i64,
        "blue pixels {blue_count}"
    );
}

#[test]
fn grid_layout_and_no_audio() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("grid.mp4");
    let cams = vec![
        SolidSource::shared("a", 64, 48, [250, 0, 0]),
        SolidSource::shared("b", 64, 48, [0, 250, 0]),
        SolidSource::shared("c", 64, 48, [0, 0, 250]),
    ];
    let mut cfg = DemoConfig::new(&out);
    cfg.layout = "grid".parse::<Layout>().unwrap();
    cfg.width = 640;
    cfg.height = 360;
    cfg.crf = 10;
    cfg.video_delay = Duration::from_millis(50);
    let rec = DemoRecorder::start(cams, cfg).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    rec.stop().unwrap();
    let streams = probe_streams(&out);
    assert_eq!(
        streams.len(),
        1,
        "--no-audio must give a video-only file: {streams:?}"
    );
    let frames = decode_rgb(&out, 640, 360);
    let f = frames.last().unwrap();
    // 2x2 grid of 320x180 cells; the fourth is black.
    assert!(close(px(f, 640, 160, 90), [250, 0, 0], 16));
    assert!(close(px(f, 640, 480, 90), [0, 250, 0], 16));
    assert!(close(px(f, 640, 160, 270), [0, 0, 250], 16));
    assert!(close(px(f, 640, 480, 270), [0, 0, 0], 16));
}

#[test]
fn wall_clock_lock_with_stalling_and_slow_cameras() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo.mp4");
    // Stall at a "random" moment between 3 and 13 s.
    let at = 3.0 + (reel_core::wall_ns() % 10_000) as f64 / 1000.0;
    let mut main = CameraSpec::synthetic("main", 0, 640, 480, 30);
    main.stall = Some((Duration::from_secs_f64(at), Duration::from_secs(2)));
    let mut wrist = CameraSpec::synthetic("wrist", 1, 320, 240, 30);
    wrist.deliver_fps = Some(25.0);
    let main = Arc::new(Camera::open(&main, Duration::from_secs(10)).unwrap());
    let wrist = Arc::new(Camera::open(&wrist, Duration::from_secs(10)).unwrap());
    let cams: Vec<Arc<dyn FrameSource>> = vec![main.clone(), wrist.clone()];
    let mut cfg = DemoConfig::new(&out);
    cfg.audio = Some(AudioInput::new(
        "lavfi:sine=frequency=1000:sample_rate=48000",
    ));
    let began = Instant::now();
    let rec = DemoRecorder::start(cams, cfg).unwrap();
    // Pauses of "the control loop" do not matter: just sleep.
    std::thread::sleep(Duration::from_secs(20));
    let stats = rec.stop().unwrap();
    let wall = began.elapsed().as_secs_f64();
    let frame = 1.0 / 30.0;
    eprintln!("{stats:#?}");
    let streams = probe_streams(&out);
    let v = stream(&streams, "video");
    let a = stream(&streams, "audio");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!((num(v, "width"), num(v, "height")), (960.0, 540.0));
    assert_eq!(a["codec_name"], "aac");
    assert_eq!(num(a, "sample_rate"), 48000.0);
    let vdur = num(v, "duration");
    let adur = num(a, "duration");
    // The video covers the wall clock: all of it, or (an encoder still behind at the stop
    // deadline on a loaded machine) up to the frames the stop cut, which it counts.
    let covered = vdur + stats.frames_cut as f64 * frame;
    assert!(
        (covered - stats.wall_seconds).abs() <= frame,
        "video {vdur} + {} cut frames vs wall {}",
        stats.frames_cut,
        stats.wall_seconds
    );
    assert!((vdur - adur).abs() <= frame, "video {vdur} vs audio {adur}");
    assert!(
        stats.wall_seconds <= wall && stats.wall_seconds > wall - 0.5,
        "stats wall {} vs measured {wall}",
        stats.wall_seconds
    );
    assert_eq!(num(v, "nb_frames") as u64, stats.frames_written);
    // The stalled camera repeated about 2 s worth of frames; the 25 fps one about 5 per second.
    let (m, w) = (&stats.cameras[0], &stats.cameras[1]);
    assert!(m.repeated_frames >= 45, "stalled camera repeats {m:?}");
    assert!(
        w.repeated_frames >= 60 && w.repeated_frames <= 200,
        "25 fps camera repeats {w:?}"
    );
    assert!((stats.audio_seconds - stats.video_seconds).abs() <= frame);
    assert!(!dir.path().join("demo.mp4.partial").exists());
    let _ = (main, wrist);
}

#[test]
fn av_sync_flash_and_beep_30s() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sync.mp4");
    let src = FlashSource::new(30, 100_000_000);
    let mut cfg = DemoConfig::new(&out);
    cfg.inset_camera = None;
    cfg.audio = Some(AudioInput::new(BEEP_AUDIO));
    let rec = DemoRecorder::start(vec![src.clone() as Arc<dyn FrameSource>], cfg).unwrap();
    src.epoch.store(rec.t0_ns(), Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(30));
    rec.stop().unwrap();
    let flashes = flash_onsets(&out, 30.0);
    let beeps = beep_onsets(&out);
    assert!(
        flashes.len() >= 28 && beeps.len() >= 28,
        "flashes {flashes:?} beeps {beeps:?}"
    );
    let offsets = av_offsets(&flashes, &beeps);
    eprintln!("flash - beep offsets: {offsets:?}");
    let frame = 1.0 / 30.0;
    let checked: Vec<_> = offsets
        .iter()
        .take(3)
        .chain(offsets.iter().rev().take(3))
        .collect();
    for (t, d) in checked {
        assert!(
            d.abs() <= frame + 1e-6,
            "flash at {t:.3}s is {d:+.4}s from its beep"
        );
    }
}

/// Writes a WAV header announcing a huge data chunk, 0.5 s of tone, then keeps the pipe open
/// without writing: a reader blocks forever, like a live input.
fn blocking_fifo(path: &std::path::Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let rate = 48_000u32;
        let mut hdr = Vec::new();
        hdr.extend_from_slice(b"RIFF");
        hdr.extend_from_slice(&u32::MAX.to_le_bytes());
        hdr.extend_from_slice(b"WAVEfmt ");
        hdr.extend_from_slice(&16u32.to_le_bytes());
        hdr.extend_from_slice(&1u16.to_le_bytes()); // PCM
        hdr.extend_from_slice(&1u16.to_le_bytes()); // mono
        hdr.extend_from_slice(&rate.to_le_bytes());
        hdr.extend_from_slice(&(rate * 2).to_le_bytes());
        hdr.extend_from_slice(&2u16.to_le_bytes());
        hdr.extend_from_slice(&16u16.to_le_bytes());
        hdr.extend_from_slice(b"data");
        hdr.extend_from_slice(&(u32::MAX - 64).to_le_bytes());
        f.write_all(&hdr).unwrap();
        let tone: Vec<u8> = (0..rate / 2)
            .flat_map(|i| (((i as f32 * 0.13).sin() * 8000.0) as i16).to_le_bytes())
            .collect();
        let _ = f.write_all(&tone);
        let _ = f.flush();
        std::thread::sleep(hold);
    })
}

#[test]
fn stop_with_blocking_audio_input_is_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stop.mp4");
    let fifo = dir.path().join("live.wav");
    let writer = blocking_fifo(&fifo, Duration::from_secs(5));
    let cams = vec![SolidSource::shared("main", 320, 240, [90, 90, 90])];
    let mut cfg = DemoConfig::new(&out);
    cfg.inset_camera = None;
    cfg.audio = Some(AudioInput::new(fifo.to_str().unwrap()));
    let rec = DemoRecorder::start(cams, cfg).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let stats = rec.stop().unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    let streams = probe_streams(&out);
    let v = stream(&streams, "video");
    let a = stream(&streams, "audio");
    assert!(
        num(v, "duration") > 1.5 && num(a, "duration") > 1.5,
        "{streams:?}"
    );
    assert!((num(v, "duration") - num(a, "duration")).abs() <= 1.0 / 30.0);
    // 0.5 s of tone, the rest silence.
    assert!(stats.audio_padded_samples > 0, "{stats:?}");
    writer.join().unwrap();
}

#[test]
fn injected_failure_is_reported_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fail.mp4");
    let cams = vec![SolidSource::shared("main", 320, 240, [90, 90, 90])];
    let mut cfg = DemoConfig::new(&out);
    cfg.inset_camera = None;
    cfg.audio = Some(AudioInput::new(
        "lavfi:sine=frequency=1000:sample_rate=48000",
    ));
    cfg.fail_after_frames = Some(5);
    cfg.video_delay = Duration::from_millis(20);
    let rec = DemoRecorder::start(cams, cfg).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(rec.failed().unwrap().contains("injected failure"));
    assert!(rec
        .stats()
        .errors
        .iter()
        .any(|e| e.contains("injected failure")));
    let err = rec.stop().unwrap_err().to_string();
    assert!(
        err.contains("demo compositor thread") && err.contains("injected failure after 5 frames"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "a failed recording must not leave {}",
        out.display()
    );
    assert!(!dir.path().join("fail.mp4.partial").exists());
}

#[test]
fn bad_config_and_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cams = || vec![SolidSource::shared("main", 64, 48, [0, 0, 0])];
    let mut cfg = DemoConfig::new(dir.path().join("x.mp4"));
    let e = DemoRecorder::start(cams(), cfg.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("inset camera index 1"), "{e}");
    cfg.inset_camera = None;
    cfg.vcodec = "nope264".into();
    let e = DemoRecorder::start(cams(), cfg.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nope264"), "{e}");
    cfg.vcodec = "libx264".into();
    cfg.audio = Some(AudioInput::new("/nonexistent/a.wav"));
    let e = DemoRecorder::start(cams(), cfg.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("/nonexistent/a.wav"), "{e}");
    assert!(!dir.path().join("x.mp4").exists() && !dir.path().join("x.mp4.partial").exists());
    assert!("diagonal".parse::<Layout>().is_err());
}

#[test]
fn an_encoder_behind_at_the_stop_deadline_is_cut_not_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("behind.mp4");
    let cams = vec![SolidSource::shared("main", 320, 240, [90, 90, 90])];
    let mut cfg = DemoConfig::new(&out);
    cfg.inset_camera = None;
    cfg.audio = Some(AudioInput::new(
        "lavfi:sine=frequency=1000:sample_rate=48000",
    ));
    // An encoder at half the wall clock's rate (injected, so the verdict does not depend on
    // how busy the machine is): after 4 s about 60 of 120 frames are written.
    cfg.slow_frames = Some(Duration::from_millis(66));
    // Long enough for the cut file's flush (the encoder's few delayed frames, slow too) and
    // trailer on a busy machine; far too short to encode the ~60 frames still owed.
    cfg.stop_deadline = Duration::from_millis(1500);
    cfg.video_delay = Duration::from_millis(20);
    let rec = DemoRecorder::start(cams, cfg).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let asked = Instant::now();
    let stats = rec.stop().unwrap();
    let took = asked.elapsed();
    eprintln!("{stats:#?} (stop took {took:?})");
    let frame = 1.0 / 30.0;
    assert!(stats.frames_cut > 0, "nothing cut: {stats:?}");
    // What was written plus what was cut is the whole recording.
    let total = stats.frames_written + stats.frames_cut;
    assert!(
        (total as f64 * frame - stats.wall_seconds).abs() <= 2.0 * frame,
        "{} written + {} cut vs {} s",
        stats.frames_written,
        stats.frames_cut,
        stats.wall_seconds
    );
    // At most one frame per 66 ms was written, over the 4 s and the 1.5 s deadline.
    assert!(stats.frames_written <= 84, "{stats:?}");
    // The file is there, complete, with the audio cut to the video's end.
    assert!(out.is_file() && !dir.path().join("behind.mp4.partial").exists());
    let streams = probe_streams(&out);
    let v = stream(&streams, "video");
    let a = stream(&streams, "audio");
    assert_eq!(num(v, "nb_frames") as u64, stats.frames_written);
    let (vdur, adur) = (num(v, "duration"), num(a, "duration"));
    assert!((vdur - adur).abs() <= frame, "video {vdur} vs audio {adur}");
    assert!(
        (stats.audio_seconds - stats.video_seconds).abs() <= frame,
        "{stats:?}"
    );
    // The stop waited one deadline for the encoder, then the cut file's flush and trailer.
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
}
