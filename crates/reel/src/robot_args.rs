//! lerobot-record's flag names for `reel record` (`--robot.type`, `--teleop.port`,
//! `--dataset.num_episodes`, `--robot.cameras "{front: {type: opencv, ...}}"`, ...), translated
//! into reel's own options and into robots from `reel-robots`; plus the camera-loss options.
//! Only translation lives here: the behaviour is in the library crates.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use reel_capture::CameraSpec;
use reel_record::robot::{Robot, SimRobot, SimTeleop, Teleop};
use reel_record::watch::{CameraWatchConfig, OnCameraLoss};
use reel_robots::{ArmConfig, Follower, Leader, MaxRelative, RobotType};
use std::path::PathBuf;
use std::time::Duration;

fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

/// LeRobot's flags (and the camera-loss options), flattened into `reel record`.
#[derive(Args, Debug, Clone, Default)]
pub struct LeRobotArgs {
    /// Robot type, as lerobot-record: so100_follower, so101_follower, koch_follower.
    #[arg(long = "robot.type", help_heading = "LeRobot flags")]
    pub robot_type: Option<String>,
    /// Serial port of the follower arm (/dev/ttyACM0; `reel sim-bus` prints a simulated one).
    #[arg(long = "robot.port", help_heading = "LeRobot flags")]
    pub robot_port: Option<String>,
    /// Robot id: names its calibration file (<calibration dir>/robots/<name>/<id>.json).
    #[arg(long = "robot.id", help_heading = "LeRobot flags")]
    pub robot_id: Option<String>,
    /// Directory holding <id>.json (default: LeRobot's calibration directory).
    #[arg(long = "robot.calibration_dir", help_heading = "LeRobot flags")]
    pub robot_calibration_dir: Option<PathBuf>,
    /// Cameras in LeRobot's form: "{front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}}".
    #[arg(long = "robot.cameras", help_heading = "LeRobot flags")]
    pub robot_cameras: Option<String>,
    /// Joints in degrees (LeRobot's default: true for SO arms, false for Koch).
    #[arg(long = "robot.use_degrees", value_parser = boolish(), help_heading = "LeRobot flags")]
    pub robot_use_degrees: Option<bool>,
    /// Cap on |goal - present| per tick: one number, or "{shoulder_pan: 5, ...}".
    #[arg(long = "robot.max_relative_target", help_heading = "LeRobot flags")]
    pub robot_max_relative_target: Option<String>,
    /// Extra sync-read attempts in a tick when one fails (LeRobot's default 2).
    #[arg(long = "robot.num_read_retries", help_heading = "LeRobot flags")]
    pub robot_num_read_retries: Option<u32>,
    #[arg(long = "robot.disable_torque_on_disconnect", value_parser = boolish(), help_heading = "LeRobot flags")]
    pub robot_disable_torque_on_disconnect: Option<bool>,
    /// Teleoperator type: so100_leader, so101_leader, koch_leader.
    #[arg(long = "teleop.type", help_heading = "LeRobot flags")]
    pub teleop_type: Option<String>,
    #[arg(long = "teleop.port", help_heading = "LeRobot flags")]
    pub teleop_port: Option<String>,
    #[arg(long = "teleop.id", help_heading = "LeRobot flags")]
    pub teleop_id: Option<String>,
    #[arg(long = "teleop.calibration_dir", help_heading = "LeRobot flags")]
    pub teleop_calibration_dir: Option<PathBuf>,
    #[arg(long = "teleop.use_degrees", value_parser = boolish(), help_heading = "LeRobot flags")]
    pub teleop_use_degrees: Option<bool>,
    #[arg(long = "dataset.repo_id", help_heading = "LeRobot flags")]
    pub dataset_repo_id: Option<String>,
    #[arg(long = "dataset.root", help_heading = "LeRobot flags")]
    pub dataset_root: Option<PathBuf>,
    #[arg(long = "dataset.num_episodes", help_heading = "LeRobot flags")]
    pub dataset_num_episodes: Option<u32>,
    #[arg(long = "dataset.episode_time_s", help_heading = "LeRobot flags")]
    pub dataset_episode_time_s: Option<f64>,
    #[arg(long = "dataset.reset_time_s", help_heading = "LeRobot flags")]
    pub dataset_reset_time_s: Option<f64>,
    #[arg(long = "dataset.single_task", help_heading = "LeRobot flags")]
    pub dataset_single_task: Option<String>,
    #[arg(long = "dataset.fps", help_heading = "LeRobot flags")]
    pub dataset_fps: Option<u32>,
    /// Accepted for LeRobot command lines; reel does not upload (push the folder with huggingface-cli).
    #[arg(long = "dataset.push_to_hub", value_parser = boolish(), hide = true)]
    pub dataset_push_to_hub: Option<bool>,
    /// Accepted for LeRobot command lines, no effect in reel.
    #[arg(long = "display_data", value_parser = boolish(), hide = true)]
    pub display_data: Option<bool>,
    #[arg(long = "play_sounds", value_parser = boolish(), hide = true)]
    pub play_sounds: Option<bool>,
    #[arg(long = "dataset.video", value_parser = boolish(), hide = true)]
    pub dataset_video: Option<bool>,
    #[arg(long = "dataset.private", value_parser = boolish(), hide = true)]
    pub dataset_private: Option<bool>,
    #[arg(long = "dataset.num_image_writer_processes", hide = true)]
    pub dataset_num_image_writer_processes: Option<u32>,
    #[arg(long = "dataset.num_image_writer_threads_per_camera", hide = true)]
    pub dataset_num_image_writer_threads_per_camera: Option<u32>,
    #[arg(long = "dataset.streaming_encoding", value_parser = boolish(), hide = true)]
    pub dataset_streaming_encoding: Option<bool>,
    /// A camera whose newest frame is older than this is lost (reported, then --on-camera-loss).
    #[arg(long = "camera-timeout-ms", default_value_t = 500)]
    pub camera_timeout_ms: u64,
    /// When a camera is lost mid-episode: end the episode there (saved) and stop, or continue
    /// with its frames flagged stale (reel/camera/<name>/stale_frames).
    #[arg(long = "on-camera-loss", value_enum, default_value = "end-episode")]
    pub on_camera_loss: CameraLoss,
    /// Testing aid: NAME=error-after=SECONDS | NAME=end-file | NAME=stall=AT:LEN | NAME=fps=F.
    #[arg(long = "camera-fault")]
    pub camera_faults: Vec<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CameraLoss {
    #[default]
    EndEpisode,
    Continue,
}

impl LeRobotArgs {
    /// The loop's camera watch.
    pub fn camera_watch(&self) -> Result<CameraWatchConfig> {
        if self.camera_timeout_ms == 0 {
            bail!("--camera-timeout-ms must be positive");
        }
        Ok(CameraWatchConfig {
            deadline: Duration::from_millis(self.camera_timeout_ms),
            on_loss: match self.on_camera_loss {
                CameraLoss::EndEpisode => OnCameraLoss::EndEpisode,
                CameraLoss::Continue => OnCameraLoss::Continue,
            },
        })
    }
}

/// Copies the LeRobot flags onto reel's own options (a LeRobot flag wins).
pub fn apply(a: &mut crate::record::RecordArgs) -> Result<()> {
    let l = a.lerobot.clone();
    if let Some(v) = l.dataset_repo_id {
        if a.root.is_none() && l.dataset_root.is_none() {
            // LeRobot's default root: $HF_LEROBOT_HOME/<repo_id>.
            a.root = Some(lerobot_home().join(&v));
        }
        a.repo_id = v;
    }
    if let Some(v) = l.dataset_root {
        a.root = Some(v);
    }
    if let Some(v) = l.dataset_num_episodes {
        a.num_episodes = Some(v);
    }
    if let Some(v) = l.dataset_episode_time_s {
        a.episode_time_s = Some(v);
    }
    if let Some(v) = l.dataset_reset_time_s {
        a.reset_time_s = Some(v);
    }
    if let Some(v) = l.dataset_single_task {
        a.single_task = v;
    }
    if let Some(v) = l.dataset_fps {
        a.setup.fps = v;
    }
    if l.dataset_push_to_hub == Some(true) {
        tracing::warn!("--dataset.push_to_hub=true: reel does not upload; push the dataset folder afterwards (huggingface-cli upload --repo-type dataset)");
    }
    if l.display_data == Some(true) {
        tracing::info!("--display_data=true: showing the session on reel's live page (--display)");
        a.display = true;
    }
    if let Some(c) = &l.robot_cameras {
        for (name, spec) in lerobot_cameras(c).context("--robot.cameras")? {
            if a.setup
                .cameras
                .iter()
                .any(|s| s.split('=').next() == Some(name.as_str()))
            {
                bail!("camera '{name}' is given twice (--robot.cameras and --camera)");
            }
            a.setup.cameras.push(spec);
        }
    }
    Ok(())
}

fn lerobot_home() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_LEROBOT_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let hf = std::env::var_os("HF_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into()))
                .join(".cache/huggingface")
        });
    hf.join("lerobot")
}

