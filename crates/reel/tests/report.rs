//! See why: per-tick figures stored with every episode (and ignored by LeRobot's loader,
//! resume and merge), `reel report` and the live page of `reel record --display`, both
//! rendered by headless Chromium (Debian's `chromium`; under REEL_REQUIRE_ORACLE=1 a missing
//! browser fails these tests instead of skipping them).

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The browser, or None (a note) when it is missing and not required.
fn chromium() -> Option<PathBuf> {
    reel_testkit::chromium("the report and live-page tests")
}

/// Runs headless Chromium (as root: no sandbox; no network but the page's own) with `args`
/// on `url`, for at most 90 s; returns stdout.
fn browse(bin: &Path, url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// A PNG's (width, height), after checking its signature.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).expect("screenshot written");
    assert_eq!(&b[1..4], b"PNG", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

/// Attribute `name` of every tag that contains `marker`.
fn attrs(dom: &str, marker: &str, name: &str) -> Vec<String> {
    dom.match_indices(marker)
        .filter_map(|(i, _)| {
            let start = dom[..i].rfind('<')?;
            let end = i + dom[i..].find('>')?;
            let tag = &dom[start..end];
            let key = format!("{name}=\"");
            let a = tag.find(&key)? + key.len();
            Some(tag[a..a + tag[a..].find('"')?].to_string())
        })
        .collect()
}

/// Every file under `root` with its size and modification time.
fn tree(root: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut v = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                v.push((e.path(), m.len(), m.modified().unwrap()));
            }
        }
    }
    v.sort();
    v
}

/// A recorded dataset shared by the tests of this file that run in one process (2 cameras,
/// 3 episodes of 1 s at 30 Hz, the default encoder: what LeRobot's strict check wants). Each
/// process records its own: under nextest every test is a process, and two of them sharing one
/// folder removed each other's dataset.
fn dataset() -> &'static Path {
    static DS: OnceLock<PathBuf> = OnceLock::new();
    DS.get_or_init(|| {
        let root = tempfile::Builder::new()
            .prefix("report-ds-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep()
            .join("ds");
        run_ok(&mut sim(&root, 2, 3, 1.0));
        root
    })
}

/// (episode index, length) of every episode.
fn lengths(root: &Path) -> Vec<(u64, u64)> {
    let info = reel_dataset::info::Info::read(root).unwrap();
    reel_dataset::episodes::read_all(root, &info.features)
        .unwrap()
        .iter()
        .map(|e| (e.episode_index, e.length))
        .collect()
}

#[test]
fn ticks_are_stored_per_frame_and_lerobot_ignores_them() {
    let root = dataset();
    let eps = lengths(root);
    assert_eq!(eps.len(), 3);
    let ticks = reel_dataset::ticks::read_all(root).unwrap();
    assert_eq!(ticks.len(), 3, "every episode has its ticks");
    let figures = reel_dataset::figures::read(root).unwrap();
    for (t, (i, len)) in ticks.iter().zip(&eps) {
        assert_eq!(t.episode_index, *i);
        assert_eq!(t.len() as u64, *len, "one tick per row of episode {i}");
        assert_eq!(t.cameras.len(), 2);
        assert!(t.t_s.windows(2).all(|w| w[1] > w[0]), "ticks in time order");
        assert!(t.sections_ms.iter().flatten().all(|v| *v >= 0.0));
        // The stored ticks agree with the episode's own missed-deadlines figure.
        let stored = figures[i]
            .iter()
            .find(|(k, _)| k == "missed_deadlines")
            .map(|(_, v)| v.clone());
        let counted = t.missed.iter().filter(|m| **m).count() as i64;
        assert_eq!(
            stored,
            Some(reel_core::extra::ExtraValue::I64(counted)),
            "episode {i}"
        );
    }
    assert_reel_check(root);
    assert_lerobot_loads(root);
    // LeRobot's own resume (append an episode) and merge (aggregate_datasets) on it.
    let Some(Oracle { python: py, .. }) = Oracle::or_skip("LeRobot's resume and merge") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/lerobot_resume_merge.py");
    let out = Command::new(py)
        .arg(script)
        .arg(root)
        .arg(work.path())
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "LeRobot resume/merge failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["resumed_episodes"], 4);
    assert_eq!(v["merged_episodes"], 7);
    assert_eq!(v["ticks_untouched"], true);
}

