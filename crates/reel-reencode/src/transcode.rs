//! The unit of work of a re-encode: one MP4 in, one MP4 out, same frames on the same 1/fps
//! grid. [`Transcoder`] is the seam the worker pool drives (tests plug in faulty ones);
//! [`FfmpegTranscoder`] is the real one: it decodes every frame of the source's video stream
//! (B-frames included, in presentation order), converts it to RGB24 and feeds reel's
//! [`EpisodeEncoder`], checking the cancel flag between frames.

use ffmpeg_next as ff;
use reel_core::{Error, Result, VideoFrame};
use reel_media::{EncoderSettings, EpisodeEncoder};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Re-encodes one video file. Implementations must count every frame written in
/// `progress` (the watchdog reads it) and give up soon after `cancel` becomes true.
pub trait Transcoder: Send + Sync + 'static {
    /// Encodes `src`'s video stream into `dst` with `settings` at `fps`; returns the number
    /// of frames written.
    fn transcode(
        &self,
        src: &Path,
        dst: &Path,
        fps: u32,
        settings: &EncoderSettings,
        progress: &AtomicU64,
        cancel: &AtomicBool,
    ) -> Result<u64>;
}

/// Decode with libavcodec, encode with [`EpisodeEncoder`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FfmpegTranscoder;

struct Sink<'a> {
    dst: &'a Path,
    fps: u32,
    settings: &'a EncoderSettings,
    enc: Option<EpisodeEncoder>,
    scaler: Option<ff::software::scaling::Context>,
    progress: &'a AtomicU64,
    cancel: &'a AtomicBool,
    src: &'a Path,
}

impl Sink<'_> {
    fn take(&mut self, dec: &mut ff::decoder::Video) -> Result<()> {
        loop {
            let mut f = ff::frame::Video::empty();
            match dec.receive_frame(&mut f) {
                Ok(()) => {}
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                    return Ok(())
                }
                Err(ff::Error::Eof) => return Ok(()),
                Err(e) => return Err(Error::media(format!("decode {}", self.src.display()), e)),
            }
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::media(
                    format!("transcode {}", self.src.display()),
                    "cancelled",
                ));
            }
            let (w, h) = (f.width(), f.height());
            let scaler = match &mut self.scaler {
                Some(s) => s,
                None => self.scaler.insert(
                    ff::software::scaling::Context::get(
                        f.format(),
                        w,
                        h,
                        ff::format::Pixel::RGB24,
                        w,
                        h,
                        ff::software::scaling::Flags::BILINEAR,
                    )
                    .map_err(|e| {
                        Error::media(format!("YUV→RGB scaler for {}", self.src.display()), e)
                    })?,
                ),
            };
            let mut rgb = ff::frame::Video::empty();
            scaler.run(&f, &mut rgb).map_err(|e| {
                Error::media(format!("convert a frame of {}", self.src.display()), e)
            })?;
            let row = w as usize * 3;
            let stride = rgb.stride(0);
            let data = rgb.data(0);
            let mut px = Vec::with_capacity(row * h as usize);
            for y in 0..h as usize {
                px.extend_from_slice(&data[y * stride..y * stride + row]);
            }
            let frame = VideoFrame::new(w, h, px)?;
            let enc = match &mut self.enc {
                Some(e) => e,
                None => self.enc.insert(EpisodeEncoder::create(
                    self.dst,
                    w,
                    h,
                    self.fps,
                    self.settings,
                )?),
            };
            enc.push(&frame)?;
            self.progress.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Transcoder for FfmpegTranscoder {
    fn transcode(
        &self,
        src: &Path,
        dst: &Path,
        fps: u32,
        settings: &EncoderSettings,
        progress: &AtomicU64,
        cancel: &AtomicBool,
    ) -> Result<u64> {
        reel_media::init();
        settings.validate()?;
        let ctx = |what: &str| format!("{what} ({})", src.display());
        let mut ictx = ff::format::input(&src).map_err(|e| Error::media(ctx("open video"), e))?;
        let ist = ictx
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| Error::media(ctx("transcode"), "no video stream"))?;
        let index = ist.index();
        let mut dec = ff::codec::context::Context::from_parameters(ist.parameters())
            .and_then(|c| c.decoder().video())
            .map_err(|e| Error::media(ctx("open decoder"), e))?;
        let mut sink = Sink {
            dst,
            fps,
            settings,
            enc: None,
            scaler: None,
            progress,
            cancel,
            src,
        };
        for (stream, packet) in ictx.packets() {
            if stream.index() != index {
                continue;
            }
            dec.send_packet(&packet)
                .map_err(|e| Error::media(ctx("decode packet"), e))?;
            sink.take(&mut dec)?;
        }
        dec.send_eof()
            .map_err(|e| Error::media(ctx("flush decoder"), e))?;
        sink.take(&mut dec)?;
        let enc = sink
            .enc
            .take()
            .ok_or_else(|| Error::media(ctx("transcode"), "the video has no frames"))?;
        Ok(enc.finish()?.frames)
    }
}
