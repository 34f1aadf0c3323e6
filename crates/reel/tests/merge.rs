//! Merging with LeRobot (issue 11): a reel dataset in each codec reel writes (AV1, H.264,
//! HEVC) merges with a LeRobot-written dataset of the same codec through LeRobot 0.6.1's own
//! `aggregate_datasets`, in both orders, and the merged dataset loads in LeRobot.
//!
//! What LeRobot's merge gets wrong by itself is allowed, and nothing else: it does not
//! recompute the `index`/`episode_index` statistics (a merge of two LeRobot datasets fails
//! the oracle's stats check the same way), and LeRobot's own HEVC files (real B-frames) do
//! not decode at their timestamps through torchcodec even unmerged — so with HEVC only the
//! reel-written episodes are required to decode.

use crate::common::*;
use std::path::Path;
use std::process::Command;

fn oracle_json(py: &Path, script: &Path, root: &Path) -> serde_json::Value {
    let json = root.with_extension("check.json");
    let out = Command::new(py)
        .arg(script)
        .arg(root)
        .args(["--color", "never", "--json"])
        .arg(&json)
        .output()
        .expect("run lerobot_check.py");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|_| {
        panic!(
            "lerobot_check.py wrote no report for {}:\n{}\n{}",
            root.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(&text).expect("report JSON")
}

/// Episode indices named in the oracle's failure messages ("ep 3 frame 10").
fn failing_episodes(report: &serde_json::Value) -> Vec<u64> {
    let mut out = Vec::new();
    for item in report["items"].as_array().unwrap() {
        if item["status"] != "FAIL" {
            continue;
        }
        let msg = item["message"].as_str().unwrap_or("");
        let mut words = msg.split_whitespace();
        while let Some(w) = words.next() {
            if w == "ep" {
                if let Some(n) = words.next().and_then(|n| n.parse().ok()) {
                    out.push(n);
                }
            }
        }
    }
    out
}

#[test]
fn reel_and_lerobot_datasets_merge_in_both_orders() {
    let Some(Oracle { python: py, script }) = Oracle::or_skip("the merge test") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let mut specs = Vec::new();
    for (vcodec, lerobot_name) in [
        ("libx264", "h264"),
        ("libx265", "hevc"),
        ("libsvtav1", "libsvtav1"),
    ] {
        let root = d.path().join(format!("reel_{lerobot_name}"));
        let mut c = sim(&root, 1, 2, 0.7);
        c.args(["--vcodec", vcodec, "--deferred", "never"]);
        run_ok(&mut c);
        specs.push(format!("{lerobot_name}:{}", root.display()));
    }
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/lerobot_merge.py");
    let run = || {
        Command::new(&py)
            .arg(&helper)
            .arg(d.path())
            .args(&specs)
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .expect("run lerobot_merge.py")
    };
    let mut out = run();
    // LeRobot's own HEVC writer (PyAV's x265 4.1) sometimes aborts at a thread pool's end on a
    // busy machine ("terminate called without an active exception", SIGABRT) while making the
    // LeRobot-written datasets: LeRobot's crash, not a verdict on reel's files. One more try
    // then, said so; any other failure, or a second abort, fails the test.
    if std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(6) {
        eprintln!(
            "lerobot_merge.py aborted (SIGABRT in LeRobot's process); once more:\n{}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| l.contains("terminate"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        out = run();
    }
    assert!(
        out.status.success(),
        "lerobot_merge.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let results: serde_json::Value = serde_json::from_str(line).expect("merge results JSON");
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 6);
    for r in results {
        let (codec, order) = (r["codec"].as_str().unwrap(), r["order"].as_str().unwrap());
        assert!(
            r["error"].is_null(),
            "{codec} {order}: aggregate_datasets failed: {}",
            r["error"]
        );
        let merged = Path::new(r["merged"].as_str().unwrap());
        assert_eq!(info(merged)["total_episodes"], 4, "{codec} {order}");
        let report = oracle_json(&py, &script, merged);
        for name in report["failed_checks"].as_array().unwrap() {
            let name = name.as_str().unwrap();
            let allowed = name.ends_with("/ stats values")
                || (codec == "hevc" && name.starts_with("LeRobotDataset ("));
            assert!(
                allowed,
                "{codec} {order}: unexpected failure '{name}':\n{report}"
            );
        }
        for item in report["items"].as_array().unwrap() {
            if item["status"] == "FAIL" && item["check"] == "stats values" {
                let msg = item["message"].as_str().unwrap();
                assert!(
                    msg.starts_with("episode_index:") || msg.starts_with("index:"),
                    "{codec} {order}: only LeRobot's merge-stats bug is allowed: {msg}"
                );
            }
        }
        // reel's episodes always decode: 0-1 when reel came first, 2-3 otherwise.
        let reel_eps: [u64; 2] = if order == "reel_first" {
            [0, 1]
        } else {
            [2, 3]
        };
        let bad = failing_episodes(&report);
        assert!(
            !bad.iter().any(|e| reel_eps.contains(e)),
            "{codec} {order}: reel's episodes {reel_eps:?} must decode, failures name {bad:?}"
        );
    }
}