/// A `--camera` spec string with the `--camera-fault`s for that camera applied.
pub fn camera_spec(l: &LeRobotArgs, s: &str) -> Result<CameraSpec> {
    let mut spec = CameraSpec::parse(s).with_context(|| format!("--camera {s}"))?;
    for f in &l.camera_faults {
        let (name, fault) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("--camera-fault {f}: expected NAME=FAULT"))?;
        if name == spec.name {
            spec.apply_fault(fault)
                .with_context(|| format!("--camera-fault {f}"))?;
        }
    }
    Ok(spec)
}

/// The robot and teleoperator of the session: the simulated pair, or real arms from the
/// LeRobot flags (the teleoperator connects first, as LeRobot does).
pub fn connect(a: &crate::record::RecordArgs) -> Result<(Box<dyn Robot>, Box<dyn Teleop>)> {
    let l = &a.lerobot;
    match (&l.robot_type, &l.teleop_type) {
        (None, None) => {
            if l.robot_port.is_some() || l.teleop_port.is_some() {
                bail!("--robot.port/--teleop.port need --robot.type/--teleop.type");
            }
            Ok((Box::new(SimRobot::new()), Box::new(SimTeleop::default())))
        }
        (Some(_), None) => {
            bail!("--robot.type needs a --teleop.type (a leader arm): reel records teleoperation")
        }
        (None, Some(_)) => bail!("--teleop.type needs a --robot.type (the follower arm)"),
        (Some(rt), Some(tt)) => {
            if a.setup.sim {
                bail!("--sim records the simulated arm: drop it to use --robot.type={rt}");
            }
            let tcfg = arm_config(
                "teleop",
                tt,
                l.teleop_port.as_deref(),
                l.teleop_id.as_deref(),
                l.teleop_calibration_dir.clone(),
                l.teleop_use_degrees,
            )?;
            let mut rcfg = arm_config(
                "robot",
                rt,
                l.robot_port.as_deref(),
                l.robot_id.as_deref(),
                l.robot_calibration_dir.clone(),
                l.robot_use_degrees,
            )?;
            if let Some(m) = &l.robot_max_relative_target {
                rcfg.max_relative_target =
                    Some(max_relative(m).context("--robot.max_relative_target")?);
            }
            if let Some(n) = l.robot_num_read_retries {
                rcfg.num_read_retries = n;
            }
            if let Some(d) = l.robot_disable_torque_on_disconnect {
                rcfg.disable_torque_on_disconnect = d;
            }
            let leader = Leader::connect(&tcfg).context("connecting the teleoperator")?;
            let follower = Follower::connect(&rcfg).context("connecting the robot")?;
            if leader.joint_names() != follower_names(&follower) {
                bail!(
                    "{} and {} have different joints ({:?} vs {:?})",
                    tt,
                    rt,
                    leader.joint_names(),
                    follower_names(&follower)
                );
            }
            if tcfg.use_degrees() != rcfg.use_degrees()
                && tcfg.robot.has_use_degrees()
                && rcfg.robot.has_use_degrees()
            {
                tracing::warn!("the leader reports {} and the follower expects {}: pass the same --teleop.use_degrees and --robot.use_degrees",
                    if tcfg.use_degrees() { "degrees" } else { "-100..100" },
                    if rcfg.use_degrees() { "degrees" } else { "-100..100" });
            }
            tracing::info!(
                "teleoperating {rt} on {} from {tt} on {}",
                rcfg.port,
                tcfg.port
            );
            Ok((Box::new(follower), Box::new(leader)))
        }
    }
}

