//! Test support shared by every crate's tests (a dev-dependency only; never in a product).
//!
//! Its main job is the **one lookup of LeRobot's oracle**: LeRobot 0.6.1's venv
//! (`LEROBOT_VENV`, default `~/venv-lerobot`), its conformance checker
//! (`REEL_CONFORMANCE_DIR`, default `../shared/conformance` beside the checkout) and the
//! servo SDKs installed beside the venv (`REEL_LEROBOT_EXTRAS`, default `~/lerobot-extras`).
//! Every test that checks something against LeRobot asks here. When a piece is missing the
//! check is skipped with a note on stderr — unless `REEL_REQUIRE_ORACLE` is set (CI sets it),
//! where the absence is a test failure naming the path that was looked for. No test returns
//! silently.
//!
//! Also here: headless chromium's lookup (same rule) and a byte snapshot of a directory.
//! Helpers panic with a message: they run inside tests, where a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The checkout's root (two levels above this crate).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_default())
}

/// Whether a missing oracle is a failure (`REEL_REQUIRE_ORACLE` set to anything but `0` or
/// empty).
pub fn required() -> bool {
    std::env::var("REEL_REQUIRE_ORACLE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The LeRobot venv: `LEROBOT_VENV`, else `~/venv-lerobot`.
pub fn venv() -> PathBuf {
    std::env::var_os("LEROBOT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join("venv-lerobot"))
}

/// The conformance directory holding `lerobot_check.py`: `REEL_CONFORMANCE_DIR`, else
/// `shared/conformance` beside the checkout.
pub fn conformance_dir() -> PathBuf {
    std::env::var_os("REEL_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/conformance"))
}

/// Where LeRobot's servo SDKs live beside the venv (a `PYTHONPATH` entry):
/// `REEL_LEROBOT_EXTRAS`, else `~/lerobot-extras`.
pub fn extras() -> PathBuf {
    std::env::var_os("REEL_LEROBOT_EXTRAS")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join("lerobot-extras"))
}

/// Skips (a note) or, under `REEL_REQUIRE_ORACLE`, fails: `what` is missing, `looked` says
/// where it was looked for.
pub fn missing(what: &str, looked: &str) {
    assert!(
        !required(),
        "REEL_REQUIRE_ORACLE is set but {what} is missing (looked for {looked}; scripts/test.sh installs it)"
    );
    eprintln!("note: {what} not found ({looked}); this check is skipped");
}

/// LeRobot's loader: the venv's interpreter and `lerobot_check.py`.
#[derive(Debug, Clone)]
pub struct Oracle {
    /// The venv's `bin/python`.
    pub python: PathBuf,
    /// `lerobot_check.py`.
    pub script: PathBuf,
}

impl Oracle {
    /// The oracle if both files exist; no note, no failure.
    pub fn find() -> Option<Oracle> {
        let python = venv().join("bin/python");
        let script = conformance_dir().join("lerobot_check.py");
        (python.is_file() && script.is_file()).then_some(Oracle { python, script })
    }

    /// The oracle, or `None` after a note; a failure under `REEL_REQUIRE_ORACLE`.
    pub fn or_skip(what: &str) -> Option<Oracle> {
        let found = Oracle::find();
        if found.is_none() {
            missing(
                &format!("LeRobot's oracle (for {what})"),
                &format!(
                    "{} and {}",
                    venv().join("bin/python").display(),
                    conformance_dir().join("lerobot_check.py").display()
                ),
            );
        }
        found
    }

    /// The oracle's interpreter with `PYTHONPATH` set to the extras directory.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.python);
        c.env("PYTHONPATH", extras());
        c
    }
}

/// The venv's interpreter, when `import <modules>` works there (the extras directory on
/// `PYTHONPATH`); else `None` after a note, a failure under `REEL_REQUIRE_ORACLE`.
pub fn python_with(modules: &[&str], what: &str) -> Option<Oracle> {
    let oracle = Oracle::or_skip(what)?;
    let imports = format!("import {}", modules.join(", "));
    let ok = oracle
        .command()
        .args(["-c", &imports])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        missing(
            &format!("Python modules {} (for {what})", modules.join(", ")),
            &format!(
                "{} with PYTHONPATH={}",
                oracle.python.display(),
                extras().display()
            ),
        );
        return None;
    }
    Some(oracle)
}

/// Runs LeRobot 0.6.1's loader (`lerobot_check.py --strict`) on `root` and asserts it
/// passes; skipped with a note without the oracle, a failure under `REEL_REQUIRE_ORACLE`.
pub fn assert_lerobot_loads(root: &Path) {
    let Some(o) = Oracle::or_skip(&root.display().to_string()) else {
        return;
    };
    let out = Command::new(&o.python)
        .arg(&o.script)
        .arg(root)
        .args(["--strict", "--color", "never"])
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", o.script.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("RESULT: PASS"),
        "lerobot_check.py --strict failed on {}:\n{}\n{}",
        root.display(),
        text,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// LeRobot's verdict on each dataset with one interpreter (LeRobot and torch load once):
/// `py/lerobot_check_many.py` runs lerobot_check.py's own `main` on each, as strict as
/// `--strict` but for the warning every H.264/HEVC dataset gets. `opts` (e.g.
/// `--decode-all`) go to every check. Returns (dataset, passed, its report when it failed);
/// `None` when the oracle is missing and not required.
pub fn lerobot_results(roots: &[PathBuf], opts: &[&str]) -> Option<Vec<(PathBuf, bool, String)>> {
    if roots.is_empty() {
        return Some(Vec::new());
    }
    let o = Oracle::or_skip(&format!("{} datasets", roots.len()))?;
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/lerobot_check_many.py");
    let conf = o.script.parent().map(Path::to_path_buf).unwrap_or_default();
    let out = Command::new(&o.python)
        .arg(helper)
        .arg(conf)
        .args(opts)
        .args(roots)
        .output()
        .unwrap_or_else(|e| panic!("run lerobot_check_many.py: {e}"));
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

/// [`lerobot_results`] that must pass for every dataset.
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

/// Headless chromium (`REEL_CHROMIUM`, else Debian's `/usr/bin/chromium`), or `None` after a
/// note; a failure under `REEL_REQUIRE_ORACLE`.
pub fn chromium(what: &str) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("REEL_CHROMIUM")
        .map(|p| vec![PathBuf::from(p)])
        .unwrap_or_else(|| {
            [
                "/usr/bin/chromium",
                "/usr/bin/chromium-browser",
                "/usr/bin/google-chrome",
            ]
            .iter()
            .map(PathBuf::from)
            .collect()
        });
    let found = candidates.iter().find(|p| p.is_file()).cloned();
    if found.is_none() {
        missing(
            &format!("chromium (for {what})"),
            &candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    found
}

/// Every file under `root` with its bytes, sorted: equal snapshots mean nothing changed.
pub fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display()));
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else {
                let bytes =
                    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}
