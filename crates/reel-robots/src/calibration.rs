//! LeRobot's calibration files, read and written byte-compatibly: where they live
//! (`<calibration dir>/robots/<name>/<id>.json`, `teleoperators/…` for leaders), the
//! draccus JSON dump of `dict[motor, MotorCalibration]` (indent 4, fields `id, drive_mode,
//! homing_offset, range_min, range_max`, no trailing newline), and the checks that a file
//! belongs to the robot type it is used for.

use crate::model::{MotorSpec, RobotType};
use crate::sim::wire::Protocol;
use reel_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// LeRobot's `MotorCalibration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotorCalibration {
    pub id: i64,
    pub drive_mode: i64,
    pub homing_offset: i64,
    pub range_min: i64,
    pub range_max: i64,
}

/// One arm's calibration, in the order of its motors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calibration {
    pub motors: Vec<(String, MotorCalibration)>,
}

impl Calibration {
    pub fn get(&self, motor: &str) -> Option<&MotorCalibration> {
        self.motors.iter().find(|(n, _)| n == motor).map(|(_, c)| c)
    }

    /// The file's text, exactly as LeRobot's `draccus.dump(..., indent=4)` writes it.
    pub fn to_json(&self) -> String {
        let mut map = serde_json::Map::new();
        for (name, c) in &self.motors {
            map.insert(
                name.clone(),
                serde_json::to_value(c).unwrap_or(serde_json::Value::Null),
            );
        }
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        if serde::Serialize::serialize(&serde_json::Value::Object(map), &mut ser).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Parses a calibration file's text (any motors; see [`Calibration::check_for`]).
    pub fn parse(text: &str, what: &str) -> Result<Calibration> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("calibration file {what}: not valid JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| {
            Error::invalid(format!(
                "calibration file {what}: expected an object of motors, found {}",
                kind(&v)
            ))
        })?;
        let mut motors = Vec::with_capacity(obj.len());
        for (name, c) in obj {
            let c: MotorCalibration = serde_json::from_value(c.clone()).map_err(|e| {
                Error::invalid(format!(
                    "calibration file {what}: motor '{name}': {e} (expected the integer fields id, drive_mode, homing_offset, range_min, range_max)"
                ))
            })?;
            motors.push((name.clone(), c));
        }
        Ok(Calibration { motors })
    }

    /// Reads a calibration file.
    pub fn load(path: &Path) -> Result<Calibration> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(format!(
                "cannot read calibration file {}: {e}",
                path.display()
            ))
        })?;
        Calibration::parse(&text, &path.display().to_string())
    }

    /// Writes the file (creating its directory), as LeRobot does.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::invalid(format!("cannot create {}: {e}", dir.display())))?;
        }
        std::fs::write(path, self.to_json()).map_err(|e| {
            Error::invalid(format!(
                "cannot write calibration file {}: {e}",
                path.display()
            ))
        })
    }

    /// Checks that this calibration is for `robot` with `motors` and puts it in their order:
    /// the same motor names and ids, values that fit the servo family's registers, a range per
    /// motor, and the full-turn motors at 0..4095 as LeRobot's procedure for that type leaves
    /// them (which tells an SO file from a Koch one: they share joint names).
    pub fn check_for(
        &self,
        robot: RobotType,
        motors: &[MotorSpec],
        what: &str,
    ) -> Result<Calibration> {
        let want: Vec<&str> = motors.iter().map(|m| m.name).collect();
        let mut have: Vec<&str> = self.motors.iter().map(|(n, _)| n.as_str()).collect();
        have.sort_unstable();
        let mut want_sorted = want.clone();
        want_sorted.sort_unstable();
        if have != want_sorted {
            return Err(Error::invalid(format!(
                "calibration file {what} is for another robot type: it has motors {have:?}, a {} has {want:?}",
                robot.type_name()
            )));
        }
        let mut ordered = Vec::with_capacity(motors.len());
        for m in motors {
            let c = *self.get(m.name).ok_or_else(|| {
                Error::invalid(format!(
                    "calibration file {what}: motor '{}' missing",
                    m.name
                ))
            })?;
            let bad = |why: String| {
                Error::invalid(format!(
                    "calibration file {what}: motor '{}': {why}; is this file for another robot type than {}?",
                    m.name,
                    robot.type_name()
                ))
            };
            if c.id != i64::from(m.id) {
                return Err(bad(format!(
                    "id {} but a {} has it at id {}",
                    c.id,
                    robot.type_name(),
                    m.id
                )));
            }
            if !(0..=1).contains(&c.drive_mode) {
                return Err(bad(format!(
                    "drive_mode {} is neither 0 nor 1",
                    c.drive_mode
                )));
            }
            let (off_lo, off_hi, pos_hi) = match robot.protocol() {
                // Homing_Offset is sign-magnitude with bit 11 on Feetech.
                Protocol::Feetech => (-2047, 2047, 4095),
                Protocol::Dynamixel => (
                    i64::from(i32::MIN),
                    i64::from(i32::MAX),
                    i64::from(i32::MAX),
                ),
            };
            if !(off_lo..=off_hi).contains(&c.homing_offset) {
                return Err(bad(format!(
                    "homing_offset {} does not fit the {} register ({off_lo}..{off_hi})",
                    c.homing_offset,
                    m.model.name()
                )));
            }
            if c.range_min < 0 || c.range_max > pos_hi || c.range_min >= c.range_max {
                return Err(bad(format!(
                    "range {}..{} is not a range of positions (0 <= range_min < range_max <= {pos_hi})",
                    c.range_min, c.range_max
                )));
            }
            let full = robot.full_turn_motors().contains(&m.name);
            let spans_all = c.range_min == 0 && c.range_max == 4095;
            if full && !spans_all {
                return Err(bad(format!(
                    "range {}..{}, but LeRobot's {} calibration fixes this joint at 0..4095",
                    c.range_min,
                    c.range_max,
                    robot.type_name()
                )));
            }
            if !full && spans_all && m.name == "shoulder_pan" {
                return Err(bad(
                    "range 0..4095 (a full turn), as LeRobot's Koch calibration sets it, not an SO one".into(),
                ));
            }
            ordered.push((m.name.to_string(), c));
        }
        Ok(Calibration { motors: ordered })
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// LeRobot's calibration root: `$HF_LEROBOT_CALIBRATION`, else `$HF_LEROBOT_HOME/calibration`,
/// else `$HF_HOME/lerobot/calibration`, else `~/.cache/huggingface/lerobot/calibration`.
pub fn default_root() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("HF_LEROBOT_CALIBRATION") {
        return expand(p);
    }
    if let Some(p) = env("HF_LEROBOT_HOME") {
        return expand(p).join("calibration");
    }
    let hf_home = env("HF_HOME").map(expand).unwrap_or_else(|| {
        let base = env("XDG_CACHE_HOME").unwrap_or_else(|| {
            env("HOME")
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".cache")
        });
        base.join("huggingface")
    });
    hf_home.join("lerobot").join("calibration")
}

