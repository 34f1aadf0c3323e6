//! An arm on its bus, as LeRobot 0.6.1 drives it: connect (handshake, calibration from the
//! file compared with the motors and written to them when they differ, the per-type
//! configuration), positions in LeRobot's units with per-tick retries, goals with joint-limit
//! checks and `max_relative_target` clamping. [`Follower`] and [`Leader`] put it behind
//! reel-record's `Robot` and `Teleop` traits.

use crate::bus::{ServoBus, DEFAULT_TIMEOUT, SETUP_TIMEOUT};
use crate::calibration::{file_path, Calibration};
use crate::model::{MotorSpec, NormMode, RobotType};
use crate::norm;
use crate::sim::wire::Protocol;
use reel_core::extra::ExtraValue;
use reel_core::{Error, Result};
use std::path::PathBuf;
use std::time::Duration;

/// LeRobot's `max_relative_target`: one cap for every motor, or one per motor.
#[derive(Debug, Clone, PartialEq)]
pub enum MaxRelative {
    All(f64),
    PerMotor(Vec<(String, f64)>),
}

/// How to reach and drive one arm (`--robot.*` / `--teleop.*`).
#[derive(Debug, Clone)]
pub struct ArmConfig {
    pub robot: RobotType,
    pub port: String,
    /// LeRobot's `id` (names the calibration file); LeRobot's default is None → `None.json`.
    pub id: String,
    /// LeRobot's `calibration_dir` (holds `<id>.json` directly).
    pub calibration_dir: Option<PathBuf>,
    /// None: LeRobot's default for the type.
    pub use_degrees: Option<bool>,
    pub max_relative_target: Option<MaxRelative>,
    /// Extra sync-read attempts in the same tick when one fails (LeRobot's `num_read_retries`).
    pub num_read_retries: u32,
    pub disable_torque_on_disconnect: bool,
    /// Per status packet in the control loop (connecting and calibrating use
    /// [`SETUP_TIMEOUT`]).
    pub timeout: Duration,
    /// Koch leader: where its gripper springs back to (LeRobot's `gripper_open_pos`).
    pub gripper_open_pos: f64,
    /// How far (fraction of a joint's calibrated span) an action may overshoot the range and
    /// be clamped to it, as the servo's position limits would; beyond it the action is an error.
    pub limit_margin: f64,
}

impl ArmConfig {
    pub fn new(robot: RobotType, port: &str, id: &str) -> ArmConfig {
        ArmConfig {
            robot,
            port: port.to_string(),
            id: id.to_string(),
            calibration_dir: None,
            use_degrees: None,
            max_relative_target: None,
            num_read_retries: 2,
            disable_torque_on_disconnect: true,
            timeout: DEFAULT_TIMEOUT,
            gripper_open_pos: 50.0,
            limit_margin: 0.5,
        }
    }

    pub fn use_degrees(&self) -> bool {
        self.use_degrees
            .unwrap_or_else(|| self.robot.default_use_degrees())
    }

    pub fn motors(&self) -> Vec<MotorSpec> {
        self.robot.motors(self.use_degrees())
    }

    pub fn calibration_file(&self) -> PathBuf {
        file_path(self.robot, &self.id, self.calibration_dir.as_deref())
    }
}

/// What one episode cost on the bus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Sync reads that failed (each retry that failed counts too).
    pub read_failures: u64,
    /// Ticks that kept the previous positions because every attempt failed.
    pub stale: u64,
    /// The ticks (position reads since the episode started) that were stale.
    pub stale_ticks: Vec<u64>,
    /// Actions clamped to a joint's range or by `max_relative_target`.
    pub clamped: u64,
    reads: u64,
}

/// A connected arm.
pub struct Arm {
    cfg: ArmConfig,
    motors: Vec<MotorSpec>,
    bus: ServoBus,
    calibration: Option<Calibration>,
    keys: Vec<String>,
    last: Option<Vec<f64>>,
    counters: Counters,
    torque_off_on_drop: bool,
}

