//! Streaming image statistics (spec §3.4, §4.3): downsampling strides, solid-colour frames,
//! equivalence with feeding every downsampled pixel to `RunningQuantileStats`, error cases,
//! and a small timing printout of `push_rgb` (no assertion on time).

use reel_stats::{downsample_stride, ImageStats, RunningQuantileStats};
use std::time::Instant;

fn solid(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    rgb.iter()
        .copied()
        .cycle()
        .take((width * height * 3) as usize)
        .collect()
}

/// A frame whose pixels vary with position and `seed`.
fn pattern(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let v = x.wrapping_mul(7) ^ y.wrapping_mul(13) ^ seed.wrapping_mul(2654435761);
            out.extend_from_slice(&[
                (v % 251) as u8,
                (v >> 3) as u8,
                ((x + y + seed) % 200 + 30) as u8,
            ]);
        }
    }
    out
}

#[test]
fn downsample_stride_examples() {
    // (height, width) -> stride, from §4.3.
    assert_eq!(downsample_stride(480, 640), 4); // -> 120 x 160
    assert_eq!(downsample_stride(720, 1280), 8); // -> 90 x 160
    assert_eq!(downsample_stride(1080, 1920), 12); // -> 90 x 160
    assert_eq!(downsample_stride(300, 300), 2); // -> 150 x 150
    assert_eq!(downsample_stride(640, 480), 4); // portrait: int(640 / 150)
    assert_eq!(downsample_stride(64, 96), 1);
    assert_eq!(downsample_stride(299, 299), 1);
    assert_eq!(downsample_stride(0, 0), 1);
}

#[test]
fn solid_colour_frames() {
    let colour = [10u8, 128, 255];
    let mut s = ImageStats::new();
    for _ in 0..3 {
        s.push_rgb(640, 480, &solid(640, 480, colour)).unwrap();
    }
    assert_eq!(s.frames(), 3);
    let st = s.finish().unwrap();
    // 640x480 -> 160x120 = 19,200 pixels per frame.
    assert_eq!(st.count, 3 * 160 * 120);
    let expected: Vec<f64> = colour.iter().map(|&c| f64::from(c) / 255.0).collect();
    assert_eq!(st.mean, expected);
    assert_eq!(st.min, expected);
    assert_eq!(st.max, expected);
    assert_eq!(st.std, vec![0.0; 3]);
    assert_eq!(st.quantiles.len(), 5);
    for (_, q) in &st.quantiles {
        for (a, e) in q.iter().zip(&expected) {
            assert!((a - e).abs() < 1e-9, "{q:?} vs {expected:?}");
        }
    }
}

#[test]
fn equals_feeding_every_downsampled_pixel() {
    for (w, h) in [(96u32, 64u32), (640, 480), (301, 200)] {
        let f = downsample_stride(h, w) as usize;
        let mut fast = ImageStats::new();
        let mut reference = RunningQuantileStats::new(3);
        for k in 0..4 {
            let frame = pattern(w, h, k);
            fast.push_rgb(w, h, &frame).unwrap();
            // img[::f, ::f] reshaped to (H'*W', 3), as f64.
            let mut rows = Vec::new();
            for y in (0..h as usize).step_by(f) {
                for x in (0..w as usize).step_by(f) {
                    let p = (y * w as usize + x) * 3;
                    rows.extend(frame[p..p + 3].iter().map(|&b| f64::from(b)));
                }
            }
            reference.update(&rows).unwrap();
        }
        let got = fast.finish().unwrap();
        let want = reference.get_statistics().unwrap();
        assert_eq!(got.count, want.count);
        let hp = (h as usize).div_ceil(f) as u64;
        let wp = (w as usize).div_ceil(f) as u64;
        assert_eq!(got.count, 4 * hp * wp);
        let scaled = |v: &[f64]| v.iter().map(|x| x / 255.0).collect::<Vec<_>>();
        assert_eq!(got.min, scaled(&want.min));
        assert_eq!(got.max, scaled(&want.max));
        assert_eq!(got.mean, scaled(&want.mean));
        assert_eq!(got.std, scaled(&want.std));
        for ((kg, qg), (kw, qw)) in got.quantiles.iter().zip(&want.quantiles) {
            assert_eq!(kg, kw);
            assert_eq!(qg, &scaled(qw));
        }
        assert!(got
            .min
            .iter()
            .chain(&got.max)
            .all(|&v| (0.0..=1.0).contains(&v)));
    }
}

#[test]
fn errors() {
    let mut s = ImageStats::new();
    assert!(s.finish().is_err());
    let e = s.push_rgb(4, 4, &[0u8; 47]).unwrap_err();
    assert!(e.to_string().contains("48 bytes"), "{e}");
    assert!(s.push_rgb(0, 4, &[]).is_err());
    assert_eq!(s.frames(), 0);
    s.push_rgb(4, 4, &[7u8; 48]).unwrap();
    let e = s.finish().unwrap_err();
    assert!(e.to_string().contains("fewer than 2 frames"), "{e}");
    s.push_rgb(4, 4, &[9u8; 48]).unwrap();
    let st = s.finish().unwrap();
    assert_eq!(st.count, 32);
    assert_eq!(st.mean, vec![8.0 / 255.0; 3]);
    assert_eq!(st.std, vec![1.0 / 255.0; 3]);
}

/// Prints the cost of one `push_rgb` on a 640x480 frame (run with `--nocapture`; use
/// `--release` for the number that matters). Varying frames, so histogram re-fits happen.
#[test]
fn bench_push_rgb_640x480() {
    let frames: Vec<Vec<u8>> = (0..8).map(|k| pattern(640, 480, k)).collect();
    let mut s = ImageStats::new();
    // Start narrow so that later frames widen min/max and trigger re-fits.
    s.push_rgb(640, 480, &solid(640, 480, [128, 128, 128]))
        .unwrap();
    let n = 200;
    let t = Instant::now();
    for i in 0..n {
        s.push_rgb(640, 480, &frames[i % frames.len()]).unwrap();
    }
    let ns = t.elapsed().as_nanos() / n as u128;
    println!("ImageStats::push_rgb 640x480 -> 160x120: {ns} ns/frame ({n} frames)");
    assert_eq!(s.frames(), n as u64 + 1);
}
