//! Small JPEG pictures of camera frames (the live page's thumbnails): RGB24 → downscaled
//! YUVJ420P with swscale → FFmpeg's MJPEG encoder. One [`Thumbnailer`] per camera, kept
//! between frames; it rebuilds itself when the frame size changes.

use ff::codec;
use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;
use reel_core::{Error, Result, VideoFrame};

fn media(what: &str, e: impl std::fmt::Display) -> Error {
    Error::media("thumbnail", format!("{what}: {e}"))
}

/// The thumbnail size for a `w`×`h` frame no wider than `max_width` (even sides, ≥ 16).
pub fn thumbnail_size(w: u32, h: u32, max_width: u32) -> (u32, u32) {
    let tw = w.min(max_width.max(16));
    let th = ((h as u64 * tw as u64) / w.max(1) as u64) as u32;
    ((tw.max(16) + 1) & !1, (th.max(16) + 1) & !1)
}

/// The open scaler and encoder for one input size.
struct Open {
    input: (u32, u32),
    scaler: scaling::Context,
    encoder: ff::encoder::Video,
}

/// Encodes downscaled JPEGs of RGB24 frames.
pub struct Thumbnailer {
    max_width: u32,
    /// Frames encoded (their pts: MJPEG wants them increasing).
    count: i64,
    state: Option<Open>,
}

// SAFETY: the FFmpeg contexts are owned by this value and used only through `&mut self`, so
// never from two threads at once; moving them between threads is allowed by FFmpeg.
unsafe impl Send for Thumbnailer {}

impl Thumbnailer {
    /// Thumbnails at most `max_width` pixels wide (height follows the aspect ratio).
    pub fn new(max_width: u32) -> Thumbnailer {
        crate::init();
        Thumbnailer {
            max_width,
            count: 0,
            state: None,
        }
    }

    fn open(&mut self, w: u32, h: u32) -> Result<()> {
        let (tw, th) = thumbnail_size(w, h, self.max_width);
        let scaler = scaling::Context::get(
            Pixel::RGB24,
            w,
            h,
            Pixel::YUVJ420P,
            tw,
            th,
            scaling::Flags::AREA,
        )
        .map_err(|e| media("create scaler", e))?;
        let c = ff::encoder::find(codec::Id::MJPEG)
            .ok_or_else(|| media("open encoder", "this FFmpeg has no MJPEG encoder"))?;
        let mut enc = codec::context::Context::new_with_codec(c)
            .encoder()
            .video()
            .map_err(|e| media("create encoder", e))?;
        enc.set_width(tw);
        enc.set_height(th);
        enc.set_format(Pixel::YUVJ420P);
        enc.set_time_base(ff::Rational::new(1, 25));
        // Fixed quality (qscale 5 of 2..31): a few kB per thumbnail.
        enc.set_flags(codec::Flags::QSCALE);
        enc.set_global_quality(5 * ff::ffi::FF_QP2LAMBDA);
        let enc = enc.open_as(c).map_err(|e| media("open MJPEG encoder", e))?;
        self.state = Some(Open {
            input: (w, h),
            scaler,
            encoder: enc,
        });
        Ok(())
    }

    /// One JPEG of `frame`, downscaled.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<u8>> {
        let (w, h) = (frame.width, frame.height);
        let row = w as usize * 3;
        if w == 0 || h == 0 || frame.data.len() != row * h as usize {
            return Err(media(
                "frame",
                format!(
                    "{} bytes do not make a {w}x{h} RGB24 frame",
                    frame.data.len()
                ),
            ));
        }
        if self.state.as_ref().is_none_or(|s| s.input != (w, h)) {
            self.open(w, h)?;
        }
        let Some(Open {
            scaler,
            encoder: enc,
            ..
        }) = self.state.as_mut()
        else {
            return Err(media("encoder", "not open"));
        };
        let mut rgb = ff::frame::Video::new(Pixel::RGB24, w, h);
        let stride = rgb.stride(0);
        {
            let dst = rgb.data_mut(0);
            for (y, src) in frame.data.chunks_exact(row).enumerate() {
                dst[y * stride..y * stride + row].copy_from_slice(src);
            }
        }
        let mut yuv = ff::frame::Video::empty();
        scaler
            .run(&rgb, &mut yuv)
            .map_err(|e| media("downscale", e))?;
        yuv.set_pts(Some(self.count));
        self.count += 1;
        // SAFETY: writing a plain int field of a frame we own: the quality MJPEG uses with QSCALE.
        unsafe {
            (*yuv.as_mut_ptr()).quality = 5 * ff::ffi::FF_QP2LAMBDA;
        }
        enc.send_frame(&yuv).map_err(|e| media("encode", e))?;
        let mut packet = ff::Packet::empty();
        enc.receive_packet(&mut packet)
            .map_err(|e| media("encode", e))?;
        Ok(packet.data().map(<[u8]>::to_vec).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_keep_the_aspect_ratio_and_are_even() {
        assert_eq!(thumbnail_size(640, 480, 320), (320, 240));
        assert_eq!(thumbnail_size(96, 64, 320), (96, 64));
        assert_eq!(thumbnail_size(1281, 721, 321), (322, 180));
        assert_eq!(thumbnail_size(4, 4, 320), (16, 16));
    }

    #[test]
    fn encodes_a_decodable_jpeg_and_follows_size_changes() {
        let mut t = Thumbnailer::new(160);
        let f = VideoFrame::solid(640, 480, [200, 30, 30]);
        let jpg = t.encode(&f).unwrap();
        assert_eq!(&jpg[..2], &[0xFF, 0xD8], "JPEG SOI marker");
        assert_eq!(&jpg[jpg.len() - 2..], &[0xFF, 0xD9], "JPEG EOI marker");
        // SOF0 holds height then width.
        let sof = jpg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        let hh = u16::from_be_bytes([jpg[sof + 5], jpg[sof + 6]]);
        let ww = u16::from_be_bytes([jpg[sof + 7], jpg[sof + 8]]);
        assert_eq!((ww, hh), (160, 120));
        let g = VideoFrame::solid(96, 64, [0, 0, 0]);
        for _ in 0..3 {
            let jpg2 = t.encode(&g).unwrap();
            assert_eq!(&jpg2[..2], &[0xFF, 0xD8], "every call makes a picture");
        }
        let bad = VideoFrame {
            data: vec![0; 10],
            ..VideoFrame::solid(4, 4, [0, 0, 0])
        };
        assert!(t.encode(&bad).is_err());
    }
}
