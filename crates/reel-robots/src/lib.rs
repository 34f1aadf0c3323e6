//! Real arms without Python: the SO-100/101 (Feetech STS3215) and Koch (Dynamixel XL330/XL430)
//! followers and leaders over their serial servo buses, behind reel-record's
//! [`Robot`](reel_record::robot::Robot) and [`Teleop`](reel_record::robot::Teleop) traits,
//! with LeRobot 0.6.1's exact joint names, units, normalisation and calibration files.
//!
//! * [`model`]: what each arm is made of (motor names, ids, servo models, units);
//! * [`bus`]: one servo bus through rustypot (sync read/write, registers by name, handshake);
//! * [`norm`]: LeRobot's normalisation formulas, operation for operation;
//! * [`calibration`]: LeRobot's calibration files (paths, bytes, checks);
//! * [`arm`]: connect/configure/read/write an arm; [`arm::Follower`], [`arm::Leader`];
//! * [`calibrate`]: LeRobot's calibration procedure with an [`calibrate::Operator`];
//! * [`sim`]: the pseudo-terminal bus simulator behind `reel sim-bus`.
// Unit tests build with the dev-dependencies, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod arm;
pub mod bus;
pub mod calibrate;
pub mod calibration;
pub mod model;
pub mod norm;
pub mod sim;

pub use arm::{Arm, ArmConfig, Follower, Leader, MaxRelative};
pub use calibration::{Calibration, MotorCalibration};
pub use model::RobotType;
pub use sim::{servo::Motion, SimBus, SimConfig};
