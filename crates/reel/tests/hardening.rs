//! Hardening (issue 12): odd options are refused before anything happens, `--overwrite`
//! deletes nothing it should not, every wait ends (a panicking committer, a stop during
//! `finalize`), and refused commands leave no scratch behind.

use crate::common::*;
use std::time::{Duration, Instant};

#[test]
fn out_of_range_options_are_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--episode-time-s", "0"], "episode time 0"),
        (&["--episode-time-s", "NaN"], "episode time NaN"),
        (&["--episode-time-s", "1e300"], "out of range"),
        (&["--episode-time-s", "0.03"], "fewer than 2 frames"),
        (&["--reset-time-s=-1"], "reset time"),
        (&["--fps", "0"], "fps 0"),
        (&["--num-episodes", "0"], "at least 1"),
        (&["--single-task", ""], "task"),
        (&["--encoder-timeout-s", "inf"], "encoder timeout"),
        (&["--max-queue-frames", "0"], "in memory"),
        (&["--data-files-size-mb=-5"], "data file size limit"),
        (&["--width", "641"], "even"),
        (&["--camera", "="], "--camera"),
        (&["--num-cameras=9"], "at most 8"),
    ];
    for (i, (args, want)) in cases.iter().enumerate() {
        let root = d.path().join(format!("ds{i}"));
        let mut c = reel();
        c.args(["record", "--sim", "--no-keys", "--no-fsync"])
            .arg("--root")
            .arg(&root)
            .args(*args);
        let t0 = Instant::now();
        let err = run_err(&mut c);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{args:?} refused at once, took {:?}",
            t0.elapsed()
        );
        assert!(!root.exists(), "{args:?}: nothing may be created");
    }
}

#[test]
fn overwrite_with_a_bad_option_leaves_the_dataset_byte_identical() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("keep");
    run_ok(&mut sim(&root, 1, 1, 0.5));
    let before = snapshot(&root);
    for bad in [
        &["--vcodec", "nosuchcodec"][..],
        &["--fps", "0"],
        &["--camera", "="],
        &["--camera", "front=/dev/video42@640x480@30"],
    ] {
        let mut c = sim(&root, 1, 1, 0.5);
        c.arg("--overwrite").args(bad);
        run_err(&mut c);
        assert_eq!(
            before,
            snapshot(&root),
            "--overwrite {bad:?} changed the dataset"
        );
    }
    // A folder that merely has a meta/info.json is not a dataset: never deleted.
    let app = d.path().join("webapp");
    std::fs::create_dir_all(app.join("meta")).unwrap();
    std::fs::write(app.join("meta/info.json"), r#"{"name": "my web app"}"#).unwrap();
    std::fs::write(app.join("precious.txt"), "keep me").unwrap();
    let mut c = sim(&app, 1, 1, 0.5);
    c.arg("--overwrite");
    let err = run_err(&mut c);
    assert!(err.contains("not a LeRobot dataset"), "{err}");
    assert_eq!(
        std::fs::read_to_string(app.join("precious.txt")).unwrap(),
        "keep me"
    );
    // A real overwrite works and leaves a fresh, valid dataset.
    let mut c = sim(&root, 1, 2, 0.5);
    c.arg("--overwrite");
    run_ok(&mut c);
    assert_eq!(info(&root)["total_episodes"], 2);
    assert_lerobot_loads(&root);
}

#[test]
fn a_panicking_committer_ends_the_session_with_an_error_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("panic");
    let mut c = sim(&root, 1, 3, 0.5);
    // The 2nd episode the committer takes makes it panic.
    c.env("REEL_FAULT_AT", "committer.job@2:panic");
    let t0 = Instant::now();
    let err = run_err(&mut c);
    let took = t0.elapsed();
    assert!(
        err.contains("committer thread stopped unexpectedly"),
        "{err}"
    );
    assert!(took < Duration::from_secs(60), "no hang: {took:?}");
    // The episode committed before the panic is intact.
    assert_eq!(info(&root)["total_episodes"], 1);
    assert_lerobot_loads(&root);
}

// One SIGTERM during the conversion to the final codec: `deferred.rs`
// (`one_sigterm_during_the_conversion_ends_it_promptly_with_a_valid_dataset`).

#[test]
fn reencode_refuses_an_unknown_codec_without_leaving_scratch() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("re");
    run_ok(&mut sim(&root, 1, 1, 0.5));
    let before = snapshot(&root);
    let err = run_err(
        reel()
            .arg("reencode")
            .arg(&root)
            .args(["--vcodec", "nosuchcodec"]),
    );
    assert!(err.contains("nosuchcodec"), "{err}");
    assert_eq!(before, snapshot(&root), "nothing written, no scratch left");
}

#[test]
fn demo_output_that_is_a_folder_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let err = run_err(
        reel()
            .args([
                "demo",
                "--camera",
                "main=lavfi:testsrc2@160x120@30",
                "--duration",
                "1",
            ])
            .arg("--output")
            .arg(d.path()),
    );
    assert!(err.contains("is a folder"), "{err}");
    let names: Vec<_> = std::fs::read_dir(d.path().parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(names.is_empty(), "no partial file beside it: {names:?}");
}
