//! `reel demo`: a standalone demo video (cameras composited picture-in-picture, with audio,
//! locked to the wall clock) until a duration, Ctrl-C or SIGTERM; and the options that attach
//! the same recorder to `reel record`.

use anyhow::{Context, Result};
use clap::Args;
use reel_capture::{Camera, CameraSpec};
use reel_demo::{AudioInput, DemoConfig, DemoRecorder, FrameSource, Layout};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Layout and encoding options shared by `reel demo` and `reel record --demo-video`.
#[derive(Args, Debug, Clone)]
pub struct DemoLayoutArgs {
    /// pip | side-by-side | grid.
    #[arg(long, default_value = "pip")]
    pub layout: String,
    /// Index of the main camera (fills the frame).
    #[arg(long, default_value_t = 0)]
    pub main_camera: usize,
    /// Index of the inset camera (bottom right).
    #[arg(long)]
    pub inset_camera: Option<usize>,
    /// Output size WxH.
    #[arg(long, default_value = "960x540")]
    pub size: String,
    /// x264 preset of the demo video.
    #[arg(long, default_value = "ultrafast")]
    pub demo_preset: String,
    /// x264 CRF of the demo video.
    #[arg(long, default_value_t = 23)]
    pub demo_crf: u32,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// A camera: NAME=INPUT[@WxH[@FPS]] (lavfi:testsrc2, /dev/videoN, a file). Repeatable; the first is the main one.
    #[arg(long = "camera", required = true)]
    pub cameras: Vec<String>,
    /// Audio input: lavfi:sine=frequency=1000, pulse:default, alsa:hw:0, or a file.
    #[arg(long)]
    pub audio: Option<String>,
    /// Record without audio.
    #[arg(long)]
    pub no_audio: bool,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Output MP4.
    #[arg(long, default_value = "demo.mp4")]
    pub output: PathBuf,
    /// Frame rate of the video.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    #[command(flatten)]
    pub layout: DemoLayoutArgs,
}

/// Builds the recorder configuration.
pub fn config(
    output: PathBuf,
    fps: u32,
    audio: Option<String>,
    l: &DemoLayoutArgs,
    cameras: usize,
) -> Result<DemoConfig> {
    let mut cfg = DemoConfig::new(output);
    let (w, h) = l
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .with_context(|| format!("--size {}: expected WxH", l.size))?;
    cfg.width = w;
    cfg.height = h;
    cfg.fps = fps;
    cfg.layout = l
        .layout
        .parse::<Layout>()
        .map_err(|e| anyhow::anyhow!("--layout {}: {e}", l.layout))?;
    cfg.main_camera = l.main_camera;
    cfg.inset_camera = match l.inset_camera {
        Some(i) => Some(i),
        None if cameras > 1 => Some(if l.main_camera == 0 { 1 } else { 0 }),
        None => None,
    };
    cfg.preset = l.demo_preset.clone();
    cfg.crf = l.demo_crf;
    cfg.audio = audio.map(AudioInput::new);
    Ok(cfg)
}

pub fn start(cameras: &[Arc<Camera>], cfg: DemoConfig) -> Result<DemoRecorder> {
    let sources: Vec<Arc<dyn FrameSource>> = cameras
        .iter()
        .map(|c| c.clone() as Arc<dyn FrameSource>)
        .collect();
    let out = cfg.output.clone();
    DemoRecorder::start(sources, cfg)
        .with_context(|| format!("starting the demo video {}", out.display()))
}

pub fn report(stats: &reel_demo::DemoStats, output: &std::path::Path) {
    let repeats: Vec<String> = stats
        .cameras
        .iter()
        .map(|c| format!("{} repeated {}", c.name, c.repeated_frames))
        .collect();
    println!(
        "demo video {}: {} frames, video {:.2} s, audio {:.2} s, wall {:.2} s; {}",
        output.display(),
        stats.frames_written,
        stats.video_seconds,
        stats.audio_seconds,
        stats.wall_seconds,
        repeats.join(", ")
    );
    if stats.frames_cut > 0 {
        println!(
            "demo video {}: ends {:.2} s before the stop (the encoder was {} frame(s) behind at the stop deadline)",
            output.display(),
            stats.frames_cut as f64 * stats.video_seconds / stats.frames_written.max(1) as f64,
            stats.frames_cut
        );
    }
}

pub fn run(a: DemoArgs) -> Result<()> {
    // First, so that a signal during the (possibly slow) camera start stops cleanly too.
    let stop = reel_core::StopToken::new();
    let _signals = reel_core::stop::on_signals(&stop).context("installing signal handlers")?;
    let mut cams = Vec::new();
    for s in &a.cameras {
        let spec = CameraSpec::parse(s).with_context(|| format!("--camera {s}"))?;
        cams.push(Arc::new(
            Camera::open(&spec, Duration::from_secs(5))
                .with_context(|| format!("camera '{}'", spec.name))?,
        ));
    }
    let audio = if a.no_audio { None } else { a.audio.clone() };
    let cfg = config(a.output.clone(), a.fps, audio, &a.layout, cams.len())?;
    let rec = start(&cams, cfg)?;
    tracing::info!(
        "recording {} (Ctrl-C or SIGTERM stops it)",
        a.output.display()
    );
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if stop.requested()
            || a.duration.is_some_and(|d| t0.elapsed().as_secs_f64() >= d)
            || rec.failed().is_some()
        {
            break;
        }
    }
    let stats = rec.stop().context("demo video")?;
    report(&stats, &a.output);
    Ok(())
}
