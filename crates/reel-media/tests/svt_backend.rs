//! The built-in SVT-AV1 behind `EpisodeEncoder` (`--vcodec libsvtav1`): what it encodes
//! decodes back frame for frame (count, size, pixel format, content, keyframes), its MP4 has
//! the box and timestamp layout of a file made through FFmpeg 5.1's own libsvtav1 wrapper for
//! the same frames, and bad input is refused with a clear error, without a panic or a hang.

use reel_core::VideoFrame;
use reel_dataset::mp4::read_index;
use reel_media::decode::decode_video;
use reel_media::probe::probe_video;
use reel_media::{EncoderSettings, EpisodeEncoder};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const W: u32 = 192;
const H: u32 = 144;

/// Frame `k` of a moving synthetic pattern: diagonal colour ramps that scroll, and a bright
/// square that moves across.
fn frame(w: u32, h: u32, k: u64) -> VideoFrame {
    let mut data = vec![0u8; (w * h * 3) as usize];
    for y in 0..h {
        for x in 0..w {
            let i = ((y * w + x) * 3) as usize;
            let t = k as u32 * 3;
            data[i] = ((x + t) % 200 + 30) as u8;
            data[i + 1] = ((y * 2 + t) % 180 + 40) as u8;
            data[i + 2] = (((x + y) / 2) % 160 + 60) as u8;
        }
    }
    let (sx, sy) = ((k as u32 * 4) % (w - 16), (k as u32 * 2) % (h - 16));
    for y in sy..sy + 16 {
        for x in sx..sx + 16 {
            let i = ((y * w + x) * 3) as usize;
            data[i..i + 3].copy_from_slice(&[250, 250, 250]);
        }
    }
    let mut f = VideoFrame::new(w, h, data).unwrap();
    f.seq = k;
    f
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

fn encode(path: &Path, n: u64, s: &EncoderSettings) -> reel_media::EncodedSegment {
    let mut e = EpisodeEncoder::create(path, W, H, 30, s).unwrap();
    for k in 0..n {
        e.push(&frame(W, H, k)).unwrap();
    }
    let seg = e.finish().unwrap();
    assert_eq!(seg.frames, n);
    seg
}

#[test]
fn builtin_svt_round_trip() {
    assert!(EncoderSettings::lerobot_default().is_builtin_svt());
    let name = reel_media::encoder_display_name("libsvtav1");
    assert!(
        name.contains("built in") && name.contains("SVT-AV1 v"),
        "{name}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.mp4");
    let n = 60u64;
    let seg = encode(&path, n, &EncoderSettings::lerobot_default());
    assert_eq!(seg.bytes, std::fs::metadata(&path).unwrap().len());
    assert!(!reel_media::partial_path(&path).exists());

    let info = probe_video(&path).unwrap();
    assert_eq!(info.codec, "av1");
    assert_eq!(info.pix_fmt, "yuv420p");
    assert_eq!((info.width, info.height), (W, H));
    assert_eq!(info.frames, n);
    let idx = read_index(&path).unwrap();
    assert_eq!(&idx.sample_entry, b"av01");
    assert_eq!(idx.frames, n);
    // LeRobot's g=2: a keyframe every 2 frames.
    assert_eq!(idx.sync_samples, n / 2);

    let want: Vec<usize> = vec![0, 1, 17, 30, 59];
    let dec = decode_video(&path, &want).unwrap();
    assert_eq!(dec.pts.len(), n as usize, "every frame decodes");
    assert!(dec.damaged.is_empty());
    assert_eq!((dec.width, dec.height), (W, H));
    let sorted = {
        let mut p = dec.pts.clone();
        p.sort();
        p
    };
    assert_eq!(dec.pts, sorted, "presentation order");
    for (i, key) in dec.key.iter().enumerate() {
        assert_eq!(*key, i % 2 == 0, "frame {i}: key {key}");
    }
    for (i, f) in &dec.rgb {
        let p = psnr(&f.data, &frame(W, H, *i as u64).data);
        // crf 30 at preset 12 on sharp synthetic ramps: ~30 dB; another frame: far lower.
        assert!(p > 27.0, "frame {i}: PSNR {p:.1} dB");
        let other = psnr(&f.data, &frame(W, H, *i as u64 + 7).data);
        assert!(other < p - 5.0, "frame {i} vs {}: {other:.1} dB", i + 7);
    }
}

#[test]
fn keyframe_interval_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g5.mp4");
    let s = EncoderSettings::lerobot_default()
        .with_overrides(None, Some("10"), Some(5))
        .unwrap();
    encode(&path, 23, &s);
    let dec = decode_video(&path, &[]).unwrap();
    assert_eq!(dec.pts.len(), 23);
    let keys: Vec<usize> = (0..23).filter(|&i| dec.key[i]).collect();
    assert_eq!(keys, vec![0, 5, 10, 15, 20]);
    assert_eq!(read_index(&path).unwrap().sync_samples, 5);
}

