//! `reel record`: options → cameras, robot, writer, session.

use anyhow::{bail, Context, Result};
use clap::Args;
use reel_capture::{Camera, CameraSpec};
use reel_core::StopToken;
use reel_engine::camera::QueueLimits;
use reel_engine::front;
use reel_engine::plan::{self, EncoderPlan, EncoderRequest};
use reel_engine::writer::{DatasetWriter, OpenMode, WriterConfig};
use reel_record::bus::PolledRobot;
use reel_record::events::Events;
use reel_record::robot::{Robot, Teleop};
use reel_record::samples::StreamCutter;
use reel_record::session::{
    camera_key, features_with_depth, FrameSource, Observer, Quiet, Session, SessionConfig,
    SessionReport,
};
use reel_report::live::{CameraFeed, LiveConfig, LiveServer};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct RecordArgs {
    /// The robot, cameras, rate and encoder (shared with `reel doctor`).
    #[command(flatten)]
    pub setup: SetupArgs,
    /// Dataset directory (default: ./datasets/demo with --sim, else ./datasets/<repo-id name>).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Dataset id (user/name); only a label locally.
    #[arg(long, default_value = "local/demo")]
    pub repo_id: String,
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
    /// Delete an existing dataset at --root first (only a LeRobot dataset, and only after every
    /// option, camera and encoder has been checked).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Data parquet file size limit (MB; default LeRobot's 100, or the dataset's own with --resume).
    #[arg(long)]
    pub data_files_size_mb: Option<f64>,
    /// Video file size limit (MB; default LeRobot's 200, or the dataset's own with --resume).
    #[arg(long)]
    pub video_files_size_mb: Option<f64>,
    /// Do not fsync commits (still survives kill -9, not power loss).
    #[arg(long)]
    pub no_fsync: bool,
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
    /// Show the session live on a local page (127.0.0.1): cameras, tick timing, encoder
    /// backlog, episode/reset state. The loop never waits for it.
    #[arg(long)]
    pub display: bool,
    /// Port of the live page (0: any free port; the URL is printed).
    #[arg(long, default_value_t = 8765)]
    pub display_port: u16,
    /// Read the robot's joints on a bus thread at this rate (Hz, from the loop's rate up to
    /// 2000) and store every successful read, with its read time, as the side stream `servo`
    /// (`meta/reel/streams/servo/`); the loop takes the latest reading without waiting.
    #[arg(long)]
    pub servo_stream_hz: Option<u32>,
    /// Record this audio input as the side stream `audio` (48 kHz, stereo float, every
    /// sample timed on the frames' clock): lavfi:sine=frequency=440, pulse:default,
    /// alsa:hw:0, a file.
    #[arg(long)]
    pub audio_stream: Option<String>,
    /// lerobot-record's flags (`--robot.*`, `--teleop.*`, `--dataset.*`) and camera watch options.
    #[command(flatten)]
    pub lerobot: crate::robot_args::LeRobotArgs,
}

/// What `reel record` and `reel doctor` share: the robot, the cameras, the rate, the encoder.
#[derive(Args, Debug, Clone)]
pub struct SetupArgs {
    /// Simulated robot and synthetic cameras; with no other option: 2 episodes x 5 s, 2 cameras, into ./datasets/demo.
    #[arg(long)]
    pub sim: bool,
    /// Control loop rate (Hz).
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// A camera: NAME=INPUT[@WxH[@FPS]][@vf=FILTERS], INPUT = lavfi:testsrc2 | /dev/videoN |
    /// a video file (looped); FILTERS = an FFmpeg filter chain on the decoded frames, e.g.
    /// noise=alls=4:allf=t. Repeatable.
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
    /// Deferred final codec: record live with libx264 (ultrafast, crf 18) and encode the chosen
    /// encoder beside it at idle priority from the start of each episode, finishing at the end
    /// at full priority. auto: only when the chosen encoder cannot keep up with cameras x fps
    /// (30% headroom), measured by the probe and again under the real load once the cameras run.
    #[arg(long, value_enum, default_value = "auto")]
    pub deferred: DeferredMode,
    /// Frames per camera kept in memory before spilling to disk.
    #[arg(long, default_value_t = 60)]
    pub max_queue_frames: usize,
    /// Deferred final codec: MiB of raw frames per camera the final-codec lane may keep on
    /// disk while it catches up (beyond it, an episode is converted from the live file after
    /// its commit instead); 0 turns the lane off.
    #[arg(long, default_value_t = 2048)]
    pub final_spill_mb: u64,
    /// Testing aid: make every camera's primary encoder fail (hang-open, hang-after=N,
    /// error-after=N, no-flush) to exercise the watchdog and the fallback, or slow
    /// (slow=MS: each frame takes at least MS ms, an encoder that cannot keep up on any machine).
    #[arg(long)]
    pub inject_fault: Option<String>,
    /// Seconds an encoder may stay silent (opening, or with frames waiting) before it is
    /// replaced by the next one; flushing may take 4x this.
    #[arg(long, default_value_t = 5.0)]
    pub encoder_timeout_s: f64,
    /// Do not ask for SCHED_FIFO for the loop thread (by default reel asks for it, and falls
    /// back to nice -10, then to the default priority, saying what it got).
    #[arg(long)]
    pub no_realtime: bool,
}

