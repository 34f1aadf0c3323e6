//! Deferred final codec end to end: `reel record --deferred always` records in libx264 and
//! ends with an all-AV1 dataset that LeRobot loads; a `kill -9` mid-session leaves a valid
//! x264 dataset that `reel check --repair` tidies and `reel reencode` converts.
// A test crate sees every dependency of its package and uses few of them.
#![allow(unused_crate_dependencies)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn video_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("videos")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "mp4") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Frames per camera key (summed over its files) and the codecs found.
fn frames_and_codecs(root: &Path) -> (Vec<(String, u64)>, Vec<String>) {
    let mut frames: Vec<(String, u64)> = Vec::new();
    let mut codecs = Vec::new();
    for f in video_files(root) {
        let key = f
            .strip_prefix(root.join("videos"))
            .unwrap()
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        let p = reel_media::probe::probe_video(&f).unwrap();
        match frames.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += p.frames,
            None => frames.push((key, p.frames)),
        }
        if !codecs.contains(&p.codec) {
            codecs.push(p.codec);
        }
    }
    (frames, codecs)
}

/// LeRobot's loader on an interim (x264) dataset: `--strict` would fail on its one warning,
/// "codec h264 (LeRobot's default is av1)", so this runs without it and also asserts that
/// the codec warning is the only one.
fn assert_lerobot_loads_h264(root: &Path) {
    let Some((py, script)) = oracle_paths() else {
        assert!(
            std::env::var("REEL_REQUIRE_ORACLE").is_err(),
            "REEL_REQUIRE_ORACLE is set but the LeRobot venv is missing"
        );
        eprintln!(
            "note: LeRobot conformance venv not found; skipping lerobot_check.py for {}",
            root.display()
        );
        return;
    };
    let out = std::process::Command::new(py)
        .arg(script)
        .arg(root)
        .args(["--color", "never"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("RESULT: PASS"),
        "lerobot_check.py failed on {}:\n{text}",
        root.display()
    );
    for line in text.lines().filter(|l| l.starts_with("[WARN]")) {
        assert!(
            line.contains("codec h264 (LeRobot's default is av1"),
            "unexpected warning: {line}"
        );
    }
}

fn deferred_sim(root: &Path, episodes: u32) -> std::process::Command {
    let mut c = reel();
    c.args([
        "record",
        "--sim",
        "--no-keys",
        "--no-fsync",
        "--num-cameras",
        "2",
        "--width",
        "96",
        "--height",
        "64",
    ])
    .arg("--root")
    .arg(root)
    .args([
        "--num-episodes",
        &episodes.to_string(),
        "--episode-time-s",
        "1",
        "--reset-time-s",
        "0.5",
    ])
    .args(["--deferred", "always", "--vcodec", "libsvtav1"]);
    c
}

#[test]
fn deferred_always_ends_with_an_av1_dataset() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("deferred");
    let out = run_ok(&mut deferred_sim(&root, 3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("saved 3 episode(s), 90 frames"));
    let info = info(&root);
    assert_eq!(info["total_episodes"], 3);
    assert_eq!(info["total_frames"], 90);
    for key in ["observation.images.front", "observation.images.wrist"] {
        let vi = &info["features"][key]["info"];
        assert_eq!(vi["video.codec"], "av1", "{key}: {vi}");
        assert_eq!(
            vi["video.crf"], 30,
            "the final encoder's settings are recorded: {vi}"
        );
        assert_eq!(vi["video.preset"], 12, "{vi}");
    }
    let (frames, codecs) = frames_and_codecs(&root);
    assert_eq!(codecs, vec!["av1".to_string()], "every video file is AV1");
    assert_eq!(frames.len(), 2);
    for (key, n) in &frames {
        assert_eq!(*n, 90, "{key}: every frame survived the conversion");
    }
    assert!(
        !root.join(".reel").exists(),
        "scratch directory removed at the end"
    );
    run_ok(reel().args(["check", "--decode"]).arg(&root));
    assert_lerobot_loads(&root);
}

#[test]
fn kill_9_during_deferred_session_leaves_a_valid_x264_dataset() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("killed");
    let mut cmd = deferred_sim(&root, 8);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once at least one episode is committed (its conversion is then queued or running).
    let t0 = Instant::now();
    let mut committed = false;
    while t0.elapsed() < Duration::from_secs(30) && !committed {
        std::thread::sleep(Duration::from_millis(100));
        committed = std::fs::read_to_string(root.join("meta/info.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .is_some_and(|v| v["total_episodes"].as_u64().unwrap_or(0) >= 1);
    }
    assert!(committed, "no episode committed within 30 s");
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: sending SIGKILL to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    assert!(
        root.join(".reel/deferred").exists(),
        "the killed session had conversions waiting"
    );

    let out = run_ok(reel().args(["check", "--repair"]).arg(&root));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("deferred conversion") && text.contains("reel reencode"),
        "{text}"
    );
    assert!(!root.join(".reel/deferred").exists());
    let info = info(&root);
    let total = info["total_frames"].as_u64().unwrap();
    assert!(total >= 30);
    assert_eq!(
        info["features"]["observation.images.front"]["info"]["video.codec"],
        "h264"
    );
    let (frames, codecs) = frames_and_codecs(&root);
    assert_eq!(
        codecs,
        vec!["h264".to_string()],
        "the live codec stays until converted"
    );
    for (key, n) in &frames {
        assert_eq!(*n, total, "{key}");
    }
    assert_reel_check(&root);
    assert_lerobot_loads_h264(&root);

    run_ok(
        reel()
            .arg("reencode")
            .arg(&root)
            .args(["--vcodec", "libsvtav1"]),
    );
    let info = crate::info(&root);
    assert_eq!(
        info["features"]["observation.images.front"]["info"]["video.codec"],
        "av1"
    );
    let (frames, codecs) = frames_and_codecs(&root);
    assert_eq!(codecs, vec!["av1".to_string()]);
    for (key, n) in &frames {
        assert_eq!(*n, total, "{key}");
    }
    run_ok(reel().args(["check", "--decode"]).arg(&root));
    assert_lerobot_loads(&root);
}
