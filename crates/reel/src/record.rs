//! `reel record`: options → cameras, robot, writer, session.

use anyhow::{bail, Context, Result};
use clap::Args;
use reel_capture::{Camera, CameraSpec};
use reel_dataset::camera::QueueLimits;
use reel_dataset::writer::{DatasetWriter, WriterConfig};
use reel_media::EncoderSettings;
use reel_record::events::Events;
use reel_record::robot::{Robot, Teleop};
use reel_record::session::{
    camera_key, features_for, FrameSource, Observer, Quiet, Session, SessionConfig, SessionReport,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct RecordArgs {
    /// Simulated robot and synthetic cameras; with no other option: 2 episodes x 5 s, 2 cameras, into ./datasets/demo.
    #[arg(long)]
    pub sim: bool,
    /// Dataset directory (default: ./datasets/demo with --sim, else ./datasets/<repo-id name>).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Dataset id (user/name); only a label locally.
    #[arg(long, default_value = "local/demo")]
    pub repo_id: String,
    /// Control loop rate (Hz).
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Episodes to record in this session.
    #[arg(long)]
    pub num_episodes: Option<u32>,
    /// Seconds per episode.
    #[arg(long)]
    pub episode_time_s: Option<f64>,
    /// Seconds of reset between episodes (robot still driven, nothing recorded).
    #[arg(long)]
    pub reset_time_s: Option<f64>,
    /// Task description stored with every frame.
    #[arg(long, default_value = "Move the arm through its range")]
    pub single_task: String,
    /// Add episodes to an existing dataset (checks fps, features and cameras match).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub resume: bool,
    /// Delete an existing dataset at --root first (only if it is a LeRobot dataset).
    #[arg(long)]
    pub overwrite: bool,
    /// A camera: NAME=INPUT[@WxH[@FPS]], INPUT = lavfi:testsrc2 | /dev/videoN | file.mp4. Repeatable.
    #[arg(long = "camera")]
    pub cameras: Vec<String>,
    /// Number of synthetic cameras when no --camera is given.
    #[arg(long)]
    pub num_cameras: Option<usize>,
    /// Size of synthetic cameras.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Video encoder: auto (default: the first AV1, then HEVC, then H.264 encoder that really
    /// opens on this machine, hardware first, as `reel encoders` lists), or a name: libsvtav1
    /// (LeRobot's default), libx264, libx265, h264_nvenc, ... or an alias av1/h264/hevc.
    #[arg(long, default_value = "auto")]
    pub vcodec: String,
    /// Quality (codec-specific CRF; LeRobot's default 30).
    #[arg(long)]
    pub crf: Option<f64>,
    /// Encoder preset (libsvtav1: 0-13, default 12; x264: ultrafast..placebo).
    #[arg(long)]
    pub preset: Option<String>,
    /// Keyframe interval (LeRobot's default 2).
    #[arg(long)]
    pub gop: Option<u32>,
    /// Deferred final codec: record live with libx264 (ultrafast, crf 18) and convert to the
    /// chosen encoder in the background at idle priority, finishing at the end. auto: only
    /// when the chosen encoder's measured speed cannot keep up with cameras x fps (30% headroom).
    #[arg(long, value_enum, default_value = "auto")]
    pub deferred: DeferredMode,
    /// Data parquet file size limit (MB).
    #[arg(long, default_value_t = 100.0)]
    pub data_files_size_mb: f64,
    /// Video file size limit (MB).
    #[arg(long, default_value_t = 200.0)]
    pub video_files_size_mb: f64,
    /// Frames per camera kept in memory before spilling to disk.
    #[arg(long, default_value_t = 60)]
    pub max_queue_frames: usize,
    /// Testing aid: make every camera's primary encoder fail (hang-open, hang-after=N,
    /// error-after=N, no-flush) to exercise the watchdog and the fallback.
    #[arg(long)]
    pub inject_fault: Option<String>,
    /// Seconds an encoder may stay silent (opening, or with frames waiting) before it is
    /// replaced by the next one; flushing may take 4x this.
    #[arg(long, default_value_t = 5.0)]
    pub encoder_timeout_s: f64,
    /// Do not fsync commits (still survives kill -9, not power loss).
    #[arg(long)]
    pub no_fsync: bool,
    /// Do not ask for SCHED_FIFO for the loop thread (by default reel asks for it, and falls
    /// back to nice -10, then to the default priority, saying what it got).
    #[arg(long)]
    pub no_realtime: bool,
    /// Do not read keys from the terminal.
    #[arg(long)]
    pub no_keys: bool,
    /// Also record a demo video of the session (cameras picture-in-picture, wall-clock timed).
    #[arg(long)]
    pub demo_video: Option<PathBuf>,
    /// Audio input of the demo video (lavfi:sine=frequency=1000, pulse:default, alsa:hw:0, a file).
    #[arg(long)]
    pub demo_audio: Option<String>,
    /// Speak "Recording episode N", "Resetting", ... through espeak-ng / spd-say when present.
    #[arg(long)]
    pub say: bool,
    #[command(flatten)]
    pub demo_layout: crate::demo::DemoLayoutArgs,
    #[command(flatten)]
    pub lerobot: crate::robot_args::LeRobotArgs,
}

/// When to record with a fast live encoder and convert to the final codec afterwards.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferredMode {
    Auto,
    Always,
    Never,
}

