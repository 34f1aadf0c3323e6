//! `reel record` end to end: datasets written by the CLI load in LeRobot 0.6.1 (1, 2, 3
//! cameras; 1 and 10 episodes; file rollover; resume), and bad input gets clear errors.

use crate::common::*;
use std::fs;

#[test]
fn one_two_three_cameras_load_in_lerobot() {
    let d = tempfile::tempdir().unwrap();
    for cams in [1usize, 2, 3] {
        let root = d.path().join(format!("cams{cams}"));
        let out = run_ok(&mut sim(&root, cams, 1, 1.0));
        assert!(String::from_utf8_lossy(&out.stdout).contains("saved 1 episode(s), 30 frames"));
        let info = info(&root);
        assert_eq!(info["total_episodes"], 1);
        assert_eq!(info["total_frames"], 30);
        let videos = info["features"]
            .as_object()
            .unwrap()
            .values()
            .filter(|f| f["dtype"] == "video")
            .count();
        assert_eq!(videos, cams);
        assert_eq!(
            info["features"]["observation.images.front"]["info"]["video.codec"],
            "av1"
        );
        assert_reel_check(&root);
        assert_lerobot_loads(&root);
    }
}

#[test]
fn ten_episodes_with_rollover_load_in_lerobot() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ten");
    // Tiny file limits force several data and video files.
    let mut c = sim(&root, 2, 10, 0.5);
    c.args([
        "--data-files-size-mb",
        "0.008",
        "--video-files-size-mb",
        "0.04",
    ]);
    run_ok(&mut c);
    let info = info(&root);
    assert_eq!(info["total_episodes"], 10);
    assert_eq!(info["total_frames"], 150);
    let data_files = fs::read_dir(root.join("data/chunk-000")).unwrap().count();
    let video_files = fs::read_dir(root.join("videos/observation.images.front/chunk-000"))
        .unwrap()
        .count();
    assert!(data_files >= 2, "data rolled over into {data_files} files");
    assert!(
        video_files >= 2,
        "video rolled over into {video_files} files"
    );
    assert!(
        video_files < 10,
        "video files hold several episodes ({video_files} files for 10 episodes)"
    );
    assert!(
        !root.join(".reel").exists(),
        "scratch directory removed at the end"
    );
    assert_reel_check(&root);
    assert_lerobot_loads(&root);
}

#[test]
fn resume_adds_episodes_and_checks_compatibility() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("resume");
    run_ok(&mut sim(&root, 2, 1, 1.0));
    let mut again = sim(&root, 2, 2, 1.0);
    again.arg("--resume");
    run_ok(&mut again);
    let info = info(&root);
    assert_eq!(info["total_episodes"], 3);
    assert_eq!(info["total_frames"], 90);
    // A resumed session starts new files, as LeRobot does.
    assert!(root.join("data/chunk-000/file-001.parquet").exists());
    assert!(root
        .join("videos/observation.images.front/chunk-000/file-001.mp4")
        .exists());
    assert_reel_check(&root);
    assert_lerobot_loads(&root);

    let mut fps = sim(&root, 2, 1, 1.0);
    fps.args(["--resume", "--fps", "15"]);
    let err = run_err(&mut fps);
    assert!(
        err.contains("fps is 30 in the dataset, 15 requested"),
        "{err}"
    );
    let mut cams = sim(&root, 3, 1, 1.0);
    cams.arg("--resume");
    let err = run_err(&mut cams);
    assert!(
        err.contains("observation.images.side") && err.contains("not in the dataset"),
        "{err}"
    );
    let mut size = sim_sized(&root, 2, 1, 1.0, 128, 64);
    size.arg("--resume");
    let err = run_err(&mut size);
    assert!(err.contains("observation.images.front"), "{err}");
    assert_eq!(info_after(&root), 3, "failed resumes changed nothing");
}

fn info_after(root: &std::path::Path) -> u64 {
    info(root)["total_episodes"].as_u64().unwrap()
}

#[test]
fn existing_dataset_is_never_overwritten_by_accident() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    run_ok(&mut sim(&root, 1, 1, 0.5));
    let err = run_err(&mut sim(&root, 1, 1, 0.5));
    assert!(
        err.contains("already exists") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(info_after(&root), 1);
}

#[test]
fn bad_input_gets_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    // Unknown codec.
    let mut c = sim(&d.path().join("a"), 1, 1, 0.5);
    c.args(["--vcodec", "libnope"]);
    let err = run_err(&mut c);
    assert!(err.contains("libnope"), "{err}");
    assert!(
        !d.path().join("a").exists(),
        "nothing created for a bad codec"
    );
    // A camera size the requested encoder refuses: named, and nothing is created...
    let mut c = sim_sized(&d.path().join("tiny"), 1, 1, 0.5, 64, 48);
    c.args(["--vcodec", "libsvtav1"]);
    let err = run_err(&mut c);
    assert!(
        err.contains("observation.images.front") && err.contains("64x48"),
        "{err}"
    );
    assert!(!d.path().join("tiny").exists());
    // ...while `--vcodec auto` (the default) picks an encoder that really opens at that size.
    run_ok(&mut sim_sized(
        &d.path().join("tiny_auto"),
        1,
        1,
        0.5,
        64,
        48,
    ));
    let tiny = d.path().join("tiny_auto");
    let figures = reel_dataset::figures::read(&tiny).unwrap();
    let enc: Vec<String> = figures[&0]
        .iter()
        .filter(|(k, _)| k.ends_with("/encoder"))
        .filter_map(|(_, v)| match v {
            reel_core::extra::ExtraValue::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert!(
        !enc.is_empty() && enc.iter().all(|e| e != "libsvtav1"),
        "auto fell back from SVT-AV1 at 64x48: {enc:?}"
    );
    // A camera that cannot open.
    let mut c = sim(&d.path().join("b"), 1, 1, 0.5);
    c.args(["--camera", "wrist=/dev/video9@640x480@30"]);
    let err = run_err(&mut c);
    assert!(err.contains("/dev/video9"), "{err}");
    // An unwritable root (a path under a regular file).
    let file = d.path().join("plainfile");
    fs::write(&file, b"x").unwrap();
    let err = run_err(&mut sim(&file.join("ds"), 1, 1, 0.5));
    assert!(err.contains("plainfile"), "{err}");
    // A corrupt info.json on resume.
    let root = d.path().join("c");
    run_ok(&mut sim(&root, 1, 1, 0.5));
    let before = fs::read(root.join("data/chunk-000/file-000.parquet")).unwrap();
    fs::write(
        root.join("meta/info.json"),
        b"{\"codebase_version\": \"v3.0\", \"fps\": ",
    )
    .unwrap();
    let mut c = sim(&root, 1, 1, 0.5);
    c.arg("--resume");
    let err = run_err(&mut c);
    assert!(err.contains("info.json"), "{err}");
    assert_eq!(
        fs::read(root.join("data/chunk-000/file-000.parquet")).unwrap(),
        before,
        "saved data untouched"
    );
}