/// `--deferred` values (the library's [`reel_engine::plan::DeferredMode`]).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferredMode {
    Auto,
    Always,
    Never,
}

impl From<DeferredMode> for plan::DeferredMode {
    fn from(m: DeferredMode) -> Self {
        match m {
            DeferredMode::Auto => plan::DeferredMode::Auto,
            DeferredMode::Always => plan::DeferredMode::Always,
            DeferredMode::Never => plan::DeferredMode::Never,
        }
    }
}

/// Everything a session needs, opened and checked.
pub struct Prepared {
    pub cameras: Vec<Arc<Camera>>,
    pub writer: DatasetWriter,
    pub session: SessionConfig,
    pub root: PathBuf,
    /// The encoder plan the writer records with (shown by [`print_plan`]).
    pub plan: EncoderPlan,
}

/// Prints the encoder plan as every front end shows it ([`EncoderPlan::summary`]).
pub fn print_plan(plan: &EncoderPlan) {
    for line in plan.summary() {
        println!("{line}");
    }
}

/// The options' encoder request for `cameras` cameras whose largest is `width`x`height`.
pub fn encoder_request(a: &SetupArgs, width: u32, height: u32, cameras: u32) -> EncoderRequest {
    let mut r = EncoderRequest::new(width, height, cameras, a.fps);
    r.vcodec = a.vcodec.clone();
    r.crf = a.crf;
    r.preset = a.preset.clone();
    r.gop = a.gop;
    r.deferred = a.deferred.into();
    r.fault = a.inject_fault.clone();
    r.encoder_timeout_s = a.encoder_timeout_s;
    r
}

/// The cameras the options describe (synthetic ones at the loop rate when no --camera is
/// given, `--camera-fault`s of `lerobot` applied), each checked; and whether they are synthetic.
pub fn camera_specs(
    a: &SetupArgs,
    lerobot: &crate::robot_args::LeRobotArgs,
) -> Result<(Vec<CameraSpec>, bool)> {
    let specs: Vec<CameraSpec> = if a.cameras.is_empty() {
        let n = a.num_cameras.unwrap_or(if a.sim { 2 } else { 0 });
        if n > SYNTHETIC_NAMES.len() {
            bail!(
                "--num-cameras {n}: at most {} synthetic cameras (give --camera NAME=INPUT for more)",
                SYNTHETIC_NAMES.len()
            );
        }
        (0..n)
            .map(|i| CameraSpec::synthetic(SYNTHETIC_NAMES[i], i, a.width, a.height, a.fps))
            .collect()
    } else {
        a.cameras
            .iter()
            .map(|s| crate::robot_args::camera_spec(lerobot, s))
            .collect::<Result<_>>()?
    };
    for s in &specs {
        reel_engine::plan::validate_size(s.width, s.height)
            .with_context(|| format!("camera '{}'", s.name))?;
    }
    Ok((specs, a.cameras.is_empty()))
}

