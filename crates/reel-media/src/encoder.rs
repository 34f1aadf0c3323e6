//! One camera's episode encoder: RGB24 frames in, an MP4 file (moov at the end) out, with
//! LeRobot's encoder options and the FFmpeg pitfalls of research §5 handled (flags OR-ed in,
//! options validated after `avcodec_open2`, explicit pts, stream time base read after
//! `write_header`, flush order).
//!
//! Crash tolerance: while encoding, packets go to a *fragmented* MP4 beside the target
//! ([`partial_path`]; a fragment per GOP, flushed to disk as soon as it is complete), so a
//! frame is durable once its fragment is written ([`EpisodeEncoder::confirmed_frames`]).
//! `finish` remuxes that file into the standard MP4 (moov at the end) that
//! `reel_dataset::mp4::append_segment` expects; after a crash or hang, [`salvage`] recovers every
//! complete frame of the partial file.

use crate::fault::{hang_forever, Fault};
use crate::settings::EncoderSettings;
use ff::codec;
use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;
use reel_core::{Error, Result, VideoFrame};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// Who encodes: FFmpeg's encoder (libx264, NVENC, ...) or the built-in SVT-AV1 (`libsvtav1`
/// always means the built-in one: crate `reel-svt`, a current SVT-AV1 driven through its C
/// API; its packets are muxed exactly like FFmpeg's).
enum Backend {
    Ffmpeg(Flushed),
    /// Boxed: the encoder is small, but keeps the enum's variants of similar size.
    Svt(Box<reel_svt::SvtEncoder>),
}

/// What [`Backend::receive`] hands back.
enum Received {
    Packet(ff::Packet),
    /// Nothing ready now (while encoding) or the stream is complete (after EOS).
    Nothing,
}

impl Backend {
    fn send(&mut self, yuv: &ff::frame::Video, pts: i64) -> std::result::Result<(), String> {
        match self {
            Backend::Ffmpeg(f) => {
                f.enc.send_frame(yuv).map_err(|e| e.to_string())?;
                f.frames_sent += 1;
                Ok(())
            }
            Backend::Svt(svt) => {
                let pic = reel_svt::Picture {
                    y: yuv.data(0),
                    u: yuv.data(1),
                    v: yuv.data(2),
                    y_stride: yuv.stride(0),
                    u_stride: yuv.stride(1),
                    v_stride: yuv.stride(2),
                };
                svt.send(&pic, pts).map_err(|e| e.to_string())
            }
        }
    }

    fn send_eof(&mut self) -> std::result::Result<(), String> {
        match self {
            Backend::Ffmpeg(f) => {
                f.enc.send_eof().map_err(|e| e.to_string())?;
                f.eof_sent = true;
                Ok(())
            }
            Backend::Svt(svt) => svt.send_eos().map_err(|e| e.to_string()),
        }
    }

    fn receive(&mut self) -> std::result::Result<Received, String> {
        match self {
            Backend::Ffmpeg(f) => {
                let mut pkt = ff::Packet::empty();
                match f.enc.receive_packet(&mut pkt) {
                    Ok(()) => Ok(Received::Packet(pkt)),
                    Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                        Ok(Received::Nothing)
                    }
                    Err(ff::Error::Eof) => Ok(Received::Nothing),
                    Err(e) => Err(e.to_string()),
                }
            }
            Backend::Svt(svt) => match svt.receive().map_err(|e| e.to_string())? {
                None => Ok(Received::Nothing),
                Some(p) => {
                    // What FFmpeg 5.1's libsvtav1 makes of an SVT packet: data, SVT's pts
                    // and dts, the key flag, AV_PKT_FLAG_DISPOSABLE for non-reference
                    // pictures; no duration (set by the caller).
                    let mut pkt = ff::Packet::copy(&p.data);
                    pkt.set_pts(Some(p.pts));
                    pkt.set_dts(Some(p.dts));
                    if p.key {
                        pkt.set_flags(ff::packet::Flags::KEY);
                    }
                    if p.disposable {
                        // SAFETY: a plain int field of the packet we own.
                        unsafe {
                            use ff::packet::Mut;
                            (*pkt.as_mut_ptr()).flags |= ff::ffi::AV_PKT_FLAG_DISPOSABLE
                        };
                    }
                    Ok(Received::Packet(pkt))
                }
            },
        }
    }
}