/// Everything a session needs, opened and checked.
pub struct Prepared {
    pub cameras: Vec<Arc<Camera>>,
    pub writer: DatasetWriter,
    pub session: SessionConfig,
    pub root: PathBuf,
}

/// The chosen (final) encoder and, when a probe measured it, whether it keeps up live with
/// `cameras` streams (`can_keep_up` with [`crate::encoders::HEADROOM`]).
pub fn encoder_settings(
    a: &RecordArgs,
    width: u32,
    height: u32,
    cameras: u32,
) -> Result<(EncoderSettings, Option<bool>)> {
    let mut keeps_up = None;
    let mut s = if a.vcodec == "auto" {
        let req = crate::encoders::request(
            width,
            height,
            a.fps,
            &["av1".into(), "hevc".into(), "h264".into()],
        );
        let cache = reel_media::encoders::default_cache_path();
        let list = reel_media::encoders::probe(&req, Duration::from_secs(2), Some(&cache));
        let best = list
            .iter()
            .find_map(|c| match c.verdict {
                reel_media::encoders::Verdict::Works { fps } => Some((c.name.clone(), fps)),
                _ => None,
            })
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--vcodec auto: no encoder opens on this machine (see `reel encoders`)"
                )
            })?;
        let keeps =
            reel_media::encoders::can_keep_up(best.1, cameras, a.fps, crate::encoders::HEADROOM);
        tracing::info!(
            "--vcodec auto: {} ({:.0} frames/s measured at {width}x{height})",
            best.0,
            best.1
        );
        keeps_up = Some(keeps);
        if !keeps && cameras > 0 && a.deferred == DeferredMode::Never {
            tracing::warn!(
                "{} measured {:.0} frames/s here; {cameras} camera(s) at {} Hz need {:.0} with headroom: frames will queue and spill to disk, the loop is unaffected, and finishing waits for the backlog (--vcodec libx264 keeps up)",
                best.0,
                best.1,
                a.fps,
                (cameras * a.fps) as f64 * (1.0 + crate::encoders::HEADROOM)
            );
        }
        EncoderSettings::lerobot_default().with_codec(&best.0)
    } else {
        let s = EncoderSettings::lerobot_default().with_codec(&a.vcodec);
        if a.deferred == DeferredMode::Auto && cameras > 0 {
            keeps_up = measured_keeps_up(&s, width, height, a.fps, cameras);
        }
        s
    };
    s = s.with_overrides(a.crf, a.preset.as_deref(), a.gop)?;
    s.validate()
        .with_context(|| format!("--vcodec {}", a.vcodec))?;
    if let Some(f) = &a.inject_fault {
        s.fault = Some(reel_media::Fault::parse(f).with_context(|| format!("--inject-fault {f}"))?);
    }
    Ok((s, keeps_up))
}

/// The probe's (cached) measurement of an explicitly named encoder: does it keep up?
fn measured_keeps_up(
    s: &EncoderSettings,
    width: u32,
    height: u32,
    fps: u32,
    cameras: u32,
) -> Option<bool> {
    let family = s.codec_family().ok()?;
    let req = crate::encoders::request(width, height, fps, &[family]);
    let list = reel_media::encoders::probe(
        &req,
        Duration::from_secs(2),
        Some(&reel_media::encoders::default_cache_path()),
    );
    list.iter()
        .find(|c| c.name == s.vcodec)
        .and_then(|c| match c.verdict {
            reel_media::encoders::Verdict::Works { fps: measured } => {
                tracing::info!(
                    "{}: {measured:.0} frames/s measured at {width}x{height}",
                    s.vcodec
                );
                Some(reel_media::encoders::can_keep_up(
                    measured,
                    cameras,
                    fps,
                    crate::encoders::HEADROOM,
                ))
            }
            _ => None,
        })
}

