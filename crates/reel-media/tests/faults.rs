//! Fault injection and crash tolerance of `EpisodeEncoder`: every injected fault behaves as
//! announced, `confirmed_frames` is readable while the encoder is stuck and matches what
//! `salvage` recovers from the fragmented partial file, and a salvaged segment plus a fresh
//! encoder's segment append into one stream that decodes without error.

use reel_core::journal::Journal;
use reel_core::VideoFrame;
use reel_dataset::mp4::{append_segment, read_index};
use reel_media::decode::decode_video;
use reel_media::{partial_path, salvage, EncoderSettings, EpisodeEncoder, Fault};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn frame(w: u32, h: u32, k: u64) -> VideoFrame {
    let mut f = VideoFrame::solid(w, h, [(k * 7 % 256) as u8, 90, 40]);
    for y in 0..8u32.min(h) {
        for x in 0..8u32.min(w) {
            let xx = (x + k as u32 * 3) % w;
            let i = ((y * w + xx) * 3) as usize;
            f.data[i..i + 3].copy_from_slice(&[255, 255, 255]);
        }
    }
    f.seq = k;
    f
}

fn with_fault(s: &EncoderSettings, f: Fault) -> EncoderSettings {
    let mut s = s.clone();
    s.fault = Some(f);
    s
}

fn ffmpeg_decodes_cleanly(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn salvage_then_resume(s: &EncoderSettings, k: u64, n: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (w, h) = (96, 64);
    let first = root.join("first.mp4");
    let mut e =
        EpisodeEncoder::create(&first, w, h, 30, &with_fault(s, Fault::ErrorAfter(k))).unwrap();
    let confirmed = e.confirmed_frames();
    for i in 0..k {
        e.push(&frame(w, h, i)).unwrap();
        // Frames arrive over time as from a camera (SVT-AV1 hands packets out asynchronously).
        std::thread::sleep(Duration::from_millis(4));
    }
    let err = e.push(&frame(w, h, k)).unwrap_err().to_string();
    assert!(err.contains("error-after"), "{err}");
    assert!(e.push(&frame(w, h, k)).is_err(), "later pushes fail too");
    // Salvage while the failed encoder is still alive (as with a hung one).
    let salvaged = root.join("salvaged.mp4");
    let m = salvage(e.partial_path(), &salvaged).unwrap();
    assert_eq!(m, confirmed.load(Ordering::Acquire));
    assert!(m > 0 && m <= k, "salvaged {m} of {k}");
    assert_eq!(m % 2, 0, "fragments end before a keyframe (g=2)");
    drop(e);
    assert!(
        !first.exists(),
        "a failed encoder never writes the final file"
    );
    assert!(partial_path(&first).exists());
    assert_eq!(decode_video(&salvaged, &[]).unwrap().pts.len() as u64, m);

    let rest = root.join("rest.mp4");
    let mut e2 = EpisodeEncoder::create(&rest, w, h, 30, s).unwrap();
    for i in m..n {
        e2.push(&frame(w, h, i)).unwrap();
    }
    let seg = e2.finish().unwrap();
    assert_eq!(seg.frames, n - m);
    assert!(
        !partial_path(&rest).exists(),
        "finish removes the partial file"
    );

    let target = root.join("target.mp4");
    let mut j = Journal::begin(&root.join(".reel/journal"), root, false).unwrap();
    append_segment(&target, &salvaged, &mut j).unwrap();
    let a = append_segment(&target, &rest, &mut j).unwrap();
    j.commit().unwrap();
    assert_eq!(a.frames_total, n);
    assert_eq!(read_index(&target).unwrap().frames, n);
    let d = decode_video(&target, &[]).unwrap();
    assert_eq!(d.time_base, (1, 15360));
    assert_eq!(d.pts, (0..n as i64).map(|i| i * 512).collect::<Vec<_>>());
    ffmpeg_decodes_cleanly(&target);
}

#[test]
fn salvaged_av1_plus_fresh_segment_is_one_stream() {
    salvage_then_resume(&EncoderSettings::default(), 30, 45);
}

#[test]
fn salvaged_h264_plus_fresh_segment_is_one_stream() {
    salvage_then_resume(&EncoderSettings::default().with_codec("libx264"), 9, 20);
}

/// Runs `f` in a thread; true when it has not returned after `wait`.
fn hangs<F: FnOnce() + Send + 'static>(f: F, wait: Duration) -> bool {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(wait).is_err()
}

#[test]
fn hang_after_n_keeps_confirmed_frames_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hang.mp4");
    let s = with_fault(
        &EncoderSettings::default().with_codec("libx264"),
        Fault::HangAfter(10),
    );
    let mut e = EpisodeEncoder::create(&path, 96, 64, 30, &s).unwrap();
    let confirmed = e.confirmed_frames();
    let partial = e.partial_path().to_path_buf();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for i in 0..20 {
            let _ = tx.send(i);
            if e.push(&frame(96, 64, i)).is_err() {
                return;
            }
        }
    });
    // The thread announces frame 10 and then never comes back.
    let mut last = 0;
    while let Ok(i) = rx.recv_timeout(Duration::from_millis(500)) {
        last = i;
    }
    assert_eq!(last, 10);
    let c = confirmed.load(Ordering::Acquire);
    assert!(c > 0 && c <= 10, "confirmed {c}");
    let out = tmp.path().join("salvaged.mp4");
    assert_eq!(salvage(&partial, &out).unwrap(), c);
    ffmpeg_decodes_cleanly(&out);
}

