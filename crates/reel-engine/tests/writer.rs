//! The writer through its library API: discarding an episode, frames spilled to disk when the
//! memory queue is full (every frame still reaches its video, in order), tasks, counters.

use reel_core::{Feature, Features, RowValues, Value, VideoFrame};
use reel_engine::camera::QueueLimits;
use reel_engine::writer::{DatasetWriter, WriterConfig};
use std::sync::Arc;

const W: u32 = 64;
const H: u32 = 64;

fn features() -> Features {
    let mut f = Features::new();
    f.push("action", Feature::vector_f32(&["a", "b"])).unwrap();
    f.push("observation.state", Feature::vector_f32(&["a", "b"]))
        .unwrap();
    f.push("observation.images.cam", Feature::video(H, W))
        .unwrap();
    f
}

/// Frame k is a grey of level 20 + 10*(k % 20) plus a small diagonal texture (0..15, mean 7.5):
/// decodable back to its index, and not a blank image.
fn frame(k: u32) -> VideoFrame {
    let level = 20 + 10 * (k % 20);
    let mut data = Vec::with_capacity((W * H * 3) as usize);
    for y in 0..H {
        for x in 0..W {
            let v = (level + (x + y) % 16) as u8;
            data.extend_from_slice(&[v, v, v]);
        }
    }
    VideoFrame::new(W, H, data).unwrap()
}

fn row(k: u32, task: &str) -> RowValues {
    RowValues::new(task)
        .with("action", Value::F32(vec![k as f32, 1.0]))
        .with("observation.state", Value::F32(vec![k as f32 * 0.5, -1.0]))
        .with("observation.images.cam", Value::Video(Arc::new(frame(k))))
}

fn mean(f: &VideoFrame) -> f64 {
    f.data.iter().map(|x| *x as f64).sum::<f64>() / f.data.len() as f64
}

#[test]
fn discard_then_save_keeps_only_the_saved_episode_and_its_task() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    let mut cfg = WriterConfig::new(&root, 30, features());
    cfg.durable = false;
    let mut w = DatasetWriter::create(cfg).unwrap();
    for k in 0..5 {
        w.add_frame(row(k, "task that gets discarded")).unwrap();
    }
    w.discard_episode().unwrap();
    for k in 0..10 {
        w.add_frame(row(k, "kept task")).unwrap();
    }
    let saved = w.save_episode_and_wait(Vec::new()).unwrap();
    assert_eq!(saved.episode_index, 0);
    assert_eq!(saved.frames, 10);
    assert!(
        w.save_episode(Vec::new()).is_err(),
        "an empty episode cannot be saved"
    );
    w.add_frame(row(0, "kept task")).unwrap();
    let e = w.save_episode(Vec::new()).unwrap_err().to_string();
    assert!(e.contains("1 frame"), "{e}");
    assert_eq!(
        w.frames_in_episode(),
        1,
        "the refused episode keeps its frame"
    );
    w.finalize().unwrap();
    assert_eq!(
        reel_dataset::tasks::read(&root).unwrap(),
        vec!["kept task".to_string()]
    );
    let info = reel_dataset::info::Info::read(&root).unwrap();
    assert_eq!(
        (info.total_episodes, info.total_frames, info.total_tasks),
        (1, 10, 1)
    );
    let r = reel_engine::check::check(
        &root,
        reel_engine::check::CheckOptions {
            decode: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    lerobot_loads(&root);
}

/// LeRobot 0.6.1's loader (`lerobot_check.py --strict`) on `root`; skipped with a note when
/// its venv is absent, unless REEL_REQUIRE_ORACLE is set (CI).
fn lerobot_loads(root: &std::path::Path) {
    reel_testkit::assert_lerobot_loads(root);
}

#[test]
fn frames_spill_to_disk_and_all_reach_the_video_in_order() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    let mut cfg = WriterConfig::new(&root, 30, features());
    cfg.durable = false;
    // Two frames in memory, the rest must go through the disk spill.
    cfg.queue = QueueLimits {
        max_frames_in_memory: 2,
        max_spill_bytes: 1 << 30,
        ..QueueLimits::default()
    };
    let mut w = DatasetWriter::create(cfg).unwrap();
    let n = 90;
    for k in 0..n {
        w.add_frame(row(k, "spill")).unwrap(); // as fast as possible: the encoder falls behind
    }
    let saved = w.save_episode_and_wait(Vec::new()).unwrap();
    w.finalize().unwrap();
    let spilled: u64 = saved.spilled.iter().map(|(_, s)| s).sum();
    assert!(spilled > 0, "frames went through the disk spill");
    assert_eq!(saved.frames, n as u64);
    let video = root.join("videos/observation.images.cam/chunk-000/file-000.mp4");
    let want: Vec<usize> = (0..n as usize).collect();
    let dec = reel_media::decode::decode_video(&video, &want).unwrap();
    assert_eq!(dec.pts.len(), n as usize, "one video frame per row");
    for (k, f) in &dec.rgb {
        let expect = (20 + 10 * (*k as u32 % 20)) as f64 + 7.5;
        assert!(
            (mean(f) - expect).abs() < 4.0,
            "frame {k}: mean {} expected {expect} (order kept through the spill)",
            mean(f)
        );
    }
    assert!(
        !root.join(".reel").exists(),
        "spill and segments removed at finalize"
    );
}