#[test]
fn one_frame_and_threads_option() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.mp4");
    let mut s = EncoderSettings::lerobot_default();
    s.threads = Some(1);
    encode(&path, 1, &s);
    let dec = decode_video(&path, &[0]).unwrap();
    assert_eq!(dec.pts.len(), 1);
    assert!(psnr(&dec.rgb[0].1.data, &frame(W, H, 0).data) > 27.0);
}

#[test]
fn bad_input_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.mp4");
    let s = EncoderSettings::lerobot_default();
    let e = EpisodeEncoder::create(&p, 193, 144, 30, &s)
        .unwrap_err()
        .to_string();
    assert!(e.contains("even"), "{e}");
    let e = EpisodeEncoder::create(&p, 48, 48, 30, &s)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 64x64"), "{e}");
    let mut bad = s.clone();
    bad.extra = vec![("nonsense".into(), "1".into())];
    let e = EpisodeEncoder::create(&p, W, H, 30, &bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does not know the option(s) nonsense=1") && e.contains("built in"),
        "{e}"
    );
    let mut bad = s.clone();
    bad.pix_fmt = "yuv444p".into();
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("yuv444p") && e.contains("yuv420p"), "{e}");
    let mut bad = s.clone();
    bad.preset = Some("14".into());
    assert!(EpisodeEncoder::create(&p, W, H, 30, &bad).is_err());
    let mut bad = s.clone();
    bad.crf = Some(64.0);
    assert!(EpisodeEncoder::create(&p, W, H, 30, &bad).is_err());

    // A frame of the wrong size: an error, and the encoder still finishes what it has.
    let mut e = EpisodeEncoder::create(&p, W, H, 30, &s).unwrap();
    e.push(&frame(W, H, 0)).unwrap();
    let err = e.push(&frame(W + 2, H, 1)).unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
    let seg = e.finish().unwrap();
    assert_eq!(seg.frames, 1);
    // No frames at all: refused, no hang.
    let e = EpisodeEncoder::create(&p, W, H, 30, &s).unwrap();
    assert!(e.finish().is_err());
}

#[test]
fn drop_without_finish_does_not_hang() {
    let t = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let s = EncoderSettings::lerobot_default();
    let p = dir.path().join("d.mp4");
    drop(EpisodeEncoder::create(&p, W, H, 30, &s).unwrap());
    let mut e = EpisodeEncoder::create(&p, W, H, 30, &s).unwrap();
    for k in 0..12 {
        e.push(&frame(W, H, k)).unwrap();
    }
    drop(e);
    assert!(!p.exists(), "no file at the target without finish");
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[test]
fn cameras_encode_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let hs: Vec<_> = (0..3)
        .map(|c| {
            let p = dir.path().join(format!("cam{c}.mp4"));
            std::thread::spawn(move || {
                encode(&p, 20, &EncoderSettings::lerobot_default());
                decode_video(&p, &[]).unwrap().pts.len()
            })
        })
        .collect();
    for h in hs {
        assert_eq!(h.join().unwrap(), 20);
    }
}

// ---------------------------------------------------------------------------------------
// Same MP4 layout as FFmpeg 5.1's libsvtav1
// ---------------------------------------------------------------------------------------

