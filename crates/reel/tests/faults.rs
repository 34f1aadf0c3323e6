//! Encoders that hang or fail mid-episode are replaced without losing a frame: each injected
//! fault during a 3-camera recording leaves every episode complete (one video frame per row),
//! loadable by LeRobot, with the switch recorded in the episode's metadata.

use crate::common::*;

fn switches(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for (_, figures) in reel_dataset::figures::read(root).unwrap() {
        for (k, v) in figures {
            if k.ends_with("/encoder_switches") {
                if let reel_core::extra::ExtraValue::Str(s) = v {
                    out.push(s);
                }
            }
        }
    }
    out
}

/// `timeout_s`: the watchdog's `--encoder-timeout-s`. The faulty encoder trips it whatever its
/// value; the fallback that replaces it must finish within it on a loaded machine too.
fn run_fault(fault: &str, expect: &str) {
    run_fault_with(fault, expect, "1")
}

fn run_fault_with(fault: &str, expect: &str, timeout_s: &str) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join(fault.replace('=', "_"));
    let mut c = sim(&root, 3, 2, 1.5);
    c.args(["--inject-fault", fault, "--encoder-timeout-s", timeout_s]);
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
    // The flush deadline derives from the timeout: with 1 s, the fallback encoder's own flush
    // missed it on a loaded machine (CI at load 30: "no fallback encoder is left").
    run_fault_with("no-flush", "did not flush", "3");
}