#[test]
fn report_page_draws_every_episode_and_leaves_the_dataset_alone() {
    let root = dataset();
    let before = tree(root);
    let out = tempfile::tempdir().unwrap();
    let html = out.path().join("report.html");
    let doctor = out.path().join("doctor.json");
    std::fs::write(
        &doctor,
        r#"{"fps": 30, "headline": "Highest stable rate measured: 20 Hz",
            "findings": [{"kind": "camera", "cause": "camera `wrist` is slower than the loop",
                          "evidence": "camera `wrist` delivers 20.0 fps of 30 requested", "advice": "lower the rate", "class": 0, "severity": 0.33}],
            "command": "reel record --fps 20"}"#,
    )
    .unwrap();
    run_ok(
        reel()
            .arg("report")
            .arg(root)
            .arg("-o")
            .arg(&html)
            .arg("--doctor")
            .arg(&doctor),
    );
    assert_eq!(tree(root), before, "reel report must not touch the dataset");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "self-contained"
    );
    // Writing into the dataset is refused.
    let err = run_err(
        reel()
            .arg("report")
            .arg(root)
            .arg("-o")
            .arg(root.join("r.html")),
    );
    assert!(err.contains("inside the dataset"), "{err}");
    assert_eq!(tree(root), before);

    let Some(bin) = chromium() else { return };
    let url = format!("file://{}", html.display());
    let dom = browse(&bin, &url, &["--dump-dom"]);
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "the page's script ran"
    );
    let eps = lengths(root);
    let ids = attrs(&dom, "class=\"episode\"", "data-episode");
    let ticks = attrs(&dom, "class=\"episode\"", "data-ticks");
    let rows = attrs(&dom, "class=\"episode\"", "data-rows");
    assert_eq!(ids.len(), eps.len(), "one section per episode");
    for (k, (i, len)) in eps.iter().enumerate() {
        assert_eq!(ids[k], i.to_string());
        assert_eq!(
            ticks[k],
            len.to_string(),
            "episode {i}: tick count = rows recorded"
        );
        assert_eq!(rows[k], len.to_string());
        let sec = &dom[dom.find(&format!("id=\"episode-{i}\"")).unwrap()..];
        let sec = &sec[..sec[1..].find("class=\"episode\"").unwrap_or(sec.len() - 1)];
        for f in [
            "tick time by section",
            "start lateness",
            "frame age per camera",
            "encoder queue per camera",
        ] {
            assert!(
                sec.contains(&format!("data-figure=\"{f}\"")),
                "episode {i} lacks {f}"
            );
        }
        assert!(sec.contains("<svg"), "episode {i} has drawn figures");
    }
    for t in [
        "tick time per episode",
        "missed deadlines per episode",
        "encoder speed per camera",
        "spilled frames per camera",
        "encoder switches per camera",
    ] {
        assert!(
            dom.contains(&format!("data-figure=\"{t}\"")),
            "trend {t} missing"
        );
    }
    assert!(
        dom.contains("data-cause=\"camera `wrist` is slower than the loop\""),
        "doctor findings shown"
    );
    let shot = out.path().join("report.png");
    browse(
        &bin,
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,2400",
        ],
    );
    assert_eq!(png_size(&shot), (1000, 2400));
    if let Some(keep) = std::env::var_os("REEL_KEEP_SCREENSHOTS") {
        let _ = std::fs::copy(&shot, Path::new(&keep).join("report.png"));
    }
}