/// A deferred writer (live libx264, final libsvtav1) with the given final-lane spill budget.
fn deferred_writer(root: &std::path::Path, final_spill: u64) -> DatasetWriter {
    let mut cfg = WriterConfig::new(root, 30, features());
    cfg.durable = false;
    cfg.encoder = reel_engine::plan::deferred_live_encoder(&cfg.encoder);
    cfg.deferred = Some(reel_media::EncoderSettings::lerobot_default());
    cfg.queue = QueueLimits {
        max_frames_in_memory: 4,
        max_final_spill_bytes: final_spill,
        ..QueueLimits::default()
    };
    DatasetWriter::create(cfg).unwrap()
}

/// Every frame of the camera's final video, decoded: codec, count, and each frame's level in
/// order (frame k of an episode of n is frame k of `row`).
fn assert_final_video(root: &std::path::Path, lengths: &[u32]) {
    let video = root.join("videos/observation.images.cam/chunk-000/file-000.mp4");
    let info = reel_media::probe::probe_video(&video).unwrap();
    let total: u32 = lengths.iter().sum();
    assert_eq!((info.codec.as_str(), info.frames), ("av1", total as u64));
    let want: Vec<usize> = (0..total as usize).collect();
    let dec = reel_media::decode::decode_video(&video, &want).unwrap();
    let mut i = 0usize;
    for &n in lengths {
        for k in 0..n {
            let f = &dec.rgb.iter().find(|(j, _)| *j == i).unwrap().1;
            let expect = (20 + 10 * (k % 20)) as f64 + 7.5;
            assert!(
                (mean(f) - expect).abs() < 4.0,
                "frame {i}: mean {} expected {expect}",
                mean(f)
            );
            i += 1;
        }
    }
}

#[test]
fn final_lanes_encode_from_the_raw_frames_and_skip_discarded_episodes() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    let mut w = deferred_writer(&root, 1 << 30);
    for k in 0..20 {
        w.add_frame(row(k, "t")).unwrap();
    }
    w.save_episode(Vec::new()).unwrap();
    for k in 0..7 {
        w.add_frame(row(100 + k, "t")).unwrap();
    }
    w.discard_episode().unwrap();
    for k in 0..30 {
        w.add_frame(row(k, "t")).unwrap();
    }
    w.save_episode(Vec::new()).unwrap();
    let fin = w.finalize_report().unwrap();
    assert_eq!(fin.saved.len(), 2);
    assert_eq!(fin.converted_files, 1);
    assert!(!fin.conversion_stopped && fin.live_codec_cameras.is_empty());
    assert_eq!(
        fin.final_routes,
        vec![("observation.images.cam".to_string(), 2, 0)],
        "both episodes came from the final lane"
    );
    assert_final_video(&root, &[20, 30]);
    assert!(!root.join(".reel").exists());
    lerobot_loads(&root);
}

