//! Helpers shared by the CLI integration tests: run `reel`, run LeRobot's loader on a dataset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
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

pub fn oracle_paths() -> Option<(PathBuf, PathBuf)> {
    let conf = std::env::var_os("REEL_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        });
    let venv = std::env::var_os("LEROBOT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join("venv-lerobot")
        });
    let script = conf.join("lerobot_check.py");
    let py = venv.join("bin/python");
    (script.is_file() && py.is_file()).then_some((py, script))
}

/// Runs LeRobot 0.6.1's loader on `root` (`lerobot_check.py --strict`) and asserts it passes.
/// Without the venv the check is skipped with a note, unless REEL_REQUIRE_ORACLE=1 (CI).
/// The LeRobot oracle (python, lerobot_check.py), or `None` with a note when it is not
/// installed; its absence fails when `REEL_REQUIRE_ORACLE` is set (CI).
pub fn oracle_or_skip(what: &str) -> Option<(PathBuf, PathBuf)> {
    let found = oracle_paths();
    if found.is_none() {
        assert!(
            std::env::var("REEL_REQUIRE_ORACLE").is_err(),
            "REEL_REQUIRE_ORACLE is set but the LeRobot venv / lerobot_check.py is missing"
        );
        eprintln!("note: LeRobot conformance venv not found; skipping lerobot_check.py for {what}");
    }
    found
}

pub fn assert_lerobot_loads(root: &Path) {
    let Some((py, script)) = oracle_or_skip(&root.display().to_string()) else {
        return;
    };
    let out = Command::new(py)
        .arg(script)
        .arg(root)
        .args(["--strict", "--color", "never"])
        .output()
        .expect("run lerobot_check.py");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lerobot_check.py --strict failed on {}:\n{}\n{}",
        root.display(),
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("RESULT: PASS"), "{text}");
}

/// [`assert_lerobot_loads`] on many datasets with one interpreter (LeRobot and torch load
/// once): `tests/py/lerobot_check_many.py` runs lerobot_check.py's own `main` on each, as
/// strict as `--strict` but for the warning every H.264/HEVC dataset gets (not LeRobot's
/// default codec).
pub fn assert_lerobot_loads_all(roots: &[PathBuf]) {
    let Some(results) = lerobot_results(roots, &[]) else {
        return;
    };
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(r, _, report)| format!("{}:\n{report}", r.display()))
        .collect();
    assert!(
        failed.is_empty(),
        "lerobot_check.py failed on {} of {} datasets:\n{}",
        failed.len(),
        roots.len(),
        failed.join("\n")
    );
}

/// LeRobot's verdict on each dataset (`opts` such as `--decode-all` go to every check):
/// (dataset, passed, its report when it failed). `None` when the oracle is not installed and
/// not required.
pub fn lerobot_results(roots: &[PathBuf], opts: &[&str]) -> Option<Vec<(PathBuf, bool, String)>> {
    if roots.is_empty() {
        return Some(Vec::new());
    }
    let (py, script) = oracle_or_skip(&format!("{} datasets", roots.len()))?;
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/lerobot_check_many.py");
    let out = Command::new(py)
        .arg(helper)
        .arg(script.parent().unwrap())
        .args(opts)
        .args(roots)
        .output()
        .expect("run lerobot_check_many.py");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // One "PASS <root>" or "FAIL <root>" line per dataset, a failure's report after its line.
    let mut results: Vec<(PathBuf, bool, String)> = Vec::new();
    for line in text.lines() {
        let verdict = line
            .strip_prefix("PASS ")
            .map(|r| (r, true))
            .or_else(|| line.strip_prefix("FAIL ").map(|r| (r, false)));
        match verdict {
            Some((r, ok)) if roots.iter().any(|x| x.as_os_str() == r) => {
                results.push((PathBuf::from(r), ok, String::new()))
            }
            _ => {
                if let Some(last) = results.last_mut() {
                    last.2.push_str(line);
                    last.2.push('\n');
                }
            }
        }
    }
    assert_eq!(
        results.len(),
        roots.len(),
        "lerobot_check_many.py did not report on every dataset:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(results)
}

/// `reel check` must pass too.
pub fn assert_reel_check(root: &Path) {
    run_ok(reel().arg("check").arg(root));
}

pub fn info(root: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root.join("meta/info.json")).expect("info.json"))
        .expect("json")
}

/// Every file under `root` with its bytes, sorted: equal snapshots mean nothing changed.
pub fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}