/// Boxes (path, type) in file order, with the payload of the timing boxes and of av1C's
/// fixed 4 bytes.
fn layout(path: &Path) -> (Vec<String>, Vec<(String, Vec<u8>)>) {
    let data = std::fs::read(path).unwrap();
    let mut names = Vec::new();
    let mut payloads = Vec::new();
    walk(&data, 0, data.len(), "", &mut names, &mut payloads);
    (names, payloads)
}

fn walk(
    d: &[u8],
    mut pos: usize,
    end: usize,
    parent: &str,
    names: &mut Vec<String>,
    payloads: &mut Vec<(String, Vec<u8>)>,
) {
    while pos + 8 <= end {
        let size = u32::from_be_bytes(d[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&d[pos + 4..pos + 8]).into_owned();
        let (hdr, size) = if size == 1 {
            (
                16,
                u64::from_be_bytes(d[pos + 8..pos + 16].try_into().unwrap()) as usize,
            )
        } else if size == 0 {
            (8, end - pos)
        } else {
            (8, size)
        };
        let here = format!("{parent}/{kind}");
        names.push(here.clone());
        let body = &d[pos + hdr..pos + size];
        match kind.as_str() {
            "moov" | "trak" | "mdia" | "minf" | "stbl" | "edts" | "dinf" | "mvex" => {
                walk(d, pos + hdr, pos + size, &here, names, payloads)
            }
            "stsd" => walk(d, pos + hdr + 8, pos + size, &here, names, payloads),
            "av01" => walk(d, pos + hdr + 78, pos + size, &here, names, payloads),
            "stts" | "ctts" | "elst" | "stss" | "sdtp" | "colr" | "pasp" => {
                payloads.push((here, body.to_vec()))
            }
            "av1C" => payloads.push((here, body[..4].to_vec())),
            "mdhd" | "tkhd" | "mvhd" => {
                // Version/flags and the timescale/duration fields; times of creation zeroed.
                payloads.push((here, body.to_vec()))
            }
            _ => {}
        }
        pos += size;
    }
}

/// Writes the reference file through FFmpeg's libsvtav1 (run in a child process with
/// `REEL_SVTAV1=ffmpeg`, so that the switch does not reach the other tests).
#[test]
#[ignore = "helper of same_layout_as_ffmpeg_libsvtav1"]
fn ffmpeg_libsvtav1_reference() {
    let Some(out) = std::env::var_os("REEL_TEST_REFERENCE_OUT") else {
        return;
    };
    assert!(reel_media::ffmpeg_svt_requested());
    let s = EncoderSettings::lerobot_default();
    assert!(!s.is_builtin_svt());
    encode(Path::new(&out), 24, &s);
}

#[test]
fn same_layout_as_ffmpeg_libsvtav1() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("ffmpeg.mp4");
    let ours = dir.path().join("builtin.mp4");
    let st = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "svt_backend::ffmpeg_libsvtav1_reference",
            "--test-threads=1",
        ])
        .env("REEL_SVTAV1", "ffmpeg")
        .env("REEL_TEST_REFERENCE_OUT", &theirs)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(theirs.exists(), "the reference was written");
    encode(&ours, 24, &EncoderSettings::lerobot_default());

    let (n_theirs, p_theirs) = layout(&theirs);
    let (n_ours, p_ours) = layout(&ours);
    assert_eq!(n_ours, n_theirs, "the same boxes in the same order");
    for ((a, pa), (b, pb)) in p_ours.iter().zip(&p_theirs) {
        assert_eq!(a, b);
        if a.ends_with("/av1C") {
            // marker+version, profile+level, tier/bit depth/chroma flags: the same.
            assert_eq!(pa, pb, "{a}: {pa:02x?} vs {pb:02x?}");
        } else if a.ends_with("/mvhd") || a.ends_with("/tkhd") || a.ends_with("/mdhd") {
            assert_eq!(pa.len(), pb.len(), "{a}");
        } else {
            assert_eq!(pa, pb, "{a}");
        }
    }
    assert_eq!(p_ours.len(), p_theirs.len());
    // And both decode to the same timestamps and keyframes.
    let (da, db) = (
        decode_video(&ours, &[]).unwrap(),
        decode_video(&theirs, &[]).unwrap(),
    );
    assert_eq!(da.pts, db.pts);
    assert_eq!(da.key, db.key);
    assert_eq!(da.time_base, db.time_base);
}
