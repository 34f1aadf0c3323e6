//! What each supported arm is made of, as LeRobot 0.6.1 declares it: motor names, ids, servo
//! models, normalisation modes, the calibration directory name and the calibration procedure's
//! per-robot choices. One table, used by the drivers and by the bus simulator alike.

use crate::sim::wire::Protocol;
use reel_core::{Error, Result};
use rustypot::servo::ServoDefinition;

/// A servo model, with LeRobot's name and model number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServoModel {
    Sts3215,
    Xl430W250,
    Xl330M288,
    Xl330M077,
}

impl ServoModel {
    /// LeRobot's name of the model (`Motor.model`).
    pub fn name(self) -> &'static str {
        match self {
            ServoModel::Sts3215 => "sts3215",
            ServoModel::Xl430W250 => "xl430-w250",
            ServoModel::Xl330M288 => "xl330-m288",
            ServoModel::Xl330M077 => "xl330-m077",
        }
    }
    /// The number the servo reports in its Model_Number register.
    pub fn model_number(self) -> u16 {
        match self {
            ServoModel::Sts3215 => 777,
            ServoModel::Xl430W250 => 1060,
            ServoModel::Xl330M288 => 1200,
            ServoModel::Xl330M077 => 1190,
        }
    }
    pub fn protocol(self) -> Protocol {
        match self {
            ServoModel::Sts3215 => Protocol::Feetech,
            _ => Protocol::Dynamixel,
        }
    }
    /// Encoder steps per turn (`MODEL_RESOLUTION`).
    pub fn resolution(self) -> u32 {
        4096
    }
    /// rustypot's register map of the model.
    pub fn definition(self) -> ServoDefinition {
        match self {
            ServoModel::Sts3215 => rustypot::servo::feetech::sts3215::DEFINITION,
            ServoModel::Xl430W250 => rustypot::servo::dynamixel::xl430::DEFINITION,
            ServoModel::Xl330M288 | ServoModel::Xl330M077 => {
                rustypot::servo::dynamixel::xl330::DEFINITION
            }
        }
    }
}

/// LeRobot's `MotorNormMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormMode {
    /// `(raw - mid) * 360 / (resolution - 1)`, mid = (range_min + range_max) / 2.
    Degrees,
    /// Clamped to the range, mapped to -100..100 (negated with drive_mode on Feetech).
    RangeM100_100,
    /// Clamped to the range, mapped to 0..100 (`100 - x` with drive_mode on Feetech).
    Range0_100,
}

/// One motor of an arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MotorSpec {
    pub name: &'static str,
    pub id: u8,
    pub model: ServoModel,
    pub norm: NormMode,
}

/// The joints of every supported arm, in LeRobot's order.
pub const JOINTS: [&str; 6] = [
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
];

/// The robot and teleoperator types reel drives (`--robot.type`, `--teleop.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RobotType {
    So100Follower,
    So101Follower,
    So100Leader,
    So101Leader,
    KochFollower,
    KochLeader,
}

impl RobotType {
    pub const ALL: [RobotType; 6] = [
        RobotType::So100Follower,
        RobotType::So101Follower,
        RobotType::So100Leader,
        RobotType::So101Leader,
        RobotType::KochFollower,
        RobotType::KochLeader,
    ];

