//! `reel`: the command line. It parses options and wires the library crates together;
//! all behaviour lives in the libraries.
// Unit tests build with the dev-dependencies, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

mod bench;
mod check;
mod cpu;
mod demo;
mod doctor;
mod encoders;
mod merge;
mod record;
mod reencode;
mod report;
mod robot_args;
mod robots_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "reel",
    version,
    about = "Record LeRobot v3.0 robot-learning datasets: never blocks the loop, never loses a frame, survives crashes."
)]
struct Cli {
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record episodes into a LeRobot v3.0 dataset.
    Record(Box<record::RecordArgs>),
    /// Validate a dataset (exit 1 with a list of problems); --repair fixes what a crash left.
    Check(check::CheckArgs),
    /// Record a demo video: cameras picture-in-picture with audio, locked to the wall clock.
    Demo(demo::DemoArgs),
    /// Merge v3.0 datasets into one (stream copy, journaled); --append into an existing one.
    Merge(merge::MergeArgs),
    /// Re-encode a dataset's videos (worker pool, fallback, resumable, atomic swap, --shard/--commit).
    Reencode(reencode::ReencodeArgs),
    /// Run the lag investigation on this setup: short trials, then the causes ranked with
    /// evidence, the highest rate that holds and the `reel record` command to use.
    Doctor(Box<doctor::DoctorArgs>),
    /// Write one self-contained HTML page of a dataset's timing (read-only).
    Report(report::ReportArgs),
    /// List encoder candidates: compiled in, opened or rejected (why), measured frames/s.
    Encoders(encoders::EncodersArgs),
    /// Calibrate an SO-100/101 or Koch arm (LeRobot's procedure and calibration file).
    Calibrate(robots_cmd::CalibrateArgs),
    /// Simulate an arm's servo bus on a pseudo-terminal (prints its path).
    SimBus(robots_cmd::SimBusArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCmd,
    },
}

fn main() {
    let cli = Cli::parse();
    let level = match cli.verbose {
        // The doctor's trials end sessions on purpose (their errors are expected, and each
        // trial's own failure is in its result): library logs only with -v.
        0 if matches!(cli.cmd, Cmd::Doctor(_)) => "off",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("REEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    // A file-size limit (RLIMIT_FSIZE) must surface as an EFBIG error naming the file, not
    // kill the process. Stop signals are installed by each subcommand that handles them.
    // SAFETY: setting SIGXFSZ's disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    reel_media::init();
    let result = match cli.cmd {
        Cmd::Record(a) => record::run(*a),
        Cmd::Bench { what } => bench::run(what),
        Cmd::Demo(a) => demo::run(a),
        Cmd::Encoders(a) => encoders::run(a),
        Cmd::Doctor(a) => doctor::run(*a),
        Cmd::Report(a) => report::run(a),
        Cmd::Reencode(a) => reencode::run(a),
        Cmd::Merge(a) => merge::run(a),
        Cmd::Calibrate(a) => robots_cmd::run_calibrate(a),
        Cmd::SimBus(a) => robots_cmd::run_sim_bus(a),
        Cmd::Check(a) => match check::run(a) {
            Ok(true) => Ok(()),
            Ok(false) => std::process::exit(1),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
