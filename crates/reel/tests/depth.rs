//! Depth cameras (issue 20 item 1): a synthetic 16-bit ramp with a frame code (a lavfi graph
//! converted to gray16le, `FORMAT` `gray16le` of the camera spec) recorded by `reel record`
//! beside an RGB camera in a deferred AV1 session, resumed, re-encoded and merged:
//! - the depth block of `info.json` is LeRobot's (`is_depth_map`, `depth_unit`, HEVC
//!   `gray12le`, the quantiser's fields), and LeRobot's check passes;
//! - LeRobot's loader returns the millimetres LeRobot's own writer stores for the same inputs
//!   (`tests/py/lerobot_depth.py`: equal but at the quantiser's rounding boundaries), and the
//!   depth statistics agree;
//! - `aggregate_datasets` with the LeRobot-written dataset, in both orders, and `reel merge`
//!   (stream copy) give every source frame back;
//! - `reel reencode` leaves the depth stream alone and says so.

use crate::common::*;
use std::path::Path;
use std::process::Command;

const GRAPH: &str = "nullsrc=s=64x48:r=30,format=gray16le,geq=lum='if(lt(X\\,8)*lt(Y\\,8)\\,500+100*mod(N\\,90)\\,mod(X*150+Y*50+mod(N\\,90)*37\\,12000))'";

fn record(root: &Path, resume: bool) -> Command {
    let mut c = reel();
    c.args([
        "record",
        "--sim",
        "--no-keys",
        "--no-fsync",
        "--no-realtime",
    ])
    .arg("--root")
    .arg(root)
    .args(["--num-episodes", if resume { "1" } else { "2" }])
    .args(["--episode-time-s", "0.5", "--reset-time-s", "0"])
    .args(["--camera", "front=lavfi:testsrc2@64x64@30"])
    .arg("--camera")
    .arg(format!("depth=lavfi:{GRAPH}@64x48@30@gray16le"))
    .args(["--vcodec", "libsvtav1", "--deferred", "always"]);
    if resume {
        c.arg("--resume");
    }
    c
}

fn helper(py: &Path, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/lerobot_depth.py");
    let out = Command::new(py)
        .arg(script)
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("run lerobot_depth.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lerobot_depth.py {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("helper JSON")
}

#[test]
fn depth_camera_records_like_lerobot_and_merges() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("reel");
    run_ok(&mut record(&root, false));
    run_ok(&mut record(&root, true));
    let i = info(&root);
    assert_eq!(i["total_episodes"], 3);
    let depth = &i["features"]["observation.images.depth"];
    assert_eq!(depth["shape"], serde_json::json!([48, 64, 1]));
    let di = &depth["info"];
    for (k, v) in [
        ("is_depth_map", serde_json::json!(true)),
        ("depth_unit", "mm".into()),
        ("video.codec", "hevc".into()),
        ("video.pix_fmt", "gray12le".into()),
        ("video.channels", 1.into()),
        (
            "video.extra_options",
            serde_json::json!({"x265-params": "lossless=1"}),
        ),
        ("video.depth_max", serde_json::json!(10.0)),
        ("video.use_log", true.into()),
    ] {
        assert_eq!(di[k], v, "{k} in {di}");
    }
    // The RGB camera was converted to AV1 at finalize; the depth camera recorded HEVC live.
    assert_eq!(
        i["features"]["observation.images.front"]["info"]["video.codec"],
        "av1"
    );
    let keys: Vec<&String> = di.as_object().unwrap().keys().collect();
    assert_eq!(
        keys[..2],
        ["is_depth_map", "depth_unit"],
        "LeRobot's key order"
    );

    let merged = d.path().join("reel_merged");
    if let Some(Oracle { python: py, .. }) = Oracle::or_skip("the depth test") {
        compare_and_merge(&py, d.path(), &root, &merged);
    }
    // reel reencode converts the RGB camera only, and says so.
    let out = run_ok(
        reel()
            .args(["reencode"])
            .arg(&root)
            .args(["--vcodec", "libx264"]),
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("observation.images.depth is a depth stream"),
        "{text}"
    );
    let i = info(&root);
    assert_eq!(
        i["features"]["observation.images.front"]["info"]["video.codec"],
        "h264"
    );
    assert_eq!(
        i["features"]["observation.images.depth"]["info"]["video.codec"],
        "hevc"
    );
    let err = run_err(reel().args(["reencode"]).arg(&root).args([
        "--vcodec",
        "libx264",
        "--cameras",
        "depth",
    ]));
    assert!(err.contains("depth stream"), "{err}");

    // LeRobot's checks on what reel wrote (its codec warning aside: HEVC is LeRobot's depth
    // codec, the check warns on every non-AV1 stream).
    let mut roots = vec![root.clone()];
    if merged.exists() {
        roots.push(merged);
    }
    assert_lerobot_loads_all(&roots);
}

/// LeRobot's writer on the same inputs, `aggregate_datasets` both ways, `reel merge`.
fn compare_and_merge(py: &Path, work: &Path, root: &Path, merged: &Path) {
    let r = helper(py, &["make".as_ref(), work.as_os_str(), root.as_os_str()]);
    eprintln!("depth vs LeRobot: {r}");
    assert_eq!(r["frames"][0], r["frames"][1], "{r}");
    assert_eq!(r["values_differing_elsewhere"], 0, "{r}");
    for m in r["merges"].as_array().unwrap() {
        assert!(
            m["error"].is_null() && m["equal"] == true,
            "aggregate_datasets: {m}"
        );
    }
    for k in ["min", "max", "mean", "std", "count"] {
        assert!(r["stats_rel_diff"][k].as_f64().unwrap() < 1e-6, "{k}: {r}");
    }
    let lerobot = work.join("lerobot");
    run_ok(
        reel()
            .arg("merge")
            .arg(root)
            .arg(&lerobot)
            .arg("--output")
            .arg(merged),
    );
    let v = helper(
        py,
        &[
            "verify".as_ref(),
            merged.as_os_str(),
            root.as_os_str(),
            lerobot.as_os_str(),
        ],
    );
    assert_eq!(v["equal"], true, "reel merge: {v}");
}
