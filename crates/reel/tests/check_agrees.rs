//! `reel check --decode` agrees with LeRobot 0.6.1's loader (`lerobot_check.py --decode-all`)
//! on damaged datasets: an info.json without a key LeRobot needs (`total_episodes`,
//! `total_frames`, `total_tasks`, `data_path`, `video_path`, `splits`, `chunks_size`) or with
//! another file layout, stats.json vectors of the wrong length, a video of another resolution
//! swapped in, a missing video, a bitstream damaged lightly (the decoder conceals the errors)
//! and heavily. Both fail on each, both pass on the undamaged copy: a check that passes means
//! LeRobot loads the dataset.

use crate::common::*;
use std::path::{Path, PathBuf};

const FRONT: &str = "videos/observation.images.front/chunk-000/file-000.mp4";

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Flips bytes of the video's `mdat` payload at these offsets from its start.
fn damage_mdat(path: &Path, offsets: &[usize], mask: u8) {
    let mut b = std::fs::read(path).unwrap();
    let at = b.windows(4).position(|w| w == b"mdat").unwrap() + 4;
    for o in offsets {
        let i = (at + o).min(b.len() - 1);
        b[i] ^= mask;
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn reel_check_and_lerobot_agree_on_damaged_datasets() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("base");
    run_ok(sim(&base, 2, 3, 0.5).args(["--vcodec", "libx264"]));
    let other = d.path().join("other");
    run_ok(sim_sized(&other, 2, 3, 0.5, 128, 96).args(["--vcodec", "libx264"]));

    // (name, must fail)
    let mut cases: Vec<(String, bool)> = Vec::new();
    let copy = |name: &str| -> PathBuf {
        let to = d.path().join(name);
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(&base)
            .arg(&to)
            .status()
            .unwrap();
        assert!(st.success());
        to
    };
    copy("control");
    cases.push(("control".into(), false));
    for key in [
        "total_episodes",
        "total_frames",
        "total_tasks",
        "data_path",
        "video_path",
        "splits",
        "chunks_size",
    ] {
        let name = format!("no-{key}");
        let r = copy(&name);
        edit_json(&r.join("meta/info.json"), |v| {
            v.as_object_mut().unwrap().remove(key);
        });
        cases.push((name, true));
    }
    let r = copy("other-layout");
    edit_json(&r.join("meta/info.json"), |v| {
        v["data_path"] = "data/{chunk_index}/{file_index}.parquet".into();
    });
    cases.push(("other-layout".into(), true));
    let r = copy("stats-length");
    edit_json(&r.join("meta/stats.json"), |v| {
        v["action"]["mean"].as_array_mut().unwrap().pop();
    });
    cases.push(("stats-length".into(), true));
    let r = copy("other-resolution");
    std::fs::copy(other.join(FRONT), r.join(FRONT)).unwrap();
    cases.push(("other-resolution".into(), true));
    let r = copy("missing-video");
    std::fs::remove_file(r.join(FRONT)).unwrap();
    cases.push(("missing-video".into(), true));
    let r = copy("bitstream-light");
    damage_mdat(&r.join(FRONT), &[3000, 3001, 5000], 0xff);
    // Whether a few flipped bytes are concealed or fatal depends on where they land: only
    // agreement is required here.
    let light = "bitstream-light".to_string();
    let r = copy("bitstream-heavy");
    let offsets: Vec<usize> = (2000..6000).step_by(7).collect();
    damage_mdat(&r.join(FRONT), &offsets, 0x5a);
    cases.push(("bitstream-heavy".into(), true));

    let mut all: Vec<(String, Option<bool>)> = cases
        .iter()
        .map(|(n, must_fail)| (n.clone(), Some(*must_fail)))
        .collect();
    all.push((light, None));
    let roots: Vec<PathBuf> = all.iter().map(|(n, _)| d.path().join(n)).collect();
    let reel_ok: Vec<bool> = roots
        .iter()
        .map(|r| {
            reel()
                .args(["check", "--decode"])
                .arg(r)
                .output()
                .unwrap()
                .status
                .success()
        })
        .collect();
    for ((name, must_fail), ok) in all.iter().zip(&reel_ok) {
        if let Some(must_fail) = must_fail {
            assert_eq!(
                !ok,
                *must_fail,
                "reel check on {name}: {}",
                if *ok { "passed" } else { "failed" }
            );
        }
    }
    let Some(lerobot) = lerobot_results(&roots, &["--decode-all"]) else {
        return;
    };
    for (((name, _), ok), (_, lr_ok, report)) in all.iter().zip(&reel_ok).zip(&lerobot) {
        assert_eq!(
            ok,
            lr_ok,
            "{name}: reel check {}, LeRobot {}\n{report}",
            if *ok { "passes" } else { "fails" },
            if *lr_ok { "passes" } else { "fails" }
        );
    }
}

#[test]
fn an_unreadable_data_file_is_named_and_the_next_one_is_not_blamed() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("split");
    // A tiny file-size limit: each episode starts a new data file.
    run_ok(sim(&root, 1, 3, 0.3).args(["--vcodec", "libx264", "--data-files-size-mb", "0.0001"]));
    let f0 = root.join("data/chunk-000/file-000.parquet");
    let f1 = root.join("data/chunk-000/file-001.parquet");
    assert!(f1.exists(), "the limit splits the data files");
    let len = std::fs::metadata(&f0).unwrap().len();
    let mut b = std::fs::read(&f0).unwrap();
    b.truncate(len as usize / 2);
    std::fs::write(&f0, b).unwrap();
    let out = reel().args(["check"]).arg(&root).output().unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = text.lines().filter(|l| l.starts_with("PROBLEM")).collect();
    assert!(
        problems.iter().any(|l| l.contains("file-000.parquet")),
        "{text}"
    );
    assert!(
        !problems.iter().any(|l| l.contains("file-001.parquet")),
        "file-001 is intact: {text}"
    );
    if let Some(r) = lerobot_results(std::slice::from_ref(&root), &[]) {
        assert!(!r[0].1, "LeRobot fails on it too");
    }
}