/// The built-in SVT-AV1 as reel names it where an encoder is shown:
/// "SVT-AV1 v2.3.0, built in".
pub fn builtin_svt_description() -> String {
    format!("SVT-AV1 {}, built in", reel_svt::version())
}

/// Sets the MP4 stream's codec parameters for the built-in SVT-AV1 by hand, as
/// `avcodec_parameters_from_context` would from FFmpeg 5.1's libsvtav1 context: video, AV1,
/// size, yuv420p, the sequence header OBU as extradata (movenc builds `av1C` from it), and
/// the bit rate the wrapper reports (SVT's target bit rate).
fn set_svt_codecpar(
    ost: &mut ff::format::stream::StreamMut<'_>,
    svt: &reel_svt::SvtEncoder,
    header: &[u8],
) -> Result<()> {
    // SAFETY: codecpar belongs to a stream of an output context we own; extradata is
    // allocated with av_mallocz (padding zeroed), as libavformat frees it with av_free.
    unsafe {
        let par = (*ost.as_mut_ptr()).codecpar;
        (*par).codec_type = ff::ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
        (*par).codec_id = ff::ffi::AVCodecID::AV_CODEC_ID_AV1;
        (*par).codec_tag = 0;
        (*par).width = svt.width() as i32;
        (*par).height = svt.height() as i32;
        (*par).format = ff::ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32;
        (*par).bit_rate = i64::from(svt.target_bit_rate());
        let pad = ff::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
        let buf = ff::ffi::av_mallocz(header.len() + pad) as *mut u8;
        if buf.is_null() {
            return Err(Error::media("AV1 sequence header", "out of memory"));
        }
        std::ptr::copy_nonoverlapping(header.as_ptr(), buf, header.len());
        if !(*par).extradata.is_null() {
            ff::ffi::av_freep(std::ptr::addr_of_mut!((*par).extradata).cast());
        }
        (*par).extradata = buf;
        (*par).extradata_size = header.len() as i32;
    }
    Ok(())
}