#[test]
fn live_page_updates_while_a_session_runs() {
    let Some(bin) = chromium() else { return };
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    // The session outlasts the browser visits below however slow the machine is: 2 s episodes,
    // far more of them than the test waits for; the test ends it with SIGINT (which stops and
    // discards only the episode in progress).
    let mut cmd = sim_sized(&root, 3, 1000, 2.0, 160, 120);
    cmd.args(["--vcodec", "libx264", "--display", "--display-port", "0"])
        .env("REEL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start reel record --display");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the live page's address");
        if let Some(u) = line.strip_prefix("live page: ") {
            break u.trim().to_string();
        }
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    std::thread::sleep(Duration::from_millis(1500));
    let snap = |polls: u32| {
        browse(
            &bin,
            &format!("{url}?polls={polls}"),
            &["--virtual-time-budget=5000", "--dump-dom"],
        )
    };
    let first = snap(1);
    std::thread::sleep(Duration::from_millis(1500));
    let second = snap(2);
    let live_ticks = |dom: &str| -> u64 {
        attrs(dom, "id=\"live\"", "data-live-ticks")
            .first()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no live tick count in the page:\n{dom}"))
    };
    let (a, b) = (live_ticks(&first), live_ticks(&second));
    assert!(
        a > 0 && b > a,
        "the page follows the session: {a} then {b} ticks"
    );
    let polls: Vec<u32> = attrs(&second, "id=\"app\"", "data-polls")
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        polls.first().is_some_and(|p| *p >= 1),
        "the page refreshed itself from /api/page: {polls:?}"
    );
    assert!(
        second.contains("Recording episode")
            || second.contains("Resetting")
            || second.contains("Episode ended")
    );
    let loaded: Vec<u64> = attrs(&second, "id=\"thumb-", "data-loaded")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(loaded.len(), 3, "one thumbnail per camera");
    assert!(
        loaded.iter().all(|n| *n >= 1),
        "every camera's picture loaded: {loaded:?}"
    );
    assert!(second.contains("data-figure=\"tick time by section\""));
    let shot = d.path().join("live.png");
    browse(
        &bin,
        &format!("{url}?polls=1"),
        &[
            "--virtual-time-budget=2000",
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,1400",
        ],
    );
    assert_eq!(png_size(&shot), (1000, 1400));
    if let Some(keep) = std::env::var_os("REEL_KEEP_SCREENSHOTS") {
        let _ = std::fs::copy(&shot, Path::new(&keep).join("live.png"));
    }
    // Stop it as Ctrl-C does, once at least two episodes were saved while the page was watched.
    let t0 = Instant::now();
    while lengths_if_any(&root).len() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no two episodes saved in 120 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the session ended early"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill(2) with a pid this test spawned and still owns (not yet waited for).
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0, "SIGINT to the session");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the session did not end after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    // The page cost the session nothing it would show: every saved episode is whole (60 frames
    // of 2 s at 30 fps), numbered from 0; only the interrupted one is discarded.
    let eps = lengths(&root);
    assert!(eps.len() >= 2, "{eps:?}");
    for (i, (idx, len)) in eps.iter().enumerate() {
        assert_eq!((*idx, *len), (i as u64, 60), "{eps:?}");
    }
}

/// The episodes saved so far, or none while the dataset's metadata is not written yet.
fn lengths_if_any(root: &Path) -> Vec<(u64, u64)> {
    let Ok(info) = reel_dataset::info::Info::read(root) else {
        return Vec::new();
    };
    reel_dataset::episodes::read_all(root, &info.features)
        .unwrap_or_default()
        .iter()
        .map(|e| (e.episode_index, e.length))
        .collect()
}

#[test]
fn report_refuses_a_dataset_with_an_unfinished_save() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    run_ok(sim(&root, 1, 1, 0.5).args(["--vcodec", "libx264"]));
    std::fs::create_dir_all(root.join(".reel")).unwrap();
    std::fs::write(root.join(".reel/journal"), b"x").unwrap();
    let before = tree(&root);
    let err = run_err(
        reel()
            .arg("report")
            .arg(&root)
            .arg("-o")
            .arg(d.path().join("r.html")),
    );
    assert!(err.contains("unfinished episode save"), "{err}");
    assert_eq!(tree(&root), before, "a read-only command repairs nothing");
    let err = run_err(reel().arg("report").arg(d.path().join("missing")));
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn a_crash_inside_the_ticks_append_is_rolled_back_with_the_episode() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    // Killed right after the second episode's ticks were appended, before its commit.
    let out = sim(&root, 1, 2, 0.5)
        .args(["--vcodec", "libx264"])
        .env("REEL_FAULT_AT", "commit.ticks@2:kill")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the fault point killed it");
    assert!(
        reel_engine::writer::journal_pending(&root),
        "the second save was in flight"
    );
    let ticks_file = reel_dataset::ticks::ticks_file(&root, Default::default());
    assert_eq!(
        reel_dataset::ticks::rows(&ticks_file).unwrap(),
        30,
        "both episodes' ticks on disk before repair"
    );
    run_ok(reel().arg("check").arg("--repair").arg(&root));
    assert_eq!(lengths(&root), vec![(0, 15)]);
    assert_eq!(
        reel_dataset::ticks::rows(&ticks_file).unwrap(),
        15,
        "the unfinished episode's ticks are gone with it"
    );
    let t = reel_dataset::ticks::read_all(&root).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].len(), 15);
}