impl Arm {
    /// Opens the bus and checks that every motor answers (no calibration needed yet).
    pub fn open(cfg: &ArmConfig) -> Result<Arm> {
        let motors = cfg.motors();
        let mut bus =
            ServoBus::open(&cfg.port, &motors, SETUP_TIMEOUT.max(cfg.timeout)).map_err(|e| {
                Error::invalid(format!("{} on {}: {e}", cfg.robot.type_name(), cfg.port))
            })?;
        bus.handshake().map_err(|e| {
            Error::invalid(format!("{} on {}: {e}", cfg.robot.type_name(), cfg.port))
        })?;
        Ok(Arm {
            keys: motors.iter().map(|m| format!("{}.pos", m.name)).collect(),
            cfg: cfg.clone(),
            motors,
            bus,
            calibration: None,
            last: None,
            counters: Counters::default(),
            torque_off_on_drop: false,
        })
    }

    /// LeRobot's `connect()`: open, load the calibration file (its absence is an error naming
    /// the `reel calibrate` command), write it to the motors when they hold other values,
    /// then configure as LeRobot does for this type.
    pub fn connect(cfg: &ArmConfig) -> Result<Arm> {
        let path = cfg.calibration_file();
        if !path.is_file() {
            return Err(Error::invalid(format!(
                "{} '{}' has no calibration file at {}: run `reel calibrate --{}.type={} --{}.port={} --{}.id={}` first (or LeRobot's lerobot-calibrate)",
                cfg.robot.type_name(),
                cfg.id,
                path.display(),
                role(cfg.robot),
                cfg.robot.type_name(),
                role(cfg.robot),
                cfg.port,
                role(cfg.robot),
                cfg.id
            )));
        }
        let motors = cfg.motors();
        let cal =
            Calibration::load(&path)?.check_for(cfg.robot, &motors, &path.display().to_string())?;
        let mut arm = Arm::open(cfg)?;
        arm.torque_off_on_drop = cfg.disable_torque_on_disconnect;
        if !arm.motors_hold(&cal)? {
            tracing::info!(
                "{} '{}': the motors hold another calibration; writing {} to them",
                cfg.robot.type_name(),
                cfg.id,
                path.display()
            );
            arm.bus.set_torque(&[], false, 2)?;
            arm.write_calibration(&cal)?;
        }
        arm.calibration = Some(cal);
        arm.configure()?;
        arm.bus.set_timeout(cfg.timeout)?;
        Ok(arm)
    }

    /// LeRobot's `is_calibrated`: Feetech compares ranges and homing offsets, Dynamixel the
    /// whole calibration including drive modes.
    pub fn motors_hold(&mut self, cal: &Calibration) -> Result<bool> {
        let read = self.read_calibration()?;
        Ok(match self.bus.protocol() {
            Protocol::Feetech => read.motors.iter().all(|(n, r)| {
                cal.get(n).is_some_and(|c| {
                    c.range_min == r.range_min
                        && c.range_max == r.range_max
                        && c.homing_offset == r.homing_offset
                })
            }),
            Protocol::Dynamixel => read.motors.iter().all(|(n, r)| cal.get(n) == Some(r)),
        })
    }

    /// The calibration registers the motors hold (LeRobot's `read_calibration`).
    pub fn read_calibration(&mut self) -> Result<Calibration> {
        let mut motors = Vec::new();
        for m in self.motors.clone() {
            let drive_mode = match self.bus.protocol() {
                Protocol::Feetech => 0,
                Protocol::Dynamixel => self.bus.read(m.name, "Drive_Mode")?,
            };
            motors.push((
                m.name.to_string(),
                crate::calibration::MotorCalibration {
                    id: i64::from(m.id),
                    drive_mode,
                    homing_offset: self.bus.read(m.name, "Homing_Offset")?,
                    range_min: self.bus.read(m.name, "Min_Position_Limit")?,
                    range_max: self.bus.read(m.name, "Max_Position_Limit")?,
                },
            ));
        }
        Ok(Calibration { motors })
    }

    /// LeRobot's `write_calibration`: Homing_Offset, Min_Position_Limit, Max_Position_Limit.
    pub fn write_calibration(&mut self, cal: &Calibration) -> Result<()> {
        for (name, c) in &cal.motors {
            self.bus.write(name, "Homing_Offset", c.homing_offset)?;
            self.bus.write(name, "Min_Position_Limit", c.range_min)?;
            self.bus.write(name, "Max_Position_Limit", c.range_max)?;
        }
        Ok(())
    }

