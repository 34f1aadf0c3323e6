//! Helpers shared by the CLI integration tests: run `reel`, run LeRobot's loader on a dataset.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub fn reel() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_reel"));
    c.env("SVT_LOG", "1").env("REEL_LOG", "warn");
    c
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn reel");
    assert!(
        out.status.success(),
        "command failed: {cmd:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn reel");
    assert!(
        !out.status.success(),
        "command should fail: {cmd:?}\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `reel record --sim` with small cameras and short episodes (fast on 2 cores).
pub fn sim(root: &Path, cameras: usize, episodes: u32, seconds: f64) -> Command {
    sim_sized(root, cameras, episodes, seconds, 96, 64)
}

/// Like [`sim`] with a camera size.
pub fn sim_sized(
    root: &Path,
    cameras: usize,
    episodes: u32,
    seconds: f64,
    width: u32,
    height: u32,
) -> Command {
    let mut c = reel();
    c.args(["record", "--sim", "--no-keys", "--no-fsync"])
        .arg("--root")
        .arg(root)
        .args(["--num-cameras", &cameras.to_string()])
        .args(["--num-episodes", &episodes.to_string()])
        .args(["--episode-time-s", &seconds.to_string()])
        .args([
            "--reset-time-s",
            "0",
            "--width",
            &width.to_string(),
            "--height",
            &height.to_string(),
        ]);
    c
}

pub use reel_testkit::{
    assert_lerobot_loads, assert_lerobot_loads_all, lerobot_results, snapshot, Oracle,
};

/// `reel check` must pass too.
pub fn assert_reel_check(root: &Path) {
    run_ok(reel().arg("check").arg(root));
}

pub fn info(root: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root.join("meta/info.json")).expect("info.json"))
        .expect("json")
}
