//! Conformance with LeRobot 0.6.1's own bus code, against the same simulated servos:
//! a calibration file written by LeRobot's `calibrate()` is read by reel and the positions
//! reel computes equal LeRobot's for the same raw registers to the last digit; and the
//! reverse (reel calibrates, LeRobot finds its motors calibrated and agrees on every value).
//!
//! Needs the LeRobot venv and feetech-servo-sdk / dynamixel-sdk (scripts/test.sh installs
//! them into ~/lerobot-extras); without them the test is skipped with a note, and fails under
//! REEL_REQUIRE_ORACLE=1 (CI).

use reel_robots::calibrate::{calibrate, Operator};
use reel_robots::{Arm, ArmConfig, Calibration, Motion, RobotType, SimBus, SimConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn python() -> Option<(PathBuf, String)> {
    let o = reel_testkit::python_with(
        &[
            "scservo_sdk",
            "dynamixel_sdk",
            "serial",
            "deepdiff",
            "lerobot",
        ],
        "the LeRobot bus conformance test",
    )?;
    Some((o.python, reel_testkit::extras().display().to_string()))
}

fn run_py(py: &(PathBuf, String), args: &[&str]) -> Vec<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lerobot_bus.py");
    let out = Command::new(&py.0)
        .env("PYTHONPATH", &py.1)
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "LeRobot {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

struct Script(Duration, Option<Instant>);
impl Operator for Script {
    fn prompt(&mut self, _msg: &str) -> reel_core::Result<String> {
        Ok(String::new())
    }
    fn say(&mut self, _msg: &str) {}
    fn enter_pressed(&mut self) -> reel_core::Result<bool> {
        Ok(self.1.get_or_insert_with(Instant::now).elapsed() >= self.0)
    }
    fn show_ranges(&mut self, _t: &str) {}
}

/// Every read LeRobot printed: reel's normalisation of the same raw values is bit-identical.
fn assert_same_numbers(arm: &Arm, lines: &[serde_json::Value]) -> usize {
    let mut n = 0;
    for l in lines.iter().filter(|l| l.get("raw").is_some()) {
        let raw: Vec<i64> = l["raw"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let theirs: Vec<f64> = l["norm"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().parse::<f64>().unwrap())
            .collect();
        let ours = arm.normalize_all(&raw).unwrap();
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "motor {i}: reel {a:?} vs LeRobot {b:?} for raw {}",
                raw[i]
            );
        }
        n += 1;
    }
    n
}

#[test]
fn calibration_files_and_positions_match_lerobot_both_ways() {
    let Some(py) = python() else { return };
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("cal");
    let pairs = [
        (RobotType::So101Follower, RobotType::So101Leader),
        (RobotType::KochFollower, RobotType::KochLeader),
    ];
    let start = |t: RobotType| {
        let mut sc = SimConfig::new(t);
        sc.motion = Motion::Sine;
        let bus = SimBus::start(sc).unwrap();
        let port = bus.path().to_string_lossy().into_owned();
        (bus, port)
    };
    // reel calibrates the leaders, then they stand still.
    let mut leaders = Vec::new();
    for (_, t) in pairs {
        let (bus, port) = start(t);
        let mut cfg = ArmConfig::new(t, &port, "rl");
        cfg.calibration_dir = Some(dir.join(t.type_name()));
        let out = calibrate(&cfg, &mut Script(Duration::from_millis(1500), None)).unwrap();
        bus.set_motion(Motion::Still);
        leaders.push((bus, port, cfg, out));
    }
    let followers: Vec<_> = pairs.iter().map(|(t, _)| start(*t)).collect();
    // One LeRobot run: it calibrates the followers and reads the leaders with reel's files.
    let mut args: Vec<String> = Vec::new();
    for ((t, _), (_, port)) in pairs.iter().zip(&followers) {
        let d = dir.join(t.type_name()).to_string_lossy().into_owned();
        let job = ["calibrate", t.type_name(), port, "lr", &d, "1.5"];
        args.extend(job.iter().map(|s| s.to_string()));
    }
    for (_, port, cfg, _) in &leaders {
        let d = dir
            .join(cfg.robot.type_name())
            .to_string_lossy()
            .into_owned();
        let job = ["read", cfg.robot.type_name(), port, "rl", &d, "10"];
        args.extend(job.iter().map(|s| s.to_string()));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let lines = run_py(&py, &argv);
    let job = |i: u64| -> Vec<serde_json::Value> {
        lines.iter().filter(|l| l["job"] == i).cloned().collect()
    };

    // LeRobot's files, read by reel: same bytes back, motors already hold them, same numbers.
    for (i, ((t, _), (_, port))) in pairs.iter().zip(&followers).enumerate() {
        let file = dir.join(t.type_name()).join("lr.json");
        let text = std::fs::read_to_string(&file).expect("LeRobot wrote its file");
        let cal = Calibration::parse(&text, "lerobot's").unwrap();
        assert_eq!(cal.to_json(), text, "reel writes LeRobot's bytes");
        let mut cfg = ArmConfig::new(*t, port, "lr");
        cfg.calibration_dir = Some(dir.join(t.type_name()));
        let mut arm = Arm::connect(&cfg).expect("reel connects with LeRobot's file");
        let checked = cal.check_for(*t, arm.motors(), "f").unwrap();
        assert!(arm.motors_hold(&checked).unwrap());
        assert!(assert_same_numbers(&arm, &job(i as u64)) >= 20, "{t:?}");
    }

    // reel's files, read by LeRobot: calibrated, same numbers, and the same live registers.
    for (k, (_bus, _port, cfg, out)) in leaders.iter().enumerate() {
        let lines = job(2 + k as u64);
        assert_eq!(lines[0]["calibrated"], true, "{lines:?}");
        assert_eq!(lines[0]["file"], out.path.to_string_lossy().as_ref());
        let mut arm = Arm::connect(cfg).unwrap();
        assert_eq!(assert_same_numbers(&arm, &lines), 10);
        // The arm stands still: reel reads the very registers LeRobot read last (the Koch
        // leader's gripper is under torque toward its open position, so it is left out).
        let last = lines.iter().rev().find(|l| l.get("raw").is_some()).unwrap();
        let theirs: Vec<f64> = last["norm"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().parse().unwrap())
            .collect();
        let raw: Vec<i64> = last["raw"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let body = if cfg.robot == RobotType::KochLeader {
            5
        } else {
            6
        };
        assert_eq!(arm.read_raw().unwrap()[..body], raw[..body]);
        assert_eq!(arm.read_positions().unwrap()[..body], theirs[..body]);
    }
}