fn follower_names(f: &Follower) -> Vec<String> {
    Robot::joint_names(f).to_vec()
}

/// An arm's configuration from its `--robot.*` / `--teleop.*` flags.
pub fn arm_config(
    role: &str,
    kind: &str,
    port: Option<&str>,
    id: Option<&str>,
    dir: Option<PathBuf>,
    use_degrees: Option<bool>,
) -> Result<ArmConfig> {
    let robot = RobotType::parse(kind).with_context(|| format!("--{role}.type"))?;
    let port =
        port.ok_or_else(|| anyhow!("--{role}.port is required with --{role}.type={kind}"))?;
    let id = match id {
        Some(i) => i.to_string(),
        None => {
            tracing::warn!("no --{role}.id: using LeRobot's default, which names the calibration file None.json");
            "None".to_string()
        }
    };
    let mut cfg = ArmConfig::new(robot, port, &id);
    cfg.calibration_dir = dir;
    if use_degrees.is_some() && !robot.has_use_degrees() {
        bail!("--{role}.use_degrees does not apply to {kind} (it always reports -100..100)");
    }
    cfg.use_degrees = use_degrees;
    Ok(cfg)
}

/// `5`, or `{shoulder_pan: 5, gripper: 10}`.
fn max_relative(s: &str) -> Result<MaxRelative> {
    if let Ok(v) = s.trim().parse::<f64>() {
        if !(v.is_finite() && v > 0.0) {
            bail!("{v} must be a positive number");
        }
        return Ok(MaxRelative::All(v));
    }
    let map = parse_flow(s)?;
    let Flow::Map(items) = map else {
        bail!("expected a number or {{motor: number, ...}}");
    };
    let mut out = Vec::new();
    for (k, v) in items {
        let Flow::Scalar(x) = v else {
            bail!("{k}: expected a number");
        };
        let x: f64 = x
            .parse()
            .map_err(|_| anyhow!("{k}: '{x}' is not a number"))?;
        if !(x.is_finite() && x > 0.0) {
            bail!("{k}: {x} must be a positive number");
        }
        out.push((k, x));
    }
    Ok(MaxRelative::PerMotor(out))
}

