//! `reel check`: validate a dataset, optionally repair what a crash left.

use anyhow::Result;
use clap::Args;
use reel_engine::check::{check, CheckOptions};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Dataset root.
    pub dataset: PathBuf,
    /// Roll back an unfinished save, drop rows/frames no episode references, remove scratch files.
    #[arg(long)]
    pub repair: bool,
    /// Also decode every video frame and check its timestamp.
    #[arg(long)]
    pub decode: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Returns Ok(true) when the dataset is valid.
pub fn run(a: CheckArgs) -> Result<bool> {
    let r = check(
        &a.dataset,
        CheckOptions {
            repair: a.repair,
            decode: a.decode,
        },
    )?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dataset": a.dataset, "ok": r.ok(), "episodes": r.episodes, "frames": r.frames,
                "problems": r.problems, "repaired": r.repaired, "verified": r.verified,
            }))?
        );
    } else {
        for x in &r.repaired {
            println!("repaired: {x}");
        }
        for x in &r.verified {
            println!("ok: {x}");
        }
        for x in &r.problems {
            println!("PROBLEM: {x}");
        }
        if r.ok() {
            println!(
                "{}: valid LeRobot v3.0 dataset ({} episodes, {} frames)",
                a.dataset.display(),
                r.episodes,
                r.frames
            );
        } else {
            println!("{}: {} problem(s)", a.dataset.display(), r.problems.len());
        }
    }
    Ok(r.ok())
}
