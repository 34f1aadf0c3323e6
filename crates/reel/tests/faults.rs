//! Encoders that hang or fail mid-episode are replaced without losing a frame: each injected
//! fault during a 3-camera recording leaves every episode complete (one video frame per row),
//! loadable by LeRobot, with the switch recorded in the episode's metadata.

use crate::common::*;

fn switches(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for (_, figures) in reel_dataset::figures::read(root).unwrap() {
        for (k, v) in figures {
            if k.ends_with("/encoder_switches") {
                if let reel_dataset::episodes::ExtraValue::Str(s) = v {
                    out.push(s);
                }
            }
        }
    }
    out
}

fn run_fault(fault: &str, expect: &str) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join(fault.replace('=', "_"));
    let mut c = sim(&root, 3, 2, 1.5);
    c.args(["--inject-fault", fault, "--encoder-timeout-s", "1"]);
    run_ok(&mut c);
    let info = info(&root);
    assert_eq!(info["total_episodes"], 2, "{fault}");
    assert_eq!(info["total_frames"], 90, "{fault}: no frame lost");
    let sw = switches(&root);
    assert!(
        sw.iter().any(|s| s.contains(expect)),
        "{fault}: switch recorded in the metadata: {sw:?}"
    );
    run_ok(reel().args(["check", "--decode"]).arg(&root));
    assert_lerobot_loads(&root);
}

#[test]
fn error_after_n_frames() {
    run_fault("error-after=20", "error at");
}

#[test]
fn hang_after_n_frames() {
    run_fault("hang-after=20", "accepted no frame");
}

#[test]
fn hang_on_open() {
    run_fault("hang-open", "did not open");
}

#[test]
fn never_flushes() {
    run_fault("no-flush", "did not flush");
}