    /// The registers LeRobot 0.6.1 writes on connect for this type (`configure()`).
    fn configure(&mut self) -> Result<()> {
        let robot = self.cfg.robot;
        let names: Vec<&'static str> = self.motors.iter().map(|m| m.name).collect();
        self.bus.set_torque(&[], false, 2)?;
        for n in &names {
            self.bus.write(n, "Return_Delay_Time", 0)?;
        }
        match robot.protocol() {
            Protocol::Feetech => {
                for m in self.motors.clone() {
                    self.bus.write(m.name, "Maximum_Acceleration", 254)?;
                    self.bus.write(m.name, "Acceleration", 254)?;
                    let phase = self.bus.read(m.name, "Phase")?;
                    if phase & 0x10 != 0 {
                        self.bus.write(m.name, "Phase", phase & !0x10)?;
                    }
                }
                for n in &names {
                    self.bus.write(n, "Operating_Mode", 0)?;
                }
                if !robot.is_teleop() {
                    for n in &names {
                        self.bus.write(n, "P_Coefficient", 16)?;
                        self.bus.write(n, "I_Coefficient", 0)?;
                        self.bus.write(n, "D_Coefficient", 32)?;
                    }
                    self.bus.write("gripper", "Max_Torque_Limit", 500)?;
                    self.bus.write("gripper", "Protection_Current", 250)?;
                    self.bus.write("gripper", "Overload_Torque", 25)?;
                    self.bus.set_torque(&[], true, 2)?;
                }
            }
            Protocol::Dynamixel => {
                for n in &names {
                    if *n != "gripper" {
                        self.bus.write(n, "Operating_Mode", 4)?;
                    }
                }
                self.bus.write("gripper", "Operating_Mode", 5)?;
                if robot.is_teleop() {
                    self.bus.set_torque(&["gripper"], true, 2)?;
                    if let Some(i) = self.motors.iter().position(|m| m.name == "gripper") {
                        let goal = self.unnormalize(i, self.cfg.gripper_open_pos)?;
                        self.bus.write("gripper", "Goal_Position", goal)?;
                    }
                } else {
                    self.bus.write("elbow_flex", "Position_P_Gain", 1500)?;
                    self.bus.write("elbow_flex", "Position_I_Gain", 0)?;
                    self.bus.write("elbow_flex", "Position_D_Gain", 600)?;
                    self.bus.set_torque(&[], true, 2)?;
                }
            }
        }
        Ok(())
    }

    pub fn config(&self) -> &ArmConfig {
        &self.cfg
    }

    pub fn motors(&self) -> &[MotorSpec] {
        &self.motors
    }