fn expand(p: PathBuf) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(rest),
        Err(_) => p,
    }
}

/// The file of `robot` with `id`: `dir/<id>.json` when a calibration directory is given (as
/// LeRobot's `calibration_dir`), else `<root>/robots|teleoperators/<name>/<id>.json`.
pub fn file_path(robot: RobotType, id: &str, dir: Option<&Path>) -> PathBuf {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => default_root()
            .join(if robot.is_teleop() {
                "teleoperators"
            } else {
                "robots"
            })
            .join(robot.lerobot_name()),
    };
    dir.join(format!("{id}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEROBOT_TEXT: &str = "{\n    \"shoulder_pan\": {\n        \"id\": 1,\n        \"drive_mode\": 0,\n        \"homing_offset\": -1234,\n        \"range_min\": 812,\n        \"range_max\": 3290\n    },\n    \"gripper\": {\n        \"id\": 6,\n        \"drive_mode\": 0,\n        \"homing_offset\": 57,\n        \"range_min\": 0,\n        \"range_max\": 4095\n    }\n}";

    #[test]
    fn round_trips_lerobot_bytes() {
        let c = Calibration::parse(LEROBOT_TEXT, "x").unwrap();
        assert_eq!(c.motors[0].0, "shoulder_pan");
        assert_eq!(c.motors[0].1.homing_offset, -1234);
        assert_eq!(c.to_json(), LEROBOT_TEXT);
    }

    fn so_file() -> Calibration {
        Calibration {
            motors: RobotType::So101Follower
                .motors(true)
                .iter()
                .map(|m| {
                    let full = m.name == "wrist_roll";
                    (
                        m.name.to_string(),
                        MotorCalibration {
                            id: i64::from(m.id),
                            drive_mode: 0,
                            homing_offset: -300,
                            range_min: if full { 0 } else { 900 },
                            range_max: if full { 4095 } else { 3100 },
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn tells_robot_types_apart() {
        let so = so_file();
        let m = RobotType::So101Follower.motors(true);
        assert!(so.check_for(RobotType::So101Follower, &m, "f").is_ok());
        let km = RobotType::KochFollower.motors(false);
        let e = so
            .check_for(RobotType::KochFollower, &km, "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("another robot type"), "{e}");
        let mut koch = so.clone();
        for (n, c) in &mut koch.motors {
            if n == "shoulder_pan" {
                c.range_min = 0;
                c.range_max = 4095;
            }
        }
        let e = koch
            .check_for(RobotType::So101Follower, &m, "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Koch"), "{e}");
        let mut other = so.clone();
        other.motors[0].0 = "base_left_wheel".into();
        let e = other
            .check_for(RobotType::So101Follower, &m, "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("another robot type"), "{e}");
    }

    /// Generated and mutated files: every outcome is Ok or a clear error, never a panic.
    #[test]
    fn fuzz_mutated_files_never_panic() {
        let text = so_file().to_json();
        let m = RobotType::So101Follower.motors(true);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut ok = 0;
        for _ in 0..5000 {
            let mut b = text.clone().into_bytes();
            for _ in 0..rng.usize(1..4) {
                match rng.u8(0..4) {
                    0 if !b.is_empty() => {
                        let i = rng.usize(0..b.len());
                        b[i] = rng.u8(..);
                    }
                    1 if !b.is_empty() => {
                        let i = rng.usize(0..b.len());
                        b.remove(i);
                    }
                    2 => {
                        let i = rng.usize(0..=b.len());
                        b.insert(i, b"0123456789-{}[]\",:e."[rng.usize(0..20)]);
                    }
                    _ => b.truncate(rng.usize(0..=b.len())),
                }
            }
            let s = String::from_utf8_lossy(&b);
            match Calibration::parse(&s, "f")
                .and_then(|c| c.check_for(RobotType::So101Follower, &m, "f"))
            {
                Ok(_) => ok += 1,
                Err(e) => assert!(e.to_string().contains("calibration file"), "{e}"),
            }
        }
        assert!(ok < 5000, "mutations were noticed");
    }

    #[test]
    fn paths_follow_lerobot() {
        let p = file_path(RobotType::So101Leader, "l1", Some(Path::new("/c")));
        assert_eq!(p, Path::new("/c/l1.json"));
        let p = file_path(RobotType::KochFollower, "f", None);
        assert!(
            p.ends_with("robots/koch_follower/f.json"),
            "{}",
            p.display()
        );
    }
}
