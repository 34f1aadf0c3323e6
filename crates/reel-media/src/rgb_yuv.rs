//! RGB24 → YUV 4:2:0 for the encoders (BT.601, limited range: what swscale gives FFmpeg's
//! encoders by default, and what LeRobot's PyAV path produces), through `yuvutils-rs`'s SIMD
//! converters. FFmpeg 5.1's swscale has no fast path for RGB24 input (only for BGR24): on
//! 640×480 footage it took about as much CPU per frame as libx264 ultrafast itself, once for
//! the live encoder and once more for the final lane (`perf`, BENCHMARKS.md "AV1 on time").
//! The converter writes straight into the FFmpeg frame handed to the encoder, so the RGB copy
//! into an intermediate FFmpeg frame goes too.

use ff::format::Pixel;
use ffmpeg_next as ff;
use reel_core::{Error, Result, VideoFrame};
use yuvutils_rs::{
    rgb_to_yuv420, BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

/// The 4:2:0 frame of `frame` (its RGB24 bytes must fill `width * 3 * height`).
pub fn rgb24_to_yuv420p(frame: &VideoFrame) -> Result<ff::frame::Video> {
    let (w, h) = (frame.width, frame.height);
    let row = w as usize * 3;
    if w == 0 || h == 0 || frame.data.len() != row * h as usize {
        return Err(Error::invalid(format!(
            "RGB24 frame {w}x{h} holds {} bytes, needs {}",
            frame.data.len(),
            row * h as usize
        )));
    }
    let mut yuv = ff::frame::Video::new(Pixel::YUV420P, w, h);
    let chroma_h = h.div_ceil(2) as usize;
    let strides = [yuv.stride(0), yuv.stride(1), yuv.stride(2)];
    let lens = [
        strides[0] * h as usize,
        strides[1] * chroma_h,
        strides[2] * chroma_h,
    ];
    // SAFETY: `Video::new` allocated the three planes of a `w`×`h` YUV420P frame
    // (av_frame_get_buffer): plane i starts at data[i] and holds at least linesize[i] bytes
    // for each of its rows (h luma rows, ceil(h/2) chroma rows). The planes do not overlap,
    // so the three mutable slices are disjoint, and they live only inside this function
    // while `yuv` is borrowed by nothing else.
    let planes: [&mut [u8]; 3] = unsafe {
        let raw = yuv.as_mut_ptr();
        [0, 1, 2].map(|i| std::slice::from_raw_parts_mut((*raw).data[i], lens[i]))
    };
    let [y_plane, u_plane, v_plane] = planes;
    let mut image = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(y_plane),
        y_stride: strides[0] as u32,
        u_plane: BufferStoreMut::Borrowed(u_plane),
        u_stride: strides[1] as u32,
        v_plane: BufferStoreMut::Borrowed(v_plane),
        v_stride: strides[2] as u32,
        width: w,
        height: h,
    };
    rgb_to_yuv420(
        &mut image,
        &frame.data,
        row as u32,
        YuvRange::Limited,
        YuvStandardMatrix::Bt601,
        YuvConversionMode::Balanced,
    )
    .map_err(|e| Error::invalid(format!("RGB24 → YUV420P of a {w}x{h} frame: {e}")))?;
    Ok(yuv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff::software::scaling;

    /// swscale's conversion, as the encoder did it before.
    fn swscale(frame: &VideoFrame) -> ff::frame::Video {
        let (w, h) = (frame.width, frame.height);
        let mut rgb = ff::frame::Video::new(Pixel::RGB24, w, h);
        let stride = rgb.stride(0);
        let row = w as usize * 3;
        for (y, src) in frame.data.chunks_exact(row).enumerate() {
            rgb.data_mut(0)[y * stride..y * stride + row].copy_from_slice(src);
        }
        let mut sc = scaling::Context::get(
            Pixel::RGB24,
            w,
            h,
            Pixel::YUV420P,
            w,
            h,
            scaling::Flags::BILINEAR,
        )
        .unwrap();
        let mut out = ff::frame::Video::empty();
        sc.run(&rgb, &mut out).unwrap();
        out
    }

    /// Camera-like content: gradients and sensor noise; with `edges`, also stripes of
    /// saturated primaries one to three pixels wide (chroma edges at every 2×2 block).
    fn image(w: u32, h: u32, seed: u64, edges: bool) -> VideoFrame {
        let mut s = seed | 1;
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let noise = (s % 17) as i32 - 8;
                let px: [i32; 3] = if edges && (x / 7 + y / 5) % 9 == 0 {
                    [[255, 0, 0], [0, 255, 0], [0, 0, 255]][(x as usize / 3) % 3]
                } else {
                    [
                        (x * 255 / w) as i32 + noise,
                        (y * 255 / h) as i32 - noise,
                        ((x + y) % 256) as i32,
                    ]
                };
                data.extend(px.iter().map(|v| (*v).clamp(0, 255) as u8));
            }
        }
        VideoFrame::new(w, h, data).unwrap()
    }

    fn plane(f: &ff::frame::Video, i: usize, w: usize, h: usize) -> Vec<u8> {
        let s = f.stride(i);
        (0..h)
            .flat_map(|y| f.data(i)[y * s..y * s + w].to_vec())
            .collect()
    }

    /// Largest and mean absolute difference of plane `i` of two frames; for chroma over the
    /// full 2×2 blocks (an odd last row or column is one filter's edge rule against the
    /// other's, and no camera has an odd size).
    fn diff(a: &ff::frame::Video, b: &ff::frame::Video, i: usize) -> (i32, f64) {
        let (w, h) = (a.width() as usize, a.height() as usize);
        let (pw, ph) = if i == 0 {
            (w, h)
        } else {
            (w.div_ceil(2), h.div_ceil(2))
        };
        let (fw, fh) = if i == 0 {
            (w, h)
        } else {
            ((w / 2).max(1), (h / 2).max(1))
        };
        let crop = |p: Vec<u8>| -> Vec<u8> {
            p.chunks(pw)
                .take(fh)
                .flat_map(|r| r[..fw].to_vec())
                .collect()
        };
        let d: Vec<i32> = crop(plane(a, i, pw, ph))
            .iter()
            .zip(&crop(plane(b, i, pw, ph)))
            .map(|(x, y)| (i32::from(*x) - i32::from(*y)).abs())
            .collect();
        let max = d.iter().copied().max().unwrap_or(0);
        (max, d.iter().sum::<i32>() as f64 / d.len().max(1) as f64)
    }

    #[test]
    fn agrees_with_swscale_within_rounding() {
        crate::init();
        for (w, h) in [(640, 480), (64, 48), (97, 33), (2, 2), (1, 1)] {
            // At an odd size swscale resamples chroma (97 → 49 is not 2:1), and a 2×2 frame
            // is all edge to its filters, so only luma is compared there; the next test
            // covers those sizes' chroma.
            let odd = w % 2 == 1 || h % 2 == 1 || w < 16;
            for edges in [false, true] {
                let f = image(w, h, u64::from(w * 31 + h), edges);
                let (a, b) = (rgb24_to_yuv420p(&f).unwrap(), swscale(&f));
                assert_eq!((a.width(), a.height(), a.format()), (w, h, Pixel::YUV420P));
                // Luma: the same BT.601 limited-range values, up to rounding.
                let (max, mean) = diff(&a, &b, 0);
                let mean_bound = if w * h >= 64 { 0.6 } else { 2.0 };
                assert!(
                    max <= 2 && mean <= mean_bound,
                    "{w}x{h} Y: max {max} mean {mean:.3}"
                );
                // Chroma: reel takes the mean of each 2×2 block (see the next test); swscale
                // filters the two chroma rows otherwise, which shows only at hard colour
                // edges, where the encoder's own chroma loss is larger still.
                for i in [1, 2].into_iter().filter(|_| !odd) {
                    let (max, mean) = diff(&a, &b, i);
                    // Without edges the difference is the two filters seeing the ±8 sensor noise.
                    let (bmax, bmean) = if edges { (48, 1.5) } else { (10, 1.0) };
                    assert!(
                        max <= bmax && mean <= bmean,
                        "{w}x{h} edges {edges} plane {i}: max {max} mean {mean:.3}"
                    );
                }
            }
        }
    }

    #[test]
    fn chroma_is_the_mean_of_each_2x2_block() {
        crate::init();
        // Every block is red and blue on the diagonal: its chroma is that of (127.5, 0, 127.5),
        // BT.601 limited range: Cb = 128 + 224/255·(−0.1687 R − 0.3313 G + 0.5 B) ≈ 165,
        // Cr = 128 + 224/255·(0.5 R − 0.4187 G − 0.0813 B) ≈ 175.
        // At an odd size the last column's (row's) chroma is the mean of the pixels there.
        for (w, h) in [(2u32, 2u32), (8, 6), (9, 7)] {
            let data: Vec<u8> = (0..h)
                .flat_map(|y| {
                    (0..w).flat_map(move |x| {
                        if (x + y) % 2 == 0 {
                            [255, 0, 0]
                        } else {
                            [0, 0, 255]
                        }
                    })
                })
                .collect();
            let out = rgb24_to_yuv420p(&VideoFrame::new(w, h, data).unwrap()).unwrap();
            let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
            for (i, want) in [(1usize, 165i32), (2, 175)] {
                let p = plane(&out, i, cw, ch);
                for (k, v) in p.iter().enumerate() {
                    let (cx, cy) = (k % cw, k / cw);
                    let full = 2 * cx + 1 < w as usize && 2 * cy + 1 < h as usize;
                    if full {
                        assert!((i32::from(*v) - want).abs() <= 2, "{w}x{h} plane {i}: {v}");
                    }
                }
                if w % 2 == 1 {
                    // The last column is red over blue (or blue over red): the same mean.
                    let v = i32::from(p[cw - 1]);
                    assert!((v - want).abs() <= 2, "{w}x{h} plane {i} last column: {v}");
                }
            }
        }
    }

    #[test]
    fn the_limited_range_levels_of_black_white_and_grey() {
        crate::init();
        for (rgb, y, uv) in [
            ([0u8, 0, 0], 16u8, 128u8),
            ([255, 255, 255], 235, 128),
            ([128, 128, 128], 126, 128),
        ] {
            let f = VideoFrame::new(4, 4, rgb.repeat(16)).unwrap();
            let out = rgb24_to_yuv420p(&f).unwrap();
            for v in plane(&out, 0, 4, 4) {
                assert!((i32::from(v) - i32::from(y)).abs() <= 1, "{rgb:?}: Y {v}");
            }
            for i in [1, 2] {
                for v in plane(&out, i, 2, 2) {
                    assert!((i32::from(v) - i32::from(uv)).abs() <= 1, "{rgb:?}: C {v}");
                }
            }
        }
    }

    #[test]
    fn a_frame_of_the_wrong_size_is_an_error_not_a_panic() {
        crate::init();
        let bad = VideoFrame {
            width: 4,
            height: 4,
            data: vec![0; 10],
            captured_ns: 0,
            seq: 0,
        };
        let Err(e) = rgb24_to_yuv420p(&bad) else {
            panic!("a 10-byte 4x4 frame was converted");
        };
        let e = e.to_string();
        assert!(e.contains("needs 48"), "{e}");
        let empty = VideoFrame {
            width: 0,
            height: 4,
            data: vec![],
            captured_ns: 0,
            seq: 0,
        };
        assert!(rgb24_to_yuv420p(&empty).is_err());
    }
}
