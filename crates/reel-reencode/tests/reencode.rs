//! End-to-end tests of the batch re-encode on a real reel-recorded dataset (2 cameras,
//! 6 episodes, libx264, one episode per video file): x264 → SVT-AV1 with checks, no-op
//! rerun, episode/camera subsets, fallback after a hang and after a missing encoder,
//! shards + commit, and a real `kill -9` in the middle followed by a rerun.
// A test crate sees every dependency of its package and uses few of them.
#![allow(unused_crate_dependencies)]
// Tests unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reel_core::Result;
use reel_engine::check::{check, CheckOptions};
use reel_media::EncoderSettings;
use reel_reencode::{
    reencode, reencode_with, CommitMode, FfmpegTranscoder, NoProgress, ReencodeOptions, Transcoder,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reel_bin() -> PathBuf {
    // The target directory this test was built in (CARGO_TARGET_DIR honoured): <target>/tmp.
    let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../debug/reel");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "reel"])
            .current_dir(workspace())
            .status()
            .unwrap();
        assert!(st.success(), "cargo build -p reel failed");
    }
    bin
}

/// The recorded master dataset (made once per test process).
fn master() -> &'static Path {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let root = dir.join("master");
        let out = Command::new(reel_bin())
            .args(["record", "--sim", "--no-keys", "--root"])
            .arg(&root)
            .args([
                "--num-episodes",
                "6",
                "--episode-time-s",
                "0.5",
                "--reset-time-s",
                "0",
                "--width",
                "96",
            ])
            .args([
                "--height",
                "64",
                "--num-cameras",
                "2",
                "--vcodec",
                "libx264",
                "--video-files-size-mb",
                "0.01",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "reel record failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        root
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn fixture(tmp: &tempfile::TempDir, name: &str) -> PathBuf {
    let root = tmp.path().join(name);
    copy_dir(master(), &root);
    root
}

fn videos(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for key in ["observation.images.front", "observation.images.wrist"] {
        for e in std::fs::read_dir(root.join("videos").join(key).join("chunk-000")).unwrap() {
            out.push(e.unwrap().path());
        }
    }
    out.sort();
    out
}

fn codec(p: &Path) -> String {
    reel_media::probe::probe_video(p).unwrap().codec
}

fn frames(p: &Path) -> u64 {
    reel_media::probe::probe_video(p).unwrap().frames
}

fn av1() -> EncoderSettings {
    EncoderSettings::lerobot_default()
}

fn opts() -> ReencodeOptions {
    let mut o = ReencodeOptions::new(av1());
    o.jobs = 2;
    o
}

fn assert_valid(root: &Path) {
    let r = check(
        root,
        CheckOptions {
            repair: false,
            decode: true,
        },
    )
    .unwrap();
    assert!(r.ok(), "reel check: {:?}", r.problems);
    assert_eq!((r.episodes, r.frames), (6, 90));
}

fn lerobot_check(root: &Path) {
    reel_testkit::assert_lerobot_loads(root);
}

#[test]
fn x264_to_av1_then_rerun_is_a_noop() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture(&tmp, "ds");
    let before: Vec<(PathBuf, u64)> = videos(&root)
        .into_iter()
        .map(|p| (p.clone(), frames(&p)))
        .collect();
    assert!(before.iter().all(|(p, _)| codec(p) == "h264"));
    let r = reencode(&root, &opts(), &NoProgress).unwrap();
    assert_eq!(r.files.len(), 12, "{r:?}");
    assert!(r.failed.is_empty() && r.swapped && r.fell_back().is_empty());
    assert_eq!(r.frames_encoded, 180);
    for (p, n) in &before {
        assert_eq!(codec(p), "av1", "{}", p.display());
        assert_eq!(frames(p), *n, "{}", p.display());
        let d = reel_media::decode::decode_video(p, &[]).unwrap();
        assert_eq!(d.pts.len() as u64, *n);
    }
    let info = reel_dataset::info::Info::read(&root).unwrap();
    for key in ["observation.images.front", "observation.images.wrist"] {
        let vi = info.video_info_of(key).unwrap();
        let get = |k: &str| {
            vi.fields
                .iter()
                .find(|(kk, _)| kk == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("video.codec"), "av1");
        assert_eq!(get("video.pix_fmt"), "yuv420p");
        assert_eq!(get("video.crf"), 30);
        assert_eq!(get("video.preset"), 12);
        assert_eq!(get("video.g"), 2);
    }
    assert!(
        !reel_reencode::state::work_dir(&root).exists(),
        "scratch left behind"
    );
    assert_valid(&root);
    lerobot_check(&root);

    let mtimes: Vec<_> = before
        .iter()
        .map(|(p, _)| std::fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    let r2 = reencode(&root, &opts(), &NoProgress).unwrap();
    assert!(r2.files.is_empty() && !r2.swapped, "{r2:?}");
    assert_eq!(r2.skipped.len(), 12);
    let mtimes2: Vec<_> = before
        .iter()
        .map(|(p, _)| std::fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    assert_eq!(mtimes, mtimes2);
}

#[test]
fn episode_and_camera_subsets_touch_only_their_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture(&tmp, "ds");
    let mut o = opts();
    o.episodes = Some(vec![1, 4]);
    let r = reencode(&root, &o, &NoProgress).unwrap();
    assert_eq!(r.files.len(), 4, "{r:?}");
    for p in videos(&root) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let want = if name == "file-001.mp4" || name == "file-004.mp4" {
            "av1"
        } else {
            "h264"
        };
        assert_eq!(codec(&p), want, "{}", p.display());
    }
    let root2 = fixture(&tmp, "ds2");
    let mut o = opts();
    o.episodes = Some(vec![2]);
    o.cameras = Some(vec!["wrist".into()]);
    let r = reencode(&root2, &o, &NoProgress).unwrap();
    assert_eq!(
        r.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["videos/observation.images.wrist/chunk-000/file-002.mp4"]
    );
    let changed: Vec<PathBuf> = videos(&root2)
        .into_iter()
        .filter(|p| codec(p) == "av1")
        .collect();
    assert_eq!(
        changed,
        [root2.join("videos/observation.images.wrist/chunk-000/file-002.mp4")]
    );
    assert_valid(&root2);
}

/// Writes 3 frames, then hangs (ignoring cancel) when crf is 31; otherwise the real thing.
struct HangAtCrf31;

impl Transcoder for HangAtCrf31 {
    fn transcode(
        &self,
        src: &Path,
        dst: &Path,
        fps: u32,
        s: &EncoderSettings,
        p: &Arc<AtomicU64>,
        c: &Arc<AtomicBool>,
    ) -> Result<u64> {
        if s.crf == Some(31.0) {
            p.fetch_add(3, Ordering::Relaxed);
            std::thread::sleep(Duration::from_secs(60));
        }
        FfmpegTranscoder.transcode(src, dst, fps, s, p, c)
    }
}

#[test]
fn hung_or_missing_encoder_falls_back_to_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture(&tmp, "hang");
    let mut primary = av1();
    primary.crf = Some(31.0);
    let mut o = opts();
    o.settings = primary;
    o.fallback = vec![av1()];
    o.episodes = Some(vec![0]);
    o.task_timeout = Duration::from_millis(300);
    let t0 = Instant::now();
    let r = reencode_with(&root, &o, &NoProgress, Arc::new(HangAtCrf31)).unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "the hung attempts were not abandoned"
    );
    assert_eq!(r.files.len(), 2);
    assert_eq!(r.fell_back().len(), 2, "{r:?}");
    for f in &r.files {
        assert_eq!(f.encoder, "libsvtav1");
        assert!(
            f.failed_attempts[0].contains("no frame progress"),
            "{:?}",
            f.failed_attempts
        );
        assert_eq!(codec(&root.join(&f.path)), "av1");
    }
    let info = reel_dataset::info::Info::read(&root).unwrap();
    let vi = info.video_info_of("observation.images.front").unwrap();
    assert!(
        vi.fields.iter().any(|(k, v)| k == "video.crf" && v == 30),
        "info.json must describe the fallback"
    );
    assert_valid(&root);

    let root = fixture(&tmp, "missing");
    let mut o = opts();
    o.settings = EncoderSettings {
        vcodec: "libnope".into(),
        ..av1()
    };
    o.fallback = vec![av1()];
    o.episodes = Some(vec![3]);
    // An encoder FFmpeg does not know is a typo, not a reason to fall back: refused before
    // anything is written, naming it.
    let err = reencode(&root, &o, &NoProgress).unwrap_err().to_string();
    assert!(err.contains("libnope"), "{err}");
    assert!(!root.join(".reel").exists(), "no scratch left");
    assert_valid(&root);

    // An encoder that cannot open (an option it does not know) without a fallback: the file
    // fails, nothing is swapped and the dataset is untouched.
    let root = fixture(&tmp, "nofallback");
    let mut o = opts();
    o.settings = EncoderSettings {
        extra: vec![("crff".into(), "10".into())],
        ..av1()
    };
    o.episodes = Some(vec![3]);
    let r = reencode(&root, &o, &NoProgress).unwrap();
    assert_eq!(r.failed.len(), 2);
    assert!(!r.swapped);
    assert!(videos(&root).iter().all(|p| codec(p) == "h264"));
}

