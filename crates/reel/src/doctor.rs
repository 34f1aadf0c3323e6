//! `reel doctor`: the same robot/camera/encoder options as `reel record` → the library's
//! doctor (trials, verdict) → the verdict as text or JSON, and the `reel record` command that
//! follows from it.

use crate::record::{camera_specs, encoder_request, SetupArgs};
use anyhow::{Context, Result};
use clap::Args;
use reel_capture::CameraSpec;
use reel_core::StopToken;
use reel_record::robot::{SimRobot, SimTeleop};
use reel_report::doctor::{self, verdict, DoctorConfig, DoctorReport, Recommendation};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {
    /// The robot, cameras, rate and encoder to examine (as `reel record` takes them).
    #[command(flatten)]
    pub setup: SetupArgs,
    /// Seconds per trial (about 10 trials run).
    #[arg(long, default_value_t = 10.0)]
    pub trial_s: f64,
    /// Lower rates to try when the requested one does not hold (Hz, comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "25,20,15,10")]
    pub rates: Vec<u32>,
    /// Print the whole report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file (`reel report DATASET --doctor FILE` shows it).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=@:,+%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A camera's `--camera` value, with the V4L2 format the doctor found better.
fn camera_arg(spec: &CameraSpec, format: Option<&str>) -> String {
    let mut s = format!(
        "{}={}@{}x{}@{}",
        spec.name, spec.input, spec.width, spec.height, spec.fps
    );
    if let Some(f) = format.or(spec.input_format.as_deref()) {
        s.push('@');
        s.push_str(f);
    }
    s
}

/// The `reel record` arguments that follow from the recommendation.
pub fn command_args(a: &SetupArgs, rep: &DoctorReport, r: &Recommendation) -> Result<Vec<String>> {
    let mut v: Vec<String> = vec!["reel".into(), "record".into()];
    if a.sim {
        v.push("--sim".into());
    }
    if a.cameras.is_empty() {
        let (specs, _) = camera_specs(a, &crate::robot_args::LeRobotArgs::default())?;
        if !specs.is_empty() {
            v.extend([
                "--num-cameras".into(),
                specs.len().to_string(),
                "--width".into(),
                a.width.to_string(),
                "--height".into(),
                a.height.to_string(),
            ]);
        }
    } else {
        for s in &a.cameras {
            let spec = CameraSpec::parse(s).with_context(|| format!("--camera {s}"))?;
            let fmt = r
                .camera_formats
                .iter()
                .find(|(n, _)| *n == spec.name)
                .map(|(_, f)| f.as_str());
            v.push("--camera".into());
            v.push(match fmt {
                Some(f) => camera_arg(&spec, Some(f)),
                None => s.clone(),
            });
        }
    }
    v.extend(["--fps".into(), r.fps.to_string()]);
    let vcodec = if rep.vcodec.is_empty() {
        a.vcodec.clone()
    } else {
        rep.vcodec.clone()
    };
    v.extend([
        "--vcodec".into(),
        vcodec,
        "--deferred".into(),
        r.deferred.clone(),
    ]);
    if let Some(c) = a.crf {
        v.extend(["--crf".into(), c.to_string()]);
    }
    if let Some(p) = &a.preset {
        v.extend(["--preset".into(), p.clone()]);
    }
    if let Some(g) = a.gop {
        v.extend(["--gop".into(), g.to_string()]);
    }
    if a.max_queue_frames != 60 {
        v.extend(["--max-queue-frames".into(), a.max_queue_frames.to_string()]);
    }
    if !r.realtime {
        v.push("--no-realtime".into());
    }
    Ok(v)
}

pub fn run(a: DoctorArgs) -> Result<()> {
    let stop = StopToken::new();
    let _signals = reel_core::stop::on_signals(&stop).context("installing signal handlers")?;
    let (specs, synthetic) = camera_specs(&a.setup, &crate::robot_args::LeRobotArgs::default())?;
    let (w, h) = specs
        .iter()
        .map(|s| (s.width, s.height))
        .max_by_key(|(w, h)| w * h)
        .unwrap_or((a.setup.width, a.setup.height));
    let mut cfg = DoctorConfig::new(
        specs.clone(),
        a.setup.fps,
        encoder_request(&a.setup, w, h, specs.len() as u32),
    );
    cfg.synthetic = synthetic;
    cfg.trial_s = a.trial_s;
    cfg.rates = a.rates.clone();
    cfg.realtime = !a.setup.no_realtime;
    cfg.max_queue_frames = a.setup.max_queue_frames;
    cfg.stop = stop.clone();
    cfg.validate()?;
    eprintln!(
        "reel doctor: {} camera(s) at {} Hz, {} s per trial; Ctrl-C stops and reports what was measured",
        specs.len(),
        a.setup.fps,
        a.trial_s
    );
    let mut robot = SimRobot::new();
    let mut teleop = SimTeleop::default();
    let mut rep = doctor::run(&cfg, &mut robot, &mut teleop, &mut |line: &str| {
        eprintln!("{line}")
    })?;
    if let Some(r) = rep.recommendation.clone() {
        let args = command_args(&a.setup, &rep, &r)?;
        rep.command = args
            .iter()
            .map(|w| shell_word(w))
            .collect::<Vec<_>>()
            .join(" ");
        rep.command_args = args;
    }
    if let Some(out) = &a.output {
        std::fs::write(out, serde_json::to_string_pretty(&rep)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print!("{}", verdict::text(&rep));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(shell_word("--fps"), "--fps");
        assert_eq!(
            shell_word("slow=lavfi:testsrc2=size=320x240:rate=20@320x240@30"),
            "slow=lavfi:testsrc2=size=320x240:rate=20@320x240@30"
        );
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
