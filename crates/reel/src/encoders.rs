//! `reel encoders`: every encoder candidate for a recording size — compiled in or not, opened
//! or rejected (and why), measured frames/s — and whether it can keep up live.

use anyhow::Result;
use clap::Args;
use reel_media::encoders::{
    can_keep_up, default_cache_path, probe, ProbeRequest, Verdict, HEADROOM,
};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct EncodersArgs {
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Cameras to record (for the keep-up verdict).
    #[arg(long, default_value_t = 3)]
    pub cameras: u32,
    /// Codec families in preference order.
    #[arg(long, default_value = "av1,hevc,h264", value_delimiter = ',')]
    pub families: Vec<String>,
    /// Seconds each candidate may take to open, encode and flush.
    #[arg(long, default_value_t = 2.0)]
    pub deadline_s: f64,
    /// Ignore the cache and probe again.
    #[arg(long)]
    pub refresh: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: EncodersArgs) -> Result<()> {
    let families: Vec<&str> = a.families.iter().map(String::as_str).collect();
    let req = ProbeRequest::new(a.width, a.height, a.fps, &families);
    let cache = default_cache_path();
    if a.refresh {
        let _ = std::fs::remove_file(&cache);
    }
    let list = probe(&req, Duration::from_secs_f64(a.deadline_s), Some(&cache));
    if a.json {
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|c| {
                let (verdict, fps, why) = match &c.verdict {
                    Verdict::Works { fps } => ("works", Some(*fps), None),
                    Verdict::NotCompiled => ("not compiled", None, None),
                    Verdict::Rejected(w) => ("rejected", None, Some(w.clone())),
                };
                serde_json::json!({"encoder": c.name, "description": reel_media::encoder_display_name(&c.name), "family": c.family, "hardware": c.hardware, "verdict": verdict,
                    "fps": fps, "reason": why, "cached": c.cached,
                    "keeps_up": fps.map(|f| can_keep_up(f, a.cameras, a.fps, HEADROOM))})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("encoders for {}x{} @ {} Hz ({} cameras need {:.0} frames/s with {:.0}% headroom); cache {}", a.width, a.height, a.fps, a.cameras, (a.cameras * a.fps) as f64 * (1.0 + HEADROOM), HEADROOM * 100.0, cache.display());
    for c in &list {
        let kind = if c.hardware { "hw" } else { "sw" };
        let cached = if c.cached { " (cached)" } else { "" };
        match &c.verdict {
            Verdict::Works { fps } => {
                let live = if can_keep_up(*fps, a.cameras, a.fps, HEADROOM) {
                    "keeps up live"
                } else {
                    "cannot keep up live: frames will queue/spill"
                };
                println!(
                    "  {:<16} {:<5} {kind}  works, {fps:.0} frames/s one stream; {live}{cached}",
                    reel_media::encoder_display_name(&c.name),
                    c.family
                );
            }
            Verdict::NotCompiled => println!(
                "  {:<16} {:<5} {kind}  not compiled into this FFmpeg",
                c.name, c.family
            ),
            Verdict::Rejected(why) => println!(
                "  {:<16} {:<5} {kind}  rejected: {why}{cached}",
                c.name, c.family
            ),
        }
    }
    if let Some(best) = list
        .iter()
        .find(|c| matches!(c.verdict, Verdict::Works { .. }))
    {
        println!(
            "--vcodec auto picks {}",
            reel_media::encoder_display_name(&best.name)
        );
    } else {
        println!("no encoder works here");
    }
    Ok(())
}
