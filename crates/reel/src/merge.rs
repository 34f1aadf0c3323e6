//! `reel merge`: merge LeRobot v3.0 datasets into one (options only; the engine is
//! `reel_engine::merge`).

use anyhow::Result;
use clap::Args;
use reel_engine::merge::{merge, MergeEvent, MergeOptions};
use reel_reencode::{ConsoleProgress, Progress};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Source datasets (reel- or LeRobot-written v3.0), merged in this order.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// The merged dataset (must not exist, unless --append).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Append the sources to the existing dataset at --output.
    #[arg(long)]
    pub append: bool,
    /// Print a JSON summary on stdout (episodes, frames, per-source method, bytes, seconds).
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: MergeArgs) -> Result<()> {
    let console = ConsoleProgress::new();
    let mut on_event = |ev: MergeEvent<'_>| match ev {
        MergeEvent::Begin { sources, frames } => console.begin(sources, frames, 1),
        MergeEvent::Source {
            path,
            frames,
            reencode,
            ..
        } => {
            let how = if reencode { "re-encode" } else { "stream copy" };
            console.task_begin(0, &path.display().to_string(), how, frames)
        }
        MergeEvent::SourceDone { path, .. } => {
            console.task_end(0, &path.display().to_string(), &Ok("merged".into()))
        }
    };
    let s = merge(
        &a.sources,
        &a.output,
        &MergeOptions { append: a.append },
        &mut on_event,
    )?;
    console.end();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s.to_json())?);
    } else {
        for src in &s.sources {
            println!(
                "{}: {} episodes, {} frames ({})",
                src.path.display(),
                src.episodes,
                src.frames,
                src.method
            );
            for (camera, why) in &src.reencoded {
                println!("  {camera} re-encoded: {why}");
            }
        }
        println!(
            "{}: {} episodes, {} frames; {:.1} MB written in {:.2} s",
            s.output.display(),
            s.episodes,
            s.frames,
            s.bytes_written as f64 / 1e6,
            s.seconds
        );
    }
    Ok(())
}
