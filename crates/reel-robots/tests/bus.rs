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
        Script { sweep, started: None, said: Vec::new() }
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
        let mut op = Script::new(Duration::from_millis(3000));
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
        calibrate(&fcfg, &mut Script::new(Duration::from_millis(3000))).unwrap();
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
        assert!(max_err < 25.0, "{follower_t:?} tracks the goals (max error {max_err})");
        let ex = follower.take_episode_extras();
        assert!(ex.iter().any(|(k, _)| k == "robot/read_failures"));
    }
}
