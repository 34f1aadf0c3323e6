//! One writer per dataset (issue 13): a second writer is refused at once with the holder
//! named, whatever the command; read-only `reel check` runs and changes nothing; a `kill -9`
//! never leaves a stale lock; shards of `reel reencode` share a dataset.

use crate::common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A background `reel record` that is killed if the test fails before it ends.
struct Recorder(Option<Child>);

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts a 1-camera recording of `episodes` x `seconds` and waits until it holds the lock.
fn start_recording(root: &Path, episodes: u32, seconds: f64, resume: bool) -> Recorder {
    let mut cmd = sim(root, 1, episodes, seconds);
    if resume {
        cmd.arg("--resume");
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reel record");
    let lock = root.join(".reel/lock");
    let t0 = Instant::now();
    while std::fs::read_to_string(&lock)
        .map(|s| s.is_empty())
        .unwrap_or(true)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the recorder did not take the lock within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Recorder(Some(child))
}

fn finish(mut r: Recorder) -> std::process::Output {
    let c = r.0.take().unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the first recording must complete untouched:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`, expects a refusal naming the recorder, returns how long it took.
fn assert_refused(cmd: &mut Command, what: &str) -> Duration {
    let t0 = Instant::now();
    let out = cmd.output().unwrap();
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} must be refused:\n{err}");
    assert!(
        err.contains("in use by another writer") && err.contains("reel record (pid"),
        "{what}: the refusal names the holder:\n{err}"
    );
    eprintln!("{what}: refused in {:.0} ms", took.as_secs_f64() * 1e3);
    took
}

#[test]
fn second_writers_are_refused_while_one_records() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("busy");
    let rec = start_recording(&root, 3, 2.0, false);
    let mut times = Vec::new();
    let mut resume = sim(&root, 1, 1, 1.0);
    resume.arg("--resume");
    times.push(assert_refused(&mut resume, "reel record --resume"));
    let mut overwrite = sim(&root, 1, 1, 1.0);
    overwrite.arg("--overwrite");
    times.push(assert_refused(&mut overwrite, "reel record --overwrite"));
    times.push(assert_refused(
        reel().args(["check", "--repair"]).arg(&root),
        "reel check --repair",
    ));
    times.push(assert_refused(
        reel().arg("reencode").arg(&root).args(["--crf", "35"]),
        "reel reencode",
    ));
    for t in &times {
        assert!(*t < Duration::from_secs(2), "refused at once, took {t:?}");
    }
    // Read-only check runs (and says who writes).
    let out = reel().arg("check").arg(&root).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reel record (pid"), "{text}");
    finish(rec);
    assert_eq!(info(&root)["total_episodes"], 3);
    assert!(
        !root.join(".reel").exists(),
        "the lock goes with the writer"
    );
    assert_reel_check(&root);
    assert_lerobot_loads(&root);
}

#[test]
fn check_without_repair_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ro");
    run_ok(&mut sim(&root, 1, 1, 0.5));
    // Leave crash leftovers that a repair would remove: check alone must not touch them.
    std::fs::create_dir_all(root.join(".reel/segments/x")).unwrap();
    std::fs::write(root.join(".reel/segments/x/seg-1.mp4"), b"partial").unwrap();
    std::fs::write(root.join("meta/.info.json.reel-tmp"), b"{}").unwrap();
    let before = snapshot(&root);
    let out = reel().arg("check").arg(&root).output().unwrap();
    assert!(!out.status.success(), "leftovers are reported");
    assert_eq!(before, snapshot(&root), "reel check modified the dataset");
}

#[test]
fn a_killed_holder_leaves_no_stale_lock() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("killed");
    let mut rec = start_recording(&root, 20, 1.0, false);
    let c = rec.0.as_mut().unwrap();
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();
    rec.0 = None;
    assert!(
        root.join(".reel/lock").exists(),
        "the file stays, the lock does not"
    );
    // The next writer gets the lock at once, recovers and records.
    let t0 = Instant::now();
    run_ok(
        sim(&root, 1, 1, 0.5)
            .arg("--resume")
            .env("REEL_LOG", "warn"),
    );
    assert!(t0.elapsed() < Duration::from_secs(60));
    assert_reel_check(&root);
    assert_lerobot_loads(&root);
}

#[test]
fn reencode_shards_run_together_then_commit() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("shards");
    run_ok(sim(&root, 2, 2, 0.5).args(["--video-files-size-mb", "0.001"]));
    let shard = |i: usize| {
        let mut c = reel();
        c.arg("reencode")
            .arg(&root)
            .args(["--crf", "35", "--shard"])
            .arg(format!("{i}/2"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (shard(0), shard(1));
    for (i, c) in [a, b].into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "shard {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    run_ok(reel().args(["reencode", "--commit"]).arg(&root));
    assert_reel_check(&root);
    assert_lerobot_loads(&root);
    let fields = info(&root)["features"]["observation.images.front"]["info"].clone();
    assert_eq!(fields["video.crf"], 35, "{fields}");
}
