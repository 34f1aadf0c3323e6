//! `reel calibrate` (LeRobot's calibration procedure and file, with lerobot-calibrate's flag
//! names) and `reel sim-bus` (a simulated arm on a pseudo-terminal).

use anyhow::{bail, Context, Result};
use clap::Args;
use reel_robots::calibrate::{calibrate, Terminal};
use reel_robots::sim::wire::Protocol;
use reel_robots::{Motion, SimBus, SimConfig};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct CalibrateArgs {
    /// A follower: so100_follower, so101_follower, koch_follower.
    #[arg(long = "robot.type")]
    pub robot_type: Option<String>,
    #[arg(long = "robot.port")]
    pub robot_port: Option<String>,
    #[arg(long = "robot.id")]
    pub robot_id: Option<String>,
    #[arg(long = "robot.calibration_dir")]
    pub robot_calibration_dir: Option<PathBuf>,
    #[arg(long = "robot.use_degrees", value_parser = clap::builder::BoolishValueParser::new())]
    pub robot_use_degrees: Option<bool>,
    /// A leader: so100_leader, so101_leader, koch_leader.
    #[arg(long = "teleop.type")]
    pub teleop_type: Option<String>,
    #[arg(long = "teleop.port")]
    pub teleop_port: Option<String>,
    #[arg(long = "teleop.id")]
    pub teleop_id: Option<String>,
    #[arg(long = "teleop.calibration_dir")]
    pub teleop_calibration_dir: Option<PathBuf>,
}

pub fn run_calibrate(a: CalibrateArgs) -> Result<()> {
    let cfg = match (&a.robot_type, &a.teleop_type) {
        (Some(t), None) => crate::robot_args::arm_config(
            "robot",
            t,
            a.robot_port.as_deref(),
            a.robot_id.as_deref(),
            a.robot_calibration_dir.clone(),
            a.robot_use_degrees,
        )?,
        (None, Some(t)) => crate::robot_args::arm_config(
            "teleop",
            t,
            a.teleop_port.as_deref(),
            a.teleop_id.as_deref(),
            a.teleop_calibration_dir.clone(),
            None,
        )?,
        (Some(_), Some(_)) => bail!("calibrate one arm at a time: --robot.type or --teleop.type"),
        (None, None) => bail!("give --robot.type (a follower) or --teleop.type (a leader)"),
    };
    let out = calibrate(&cfg, &mut Terminal::new())
        .with_context(|| format!("calibrating {} on {}", cfg.robot.type_name(), cfg.port))?;
    for (name, c) in &out.calibration.motors {
        println!(
            "{name:<15} id {} drive_mode {} homing_offset {:>6} range {}..{}",
            c.id, c.drive_mode, c.homing_offset, c.range_min, c.range_max
        );
    }
    if out.reused_file {
        println!("wrote {} to the motors", out.path.display());
    }
    Ok(())
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolArg {
    Feetech,
    Dynamixel,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MotionArg {
    Sine,
    Still,
}

#[derive(Args, Debug, Clone)]
pub struct SimBusArgs {
    /// The arm on the bus: so100, so101, koch, koch_leader, or a robot type (so101_leader, ...).
    #[arg(long, default_value = "so101")]
    pub robot: String,
    /// The protocol (implied by --robot; an error when it disagrees).
    #[arg(long, value_enum)]
    pub protocol: Option<ProtocolArg>,
    /// Fraction of status packets corrupted or missing (0.01 = 1 %).
    #[arg(long, default_value_t = 0.0)]
    pub corrupt: f64,
    /// How joints move while their torque is off: a simulated hand (sine) or nobody (still).
    #[arg(long, value_enum, default_value = "sine")]
    pub motion: MotionArg,
    /// A servo id that does not answer (repeatable).
    #[arg(long = "absent-id")]
    pub absent: Vec<u8>,
    /// Seed of the fault injector.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Testing aid: write every sync read of Present_Position / sync write of Goal_Position here.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Stop after this many seconds (default: until Ctrl-C / SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
}

pub fn run_sim_bus(a: SimBusArgs) -> Result<()> {
    let robot = SimConfig::parse_robot(&a.robot)?;
    if let Some(p) = a.protocol {
        let want = match p {
            ProtocolArg::Feetech => Protocol::Feetech,
            ProtocolArg::Dynamixel => Protocol::Dynamixel,
        };
        if want != robot.protocol() {
            bail!(
                "--protocol {} does not match --robot {}, whose servos speak {}",
                want.name(),
                a.robot,
                robot.protocol().name()
            );
        }
    }
    let mut cfg = SimConfig::new(robot);
    cfg.corrupt = a.corrupt;
    cfg.motion = match a.motion {
        MotionArg::Sine => Motion::Sine,
        MotionArg::Still => Motion::Still,
    };
    cfg.absent = a.absent.clone();
    cfg.seed = a.seed;
    cfg.trace = a.trace.clone();
    cfg.realtime = true;
    let stop = reel_core::StopToken::new();
    let _signals = reel_core::stop::on_signals(&stop).context("installing signal handlers")?;
    let bus = SimBus::start(cfg)?;
    println!("{}", bus.path().display());
    let _ = std::io::stdout().flush();
    eprintln!(
        "simulating a {} ({} protocol, 1 Mbps) on {}; try: reel record --robot.type={} --robot.port={} ...  (Ctrl-C stops)",
        robot.type_name(),
        robot.protocol().name(),
        bus.path().display(),
        robot.type_name(),
        bus.path().display()
    );
    let start = std::time::Instant::now();
    while !stop.requested() {
        if a.duration
            .is_some_and(|d| start.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = bus.stop();
    eprintln!(
        "sim-bus: {} instructions, {} status packets sent, {} corrupted, {} dropped, {} junk bytes",
        s.instructions, s.status_sent, s.corrupted, s.dropped, s.junk_bytes
    );
    Ok(())
}
