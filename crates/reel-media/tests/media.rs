//! End-to-end checks of reel-media against real FFmpeg encodes: what is encoded decodes
//! frame for frame with LeRobot's timestamps, appends stay O(segment), a crash mid-append
//! rolls back byte for byte, and bad input is refused without touching the target.

use reel_core::journal::{recover, Journal};
use reel_core::VideoFrame;
use reel_dataset::mp4::{append_segment, read_index, truncate_frames};
use reel_media::decode::decode_video;
use reel_media::probe::probe_video;
use reel_media::{EncodedSegment, EncoderSettings, EpisodeEncoder};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Frame `k` of a segment whose base colour is `rgb`: the colour with a small moving ramp.
fn frame(w: u32, h: u32, rgb: [u8; 3], k: u64) -> VideoFrame {
    let mut f = VideoFrame::solid(w, h, rgb);
    if k > 0 {
        // A small bright square that moves, so that P-frames have something to code.
        for y in 0..8u32.min(h) {
            for x in 0..8u32.min(w) {
                let xx = (x + k as u32 * 2) % w;
                let i = ((y * w + xx) * 3) as usize;
                f.data[i..i + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
    }
    f.seq = k;
    f
}

fn encode(
    path: &Path,
    w: u32,
    h: u32,
    n: u64,
    s: &EncoderSettings,
    rgb: [u8; 3],
) -> EncodedSegment {
    let mut e = EpisodeEncoder::create(path, w, h, 30, s).unwrap();
    for k in 0..n {
        e.push(&frame(w, h, rgb, k)).unwrap();
    }
    assert_eq!(e.frames_pushed(), n);
    let seg = e.finish().unwrap();
    assert_eq!(seg.frames, n);
    assert_eq!(seg.bytes, std::fs::metadata(path).unwrap().len());
    seg
}

fn journal(root: &Path) -> Journal {
    Journal::begin(&root.join(".reel/journal"), root, false).unwrap()
}

fn append(root: &Path, target: &Path, seg: &Path) -> reel_dataset::mp4::Appended {
    let mut j = journal(root);
    let a = append_segment(target, seg, &mut j).unwrap();
    j.commit().unwrap();
    a
}

fn ffprobe_packets(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn assert_pts(path: &Path, n: usize) {
    let d = decode_video(path, &[]).unwrap();
    assert_eq!(d.time_base, (1, 15360));
    let want: Vec<i64> = (0..n as i64).map(|k| k * 512).collect();
    assert_eq!(d.pts, want);
}

fn check_encode(dir: &Path, name: &str, w: u32, h: u32, s: &EncoderSettings, family: &str) {
    let p = dir.join(name);
    encode(&p, w, h, 20, s, [40, 160, 90]);
    let d = decode_video(&p, &[0, 19]).unwrap();
    assert_eq!(d.pts.len(), 20);
    assert_eq!(d.pts, (0..20).map(|k| k * 512).collect::<Vec<i64>>());
    assert_eq!(d.time_base, (1, 15360));
    assert_eq!((d.width, d.height), (w, h));
    assert_eq!(
        d.key,
        (0..20).map(|k| k % 2 == 0).collect::<Vec<bool>>(),
        "keyframe every g=2 frames"
    );
    let (_, f0) = &d.rgb[0];
    assert_eq!((f0.width, f0.height), (w, h));
    let idx = read_index(&p).unwrap();
    assert_eq!(idx.frames, 20);
    assert_eq!(idx.timescale, 15360);
    assert_eq!(idx.duration_ticks, 20 * 512);
    assert_eq!(
        idx.sync_samples,
        20 / 2,
        "sync samples = frames / g (closed GOP)"
    );
    let pi = probe_video(&p).unwrap();
    assert_eq!(pi.codec, family);
    assert_eq!(pi.pix_fmt, "yuv420p");
    assert_eq!(pi.fps, 30);
    assert_eq!(pi.channels, 3);
    assert_eq!(pi.frames, 20);
    assert!(!pi.has_audio);
    assert_eq!((pi.width, pi.height), (w, h));
    assert_eq!(pi.time_base, (1, 15360));
    assert_eq!(s.codec_family().unwrap(), family);
}

#[test]
fn encode_av1_and_h264_decodes_with_lerobot_timestamps() {
    let d = tempfile::tempdir().unwrap();
    let av1 = EncoderSettings::lerobot_default();
    let x264 = EncoderSettings::lerobot_default().with_codec("h264");
    check_encode(d.path(), "a.mp4", 64, 96, &av1, "av1");
    check_encode(d.path(), "b.mp4", 64, 96, &x264, "h264");
    check_encode(d.path(), "c.mp4", 640, 480, &av1, "av1");
    check_encode(d.path(), "d.mp4", 640, 480, &x264, "h264");
    let idx = read_index(&d.path().join("a.mp4")).unwrap();
    assert_eq!(&idx.sample_entry, b"av01");
    assert_eq!(
        &read_index(&d.path().join("b.mp4")).unwrap().sample_entry,
        b"avc1"
    );
}

#[test]
fn wrong_frame_size_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut e = EpisodeEncoder::create(
        &d.path().join("x.mp4"),
        64,
        96,
        30,
        &EncoderSettings::lerobot_default(),
    )
    .unwrap();
    let err = e
        .push(&VideoFrame::solid(96, 64, [0, 0, 0]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("96x64"), "{err}");
    assert_eq!(e.frames_pushed(), 0);
    // Finishing an encoder that got no frame is an error, not a hang (SVT-AV1 quirk).
    assert!(e.finish().unwrap_err().to_string().contains("no frames"));
    // Abandoning an encoder half-way (a discarded episode) returns promptly too.
    for s in [
        EncoderSettings::lerobot_default(),
        EncoderSettings::lerobot_default().with_codec("h264"),
    ] {
        let mut e = EpisodeEncoder::create(&d.path().join("y.mp4"), 64, 96, 30, &s).unwrap();
        for k in 0..3 {
            e.push(&frame(64, 96, [9, 9, 9], k)).unwrap();
        }
        drop(e);
    }
}

const SEG2_COLOUR: [u8; 3] = [30, 40, 210];

/// Appends 20 + 15 + 7 frames into `target`.
fn three_appends(root: &Path, s: &EncoderSettings) -> PathBuf {
    let target = root.join("videos/cam/file-000.mp4");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let segs = [
        (20u64, [200u8, 40, 40]),
        (15, SEG2_COLOUR),
        (7, [40, 200, 40]),
    ];
    let mut starts = Vec::new();
    let mut total = 0;
    for (i, (n, c)) in segs.iter().enumerate() {
        let sp = root.join(format!("seg{i}.mp4"));
        encode(&sp, 64, 96, *n, s, *c);
        let a = append(root, &target, &sp);
        total += n;
        assert_eq!(a.frames_total, total);
        assert_eq!(a.timescale, 15360);
        assert_eq!(a.duration_ticks, n * 512);
        assert!((a.duration_s() - *n as f64 / 30.0).abs() < 1e-12);
        assert_eq!(a.file_bytes, std::fs::metadata(&target).unwrap().len());
        starts.push(a.start_ticks);
    }
    assert_eq!(starts, vec![0, 10240, 17920]);
    target
}

#[test]
fn append_three_segments() {
    let d = tempfile::tempdir().unwrap();
    let target = three_appends(d.path(), &EncoderSettings::lerobot_default());
    let idx = read_index(&target).unwrap();
    assert_eq!(idx.frames, 42);
    assert_eq!(idx.duration_ticks, 42 * 512);
    assert_eq!(idx.sync_samples, 10 + 8 + 4);
    assert_eq!(
        idx.moov_offset + (idx.file_len - idx.moov_offset),
        idx.file_len
    );
    let dec = decode_video(&target, &[19, 20]).unwrap();
    assert_eq!(dec.pts, (0..42).map(|k| k * 512).collect::<Vec<i64>>());
    assert!(dec.pts.windows(2).all(|w| w[1] - w[0] == 512));
    assert_eq!(ffprobe_packets(&target), 42);
    let pi = probe_video(&target).unwrap();
    assert_eq!((pi.frames, pi.codec.as_str(), pi.fps), (42, "av1", 30));
    // Pixel check: frame 20 is segment 2's first frame, a solid colour.
    let (i, f) = &dec.rgb[1];
    assert_eq!(*i, 20);
    let n = (f.width * f.height) as usize;
    for (c, want) in SEG2_COLOUR.iter().enumerate() {
        let mean = f
            .data
            .iter()
            .skip(c)
            .step_by(3)
            .map(|&v| v as f64)
            .sum::<f64>()
            / n as f64;
        assert!(
            (mean - *want as f64).abs() < 12.0,
            "channel {c}: {mean} vs {want}"
        );
    }
    // ... and frame 19 is not.
    let blue19 = dec.rgb[0]
        .1
        .data
        .iter()
        .skip(2)
        .step_by(3)
        .map(|&v| v as f64)
        .sum::<f64>()
        / n as f64;
    assert!(blue19 < 120.0);

    // truncate_frames: 42 -> 30.
    let before = std::fs::metadata(&target).unwrap().len();
    let mut j = journal(d.path());
    truncate_frames(&target, 30, &mut j).unwrap();
    j.commit().unwrap();
    let idx = read_index(&target).unwrap();
    assert_eq!((idx.frames, idx.duration_ticks), (30, 30 * 512));
    assert!(idx.file_len < before);
    assert_pts(&target, 30);
    assert_eq!(ffprobe_packets(&target), 30);
    // Keeping 0 or more than held is refused.
    let mut j = journal(d.path());
    assert!(truncate_frames(&target, 0, &mut j).is_err());
    assert!(truncate_frames(&target, 31, &mut j).is_err());
    j.commit().unwrap();
}

#[test]
fn append_h264_segments() {
    let d = tempfile::tempdir().unwrap();
    let target = three_appends(
        d.path(),
        &EncoderSettings::lerobot_default().with_codec("libx264"),
    );
    assert_eq!(read_index(&target).unwrap().frames, 42);
    assert_pts(&target, 42);
    assert_eq!(ffprobe_packets(&target), 42);
    assert_eq!(probe_video(&target).unwrap().codec, "h264");
}

#[test]
fn append_cost_does_not_grow_with_the_file() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let s = EncoderSettings::lerobot_default();
    let seg = root.join("seg.mp4");
    encode(&seg, 64, 96, 10, &s, [90, 90, 200]);
    let small = root.join("small.mp4");
    let big = root.join("big.mp4");
    append(root, &small, &seg);
    for _ in 0..50 {
        append(root, &big, &seg);
    }
    assert_eq!(read_index(&big).unwrap().frames, 500);
    let written = |target: &Path| {
        let old = read_index(target).unwrap();
        append(root, target, &seg);
        let new = read_index(target).unwrap();
        (
            new.file_len - old.moov_offset,
            new.file_len - new.moov_offset,
        )
    };
    let (w_small, moov_small) = written(&small);
    let (w_big, moov_big) = written(&big);
    // Everything written besides the moov is the same: mdat header + the segment's samples.
    assert_eq!(w_small - moov_small, w_big - moov_big);
    let seg_len = std::fs::metadata(&seg).unwrap().len();
    assert!(
        w_small - moov_small < seg_len,
        "only the segment's sample bytes are copied"
    );
    // The moov grows by a few bytes per sample (stsz + stss + stco), not by data.
    assert!(
        moov_big - moov_small < 490 * 16,
        "moov growth {}",
        moov_big - moov_small
    );
    assert_pts(&big, 510);
    assert_eq!(ffprobe_packets(&big), 510);
}

#[test]
fn crash_mid_append_rolls_back_byte_for_byte() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let s = EncoderSettings::lerobot_default();
    let (a, b) = (root.join("a.mp4"), root.join("b.mp4"));
    encode(&a, 64, 96, 20, &s, [10, 200, 10]);
    encode(&b, 64, 96, 15, &s, [200, 10, 10]);
    let target = root.join("t.mp4");
    append(root, &target, &a);
    let before = std::fs::read(&target).unwrap();
    let jp = root.join(".reel/journal");
    let mut j = journal(root);
    append_segment(&target, &b, &mut j).unwrap();
    assert_eq!(read_index(&target).unwrap().frames, 35);
    drop(j); // crash before commit
    assert_eq!(recover(&jp, root).unwrap(), 1);
    assert_eq!(std::fs::read(&target).unwrap(), before);
    assert_pts(&target, 20);

    // A crash after creating a new target removes it.
    let fresh = root.join("fresh.mp4");
    let mut j = journal(root);
    append_segment(&fresh, &a, &mut j).unwrap();
    assert!(fresh.exists());
    drop(j);
    recover(&jp, root).unwrap();
    assert!(!fresh.exists());

    // A crash after truncate_frames restores the file too.
    let mut j = journal(root);
    truncate_frames(&target, 5, &mut j).unwrap();
    assert_eq!(read_index(&target).unwrap().frames, 5);
    drop(j);
    recover(&jp, root).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), before);
}

