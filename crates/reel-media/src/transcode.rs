//! File-to-file re-encoding shared by `reel reencode` and the deferred-AV1 backlog: a
//! streaming RGB24 decoder ([`FrameReader`]) feeding an [`EpisodeEncoder`] at the source's
//! frame rate and size, with a progress counter and a cancel flag checked between frames.

use crate::encoder::{EncodedSegment, EpisodeEncoder};
use crate::settings::EncoderSettings;
use ff::format::Pixel;
use ffmpeg_next as ff;
use reel_core::{Error, Result, VideoFrame};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Streams every frame of a file's first video stream as RGB24, in presentation order
/// (B-frames are reordered by the decoder), one frame at a time.
pub struct FrameReader {
    path: PathBuf,
    ictx: ff::format::context::Input,
    dec: ff::decoder::Video,
    index: usize,
    fps: u32,
    width: u32,
    height: u32,
    header_frames: u64,
    scaler: Option<(Pixel, u32, u32, ff::software::scaling::Context)>,
    ready: VecDeque<VideoFrame>,
    demux_done: bool,
    decoder_done: bool,
    produced: u64,
}

// SAFETY: the demuxer, decoder and scaler are owned exclusively by this value and only used
// through `&mut self`; none holds thread-affine state.
unsafe impl Send for FrameReader {}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("path", &self.path)
            .field("fps", &self.fps)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("produced", &self.produced)
            .finish()
    }
}

impl FrameReader {
    /// Opens `path`'s first (best) video stream and its decoder.
    pub fn open(path: &Path) -> Result<Self> {
        crate::init();
        let ctx = |what: &str| format!("{what} ({})", path.display());
        let ictx = ff::format::input(&path).map_err(|e| Error::media(ctx("open video"), e))?;
        let ist = ictx
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| Error::media(ctx("read video"), "no video stream"))?;
        let index = ist.index();
        let rate = if ist.rate().numerator() > 0 && ist.rate().denominator() > 0 {
            ist.rate()
        } else {
            ist.avg_frame_rate()
        };
        if rate.numerator() <= 0 || rate.denominator() <= 0 {
            return Err(Error::media(
                ctx("read video"),
                "the stream has no frame rate",
            ));
        }
        let fps = (f64::from(rate.numerator()) / f64::from(rate.denominator())).round() as u32;
        if fps == 0 {
            return Err(Error::media(
                ctx("read video"),
                format!("frame rate {rate} rounds to 0"),
            ));
        }
        let header_frames = ist.frames().max(0) as u64;
        let dec = ff::codec::context::Context::from_parameters(ist.parameters())
            .and_then(|c| c.decoder().video())
            .map_err(|e| Error::media(ctx("open decoder"), e))?;
        let (width, height) = (dec.width(), dec.height());
        if width == 0 || height == 0 {
            return Err(Error::media(
                ctx("read video"),
                "the stream has no frame size",
            ));
        }
        Ok(FrameReader {
            path: path.to_path_buf(),
            ictx,
            dec,
            index,
            fps,
            width,
            height,
            header_frames,
            scaler: None,
            ready: VecDeque::new(),
            demux_done: false,
            decoder_done: false,
            produced: 0,
        })
    }

    /// The stream's frame rate rounded to an integer (r_frame_rate, else avg_frame_rate).
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Frame size (width, height) from the stream parameters.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The frame count the container declares (0 when it does not say).
    pub fn declared_frames(&self) -> u64 {
        self.header_frames
    }

    /// Frames returned so far.
    pub fn frames_read(&self) -> u64 {
        self.produced
    }

    /// The next frame in presentation order as RGB24 (`seq` = its index), or None at the end.
    pub fn next_frame(&mut self) -> Result<Option<VideoFrame>> {
        loop {
            if let Some(f) = self.ready.pop_front() {
                self.produced += 1;
                return Ok(Some(f));
            }
            if self.decoder_done {
                return Ok(None);
            }
            if self.demux_done {
                self.receive()?;
                // After EOF was sent, receive() drains everything; mark the decoder done.
                self.decoder_done = true;
                continue;
            }
            let mut pkt = ff::Packet::empty();
            match pkt.read(&mut self.ictx) {
                Ok(()) => {
                    if pkt.stream() != self.index {
                        continue;
                    }
                    self.dec.send_packet(&pkt).map_err(|e| {
                        Error::media(format!("decode packet ({})", self.path.display()), e)
                    })?;
                    self.receive()?;
                }
                Err(ff::Error::Eof) => {
                    self.demux_done = true;
                    self.dec.send_eof().map_err(|e| {
                        Error::media(format!("flush decoder ({})", self.path.display()), e)
                    })?;
                }
                Err(e) => {
                    return Err(Error::media(
                        format!("read packet ({})", self.path.display()),
                        e,
                    ))
                }
            }
        }
    }

    fn receive(&mut self) -> Result<()> {
        loop {
            let mut f = ff::frame::Video::empty();
            match self.dec.receive_frame(&mut f) {
                Ok(()) => {}
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                    return Ok(())
                }
                Err(ff::Error::Eof) => return Ok(()),
                Err(e) => return Err(Error::media(format!("decode {}", self.path.display()), e)),
            }
            let frame = self.convert(&f)?;
            self.ready.push_back(frame);
        }
    }

    fn convert(&mut self, f: &ff::frame::Video) -> Result<VideoFrame> {
        let (w, h, fmt) = (f.width(), f.height(), f.format());
        let stale =
            !matches!(&self.scaler, Some((p, sw, sh, _)) if *p == fmt && *sw == w && *sh == h);
        if stale {
            let s = ff::software::scaling::Context::get(
                fmt,
                w,
                h,
                Pixel::RGB24,
                w,
                h,
                ff::software::scaling::Flags::BILINEAR,
            )
            .map_err(|e| Error::media(format!("YUV→RGB scaler for {}", self.path.display()), e))?;
            self.scaler = Some((fmt, w, h, s));
        }
        let Some((_, _, _, scaler)) = self.scaler.as_mut() else {
            return Err(Error::media(
                format!("convert a frame of {}", self.path.display()),
                "no scaler",
            ));
        };
        let mut rgb = ff::frame::Video::empty();
        scaler
            .run(f, &mut rgb)
            .map_err(|e| Error::media(format!("convert a frame of {}", self.path.display()), e))?;
        let row = w as usize * 3;
        let stride = rgb.stride(0);
        let src = rgb.data(0);
        let mut data = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            data.extend_from_slice(&src[y * stride..y * stride + row]);
        }
        let mut vf = VideoFrame::new(w, h, data)?;
        vf.seq = self.produced + self.ready.len() as u64;
        Ok(vf)
    }
}

