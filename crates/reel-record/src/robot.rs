//! The robot and teleoperator traits, and the simulated robot that implements them.
//!
//! A real robot driver implements [`Robot`] exactly like [`SimRobot`] does: the session
//! cannot tell them apart.

use reel_core::extra::ExtraValue;
use reel_core::{Error, Result};

/// A robot arm: reads its joint state, takes joint targets.
pub trait Robot: Send {
    /// Robot type written to `info.json` (`robot_type`).
    fn name(&self) -> &str;
    /// One name per joint, e.g. `shoulder_pan.pos`.
    fn joint_names(&self) -> &[String];
    /// Current joint positions (one per joint).
    fn observe(&mut self) -> Result<Vec<f32>>;
    /// Sends joint targets; returns what was actually sent (after clipping).
    fn send_action(&mut self, action: &[f32]) -> Result<Vec<f32>>;
    /// One read of the joint positions as it came off the bus: `None` when that read
    /// failed (counted by the robot; the bus thread of [`crate::bus`] tries again at its
    /// next slot), never a kept earlier reading. The default is [`observe`](Self::observe)
    /// (a robot whose reads cannot fail on their own, as the simulated arm).
    fn read_fresh(&mut self) -> Result<Option<Vec<f32>>> {
        self.observe().map(Some)
    }
    /// Per-episode figures (bus read failures, stale observations, ...), stored as
    /// `reel/<name>` columns of the episodes table. The session calls it when an episode
    /// starts (dropping what the reset phase counted) and when it is saved.
    fn take_episode_extras(&mut self) -> Vec<(String, ExtraValue)> {
        Vec::new()
    }
}

/// Something that produces actions: a leader arm, a gamepad, a policy.
pub trait Teleop: Send {
    /// The action for this tick (`t` = seconds since the session started).
    fn action(&mut self, t: f64, observation: &[f32]) -> Result<Vec<f32>>;
    /// Per-episode figures, as [`Robot::take_episode_extras`].
    fn take_episode_extras(&mut self) -> Vec<(String, ExtraValue)> {
        Vec::new()
    }
}

/// The joints of an SO-100/101 follower, the most common LeRobot arm.
pub const SO_JOINTS: [&str; 6] = [
    "shoulder_pan.pos",
    "shoulder_lift.pos",
    "elbow_flex.pos",
    "wrist_flex.pos",
    "wrist_roll.pos",
    "gripper.pos",
];

/// A simulated 6-joint arm: each joint follows its target with a first-order lag and a
/// velocity limit, within joint limits, so motion is smooth whatever the target does.
pub struct SimRobot {
    names: Vec<String>,
    pos: Vec<f32>,
    target: Vec<f32>,
    last_t: Option<std::time::Instant>,
    limits: (f32, f32),
}

impl SimRobot {
    pub fn new() -> SimRobot {
        SimRobot {
            names: SO_JOINTS.iter().map(|s| s.to_string()).collect(),
            pos: vec![0.0; 6],
            target: vec![0.0; 6],
            last_t: None,
            limits: (-100.0, 100.0),
        }
    }
    fn integrate(&mut self) {
        let now = std::time::Instant::now();
        let dt = self
            .last_t
            .map(|t| now.duration_since(t).as_secs_f32())
            .unwrap_or(0.0)
            .min(0.2);
        self.last_t = Some(now);
        let alpha = 1.0 - (-dt / 0.08).exp(); // 80 ms time constant
        let vmax = 200.0 * dt; // units per second
        for (p, t) in self.pos.iter_mut().zip(&self.target) {
            let step = ((t - *p) * alpha).clamp(-vmax, vmax);
            *p += step;
        }
    }
}

impl Default for SimRobot {
    fn default() -> Self {
        SimRobot::new()
    }
}

impl Robot for SimRobot {
    fn name(&self) -> &str {
        "sim_so100"
    }
    fn joint_names(&self) -> &[String] {
        &self.names
    }
    fn observe(&mut self) -> Result<Vec<f32>> {
        self.integrate();
        Ok(self.pos.clone())
    }
    fn send_action(&mut self, action: &[f32]) -> Result<Vec<f32>> {
        if action.len() != self.names.len() {
            return Err(Error::invalid(format!(
                "action has {} values, the robot has {} joints",
                action.len(),
                self.names.len()
            )));
        }
        let (lo, hi) = self.limits;
        self.target = action
            .iter()
            .map(|a| if a.is_finite() { a.clamp(lo, hi) } else { 0.0 })
            .collect();
        Ok(self.target.clone())
    }
}

/// A teleoperator that moves every joint along a smooth, distinct sine (a stand-in for a leader arm).
pub struct SimTeleop {
    pub amplitude: f32,
}

impl Default for SimTeleop {
    fn default() -> Self {
        SimTeleop { amplitude: 45.0 }
    }
}

impl Teleop for SimTeleop {
    fn action(&mut self, t: f64, observation: &[f32]) -> Result<Vec<f32>> {
        Ok((0..observation.len())
            .map(|i| {
                let f = 0.15 + 0.07 * i as f64;
                (self.amplitude as f64 * (2.0 * std::f64::consts::PI * f * t + i as f64).sin())
                    as f32
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_robot_follows_targets_smoothly() {
        let mut r = SimRobot::new();
        let mut tele = SimTeleop::default();
        let mut last = r.observe().unwrap();
        let mut max_step = 0.0f32;
        for i in 0..60 {
            let t = i as f64 / 30.0;
            let a = tele.action(t, &last).unwrap();
            r.send_action(&a).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
            let now = r.observe().unwrap();
            for (x, y) in now.iter().zip(&last) {
                max_step = max_step.max((x - y).abs());
            }
            last = now;
        }
        assert!(
            last.iter().any(|x| x.abs() > 1.0),
            "the arm moved: {last:?}"
        );
        assert!(max_step < 10.0, "motion is smooth, max step {max_step}");
        assert!(r.send_action(&[0.0; 3]).is_err());
    }
}