#[test]
fn shards_then_commit_equal_a_plain_run() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = fixture(&tmp, "plain");
    let sharded = fixture(&tmp, "sharded");
    reencode(&plain, &opts(), &NoProgress).unwrap();

    let mut o = opts();
    o.shard = Some((0, 2));
    let r0 = reencode(&sharded, &o, &NoProgress).unwrap();
    assert_eq!(r0.files.len(), 6);
    assert!(!r0.swapped);
    assert!(
        videos(&sharded).iter().all(|p| codec(p) == "h264"),
        "a shard must not swap"
    );
    let mut c = opts();
    c.commit = CommitMode::CommitOnly;
    let e = reencode(&sharded, &c, &NoProgress).unwrap_err().to_string();
    assert!(e.contains("1/2"), "{e}");
    o.shard = Some((1, 2));
    let r1 = reencode(&sharded, &o, &NoProgress).unwrap();
    assert_eq!(r1.files.len(), 6);
    let done: std::collections::BTreeSet<String> = r0
        .files
        .iter()
        .chain(&r1.files)
        .map(|f| f.path.clone())
        .collect();
    assert_eq!(done.len(), 12, "shards overlap");
    let rc = reencode(&sharded, &c, &NoProgress).unwrap();
    assert!(rc.swapped);
    assert_eq!(rc.files.len(), 12);
    for (a, b) in videos(&plain).iter().zip(videos(&sharded)) {
        assert_eq!((codec(a), frames(a)), (codec(&b), frames(&b)));
    }
    assert_eq!(
        std::fs::read_to_string(plain.join("meta/info.json")).unwrap(),
        std::fs::read_to_string(sharded.join("meta/info.json")).unwrap()
    );
    assert!(!reel_reencode::state::work_dir(&sharded).exists());
    assert_valid(&sharded);
}