/// The options' session (episodes, times, task, keys, priority), validated.
pub fn session_config(a: &RecordArgs) -> Result<SessionConfig> {
    let cfg = SessionConfig {
        fps: a.setup.fps,
        num_episodes: a.num_episodes.unwrap_or(if a.setup.sim { 2 } else { 50 }),
        episode_time_s: a
            .episode_time_s
            .unwrap_or(if a.setup.sim { 5.0 } else { 60.0 }),
        reset_time_s: a
            .reset_time_s
            .unwrap_or(if a.setup.sim { 1.0 } else { 60.0 }),
        task: a.single_task.clone(),
        interactive: !a.no_keys,
        realtime: !a.setup.no_realtime,
        flat_out: false,
        camera_watch: a.lerobot.camera_watch()?,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Validates every option, plans the encoders, opens the cameras, then creates, resumes or
/// overwrites the dataset (the library deletes only after all of that succeeded).
pub fn prepare(a: &RecordArgs, robot: &dyn Robot, stop: &StopToken) -> Result<Prepared> {
    let root = match &a.root {
        Some(r) => r.clone(),
        None if a.setup.sim => PathBuf::from("datasets/demo"),
        None => PathBuf::from("datasets").join(a.repo_id.rsplit('/').next().unwrap_or("dataset")),
    };
    let session = session_config(a)?;
    if a.resume || a.overwrite {
        DatasetWriter::check_available(&root)?;
    }
    let (specs, _) = camera_specs(&a.setup, &a.lerobot)?;
    // The encoders are planned for the RGB cameras; depth cameras record LeRobot's depth
    // encoding (the library's decision, WriterConfig::depth).
    let rgb = specs.iter().filter(|s| !s.depth);
    let (w, h) = rgb
        .clone()
        .map(|s| (s.width, s.height))
        .max_by_key(|(w, h)| w * h)
        .unwrap_or((a.setup.width, a.setup.height));
    let dims: Vec<(String, u32, u32, bool)> = specs
        .iter()
        .map(|s| (s.name.clone(), s.width, s.height, s.depth))
        .collect();
    let features = features_with_depth(robot.joint_names(), &dims)?;
    let req = encoder_request(&a.setup, w, h, rgb.count() as u32);
    // Options are validated (unknown codec, bad preset) and the probe's choice made before any
    // camera opens; the library's one builder confirms that plan under the cameras' load.
    let planned = front::plan(&req)?;
    let mut cameras = Vec::new();
    for spec in &specs {
        let cam = Camera::open(spec, Duration::from_secs(5))
            .with_context(|| format!("camera '{}' ({})", spec.name, spec.input))?;
        cameras.push(Arc::new(cam));
    }
    // The cameras capture now: the library checks a live final codec under the real load.
    let mut cfg = WriterConfig::new(&root, a.setup.fps, features);
    cfg.robot_type = Some(robot.name().to_string());
    cfg.data_files_size_mb = a.data_files_size_mb;
    cfg.video_files_size_mb = a.video_files_size_mb;
    cfg.queue = QueueLimits {
        max_frames_in_memory: a.setup.max_queue_frames,
        max_final_spill_bytes: a.setup.final_spill_mb.saturating_mul(1 << 20),
        ..QueueLimits::default()
    };
    cfg.durable = !a.no_fsync;
    cfg.stop = stop.clone();
    cfg.owner = "reel record".into();
    let mode = if a.resume {
        OpenMode::Resume
    } else if a.overwrite {
        OpenMode::Overwrite
    } else {
        OpenMode::Create
    };
    let (writer, plan) =
        front::open_planned(cfg, &req, planned, mode).with_context(|| match mode {
            OpenMode::Resume => format!("resuming {}", root.display()),
            _ => format!("creating {}", root.display()),
        })?;
    Ok(Prepared {
        cameras,
        writer,
        session,
        root,
        plan,
    })
}

/// Names of the synthetic cameras, in order.
const SYNTHETIC_NAMES: [&str; 8] = [
    "front", "wrist", "side", "top", "left", "right", "back", "overhead",
];

/// Speaks phase announcements without blocking the loop (`reel_demo::say` spawns and returns).
struct Announcer;
impl Observer for Announcer {
    fn phase(&mut self, what: &str) {
        reel_demo::say(what);
    }
}

/// Forwards every hook to each observer in turn.
struct Tee<'a>(Vec<&'a mut dyn Observer>);
impl Observer for Tee<'_> {
    fn phase(&mut self, what: &str) {
        self.0.iter_mut().for_each(|o| o.phase(what));
    }
    fn tick(&mut self, tick: &reel_record::timing::TickRecord, recording: bool) {
        self.0.iter_mut().for_each(|o| o.tick(tick, recording));
    }
    fn saved(&mut self, s: &reel_engine::writer::EpisodeSaved) {
        self.0.iter_mut().for_each(|o| o.saved(s));
    }
}

/// Starts the live page of `--display` on the prepared cameras and prints its address.
pub fn start_display(p: &Prepared, port: u16) -> Result<LiveServer> {
    let feeds = p
        .cameras
        .iter()
        .map(|c| CameraFeed::Source(c.clone() as Arc<dyn FrameSource>))
        .collect();
    let mut cfg = LiveConfig::new(port, p.session.fps, feeds);
    cfg.title = format!("reel · live · {}", p.root.display());
    let live = LiveServer::start(cfg)?;
    eprintln!("live page: {}", live.url());
    Ok(live)
}