    /// Parses LeRobot's type name (`so101_follower`, `koch_leader`, ...).
    pub fn parse(s: &str) -> Result<RobotType> {
        RobotType::ALL
            .into_iter()
            .find(|t| t.type_name() == s.trim())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown robot type '{s}' (reel drives: {})",
                    RobotType::ALL.map(|t| t.type_name()).join(", ")
                ))
            })
    }

    /// LeRobot's registered type name.
    pub fn type_name(self) -> &'static str {
        match self {
            RobotType::So100Follower => "so100_follower",
            RobotType::So101Follower => "so101_follower",
            RobotType::So100Leader => "so100_leader",
            RobotType::So101Leader => "so101_leader",
            RobotType::KochFollower => "koch_follower",
            RobotType::KochLeader => "koch_leader",
        }
    }

    /// The class `name` LeRobot 0.6.1 uses for the calibration directory (SO-100 and SO-101
    /// share one: `so_follower`, `so_leader`).
    pub fn lerobot_name(self) -> &'static str {
        match self {
            RobotType::So100Follower | RobotType::So101Follower => "so_follower",
            RobotType::So100Leader | RobotType::So101Leader => "so_leader",
            RobotType::KochFollower => "koch_follower",
            RobotType::KochLeader => "koch_leader",
        }
    }

    /// Teleoperators keep their calibration under `teleoperators/`, robots under `robots/`.
    pub fn is_teleop(self) -> bool {
        matches!(
            self,
            RobotType::So100Leader | RobotType::So101Leader | RobotType::KochLeader
        )
    }

    pub fn protocol(self) -> Protocol {
        match self {
            RobotType::KochFollower | RobotType::KochLeader => Protocol::Dynamixel,
            _ => Protocol::Feetech,
        }
    }

    /// LeRobot 0.6.1's default for `use_degrees`: True for SO arms, False for the Koch
    /// follower; the Koch leader has no such option (always -100..100).
    pub fn default_use_degrees(self) -> bool {
        !matches!(self, RobotType::KochFollower | RobotType::KochLeader)
    }

    /// Whether `--robot.use_degrees` means anything for this type.
    pub fn has_use_degrees(self) -> bool {
        self != RobotType::KochLeader
    }

    /// The motors, as LeRobot declares them for `use_degrees`.
    pub fn motors(self, use_degrees: bool) -> Vec<MotorSpec> {
        let body = if use_degrees && self.has_use_degrees() {
            NormMode::Degrees
        } else {
            NormMode::RangeM100_100
        };
        let models: [ServoModel; 6] = match self {
            RobotType::KochFollower => [
                ServoModel::Xl430W250,
                ServoModel::Xl430W250,
                ServoModel::Xl330M288,
                ServoModel::Xl330M288,
                ServoModel::Xl330M288,
                ServoModel::Xl330M288,
            ],
            RobotType::KochLeader => [ServoModel::Xl330M077; 6],
            _ => [ServoModel::Sts3215; 6],
        };
        JOINTS
            .iter()
            .zip(models)
            .enumerate()
            .map(|(i, (name, model))| MotorSpec {
                name,
                id: i as u8 + 1,
                model,
                norm: if *name == "gripper" {
                    NormMode::Range0_100
                } else {
                    body
                },
            })
            .collect()
    }

    /// Motors whose range LeRobot's calibration fixes at 0..4095 instead of recording it.
    pub fn full_turn_motors(self) -> &'static [&'static str] {
        match self {
            RobotType::KochFollower | RobotType::KochLeader => &["shoulder_pan", "wrist_roll"],
            _ => &["wrist_roll"],
        }
    }

    /// The Operating_Mode value calibration writes to every motor (Feetech position 0,
    /// Dynamixel extended position 4).
    pub fn calibration_operating_mode(self) -> u8 {
        match self.protocol() {
            Protocol::Feetech => 0,
            Protocol::Dynamixel => 4,
        }
    }

    /// The drive mode calibration gives each motor (the Koch leader inverts its elbow).
    pub fn calibration_drive_mode(self, motor: &str) -> u8 {
        u8::from(self == RobotType::KochLeader && motor == "elbow_flex")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_and_name_their_calibration_dirs() {
        for t in RobotType::ALL {
            assert_eq!(RobotType::parse(t.type_name()).unwrap(), t);
        }
        assert_eq!(RobotType::So101Follower.lerobot_name(), "so_follower");
        let e = RobotType::parse("aloha").unwrap_err().to_string();
        assert!(e.contains("so101_follower"), "{e}");
        let m = RobotType::So101Follower.motors(true);
        assert_eq!(m[0].norm, NormMode::Degrees);
        assert_eq!(m[5].norm, NormMode::Range0_100);
        assert_eq!(
            RobotType::KochLeader.motors(true)[0].norm,
            NormMode::RangeM100_100
        );
        assert_eq!(
            RobotType::KochFollower.motors(false)[2].model,
            ServoModel::Xl330M288
        );
    }
}
