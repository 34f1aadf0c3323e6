//! LeRobot 0.6.1's normalisation (`SerialMotorsBus._normalize` / `_unnormalize`), operation
//! for operation in f64, so a raw register value gives the same float to the last digit.
//!
//! * DEGREES: `(raw - mid) * 360 / (resolution - 1)`, `mid = (range_min + range_max) / 2`; no
//!   clamping, no drive mode.
//! * RANGE_M100_100: `((clamp(raw) - min) / (max - min)) * 200 - 100`, negated when the bus
//!   applies drive modes (Feetech) and the motor's `drive_mode` is 1.
//! * RANGE_0_100: `((clamp(raw) - min) / (max - min)) * 100`, `100 - x` likewise.
//!
//! Unnormalising truncates toward zero (Python's `int()`).

use crate::calibration::MotorCalibration;
use crate::model::NormMode;
use reel_core::{Error, Result};

/// Raw register value → LeRobot units.
pub fn normalize(
    raw: i64,
    cal: &MotorCalibration,
    mode: NormMode,
    apply_drive_mode: bool,
    resolution: u32,
) -> Result<f64> {
    let (min, max) = (cal.range_min, cal.range_max);
    if min == max {
        return Err(Error::invalid(format!(
            "invalid calibration for motor id {}: range_min and range_max are equal ({min})",
            cal.id
        )));
    }
    let drive = apply_drive_mode && cal.drive_mode != 0;
    let bounded = raw.clamp(min.min(max), max.max(min));
    let span = (max - min) as f64;
    Ok(match mode {
        NormMode::RangeM100_100 => {
            let n = (((bounded - min) as f64 / span) * 200.0) - 100.0;
            if drive {
                -n
            } else {
                n
            }
        }
        NormMode::Range0_100 => {
            let n = ((bounded - min) as f64 / span) * 100.0;
            if drive {
                100.0 - n
            } else {
                n
            }
        }
        NormMode::Degrees => {
            let mid = (min + max) as f64 / 2.0;
            ((raw as f64 - mid) * 360.0) / f64::from(resolution - 1)
        }
    })
}

/// LeRobot units → raw register value.
pub fn unnormalize(
    value: f64,
    cal: &MotorCalibration,
    mode: NormMode,
    apply_drive_mode: bool,
    resolution: u32,
) -> Result<i64> {
    if !value.is_finite() {
        return Err(Error::invalid(format!(
            "motor id {}: value {value} is not a finite number",
            cal.id
        )));
    }
    let (min, max) = (cal.range_min, cal.range_max);
    if min == max {
        return Err(Error::invalid(format!(
            "invalid calibration for motor id {}: range_min and range_max are equal ({min})",
            cal.id
        )));
    }
    let drive = apply_drive_mode && cal.drive_mode != 0;
    let span = (max - min) as f64;
    let x = match mode {
        NormMode::RangeM100_100 => {
            let v = if drive { -value } else { value };
            let b = v.clamp(-100.0, 100.0);
            ((b + 100.0) / 200.0) * span + min as f64
        }
        NormMode::Range0_100 => {
            let v = if drive { 100.0 - value } else { value };
            let b = v.clamp(0.0, 100.0);
            (b / 100.0) * span + min as f64
        }
        NormMode::Degrees => {
            let mid = (min + max) as f64 / 2.0;
            (value * f64::from(resolution - 1) / 360.0) + mid
        }
    };
    let t = x.trunc();
    if t.abs() > 2_147_483_647.0 {
        return Err(Error::invalid(format!(
            "motor id {}: value {value} is far outside any position",
            cal.id
        )));
    }
    Ok(t as i64)
}

/// The range of LeRobot values a motor's calibration covers: (low, high).
pub fn value_range(
    cal: &MotorCalibration,
    mode: NormMode,
    apply_drive_mode: bool,
    resolution: u32,
) -> Result<(f64, f64)> {
    let a = normalize(cal.range_min, cal, mode, apply_drive_mode, resolution)?;
    let b = normalize(cal.range_max, cal, mode, apply_drive_mode, resolution)?;
    Ok((a.min(b), a.max(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(min: i64, max: i64, drive: i64) -> MotorCalibration {
        MotorCalibration {
            id: 1,
            drive_mode: drive,
            homing_offset: 0,
            range_min: min,
            range_max: max,
        }
    }

    #[test]
    fn degrees_match_lerobot_by_hand() {
        // (2100 - (812 + 3290) / 2) * 360 / 4095 = (2100 - 2051) * 360 / 4095
        let c = cal(812, 3290, 0);
        let v = normalize(2100, &c, NormMode::Degrees, true, 4096).unwrap();
        assert_eq!(v, (49.0 * 360.0) / 4095.0);
        // Outside the range: not clamped.
        assert!(normalize(5000, &c, NormMode::Degrees, true, 4096).unwrap() > 200.0);
        assert_eq!(
            unnormalize(v, &c, NormMode::Degrees, true, 4096).unwrap(),
            2100
        );
        // int() truncates toward zero: 2099.91 -> 2099, 2002.09 -> 2002 (values from Python).
        assert_eq!(
            unnormalize(4.3, &c, NormMode::Degrees, true, 4096).unwrap(),
            2099
        );
        assert_eq!(
            unnormalize(-4.3, &c, NormMode::Degrees, true, 4096).unwrap(),
            2002
        );
    }

    #[test]
    fn ranges_clamp_and_drive_mode_inverts() {
        let c = cal(1000, 3000, 0);
        assert_eq!(
            normalize(2000, &c, NormMode::RangeM100_100, true, 4096).unwrap(),
            0.0
        );
        assert_eq!(
            normalize(9999, &c, NormMode::Range0_100, true, 4096).unwrap(),
            100.0
        );
        let inv = cal(1000, 3000, 1);
        assert_eq!(
            normalize(1500, &inv, NormMode::Range0_100, true, 4096).unwrap(),
            75.0
        );
        assert_eq!(
            normalize(1500, &inv, NormMode::Range0_100, false, 4096).unwrap(),
            25.0,
            "Dynamixel buses do not apply drive_mode"
        );
        assert_eq!(
            unnormalize(75.0, &inv, NormMode::Range0_100, true, 4096).unwrap(),
            1500
        );
        assert_eq!(
            unnormalize(250.0, &c, NormMode::RangeM100_100, true, 4096).unwrap(),
            3000
        );
        assert!(unnormalize(f64::NAN, &c, NormMode::Degrees, true, 4096).is_err());
        assert!(normalize(1, &cal(5, 5, 0), NormMode::Degrees, true, 4096).is_err());
    }
}