#[test]
fn hang_on_open_and_no_flush_block_without_blocking_others() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("open.mp4");
    let s = with_fault(&EncoderSettings::default(), Fault::HangOnOpen);
    assert!(hangs(
        move || {
            let _ = EpisodeEncoder::create(&p, 96, 64, 30, &s);
        },
        Duration::from_millis(300)
    ));
    // A hung open holds no lock: another encoder opens and finishes meanwhile.
    let ok = tmp.path().join("ok.mp4");
    let mut e = EpisodeEncoder::create(&ok, 96, 64, 30, &EncoderSettings::default()).unwrap();
    e.push(&frame(96, 64, 0)).unwrap();
    assert_eq!(e.finish().unwrap().frames, 1);

    let p = tmp.path().join("noflush.mp4");
    let s = with_fault(
        &EncoderSettings::default().with_codec("libx264"),
        Fault::NoFlush,
    );
    let mut e = EpisodeEncoder::create(&p, 96, 64, 30, &s).unwrap();
    for i in 0..60 {
        e.push(&frame(96, 64, i)).unwrap();
    }
    let confirmed = e.confirmed_frames();
    let partial = e.partial_path().to_path_buf();
    assert!(hangs(
        move || {
            let _ = e.finish();
        },
        Duration::from_millis(300)
    ));
    let out = tmp.path().join("noflush-salvaged.mp4");
    let n = salvage(&partial, &out).unwrap();
    assert_eq!(n, confirmed.load(Ordering::Acquire));
    assert!(
        n > 0 && n < 60,
        "confirmed {n} of 60 (x264 holds its lookahead)"
    );
}

#[test]
fn salvage_of_nothing_and_of_torn_files() {
    let tmp = tempfile::tempdir().unwrap();
    // An encoder that got frames but wrote no complete fragment yet: 0 frames, no file.
    let p = tmp.path().join("empty.mp4");
    let mut e = EpisodeEncoder::create(&p, 96, 64, 30, &EncoderSettings::default()).unwrap();
    let partial = e.partial_path().to_path_buf();
    let out = tmp.path().join("out.mp4");
    assert_eq!(salvage(&partial, &out).unwrap(), 0);
    assert!(!out.exists());
    e.push(&frame(96, 64, 0)).unwrap();
    drop(e);

    // A torn last fragment is dropped, the complete ones are kept.
    let p = tmp.path().join("torn.mp4");
    let s = EncoderSettings::default().with_codec("libx264");
    let mut e = EpisodeEncoder::create(&p, 96, 64, 30, &s).unwrap();
    for i in 0..12 {
        e.push(&frame(96, 64, i)).unwrap();
    }
    let c = e.confirmed_frames().load(Ordering::Acquire);
    let bytes = std::fs::read(e.partial_path()).unwrap();
    let torn = tmp.path().join("torn.frag");
    std::fs::write(&torn, &bytes[..bytes.len() - 5]).unwrap();
    let n = salvage(&torn, &out).unwrap();
    assert_eq!(n, c - 2, "the last 2-frame fragment was torn");
    assert_eq!(decode_video(&out, &[]).unwrap().pts.len() as u64, n);

    let junk = tmp.path().join("junk.frag");
    std::fs::write(&junk, b"not an mp4 at all").unwrap();
    let e = salvage(&junk, &out).unwrap_err().to_string();
    assert!(e.contains("junk.frag"), "{e}");
    assert!(salvage(&tmp.path().join("missing"), &out).is_err());
}

#[test]
fn finish_remux_is_cheap() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("ten_s.mp4");
    let mut s = EncoderSettings::default().with_codec("libx264");
    s.preset = Some("ultrafast".into());
    let (w, h) = (640, 480);
    let mut e = EpisodeEncoder::create(&p, w, h, 30, &s).unwrap();
    let mut f = VideoFrame::solid(w, h, [10, 120, 200]);
    for i in 0..300u64 {
        // Noise-ish content so that the file has a realistic size (~MBs).
        for (j, b) in f.data.iter_mut().enumerate().step_by(7) {
            *b = (j as u64).wrapping_mul(2654435761).wrapping_add(i * 97) as u8;
        }
        e.push(&f).unwrap();
    }
    let t = Instant::now();
    let seg = e.finish().unwrap();
    let took = t.elapsed();
    eprintln!(
        "finish of a 10 s 640x480 segment ({} bytes): {took:?}",
        seg.bytes
    );
    assert_eq!(seg.frames, 300);
    assert!(took < Duration::from_millis(250), "finish took {took:?}");
    assert_eq!(read_index(&p).unwrap().frames, 300);
}
