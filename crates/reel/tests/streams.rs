//! Side streams from the real sources: `reel record --servo-stream-hz 500 --audio-stream
//! lavfi:...` beside a 30 Hz loop (every sample once, on the frames' clock, inside its
//! episode's span), a pulse seen in a decoded camera frame and in both streams within one
//! frame period (library session: bus thread + a 48 kHz source), and kill -9 at seeded
//! moments losing at most the episode in progress of every stream.

use crate::common::*;
use reel_core::{monotonic_ns, SharedFrame, VideoFrame};
use reel_dataset::streams::{read_episode, stream_file, StoredStream};
use reel_record::robot::Robot;
use reel_record::samples::{SampleBlock, SampleData, StreamCutter};
use reel_record::session::FrameSource;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const AUDIO: &str = "lavfi:sine=frequency=440:sample_rate=48000";

fn record_cmd(root: &Path, episodes: u32, seconds: f64, reset: f64) -> std::process::Command {
    let mut c = reel();
    c.args([
        "record",
        "--sim",
        "--no-keys",
        "--no-fsync",
        "--num-cameras",
        "1",
    ])
    .args(["--width", "96", "--height", "64"])
    .arg("--root")
    .arg(root)
    .args(["--num-episodes", &episodes.to_string()])
    .args(["--episode-time-s", &seconds.to_string()])
    .args(["--reset-time-s", &reset.to_string()])
    .args(["--servo-stream-hz", "500", "--audio-stream", AUDIO]);
    c
}

/// Every sample of a 48 kHz stream stamped `t0 + k/48000`: consecutive k, none missing at
/// either end of the span.
fn assert_every_audio_sample_once(a: &StoredStream, ep: u64) {
    let (from, to) = a.span.expect("span stored");
    assert_eq!((a.dtype.as_str(), a.width), ("float32", 2));
    let step = 1e9 / 48_000.0;
    for w in a.t_ns.windows(2) {
        let d = w[1] - w[0];
        assert!(
            d == 20_833 || d == 20_834,
            "episode {ep}: audio gap/duplicate {d} ns"
        );
    }
    let (first, last) = (a.t_ns[0], *a.t_ns.last().unwrap());
    assert!(
        first >= from && last <= to,
        "episode {ep}: outside its span"
    );
    assert!(
        (first - from) as f64 <= step + 1.0,
        "episode {ep}: samples missing at the start"
    );
    assert!(
        (to - last) as f64 <= step + 1.0,
        "episode {ep}: samples missing at the end"
    );
}

#[test]
fn servo_at_500_hz_and_audio_at_48_khz_beside_a_30_hz_loop() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    run_ok(&mut record_cmd(&root, 3, 0.7, 0.2));
    let ticks = reel_dataset::ticks::read_all(&root).unwrap();
    assert_eq!(ticks.len(), 3);
    let mut prev_to = i64::MIN;
    let mut last_servo = i64::MIN;
    for (ep, tk) in ticks.iter().enumerate() {
        let ep = ep as u64;
        let servo = read_episode(&root, "servo", ep).unwrap().unwrap();
        let audio = read_episode(&root, "audio", ep).unwrap().unwrap();
        let (from, to) = servo.span.unwrap();
        assert_eq!(
            audio.span, servo.span,
            "one span per episode for every stream"
        );
        assert!(from > prev_to, "episode {ep}: spans overlap");
        prev_to = to;
        // On the frames' clock: the span holds the episode's ticks (the cut is 20 ms before
        // the end of the record phase) and every frame's capture time lies near it.
        let first_tick = tk.start_ns[0];
        let last_tick = *tk.start_ns.last().unwrap();
        assert!(
            from <= first_tick && to >= first_tick,
            "episode {ep}: span {from}..{to}, ticks from {first_tick}"
        );
        assert!(
            last_tick - to < 60_000_000,
            "episode {ep}: span ends {} ms before the last tick",
            (last_tick - to) / 1_000_000
        );
        assert_eq!((servo.dtype.as_str(), servo.width), ("float32", 6));
        assert!(
            servo.t_ns.windows(2).all(|w| w[1] > w[0]),
            "servo times strictly increase"
        );
        assert!(
            servo.t_ns[0] > last_servo
                && servo.t_ns[0] >= from
                && *servo.t_ns.last().unwrap() <= to
        );
        last_servo = *servo.t_ns.last().unwrap();
        // Far more reads than ticks (the bus rate, not the loop's), every one a real reading.
        assert!(
            servo.t_ns.len() > 3 * tk.len(),
            "episode {ep}: {} servo reads for {} ticks",
            servo.t_ns.len(),
            tk.len()
        );
        assert!(servo.values.iter().all(|v| v.is_finite()));
        assert_every_audio_sample_once(&audio, ep);
    }
    assert!(read_episode(&root, "servo", 3).unwrap().is_none());
    // `reel report` plots both streams of every episode beside its tick figures.
    let html = d.path().join("report.html");
    run_ok(reel().arg("report").arg(&root).arg("-o").arg(&html));
    let page = std::fs::read_to_string(&html).unwrap();
    for ep in 0..3 {
        for s in ["servo", "audio"] {
            assert!(
                page.contains(&format!("ep{ep}-stream-{s}")),
                "episode {ep}: no {s} figure"
            );
        }
    }
    assert!(page.contains("samples of 6 x float32") && page.contains("samples of 2 x float32"));
    assert!(page.contains("shoulder_pan.pos") && page.contains("left"));
    assert_lerobot_loads(&root);
}

