//! `reel report DATASET [-o FILE]`: the library's report page, written outside the dataset.
//! Read-only: the dataset is never modified (no lock, no repair).

use anyhow::{bail, Context, Result};
use clap::Args;
use reel_report::doctor::{verdict, DoctorReport};
use reel_report::report::{self, ReportOptions};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The dataset.
    pub dataset: PathBuf,
    /// The HTML file to write (self-contained: opens without network).
    #[arg(short, long, default_value = "report.html")]
    pub output: PathBuf,
    /// A `reel doctor --json` (or `-o`) file whose findings the page shows too.
    #[arg(long)]
    pub doctor: Option<PathBuf>,
    /// Most episodes drawn tick by tick (the worst ones are kept; every episode is in the trends).
    #[arg(long, default_value_t = 200)]
    pub max_episodes: usize,
}

pub fn run(a: ReportArgs) -> Result<()> {
    let ds = a
        .dataset
        .canonicalize()
        .with_context(|| format!("dataset {}", a.dataset.display()))?;
    let out_dir = a
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.canonicalize())
        .transpose()
        .with_context(|| format!("output {}", a.output.display()))?
        .unwrap_or(std::env::current_dir()?);
    if out_dir.starts_with(&ds) {
        bail!(
            "{} is inside the dataset: the report never writes into a dataset; choose another -o",
            a.output.display()
        );
    }
    let doctor = match &a.doctor {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let rep: DoctorReport = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a `reel doctor --json` report", p.display()))?;
            Some(verdict::view(&rep))
        }
        None => None,
    };
    let opts = ReportOptions {
        max_episode_sections: a.max_episodes.max(1),
    };
    report::write(&a.dataset, &a.output, &opts, doctor)?;
    println!("wrote {}", a.output.display());
    Ok(())
}