    /// `shoulder_pan.pos`, … in motor order.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    pub fn bus(&mut self) -> &mut ServoBus {
        &mut self.bus
    }

    fn cal(&self, i: usize) -> Result<&crate::calibration::MotorCalibration> {
        let m = &self.motors[i];
        self.calibration
            .as_ref()
            .and_then(|c| c.get(m.name))
            .ok_or_else(|| Error::invalid(format!("'{}' has no calibration", m.name)))
    }

    fn apply_drive_mode(&self) -> bool {
        self.bus.protocol() == Protocol::Feetech
    }

    /// Raw positions, one sync read, no retry.
    pub fn read_raw(&mut self) -> Result<Vec<i64>> {
        self.bus.sync_read("Present_Position")
    }

    /// Raw → LeRobot units for every motor.
    pub fn normalize_all(&self, raw: &[i64]) -> Result<Vec<f64>> {
        raw.iter()
            .enumerate()
            .map(|(i, &r)| {
                let m = &self.motors[i];
                norm::normalize(
                    r,
                    self.cal(i)?,
                    m.norm,
                    self.apply_drive_mode(),
                    m.model.resolution(),
                )
            })
            .collect()
    }

    fn unnormalize(&self, i: usize, v: f64) -> Result<i64> {
        let m = &self.motors[i];
        norm::unnormalize(
            v,
            self.cal(i)?,
            m.norm,
            self.apply_drive_mode(),
            m.model.resolution(),
        )
    }

    /// Positions in LeRobot's units, read once per tick: a failed sync read is tried again
    /// up to `num_read_retries` times; when all fail, the previous positions are returned
    /// (counted as stale) and only a first read that never succeeded is an error.
    pub fn read_positions(&mut self) -> Result<Vec<f64>> {
        let tick = self.counters.reads;
        self.counters.reads += 1;
        let mut last_err = None;
        for _ in 0..=self.cfg.num_read_retries {
            match self.read_raw() {
                Ok(raw) => {
                    let v = self.normalize_all(&raw)?;
                    self.last = Some(v.clone());
                    return Ok(v);
                }
                Err(e) => {
                    self.counters.read_failures += 1;
                    tracing::debug!("{}: {e}", self.cfg.robot.type_name());
                    last_err = Some(e);
                }
            }
        }
        let e = last_err.unwrap_or_else(|| Error::invalid("no read attempted"));
        match &self.last {
            Some(v) => {
                self.counters.stale += 1;
                self.counters.stale_ticks.push(tick);
                tracing::warn!(
                    "{} on {}: {} read attempts failed ({e}); keeping the previous positions for this tick (flagged stale)",
                    self.cfg.robot.type_name(),
                    self.cfg.port,
                    self.cfg.num_read_retries + 1
                );
                Ok(v.clone())
            }
            None => Err(e),
        }
    }

    /// Checks `goal` against each joint's calibrated range (overshoot up to `limit_margin`
    /// of the span is clamped, beyond is an error naming the joint), applies
    /// `max_relative_target` against `present` (LeRobot's `ensure_safe_goal_position`), and
    /// sync-writes Goal_Position. Returns the goal actually sent, in LeRobot's units.
    pub fn write_goals(&mut self, goal: &[f64], present: Option<&[f64]>) -> Result<Vec<f64>> {
        if goal.len() != self.motors.len() {
            return Err(Error::invalid(format!(
                "action has {} values, a {} has {} joints",
                goal.len(),
                self.cfg.robot.type_name(),
                self.motors.len()
            )));
        }
        let mut sent = Vec::with_capacity(goal.len());
        for (i, &g) in goal.iter().enumerate() {
            let m = self.motors[i];
            if !g.is_finite() {
                return Err(Error::invalid(format!(
                    "action for {}.pos is {g}, not a number",
                    m.name
                )));
            }
            let (lo, hi) = norm::value_range(
                self.cal(i)?,
                m.norm,
                self.apply_drive_mode(),
                m.model.resolution(),
            )?;
            let margin = (hi - lo) * self.cfg.limit_margin;
            if g < lo - margin || g > hi + margin {
                return Err(Error::invalid(format!(
                    "action {}.pos = {g:.3}{} violates the joint's limits [{lo:.3}, {hi:.3}] (calibration of {} '{}')",
                    m.name,
                    unit(m.norm),
                    self.cfg.robot.type_name(),
                    self.cfg.id
                )));
            }
            let mut v = g.clamp(lo, hi);
            if v != g {
                self.counters.clamped += 1;
            }
            if let (Some(mrt), Some(p)) = (&self.cfg.max_relative_target, present) {
                let cap = match mrt {
                    MaxRelative::All(c) => Some(*c),
                    MaxRelative::PerMotor(list) => {
                        list.iter().find(|(n, _)| n == m.name).map(|(_, c)| *c)
                    }
                };
                if let (Some(cap), Some(&p)) = (cap, p.get(i)) {
                    let diff = (v - p).clamp(-cap, cap);
                    let safe = p + diff;
                    if (safe - v).abs() > 1e-4 {
                        self.counters.clamped += 1;
                    }
                    v = safe;
                }
            }
            sent.push(v);
        }
        let raw: Vec<i64> = sent
            .iter()
            .enumerate()
            .map(|(i, &v)| self.unnormalize(i, v))
            .collect::<Result<_>>()?;
        self.bus.sync_write("Goal_Position", &raw)?;
        Ok(sent)
    }

    /// The counters of the episode so far, reset.
    pub fn take_counters(&mut self) -> Counters {
        std::mem::take(&mut self.counters)
    }

    /// The last positions read (None before the first).
    pub fn last_positions(&self) -> Option<&[f64]> {
        self.last.as_deref()
    }

    /// Disables torque (LeRobot's `disconnect(disable_torque=True)`).
    pub fn disconnect(mut self) -> Result<()> {
        self.torque_off_on_drop = false;
        if self.cfg.disable_torque_on_disconnect {
            self.bus.set_torque(&[], false, 5)?;
        }
        Ok(())
    }

    pub(crate) fn set_calibration(&mut self, cal: Calibration) {
        self.calibration = Some(cal);
    }
}

impl Drop for Arm {
    fn drop(&mut self) {
        if self.torque_off_on_drop {
            if let Err(e) = self.bus.set_torque(&[], false, 5) {
                tracing::warn!("{}: {e}", self.cfg.robot.type_name());
            }
        }
    }
}