/// A camera whose frames turn bright from the pulse on (frames made at 30 Hz on a thread).
struct PulseCamera {
    latest: Mutex<Option<SharedFrame>>,
}

fn lit(pulse: &AtomicU64, t: u64) -> bool {
    let p = pulse.load(Ordering::SeqCst);
    p != 0 && t >= p && t < p + 100_000_000
}

/// A robot whose joint 0 reads 50 during the pulse (0 before and after) and joint 1 counts
/// its reads.
struct PulseRobot {
    names: Vec<String>,
    pulse: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
}

impl Robot for PulseRobot {
    fn name(&self) -> &str {
        "pulse_robot"
    }
    fn joint_names(&self) -> &[String] {
        &self.names
    }
    fn observe(&mut self) -> reel_core::Result<Vec<f32>> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst);
        let on = lit(&self.pulse, monotonic_ns());
        let mut v = vec![0.0; 6];
        v[0] = if on { 50.0 } else { 0.0 };
        v[1] = n as f32;
        Ok(v)
    }
    fn send_action(&mut self, a: &[f32]) -> reel_core::Result<Vec<f32>> {
        Ok(a.to_vec())
    }
}

impl FrameSource for PulseCamera {
    fn name(&self) -> &str {
        "front"
    }
    fn latest(&self) -> Option<SharedFrame> {
        self.latest.lock().unwrap().clone()
    }
    fn error(&self) -> Option<String> {
        None
    }
}

