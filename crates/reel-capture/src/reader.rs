//! The reader thread of one camera: one code path for every input (libavformat/libavdevice
//! demux, decode, swscale to RGB24 at the spec size), then pacing, then publication into the
//! latest-frame slot.

use std::ffi::CString;
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Once};

use ffmpeg::ffi;
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::{Dictionary, Packet};
use ffmpeg_next as ffmpeg;
use reel_core::{monotonic_ns, VideoFrame};

use crate::camera::Shared;
use crate::negotiate::{choose_input_format, fourcc_name, v4l2_formats, Negotiated, RateMeter};
use crate::pacing::{Decision, Pacer};
use crate::spec::{CameraSpec, InputKind};

/// How long to back off when a non-blocking input has nothing yet (no busy loop).
const AGAIN_BACKOFF_NS: u64 = 5_000_000;

/// Registers libavdevice (lavfi, v4l2) once per process.
fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Err(e) = ffmpeg::init() {
            tracing::warn!("FFmpeg init: {e}");
        }
    });
}

/// Marks the camera finished even if the reader unwinds, so waiters never hang.
struct FinishGuard<'a> {
    shared: &'a Shared,
    error: Option<String>,
}

impl Drop for FinishGuard<'_> {
    fn drop(&mut self) {
        let error = self
            .error
            .take()
            .or_else(|| std::thread::panicking().then(|| "reader thread panicked".to_string()));
        self.shared.finish(error);
    }
}

/// Thread body: runs until stop, end of input or a terminal error (stored in the slot).
pub(crate) fn run(spec: &CameraSpec, shared: &Arc<Shared>) {
    let mut guard = FinishGuard {
        shared,
        error: None,
    };
    if let Err(msg) = Reader::open(spec, shared).and_then(|mut r| r.read_loop()) {
        if !shared.stopping() {
            tracing::warn!(camera = %spec.name, "{msg}");
            guard.error = Some(msg);
        }
    }
}

/// Opens `url` with an explicit input format (or probing), options and an interrupt callback
/// that aborts blocking I/O when the camera is stopped.
fn open_input(
    url: &str,
    format: Option<&str>,
    options: Dictionary,
    shared: &Arc<Shared>,
) -> Result<ffmpeg::format::context::Input, String> {
    let c_url = CString::new(url).map_err(|_| "input contains a NUL byte".to_string())?;
    let ifmt = match format {
        Some(name) => {
            let c_name =
                CString::new(name).map_err(|_| "format name contains a NUL byte".to_string())?;
            // SAFETY: av_find_input_format reads a NUL-terminated string and returns a static
            // descriptor or null.
            let f = unsafe { ffi::av_find_input_format(c_name.as_ptr()) };
            if f.is_null() {
                return Err(format!(
                    "this FFmpeg build has no '{name}' input (libavdevice missing?)"
                ));
            }
            f
        }
        None => ptr::null(),
    };
    let stop = Arc::clone(&shared.stop);
    let interrupt = ffmpeg::util::interrupt::new(Box::new(move || stop.load(Ordering::Acquire)));
    // SAFETY: standard avformat open sequence. On avformat_open_input failure FFmpeg frees the
    // context itself; on find_stream_info failure we close it. On success the context and the
    // interrupt closure are owned by the returned Input (the guard outlives the context).
    unsafe {
        let mut ps = ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err("out of memory allocating the format context".into());
        }
        (*ps).interrupt_callback = interrupt.interrupt;
        let mut opts = options.disown();
        let res = ffi::avformat_open_input(&mut ps, c_url.as_ptr(), ifmt as _, &mut opts);
        let leftover = Dictionary::own(opts);
        if res < 0 {
            return Err(ffmpeg::Error::from(res).to_string());
        }
        for (k, v) in leftover.iter() {
            tracing::warn!("input {url}: option {k}={v} not recognised by the input format");
        }
        let r = ffi::avformat_find_stream_info(ps, ptr::null_mut());
        if r < 0 {
            ffi::avformat_close_input(&mut ps);
            return Err(format!(
                "cannot read stream info: {}",
                ffmpeg::Error::from(r)
            ));
        }
        Ok(ffmpeg::format::context::Input::wrap_with_interrupt(
            ps,
            interrupt.guard,
        ))
    }
}