#[test]
fn a_final_lane_over_its_spill_budget_hands_the_episode_to_the_transcoder() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    // Room for 4 frames in memory and 2 on disk: a 20-frame burst overflows the lane, which
    // gives the episode up; it is converted from the committed live file instead.
    let mut w = deferred_writer(&root, 2 * u64::from(W * H * 3));
    for k in 0..20 {
        w.add_frame(row(k, "t")).unwrap();
    }
    w.save_episode(Vec::new()).unwrap();
    let fin = w.finalize_report().unwrap();
    assert_eq!(fin.converted_files, 1);
    let routes = &fin.final_routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].1 + routes[0].2, 1, "{routes:?}");
    assert_eq!(routes[0].2, 1, "transcoded: {routes:?}");
    assert_final_video(&root, &[20]);
    lerobot_loads(&root);
}

#[test]
fn the_commit_gate_holds_commits_back_and_releases_them_in_order() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    let mut cfg = WriterConfig::new(&root, 30, features());
    cfg.durable = false;
    cfg.encoder = reel_media::EncoderSettings::lerobot_default().with_codec("libx264");
    let mut w = DatasetWriter::create(cfg).unwrap();
    for k in 0..6 {
        w.add_frame(row(k, "first")).unwrap();
    }
    w.save_episode(Vec::new()).unwrap();
    w.wait_saved().unwrap();
    let info_before = std::fs::read(root.join("meta/info.json")).unwrap();
    let gate = w.commit_gate();
    // While the gate is held the loop goes on: frames and saves are accepted...
    for k in 0..6 {
        w.add_frame(row(k, "second")).unwrap();
    }
    w.save_episode(Vec::new()).unwrap();
    // ...but nothing commits, however long the encoders have had.
    let during = w
        .wait_saved_timeout(Some(std::time::Duration::from_millis(1500)))
        .unwrap();
    assert!(during.is_empty(), "committed while the gate was held");
    assert_eq!(w.backlog().pending_saves, 1);
    assert_eq!(w.totals(), (1, 6));
    assert_eq!(
        std::fs::read(root.join("meta/info.json")).unwrap(),
        info_before
    );
    // The gate can be released from another thread.
    std::thread::spawn(move || drop(gate)).join().unwrap();
    let after = w.wait_saved().unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].episode_index, 1);
    assert_eq!(w.totals(), (2, 12));
    w.finalize().unwrap();
}

#[test]
fn a_dataset_schema_is_read_back_for_resume() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ds");
    let mut cfg = WriterConfig::new(&root, 15, features());
    cfg.durable = false;
    cfg.robot_type = Some("so101_follower".into());
    cfg.encoder = reel_media::EncoderSettings::lerobot_default().with_codec("libx264");
    let mut w = DatasetWriter::create(cfg).unwrap();
    for k in 0..4 {
        w.add_frame(row(k, "t")).unwrap();
    }
    w.save_episode_and_wait(Vec::new()).unwrap();
    w.finalize().unwrap();
    let s = reel_engine::writer::read_schema(&root).unwrap();
    assert_eq!(s.fps, 15);
    assert_eq!(s.features, features());
    assert_eq!(s.robot_type.as_deref(), Some("so101_follower"));
    assert_eq!(s.codec.as_deref(), Some("h264"));
    assert_eq!(s.vcodec_for_resume(None), "h264");
    assert_eq!(s.vcodec_for_resume(Some("auto")), "h264");
    assert_eq!(s.vcodec_for_resume(Some("libx265")), "libx265");
    let e = reel_engine::writer::read_schema(&d.path().join("nothing")).unwrap_err();
    assert!(e.to_string().contains("no meta/info.json"), "{e}");
}