/// The real transcoder, slowed down so that a parent can kill the process half way.
struct Slow;

impl Transcoder for Slow {
    fn transcode(
        &self,
        src: &Path,
        dst: &Path,
        fps: u32,
        s: &EncoderSettings,
        p: &Arc<AtomicU64>,
        c: &Arc<AtomicBool>,
    ) -> Result<u64> {
        std::thread::sleep(Duration::from_millis(150));
        FfmpegTranscoder.transcode(src, dst, fps, s, p, c)
    }
}

const CHILD_ENV: &str = "REEL_REENCODE_TEST_CHILD_ROOT";

#[test]
fn kill_9_half_way_then_rerun_finishes() {
    if let Ok(root) = std::env::var(CHILD_ENV) {
        // Child: re-encode slowly until killed.
        let mut o = opts();
        o.jobs = 1;
        reencode_with(Path::new(&root), &o, &NoProgress, Arc::new(Slow)).unwrap();
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture(&tmp, "killed");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "kill_9_half_way_then_rerun_finishes",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &root)
        .spawn()
        .unwrap();
    let state = reel_reencode::state::state_path(&root, None);
    let t0 = Instant::now();
    loop {
        let n = reel_reencode::state::State::read(&state)
            .ok()
            .flatten()
            .map(|s| s.files.len())
            .unwrap_or(0);
        if n >= 5 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "child made no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "child finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done_before = reel_reencode::state::State::read(&state)
        .unwrap()
        .unwrap()
        .files
        .len();
    assert!((5..12).contains(&done_before), "{done_before}");
    // The dataset is still the old, valid one.
    assert_valid(&root);
    assert!(videos(&root).iter().all(|p| codec(p) == "h264"));
    let r = reencode(&root, &opts(), &NoProgress).unwrap();
    assert!(r.swapped && r.failed.is_empty());
    assert_eq!(r.files.len(), 12);
    let resumed = r.files.iter().filter(|f| f.resumed).count();
    assert!(
        resumed >= done_before,
        "resumed {resumed} of {done_before} finished files"
    );
    assert_eq!(r.frames_encoded, (12 - resumed as u64) * 15);
    assert!(videos(&root).iter().all(|p| codec(p) == "av1"));
    assert_valid(&root);
    lerobot_check(&root);
}
