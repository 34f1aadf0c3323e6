//! Real-arm paths end to end, against `reel sim-bus` (no hardware here): leader → follower
//! teleoperation with LeRobot's flags, checked against the simulated servos in LeRobot's own
//! units; corrupted and missing status packets; cameras lost mid-episode; and the bad-input
//! errors (missing port, busy port, absent servo, another robot's calibration, joint limits).

use crate::common::*;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `reel sim-bus` process, killed when dropped.
pub(crate) struct SimGuard {
    child: Child,
    pub(crate) port: String,
}

impl SimGuard {
    pub(crate) fn start(robot: &str, extra: &[&str]) -> SimGuard {
        let mut child = reel()
            .args(["sim-bus", "--robot", robot])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sim-bus");
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        BufReader::new(out)
            .read_line(&mut line)
            .expect("sim-bus prints its port");
        let port = line.trim().to_string();
        assert!(port.starts_with("/dev/pts/"), "sim-bus printed '{port}'");
        SimGuard { child, port }
    }
}

impl Drop for SimGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python with LeRobot and the servo SDKs (the extras directory), or None after a note (a
/// failure under REEL_REQUIRE_ORACLE=1).
fn require_python() -> Option<(PathBuf, String)> {
    let o = reel_testkit::python_with(
        &[
            "scservo_sdk",
            "dynamixel_sdk",
            "serial",
            "deepdiff",
            "lerobot",
            "pandas",
        ],
        "the checks against LeRobot's units",
    )?;
    Some((o.python, reel_testkit::extras().display().to_string()))
}

fn check_against_servos(
    root: &Path,
    follower: (&str, &Path, &Path),
    leader: (&str, &Path, &Path),
) -> Option<serde_json::Value> {
    let (py, extras) = require_python()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/robots_check.py");
    let out = Command::new(py)
        .env("PYTHONPATH", extras)
        .arg(script)
        .arg(root)
        .args([
            follower.0,
            &follower.1.to_string_lossy(),
            &follower.2.to_string_lossy(),
        ])
        .args([
            leader.0,
            &leader.1.to_string_lossy(),
            &leader.2.to_string_lossy(),
        ])
        .output()
        .expect("run robots_check.py");
    assert!(
        out.status.success(),
        "robots_check.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("json"))
}

/// `reel calibrate` with ENTER at the middle prompt and ENTER after a 1.5 s range sweep.
fn calibrate(flag: &str, kind: &str, port: &str, id: &str, dir: &Path) {
    let mut child = reel()
        .arg("calibrate")
        .arg(format!("--{flag}.type={kind}"))
        .arg(format!("--{flag}.port={port}"))
        .arg(format!("--{flag}.id={id}"))
        .arg(format!("--{flag}.calibration_dir={}", dir.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn calibrate");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"\n").expect("enter");
    std::thread::sleep(Duration::from_millis(2000));
    stdin.write_all(b"\n").expect("enter");
    drop(stdin);
    let out = child.wait_with_output().expect("calibrate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "calibrate: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("middle of its range"), "{stdout}");
    assert!(dir.join(format!("{id}.json")).is_file());
}

/// A LeRobot-style `reel record` of one episode from two simulated buses.
pub(crate) fn record_cmd(
    root: &Path,
    f: &SimGuard,
    l: &SimGuard,
    cal: &Path,
    seconds: f64,
) -> Command {
    let mut c = reel();
    c.args(["record", "--no-keys", "--no-fsync"])
        .arg("--robot.type=so101_follower")
        .arg(format!("--robot.port={}", f.port))
        .arg("--robot.id=f1")
        .arg(format!(
            "--robot.calibration_dir={}",
            cal.join("f").display()
        ))
        .arg("--teleop.type=so101_leader")
        .arg(format!("--teleop.port={}", l.port))
        .arg("--teleop.id=l1")
        .arg(format!(
            "--teleop.calibration_dir={}",
            cal.join("l").display()
        ))
        .arg("--dataset.repo_id=test/so101")
        .arg(format!("--dataset.root={}", root.display()))
        .arg("--dataset.num_episodes=1")
        .arg(format!("--dataset.episode_time_s={seconds}"))
        .arg("--dataset.reset_time_s=0")
        .arg("--dataset.single_task=Pick the cube")
        .arg("--display_data=false")
        .args(["--camera", "front=lavfi:testsrc2@96x64@30"]);
    c
}

/// Under `cargo test` (one process, threads) the sessions of this file run one after the
/// other, each driving two simulated servo buses (their own processes) and a camera at 30 Hz;
/// no assertion depends on it (nextest runs each test in its own process anyway).
pub(crate) static SESSIONS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn teleoperation_4s_at_30hz_matches_the_servos_and_loads_in_lerobot() {
    let _serial = SESSIONS.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    let (ft, lt) = (d.path().join("f.trace"), d.path().join("l.trace"));
    let f = SimGuard::start("so101", &["--trace", ft.to_str().unwrap()]);
    let l = SimGuard::start("so101_leader", &["--trace", lt.to_str().unwrap()]);
    let cal = d.path().join("cal");
    calibrate("robot", "so101_follower", &f.port, "f1", &cal.join("f"));
    calibrate("teleop", "so101_leader", &l.port, "l1", &cal.join("l"));
    let root = d.path().join("ds");
    let out = run_ok(record_cmd(&root, &f, &l, &cal, 4.0).env("REEL_LOG", "info"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("saved 1 episode(s), 120 frames"),
        "{stdout}"
    );
    // How many deadlines a loaded machine misses is not this test's claim (the benchmarks'):
    // the figure the episode line prints is the one stored with the episode.
    let missed: u64 = stderr
        .split(" missed deadlines")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no missed-deadlines figure in {stderr}"));
    let info = info(&root);
    assert_eq!(info["robot_type"], "so101_follower");
    assert_eq!(
        info["features"]["observation.state"]["names"][0],
        "shoulder_pan.pos"
    );
    assert_reel_check(&root);
    assert_lerobot_loads(&root);
    let Some(r) = check_against_servos(
        &root,
        ("so101_follower", &ft, &cal.join("f/f1.json")),
        ("so101_leader", &lt, &cal.join("l/l1.json")),
    ) else {
        return;
    };
    assert_eq!(r["rows"], 120, "{r}");
    for k in ["state", "action"] {
        assert_eq!(r[k]["garbage"], 0, "{k}: {r}");
        assert_eq!(
            r[k]["matched"], 120,
            "{k}: every row is a servo reading in LeRobot's units: {r}"
        );
    }
    assert_eq!(r["extras"]["reel/missed_deadlines"][0], missed, "{r}");
}

/// Calibration files written directly (no sweep): body 500..3600, gripper 1000..3200.
pub(crate) fn write_calibration(dir: &Path, id: &str, shoulder_pan: (i64, i64)) {
    let mut m = serde_json::Map::new();
    for (i, n) in [
        "shoulder_pan",
        "shoulder_lift",
        "elbow_flex",
        "wrist_flex",
        "wrist_roll",
        "gripper",
    ]
    .iter()
    .enumerate()
    {
        let (lo, hi) = match *n {
            "wrist_roll" => (0, 4095),
            "gripper" => (1000, 3200),
            "shoulder_pan" => shoulder_pan,
            _ => (500, 3600),
        };
        m.insert(
            n.to_string(),
            serde_json::json!({"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": lo, "range_max": hi}),
        );
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(format!("{id}.json")),
        serde_json::to_string_pretty(&m).unwrap(),
    )
    .unwrap();
}

#[test]
fn one_percent_bad_status_packets_cost_flagged_ticks_not_the_session() {
    let _serial = SESSIONS.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    let (ft, lt) = (d.path().join("f.trace"), d.path().join("l.trace"));
    let f = SimGuard::start(
        "so101",
        &[
            "--corrupt",
            "0.01",
            "--seed",
            "3",
            "--trace",
            ft.to_str().unwrap(),
        ],
    );
    let l = SimGuard::start(
        "so101_leader",
        &[
            "--corrupt",
            "0.01",
            "--seed",
            "4",
            "--trace",
            lt.to_str().unwrap(),
        ],
    );
    let cal = d.path().join("cal");
    write_calibration(&cal.join("f"), "f1", (500, 3600));
    write_calibration(&cal.join("l"), "l1", (500, 3600));
    let root = d.path().join("ds");
    let out = run_ok(&mut record_cmd(&root, &f, &l, &cal, 5.0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("saved 1 episode(s), 150 frames"));
    assert_lerobot_loads(&root);
    let bad = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("P bad"))
            .count() as i64
    };
    let (fbad, lbad) = (bad(&ft), bad(&lt));
    assert!(fbad + lbad > 0, "1 % of status packets went wrong");
    let Some(r) = check_against_servos(
        &root,
        ("so101_follower", &ft, &cal.join("f/f1.json")),
        ("so101_leader", &lt, &cal.join("l/l1.json")),
    ) else {
        return;
    };
    // Every failed sync read the servos saw is counted in the episode, on the right bus (a
    // reply that a loaded machine delivers after the 10 ms packet timeout counts as well, so
    // the episode may count more than the servos spoiled).
    let count = |k: &str| r["extras"][k][0].as_i64().unwrap_or(-1);
    assert!(
        count("reel/robot/read_failures") >= fbad,
        "{fbad} spoiled: {r}"
    );
    assert!(
        count("reel/teleop/read_failures") >= lbad,
        "{lbad} spoiled: {r}"
    );
    for k in ["state", "action"] {
        assert_eq!(r[k]["garbage"], 0, "{k}: no row holds garbage: {r}");
    }
}

#[test]
fn a_camera_lost_mid_episode_is_reported_and_handled() {
    let _serial = SESSIONS.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    // A device error 2.5 s into the first episode (the fault's clock starts at the recording's
    // first read, so a slow start does not move it): reported, the episode ends there (saved)
    // once the frame is older than the watch deadline (0.5 s), the session stops.
    let root = d.path().join("err");
    let out = run_ok(
        sim(&root, 1, 2, 4.0)
            .args(["--camera", "front=lavfi:testsrc2@96x64@30"])
            .args(["--camera-fault", "front=error-after=2.5"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("camera 'front' lost: its reader stopped"),
        "{stderr}"
    );
    assert!(stderr.contains("simulated device error"), "{stderr}");
    let frames = info(&root)["total_frames"].as_u64().unwrap();
    assert_eq!(info(&root)["total_episodes"], 1);
    let figure = |key: &str| {
        let figures = reel_dataset::figures::read(&root).unwrap();
        figures[&0]
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| match v {
                reel_core::extra::ExtraValue::I64(n) => *n as u64,
                other => panic!("{key} is {other:?}"),
            })
            .unwrap_or_else(|| panic!("no {key} among the episode's figures"))
    };
    assert_eq!(figure("camera/front/losses"), 1);
    // The repeated frames between the last real one and the verdict: at most the deadline's
    // worth of ticks (a late loop ticks fewer, never more).
    let stale = figure("camera/front/stale_frames");
    assert!(
        stale <= 17,
        "ended within the deadline of the loss: {stale} stale"
    );
    // The episode ran until the loss: at most 2.5 s of ticks plus the deadline's, and more than
    // the stale ones.
    assert!(
        frames > stale && frames <= 75 + 17 + 2,
        "ended at the loss: {frames} frames, {stale} stale"
    );
    assert_lerobot_loads(&root);

    // A file that ends after 1 s, --on-camera-loss continue: the episode goes on with every
    // repeated frame flagged, and no second episode starts without the camera.
    let clip = d.path().join("clip.mp4");
    let st = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=96x64:rate=30",
            "-t",
            "1",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&clip)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    let root = d.path().join("end");
    let out = run_ok(
        sim(&root, 1, 2, 3.0)
            .arg("--camera")
            .arg(format!("front={}@96x64@30", clip.display()))
            .args([
                "--camera-fault",
                "front=end-file",
                "--on-camera-loss",
                "continue",
            ]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("flagged stale"), "{stderr}");
    assert!(
        stderr.contains("not recording episode 1: camera 'front' is gone"),
        "{stderr}"
    );
    assert_eq!(info(&root)["total_episodes"], 1);
    assert_eq!(info(&root)["total_frames"], 90);
    let figures = reel_dataset::figures::read(&root).unwrap();
    let stale = figures[&0]
        .iter()
        .find(|(k, _)| k == "camera/front/stale_frames")
        .map(|(_, v)| match v {
            reel_core::extra::ExtraValue::I64(n) => *n,
            other => panic!("stale_frames is {other:?}"),
        })
        .expect("camera/front/stale_frames");
    // About 2 of 3 s: the file plays from when it is opened, before the loop's first tick,
    // so a slow start (a loaded machine) flags more; the first tick's frame is always fresh.
    assert!(
        (50..=89).contains(&stale),
        "about 2 of 3 s flagged stale: {stale}"
    );
}

#[test]
fn bad_robot_input_gets_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let cal = d.path().join("cal");
    // A port that does not exist.
    let e = run_err(reel().args([
        "calibrate",
        "--robot.type=so101_follower",
        "--robot.port=/dev/ttyREEL404",
        "--robot.id=x",
    ]));
    assert!(e.contains("port /dev/ttyREEL404 does not exist"), "{e}");
    // A port another program holds.
    let f = SimGuard::start("so101", &[]);
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&f.port)
        .unwrap();
    // SAFETY: flock on a descriptor owned by `held`.
    let locked = unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(locked, 0);
    let e = run_err(
        reel()
            .arg("calibrate")
            .arg("--robot.type=so101_follower")
            .arg(format!("--robot.port={}", f.port))
            .arg("--robot.id=x"),
    );
    assert!(e.contains("is busy"), "{e}");
    drop(held);
    // A servo that does not answer at its id.
    let g = SimGuard::start("so101", &["--absent-id", "3"]);
    let e = run_err(
        reel()
            .arg("calibrate")
            .arg("--robot.type=so101_follower")
            .arg(format!("--robot.port={}", g.port))
            .arg("--robot.id=x"),
    );
    assert!(e.contains("no answer from servo 'elbow_flex' (id 3"), "{e}");
    // A Koch calibration file used for an SO arm.
    let l = SimGuard::start("so101_leader", &[]);
    write_calibration(&cal.join("l"), "l1", (500, 3600));
    write_calibration(&cal.join("f"), "f1", (0, 4095));
    let root = d.path().join("ds");
    let e = run_err(&mut record_cmd(&root, &f, &l, &cal, 1.0));
    assert!(e.contains("Koch"), "{e}");
    // An action beyond the follower's joint limits (its shoulder_pan range is narrow).
    write_calibration(&cal.join("f"), "f1", (1650, 1750));
    let e = run_err(&mut record_cmd(&root, &f, &l, &cal, 3.0));
    assert!(
        e.contains("shoulder_pan.pos") && e.contains("violates the joint's limits"),
        "{e}"
    );
    // Wrong sim-bus options.
    let e = run_err(reel().args(["sim-bus", "--robot", "koch", "--protocol", "feetech"]));
    assert!(e.contains("does not match"), "{e}");
}