/// Everything the thread owns while reading.
struct Reader<'a> {
    spec: &'a CameraSpec,
    kind: InputKind,
    shared: &'a Arc<Shared>,
    input: ffmpeg::format::context::Input,
    stream_index: usize,
    time_base: f64,
    decoder: ffmpeg::decoder::Video,
    scaler: Option<(scaling::Context, (Pixel, u32, u32))>,
    /// The spec's filter chain, built for the decoded frames' format and size.
    filter: Option<(ffmpeg::filter::Graph, (Pixel, u32, u32))>,
    decoded: ffmpeg::frame::Video,
    rgb: ffmpeg::frame::Video,
    pacer: Pacer,
    seq: u64,
    /// Frames decoded in the current file pass (to refuse looping a file with none).
    decoded_in_pass: u64,
    /// The stream's format as decoded (`MJPG`, `YUYV422`, ...).
    format: String,
    meter: RateMeter,
    /// Fault injection: fail this long after the handle's first read.
    fail_after_ns: Option<u64>,
}

impl<'a> Reader<'a> {
    fn open(spec: &'a CameraSpec, shared: &'a Arc<Shared>) -> Result<Self, String> {
        init_ffmpeg();
        let start_ns = monotonic_ns();
        let kind = spec.kind();
        let what = kind.describe();
        let mut opts = Dictionary::new();
        let (url, format) = match &kind {
            InputKind::Lavfi { graph } => (spec.lavfi_graph(graph), Some("lavfi")),
            InputKind::V4l2 { device } => {
                opts.set("video_size", &format!("{}x{}", spec.width, spec.height));
                opts.set("framerate", &spec.fps.to_string());
                let offered = match v4l2_formats(device) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::debug!(camera = %spec.name, "{e}");
                        Vec::new()
                    }
                };
                if !offered.is_empty() {
                    let names: Vec<String> = offered.iter().map(|&f| fourcc_name(f)).collect();
                    tracing::info!(camera = %spec.name, "{device} offers {}", names.join(", "));
                }
                if let Some(f) = choose_input_format(&offered, spec.input_format.as_deref()) {
                    opts.set("input_format", &f);
                } else if !offered.is_empty() {
                    tracing::warn!(camera = %spec.name, "{device} offers no MJPG: the driver's default format is used (YUYV needs ~20x the USB bandwidth)");
                }
                (device.clone(), Some("v4l2"))
            }
            InputKind::File { path } => (path.clone(), None),
        };
        let input = open_input(&url, format, opts, shared)
            .map_err(|e| format!("cannot open {what}: {e}"))?;
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or_else(|| format!("{what} has no video stream"))?;
        let stream_index = stream.index();
        let tb = stream.time_base();
        let time_base = if tb.denominator() != 0 {
            f64::from(tb.numerator()) / f64::from(tb.denominator())
        } else {
            0.0
        };
        let decoder = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
            .and_then(|c| c.decoder().video())
            .map_err(|e| format!("{what}: cannot open a decoder for its video stream: {e}"))?;
        let format = match decoder.id() {
            ffmpeg::codec::Id::MJPEG => "MJPG".to_string(),
            ffmpeg::codec::Id::RAWVIDEO => format!("{:?}", decoder.format()).to_uppercase(),
            other => format!("{other:?} ({:?})", decoder.format()),
        };
        let rate = stream.avg_frame_rate();
        let rate = if rate.denominator() != 0 && rate.numerator() > 0 {
            format!(" @ {:.2} fps", f64::from(rate))
        } else {
            String::new()
        };
        let opened = format!(
            "{} {} {}x{}{rate}",
            decoder.id().name(),
            decoder
                .format()
                .descriptor()
                .map(|d| d.name())
                .unwrap_or("?"),
            decoder.width(),
            decoder.height()
        );
        shared.lock().format = Some(opened);
        let pacer = Pacer::new(
            kind.paced(),
            start_ns,
            spec.fps,
            spec.deliver_fps,
            spec.stall
                .map(|(at, len)| (at.as_nanos() as u64, len.as_nanos() as u64)),
        );
        Ok(Reader {
            spec,
            kind,
            shared,
            input,
            stream_index,
            time_base,
            decoder,
            scaler: None,
            filter: None,
            decoded: ffmpeg::frame::Video::empty(),
            rgb: ffmpeg::frame::Video::empty(),
            pacer,
            seq: 0,
            decoded_in_pass: 0,
            format,
            meter: RateMeter::default(),
            fail_after_ns: spec.fail_after.map(|d| d.as_nanos() as u64),
        })
    }

    /// Demux, decode and publish until stop or a terminal condition (returned as the message).
    fn read_loop(&mut self) -> Result<(), String> {
        let what = self.kind.describe();
        loop {
            if self.shared.stopping() {
                return Ok(());
            }
            if self.fail_after_ns.is_some_and(|after| {
                let first = self.shared.first_read_ns.load(Ordering::Acquire);
                first != 0 && monotonic_ns() >= first + after
            }) {
                return Err(format!(
                    "{what}: simulated device error (the camera was unplugged)"
                ));
            }
            // A fresh packet per read: av_read_frame does not release the buffer a reused
            // packet still references, which leaked one whole frame per read.
            let mut packet = Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    if let Err(e) = self.decoder.send_packet(&packet) {
                        tracing::debug!(camera = %self.spec.name, "decode error: {e}");
                        self.shared.count_error();
                        continue;
                    }
                    if !self.drain()? {
                        return Ok(());
                    }
                }
                Err(ffmpeg::Error::Eof) => {
                    // Flush the frames the decoder still holds (B-frame delay).
                    if self.decoder.send_eof().is_ok() && !self.drain()? {
                        return Ok(());
                    }
                    match &self.kind {
                        InputKind::File { .. } if self.spec.loop_file => {
                            if self.decoded_in_pass == 0 {
                                return Err(format!(
                                    "{what}: end of file without any decodable frame"
                                ));
                            }
                            self.input
                                .seek(0, ..)
                                .map_err(|e| format!("{what}: cannot seek back to loop: {e}"))?;
                            self.decoder.flush();
                            self.pacer.restart_segment();
                            self.decoded_in_pass = 0;
                        }
                        _ => return Err(format!("{what}: end of file after {} frames", self.seq)),
                    }
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    if !self.shared.sleep_until(monotonic_ns() + AGAIN_BACKOFF_NS) {
                        return Ok(());
                    }
                }
                Err(ffmpeg::Error::InvalidData) => {
                    // A corrupt packet: the demuxer resyncs past it.
                    self.shared.count_error();
                }
                Err(e) => {
                    if self.shared.stopping() {
                        return Ok(());
                    }
                    return Err(format!("{what}: read failed: {e}"));
                }
            }
        }
    }

    /// Receives every frame the decoder has ready; returns false when stopping.
    fn drain(&mut self) -> Result<bool, String> {
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    self.decoded_in_pass += 1;
                    let go_on = if self.spec.filter.is_some() {
                        self.filter_and_deliver()?
                    } else {
                        self.deliver()?
                    };
                    if !go_on {
                        return Ok(false);
                    }
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(true)
                }
                Err(ffmpeg::Error::Eof) => return Ok(true),
                Err(e) => {
                    tracing::debug!(camera = %self.spec.name, "decode error: {e}");
                    self.shared.count_error();
                    return Ok(true);
                }
            }
        }
    }

    /// Runs the decoded frame through the spec's filter chain and delivers what comes out;
    /// returns false when stopping.
    fn filter_and_deliver(&mut self) -> Result<bool, String> {
        let src = (
            self.decoded.format(),
            self.decoded.width(),
            self.decoded.height(),
        );
        if self.filter.as_ref().is_none_or(|(_, k)| *k != src) {
            let graph = self.build_filter(src)?;
            self.filter = Some((graph, src));
        }
        let Some((graph, _)) = self.filter.as_mut() else {
            return Err("no filter graph".into());
        };
        let mut input = graph
            .get("in")
            .ok_or_else(|| "the filter graph lost its input".to_string())?;
        input
            .source()
            .add(&self.decoded)
            .map_err(|e| format!("filter: {e}"))?;
        loop {
            let Some((graph, _)) = self.filter.as_mut() else {
                return Err("no filter graph".into());
            };
            let mut out = graph
                .get("out")
                .ok_or_else(|| "the filter graph lost its output".to_string())?;
            let mut filtered = ffmpeg::frame::Video::empty();
            match out.sink().frame(&mut filtered) {
                Ok(()) => {
                    self.decoded = filtered;
                    if !self.deliver()? {
                        return Ok(false);
                    }
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(true)
                }
                Err(ffmpeg::Error::Eof) => return Ok(true),
                Err(e) => return Err(format!("filter: {e}")),
            }
        }
    }

    /// `buffer → <spec filter> → buffersink` for frames of `src` (format, width, height) in
    /// the stream's time base (the filters used here keep timestamps as they are).
    fn build_filter(&self, src: (Pixel, u32, u32)) -> Result<ffmpeg::filter::Graph, String> {
        let spec = self.spec.filter.clone().unwrap_or_default();
        let bad = |e: ffmpeg::Error| format!("filter '{spec}': {e}");
        let tb = self
            .input
            .stream(self.stream_index)
            .map(|s| s.time_base())
            .filter(|t| t.numerator() > 0 && t.denominator() > 0)
            .unwrap_or(ffmpeg::Rational::new(1, self.spec.fps as i32));
        let pix: ffi::AVPixelFormat = src.0.into();
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect=1/1",
            src.1,
            src.2,
            pix as i32,
            tb.numerator(),
            tb.denominator()
        );
        let mut graph = ffmpeg::filter::Graph::new();
        let buffer = ffmpeg::filter::find("buffer").ok_or("FFmpeg has no 'buffer' filter")?;
        let sink = ffmpeg::filter::find("buffersink").ok_or("FFmpeg has no 'buffersink' filter")?;
        graph.add(&buffer, "in", &args).map_err(bad)?;
        graph.add(&sink, "out", "").map_err(bad)?;
        graph
            .output("in", 0)
            .and_then(|p| p.input("out", 0))
            .and_then(|p| p.parse(&spec))
            .map_err(bad)?;
        graph.validate().map_err(bad)?;
        Ok(graph)
    }

    /// Paces, converts and publishes the decoded frame; returns false when stopping.
    fn deliver(&mut self) -> Result<bool, String> {
        let pts = self
            .decoded
            .timestamp()
            .or(self.decoded.pts())
            .map(|p| p as f64 * self.time_base);
        let due = match self.pacer.schedule(pts, monotonic_ns()) {
            Decision::Drop => return Ok(true),
            Decision::At(t) => t,
        };
        // Convert before waiting, so the frame is ready the moment it is due.
        let data = match self.convert() {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(camera = %self.spec.name, "conversion error: {e}");
                self.shared.count_error();
                return Ok(true);
            }
        };
        if !self.shared.sleep_until(due) {
            return Ok(false);
        }
        let frame = VideoFrame {
            width: self.spec.width,
            height: self.spec.height,
            data,
            captured_ns: monotonic_ns(),
            seq: self.seq,
        };
        self.seq += 1;
        let t = frame.captured_ns;
        self.shared.publish(Arc::new(frame));
        if let Some(fps) = self.meter.frame(t) {
            self.report_rate(fps);
        }
        Ok(true)
    }

    /// Says what the camera delivers, once, after its first second (a warning when the rate
    /// is below 90 % of the one asked for).
    fn report_rate(&mut self, fps: f64) {
        let n = Negotiated {
            format: self.format.clone(),
            width: self.decoder.width(),
            height: self.decoder.height(),
            measured_fps: fps,
            requested_fps: self.spec.fps,
            below_rate: fps < 0.9 * f64::from(self.spec.fps),
        };
        let line = n.line(&self.spec.name, &self.kind.describe());
        if n.below_rate {
            tracing::warn!("{line}: below the requested rate (on a V4L2 device: USB bandwidth with YUYV, auto-exposure in low light, or a mode the camera does not have)");
        } else {
            tracing::info!("{line}");
        }
        self.shared.lock().negotiated = Some(n);
    }

    /// swscale the decoded frame to tightly packed RGB24 at the spec size; for a depth camera
    /// to 16-bit gray (uint16 millimetres, little-endian) instead, resized by nearest
    /// neighbour when the input's size differs (interpolating would invent depths between a
    /// near and a far surface).
    fn convert(&mut self) -> Result<Vec<u8>, String> {
        let (out_fmt, bytes_pp, flags) = if self.spec.depth {
            (Pixel::GRAY16LE, 2, scaling::Flags::POINT)
        } else {
            (Pixel::RGB24, 3, scaling::Flags::BILINEAR)
        };
        let src = (
            self.decoded.format(),
            self.decoded.width(),
            self.decoded.height(),
        );
        if src.1 == 0 || src.2 == 0 || src.0 == Pixel::None {
            return Err(format!(
                "decoded frame has no picture ({}x{} {:?})",
                src.1, src.2, src.0
            ));
        }
        if self.scaler.as_ref().is_none_or(|(_, k)| *k != src) {
            let ctx = scaling::Context::get(
                src.0,
                src.1,
                src.2,
                out_fmt,
                self.spec.width,
                self.spec.height,
                flags,
            )
            .map_err(|e| {
                format!(
                    "cannot convert {:?} {}x{} to {out_fmt:?}: {e}",
                    src.0, src.1, src.2
                )
            })?;
            self.scaler = Some((ctx, src));
            self.rgb = ffmpeg::frame::Video::empty();
        }
        let Some((scaler, _)) = self.scaler.as_mut() else {
            return Err("no scaler".into());
        };
        scaler
            .run(&self.decoded, &mut self.rgb)
            .map_err(|e| format!("swscale: {e}"))?;
        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        let row = w * bytes_pp;
        let stride = self.rgb.stride(0);
        let plane = self.rgb.data(0);
        if stride < row || plane.len() < stride * (h - 1) + row {
            return Err(format!(
                "swscale output too small: stride {stride}, {} bytes for {w}x{h}",
                plane.len()
            ));
        }
        let mut data = Vec::with_capacity(row * h);
        for y in 0..h {
            data.extend_from_slice(&plane[y * stride..y * stride + row]);
        }
        Ok(data)
    }
}