fn role(t: RobotType) -> &'static str {
    if t.is_teleop() {
        "teleop"
    } else {
        "robot"
    }
}

fn unit(n: NormMode) -> &'static str {
    match n {
        NormMode::Degrees => "°",
        _ => "",
    }
}

fn extras(prefix: &str, c: Counters) -> Vec<(String, ExtraValue)> {
    let ticks: Vec<String> = c.stale_ticks.iter().map(|t| t.to_string()).collect();
    vec![
        (
            format!("{prefix}/read_failures"),
            ExtraValue::I64(c.read_failures as i64),
        ),
        (
            format!("{prefix}/stale_observations"),
            ExtraValue::I64(c.stale as i64),
        ),
        (
            format!("{prefix}/stale_frames"),
            ExtraValue::Str(ticks.join(",")),
        ),
        (
            format!("{prefix}/clamped_actions"),
            ExtraValue::I64(c.clamped as i64),
        ),
    ]
}

/// A follower arm as a [`reel_record::robot::Robot`].
pub struct Follower {
    arm: Arm,
}

impl Follower {
    pub fn connect(cfg: &ArmConfig) -> Result<Follower> {
        if cfg.robot.is_teleop() {
            return Err(Error::invalid(format!(
                "--robot.type={} is a leader arm (a teleoperator): use it with --teleop.type",
                cfg.robot.type_name()
            )));
        }
        Ok(Follower {
            arm: Arm::connect(cfg)?,
        })
    }

    pub fn arm(&mut self) -> &mut Arm {
        &mut self.arm
    }
}

impl reel_record::robot::Robot for Follower {
    fn name(&self) -> &str {
        self.arm.cfg.robot.type_name()
    }
    fn joint_names(&self) -> &[String] {
        &self.arm.keys
    }
    fn observe(&mut self) -> Result<Vec<f32>> {
        Ok(self
            .arm
            .read_positions()?
            .iter()
            .map(|&v| v as f32)
            .collect())
    }
    /// One sync read, no retry (the bus thread retries at its next slot); a failure is
    /// counted in `robot/read_failures`.
    fn read_fresh(&mut self) -> Result<Option<Vec<f32>>> {
        match self.arm.read_raw() {
            Ok(raw) => {
                let v = self.arm.normalize_all(&raw)?;
                let out = v.iter().map(|&x| x as f32).collect();
                self.arm.last = Some(v);
                Ok(Some(out))
            }
            Err(e) => {
                self.arm.counters.read_failures += 1;
                tracing::debug!("{}: {e}", self.arm.cfg.robot.type_name());
                Ok(None)
            }
        }
    }
    fn send_action(&mut self, action: &[f32]) -> Result<Vec<f32>> {
        let goal: Vec<f64> = action.iter().map(|&v| f64::from(v)).collect();
        let present = self.arm.last.clone();
        let sent = self.arm.write_goals(&goal, present.as_deref())?;
        Ok(sent.iter().map(|&v| v as f32).collect())
    }
    fn take_episode_extras(&mut self) -> Vec<(String, ExtraValue)> {
        extras("robot", self.arm.take_counters())
    }
}

/// A leader arm as a [`reel_record::robot::Teleop`]: its positions are the action.
pub struct Leader {
    arm: Arm,
}

impl Leader {
    pub fn connect(cfg: &ArmConfig) -> Result<Leader> {
        if !cfg.robot.is_teleop() {
            return Err(Error::invalid(format!(
                "--teleop.type={} is a follower arm: use a leader type ({})",
                cfg.robot.type_name(),
                "so100_leader, so101_leader, koch_leader"
            )));
        }
        Ok(Leader {
            arm: Arm::connect(cfg)?,
        })
    }

    pub fn arm(&mut self) -> &mut Arm {
        &mut self.arm
    }

    pub fn joint_names(&self) -> &[String] {
        &self.arm.keys
    }
}

impl reel_record::robot::Teleop for Leader {
    fn action(&mut self, _t: f64, _observation: &[f32]) -> Result<Vec<f32>> {
        Ok(self
            .arm
            .read_positions()?
            .iter()
            .map(|&v| v as f32)
            .collect())
    }
    fn take_episode_extras(&mut self) -> Vec<(String, ExtraValue)> {
        extras("teleop", self.arm.take_counters())
    }
}
