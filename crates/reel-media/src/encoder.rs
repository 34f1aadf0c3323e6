//! One camera's episode encoder: RGB24 frames in, an MP4 file (moov at the end) out, with
//! LeRobot's encoder options and the FFmpeg pitfalls of research §5 handled (flags OR-ed in,
//! options validated after `avcodec_open2`, explicit pts, stream time base read after
//! `write_header`, flush order).

use crate::settings::EncoderSettings;
use ff::codec;
use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;
use reel_core::{Error, Result, VideoFrame};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Serializes `avcodec_open2` across threads (see `EpisodeEncoder::create`).
static OPEN_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The finished MP4 of one episode of one camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSegment {
    pub path: PathBuf,
    /// Frames encoded (= packets written).
    pub frames: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// An opened encoder that is flushed and freed under [`OPEN_LOCK`]: SVT-AV1 1.4 hangs forever
/// in `svt_av1_enc_deinit` when a context is closed without having received EOS (an
/// abandoned episode, an error right after opening), and its teardown shares global state
/// with its initialisation.
/// SVT also never answers EOS when it got no picture at all, so an unused encoder is fed one
/// blank frame first (its output is discarded).
struct Flushed {
    enc: std::mem::ManuallyDrop<ff::encoder::video::Encoder>,
    eof_sent: bool,
    frames_sent: u64,
}

impl Drop for Flushed {
    fn drop(&mut self) {
        if !self.eof_sent && self.frames_sent == 0 {
            let mut blank =
                ff::frame::Video::new(self.enc.format(), self.enc.width(), self.enc.height());
            blank.set_pts(Some(0));
            if self.enc.send_frame(&blank).is_err() {
                // The encoder refused input: it never started, closing it is safe.
                self.eof_sent = true;
            }
        }
        if !self.eof_sent && self.enc.send_eof().is_ok() {
            let mut pkt = ff::Packet::empty();
            while self.enc.receive_packet(&mut pkt).is_ok() {}
        }
        let _guard = OPEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: `enc` is dropped exactly once, here, and never used afterwards.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.enc) };
    }
}

/// Encodes RGB24 frames of one camera for one episode into an MP4 file.
/// Dropping it without [`finish`](EpisodeEncoder::finish) abandons the file (no index).
pub struct EpisodeEncoder {
    path: PathBuf,
    octx: ff::format::context::Output,
    enc: Flushed,
    scaler: scaling::Context,
    width: u32,
    height: u32,
    enc_tb: ff::Rational,
    ost_tb: ff::Rational,
    frames: u64,
    packets: u64,
}

// SAFETY: every FFmpeg object inside is owned exclusively by this value and only used
// through `&mut self`; moving them to another thread is fine (the swscale context holds no
// thread-affine state). `Output` and the codec context are already `Send` in ffmpeg-next.
unsafe impl Send for EpisodeEncoder {}

impl std::fmt::Debug for EpisodeEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpisodeEncoder")
            .field("path", &self.path)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("frames", &self.frames)
            .field("packets", &self.packets)
            .finish()
    }
}

fn media(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::media(format!("{what} ({})", path.display()), e)
}

impl EpisodeEncoder {
    /// Opens encoder and muxer. pts run 0, 1, 2, ... in time base 1/fps; the MP4 track time
    /// base becomes 1/(fps·2^k) ≥ 1/10000 (1/15360 at 30 fps) as FFmpeg's mov muxer picks.
    pub fn create(
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
        settings: &EncoderSettings,
    ) -> Result<Self> {
        crate::init();
        if width == 0 || height == 0 || fps == 0 {
            return Err(Error::invalid(format!(
                "encoder for {}: bad geometry {width}x{height} @ {fps} fps",
                path.display()
            )));
        }
        let settings = settings.clone().resolved();
        settings.validate()?;
        let codec = ff::encoder::find_by_name(&settings.vcodec).ok_or_else(|| {
            Error::invalid(format!("unknown video encoder '{}'", settings.vcodec))
        })?;
        let pix = Pixel::from_str(&settings.pix_fmt)
            .map_err(|_| Error::invalid(format!("unknown pixel format '{}'", settings.pix_fmt)))?;

        let mut octx = ff::format::output(&path).map_err(|e| media(path, "create MP4 muxer", e))?;
        let mut enc = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| media(path, "create video encoder", e))?;
        enc.set_width(width);
        enc.set_height(height);
        enc.set_format(pix);
        let enc_tb = ff::Rational::new(1, fps as i32);
        enc.set_time_base(enc_tb);
        enc.set_frame_rate(Some(ff::Rational::new(fps as i32, 1)));
        // OR the flags in: set_flags() replaces the codec defaults (+cgop) otherwise.
        // SAFETY: reading a plain int field of the context we own.
        let cur = unsafe { (*enc.as_ptr()).flags };
        enc.set_flags(
            codec::Flags::from_bits_truncate(cur as std::os::raw::c_uint)
                | codec::Flags::GLOBAL_HEADER
                | codec::Flags::CLOSED_GOP,
        );