#[test]
fn bad_input_is_refused_and_target_untouched() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let bad = EncoderSettings::lerobot_default().with_codec("libnope");
    let err = EpisodeEncoder::create(&root.join("x.mp4"), 64, 96, 30, &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("libnope"), "{err}");
    let mut typo = EncoderSettings::lerobot_default();
    typo.extra = vec![("crff".into(), "10".into())];
    let err = EpisodeEncoder::create(&root.join("y.mp4"), 64, 96, 30, &typo)
        .unwrap_err()
        .to_string();
    assert!(err.contains("crff"), "{err}");

    let s = EncoderSettings::lerobot_default();
    let target = root.join("t.mp4");
    let seg = root.join("a.mp4");
    encode(&seg, 64, 96, 6, &s, [1, 2, 3]);
    append(root, &target, &seg);
    let before = std::fs::read(&target).unwrap();

    let other_size = root.join("b.mp4");
    encode(&other_size, 96, 64, 4, &s, [1, 2, 3]);
    let other_codec = root.join("c.mp4");
    encode(
        &other_codec,
        64,
        96,
        4,
        &s.clone().with_codec("h264"),
        [1, 2, 3],
    );
    let bframes = root.join("d.mp4");
    let st = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x96:rate=30",
            "-frames:v",
            "12",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&bframes)
        .status()
        .unwrap();
    assert!(st.success());
    let garbage = root.join("e.mp4");
    std::fs::write(&garbage, b"this is not an mp4 file at all").unwrap();
    for (seg, needle) in [
        (&other_size, "96x64"),
        (&other_codec, "avc1"),
        // A foreign x264 file (B-frames, its own edit list): refused on its codec first.
        (&bframes, "avc1"),
        (&garbage, "e.mp4"),
    ] {
        let mut j = journal(root);
        let err = append_segment(&target, seg, &mut j)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
        j.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), before);
    }
    // An unfinished target (no moov) is refused too.
    let broken = root.join("broken.mp4");
    std::fs::write(&broken, &before[..before.len() / 2]).unwrap();
    let mut j = journal(root);
    assert!(append_segment(&broken, &seg, &mut j).is_err());
    j.commit().unwrap();
    assert!(read_index(&garbage).is_err());
}