/// Starts the pulse a fixed time into each recorded episode.
struct PulseAt(Arc<AtomicU64>);
impl reel_record::session::Observer for PulseAt {
    fn phase(&mut self, what: &str) {
        if what.starts_with("Recording episode") {
            self.0.store(monotonic_ns() + 200_000_000, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_pulse_in_a_decoded_frame_and_in_both_streams_agrees_within_a_frame_period() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("pulse");
    let pulse = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let cam = Arc::new(PulseCamera {
        latest: Mutex::new(None),
    });
    let (c2, p2, s2) = (cam.clone(), pulse.clone(), stop.clone());
    let cam_thread = std::thread::spawn(move || {
        let mut seq = 0;
        while !s2.load(Ordering::SeqCst) {
            let t = monotonic_ns();
            // Textured (LeRobot's check flags constant frames), bright during the pulse.
            let base: u8 = if lit(&p2, t) { 200 } else { 20 };
            let data = (0..96 * 64 * 3)
                .map(|i| base + ((i / 3) % 96 % 32) as u8)
                .collect();
            let mut f = VideoFrame::new(96, 64, data).unwrap();
            f.captured_ns = t;
            f.seq = seq;
            seq += 1;
            *c2.latest.lock().unwrap() = Some(Arc::new(f));
            std::thread::sleep(Duration::from_millis(33));
        }
    });
    let mut cutter = StreamCutter::new();
    let audio_tx = cutter.sender("audio").unwrap();
    let (p3, s3) = (pulse.clone(), stop.clone());
    // A 48 kHz source stamping sample k at t0 + k/48000, sent in 10 ms blocks as they fall due.
    let audio_thread = std::thread::spawn(move || {
        let t0 = monotonic_ns();
        let mut k: u64 = 0;
        while !s3.load(Ordering::SeqCst) {
            let now = monotonic_ns();
            let mut t = Vec::new();
            let mut v = Vec::new();
            loop {
                let tk = t0 + k * 1_000_000_000 / 48_000;
                if tk > now {
                    break;
                }
                t.push(tk as i64);
                v.push(if lit(&p3, tk) { 1.0f32 } else { 0.0 });
                k += 1;
            }
            if !audio_tx.send(SampleBlock {
                t_ns: t,
                data: SampleData::F32(v),
            }) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    while cam.latest().is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let reads = Arc::new(AtomicU64::new(0));
    let robot = PulseRobot {
        names: reel_record::robot::SO_JOINTS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        pulse: pulse.clone(),
        reads: reads.clone(),
    };
    let servo_tx = cutter.sender("servo").unwrap();
    let mut bus = reel_record::bus::PolledRobot::start(Box::new(robot), 500, servo_tx).unwrap();
    let features =
        reel_record::session::features_for(bus.joint_names(), &[("front".into(), 96, 64)]).unwrap();
    let mut cfg = reel_engine::writer::WriterConfig::new(&root, 30, features);
    cfg.durable = false;
    let req = reel_engine::plan::EncoderRequest::new(96, 64, 1, 30);
    let (writer, _) =
        reel_engine::front::open_writer(cfg, &req, reel_engine::writer::OpenMode::Create).unwrap();
    let mut teleop = reel_record::robot::SimTeleop::default();
    let session = reel_record::session::Session {
        robot: &mut bus,
        teleop: &mut teleop,
        cameras: vec![cam.clone() as Arc<dyn FrameSource>],
        writer,
        cfg: reel_record::session::SessionConfig {
            fps: 30,
            num_episodes: 3,
            episode_time_s: 1.0,
            reset_time_s: 0.2,
            task: "pulse".into(),
            interactive: false,
            realtime: false,
            flat_out: false,
            camera_watch: Default::default(),
        },
        events: reel_record::events::Events::new(),
        streams: Some(cutter),
    };
    let report = session.run(&mut PulseAt(pulse.clone())).unwrap();
    drop(bus);
    stop.store(true, Ordering::SeqCst);
    cam_thread.join().unwrap();
    audio_thread.join().unwrap();

    let servo_counts = report.streams.iter().find(|c| c.name == "servo").unwrap();
    assert!(
        servo_counts.stored + servo_counts.between_episodes + servo_counts.late
            <= reads.load(Ordering::SeqCst)
    );
    let ticks = reel_dataset::ticks::read_all(&root).unwrap();
    let video = root.join("videos/observation.images.front/chunk-000/file-000.mp4");
    let frames: usize = ticks.iter().map(|t| t.len()).sum();
    let dec = reel_media::decode::decode_video(&video, &(0..frames).collect::<Vec<_>>()).unwrap();
    assert_eq!(dec.rgb.len(), frames);
    let mut offset = 0;
    let mut last_read = -1.0f64;
    for (ep, tk) in ticks.iter().enumerate() {
        let bright = (0..tk.len())
            .find(|k| {
                let f = &dec.rgb[offset + k].1;
                f.data.iter().map(|&b| b as u64).sum::<u64>() / f.data.len() as u64 > 125
            })
            .unwrap_or_else(|| panic!("episode {ep}: no bright frame"));
        let cap = tk.cameras[0].captured_ns[bright].unwrap();
        offset += tk.len();
        for (stream, col, width) in [("servo", 0, 6), ("audio", 0, 1)] {
            let s = read_episode(&root, stream, ep as u64).unwrap().unwrap();
            assert_eq!(s.width, width);
            let i = (0..s.t_ns.len())
                .find(|&i| s.values[i * width + col] > 0.0)
                .unwrap();
            let edge = s.t_ns[i];
            assert!(
                (edge - cap).abs() < 33_333_333,
                "episode {ep} {stream}: edge {edge}, frame {cap}"
            );
        }
        // The servo stream is every read of the bus thread in the span, once: joint 1 counts
        // the reads, so an episode's values are consecutive and never repeat across episodes.
        let s = read_episode(&root, "servo", ep as u64).unwrap().unwrap();
        let counter: Vec<f64> = (0..s.t_ns.len()).map(|i| s.values[i * 6 + 1]).collect();
        assert!(counter[0] > last_read, "episode {ep}: reads stored twice");
        assert!(
            counter.windows(2).all(|w| w[1] == w[0] + 1.0),
            "episode {ep}: a read is missing or doubled"
        );
        last_read = *counter.last().unwrap();
    }
    assert_lerobot_loads(&root);
}

#[test]
fn kill_9_at_seeded_moments_loses_at_most_the_episode_in_progress_of_every_stream() {
    let d = tempfile::tempdir().unwrap();
    let rounds: u64 = std::env::var("REEL_STREAM_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("REEL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    eprintln!(
        "stream kill test: {rounds} rounds, seed {seed} (REEL_STREAM_KILLS, REEL_CRASH_SEED)"
    );
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut checked = None;
    for round in 0..rounds {
        let root = d.path().join(format!("kill{round}"));
        let delay = Duration::from_millis(1200 + next() % 3800);
        let mut cmd = record_cmd(&root, 4, 0.6, 0.1);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < delay && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: sending SIGKILL to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        if !root.join("meta/info.json").exists() {
            continue;
        }
        run_ok(reel().args(["check", "--repair"]).arg(&root));
        let total = info(&root)["total_episodes"].as_u64().unwrap();
        eprintln!("round {round}: killed after {delay:?}, {total} episode(s) kept");
        for stream in ["servo", "audio"] {
            for ep in 0..total {
                let s = read_episode(&root, stream, ep)
                    .unwrap_or_else(|e| panic!("round {round} {stream} {ep}: {e}"))
                    .unwrap_or_else(|| {
                        panic!("round {round}: episode {ep} lost its {stream} stream")
                    });
                assert!(!s.t_ns.is_empty() && s.span.is_some());
                if stream == "audio" {
                    assert_every_audio_sample_once(&s, ep);
                }
            }
            for ep in total..total + 2 {
                assert!(
                    !stream_file(&root, stream, ep).exists(),
                    "round {round}: {stream} of uncommitted episode {ep} left behind"
                );
            }
        }
        if total > 0 {
            checked = Some(root.clone());
        }
    }
    if let Some(root) = checked {
        assert_lerobot_loads(&root);
    }
}

#[test]
fn a_follower_on_its_servo_bus_streams_every_successful_read() {
    use crate::robots::{record_cmd as arm_cmd, write_calibration, SimGuard, SESSIONS};
    let _serial = SESSIONS.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    // 2 % bad status packets on the follower's bus: failed reads are counted, never stored.
    let f = SimGuard::start("so101", &["--corrupt", "0.02", "--seed", "5"]);
    let l = SimGuard::start("so101_leader", &[]);
    let cal = d.path().join("cal");
    write_calibration(&cal.join("f"), "f1", (500, 3600));
    write_calibration(&cal.join("l"), "l1", (500, 3600));
    let root = d.path().join("ds");
    let mut cmd = arm_cmd(&root, &f, &l, &cal, 2.0);
    cmd.args(["--servo-stream-hz", "200"]);
    run_ok(&mut cmd);
    let s = read_episode(&root, "servo", 0).unwrap().unwrap();
    let ticks = reel_dataset::ticks::read_all(&root).unwrap();
    assert_eq!((s.dtype.as_str(), s.width), ("float32", 6));
    assert!(s.t_ns.windows(2).all(|w| w[1] > w[0]));
    assert!(
        s.t_ns.len() > 3 * ticks[0].len(),
        "{} reads for {} ticks",
        s.t_ns.len(),
        ticks[0].len()
    );
    // Degrees within the calibrated range (a corrupted reply never becomes a sample).
    assert!(
        s.values.iter().all(|v| v.is_finite() && v.abs() <= 360.0),
        "{:?}",
        &s.values[..12]
    );
    let eps = std::fs::read_to_string(root.join("meta/reel/episodes.jsonl")).unwrap();
    assert!(
        eps.contains("robot/bus_reads") && eps.contains("stream/servo/samples"),
        "{eps}"
    );
    assert_lerobot_loads(&root);
}

#[test]
fn an_audio_stream_input_that_does_not_open_is_refused_before_the_dataset_is_created() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    let missing = d.path().join("no-such-audio.wav");
    let err = run_err(
        reel()
            .args(["record", "--sim", "--no-keys", "--no-fsync"])
            .args(["--num-cameras", "1", "--width", "64", "--height", "48"])
            .args(["--num-episodes", "1", "--episode-time-s", "0.5"])
            .args(["--vcodec", "libx264", "--servo-stream-hz", "200"])
            .arg("--audio-stream")
            .arg(&missing)
            .arg("--root")
            .arg(&root),
    );
    assert!(err.contains("--audio-stream"), "{err}");
    assert!(err.contains("no-such-audio.wav"), "{err}");
    assert!(!root.exists(), "nothing is left behind: {err}");
}