/// Encodes RGB24 frames of one camera for one episode into an MP4 file.
/// Dropping it without [`finish`](EpisodeEncoder::finish) writes no file at `path` and leaves
/// the fragmented [`partial_path`] on disk for [`salvage`] (the caller removes it).
pub struct EpisodeEncoder {
    path: PathBuf,
    partial: PathBuf,
    fault: Option<Fault>,
    confirmed: Arc<AtomicU64>,
    octx: ff::format::context::Output,
    enc: Backend,
    /// RGB24 → the encoder's format for the formats `rgb_yuv` does not convert (None for
    /// YUV420P, the common case).
    scaler: Option<scaling::Context>,
    /// The encoder's pixel format (`gray12le` for depth streams).
    pix: Pixel,
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

/// Where an encoder for `path` writes its fragmented MP4 while encoding: `<path>.frag` in
/// the same directory. It is removed by a successful `finish`; after a failure it is what
/// [`salvage`] reads.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".frag");
    path.with_file_name(name)
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
        Self::open(path, width, height, fps, settings, false)
    }

    /// [`create`](Self::create) for a depth stream: `settings` may have a one-component
    /// pixel format (`gray12le`); frames go in through [`push_gray12`](Self::push_gray12).
    pub fn create_depth(
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
        settings: &EncoderSettings,
    ) -> Result<Self> {
        Self::open(path, width, height, fps, settings, true)
    }

    fn open(
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
        settings: &EncoderSettings,
        depth: bool,
    ) -> Result<Self> {
        crate::init();
        if width == 0 || height == 0 || fps == 0 {
            return Err(Error::invalid(format!(
                "encoder for {}: bad geometry {width}x{height} @ {fps} fps",
                path.display()
            )));
        }
        let settings = settings.clone().resolved();
        if depth {
            settings.validate_depth()?;
        } else {
            settings.validate()?;
        }
        if settings.fault == Some(Fault::HangOnOpen) {
            // Outside OPEN_LOCK: a hung open must not block the other cameras' encoders.
            hang_forever("EpisodeEncoder::create");
        }
        let pix = Pixel::from_str(&settings.pix_fmt)
            .map_err(|_| Error::invalid(format!("unknown pixel format '{}'", settings.pix_fmt)))?;

        let partial = partial_path(path);
        let mut octx = ff::format::output_as(&partial, "mp4")
            .map_err(|e| media(&partial, "create MP4 muxer", e))?;
        let enc_tb = ff::Rational::new(1, fps as i32);
        let enc = if settings.is_builtin_svt() {
            Self::open_svt(path, width, height, fps, &settings, &mut octx, enc_tb)?
        } else {
            Self::open_ffmpeg(path, width, height, fps, &settings, pix, &mut octx, enc_tb)?
        };
        let mut mux_opts = ff::Dictionary::new();
        mux_opts.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
        let unused = octx
            .write_header_with(mux_opts)
            .map_err(|e| media(&partial, "write MP4 header", e))?
            .iter()
            .next()
            .is_some();
        if unused {
            return Err(media(&partial, "write MP4 header", "movflags not accepted"));
        }
        flush_io(&mut octx);
        let ost_tb = octx
            .stream(0)
            .map(|s| s.time_base())
            .ok_or_else(|| media(path, "MP4 stream", "missing after header"))?;

        let scaler = if pix == Pixel::YUV420P {
            None
        } else {
            Some(
                scaling::Context::get(
                    Pixel::RGB24,
                    width,
                    height,
                    pix,
                    width,
                    height,
                    scaling::Flags::BILINEAR,
                )
                .map_err(|e| media(path, "create RGB→YUV scaler", e))?,
            )
        };
        Ok(EpisodeEncoder {
            path: path.to_path_buf(),
            partial,
            fault: settings.fault,
            confirmed: Arc::new(AtomicU64::new(0)),
            octx,
            enc,
            scaler,
            pix,
            width,
            height,
            enc_tb,
            ost_tb,
            frames: 0,
            packets: 0,
        })
    }

    /// Opens an FFmpeg encoder and adds its stream to `octx`.
    #[allow(clippy::too_many_arguments)]
    fn open_ffmpeg(
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
        settings: &EncoderSettings,
        pix: Pixel,
        octx: &mut ff::format::context::Output,
        enc_tb: ff::Rational,
    ) -> Result<Backend> {
        let codec = ff::encoder::find_by_name(&settings.vcodec).ok_or_else(|| {
            Error::invalid(format!("unknown video encoder '{}'", settings.vcodec))
        })?;
        let mut enc = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| media(path, "create video encoder", e))?;
        enc.set_width(width);
        enc.set_height(height);
        enc.set_format(pix);
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
        // Opening is serialized process-wide: SVT-AV1 1.4.1's handle initialisation touches
        // global state and crashes when two cameras open their encoders at the same moment.
        let policy = reel_core::sched::current_policy();
        let (res, leftover) = {
            let _open_guard = OPEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            // SAFETY: the context and codec are valid; avcodec_open2 takes ownership of the
            // dictionary pointer's contents and hands back the leftovers, which we re-own.
            unsafe {
                let mut opts = dict.disown();
                let res = ff::ffi::avcodec_open2(enc.as_mut_ptr(), codec.as_ptr(), &mut opts);
                (res, ff::Dictionary::own(opts))
            }
        };
        // SVT-AV1 1.4.1 run as root starts its ~85 worker threads with SCHED_FIFO 99; they
        // would preempt the control loop (it makes this opening thread real-time as well).
        // Give them all this thread's scheduling from before the open, before any frame
        // reaches them.
        reel_core::sched::demote_realtime_threads(policy);
        if res < 0 {
            return Err(Error::media(
                format!("open {} encoder ({})", settings.vcodec, path.display()),
                ff::Error::from(res),
            ));
        }
        let flushed = Flushed {
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
            ost.set_parameters(&*flushed.enc);
            ost.set_time_base(enc_tb);
            // The encoder's codec_tag (0) lets the muxer pick the MP4 sample entry.
            // SAFETY: codecpar is valid after set_parameters.
            unsafe { (*(*ost.as_mut_ptr()).codecpar).codec_tag = 0 };
        }
        Ok(Backend::Ffmpeg(flushed))
    }

    /// Opens the built-in SVT-AV1 with the settings mapped as FFmpeg 5.1's libsvtav1 maps
    /// them, and adds its stream to `octx` with codec parameters set by hand.
    fn open_svt(
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
        settings: &EncoderSettings,
        octx: &mut ff::format::context::Output,
        enc_tb: ff::Rational,
    ) -> Result<Backend> {
        let params = settings.svt_params()?;
        let policy = reel_core::sched::current_policy();
        let opened = {
            let _open_guard = OPEN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            reel_svt::SvtEncoder::open(width, height, fps, &params)
        };
        // SVT run as root starts its worker threads with SCHED_FIFO 99; they would preempt
        // the control loop. Give them this thread's scheduling from before the open.
        reel_core::sched::demote_realtime_threads(policy);
        let svt = opened.map_err(|e| e.context(format!("open libsvtav1 ({})", path.display())))?;
        let header = svt
            .sequence_header()
            .map_err(|e| e.context(format!("libsvtav1 ({})", path.display())))?;
        {
            let mut ost = octx
                .add_stream(ff::encoder::find(ff::codec::Id::None))
                .map_err(|e| media(path, "add MP4 stream", e))?;
            set_svt_codecpar(&mut ost, &svt, &header)?;
            ost.set_time_base(enc_tb);
        }
        Ok(Backend::Svt(Box::new(svt)))
    }

    /// The injected fault, if any, for the frame about to be pushed.
    fn apply_fault(&self) -> Result<()> {
        match self.fault {
            Some(Fault::HangAfter(n)) if self.frames >= n => hang_forever("EpisodeEncoder::push"),
            Some(Fault::ErrorAfter(n)) if self.frames >= n => {
                return Err(Error::Encoder {
                    camera: self.path.display().to_string(),
                    msg: format!(
                        "injected fault error-after={n}: frame {} refused",
                        self.frames
                    ),
                })
            }
            Some(Fault::Slow(ms)) => std::thread::sleep(std::time::Duration::from_millis(ms)),
            _ => {}
        }
        Ok(())
    }

    /// Encodes one frame of 12-bit depth codes (`width * height` values, row-major, each at
    /// most [`crate::depth::DEPTH_QMAX`]) into a `gray12le` encoder, without conversion.
    pub fn push_gray12(&mut self, codes: &[u16]) -> Result<()> {
        self.apply_fault()?;
        if self.pix != Pixel::GRAY12LE {
            return Err(Error::invalid(format!(
                "depth codes need a gray12le encoder, this one encodes {:?} ({})",
                self.pix,
                self.path.display()
            )));
        }
        let w = self.width as usize;
        if codes.len() != w * self.height as usize {
            return Err(Error::invalid(format!(
                "depth frame holds {} values, {}x{} needs {} ({})",
                codes.len(),
                self.width,
                self.height,
                w * self.height as usize,
                self.path.display()
            )));
        }
        if let Some(bad) = codes.iter().find(|&&c| c > crate::depth::DEPTH_QMAX) {
            return Err(Error::invalid(format!(
                "depth code {bad} exceeds 12 bits ({})",
                self.path.display()
            )));
        }
        let mut gray = ff::frame::Video::new(Pixel::GRAY12LE, self.width, self.height);
        let stride = gray.stride(0);
        {
            let dst = gray.data_mut(0);
            for (y, row) in codes.chunks_exact(w).enumerate() {
                let line = &mut dst[y * stride..y * stride + 2 * w];
                for (px, c) in line.chunks_exact_mut(2).zip(row) {
                    px.copy_from_slice(&c.to_le_bytes());
                }
            }
        }
        self.send(gray)
    }

    /// Encodes one RGB24 frame; its size must match the encoder's.
    pub fn push(&mut self, frame: &VideoFrame) -> Result<()> {
        self.apply_fault()?;
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
        // A fresh output frame per send (no reuse of a frame the encoder may still hold).
        let Some(scaler) = self.scaler.as_mut() else {
            // YUV420P, the common case, converted without swscale (see `rgb_yuv`).
            let yuv = crate::rgb_yuv::rgb24_to_yuv420p(frame)
                .map_err(|e| media(&self.path, "convert RGB24", e))?;
            return self.send(yuv);
        };
        let mut rgb = ff::frame::Video::new(Pixel::RGB24, self.width, self.height);
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
            .map_err(|e| media(&self.path, "convert RGB24", e))?;
        self.send(yuv)
    }

    /// Hands one converted frame to the encoder and writes what comes out.
    fn send(&mut self, mut yuv: ff::frame::Video) -> Result<()> {
        yuv.set_pts(Some(self.frames as i64));
        self.enc
            .send(&yuv, self.frames as i64)
            .map_err(|e| media(&self.path, "send frame to encoder", e))?;
        self.frames += 1;
        self.drain()
    }

    fn drain(&mut self) -> Result<()> {
        loop {
            match self
                .enc
                .receive()
                .map_err(|e| media(&self.path, "receive packet from encoder", e))?
            {
                Received::Packet(mut pkt) => {
                    if pkt.duration() <= 0 {
                        pkt.set_duration(1);
                    }
                    pkt.set_stream(0);
                    pkt.rescale_ts(self.enc_tb, self.ost_tb);
                    let key = pkt.is_key();
                    pkt.write_interleaved(&mut self.octx)
                        .map_err(|e| media(&self.partial, "write packet", e))?;
                    if key && self.packets > 0 {
                        // frag_keyframe: the muxer wrote the fragment holding every earlier
                        // packet before queueing this keyframe; push it to the OS.
                        flush_io(&mut self.octx);
                        self.confirmed.store(self.packets, Ordering::Release);
                    }
                    self.packets += 1;
                }
                Received::Nothing => return Ok(()),
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

    /// Frames 0..k whose packets are in complete fragments of the partial file on disk (what
    /// [`salvage`] would recover now). Shared: readable from another thread while this
    /// encoder is stuck inside a call; equals the frame count after a successful `finish`.
    pub fn confirmed_frames(&self) -> Arc<AtomicU64> {
        self.confirmed.clone()
    }

    /// The fragmented MP4 this encoder is writing ([`partial_path`] of its target).
    pub fn partial_path(&self) -> &Path {
        &self.partial
    }

    /// Flushes the encoder, writes the MP4 index and closes the file.
    /// An encoder that got no frame is refused (an MP4 without samples cannot be appended).
    pub fn finish(mut self) -> Result<EncodedSegment> {
        if self.fault == Some(Fault::NoFlush) {
            hang_forever("EpisodeEncoder::finish");
        }
        if self.frames == 0 {
            return Err(Error::invalid(format!(
                "no frames were pushed to the encoder of {}",
                self.path.display()
            )));
        }
        self.enc
            .send_eof()
            .map_err(|e| media(&self.path, "flush encoder", e))?;
        self.drain()?;
        self.octx
            .write_trailer()
            .map_err(|e| media(&self.partial, "write MP4 trailer", e))?;
        flush_io(&mut self.octx);
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
        let partial = self.partial.clone();
        let frames = self.frames;
        let confirmed = self.confirmed.clone();
        drop(self); // closes the file; the encoder is freed under the open lock
        let remuxed = remux(&partial, &path)?;
        if remuxed != frames {
            return Err(Error::Encoder {
                camera: path.display().to_string(),
                msg: format!("{frames} frames encoded but {remuxed} remuxed"),
            });
        }
        confirmed.store(frames, Ordering::Release);
        std::fs::remove_file(&partial).map_err(|e| Error::io("remove", &partial, e))?;
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

/// Pushes the muxer's AVIO buffer to the OS so that written fragments are in the file.
fn flush_io(octx: &mut ff::format::context::Output) {
    // SAFETY: `pb` is the output's open AVIOContext (or null, checked) owned by `octx`.
    unsafe {
        let pb = (*octx.as_mut_ptr()).pb;
        if !pb.is_null() {
            ff::ffi::avio_flush(pb);
        }
    }
}

/// Decode delay, in frames, of LeRobot's own files of codec `id` (its default encoder
/// settings: libx264 signals one frame of B-frame delay, libx265 two; AV1 none). reel's
/// encoders run without frame reordering, so their timestamps have no delay; giving their
/// files the same layout (dts = pts − delay, written by the MP4 muxer as a constant `ctts`
/// and an edit list) lets LeRobot's `aggregate_datasets` concatenate reel's and LeRobot's files
/// in either order: its concat demuxer offsets the second file by the first one's duration,
/// and a file whose delay is smaller than the next one's would repeat a decode timestamp.
pub fn lerobot_decode_delay(id: ff::codec::Id) -> i64 {
    match id {
        ff::codec::Id::H264 => 1,
        ff::codec::Id::HEVC => 2,
        _ => 0,
    }
}

/// Copies every packet of `src`'s first video stream into a standard MP4 at `dst` (moov at
/// the end), bitstream unchanged, presentation timestamps unchanged; decode timestamps are
/// shifted so the file has LeRobot's decode delay for its codec ([`lerobot_decode_delay`]).
/// Returns the packets written.
fn remux(src: &Path, dst: &Path) -> Result<u64> {
    crate::init();
    let mut ictx = ff::format::input(&src).map_err(|e| media(src, "open fragmented MP4", e))?;
    let ist = ictx
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| media(src, "remux", "no video stream"))?;
    let index = ist.index();
    let ist_tb = ist.time_base();
    let ist_rate = if ist.rate().numerator() > 0 {
        ist.rate()
    } else {
        ist.avg_frame_rate()
    };
    let params = ist.parameters();
    let codec_id = params.id();
    let mut octx = ff::format::output_as(&dst, "mp4").map_err(|e| media(dst, "create MP4", e))?;
    {
        let mut ost = octx
            .add_stream(ff::encoder::find(ff::codec::Id::None))
            .map_err(|e| media(dst, "add MP4 stream", e))?;
        ost.set_parameters(params);
        ost.set_time_base(ist_tb);
        // SAFETY: codecpar is valid after set_parameters.
        unsafe { (*(*ost.as_mut_ptr()).codecpar).codec_tag = 0 };
    }
    octx.write_header()
        .map_err(|e| media(dst, "write MP4 header", e))?;
    let ost_tb = octx
        .stream(0)
        .map(|s| s.time_base())
        .ok_or_else(|| media(dst, "MP4 stream", "missing after header"))?;
    // The AV1 parser libavformat applies on read drops packet durations, and the MP4 muxer
    // needs the last one: hold one packet back and give it the gap to the next dts (the
    // last packet repeats the previous gap, or one frame of the stream's rate).
    let rate = ist_rate;
    let frame_ticks = if rate.numerator() > 0 && rate.denominator() > 0 {
        (i64::from(ist_tb.denominator()) * i64::from(rate.denominator()))
            / (i64::from(ist_tb.numerator()) * i64::from(rate.numerator())).max(1)
    } else {
        0
    };
    let mut held: Option<ff::Packet> = None;
    let mut last_gap = frame_ticks;
    let mut n = 0u64;
    // dts shift giving the file LeRobot's decode delay (less whatever delay the stream has).
    let want_delay = lerobot_decode_delay(codec_id) * frame_ticks;
    let mut dts_shift: Option<i64> = None;
    // The first packet in decode order is frame 0 (an intra frame); the fragmented file may
    // carry it later than 0 when the encoder reorders (x265 with B-frames: its timeline starts
    // at the decode delay), which the MP4 muxer would turn into an empty edit. Frame 0 is at 0.
    let mut pts_origin: Option<i64> = None;
    let mut write = |mut pkt: ff::Packet, gap: i64, octx: &mut ff::format::context::Output| {
        if gap > 0 {
            pkt.set_duration(gap);
        }
        if let (Some(pts), Some(dts)) = (pkt.pts(), pkt.dts()) {
            let origin = *pts_origin.get_or_insert(pts);
            let (pts, dts) = (pts - origin, dts - origin);
            let shift = *dts_shift.get_or_insert_with(|| (want_delay - (pts - dts)).max(0));
            pkt.set_pts(Some(pts));
            pkt.set_dts(Some(dts - shift));
        }
        pkt.set_stream(0);
        pkt.set_position(-1);
        pkt.rescale_ts(ist_tb, ost_tb);
        pkt.write_interleaved(octx)
            .map_err(|e| media(dst, "write packet", e))
    };
    loop {
        let mut pkt = ff::Packet::empty();
        match pkt.read(&mut ictx) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(e) => return Err(media(src, "read packet", e)),
        }
        if pkt.stream() != index {
            continue;
        }
        if let Some(prev) = held.take() {
            let gap = match (prev.dts(), pkt.dts()) {
                (Some(a), Some(b)) if b > a => b - a,
                _ => prev.duration(),
            };
            if gap > 0 {
                last_gap = gap;
            }
            write(prev, gap, &mut octx)?;
            n += 1;
        }
        held = Some(pkt);
    }
    if let Some(prev) = held.take() {
        let gap = if prev.duration() > 0 {
            prev.duration()
        } else {
            last_gap
        };
        write(prev, gap, &mut octx)?;
        n += 1;
    }
    octx.write_trailer()
        .map_err(|e| media(dst, "write MP4 trailer", e))?;
    Ok(n)
}

/// Box header at `pos` of `data`: (type, total size), or None when it does not fit.
fn box_at(data: &[u8], pos: usize) -> Option<([u8; 4], usize)> {
    let head = data.get(pos..pos + 8)?;
    let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let kind = [head[4], head[5], head[6], head[7]];
    let size = match size32 {
        0 => data.len() - pos,
        1 => {
            let l = data.get(pos + 8..pos + 16)?;
            let mut b = [0u8; 8];
            b.copy_from_slice(l);
            usize::try_from(u64::from_be_bytes(b)).ok()?
        }
        n => n,
    };
    if size < 8 || pos.checked_add(size)? > data.len() {
        return None;
    }
    Some((kind, size))
}

/// Recovers every complete frame of a fragmented MP4 left by a failed or hung
/// [`EpisodeEncoder`] (its [`partial_path`]) into a standard MP4 at `out`. Only whole
/// `moof`+`mdat` pairs count; a torn trailing fragment is dropped. Returns the frames in
/// `out`; 0 means nothing was recoverable and no file is written. `partial` is not changed
/// (the encoder that owns it may still be alive).
pub fn salvage(partial: &Path, out: &Path) -> Result<u64> {
    let data = std::fs::read(partial).map_err(|e| Error::io("read", partial, e))?;
    let mut pos = 0usize;
    let mut good = 0usize; // end of the last complete fragment (or of moov)
    let mut have_moov = false;
    let mut fragments = 0u64;
    while let Some((kind, size)) = box_at(&data, pos) {
        match &kind {
            b"moov" => {
                have_moov = true;
                good = pos + size;
            }
            b"moof" => {
                let next = pos + size;
                match box_at(&data, next) {
                    Some((k, msize)) if &k == b"mdat" => {
                        pos = next + msize;
                        good = pos;
                        fragments += 1;
                        continue;
                    }
                    _ => break,
                }
            }
            b"ftyp" | b"free" | b"skip" | b"styp" | b"sidx" if !have_moov => {
                good = pos + size;
            }
            _ => {}
        }
        pos += size;
    }
    if !have_moov {
        return Err(Error::corrupt(
            partial,
            "no complete moov box: not a fragmented MP4 written by EpisodeEncoder",
        ));
    }
    if fragments == 0 {
        return Ok(0);
    }
    let trimmed = partial_path(out);
    std::fs::write(&trimmed, &data[..good]).map_err(|e| Error::io("write", &trimmed, e))?;
    let res = remux(&trimmed, out);
    let _ = std::fs::remove_file(&trimmed);
    match res {
        Ok(0) => {
            let _ = std::fs::remove_file(out);
            Ok(0)
        }
        Ok(n) => Ok(n),
        Err(e) => {
            let _ = std::fs::remove_file(out);
            Err(e)
        }
    }
}
