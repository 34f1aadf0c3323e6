//! The drivers against the bus simulator, in process: handshake, LeRobot's calibration
//! procedure, positions, goals, retries under corrupted and missing status packets, and the
//! bad-input errors (missing port, busy port, absent servo, wrong calibration file, limits).

use reel_record::robot::{Robot, Teleop};
use reel_robots::calibrate::{calibrate, Operator};
use reel_robots::{ArmConfig, Follower, Leader, Motion, RobotType, SimBus, SimConfig};
use std::time::{Duration, Instant};

/// Presses ENTER at once for prompts, and `sweep` after the range recording starts.
struct Script {
    sweep: Duration,
    started: Option<Instant>,
    said: Vec<String>,
}

impl Script {
    fn new(sweep: Duration) -> Script {
        Script {
            sweep,
            started: None,
            said: Vec::new(),
        }
    }
}

impl Operator for Script {
    fn prompt(&mut self, msg: &str) -> reel_core::Result<String> {
        self.said.push(msg.to_string());
        Ok(String::new())
    }
    fn say(&mut self, msg: &str) {
        self.said.push(msg.to_string());
    }
    fn enter_pressed(&mut self) -> reel_core::Result<bool> {
        let t = *self.started.get_or_insert_with(Instant::now);
        Ok(t.elapsed() >= self.sweep)
    }
    fn show_ranges(&mut self, _table: &str) {}
}

fn sim(robot: RobotType, motion: Motion) -> SimBus {
    let mut c = SimConfig::new(robot);
    c.motion = motion;
    SimBus::start(c).expect("start sim")
}

fn cfg(robot: RobotType, bus: &SimBus, dir: &std::path::Path) -> ArmConfig {
    let mut c = ArmConfig::new(robot, &bus.path().to_string_lossy(), "test");
    c.calibration_dir = Some(dir.to_path_buf());
    c
}

#[test]
fn calibrate_then_teleoperate_so101_and_koch() {
    for (leader_t, follower_t) in [
        (RobotType::So101Leader, RobotType::So101Follower),
        (RobotType::KochLeader, RobotType::KochFollower),
    ] {
        let d = tempfile::tempdir().unwrap();
        let lbus = sim(leader_t, Motion::Sine);
        let fbus = sim(follower_t, Motion::Sine);
        let lcfg = cfg(leader_t, &lbus, &d.path().join("l"));
        let fcfg = cfg(follower_t, &fbus, &d.path().join("f"));
        let mut op = Script::new(Duration::from_millis(2000));
        let out = calibrate(&lcfg, &mut op).unwrap();
        assert!(out.path.is_file());
        assert!(op.said.iter().any(|s| s.contains("middle of its range")));
        let c = &out.calibration;
        assert_eq!(c.motors.len(), 6);
        for (n, m) in &c.motors {
            assert!(m.range_min < m.range_max, "{n}: {m:?}");
        }
        if leader_t == RobotType::KochLeader {
            assert_eq!(c.get("elbow_flex").unwrap().drive_mode, 1);
        }
        calibrate(&fcfg, &mut Script::new(Duration::from_millis(2000))).unwrap();
        let mut leader = Leader::connect(&lcfg).unwrap();
        let mut follower = Follower::connect(&fcfg).unwrap();
        assert_eq!(follower.joint_names()[0], "shoulder_pan.pos");
        let mut max_err = 0f32;
        for i in 0..90 {
            let obs = follower.observe().unwrap();
            let a = leader.action(0.0, &obs).unwrap();
            // The follower's own range may be narrower than the leader's: stay inside it.
            let a: Vec<f32> = a.iter().map(|v| v * 0.5).collect();
            let sent = follower.send_action(&a).unwrap();
            assert_eq!(sent.len(), 6);
            std::thread::sleep(Duration::from_millis(10));
            if i > 60 {
                let obs = follower.observe().unwrap();
                for (o, s) in obs.iter().zip(&sent) {
                    max_err = max_err.max((o - s).abs());
                }
            }
        }
        assert!(
            max_err < 25.0,
            "{follower_t:?} tracks the goals (max error {max_err})"
        );
        let ex = follower.take_episode_extras();
        assert!(ex.iter().any(|(k, _)| k == "robot/read_failures"));
    }
}

#[test]
fn goals_are_checked_clamped_and_capped() {
    let d = tempfile::tempdir().unwrap();
    let bus = sim(RobotType::So101Follower, Motion::Still);
    let mut c = cfg(RobotType::So101Follower, &bus, d.path());
    calibrate(&c, &mut Script::new(Duration::from_millis(0))).unwrap_err();
    // A still arm cannot be calibrated: every joint has min == max.
    bus.set_motion(Motion::Sine);
    calibrate(&c, &mut Script::new(Duration::from_millis(2000))).unwrap();
    c.max_relative_target = Some(reel_robots::MaxRelative::All(5.0));
    let mut f = Follower::connect(&c).unwrap();
    let obs = f.observe().unwrap();
    // max_relative_target: at most 5 units from the present position.
    let far: Vec<f32> = obs.iter().map(|v| v + 20.0).collect();
    let sent = f.send_action(&far).unwrap();
    for (s, o) in sent.iter().zip(&obs) {
        assert!((s - o).abs() <= 5.0 + 1e-3, "{s} vs {o}");
    }
    let e = f.send_action(&[f32::NAN; 6]).unwrap_err().to_string();
    assert!(e.contains("not a number"), "{e}");
    let mut wild = obs.clone();
    wild[2] = 1000.0;
    let e = f.send_action(&wild).unwrap_err().to_string();
    assert!(e.contains("elbow_flex.pos") && e.contains("limits"), "{e}");
    let e = f.send_action(&[0.0; 3]).unwrap_err().to_string();
    assert!(e.contains("6 joints"), "{e}");
    let ex = f.take_episode_extras();
    let clamped = ex
        .iter()
        .find(|(k, _)| k == "robot/clamped_actions")
        .unwrap();
    // Six capped by max_relative_target (plus any joint pushed past its range).
    match clamped.1 {
        reel_core::extra::ExtraValue::I64(n) => assert!(n >= 6, "{n}"),
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn corrupted_replies_are_retried_within_the_tick() {
    let d = tempfile::tempdir().unwrap();
    let clean = sim(RobotType::So101Leader, Motion::Sine);
    let c = cfg(RobotType::So101Leader, &clean, d.path());
    calibrate(&c, &mut Script::new(Duration::from_millis(2000))).unwrap();
    drop(clean);
    let mut sc = SimConfig::new(RobotType::So101Leader);
    sc.corrupt = 0.05;
    let bad = SimBus::start(sc).unwrap();
    let c = cfg(RobotType::So101Leader, &bad, d.path());
    let mut l = Leader::connect(&c).unwrap();
    for _ in 0..200 {
        let a = l.action(0.0, &[]).unwrap();
        assert!(a.iter().all(|v| v.is_finite() && v.abs() <= 180.0), "{a:?}");
    }
    let ex = l.take_episode_extras();
    let get = |k: &str| {
        ex.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let failures = match get("teleop/read_failures") {
        reel_core::extra::ExtraValue::I64(n) => n,
        other => panic!("{other:?}"),
    };
    let st = bad.stats();
    assert!(st.corrupted + st.dropped > 0);
    assert!(
        failures > 0,
        "5 % of replies went wrong, {failures} failed reads counted"
    );
}