/// A YAML flow value as draccus accepts on LeRobot's command line.
#[derive(Debug, Clone, PartialEq)]
enum Flow {
    Scalar(String),
    Map(Vec<(String, Flow)>),
}

/// Parses a YAML flow value (what draccus, LeRobot's option parser, reads with PyYAML) with
/// `yaml-rust2`, keeping only what LeRobot's robot flags use: maps of scalars and maps.
fn parse_flow(s: &str) -> Result<Flow> {
    let docs = yaml_rust2::YamlLoader::load_from_str(s).map_err(|e| anyhow!("not YAML: {e}"))?;
    match docs.as_slice() {
        [doc] => flow_of(doc, 0),
        [] => bail!("empty value"),
        _ => bail!("expected one YAML value, got {}", docs.len()),
    }
}

fn flow_of(y: &yaml_rust2::Yaml, depth: usize) -> Result<Flow> {
    use yaml_rust2::Yaml;
    if depth > 8 {
        bail!("nested too deeply");
    }
    Ok(match y {
        Yaml::Hash(h) => {
            let mut items = Vec::with_capacity(h.len());
            for (k, v) in h {
                let Flow::Scalar(key) = flow_of(k, depth + 1)? else {
                    bail!("a key must be a name, not a map");
                };
                items.push((key, flow_of(v, depth + 1)?));
            }
            Flow::Map(items)
        }
        Yaml::String(v) | Yaml::Real(v) => Flow::Scalar(v.clone()),
        Yaml::Integer(i) => Flow::Scalar(i.to_string()),
        Yaml::Boolean(b) => Flow::Scalar(b.to_string()),
        Yaml::Null => bail!("empty value"),
        Yaml::Array(_) => bail!("a list is not accepted here"),
        Yaml::Alias(_) | Yaml::BadValue => bail!("unsupported YAML value"),
    })
}