        let mut dict = ff::Dictionary::new();
        for (k, v) in settings.codec_options() {
            dict.set(&k, &v);
        }
        // Open ourselves so that options the codec did not consume can be reported.
        // SAFETY: the context and codec are valid; avcodec_open2 takes ownership of the
        // dictionary pointer's contents and hands back the leftovers, which we re-own.
        // Opening is serialized process-wide: SVT-AV1 1.4.1's handle initialisation touches
        // global state and crashes when two cameras open their encoders at the same moment.
        let (res, leftover) = {
            let _open_guard = OPEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            unsafe {
                let mut opts = dict.disown();
                let res = ff::ffi::avcodec_open2(enc.as_mut_ptr(), codec.as_ptr(), &mut opts);
                (res, ff::Dictionary::own(opts))
            }
        };
        if res < 0 {
            return Err(Error::media(
                format!("open {} encoder ({})", settings.vcodec, path.display()),
                ff::Error::from(res),
            ));
        }
        let enc = Flushed {
            enc: std::mem::ManuallyDrop::new(ff::encoder::video::Encoder(enc)),
            eof_sent: false,
            frames_sent: 0,
        };
        let unknown: Vec<String> = leftover.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !unknown.is_empty() {
            return Err(Error::invalid(format!(
                "{} does not know the option(s) {}",
                settings.vcodec,
                unknown.join(", ")
            )));
        }

        {
            let mut ost = octx
                .add_stream(codec)
                .map_err(|e| media(path, "add MP4 stream", e))?;
            ost.set_parameters(&*enc.enc);
            ost.set_time_base(enc_tb);
            // The encoder's codec_tag (0) lets the muxer pick the MP4 sample entry.
            // SAFETY: codecpar is valid after set_parameters.
            unsafe { (*(*ost.as_mut_ptr()).codecpar).codec_tag = 0 };
        }
        octx.write_header()
            .map_err(|e| media(path, "write MP4 header", e))?;
        let ost_tb = octx
            .stream(0)
            .map(|s| s.time_base())
            .ok_or_else(|| media(path, "MP4 stream", "missing after header"))?;

        let scaler = scaling::Context::get(
            Pixel::RGB24,
            width,
            height,
            pix,
            width,
            height,
            scaling::Flags::BILINEAR,
        )
        .map_err(|e| media(path, "create RGB→YUV scaler", e))?;
        Ok(EpisodeEncoder {
            path: path.to_path_buf(),
            octx,
            enc,
            scaler,
            width,
            height,
            enc_tb,
            ost_tb,
            frames: 0,
            packets: 0,
        })
    }

    /// Encodes one RGB24 frame; its size must match the encoder's.
    pub fn push(&mut self, frame: &VideoFrame) -> Result<()> {
        if frame.width != self.width || frame.height != self.height {
            return Err(Error::invalid(format!(
                "frame {}x{} does not match the encoder's {}x{} ({})",
                frame.width,
                frame.height,
                self.width,
                self.height,
                self.path.display()
            )));
        }
        let row = self.width as usize * 3;
        if frame.data.len() != row * self.height as usize {
            return Err(Error::invalid(format!(
                "frame holds {} bytes, {}x{} RGB24 needs {}",
                frame.data.len(),
                self.width,
                self.height,
                row * self.height as usize
            )));
        }
        let mut rgb = ff::frame::Video::new(Pixel::RGB24, self.width, self.height);
        let stride = rgb.stride(0);
        {
            let dst = rgb.data_mut(0);
            for (y, src) in frame.data.chunks_exact(row).enumerate() {
                dst[y * stride..y * stride + row].copy_from_slice(src);
            }
        }
        // A fresh output frame per send (no reuse of a frame the encoder may still hold).
        let mut yuv = ff::frame::Video::empty();
        self.scaler
            .run(&rgb, &mut yuv)
            .map_err(|e| media(&self.path, "convert RGB24", e))?;
        yuv.set_pts(Some(self.frames as i64));
        self.enc
            .enc
            .send_frame(&yuv)
            .map_err(|e| media(&self.path, "send frame to encoder", e))?;
        self.enc.frames_sent += 1;
        self.frames += 1;
        self.drain()
    }

    fn drain(&mut self) -> Result<()> {
        loop {
            let mut pkt = ff::Packet::empty();
            match self.enc.enc.receive_packet(&mut pkt) {
                Ok(()) => {
                    if pkt.duration() <= 0 {
                        pkt.set_duration(1);
                    }
                    pkt.set_stream(0);
                    pkt.rescale_ts(self.enc_tb, self.ost_tb);
                    pkt.write_interleaved(&mut self.octx)
                        .map_err(|e| media(&self.path, "write packet", e))?;
                    self.packets += 1;
                }
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                    return Ok(())
                }
                Err(ff::Error::Eof) => return Ok(()),
                Err(e) => return Err(media(&self.path, "receive packet from encoder", e)),
            }
        }
    }

    /// Frames accepted so far.
    pub fn frames_pushed(&self) -> u64 {
        self.frames
    }

    /// Packets muxed so far (the encoder may hold some frames back until `finish`).
    pub fn packets_written(&self) -> u64 {
        self.packets
    }

    /// Flushes the encoder, writes the MP4 index and closes the file.
    /// An encoder that got no frame is refused (an MP4 without samples cannot be appended).
    pub fn finish(mut self) -> Result<EncodedSegment> {
        if self.frames == 0 {
            return Err(Error::invalid(format!(
                "no frames were pushed to the encoder of {}",
                self.path.display()
            )));
        }
        self.enc
            .enc
            .send_eof()
            .map_err(|e| media(&self.path, "flush encoder", e))?;
        self.enc.eof_sent = true;
        self.drain()?;
        self.octx
            .write_trailer()
            .map_err(|e| media(&self.path, "write MP4 trailer", e))?;
        if self.packets != self.frames {
            return Err(Error::Encoder {
                camera: self.path.display().to_string(),
                msg: format!(
                    "{} frames pushed but {} packets written",
                    self.frames, self.packets
                ),
            });
        }
        let path = self.path.clone();
        let frames = self.frames;
        drop(self); // closes the file; the encoder is freed under the open lock
        let bytes = std::fs::metadata(&path)
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        Ok(EncodedSegment {
            path,
            frames,
            bytes,
        })
    }
}
