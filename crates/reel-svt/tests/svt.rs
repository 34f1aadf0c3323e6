//! The built-in SVT-AV1 through its safe API: packets per picture, timestamps, keyframes,
//! the sequence header, refusals, and drops that must not hang.
#![allow(unused_crate_dependencies)]
// Tests unwrap: a panic is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reel_svt::{Picture, SvtEncoder, SvtParams};
use std::time::{Duration, Instant};

const W: u32 = 160;
const H: u32 = 96;

/// A moving gradient: 8-bit yuv420p planes of frame `i` (luma stride padded to test strides).
fn planes(i: u32, stride: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (w, h) = (W as usize, H as usize);
    let mut y = vec![0u8; stride * h];
    for r in 0..h {
        for c in 0..w {
            y[r * stride + c] = ((c + r + 3 * i as usize) % 220 + 16) as u8;
        }
    }
    let u = vec![(100 + i % 50) as u8; (w / 2) * (h / 2)];
    let v = vec![(150 - i % 50) as u8; (w / 2) * (h / 2)];
    (y, u, v)
}

fn send(enc: &mut SvtEncoder, i: u32) {
    let stride = W as usize + 32;
    let (y, u, v) = planes(i, stride);
    let pic = Picture {
        y: &y,
        u: &u,
        v: &v,
        y_stride: stride,
        u_stride: W as usize / 2,
        v_stride: W as usize / 2,
    };
    enc.send(&pic, i as i64).unwrap();
}

#[test]
fn encodes_one_packet_per_picture_with_keyframes_every_g() {
    let v = reel_svt::version();
    assert!(v.starts_with('v'), "{v}");
    let mut enc = SvtEncoder::open(W, H, 30, &SvtParams::default()).unwrap();
    let hdr = enc.sequence_header().unwrap();
    // An OBU_SEQUENCE_HEADER (type 1): obu_header = 0b0_0001_0_1_0 (has_size_field).
    assert_eq!(hdr[0] >> 3 & 0xf, 1, "sequence header OBU, got {hdr:02x?}");
    let n = 20;
    let mut pkts = Vec::new();
    for i in 0..n {
        send(&mut enc, i);
        while let Some(p) = enc.receive().unwrap() {
            pkts.push(p);
        }
    }
    enc.send_eos().unwrap();
    while let Some(p) = enc.receive().unwrap() {
        pkts.push(p);
    }
    assert!(enc.finished());
    assert_eq!(pkts.len(), n as usize);
    let pts: Vec<i64> = pkts.iter().map(|p| p.pts).collect();
    assert_eq!(pts, (0..n as i64).collect::<Vec<_>>());
    for p in &pkts {
        assert_eq!(
            p.key,
            p.pts % 2 == 0,
            "keyframe every 2: {:?}",
            (p.pts, p.key)
        );
        assert!(p.dts <= p.pts);
        assert!(!p.data.is_empty());
    }
}

#[test]
fn refuses_bad_geometry_parameters_and_planes() {
    let p = SvtParams::default();
    let e = SvtEncoder::open(63, 64, 30, &p).unwrap_err().to_string();
    assert!(e.contains("at least 64x64"), "{e}");
    let e = SvtEncoder::open(161, 96, 30, &p).unwrap_err().to_string();
    assert!(e.contains("even"), "{e}");
    let e = SvtEncoder::open(160, 96, 0, &p).unwrap_err().to_string();
    assert!(e.contains("frame rate"), "{e}");
    let mut bad = p.clone();
    bad.extra = vec![("no-such-parameter".into(), "1".into())];
    let e = SvtEncoder::open(W, H, 30, &bad).unwrap_err().to_string();
    assert!(e.contains("no-such-parameter=1"), "{e}");
    let mut bad = p.clone();
    bad.preset = Some(14);
    assert!(SvtEncoder::open(W, H, 30, &bad).is_err());

    let mut enc = SvtEncoder::open(W, H, 30, &p).unwrap();
    let y = vec![0u8; 10];
    let e = enc
        .send(
            &Picture {
                y: &y,
                u: &y,
                v: &y,
                y_stride: W as usize,
                u_stride: 80,
                v_stride: 80,
            },
            0,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not hold"), "{e}");
}

#[test]
fn drops_without_eos_do_not_hang() {
    let t = Instant::now();
    // Never got a picture.
    drop(SvtEncoder::open(W, H, 30, &SvtParams::default()).unwrap());
    // Got pictures, no EOS.
    let mut enc = SvtEncoder::open(W, H, 30, &SvtParams::default()).unwrap();
    for i in 0..5 {
        send(&mut enc, i);
    }
    drop(enc);
    // Got EOS, not drained.
    let mut enc = SvtEncoder::open(W, H, 30, &SvtParams::default()).unwrap();
    send(&mut enc, 0);
    enc.send_eos().unwrap();
    drop(enc);
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[test]
fn opens_on_several_threads_at_once() {
    let hs: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let mut enc = SvtEncoder::open(W, H, 30, &SvtParams::default()).unwrap();
                for i in 0..4 {
                    send(&mut enc, i);
                }
                enc.send_eos().unwrap();
                let mut n = 0;
                while enc.receive().unwrap().is_some() {
                    n += 1;
                }
                n
            })
        })
        .collect();
    for h in hs {
        assert_eq!(h.join().unwrap(), 4);
    }
}