/// The side streams the options ask for: the bus thread in place of `robot` and the audio
/// input, both feeding the returned cutter (the library's `reel_record::bus` and
/// `reel_demo::AudioStream`).
pub fn start_streams(a: &RecordArgs, robot: Box<dyn Robot>) -> Result<Streams> {
    if a.servo_stream_hz.is_none() && a.audio_stream.is_none() {
        return Ok(Streams {
            robot,
            cutter: None,
            audio: None,
        });
    }
    let mut cutter = StreamCutter::new();
    let robot: Box<dyn Robot> = match a.servo_stream_hz {
        Some(hz) => {
            reel_record::bus::validate_rate(hz, a.setup.fps).context("--servo-stream-hz")?;
            Box::new(PolledRobot::start(robot, hz, cutter.sender("servo")?)?)
        }
        None => robot,
    };
    let audio = match &a.audio_stream {
        Some(input) => Some(
            reel_demo::AudioStream::start(input, cutter.sender("audio")?)
                .context("--audio-stream")?,
        ),
        None => None,
    };
    Ok(Streams {
        robot,
        cutter: Some(cutter),
        audio,
    })
}

/// What [`start_streams`] started: the robot (behind the bus thread when asked), the cutter
/// the session drains, the audio input (stops when dropped).
pub struct Streams {
    pub robot: Box<dyn Robot>,
    pub cutter: Option<StreamCutter>,
    pub audio: Option<reel_demo::AudioStream>,
}

pub fn run_session(
    p: Prepared,
    robot: &mut dyn Robot,
    teleop: &mut dyn Teleop,
    streams: Option<StreamCutter>,
    say: bool,
    display: Option<&mut LiveServer>,
    stop: &StopToken,
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
        events: Events::with_stop(stop.clone()),
        streams,
    };
    let mut announcer = Announcer;
    let mut quiet = Quiet;
    let mut hooks: Vec<&mut dyn Observer> = vec![if say { &mut announcer } else { &mut quiet }];
    if let Some(d) = display {
        hooks.push(d);
    }
    Ok(session.run(&mut Tee(hooks))?)
}

pub fn run(mut a: RecordArgs) -> Result<()> {
    crate::robot_args::apply(&mut a)?;
    if !a.setup.sim && a.setup.cameras.is_empty() && a.setup.num_cameras.is_none() {
        tracing::info!(
            "no --camera given and no --sim: recording the simulated robot without cameras"
        );
    }
    let stop = StopToken::new();
    let _signals = reel_core::stop::on_signals(&stop).context("installing signal handlers")?;
    let (robot, mut teleop) = crate::robot_args::connect(&a)?;
    if let Some(hz) = a.servo_stream_hz {
        reel_record::bus::validate_rate(hz, a.setup.fps).context("--servo-stream-hz")?;
    }
    // The streams' inputs open before the dataset is created: a bad `--audio-stream` leaves
    // nothing behind (their samples before the first tick are counted as between episodes).
    let Streams {
        mut robot,
        cutter: streams,
        audio: _audio,
    } = start_streams(&a, robot)?;
    let p = prepare(&a, robot.as_ref(), &stop)?;
    print_plan(&p.plan);
    let root = p.root.clone();
    let keys: Vec<String> = p.cameras.iter().map(|c| camera_key(c.name())).collect();
    tracing::info!("recording into {} (cameras: {:?})", root.display(), keys);
    let demo = match &a.demo_video {
        Some(out) => {
            let cfg = crate::demo::config(
                out.clone(),
                a.setup.fps,
                a.demo_audio.clone(),
                &a.demo_layout,
                p.cameras.len(),
            )?;
            Some((crate::demo::start(&p.cameras, cfg)?, out.clone()))
        }
        None => None,
    };
    let mut display = if a.display {
        Some(start_display(&p, a.display_port)?)
    } else {
        None
    };
    let report = run_session(
        p,
        robot.as_mut(),
        teleop.as_mut(),
        streams,
        a.say,
        display.as_mut(),
        &stop,
    );
    if let Some(d) = display {
        d.stop();
    }
    if let Some((rec, out)) = demo {
        match rec.stop() {
            Ok(stats) => crate::demo::report(&stats, &out),
            Err(e) => tracing::error!("demo video {}: {e}", out.display()),
        }
    }
    let report = report?;
    let frames: u64 = report.saved.iter().map(|s| s.frames).sum();
    if report.conversion_stopped {
        println!(
            "stopped by signal during the conversion to the final codec: cameras {:?} keep the live codec; `reel reencode {} --vcodec {}` converts them",
            report.live_codec_cameras,
            root.display(),
            a.setup.vcodec.replace("auto", "libsvtav1")
        );
    }
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
