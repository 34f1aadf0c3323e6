//! LeRobot 0.6.1's calibration procedure (`SOFollower.calibrate`, `KochLeader.calibrate`, …)
//! step for step, with the person at the arm behind an [`Operator`]:
//!
//! 1. a calibration file exists: ENTER writes it to the motors, `c` calibrates again;
//! 2. torque off, Operating_Mode = position (Feetech) / extended position (Dynamixel); the
//!    Koch leader's elbow gets Drive_Mode 1;
//! 3. "move to the middle": homing offsets reset (Homing_Offset 0, limits 0..4095), positions
//!    read, `offset = pos - 2047` (Feetech) or `2047 - pos` (Dynamixel) written;
//! 4. range sweep: min/max of each joint while the person moves them, until ENTER (the
//!    full-turn joints are set to 0..4095);
//! 5. Homing_Offset, Min/Max_Position_Limit written to the motors, the file saved.

use crate::arm::{Arm, ArmConfig};
use crate::calibration::{Calibration, MotorCalibration};
use crate::sim::wire::Protocol;
use reel_core::{Error, Result};
use std::path::PathBuf;
use std::time::Duration;

/// The person at the arm.
pub trait Operator {
    /// Shows `msg` and waits for a line (ENTER); returns it without the newline.
    fn prompt(&mut self, msg: &str) -> Result<String>;
    /// Shows a message.
    fn say(&mut self, msg: &str);
    /// Non-blocking: has ENTER been pressed since the last call?
    fn enter_pressed(&mut self) -> Result<bool>;
    /// Shows the live table of the range sweep (redrawn in place on a terminal).
    fn show_ranges(&mut self, table: &str);
}

/// What the procedure did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub calibration: Calibration,
    pub path: PathBuf,
    /// True when an existing file was written to the motors instead of calibrating again.
    pub reused_file: bool,
}