/// Hooks for a long transcode: a frame counter others can read, and a flag that stops it.
#[derive(Debug, Clone, Default)]
pub struct TranscodeOptions {
    /// Incremented once per frame encoded.
    pub progress: Option<Arc<AtomicU64>>,
    /// Checked between frames; when true the transcode stops with a "cancelled" error.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Re-encodes every frame of `src`'s first video stream into `dst` with `settings`, at the
/// source's frame rate and size (pts 0, 1, 2, … on the 1/fps grid). Fails when the frame
/// count written differs from the frames decoded or from the count the source declares, and
/// with an error saying "cancelled" when `opts.cancel` turns true.
pub fn transcode_file(
    src: &Path,
    dst: &Path,
    settings: &EncoderSettings,
    opts: &TranscodeOptions,
) -> Result<EncodedSegment> {
    let mut reader = FrameReader::open(src)?;
    let (w, h) = reader.size();
    let cancelled = || {
        opts.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    };
    if cancelled() {
        return Err(Error::media(
            format!("transcode {}", src.display()),
            "cancelled",
        ));
    }
    let enc = EpisodeEncoder::create(dst, w, h, reader.fps(), settings)?;
    let res = encode_all(src, &mut reader, enc, opts);
    if res.is_err() {
        // A partial output is garbage: never leave it where a finished file is expected.
        let _ = std::fs::remove_file(dst);
    }
    res
}

fn encode_all(
    src: &Path,
    reader: &mut FrameReader,
    mut enc: EpisodeEncoder,
    opts: &TranscodeOptions,
) -> Result<EncodedSegment> {
    let (w, h) = reader.size();
    let cancelled = || {
        opts.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    };
    while let Some(frame) = reader.next_frame()? {
        if cancelled() {
            return Err(Error::media(
                format!("transcode {}", src.display()),
                "cancelled",
            ));
        }
        if frame.width != w || frame.height != h {
            return Err(Error::media(
                format!("transcode {}", src.display()),
                format!(
                    "frame {} is {}x{}, the stream starts at {w}x{h}",
                    frame.seq, frame.width, frame.height
                ),
            ));
        }
        enc.push(&frame)?;
        if let Some(p) = &opts.progress {
            p.fetch_add(1, Ordering::Relaxed);
        }
    }
    let decoded = reader.frames_read();
    if decoded == 0 {
        return Err(Error::media(
            format!("transcode {}", src.display()),
            "the video has no frames",
        ));
    }
    let declared = reader.declared_frames();
    if declared > 0 && declared != decoded {
        return Err(Error::media(
            format!("transcode {}", src.display()),
            format!("the file declares {declared} frames but {decoded} decoded"),
        ));
    }
    let seg = enc.finish()?;
    if seg.frames != decoded {
        return Err(Error::media(
            format!("transcode {}", src.display()),
            format!("{decoded} frames decoded but {} encoded", seg.frames),
        ));
    }
    Ok(seg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_video;
    use std::process::Command;

    /// A 96x64 x264 file with B-frames (pts ≠ dts), made by the ffmpeg CLI.
    pub(crate) fn x264_with_bframes(dir: &Path, n: u32) -> PathBuf {
        let p = dir.join("src.mp4");
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc=size=96x64:rate=30")
            .args(["-frames:v", &n.to_string(), "-c:v", "libx264", "-bf", "3"])
            .args(["-pix_fmt", "yuv420p"])
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
        p
    }

    fn grid(path: &Path) -> Vec<i64> {
        let d = decode_video(path, &[]).unwrap();
        let info = crate::probe::probe_video(path).unwrap();
        let (num, den) = d.time_base;
        // pts in frame units on the 1/fps grid.
        d.pts
            .iter()
            .map(|&p| {
                let t = p as f64 * num as f64 / den as f64 * info.fps as f64;
                assert!((t - t.round()).abs() < 1e-6, "pts {p} off the grid");
                t.round() as i64
            })
            .collect()
    }

    #[test]
    fn x264_bframes_to_svtav1_keeps_frames_and_grid() {
        let tmp = tempfile::tempdir().unwrap();
        let src = x264_with_bframes(tmp.path(), 40);
        let mut r = FrameReader::open(&src).unwrap();
        assert_eq!((r.fps(), r.size()), (30, (96, 64)));
        let mut n = 0;
        while let Some(f) = r.next_frame().unwrap() {
            assert_eq!(f.seq, n);
            n += 1;
        }
        assert_eq!(n, 40);

        let dst = tmp.path().join("dst.mp4");
        let progress = Arc::new(AtomicU64::new(0));
        let opts = TranscodeOptions {
            progress: Some(progress.clone()),
            cancel: None,
        };
        let seg = transcode_file(&src, &dst, &EncoderSettings::default(), &opts).unwrap();
        assert_eq!(seg.frames, 40);
        assert_eq!(progress.load(Ordering::Relaxed), 40);
        let info = crate::probe::probe_video(&dst).unwrap();
        assert_eq!(
            (info.codec.as_str(), info.fps, info.frames),
            ("av1", 30, 40)
        );
        assert_eq!((info.width, info.height), (96, 64));
        let (a, b) = (grid(&src), grid(&dst));
        assert_eq!(a, b);
        assert_eq!(b, (0..40).collect::<Vec<i64>>());
    }

    #[test]
    fn cancel_stops_and_removes_output() {
        let tmp = tempfile::tempdir().unwrap();
        let src = x264_with_bframes(tmp.path(), 10);
        let dst = tmp.path().join("dst.mp4");
        let opts = TranscodeOptions {
            progress: None,
            cancel: Some(Arc::new(AtomicBool::new(true))),
        };
        let e = transcode_file(&src, &dst, &EncoderSettings::default(), &opts).unwrap_err();
        assert!(e.to_string().contains("cancelled"), "{e}");
        assert!(!dst.exists());
        let e = FrameReader::open(&tmp.path().join("missing.mp4")).unwrap_err();
        assert!(e.to_string().contains("missing.mp4"), "{e}");
    }
}