/// The live encoder and the deferred final one (None: record in the final codec directly).
pub fn plan_encoders(
    a: &RecordArgs,
    width: u32,
    height: u32,
    cameras: u32,
) -> Result<(EncoderSettings, Option<EncoderSettings>)> {
    let (fin, keeps_up) = encoder_settings(a, width, height, cameras)?;
    let need = (cameras * a.fps) as f64 * (1.0 + crate::encoders::HEADROOM);
    let defer = match a.deferred {
        DeferredMode::Never => false,
        DeferredMode::Always => {
            tracing::info!("--deferred always: recording live with libx264, converting to {} in the background", fin.vcodec);
            true
        }
        DeferredMode::Auto => match keeps_up {
            Some(false) if cameras > 0 => {
                tracing::info!(
                    "--deferred auto: {} cannot keep up with {cameras} camera(s) at {} Hz ({need:.0} frames/s with headroom): recording live with libx264 (ultrafast, crf 18) and converting to {} in the background at idle priority",
                    fin.vcodec,
                    a.fps,
                    fin.vcodec
                );
                true
            }
            Some(true) => {
                tracing::info!("--deferred auto: {} keeps up with {cameras} camera(s) at {} Hz: recording in it directly", fin.vcodec, a.fps);
                false
            }
            _ => false,
        },
    };
    if !defer || cameras == 0 {
        return Ok((fin, None));
    }
    let mut live = EncoderSettings::lerobot_default().with_codec("libx264");
    live.crf = Some(18.0);
    live.preset = Some("ultrafast".into());
    live.g = fin.g;
    live.pix_fmt = fin.pix_fmt.clone();
    let mut fin = fin;
    live.fault = fin.fault.take(); // injected faults are for the live encoders
    live.validate().context("live encoder libx264")?;
    Ok((live, Some(fin)))
}

pub fn prepare(a: &RecordArgs, robot: &dyn Robot) -> Result<Prepared> {
    let root = match &a.root {
        Some(r) => r.clone(),
        None if a.sim => PathBuf::from("datasets/demo"),
        None => PathBuf::from("datasets").join(a.repo_id.rsplit('/').next().unwrap_or("dataset")),
    };
    if a.overwrite && root.exists() && !a.resume {
        if !root.join("meta/info.json").exists() {
            bail!("--overwrite: {} is not a LeRobot dataset (no meta/info.json); refusing to delete it", root.display());
        }
        std::fs::remove_dir_all(&root).with_context(|| format!("deleting {}", root.display()))?;
    }
    let specs: Vec<CameraSpec> = if a.cameras.is_empty() {
        let n = a.num_cameras.unwrap_or(if a.sim { 2 } else { 0 });
        let names = ["front", "wrist", "side", "top", "left", "right"];
        (0..n)
            .map(|i| {
                CameraSpec::synthetic(
                    names.get(i).copied().unwrap_or("cam"),
                    i,
                    a.width,
                    a.height,
                    a.fps,
                )
            })
            .collect()
    } else {
        a.cameras
            .iter()
            .map(|s| crate::robot_args::camera_spec(&a.lerobot, s))
            .collect::<Result<_>>()?
    };
    let (w, h) = specs
        .iter()
        .map(|s| (s.width, s.height))
        .max_by_key(|(w, h)| w * h)
        .unwrap_or((a.width, a.height));
    let (encoder, deferred) = plan_encoders(a, w, h, specs.len() as u32)?;
    let mut cameras = Vec::new();
    for spec in &specs {
        let cam = Camera::open(spec, Duration::from_secs(5))
            .with_context(|| format!("camera '{}' ({})", spec.name, spec.input))?;
        cameras.push(Arc::new(cam));
    }
    let dims: Vec<(String, u32, u32)> = specs
        .iter()
        .map(|s| (s.name.clone(), s.width, s.height))
        .collect();
    let features = features_for(robot.joint_names(), &dims)?;
    let mut cfg = WriterConfig::new(&root, a.fps, features);
    cfg.robot_type = Some(robot.name().to_string());
    cfg.encoder = encoder;
    cfg.deferred = deferred;
    cfg.data_files_size_mb = a.data_files_size_mb;
    cfg.video_files_size_mb = a.video_files_size_mb;
    cfg.queue = QueueLimits {
        max_frames_in_memory: a.max_queue_frames,
        ..QueueLimits::default()
    };
    cfg.durable = !a.no_fsync;
    if a.encoder_timeout_s.is_nan() || a.encoder_timeout_s <= 0.0 {
        bail!("--encoder-timeout-s must be positive");
    }
    let t = Duration::from_secs_f64(a.encoder_timeout_s);
    cfg.watchdog = reel_dataset::camera::Watchdog {
        open: t,
        stall: t,
        flush: t * 4,
    };
    let writer = if a.resume {
        DatasetWriter::resume(cfg).with_context(|| format!("resuming {}", root.display()))?
    } else {
        DatasetWriter::create(cfg).with_context(|| format!("creating {}", root.display()))?
    };
    let session = SessionConfig {
        fps: a.fps,
        num_episodes: a.num_episodes.unwrap_or(if a.sim { 2 } else { 50 }),
        episode_time_s: a.episode_time_s.unwrap_or(if a.sim { 5.0 } else { 60.0 }),
        reset_time_s: a.reset_time_s.unwrap_or(if a.sim { 1.0 } else { 60.0 }),
        task: a.single_task.clone(),
        interactive: !a.no_keys,
        realtime: !a.no_realtime,
        flat_out: false,
        camera_watch: a.lerobot.camera_watch()?,
    };
    Ok(Prepared {
        cameras,
        writer,
        session,
        root,
    })
}