/// `--robot.cameras` → (name, reel `--camera` spec) pairs. OpenCV cameras map to V4L2 devices
/// (`index_or_path: 2` is /dev/video2) or files; `fourcc: MJPG|YUYV` picks the format.
pub fn lerobot_cameras(s: &str) -> Result<Vec<(String, String)>> {
    let Flow::Map(cams) = parse_flow(s)? else {
        bail!("expected {{name: {{type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}}, ...}}");
    };
    let mut out = Vec::new();
    for (name, cfg) in cams {
        let Flow::Map(fields) = cfg else {
            bail!("camera '{name}': expected {{type: opencv, ...}}");
        };
        let get = |k: &str| -> Option<String> {
            fields
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| match v {
                    Flow::Scalar(s) => Some(s.clone()),
                    Flow::Map(_) => None,
                })
        };
        for (k, _) in &fields {
            if !matches!(
                k.as_str(),
                "type"
                    | "index_or_path"
                    | "width"
                    | "height"
                    | "fps"
                    | "fourcc"
                    | "color_mode"
                    | "rotation"
                    | "warmup_s"
                    | "backend"
            ) {
                bail!("camera '{name}': option '{k}' is not supported by reel");
            }
        }
        match get("type").as_deref() {
            Some("opencv") => {}
            Some(t) => bail!("camera '{name}': type '{t}' is not supported by reel (opencv-style cameras: V4L2 devices and files)"),
            None => bail!("camera '{name}': missing 'type' (e.g. type: opencv)"),
        }
        let input = match get("index_or_path") {
            Some(v) => match v.parse::<u32>() {
                Ok(n) => format!("/dev/video{n}"),
                Err(_) => v,
            },
            None => bail!("camera '{name}': missing 'index_or_path'"),
        };
        let num = |k: &str| -> Result<u32> {
            let v = get(k).ok_or_else(|| {
                anyhow!("camera '{name}': '{k}' is required for a robot's camera (as in LeRobot)")
            })?;
            v.parse()
                .map_err(|_| anyhow!("camera '{name}': {k} '{v}' is not a whole number"))
        };
        let (w, h, fps) = (num("width")?, num("height")?, num("fps")?);
        let fmt = match get("fourcc").map(|f| f.to_ascii_uppercase()).as_deref() {
            None => String::new(),
            Some("MJPG") => "@mjpeg".into(),
            Some("YUYV") => "@yuyv422".into(),
            Some(f) => bail!("camera '{name}': fourcc '{f}' is not supported (MJPG or YUYV)"),
        };
        if let Some(r) = get("rotation") {
            if !matches!(r.as_str(), "0" | "NO_ROTATION" | "Cv2Rotation.NO_ROTATION") {
                bail!("camera '{name}': rotation {r} is not supported by reel");
            }
        }
        if get("color_mode").is_some_and(|m| m.eq_ignore_ascii_case("bgr")) {
            bail!("camera '{name}': color_mode bgr is not supported (reel records RGB, LeRobot's default)");
        }
        out.push((name.clone(), format!("{name}={input}@{w}x{h}@{fps}{fmt}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lerobot_camera_flags_translate() {
        let c = lerobot_cameras(
            "{ front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30, fourcc: MJPG}, wrist: {type: opencv, index_or_path: \"/dev/v4l/by-path/pci-0000:00:14.0-usb-0:2:1.0-video-index0\", width: 320, height: 240, fps: 30}}",
        )
        .unwrap();
        assert_eq!(
            c[0],
            ("front".into(), "front=/dev/video0@640x480@30@mjpeg".into())
        );
        assert!(c[1]
            .1
            .starts_with("wrist=/dev/v4l/by-path/pci-0000:00:14.0"));
        for bad in [
            "{front: {type: intelrealsense, serial_number_or_name: 1, width: 1, height: 1, fps: 1}}",
            "{front: {type: opencv, index_or_path: 0, width: 640, fps: 30}}",
            "{front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30, zoom: 2}}",
            "{front: {type: opencv",
            "front",
            "{front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}, front: {type: opencv, index_or_path: 1, width: 640, height: 480, fps: 30}}",
            "{front: [1, 2]}",
            "",
        ] {
            assert!(lerobot_cameras(bad).is_err(), "{bad}");
        }
        assert_eq!(max_relative("5").unwrap(), MaxRelative::All(5.0));
        assert!(max_relative("{gripper: -1}").is_err());
        assert_eq!(
            max_relative("{gripper: 10, shoulder_pan: 2.5}").unwrap(),
            MaxRelative::PerMotor(vec![("gripper".into(), 10.0), ("shoulder_pan".into(), 2.5)])
        );
    }
}