/// Runs the procedure for the arm `cfg` describes.
pub fn calibrate(cfg: &ArmConfig, op: &mut dyn Operator) -> Result<Outcome> {
    let robot = cfg.robot;
    let path = cfg.calibration_file();
    let mut arm = Arm::open(cfg)?;
    let motors = arm.motors().to_vec();
    let who = format!("{} {}", cfg.id, robot.type_name());
    if robot.protocol() == Protocol::Dynamixel {
        arm.bus().set_torque(&[], false, 2)?;
    }
    if path.is_file() {
        let existing =
            Calibration::load(&path)?.check_for(robot, &motors, &path.display().to_string())?;
        let answer = op.prompt(&format!(
            "Press ENTER to use provided calibration file associated with the id {} ({}), or type 'c' and press ENTER to run calibration: ",
            cfg.id,
            path.display()
        ))?;
        if !answer.trim().eq_ignore_ascii_case("c") {
            op.say(&format!(
                "Writing calibration file associated with the id {} to the motors",
                cfg.id
            ));
            arm.bus().set_torque(&[], false, 2)?;
            arm.write_calibration(&existing)?;
            return Ok(Outcome {
                calibration: existing,
                path,
                reused_file: true,
            });
        }
    }
    op.say(&format!("Running calibration of {who}"));
    arm.bus().set_torque(&[], false, 2)?;
    let mode = robot.calibration_operating_mode();
    for m in &motors {
        arm.bus().write(m.name, "Operating_Mode", i64::from(mode))?;
    }
    let drive_modes: Vec<i64> = motors
        .iter()
        .map(|m| i64::from(robot.calibration_drive_mode(m.name)))
        .collect();
    if robot.protocol() == Protocol::Dynamixel {
        for (m, d) in motors.iter().zip(&drive_modes) {
            if *d != 0 {
                arm.bus().write(m.name, "Drive_Mode", *d)?;
            }
        }
    }
    op.prompt(&format!(
        "Move {who} to the middle of its range of motion and press ENTER...."
    ))?;
    // set_half_turn_homings: reset, read, compute, write.
    for m in &motors {
        let max_res = i64::from(m.model.resolution()) - 1;
        arm.bus().write(m.name, "Homing_Offset", 0)?;
        arm.bus().write(m.name, "Min_Position_Limit", 0)?;
        arm.bus().write(m.name, "Max_Position_Limit", max_res)?;
    }
    let positions = read_with_retries(&mut arm, 5)?;
    let mut offsets = Vec::with_capacity(motors.len());
    for (m, &pos) in motors.iter().zip(&positions) {
        let half = (i64::from(m.model.resolution()) - 1) / 2;
        let off = match robot.protocol() {
            Protocol::Feetech => pos - half,
            Protocol::Dynamixel => half - pos,
        };
        arm.bus().write(m.name, "Homing_Offset", off)?;
        offsets.push(off);
    }
    let full = robot.full_turn_motors();
    op.say(&format!(
        "Move all joints except {full:?} sequentially through their entire ranges of motion.\nRecording positions. Press ENTER to stop..."
    ));
    let sweep: Vec<usize> = (0..motors.len())
        .filter(|&i| !full.contains(&motors[i].name))
        .collect();
    let start = read_with_retries(&mut arm, 5)?;
    let mut mins = start.clone();
    let mut maxes = start.clone();
    loop {
        let pos = read_with_retries(&mut arm, 5)?;
        for &i in &sweep {
            mins[i] = mins[i].min(pos[i]);
            maxes[i] = maxes[i].max(pos[i]);
        }
        let mut table = format!(
            "{:<15} | {:>6} | {:>6} | {:>6}\n",
            "NAME", "MIN", "POS", "MAX"
        );
        for &i in &sweep {
            table.push_str(&format!(
                "{:<15} | {:>6} | {:>6} | {:>6}\n",
                motors[i].name, mins[i], pos[i], maxes[i]
            ));
        }
        op.show_ranges(&table);
        if op.enter_pressed()? {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let same: Vec<&str> = sweep
        .iter()
        .filter(|&&i| mins[i] == maxes[i])
        .map(|&i| motors[i].name)
        .collect();
    if !same.is_empty() {
        return Err(Error::invalid(format!(
            "some motors have the same min and max values (they were not moved): {same:?}; run the calibration again and move every joint through its range"
        )));
    }
    let mut cal = Vec::with_capacity(motors.len());
    for (i, m) in motors.iter().enumerate() {
        let (lo, hi) = if full.contains(&m.name) {
            (0, 4095)
        } else {
            (mins[i], maxes[i])
        };
        cal.push((
            m.name.to_string(),
            MotorCalibration {
                id: i64::from(m.id),
                drive_mode: drive_modes[i],
                homing_offset: offsets[i],
                range_min: lo,
                range_max: hi,
            },
        ));
    }
    let calibration = Calibration { motors: cal };
    arm.write_calibration(&calibration)?;
    calibration.save(&path)?;
    arm.set_calibration(calibration.clone());
    op.say(&format!("Calibration saved to {}", path.display()));
    Ok(Outcome {
        calibration,
        path,
        reused_file: false,
    })
}

fn read_with_retries(arm: &mut Arm, retries: u32) -> Result<Vec<i64>> {
    let mut last = None;
    for _ in 0..=retries {
        match arm.read_raw() {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::invalid("sync read failed")))
}

/// An operator on the terminal: prompts on stdout, ENTER from stdin (read on a helper thread
/// so that the range sweep never blocks on it).
pub struct Terminal {
    lines: std::sync::mpsc::Receiver<String>,
    tty: bool,
    drawn: usize,
}

impl Terminal {
    pub fn new() -> Terminal {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut line = String::new();
            loop {
                line.clear();
                match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx
                            .send(line.trim_end_matches(['\r', '\n']).to_string())
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        use std::io::IsTerminal;
        Terminal {
            lines: rx,
            tty: std::io::stdout().is_terminal(),
            drawn: 0,
        }
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Terminal::new()
    }
}

impl Operator for Terminal {
    fn prompt(&mut self, msg: &str) -> Result<String> {
        use std::io::Write;
        print!("{msg}");
        let _ = std::io::stdout().flush();
        self.drawn = 0;
        self.lines
            .recv()
            .map_err(|_| Error::invalid("standard input closed before ENTER was pressed"))
    }
    fn say(&mut self, msg: &str) {
        println!("{msg}");
        self.drawn = 0;
    }
    fn enter_pressed(&mut self) -> Result<bool> {
        match self.lines.try_recv() {
            Ok(_) => Ok(true),
            Err(std::sync::mpsc::TryRecvError::Empty) => Ok(false),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Err(Error::invalid(
                "standard input closed before ENTER ended the range recording",
            )),
        }
    }
    fn show_ranges(&mut self, table: &str) {
        if self.tty {
            if self.drawn > 0 {
                print!("\x1b[{}A", self.drawn);
            }
            print!("{table}");
            self.drawn = table.lines().count();
        }
    }
}