/// Speaks phase announcements without blocking the loop (`reel_demo::say` spawns and returns).
struct Announcer;
impl Observer for Announcer {
    fn phase(&mut self, what: &str) {
        reel_demo::say(what);
    }
}

pub fn run_session(
    p: Prepared,
    robot: &mut dyn Robot,
    teleop: &mut dyn Teleop,
    say: bool,
) -> Result<SessionReport> {
    let sources: Vec<Arc<dyn FrameSource>> = p
        .cameras
        .iter()
        .map(|c| c.clone() as Arc<dyn FrameSource>)
        .collect();
    let session = Session {
        robot,
        teleop,
        cameras: sources,
        writer: p.writer,
        cfg: p.session,
        events: Events::new(),
    };
    let report = if say {
        session.run(&mut Announcer)?
    } else {
        session.run(&mut Quiet)?
    };
    Ok(report)
}

pub fn run(mut a: RecordArgs) -> Result<()> {
    crate::robot_args::apply(&mut a)?;
    if !a.sim && a.cameras.is_empty() && a.num_cameras.is_none() {
        tracing::info!(
            "no --camera given and no --sim: recording the simulated robot without cameras"
        );
    }
    let (mut robot, mut teleop) = crate::robot_args::connect(&a)?;
    let p = prepare(&a, robot.as_ref())?;
    let root = p.root.clone();
    let keys: Vec<String> = p.cameras.iter().map(|c| camera_key(c.name())).collect();
    tracing::info!("recording into {} (cameras: {:?})", root.display(), keys);
    let demo = match &a.demo_video {
        Some(out) => {
            let cfg = crate::demo::config(
                out.clone(),
                a.fps,
                a.demo_audio.clone(),
                &a.demo_layout,
                p.cameras.len(),
            )?;
            Some((crate::demo::start(&p.cameras, cfg)?, out.clone()))
        }
        None => None,
    };
    let report = run_session(p, robot.as_mut(), teleop.as_mut(), a.say);
    if let Some((rec, out)) = demo {
        match rec.stop() {
            Ok(stats) => crate::demo::report(&stats, &out),
            Err(e) => tracing::error!("demo video {}: {e}", out.display()),
        }
    }
    let report = report?;
    let frames: u64 = report.saved.iter().map(|s| s.frames).sum();
    println!(
        "saved {} episode(s), {} frames into {}{}",
        report.saved.len(),
        frames,
        root.display(),
        if report.finalize_wait_s > 0.5 {
            if report.deferred_wait_s > 0.0 {
                format!(
                    " (finalize waited {:.1} s for the encoder backlog, of which {:.1} s for the conversion to the final codec)",
                    report.finalize_wait_s, report.deferred_wait_s
                )
            } else {
                format!(
                    " (finalize waited {:.1} s for the encoder backlog)",
                    report.finalize_wait_s
                )
            }
        } else {
            String::new()
        }
    );
    if report.interrupted {
        println!("stopped by signal; every saved episode is complete");
    }
    Ok(())
}
