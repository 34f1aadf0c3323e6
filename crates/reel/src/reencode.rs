//! `reel reencode`: re-encode the videos of an existing LeRobot v3.0 dataset (worker pool,
//! timeouts with fallback, resumable, atomic swap, sharding across machines).

use anyhow::{bail, Context, Result};
use clap::Args;
use reel_media::EncoderSettings;
use reel_reencode::{CommitMode, ConsoleProgress, ReencodeOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ReencodeArgs {
    /// Dataset root.
    pub dataset: PathBuf,
    /// Target encoder (libsvtav1, libx264, libx265, h264_nvenc, ... or av1/h264/hevc).
    #[arg(long, default_value = "libsvtav1")]
    pub vcodec: String,
    /// Quality (LeRobot's crf, mapped per codec). Default: LeRobot's 30.
    #[arg(long)]
    pub crf: Option<f64>,
    /// Encoder preset (default: 12 for libsvtav1, the codec's own otherwise).
    #[arg(long)]
    pub preset: Option<String>,
    /// GOP size: a keyframe every N frames (LeRobot's g, default 2).
    #[arg(long)]
    pub gop: Option<u32>,
    /// Encoders tried in order when an attempt fails or hangs (comma-separated; "" for none).
    #[arg(long, default_value = "libsvtav1")]
    pub fallback: String,
    /// Only files holding these episodes: "0,3,5-9".
    #[arg(long)]
    pub episodes: Option<String>,
    /// Only these cameras (comma-separated video keys or their last part, e.g. "front").
    #[arg(long)]
    pub cameras: Option<String>,
    /// Worker threads (default: available cores).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// Cancel an attempt that writes no frame for this long and retry with the next encoder.
    #[arg(long, default_value_t = 120.0)]
    pub timeout_s: f64,
    /// Process only shard i of N (files whose index in sorted path order ≡ i mod N); no swap.
    #[arg(long)]
    pub shard: Option<String>,
    /// Encode nothing: check every shard finished, then swap all new files in.
    #[arg(long)]
    pub commit: bool,
    /// Produce the new files but do not swap them in (finish later with --commit).
    #[arg(long, conflicts_with = "commit")]
    pub no_swap: bool,
    /// Re-encode files that already have the target codec and settings.
    #[arg(long)]
    pub force: bool,
}

/// "0,3,5-9" → [0, 3, 5, 6, 7, 8, 9].
pub fn parse_episodes(s: &str) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u64 = a
                    .trim()
                    .parse()
                    .with_context(|| format!("bad episode range '{part}'"))?;
                let b: u64 = b
                    .trim()
                    .parse()
                    .with_context(|| format!("bad episode range '{part}'"))?;
                if b < a {
                    bail!("episode range '{part}' is backwards");
                }
                out.extend(a..=b);
            }
            None => out.push(
                part.parse()
                    .with_context(|| format!("bad episode index '{part}'"))?,
            ),
        }
    }
    if out.is_empty() {
        bail!("--episodes '{s}' selects no episode");
    }
    Ok(out)
}

/// "i/N" → (i, N) with 0 ≤ i < N.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s
        .split_once('/')
        .with_context(|| format!("--shard '{s}': expected i/N, e.g. 0/4"))?;
    let i: usize = i
        .trim()
        .parse()
        .with_context(|| format!("--shard '{s}': bad index"))?;
    let n: usize = n
        .trim()
        .parse()
        .with_context(|| format!("--shard '{s}': bad count"))?;
    if n == 0 || i >= n {
        bail!("--shard '{s}': need 0 <= i < N");
    }
    Ok((i, n))
}

fn settings_for(vcodec: &str, a: &ReencodeArgs) -> Result<EncoderSettings> {
    Ok(EncoderSettings::lerobot_default()
        .with_codec(vcodec)
        .with_overrides(a.crf, a.preset.as_deref(), a.gop)?
        .resolved())
}

pub fn run(a: ReencodeArgs) -> Result<()> {
    let stop = reel_core::StopToken::new();
    let _signals = reel_core::stop::on_signals(&stop).context("installing signal handlers")?;
    let settings = settings_for(&a.vcodec, &a)?;
    if !a.commit {
        if let Err(e) = settings.validate() {
            eprintln!("warning: {e}; the fallback encoders will be used");
        }
    }
    let fallback: Vec<EncoderSettings> = a
        .fallback
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            // A fallback of another codec keeps crf/g but not a codec-specific preset.
            let mut s = settings_for(name, &a)?;
            if name != a.vcodec {
                s.preset = None;
                s = s.resolved();
            }
            Ok(s)
        })
        .collect::<Result<_>>()?;
    if !a.timeout_s.is_finite() || a.timeout_s <= 0.0 {
        bail!("--timeout-s must be a positive number of seconds");
    }
    let opts = ReencodeOptions {
        settings,
        fallback,
        episodes: a.episodes.as_deref().map(parse_episodes).transpose()?,
        cameras: a.cameras.as_ref().map(|c| {
            c.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }),
        jobs: a.jobs,
        task_timeout: Duration::from_secs_f64(a.timeout_s),
        shard: a.shard.as_deref().map(parse_shard).transpose()?,
        commit: if a.commit {
            CommitMode::CommitOnly
        } else if a.no_swap {
            CommitMode::Defer
        } else {
            CommitMode::Auto
        },
        force: a.force,
        stop,
    };
    let progress = ConsoleProgress::new();
    let r = reel_reencode::reencode(&a.dataset, &opts, &progress)
        .with_context(|| format!("re-encode {}", a.dataset.display()))?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    for f in r.fell_back() {
        println!(
            "fallback: {} done by {} after: {}",
            f.path,
            f.encoder,
            f.failed_attempts.join("; ")
        );
    }
    let resumed = r.files.iter().filter(|f| f.resumed).count();
    println!(
        "reencode {}: {} file(s) ({} resumed), {} skipped, {} failed; {} frames in {:.2} s = {:.1} frames/s{}",
        a.dataset.display(),
        r.files.len(),
        resumed,
        r.skipped.len(),
        r.failed.len(),
        r.frames_encoded,
        r.encode_seconds,
        r.frames_per_second(),
        if r.swapped {
            "; swapped in"
        } else if opts.shard.is_some() || opts.commit == CommitMode::Defer {
            "; not swapped (run `reel reencode --commit`)"
        } else {
            ""
        }
    );
    if !r.failed.is_empty() {
        for (p, why) in &r.failed {
            eprintln!("FAILED {p}: {why}");
        }
        bail!(
            "{} file(s) could not be re-encoded; rerun to retry (finished files are kept)",
            r.failed.len()
        );
    }
    Ok(())
}
